/** The data source and the pipeline: parquet shards, splits, epoch orders, batches, workers. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parquetWriteBuffer } from "hyparquet-writer";
import { FOOD101_LABELS } from "../../src/data/food101.ts";
import { batches, DecodePool, type SkippedImage } from "../../src/data/loader.ts";
import { openParquetDataset } from "../../src/data/parquet.ts";
import { epochRows } from "../../src/data/sampler.ts";
import { splitIndices } from "../../src/data/splits.ts";
import { writeSyntheticDataset } from "../../src/data/synthetic.ts";
import { readSafetensors } from "../../src/model/safetensors_file.ts";
import { tempDir } from "../helpers.ts";

const TINY = new URL("../fixtures/train-tiny", import.meta.url).pathname;
const EVAL_SPEC = { size: 32, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], augment: false };

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

Deno.test("parquet: splits, sizes, class names from the huggingface metadata", async () => {
  const data = await openParquetDataset(TINY);
  assert.deepEqual([...data.splits.keys()].sort(), ["train", "validation"]);
  assert.equal(data.size("train"), 32);
  assert.equal(data.size("validation"), 12);
  assert.deepEqual(data.labels, [
    "dish_0",
    "dish_1",
    "dish_2",
    "dish_3",
    "dish_4",
    "dish_5",
    "dish_6",
  ]);
  assert.equal(data.labelsFrom, "metadata");
  assert.throws(() => data.size("test"), /no "test" split \(splits found: /);
});

Deno.test("parquet → decode → eval transform gives the fixture's pixels, in file order", async () => {
  const data = await openParquetDataset(TINY);
  const ref = await readSafetensors(join(TINY, "pixels.safetensors"));
  for (const split of ["train", "validation"]) {
    const pixels = ref.get(`${split}.pixels`)!.data; // [n, 32, 32, 3] uint8
    const labels = ref.get(`${split}.labels`)!.data;
    const got = await collect(batches(epochRows(data, split), { spec: EVAL_SPEC, batchSize: 5 }));
    assert.deepEqual(got.map((b) => b.size), split === "train" ? [5, 5, 5, 5, 5, 5, 2] : [5, 5, 2]);
    let n = 0;
    for (const batch of got) {
      for (let i = 0; i < batch.size; i++, n++) {
        assert.equal(batch.labels[i], labels[n]);
        assert.equal(batch.indices[i], n);
        for (const [y, x, c] of [[0, 0, 0], [5, 17, 1], [31, 31, 2]]) {
          const v = pixels[((n * 32 + y) * 32 + x) * 3 + c];
          const expected = Math.fround((Math.fround(v / 255) - 0.5) / 0.5);
          assert.equal(batch.pixels[i * 3072 + c * 1024 + y * 32 + x], expected);
        }
      }
    }
    assert.equal(n, labels.length);
  }
});

Deno.test("parquet: bad input gets one line naming the file (and row)", async () => {
  await using dir = await tempDir();
  await assert.rejects(
    () => openParquetDataset(join(dir.path, "nope")),
    /nope: cannot read the dataset: no such folder/,
  );
  await assert.rejects(() => openParquetDataset(dir.path), /no \.parquet files found/);

  await Deno.mkdir(join(dir.path, "a/data"), { recursive: true });
  await Deno.writeTextFile(join(dir.path, "a/data/train-00000-of-00001.parquet"), "not parquet");
  await assert.rejects(
    () => openParquetDataset(join(dir.path, "a")),
    /train-00000-of-00001\.parquet: not a readable parquet file/,
  );

  const write = async (name: string, columnData: { name: string; data: unknown[] }[]) => {
    await Deno.mkdir(join(dir.path, name, "data"), { recursive: true });
    const buffer = parquetWriteBuffer({ columnData } as Parameters<typeof parquetWriteBuffer>[0]);
    await Deno.writeFile(
      join(dir.path, name, "data/train-00000-of-00001.parquet"),
      new Uint8Array(buffer),
    );
  };
  await write("b", [{ name: "picture", data: [new Uint8Array(4)] }, {
    name: "label",
    data: [1n],
  }]);
  await assert.rejects(
    () => openParquetDataset(join(dir.path, "b")),
    /no "image" or "img" column \(columns: picture, label; choose one with --image-column\)/,
  );
  // the column names are options; `img` and `labels` are found as run_image_classification.py finds them
  const renamed = await openParquetDataset(join(dir.path, "b"), { imageColumn: "picture" });
  assert.equal(renamed.sizes.train, 1);
  assert.deepEqual(
    renamed.labels,
    ["class_0", "class_1"],
    "no names: class_0 … up to the largest label",
  );
  assert.equal(renamed.labelsFrom, "generated");
  const food = await openParquetDataset(join(dir.path, "b"), {
    imageColumn: "picture",
    fallbackLabels: FOOD101_LABELS,
  });
  assert.deepEqual(food.labels, [...FOOD101_LABELS], "Food-101's names only when asked for");
  assert.equal(food.labelsFrom, "food101");
  await write("b2", [{ name: "img", data: [new Uint8Array(4)] }, { name: "labels", data: [1n] }]);
  const b2 = await openParquetDataset(join(dir.path, "b2"), { labels: ["cat", "dog"] });
  assert.deepEqual([b2.imageColumn, b2.labelColumn, b2.labelsFrom], ["img", "labels", "option"]);
  await Deno.writeTextFile(join(dir.path, "b2", "labels.txt"), "ant\nbee\n\n");
  const b3 = await openParquetDataset(join(dir.path, "b2"));
  assert.deepEqual([b3.labels, b3.labelsFrom], [["ant", "bee"], "labels.txt"]);

  await write("c", [{ name: "image", data: [new Uint8Array(4)] }, { name: "label", data: [500n] }]);
  const c = await openParquetDataset(join(dir.path, "c"), { labels: ["a", "b"] });
  await assert.rejects(
    () => collect(c.rows("train")),
    /train-00000-of-00001\.parquet: row 0: label 500 is out of range \(the dataset has 2 classes, from option\)/,
  );
  await write("d", [{ name: "image", data: ["text"] }, { name: "label", data: [1n] }]);
  const d = await openParquetDataset(join(dir.path, "d"));
  await assert.rejects(() => collect(d.rows("train")), /row 0: "image" holds no image bytes/);
});

Deno.test("parquet: a label column of names gives sorted classes, as datasets' class_encode_column", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(join(dir.path, "data"), { recursive: true });
  const bytes = (n: number) => Array.from({ length: n }, () => new Uint8Array(4));
  const write = async (split: string, labels: string[]) => {
    const buffer = parquetWriteBuffer(
      {
        columnData: [{ name: "image", data: bytes(labels.length) }, {
          name: "label",
          data: labels,
        }],
      } as Parameters<typeof parquetWriteBuffer>[0],
    );
    await Deno.writeFile(
      join(dir.path, `data/${split}-00000-of-00001.parquet`),
      new Uint8Array(buffer),
    );
  };
  await write("train", ["dog", "cat", "dog"]);
  await write("test", ["bird", "cat"]);
  const data = await openParquetDataset(dir.path);
  assert.deepEqual([data.labels, data.labelsFrom], [["bird", "cat", "dog"], "strings"]);
  assert.deepEqual(data.sizes, { train: 3, test: 2 });
  assert.deepEqual((await collect(data.rows("train"))).map((r) => r.label), [2, 1, 2]);
  assert.deepEqual((await collect(data.rows("test"))).map((r) => r.label), [0, 1]);
});

Deno.test("split: fixed seed, 70/30, disjoint, the same on every call", () => {
  const a = splitIndices(25250, { testFraction: 0.3, seed: 42 });
  assert.equal(a.validation.length, 17675);
  assert.equal(a.test.length, 7575);
  assert.deepEqual(splitIndices(25250, { testFraction: 0.3, seed: 42 }), a);
  const all = new Set([...a.validation, ...a.test]);
  assert.equal(all.size, 25250, "disjoint and complete");
  assert.ok(a.validation.every((v, i) => i === 0 || v > a.validation[i - 1]), "ascending");
  const b = splitIndices(25250, { testFraction: 0.3, seed: 43 });
  assert.notDeepEqual(b.test, a.test, "another seed, another split");
  // pinned, so that a change of generator (which would change every split) is noticed
  assert.deepEqual(splitIndices(10, { testFraction: 0.3, seed: 42 }).test, PINNED_TEST_SPLIT);
  assert.throws(() => splitIndices(10, { testFraction: 1, seed: 0 }), RangeError);
});
const PINNED_TEST_SPLIT = [3, 6, 7];

Deno.test("epoch order: file order, or a seeded shuffle by blocks that covers every row once", async () => {
  await using dir = await tempDir();
  await writeSyntheticDataset(dir.path, {
    classes: 3,
    trainPerClass: 20,
    rowGroupSize: 7,
    shards: 3,
  });
  const data = await openParquetDataset(dir.path);
  const order = async (options: Parameters<typeof epochRows>[2]) =>
    (await collect(epochRows(data, "train", options))).map((r) => r.index);
  const plain = await order({});
  assert.deepEqual(plain, Array.from({ length: 60 }, (_, i) => i));
  const e0 = await order({ shuffle: true, seed: 1, epoch: 0, window: 10 });
  assert.deepEqual([...e0].sort((a, b) => a - b), plain, "a permutation");
  assert.notDeepEqual(e0, plain);
  assert.deepEqual(await order({ shuffle: true, seed: 1, epoch: 0, window: 10 }), e0, "seeded");
  assert.notDeepEqual(
    await order({ shuffle: true, seed: 1, epoch: 1, window: 10 }),
    e0,
    "per epoch",
  );
  assert.deepEqual(
    await order({ shuffle: true, seed: 1, epoch: 0, window: 10, skip: 25 }),
    e0.slice(25),
  );
  const subset = new Set([3, 4, 40, 59]);
  assert.deepEqual(await order({ subset }), [3, 4, 40, 59]);
});

Deno.test("workers: the same batches as decoding in place, with augmentation; bad images skipped", async () => {
  await using dir = await tempDir();
  await writeSyntheticDataset(dir.path, { classes: 3, trainPerClass: 6, corrupt: 2 });
  const data = await openParquetDataset(dir.path);
  const spec = { ...EVAL_SPEC, augment: true };
  const run = async (pool?: DecodePool) => {
    const skipped: SkippedImage[] = [];
    const got = await collect(batches(epochRows(data, "train"), {
      spec,
      batchSize: 4,
      pool,
      prefetch: 1,
      rng: (row) => [5, 0, row.index],
      onSkip: (s) => skipped.push(s),
    }));
    return { got, skipped };
  };
  const inPlace = await run();
  assert.throws(() => new DecodePool({ workers: -1 }), /--workers must be a count.*-1/);
  assert.throws(() => new DecodePool({ workers: 1.5 }), /--workers must be a count.*1\.5/);
  const pool = new DecodePool({ workers: 2 });
  try {
    const pooled = await run(pool);
    assert.deepEqual(pooled.got, inPlace.got);
    assert.deepEqual(pooled.skipped, inPlace.skipped);
  } finally {
    pool.close();
  }
  assert.equal(inPlace.skipped.length, 2);
  assert.match(inPlace.skipped[0].file, /train-00000-of-00002\.parquet$/);
  assert.equal(inPlace.skipped[0].row, 0);
  assert.match(inPlace.skipped[0].error, /corrupt JPEG/);
  assert.deepEqual(inPlace.got.map((b) => b.size), [4, 4, 4, 4]);
  assert.equal(inPlace.got.reduce((s, b) => s + b.rows, 0), 18, "rows used, skipped ones included");
  assert.deepEqual(inPlace.got[0].indices, [2, 3, 4, 5]);
});
