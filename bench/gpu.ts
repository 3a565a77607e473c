/**
 * The GPU benchmark, for a machine with a real GPU (run by `bench/gpu.sh`, bundled; a script,
 * not a `deno bench` file, so `deno task bench` leaves it out): ViT-B/16 at 224 on WebGPU
 * (random weights, no download), through the public API the trainer uses:
 * forward (`predictLogits`) at batch 1, 8 and 64, and LoRA training steps at batch 64 (the
 * trainer's `StepPipeline`: `batchGradients` in the trainer's chunks, clipping, AdamW, the
 * loss read a step late), with what each step asks of the GPU (`gpu_counters.ts`). Warm-up
 * (shader compilation) is timed apart. Prints the adapter first (a software adapter makes the
 * numbers void), then one JSON object with images/s for each measurement.
 *
 * `--precision fp16` runs it in mixed precision (float16 frozen weights and products, a loss
 * scaler: `GradScaler`), as the recipe's `fp16=True`.
 *
 * Usage: deno run -A bench/gpu.ts [--small] [--repeat N] [--backend webgpu|wasm|cpu]
 *        [--precision fp32|fp16]
 */

import { parseArgs } from "node:util";
import { type BackendName, initBackend, parseBackendName } from "../src/backend/backend.ts";
import { type Tensor4D, tf } from "../src/core/tf.ts";
import { VIT_BASE_CONFIG } from "../src/model/config.ts";
import { activationBudget, autoChunkSize } from "../src/model/memory.ts";
import { AdamW, trainerNoDecay } from "../src/training/optimizer.ts";
import { StepPipeline } from "../src/training/pipeline.ts";
import { GradScaler } from "../src/training/grad_scaler.ts";
import { parsePrecision } from "../src/model/precision.ts";
import { startGpuCounting } from "../src/backend/gpu_counters.ts";
import { recipeClassifier, SMALL_VIT_CONFIG } from "./generated.ts";
import { predictLogits } from "../src/engines/parallel.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    small: { type: "boolean" },
    repeat: { type: "string", default: "2" },
    backend: { type: "string", default: "webgpu" },
    precision: { type: "string", default: "fp32" },
  },
});
const precision = parsePrecision(values.precision!);
const backend: BackendName = parseBackendName(values.backend!);
const repeat = Number(values.repeat);
const info = await initBackend(backend); // prints the adapter's description
const config = values.small ? SMALL_VIT_CONFIG : VIT_BASE_CONFIG;
const clf = await recipeClassifier(config, precision);
const size = config.image_size;

/** Times `fn` once as warm-up, then `repeat` times: images/s and the warm-up's seconds. */
async function rate(images: number, fn: () => Promise<void>) {
  let start = performance.now();
  await fn();
  const warmup = (performance.now() - start) / 1000;
  start = performance.now();
  for (let i = 0; i < repeat; i++) await fn();
  const seconds = (performance.now() - start) / 1000 / repeat;
  return { images_per_s: images / seconds, warmup_s: warmup };
}

const result: Record<string, unknown> = {
  backend: info.name,
  adapter: info.adapter,
  software: info.software ?? false,
  config: values.small ? "small" : "ViT-B/16",
  precision: clf.precision,
  deno: Deno.version.deno,
  tfjs: tf.version.tfjs,
};
for (const batch of [1, 8, 64]) {
  const pixels = tf.randomNormal([batch, 3, size, size]) as Tensor4D;
  result[`forward_b${batch}`] = await rate(batch, async () => {
    const logits = await predictLogits(clf, pixels);
    await logits.data();
    logits.dispose();
  });
  pixels.dispose();
  console.error(`forward b${batch}:`, result[`forward_b${batch}`]);
}

const batch = {
  pixels: Float32Array.from({ length: 64 * 3 * size * size }, (_, i) => Math.sin(i)),
  labels: Int32Array.from({ length: 64 }, (_, i) => i % 101),
  size: 64,
};
const chunkSize = autoChunkSize(config, 64, activationBudget(backend));
const adam = new AdamW(clf.trainableVariables(), { noDecay: trainerNoDecay });
result.chunk_size = chunkSize;
// the trainer's steps (StepPipeline: chunks, mean, clipping, AdamW, the loss and gradient norm
// read a step late): `repeat` steps timed back to back, after one
const scaler = clf.precision === "fp16" ? new GradScaler() : undefined;
const steps = new StepPipeline(clf, adam, { scaler });
const step = (k: number) =>
  steps.step([batch], { chunkSize, lr: 5e-3, maxGradNorm: 1, dropoutSeed: () => k });
let start = performance.now();
await step(0);
await steps.finish();
const warmup = (performance.now() - start) / 1000;
const counter = info.name === "webgpu" ? startGpuCounting() : undefined;
start = performance.now();
for (let k = 1; k <= repeat; k++) await step(k);
await steps.finish();
const seconds = (performance.now() - start) / 1000 / repeat;
result.train_step_b64 = { images_per_s: 64 / seconds, warmup_s: warmup };
const counts = counter?.stop();
if (counts) {
  const { programs: _p, matMuls: _m, ...totals } = counts;
  result.train_step_b64_gpu_work = Object.fromEntries(
    Object.entries(totals).map(([k, v]) => [k, v / repeat]),
  );
}
console.error("train step b64:", result.train_step_b64);
steps.dispose();
scaler?.dispose();
adam.dispose();
clf.dispose();
console.log(JSON.stringify(result));
