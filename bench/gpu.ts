/**
 * The GPU benchmark, for a machine with a real GPU (run by `bench/gpu.sh`, bundled; a script,
 * not a `deno bench` file, so `deno task bench` leaves it out): ViT-B/16 at 224 on WebGPU
 * (random weights, no download), through the public API the trainer uses:
 * forward (`predictLogits`) at batch 1, 8 and 64, and one LoRA training step at batch 64
 * (`batchGradients` in the trainer's chunks, then AdamW). Warm-up (shader compilation) is
 * timed apart. Prints the adapter first (a software adapter makes the numbers void), then one
 * JSON object with images/s for each measurement.
 *
 * Usage: deno run -A bench/gpu.ts [--small] [--repeat N] [--backend webgpu|wasm|cpu]
 */

import { parseArgs } from "node:util";
import { type BackendName, initBackend, parseBackendName } from "../src/backend/backend.ts";
import { type Tensor4D, tf } from "../src/core/tf.ts";
import { VIT_BASE_CONFIG } from "../src/model/config.ts";
import { activationBudget, autoChunkSize } from "../src/model/memory.ts";
import { AdamW } from "../src/training/optimizer.ts";
import { recipeClassifier, SMALL_VIT_CONFIG } from "./generated.ts";
import { batchGradients, predictLogits } from "../src/model/parallel.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    small: { type: "boolean" },
    repeat: { type: "string", default: "2" },
    backend: { type: "string", default: "webgpu" },
  },
});
const backend: BackendName = parseBackendName(values.backend!);
const repeat = Number(values.repeat);
const info = await initBackend(backend); // prints the adapter's description
const config = values.small ? SMALL_VIT_CONFIG : VIT_BASE_CONFIG;
const clf = await recipeClassifier(config);
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
const vars = clf.trainableVariables();
const adam = new AdamW(vars);
result.chunk_size = chunkSize;
result.train_step_b64 = await rate(64, async () => {
  const { loss, grads } = await batchGradients(clf, batch, {
    chunkSize,
    training: true,
    dropoutSeed: 1,
  });
  adam.step(grads, 5e-3);
  await loss.data(); // the one host sync of a step, as in the trainer
  tf.dispose([loss, ...Object.values(grads)]);
});
console.error("train step b64:", result.train_step_b64);
adam.dispose();
clf.dispose();
console.log(JSON.stringify(result));
