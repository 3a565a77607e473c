/**
 * The data pipeline alone, on generated 512×384 JPEGs (Food-101's usual size): decoding with
 * each JPEG decoder, the whole training transform (decode, RandomResizedCrop to 224, flip,
 * normalise) on the main thread, and the same through the worker pool, one worker and all
 * workers (cores - 1). Each iteration handles a batch of 32 images: images/s = 32 / time.
 *
 * Run with `deno task bench bench/pipeline_bench.ts`.
 */

import encodeJpeg from "@jsquash/jpeg/encode.js";
import { Random } from "../src/core/random.ts";
import { decodeImage } from "../src/data/image.ts";
import { DecodePool } from "../src/data/loader.ts";
import { prepareImage } from "../src/data/prepare.ts";
import type { TransformSpec } from "../src/data/transforms.ts";
import { timed } from "./rate.ts";

const COUNT = 32;
const WIDTH = 512, HEIGHT = 384;

/** Photo-like pixels: smooth colour gradients, blobs and fine noise. */
function photo(seed: number): Uint8ClampedArray {
  const rng = Random.derive(seed);
  const data = new Uint8ClampedArray(WIDTH * HEIGHT * 4);
  const blobs = Array.from({ length: 6 }, () => [
    rng.uniform(0, WIDTH),
    rng.uniform(0, HEIGHT),
    rng.uniform(30, 120),
    rng.int(256),
    rng.int(256),
    rng.int(256),
  ]);
  for (let y = 0; y < HEIGHT; y++) {
    for (let x = 0; x < WIDTH; x++) {
      const p = (y * WIDTH + x) * 4;
      let r = x / 3, g = y / 2, b = 128;
      for (const [cx, cy, radius, br, bg, bb] of blobs) {
        const w = Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (radius * radius));
        r += w * (br - r);
        g += w * (bg - g);
        b += w * (bb - b);
      }
      const n = rng.uniform(-12, 12);
      data[p] = r + n;
      data[p + 1] = g + n;
      data[p + 2] = b + n;
      data[p + 3] = 255;
    }
  }
  return data;
}

const jpegs: Uint8Array[] = [];
for (let i = 0; i < COUNT; i++) {
  const image = { data: photo(i), width: WIDTH, height: HEIGHT, colorSpace: "srgb" } as ImageData;
  jpegs.push(new Uint8Array(await encodeJpeg(image, { quality: 90 })));
}
const spec: TransformSpec = {
  size: 224,
  mean: [0.5, 0.5, 0.5],
  std: [0.5, 0.5, 0.5],
  augment: true,
};
const cores = navigator.hardwareConcurrency;
const oneWorker = new DecodePool({ workers: 1 });
const allWorkers = new DecodePool(); // cores - 1, at least 1
globalThis.addEventListener("unload", () => {
  oneWorker.close();
  allWorkers.close();
});

const decodeTurbo =
  `decode ${COUNT} JPEGs ${WIDTH}×${HEIGHT}: libjpeg-turbo wasm (@cwasm/jpeg-turbo) (${COUNT} images)`;
Deno.bench(decodeTurbo, { group: "decode", baseline: true }, async () => {
  await timed(decodeTurbo, COUNT, async () => {
    for (const jpeg of jpegs) await decodeImage(jpeg);
  });
});

const decodeImagescript = `decode ${COUNT} JPEGs ${WIDTH}×${HEIGHT}: imagescript (${COUNT} images)`;
Deno.bench(decodeImagescript, { group: "decode" }, async () => {
  await timed(decodeImagescript, COUNT, async () => {
    for (const jpeg of jpegs) await decodeImage(jpeg, { decoder: "imagescript" });
  });
});

const mainThread = `train transform of ${COUNT} JPEGs → 224: main thread (${COUNT} images)`;
Deno.bench(mainThread, { group: "pipeline", baseline: true }, async () => {
  await timed(mainThread, COUNT, async () => {
    for (const [i, jpeg] of jpegs.entries()) await prepareImage(jpeg, spec, [42, 0, i]);
  });
});

const oneWorkerName = `train transform of ${COUNT} JPEGs → 224: 1 worker (${COUNT} images)`;
Deno.bench(oneWorkerName, { group: "pipeline" }, async () => {
  await timed(oneWorkerName, COUNT, async () => {
    await Promise.all(jpegs.map((jpeg, i) => oneWorker.prepare(jpeg, spec, [42, 0, i])));
  });
});

const allWorkersName = `train transform of ${COUNT} JPEGs → 224: ${allWorkers.workers} worker${
  allWorkers.workers === 1 ? "" : "s"
}, ${cores} cores (${COUNT} images)`;
Deno.bench(allWorkersName, { group: "pipeline" }, async () => {
  await timed(allWorkersName, COUNT, async () => {
    await Promise.all(jpegs.map((jpeg, i) => allWorkers.prepare(jpeg, spec, [42, 0, i])));
  });
});
