/**
 * Small-model benchmarks, quick on a CPU: a ViT at vit-tiny-b's shape (hidden 64, 3 layers,
 * 48×48, patch 16), forward at batch 8 and one LoRA forward + backward at batch 8, on each
 * backend. ViT-B/16 is in vit_bench.ts; the PyTorch peers in peers/
 *
 * Run with `deno task bench`. The steady-state benchmarks exclude their warm-up iterations;
 * what a first pass costs (tfjs's kernel set-up, and WebGPU's shader compilation: every shader
 * is compiled on first use in a process) is reported apart, by the "warm-up" benchmarks, which
 * run first, on a fresh classifier, once.
 */

import { type BackendName, initBackend } from "../src/backend/backend.ts";
import { type Tensor, type Tensor1D, type Tensor4D, tf } from "../src/core/tf.ts";
import type { ViTClassifier } from "../src/model/classifier.ts";
import { createClassifier } from "../src/model/loading.ts";
import { SMALL_VIT_CONFIG } from "./generated.ts";
import { recordRate } from "./rate.ts";

const config = SMALL_VIT_CONFIG;
const BATCH = 8;

/** A fresh classifier and batch on `backend`; `run` is what the benchmark times. */
async function measure(
  b: Deno.BenchContext,
  backend: BackendName,
  run: (clf: ViTClassifier, pixels: Tensor4D, labels: Tensor1D) => Promise<Tensor[]>,
  name?: string,
): Promise<void> {
  await initBackend(backend, { quiet: true });
  const clf = await createClassifier(config, { labels: ["a", "b", "c"], lora: { r: 8 } });
  const pixels = tf.randomNormal([BATCH, 3, 48, 48]) as Tensor4D;
  const labels = tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], "int32");
  b.start();
  const start = performance.now();
  const results = await run(clf, pixels, labels);
  if (name) recordRate(name, BATCH, performance.now() - start);
  b.end();
  tf.dispose([...results, pixels, labels]);
  clf.dispose();
}

/** One LoRA forward + backward pass. */
async function trainStep(clf: ViTClassifier, pixels: Tensor4D, labels: Tensor1D) {
  const { loss, grads } = clf.lossAndGradients(pixels, labels, { training: true });
  await loss.data();
  return [loss, ...Object.values(grads)];
}

for (const backend of ["webgpu", "wasm", "cpu"] as BackendName[]) {
  Deno.bench({
    name: `tiny ViT warm-up: first forward + backward in the process, ${backend}`,
    group: "tiny ViT warm-up: the first pass in a process",
    n: 1,
    warmup: 0,
    async fn(b) {
      await measure(b, backend, trainStep);
    },
  });
}

for (const backend of ["webgpu", "wasm", "cpu"] as BackendName[]) {
  const forwardName = `tiny ViT forward, batch ${BATCH} (${BATCH} images), ${backend}`;
  Deno.bench({
    name: forwardName,
    group: "tiny ViT forward, batch 8",
    baseline: backend === "cpu",
    warmup: 3,
    async fn(b) {
      await measure(b, backend, async (clf, pixels) => {
        const logits = clf.logits(pixels);
        await logits.data();
        return [logits];
      }, forwardName);
    },
  });
  const stepName = `tiny ViT LoRA forward + backward, batch ${BATCH} (${BATCH} images), ${backend}`;
  Deno.bench({
    name: stepName,
    group: "tiny ViT LoRA forward + backward, batch 8",
    baseline: backend === "cpu",
    warmup: 3,
    async fn(b) {
      await measure(b, backend, trainStep, stepName);
    },
  });
}
