/**
 * ViT-B/16 at its real shapes (224×224, patch 16, 12 layers, hidden 768; random weights, no
 * download) on the CPU path: forward at batch 8 by each engine (one group: the same work), at
 * batch 1 by the engine `predictLogits` picks, and one LoRA training step at batch 8 (r 32,
 * alpha 16 on query and value, 101 classes: forward, backward and AdamW), through the functions
 * the trainer and evaluation use. Every case prints its images/s when the bench ends
 * (`bench/rate.ts`).
 *
 * Each name says which engine ran it:
 *
 * - forward: ONNX Runtime's native CPU engine (`src/engines/ort.ts`: the classifier exported to
 *   ONNX, LoRA merged in) when `npm:onnxruntime-node` loads (`--allow-ffi`), as
 *   `predictLogits` runs it; else tfjs's wasm backend as below;
 * - training step (and the tfjs forward at batch 8, for comparison): tfjs's wasm backend, its
 *   products on OpenBLAS through the FFI when it is installed (`src/backend/blas.ts`), else on
 *   XNNPACK; the batch split between this isolate and the model's replica workers, one per
 *   further core (`batchGradients`, `predictLogits`).
 *
 * Each name also says how many images an iteration handles: images/s = images / time. The
 * first call (kernel set-up, the ONNX export and session) is excluded as warm-up; the time is
 * the mean of two more.
 *
 * WebGPU on Mesa's software adapter takes over a minute an image at this size, so it is left
 * out here; on a machine with a real GPU, set VIT_BENCH_BACKEND=webgpu.
 *
 * The peers doing the same work are bench/peers/pytorch_vit.py (PyTorch + PEFT) and
 * bench/peers/transformersjs_vit.ts (transformers.js); `deno task bench:json` runs all three
 * and records the ratios.
 */

import { type BackendName, initBackend } from "../src/backend/backend.ts";
import { blasStatus } from "../src/backend/blas.ts";
import { type Tensor2D, type Tensor4D, tf } from "../src/core/tf.ts";
import type { ViTClassifier } from "../src/model/classifier.ts";
import { VIT_BASE_CONFIG } from "../src/model/config.ts";
import { activationBudget, autoChunkSize } from "../src/model/memory.ts";
import { ortLogits, ortStatus } from "../src/engines/ort.ts";
import { AdamW } from "../src/training/optimizer.ts";
import { recipeClassifier } from "./generated.ts";
import { recordRate, timed } from "./rate.ts";
import { batchGradients, classifierReplicas, predictLogits } from "../src/engines/parallel.ts";

const backend = (Deno.env.get("VIT_BENCH_BACKEND") ?? "wasm") as BackendName;
let shared: ViTClassifier | undefined;

async function classifier(): Promise<ViTClassifier> {
  await initBackend(backend, { quiet: true });
  shared ??= await recipeClassifier(VIT_BASE_CONFIG);
  return shared;
}

/** The tfjs path's engine, as the names say it. */
const tfjsEngine = backend !== "wasm"
  ? backend
  : blasStatus().blas
  ? "wasm + OpenBLAS"
  : "wasm (XNNPACK)";
const ort = backend === "wasm" ? await ortStatus() : undefined;
/** The forward pass's engine. */
const forwardEngine = ort?.ort ? `onnxruntime ${ort.version} (CPU)` : tfjsEngine;

/** The forward pass as `predictLogits` runs it: ONNX Runtime when it is there, else tfjs. */
async function forward(clf: ViTClassifier, pixels: Tensor4D): Promise<Tensor2D> {
  return (await ortLogits(clf, pixels)) ?? (await predictLogits(clf, pixels));
}

/** One forward pass of `batch` images by `run`, timed between b.start and b.end. */
async function forwardCase(
  b: Deno.BenchContext,
  name: string,
  batch: number,
  run: (clf: ViTClassifier, pixels: Tensor4D) => Promise<Tensor2D>,
) {
  const clf = await classifier();
  await classifierReplicas(clf); // started once, before the clock (as a long run would)
  const pixels = tf.randomNormal([batch, 3, 224, 224]) as Tensor4D;
  b.start();
  const logits = await timed(name, batch, async () => {
    const out = await run(clf, pixels);
    await out.data();
    return out;
  });
  b.end();
  tf.dispose([logits, pixels]);
}

// the same work, batch 8, by each engine: ONNX Runtime (what predictLogits runs) against tfjs
const engines: [string, (clf: ViTClassifier, x: Tensor4D) => Promise<Tensor2D>][] = [
  [forwardEngine, forward],
];
if (forwardEngine !== tfjsEngine) engines.push([tfjsEngine, (c, x) => predictLogits(c, x)]);
for (const [i, [engine, run]] of engines.entries()) {
  const name = `ViT-B/16 forward, batch 8 (8 images), ${engine}`;
  Deno.bench({
    name,
    ...(engines.length > 1 ? { group: "ViT-B/16 forward, batch 8", baseline: i === 0 } : {}),
    n: 2,
    warmup: 1,
    async fn(b) { // an async function: deno bench awaits only those
      await forwardCase(b, name, 8, run);
    },
  });
}

const single = `ViT-B/16 forward, batch 1 (1 image), ${forwardEngine}`;
Deno.bench({
  name: single,
  n: 2,
  warmup: 1,
  async fn(b) {
    await forwardCase(b, single, 1, forward);
  },
});

const stepName = `ViT-B/16 LoRA training step, batch 8 (8 images), ${tfjsEngine}`;
Deno.bench({
  name: stepName,
  n: 2,
  warmup: 1,
  async fn(b) {
    const clf = await classifier();
    await classifierReplicas(clf);
    const vars = clf.trainableVariables();
    const adam = new AdamW(vars);
    const batch = {
      pixels: Float32Array.from({ length: 8 * 3 * 224 * 224 }, (_, i) => Math.sin(i)),
      labels: Int32Array.from({ length: 8 }, (_, i) => i),
      size: 8,
    };
    // the chunk size the trainer picks for this backend
    const chunkSize = autoChunkSize(clf.config, batch.size, activationBudget(backend));
    b.start();
    const start = performance.now();
    const { loss, grads } = await batchGradients(clf, batch, {
      chunkSize,
      training: true,
      dropoutSeed: 1,
    });
    adam.step(grads, 5e-3);
    await loss.data();
    await Object.values(vars)[0].data();
    recordRate(stepName, 8, performance.now() - start);
    b.end();
    tf.dispose([loss, ...Object.values(grads)]);
    adam.dispose();
  },
});
