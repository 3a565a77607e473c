/**
 * ViT-B/16 at its real shapes (224×224, patch 16, 12 layers, hidden 768; random weights, no
 * download) on the CPU path: forward at batch 1 and 8, and one LoRA training step at batch 8
 * (r 32, alpha 16 on query and value, 101 classes: forward, backward and AdamW), through the
 * functions the trainer and evaluation use.
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

for (const batch of [1, 8]) {
  Deno.bench({
    name: `ViT-B/16 forward, batch ${batch} (${batch} images), ${forwardEngine}`,
    group: "ViT-B/16 forward",
    n: 2,
    warmup: 1,
    async fn(b) {
      const clf = await classifier();
      await classifierReplicas(clf); // started once, before the clock (as a long run would)
      const pixels = tf.randomNormal([batch, 3, 224, 224]) as Tensor4D;
      b.start();
      const logits = await forward(clf, pixels);
      await logits.data();
      b.end();
      tf.dispose([logits, pixels]);
    },
  });
}

if (forwardEngine !== tfjsEngine) {
  Deno.bench({
    name: `ViT-B/16 tfjs forward, batch 8 (8 images), ${tfjsEngine}`,
    group: "ViT-B/16 forward",
    n: 2,
    warmup: 1,
    async fn(b) {
      const clf = await classifier();
      await classifierReplicas(clf);
      const pixels = tf.randomNormal([8, 3, 224, 224]) as Tensor4D;
      b.start();
      const logits = await predictLogits(clf, pixels);
      await logits.data();
      b.end();
      tf.dispose([logits, pixels]);
    },
  });
}

Deno.bench({
  name: `ViT-B/16 LoRA training step, batch 8 (8 images), ${tfjsEngine}`,
  group: "ViT-B/16 train step",
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
    const { loss, grads } = await batchGradients(clf, batch, {
      chunkSize,
      training: true,
      dropoutSeed: 1,
    });
    adam.step(grads, 5e-3);
    await loss.data();
    await Object.values(vars)[0].data();
    b.end();
    tf.dispose([loss, ...Object.values(grads)]);
    adam.dispose();
  },
});
