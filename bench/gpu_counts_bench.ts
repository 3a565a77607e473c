/**
 * `deno task bench`'s view of `bench/gpu_counts.ts`: one of the trainer's optimizer steps on
 * WebGPU for a model of ViT-B/16's structure at a small width, its GPU work counted (kernels,
 * compute passes, submits, uploads, readbacks, matMuls in tfjs's vec4 kernel) and shown in the
 * benchmark's name; the time is informative only (a software adapter here). The counts do not
 * depend on the GPU. `deno task bench:gpu-counts` prints the whole table and writes JSON.
 */

import { initBackend } from "../src/backend/backend.ts";
import { startGpuCounting } from "../src/backend/gpu_counters.ts";
import { parseViTConfig } from "../src/model/config.ts";
import { countedSteps } from "./gpu_steps.ts";

await initBackend("webgpu", { quiet: true });
const setup = await countedSteps({
  config: parseViTConfig({
    hidden_size: 48,
    intermediate_size: 192,
    num_hidden_layers: 12,
    num_attention_heads: 12,
    image_size: 32,
    patch_size: 8,
  }),
  batchSize: 8,
  accum: 1,
  chunkSize: 8,
  r: 32,
});
let k = 0;
for (; k < 3; k++) await setup.step(k); // warm-up: shaders, buffer pools
const counter = startGpuCounting();
await setup.step(k++);
const c = counter.stop();
const matMuls = Object.entries(c.matMuls);
const vec4 = matMuls.filter(([name]) => name.includes("vec4")).reduce((s, [, n]) => s + n, 0);
const scalar = matMuls.filter(([name]) => name.includes("scalar")).reduce((s, [, n]) => s + n, 0);

Deno.bench(
  `WebGPU training step, ViT-B/16 structure at width 48, batch 8: ${c.dispatches} kernels, ` +
    `${c.computePasses} passes, ${c.submits} submits, ${c.uploadBuffersCreated} uploads, ` +
    `${c.readbacks} readback, matMuls ${vec4} vec4 / ${scalar} scalar`,
  { n: 3, warmup: 0 },
  async () => {
    await setup.step(k++);
  },
);

globalThis.addEventListener("unload", () => {
  setup.dispose();
});
