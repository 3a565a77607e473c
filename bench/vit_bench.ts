/**
 * ViT-B/16 at its real shapes (224×224, patch 16, 12 layers, hidden 768; random weights, no
 * download) on the CPU path, tfjs's wasm backend: forward at batch 1 and 8, and one LoRA
 * training step at batch 8 (r 32, alpha 16 on query and value, 101 classes: forward,
 * backward and AdamW), through the public API the trainer uses (`predictLogits`,
 * `batchGradients`): on wasm, the batch is split between this isolate and the model's
 * replica workers, one per further core, as the trainer and evaluation do. Each
 * name says how many images an iteration handles: images/s = images / time. The first call
 * (kernel set-up) is excluded as warm-up; the time is the mean of two more.
 *
 * WebGPU on Mesa's software adapter takes over a minute an image at this size, so it is left
 * out here; on a machine with a real GPU, set VIT_BENCH_BACKEND=webgpu.
 *
 * The PyTorch peer doing the same work is bench/peers/pytorch_vit.py; `deno task bench:json`
 * runs both and records the ratios.
 */

import { type BackendName, initBackend } from "../src/backend/backend.ts";
import { type Tensor4D, tf } from "../src/core/tf.ts";
import type { ViTClassifier } from "../src/model/classifier.ts";
import { VIT_BASE_CONFIG } from "../src/model/config.ts";
import { activationBudget, autoChunkSize } from "../src/model/memory.ts";
import { AdamW } from "../src/training/optimizer.ts";
import { recipeClassifier } from "./generated.ts";
import { batchGradients, classifierReplicas, predictLogits } from "../src/model/parallel.ts";

const backend = (Deno.env.get("VIT_BENCH_BACKEND") ?? "wasm") as BackendName;
let shared: ViTClassifier | undefined;

async function classifier(): Promise<ViTClassifier> {
  await initBackend(backend, { quiet: true });
  shared ??= await recipeClassifier(VIT_BASE_CONFIG);
  return shared;
}

for (const batch of [1, 8]) {
  Deno.bench({
    name: `ViT-B/16 forward, batch ${batch} (${batch} images), ${backend}`,
    group: "ViT-B/16 forward",
    n: 2,
    warmup: 1,
    async fn(b) {
      const clf = await classifier();
      await classifierReplicas(clf); // started once, before the clock (as a long run would)
      const pixels = tf.randomNormal([batch, 3, 224, 224]) as Tensor4D;
      b.start();
      const logits = await predictLogits(clf, pixels);
      await logits.data();
      b.end();
      tf.dispose([logits, pixels]);
    },
  });
}

Deno.bench({
  name: `ViT-B/16 LoRA training step, batch 8 (8 images), ${backend}`,
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
