/**
 * Sharded evaluation and prediction: `--shard i/n` processes each take a block, and the merge
 * of their files equals what one process gives (every figure and every image; only images/s,
 * a timing, differs). Bad sets of shards (one missing, two overlapping, of different n) are
 * one clear error line.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type EvalReport, evaluate } from "../../src/eval/evaluate.ts";
import { mergeEvalShards, mergePredictShards } from "../../src/eval/merge.ts";
import { predict } from "../../src/eval/predict.ts";
import { parseShard, shardRange } from "../../src/eval/shard.ts";
import { fixture, taskPermissions, tempDir, trainedRun, useBackend } from "../helpers.ts";

const root = new URL("../..", import.meta.url).pathname;

/** A task's `--allow-…` flags in deno.json (which `--shard` and `--out` need). */
async function permissions(task: "eval" | "predict"): Promise<string[]> {
  const flags = await taskPermissions(task);
  const env = flags.find((a) => a.startsWith("--allow-env="))?.split("=")[1].split(",") ?? [];
  for (const name of ["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"]) {
    assert.ok(env.includes(name), `deno.json's ${task} task must allow ${name} (--shard auto/n)`);
  }
  assert.ok(flags.includes("--allow-write"), `deno.json's ${task} task must --allow-write`);
  return flags;
}

/** Runs `deno run <task's permissions> tasks/<task>.ts args…`. */
async function runTask(task: "eval" | "predict", args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...await permissions(task), `tasks/${task}.ts`, ...args],
    cwd: root,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** A report without its timing. */
function figures(report: EvalReport): Omit<EvalReport, "imagesPerSecond"> {
  const { imagesPerSecond: _, ...rest } = report;
  return rest;
}

Deno.test("shard: i/n and auto/n (JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID); blocks cover each item once, in whole units", () => {
  assert.deepEqual(parseShard("1/3"), { index: 1, count: 3 });
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  assert.deepEqual(parseShard("auto/4", env({ JOB_COMPLETION_INDEX: "2" })), {
    index: 2,
    count: 4,
  });
  assert.deepEqual(parseShard("auto/4", env({ SLURM_ARRAY_TASK_ID: "3" })), {
    index: 3,
    count: 4,
  });
  assert.throws(() => parseShard("auto/4", env({})), /none of JOB_COMPLETION_INDEX, SLURM/);
  assert.throws(() => parseShard("auto/4", env({ SLURM_ARRAY_TASK_ID: "4" })), /not a shard index/);
  assert.throws(() => parseShard("3/3"), /from 0 to 2/);
  assert.throws(() => parseShard("/3"), /index is empty/);
  assert.throws(() => parseShard("1/0"), /positive integer/);
  assert.throws(() => parseShard("1"), /give i\/n/);
  for (const [total, unit] of [[0, 1], [7, 1], [12, 3], [13, 4], [7575, 64], [5, 16]]) {
    for (const count of [1, 2, 3, 7]) {
      let next = 0;
      for (let index = 0; index < count; index++) {
        const [start, end] = shardRange(total, { index, count }, unit);
        assert.equal(start, next, `${total}/${unit}/${count}: contiguous`);
        assert.ok(end >= start && (start % unit === 0 || start === total), "whole units");
        next = end;
      }
      assert.equal(next, total, `${total}/${unit}/${count}: all covered`);
    }
  }
});

Deno.test("deno task eval --shard i/n in three processes, then --merge: the single process's eval-test.json, image for image", async () => {
  await permissions("eval"); // before the work, a clear failure if deno.json lacks them
  await useBackend("cpu");
  await using dir = await tempDir();
  const { run } = await trainedRun(dir.path);
  const flags = ["--run", run, "--backend", "wasm", "--replicas", "1", "--workers", "1"];
  // 12 test images in batches of 3: 4 batches, so shards of 1, 1 and 2 batches
  const single = await runTask("eval", [...flags, "--batch-size", "3"]);
  assert.equal(single.code, 0, single.stderr);
  const one = await Deno.readTextFile(join(run, "eval-test.json"));
  await Deno.remove(join(run, "eval-test.json"));
  const shards = await Promise.all([
    runTask("eval", [...flags, "--batch-size", "3", "--shard", "0/3"]),
    runTask("eval", [...flags, "--batch-size", "3", "--shard", "1/3"]),
    runTask("eval", [...flags, "--batch-size", "3", "--shard", "auto/3"], {
      JOB_COMPLETION_INDEX: "2",
    }),
  ]);
  for (const [i, s] of shards.entries()) {
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, new RegExp(`^shard ${i} of 3:\\ntest: ${i < 2 ? 3 : 6} images`));
    assert.match(s.stderr, new RegExp(`written: .*eval-test\\.shard-${i}-of-3\\.json`));
  }
  await assert.rejects(Deno.stat(join(run, "eval-test.json")), Deno.errors.NotFound);
  const merged = await runTask("eval", ["--merge", run]);
  assert.equal(merged.code, 0, merged.stderr);
  assert.match(merged.stderr, /written: .*eval-test\.json \(merged from 3 shards\)/);
  const many = await Deno.readTextFile(join(run, "eval-test.json"));
  // the same file but for the one timing figure
  const untimed = (text: string) => text.replace(/"imagesPerSecond":[^,]+,/, "");
  assert.equal(untimed(many), untimed(one));
  const [a, b] = [JSON.parse(one), JSON.parse(many)] as EvalReport[];
  assert.deepEqual(figures(b), figures(a));
  assert.equal(b.count, 12);
  assert.ok(b.imagesPerSecond > 0);

  // bad sets of shards: one line, exit status 1
  const file = (i: number, n = 3) => join(run, `eval-test.shard-${i}-of-${n}.json`);
  const saved = await Deno.readTextFile(file(1));
  await Deno.remove(file(1));
  const missing = await runTask("eval", ["--merge", run]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^error: .*: shard 1 of 3 is missing \(2 of 3 found\)\n$/);
  // shard 1's content under shard 2's name: its rows overlap shard 1's
  await Deno.writeTextFile(file(1), saved);
  const copy = JSON.parse(saved);
  copy.shard.index = 2;
  const shard2 = await Deno.readTextFile(file(2));
  await Deno.writeTextFile(file(2), JSON.stringify(copy));
  await assert.rejects(
    mergeEvalShards({ run }),
    /shards overlap: eval-test\.shard-2-of-3\.json holds rows 3–6, eval-test\.shard-1-of-3\.json 3–6/,
  );
  await Deno.writeTextFile(file(2), shard2);
  // a shard of another adapter
  const other = JSON.parse(shard2);
  other.adapterSha256 = "0".repeat(64);
  await Deno.writeTextFile(file(2), JSON.stringify(other));
  await assert.rejects(mergeEvalShards({ run }), /the shards differ in adapter weights/);
  await Deno.writeTextFile(file(2), shard2);
  // a stale shard of another n
  const stale = JSON.parse(await Deno.readTextFile(file(0)));
  stale.shard.count = 2;
  await Deno.writeTextFile(file(0, 2), JSON.stringify(stale));
  const counts = await runTask("eval", ["--merge", run]);
  assert.equal(counts.code, 1);
  assert.match(counts.stderr, /^error: .*: shards of different counts: .*\n$/);
  await Deno.remove(file(0, 2));
  assert.equal((await mergeEvalShards({ run })).count, 12);
  await assert.rejects(mergeEvalShards({ run, split: "validation" }), /no shard files/);
});

Deno.test("evaluate({ shard }): shards with no rows at all, and a shard without a run, are handled", async () => {
  await useBackend("cpu");
  await using dir = await tempDir();
  const { run } = await trainedRun(dir.path);
  const base = {
    run,
    split: "validation" as const,
    backend: "cpu" as const,
    workers: 0,
    batchSize: 32,
  };
  const one = await evaluate({ ...base, progress: false });
  // a batch holds all the split's rows: one batch for three shards, so shards 0 and 1 are empty
  const parts = [];
  for (let index = 0; index < 3; index++) {
    parts.push(await evaluate({ ...base, progress: false, shard: { index, count: 3 } }));
  }
  assert.deepEqual(parts.map((p) => p.count), [0, 0, one.count]);
  const { files, ...merged } = await mergeEvalShards({ run, split: "validation" });
  assert.equal(files.length, 3);
  assert.deepEqual(figures(merged), figures(one));
  await assert.rejects(
    evaluate({ model: "m", data: "d", shard: { index: 0, count: 2 } }),
    /--shard needs --run/,
  );
  await assert.rejects(evaluate({ run, shard: { index: 2, count: 2 } }), /below the count/);
});

Deno.test("deno task predict --shard i/n --out, then --merge: what one process prints, errors and exit status included", async () => {
  await permissions("predict");
  await useBackend("cpu");
  await using dir = await tempDir();
  const { run } = await trainedRun(dir.path);
  const images = join(dir.path, "images");
  await Deno.mkdir(join(images, "sub"), { recursive: true });
  for (const name of ["rgb.jpg", "gray.png", "cmyk.jpg", "rgba.png"]) {
    await Deno.copyFile(fixture(`images/${name}`), join(images, name));
  }
  await Deno.copyFile(fixture("images/palette.png"), join(images, "sub", "palette.png"));
  await Deno.writeTextFile(join(images, "broken.jpg"), "not an image");
  const flags = ["--run", run, "--backend", "wasm", "--top-k", "3"];
  const single = await runTask("predict", [...flags, "--json", images]);
  assert.equal(single.code, 1, "a bad file: exit status 1");
  const out = join(dir.path, "predictions");
  await Deno.mkdir(out);
  const shards = await Promise.all([0, 1, 2].map((i) =>
    runTask("predict", [
      ...flags,
      "--shard",
      i === 2 ? "auto/3" : `${i}/3`,
      "--out",
      join(out, `part-${i}.jsonl`),
      images,
    ], { SLURM_ARRAY_TASK_ID: "2" })
  ));
  for (const s of shards) {
    assert.equal(s.code, 0, s.stderr);
    assert.equal(s.stdout, "", "with --out, nothing on stdout");
  }
  assert.match(shards[0].stderr, /warning: .*broken\.jpg: not a readable image/);
  const merged = await runTask("predict", ["--merge", "--json", out]);
  assert.equal(merged.code, single.code);
  assert.equal(merged.stdout, single.stdout);
  assert.equal(merged.stderr, single.stderr);
  assert.equal(JSON.parse(merged.stdout).length, 6);
  // the same with files named one by one, as a table
  const table = await runTask("predict", [...flags, images]);
  const files = [2, 0, 1].map((i) => join(out, `part-${i}.jsonl`));
  const byFiles = await runTask("predict", ["--merge", ...files]);
  assert.equal(byFiles.stdout, table.stdout);

  // bad sets: one line each
  const lines = (await Deno.readTextFile(files[0])).trimEnd().split("\n");
  await Deno.writeTextFile(files[0], lines.slice(0, -1).join("\n") + "\n");
  const cut = await runTask("predict", ["--merge", out]);
  assert.equal(cut.code, 1);
  assert.match(cut.stderr, /^error: .*part-2\.jsonl: incomplete: 1 of 2 results/);
  assert.equal(cut.stderr.trimEnd().split("\n").length, 1);
  await Deno.remove(files[0]);
  await assert.rejects(
    mergePredictShards({ paths: [out] }),
    /prediction shards: shard 2 of 3 is missing/,
  );
  await assert.rejects(
    mergePredictShards({ paths: [files[1], files[1]] }),
    /shards 1, 2 of 3 are missing/,
    "the same file twice counts once",
  );
  // shard 0 of a 2-way split next to the 3-way one
  await predict({
    run,
    inputs: [images],
    backend: "cpu",
    progress: false,
    shard: { index: 0, count: 2 },
    out: join(out, "other.jsonl"),
  });
  await assert.rejects(mergePredictShards({ paths: [out] }), /shards of different counts/);
  await assert.rejects(
    predict({ run, inputs: ["-"], progress: false, shard: { index: 0, count: 2 } }),
    /standard input \(-\) cannot be sharded/,
  );
});
