/**
 * Training on your own images (issue 18): an image folder of real photos trains end to end
 * through `deno task train --data DIR`, with a corrupt JPEG skipped, listed and counted; the
 * same images as parquet shards give the same labels, split and step losses; a folder with
 * only class folders gets a validation (and test) split carved out of train.
 */

import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { imageParquet } from "../../src/data/synthetic.ts";
import { openImageFolder } from "../../src/data/imagefolder.ts";
import type { StepEvent } from "../../src/runs/events.ts";
import { readRunConfig } from "../../src/runs/folder.ts";
import { train, type TrainOptions } from "../../src/training/trainer.ts";
import { copyTree, fixture, taskPermissions, tempDir, useBackend } from "../helpers.ts";

const OWN = fixture("own-images");
const MODEL = join(fixture("vit-tiny-a"), "model");

Deno.test("deno task train --data FOLDER: real photos in class folders train end to end; a corrupt JPEG is skipped, listed and counted", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "photos");
  await copyTree(join(OWN, "folder"), data);
  const good = await Deno.readFile(join(data, "train", "cat", "cat_1.jpg"));
  await Deno.writeFile(join(data, "train", "cat", "broken.jpg"), good.slice(0, good.length / 2));
  await Deno.writeTextFile(join(data, "train", "notes.txt"), "not an image");
  const permissions = await taskPermissions("train");
  const out = join(dir.path, "run");
  const run = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...permissions,
      "tasks/train.ts",
      "--model",
      MODEL,
      "--data",
      data,
      "--out",
      out,
      "--epochs",
      "2",
      "--batch-size",
      "8",
      "--grad-accum",
      "1",
      "--lora-r",
      "4",
      "--backend",
      "cpu",
      "--workers",
      "0",
    ],
    cwd: new URL("../..", import.meta.url).pathname,
    env: { NO_COLOR: "1" },
  }).output();
  const stderr = new TextDecoder().decode(run.stderr);
  assert.equal(run.code, 0, stderr);
  assert.match(stderr, /photos: 1 files that are not images left out/);
  assert.match(stderr, /warning: .*broken\.jpg: corrupt JPEG: .* \(image skipped\)/);
  assert.match(
    stderr,
    /1 image could not be decoded and was skipped \(listed in .*skipped\.jsonl\)/,
  );
  assert.doesNotMatch(stderr, /^error/m);
  const skipped = (await Deno.readTextFile(join(out, "skipped.jsonl"))).trim().split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(skipped.map((s) => relative(data, s.file)), ["train/cat/broken.jpg"]);
  const config = await readRunConfig(out);
  assert.deepEqual(config.dataset?.labels, ["cat", "coffee", "rocket"]);
  assert.equal(config.dataset?.kind, "imagefolder");
  assert.deepEqual(
    [config.dataset?.train, config.dataset?.validation, config.dataset?.test],
    [37, 12, 12],
    "the folder's own three splits (train counts the broken file, which is skipped)",
  );
  const adapter = JSON.parse(await Deno.readTextFile(join(out, "best", "adapter_config.json")));
  assert.equal(adapter.peft_type, "LORA");
});

/** The image folder's rows written as parquet shards in the Hub's layout, in the same order. */
async function asParquet(folder: string, to: string): Promise<void> {
  const images = await openImageFolder(folder);
  await Deno.mkdir(join(to, "data"), { recursive: true });
  for (const split of Object.keys(images.sizes)) {
    const rows = [];
    for (const group of images.rowGroups(split)) rows.push(...await images.readRowGroup(group));
    const buffer = imageParquet(
      rows.map((r) => ({ bytes: r.bytes, path: r.file, label: r.label })),
      images.labels,
    );
    await Deno.writeFile(join(to, `data/${split}-00000-of-00001.parquet`), buffer);
  }
}

Deno.test("the same photos as an image folder and as parquet shards: the same labels, split and step losses", async () => {
  await useBackend("cpu");
  await using dir = await tempDir();
  const parquet = join(dir.path, "parquet");
  await asParquet(join(OWN, "folder"), parquet);
  const recipe: TrainOptions = {
    model: MODEL,
    epochs: 2,
    batchSize: 6,
    gradAccum: 2,
    loraR: 4,
    workers: 0,
    progress: false,
    backend: "cpu",
    augment: "trivial", // seeded per row: the same draws from either source
  };
  const runs: { steps: StepEvent[]; dir: string }[] = [];
  for (const data of [join(OWN, "folder"), parquet]) {
    const steps: StepEvent[] = [];
    const result = await train({
      ...recipe,
      data,
      out: join(dir.path, `run-${runs.length}`),
      onStep: (e) => steps.push(e),
    });
    runs.push({ steps, dir: result.runDir });
  }
  const [folder, shards] = runs;
  assert.equal(folder.steps.length, 6);
  const strip = (s: StepEvent[]) => s.map(({ images_per_s: _, ...rest }) => rest);
  assert.deepEqual(strip(shards.steps), strip(folder.steps));
  const config = async (run: string) => (await readRunConfig(run)).dataset;
  const [a, b] = [await config(folder.dir), await config(shards.dir)];
  assert.deepEqual(b?.labels, a?.labels);
  assert.deepEqual([b?.train, b?.validation, b?.test], [a?.train, a?.validation, a?.test]);
  assert.deepEqual(
    JSON.parse(await Deno.readTextFile(join(shards.dir, "split.json"))),
    JSON.parse(await Deno.readTextFile(join(folder.dir, "split.json"))),
  );
});

Deno.test("a folder of class folders only (a train split) gets validation and test carved out of train", async () => {
  await useBackend("cpu");
  await using dir = await tempDir();
  const result = await train({
    model: MODEL,
    data: join(OWN, "folder-flat"),
    out: join(dir.path, "run"),
    epochs: 1,
    batchSize: 4,
    gradAccum: 1,
    loraR: 4,
    validationFraction: 0.25,
    testFraction: 0.34,
    workers: 0,
    progress: false,
    backend: "cpu",
  });
  const split = JSON.parse(await Deno.readTextFile(join(result.runDir, "split.json")));
  assert.equal(split.format, "vit-lora/split@2");
  assert.equal(split.train.source, "train");
  assert.equal(split.validation.source, "train");
  assert.equal(split.test.source, "train");
  const [t, v, s] = [split.train.indices, split.validation.indices, split.test.indices];
  assert.deepEqual(
    [t.length, v.length, s.length],
    [9, 2, 1],
    "12 images: 3 held out, 1 of them for test",
  );
  assert.equal(new Set([...t, ...v, ...s]).size, 12, "disjoint and complete");
  const config = await readRunConfig(result.runDir);
  assert.match(
    config.dataset!.parts!.validation,
    /25% of the "train" split, by the seed, less 34% of it for test/,
  );
  assert.equal(result.test?.count, 1);
});
