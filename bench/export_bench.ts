/**
 * The ONNX export on ViT-B/16 at its real shapes (224×224, 12 layers, hidden 768; random
 * weights, the recipe's LoRA r 32 on query and value, 101 classes; no download), on this machine:
 *
 * - forward at batch 8 through ONNX Runtime's native CPU engine (`npm:onnxruntime-node`) in
 *   each precision the transformers.js folder holds: fp32 (`onnx/model.onnx`), fp16
 *   (`model_fp16.onnx`) and q8 (`model_quantized.onnx`), as `ortLogits(clf, x, { dtype })` runs
 *   them (what `predict`/`eval --dtype` use). Images/s = 8 / time;
 * - what the training loop's evaluation pays each epoch to follow the adapter: before, a new
 *   export and session of the merged model (`OrtClassifier.create`, what `ortLogits` did after
 *   every optimizer step); now, the inputs of the one adapter-input session (`adapterFeeds`),
 *   and that session's forward pass at batch 8 against the merged one's;
 * - writing the whole transformers.js folder's bytes (`exportOnnx`, all three dtypes).
 *
 * The first call of each (the export and session, for the forward passes) is warm-up; the time
 * is the mean of the next four forward passes (two of the others). On a machine shared with
 * other work, read the minimum. Needs `--allow-ffi` (ONNX Runtime is a Node-API addon).
 *
 * Usage: deno bench --allow-ffi --allow-read --allow-write --allow-env bench/export_bench.ts
 */

import { initBackend } from "../src/backend/backend.ts";
import { type Tensor4D, tf } from "../src/core/tf.ts";
import type { ViTClassifier } from "../src/model/classifier.ts";
import { VIT_BASE_CONFIG } from "../src/model/config.ts";
import {
  adapterFeeds,
  adapterSession,
  OrtClassifier,
  ortLogits,
  ortStatus,
} from "../src/engines/ort.ts";
import { exportOnnx } from "../src/onnx/export.ts";
import { recipeClassifier } from "./generated.ts";

const status = await ortStatus();
if (!status.ort) console.error(`export_bench: ONNX Runtime is not available: ${status.reason}`);
const engine = `onnxruntime-node ${status.version} (CPU, ${navigator.hardwareConcurrency} threads)`;
let shared: ViTClassifier | undefined;

async function classifier(): Promise<ViTClassifier> {
  await initBackend("wasm", { quiet: true });
  shared ??= await recipeClassifier(VIT_BASE_CONFIG);
  return shared;
}

const pixels = Float32Array.from({ length: 8 * 3 * 224 * 224 }, (_, i) => Math.sin(i));

for (const dtype of ["fp32", "fp16", "q8"] as const) {
  Deno.bench({
    name: `ViT-B/16 forward ${dtype}, batch 8 (8 images), ${engine}`,
    group: "ViT-B/16 forward by dtype",
    baseline: dtype === "fp32",
    ignore: !status.ort,
    n: 4,
    warmup: 1,
    async fn(b) {
      const clf = await classifier();
      const x = tf.tensor4d(pixels, [8, 3, 224, 224]) as Tensor4D;
      b.start();
      const logits = (await ortLogits(clf, x, { dtype, always: true }))!;
      await logits.data();
      b.end();
      tf.dispose([logits, x]);
    },
  });
}

Deno.bench({
  name: "before: after an optimizer step, a new export and session of the merged model",
  group: "ViT-B/16 following the adapter, per epoch",
  baseline: true,
  ignore: !status.ort,
  n: 2,
  warmup: 1,
  async fn(b) {
    const clf = await classifier();
    b.start();
    const session = await OrtClassifier.create(clf);
    b.end();
    await session.release();
  },
});

Deno.bench({
  name: "now: after an optimizer step, the adapter-input session's inputs",
  group: "ViT-B/16 following the adapter, per epoch",
  ignore: !status.ort,
  n: 2,
  warmup: 1,
  async fn(b) {
    const clf = await classifier();
    b.start();
    await adapterFeeds(clf);
    b.end();
  },
});

let adapter: Promise<OrtClassifier> | undefined, merged: Promise<OrtClassifier> | undefined;
for (const kind of ["merged", "adapter inputs"] as const) {
  Deno.bench({
    name: `ViT-B/16 forward fp32, batch 8 (8 images), session of ${kind}`,
    group: "ViT-B/16 forward, merged or adapter-input session",
    baseline: kind === "merged",
    ignore: !status.ort,
    n: 4,
    warmup: 1,
    async fn(b) {
      const clf = await classifier();
      const session = kind === "merged"
        ? await (merged ??= OrtClassifier.create(clf))
        : await (adapter ??= adapterSession(clf));
      const feeds = kind === "merged" ? {} : await adapterFeeds(clf);
      b.start();
      await session.run(pixels, 8, feeds);
      b.end();
    },
  });
}

Deno.bench({
  name: "exportOnnx: the transformers.js folder's bytes (fp32, fp16, q8)",
  n: 2,
  warmup: 1,
  async fn(b) {
    const clf = await classifier();
    b.start();
    const files = await exportOnnx(clf);
    b.end();
    if (files.size !== 6) throw new Error("exportOnnx: six files expected");
  },
});
