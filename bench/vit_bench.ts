/**
 * ViT-B/16 at its real shapes (224×224, patch 16, 12 layers, hidden 768; random weights, no
 * download) on the CPU path, tfjs's wasm backend: forward at batch 1 and 8, and one LoRA
 * training step at batch 8 (r 32, alpha 16 on query and value, 101 classes: forward,
 * backward and AdamW, the batch in chunks of one image as the trainer does on wasm). Each
 * name says how many images an iteration handles: images/s = images / time. The first call
 * (kernel set-up) is excluded as warm-up.
 *
 * WebGPU on Mesa's software adapter takes over a minute an image at this size, so it is left
 * out here; on a machine with a real GPU, set VIT_BENCH_BACKEND=webgpu.
 *
 * The PyTorch peer doing the same work is bench/peers/pytorch_vit.py; `deno task bench:json`
 * runs both and records the ratios.
 */

import {
  AdamW,
  type BackendName,
  createClassifier,
  initBackend,
  type Tensor,
  type Tensor1D,
  type Tensor4D,
  tf,
  VIT_BASE_CONFIG,
  type ViTClassifier,
} from "../mod.ts";

const backend = (Deno.env.get("VIT_BENCH_BACKEND") ?? "wasm") as BackendName;
let shared: ViTClassifier | undefined;

async function classifier(): Promise<ViTClassifier> {
  await initBackend(backend, { quiet: true });
  shared ??= await createClassifier(VIT_BASE_CONFIG, {
    labels: Array.from({ length: 101 }, (_, i) => `class_${i}`),
    lora: { r: 32, alpha: 16, dropout: 0.1, targetModules: ["query", "value"] },
  });
  return shared;
}

for (const batch of [1, 8]) {
  Deno.bench({
    name: `ViT-B/16 forward, batch ${batch} (${batch} images), ${backend}`,
    group: "ViT-B/16 forward",
    n: 1,
    warmup: 1,
    async fn(b) {
      const clf = await classifier();
      const pixels = tf.randomNormal([batch, 3, 224, 224]) as Tensor4D;
      b.start();
      const logits = clf.logits(pixels);
      await logits.data();
      b.end();
      tf.dispose([logits, pixels]);
    },
  });
}

Deno.bench({
  name: `ViT-B/16 LoRA training step, batch 8 (8 images), ${backend}`,
  group: "ViT-B/16 train step",
  n: 1,
  warmup: 1,
  async fn(b) {
    const clf = await classifier();
    const vars = clf.trainableVariables();
    const adam = new AdamW(vars);
    const pixels = tf.randomNormal([8, 3, 224, 224]) as Tensor4D;
    const labels = tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], "int32") as Tensor1D;
    b.start();
    let sum: Record<string, Tensor> | undefined;
    for (let i = 0; i < 8; i++) {
      const x = pixels.slice([i, 0, 0, 0], [1, 3, 224, 224]) as Tensor4D;
      const y = labels.slice([i], [1]) as Tensor1D;
      const { loss, grads } = clf.lossAndGradients(x, y, { training: true });
      tf.dispose([x, y, loss]);
      if (!sum) sum = grads;
      else {
        for (const k of Object.keys(grads)) {
          const s = sum[k].add(grads[k]);
          tf.dispose([sum[k], grads[k]]);
          sum[k] = s;
        }
      }
    }
    const mean = tf.tidy(() =>
      Object.fromEntries(Object.entries(sum!).map(([k, g]) => [k, g.div(8)]))
    );
    adam.step(mean, 5e-3);
    await Object.values(vars)[0].data();
    b.end();
    tf.dispose([pixels, labels, ...Object.values(sum!), ...Object.values(mean)]);
    adam.dispose();
  },
});
