/**
 * What one LoRA training step asks of the GPU, counted on WebGPU: compute passes and
 * dispatches, queue submits, uniform buffer writes, bind groups, buffers created and their
 * bytes, host readbacks, and every program run by kind, tfjs's matMul programs by variant
 * (`MatMulPacked vec4` is tfjs's fast kernel; `scalar` is the one a transposed second operand
 * takes). The steps are the trainer's own (`StepPipeline`: `batchGradients` in chunks and the
 * step's mean; the previous step's loss and gradient norm read; clipping and AdamW), after
 * warm-up steps (shader compilation, buffer pools).
 *
 * None of these counts depends on the GPU, so Mesa's software adapter (llvmpipe) gives what a
 * real GPU would be asked to do. They do not depend on the model's width or image size
 * either, except for tfjs's choice of matMul program, which looks at the product's shape: the
 * default model has ViT-B/16's structure (12 layers, 12 heads, LoRA r 32 on query and value,
 * 101 classes, the classifier trained) at a small width (hidden 48, MLP 192, 32×32 images,
 * patch 8), and `--recipe` takes ViT-B/16's real shapes and the recipe's step (batch 64 in 4
 * micro-batches of 16 … as the trainer would), which is only practical with `--dry`: every
 * command is encoded as usual and counted, but never submitted to the GPU (values are then
 * meaningless; the counts are exact).
 *
 * `--precision fp16` counts the steps of Trainer's `fp16=True` (float16 weights and products,
 * loss-scaled: `model/half_layer.ts`); "peak bytes of tfjs's GPU buffers in use" is then the
 * memory to hold against fp32's. Measured with `--recipe --dry` (chunks of 13): peak
 * 4,512,529,612 bytes in fp32, 1,014,916,172 in fp16 (0.22×); 13,326 dispatches and 983 compute
 * passes a step in fp32, 8,669 and 712 in fp16. By chunk size (fp16): 269 MB at 1 image a pass,
 * 2.19 GB at 32, 4.16 GB at 64, about 62 MB an image (fp32: about 264 MB an image).
 *
 * Prints a table and writes `bench/results/gpu-counts-<date>[-label].json` (or `--json PATH`).
 *
 * Usage: deno run -A bench/gpu_counts.ts [--batch 8] [--accum 1] [--chunk N] [--steps 2]
 *        [--hidden 48 --intermediate 192 --layers 12 --heads 12 --image 32 --patch 8 --r 32]
 *        [--recipe] [--dry] [--precision fp32|fp16] [--submit-batch N] [--label NAME]
 *        [--json PATH | --no-json]
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { initBackend } from "../src/backend/backend.ts";
import { type GpuCounts, startGpuCounting } from "../src/backend/gpu_counters.ts";
import { tf } from "../src/core/tf.ts";
import { parseViTConfig, VIT_BASE_CONFIG, type ViTConfig } from "../src/model/config.ts";
import { activationBudget, autoChunkSize } from "../src/model/memory.ts";
import { batchGradients } from "../src/engines/parallel.ts";
import { countedSteps } from "./gpu_steps.ts";
import { parsePrecision } from "../src/model/precision.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    batch: { type: "string" },
    accum: { type: "string" },
    chunk: { type: "string" },
    steps: { type: "string", default: "2" },
    hidden: { type: "string", default: "48" },
    intermediate: { type: "string", default: "192" },
    layers: { type: "string", default: "12" },
    heads: { type: "string", default: "12" },
    image: { type: "string", default: "32" },
    patch: { type: "string", default: "8" },
    r: { type: "string", default: "32" },
    recipe: { type: "boolean" },
    dry: { type: "boolean" },
    precision: { type: "string", default: "fp32" },
    "submit-batch": { type: "string" },
    label: { type: "string" },
    json: { type: "string" },
    "no-json": { type: "boolean" },
  },
});

const config: ViTConfig = args.recipe ? VIT_BASE_CONFIG : parseViTConfig({
  hidden_size: Number(args.hidden),
  intermediate_size: Number(args.intermediate),
  num_hidden_layers: Number(args.layers),
  num_attention_heads: Number(args.heads),
  image_size: Number(args.image),
  patch_size: Number(args.patch),
});
const batchSize = Number(args.batch ?? (args.recipe ? 64 : 8));
const accum = Number(args.accum ?? (args.recipe ? 4 : 1));
const chunkSize = Number(
  args.chunk ?? autoChunkSize(config, batchSize, activationBudget("webgpu")),
);
const measured = Math.max(1, Number(args.steps));
const precision = parsePrecision(args.precision!);

const info = await initBackend("webgpu", { quiet: true });
if (args["submit-batch"]) {
  // tfjs submits its recorded work every 15 kernels by default
  tf.env().set("WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE", Number(args["submit-batch"]));
}
if (args.dry) {
  // encode and count everything, run nothing: the command buffers are dropped
  (globalThis as unknown as { GPUQueue: { prototype: Record<string, unknown> } }).GPUQueue
    .prototype.submit = () => {};
}
// the trainer's steps (`StepPipeline`, which `TrainingRun.step` runs): each step's passes
// queued, the previous step's loss and gradient norm read, then the update applied
const { clf, group, step, dispose } = await countedSteps({
  config,
  batchSize,
  accum,
  chunkSize,
  r: Number(args.r),
  precision,
  dry: args.dry,
});
const size = config.image_size;

// warm-up: shaders, buffer pools (two reads in flight)
for (let k = 0; k < 3; k++) await step(k);
const counter = startGpuCounting();
const perStep: { counts: GpuCounts; ms: number }[] = [];
for (let k = 3; k < 3 + measured; k++) {
  counter.reset();
  const start = performance.now();
  await step(k);
  perStep.push({ counts: counter.snapshot(), ms: performance.now() - start });
}
// the forward and backward passes alone (one micro-batch, in its chunks)
counter.reset();
const passes = await batchGradients(clf, group[0], { chunkSize, training: true, dropoutSeed: 1 });
tf.dispose([passes.loss, ...Object.values(passes.grads)]);
const gradientCounts = counter.stop();
await dispose();

const counts = perStep[perStep.length - 1].counts;
const steady = perStep.every((s) =>
  JSON.stringify({ ...s.counts, bytesCreated: 0 }) ===
    JSON.stringify({ ...counts, bytesCreated: 0 })
);
const chunks = Math.ceil(batchSize / Math.min(chunkSize, batchSize)) * accum;
const shape =
  `${config.num_hidden_layers} layers, ${config.num_attention_heads} heads, hidden ${config.hidden_size}, ` +
  `MLP ${config.intermediate_size}, ${size}×${size} / ${config.patch_size}, LoRA r ${args.r} on query and value, 101 classes`;
const table: [string, number | string][] = [
  ["dispatches (program runs)", counts.dispatches],
  ["compute passes", counts.computePasses],
  ["queue submits", counts.submits],
  ["uniform buffer writes", counts.uniformWrites],
  ["other buffer writes", counts.otherWrites],
  ["bind groups created", counts.bindGroups],
  ["buffers created", counts.buffersCreated],
  ["  of them upload staging buffers", counts.uploadBuffersCreated],
  ["  of them uniform buffers", counts.uniformBuffersCreated],
  ["bytes of buffers created", counts.bytesCreated],
  ["peak bytes of tfjs's GPU buffers in use", counts.peakBytesInUse],
  ["buffer copies", counts.copies],
  ["host readbacks (mapAsync)", counts.readbacks],
  ["tensor reads (data/dataSync)", counts.tensorReads],
  ["pipelines compiled", counts.pipelines],
  ["forward + backward passes alone: dispatches", gradientCounts.dispatches],
];
console.log(
  `one training step on ${info.adapter}${
    args.dry ? " (dry: nothing executed)" : ""
  }, ${clf.precision}\n` +
    `${shape}; batch ${batchSize} × ${accum} micro-batch(es), chunks of ${chunkSize} (${chunks} passes)\n`,
);
for (const [name, value] of table) console.log(`${name.padEnd(46)} ${String(value).padStart(10)}`);
console.log("\nprograms by kind");
for (const [name, n] of Object.entries(counts.programs).sort((a, b) => b[1] - a[1])) {
  console.log(`  ${name.padEnd(44)} ${String(n).padStart(10)}`);
}
console.log("\nmatMuls by variant, operands [batch, rows, cols] and transposes");
for (const [name, n] of Object.entries(counts.matMuls).sort((a, b) => b[1] - a[1])) {
  console.log(`  ${name.padEnd(70)} ${String(n).padStart(6)}`);
}
const ms = perStep.map((s) => s.ms);
console.log(
  `\nwall time a step: ${ms.map((m) => m.toFixed(0)).join(", ")} ms${
    args.dry
      ? " (encoding alone)"
      : ` (informative: ${info.software ? "a software adapter" : "GPU"})`
  }${steady ? "" : "\nwarning: the measured steps' counts differ"}`,
);

if (!args["no-json"]) {
  const date = new Date().toISOString().slice(0, 10);
  const path = args.json ??
    join("bench", "results", `gpu-counts-${date}${args.label ? `-${args.label}` : ""}.json`);
  await Deno.mkdir(join(path, ".."), { recursive: true });
  const result = {
    date: new Date().toISOString(),
    label: args.label ?? null,
    adapter: info.adapter,
    software: info.software ?? false,
    dry: args.dry ?? false,
    precision: clf.precision,
    submit_batch: Number(args["submit-batch"] ?? 15),
    deno: Deno.version.deno,
    tfjs: tf.version.tfjs,
    model: {
      layers: config.num_hidden_layers,
      heads: config.num_attention_heads,
      hidden: config.hidden_size,
      intermediate: config.intermediate_size,
      image: size,
      patch: config.patch_size,
      lora_r: Number(args.r),
      classes: 101,
    },
    step: { batch: batchSize, micro_batches: accum, chunk_size: chunkSize, passes: chunks },
    per_step: counts,
    forward_backward_one_micro_batch: gradientCounts,
    steady,
    step_ms: ms,
  };
  await Deno.writeTextFile(path, JSON.stringify(result, null, 2) + "\n");
  console.log(`wrote ${path}`);
}
