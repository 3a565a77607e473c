/**
 * What a training step asks of the GPU, counted (`gpu_counters.ts`), in fp32 and in fp16 (loss
 * scaled): no host read but the step's loss and norm (and scaler verdict), a step late; nothing uploaded but the batch (dropout's masks drawn on the GPU,
 * constants as uniforms); the frozen layers' backward products in tfjs's vec4 matMul kernel.
 */

import assert from "node:assert/strict";
import { startGpuCounting } from "../../src/backend/gpu_counters.ts";
import { type Tensor, type Tensor1D, type Tensor2D, tf } from "../../src/core/tf.ts";
import { parseViTConfig } from "../../src/model/config.ts";
import { createClassifier } from "../../src/model/loading.ts";
import { Linear } from "../../src/model/vit.ts";
import { AdamW, trainerNoDecay } from "../../src/training/optimizer.ts";
import { StepPipeline } from "../../src/training/pipeline.ts";
import { GradScaler } from "../../src/training/grad_scaler.ts";
import { relError, useBackend } from "../helpers.ts";

Deno.test("on webgpu: a linear layer's input gradient is a plain product (vec4 kernel), its [out, in] weight made once", async () => {
  await useBackend("webgpu");
  const [weightT, x, dy] = ([[64, 96], [256, 64], [256, 96]] as [number, number][]).map((s, i) =>
    tf.randomNormal(s, 0, 1, "float32", i + 1) as Tensor2D
  );
  const bias = tf.randomNormal([96], 0, 1, "float32", 4) as Tensor1D;
  const linear = new Linear(weightT, bias);
  const grad = () => tf.grad((t: Tensor) => linear.apply(t as Tensor2D).mul(dy).sum())(x);
  tf.dispose(grad()); // the first backward pass makes the [out, in] weight
  const before = tf.memory().numTensors;
  const counter = startGpuCounting();
  let g: Tensor;
  try {
    g = grad();
  } finally {
    counter.stop();
  }
  const counts = counter.stop();
  assert.equal(tf.memory().numTensors, before + 1, "nothing made again but the gradient");
  assert.equal(counts.programs["MatMulPacked vec4"], 2, JSON.stringify(counts.matMuls));
  assert.equal(counts.programs["MatMulPacked scalar"], undefined, JSON.stringify(counts.matMuls));
  const ref = tf.matMul(dy, weightT, false, true);
  const err = relError(await g.data(), await ref.data());
  assert.ok(err < 1e-5, `dy W: ${err}`);
  tf.dispose([g, ref, x, dy]);
  linear.dispose();
});

for (const precision of ["fp32", "fp16"] as const) {
  Deno.test(`on webgpu, ${precision}: a training step in the steady state reads back only its values, uploads only its batch, and its counts do not change`, async () => {
    await useBackend("webgpu");
    const config = parseViTConfig({
      hidden_size: 64,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      intermediate_size: 128,
      image_size: 32,
      patch_size: 8,
      hidden_dropout_prob: 0.1,
    });
    const clf = await createClassifier(config, {
      labels: ["a", "b", "c"],
      lora: { r: 8, alpha: 16, dropout: 0.1 },
      seed: 3,
      precision,
    });
    assert.equal(clf.precision, precision);
    const adam = new AdamW(clf.trainableVariables(), { noDecay: trainerNoDecay });
    // fp16: loss-scaled, the scale and the step's verdict kept on the GPU
    const scaler = precision === "fp16" ? new GradScaler() : undefined;
    const group = [0, 1].map((m) => ({
      pixels: Float32Array.from({ length: 4 * 3 * 32 * 32 }, (_, i) => Math.sin(i * 0.1 + m)),
      labels: Int32Array.from({ length: 4 }, (_, i) => (i + m) % 3),
      size: 4,
    }));
    const steps = new StepPipeline(clf, adam, { scaler });
    const step = (k: number) =>
      steps.step(group, {
        chunkSize: 4, // one pass a micro-batch (batchGradients' sums over chunks upload their weights)
        lr: 1e-3,
        maxGradNorm: 1,
        dropoutSeed: (m) => k * 10 + m,
      }, ([loss, norm, skipped]) => {
        assert.ok(
          Number.isFinite(loss) && (norm > 0 || skipped === 1),
          `step ${k - 1}: ${loss}, ${norm}`,
        );
      });
    await step(0);
    const seen = [];
    for (let k = 1; k <= 4; k++) {
      const counter = startGpuCounting();
      try {
        await step(k);
      } finally {
        counter.stop();
      }
      const { programs: _p, matMuls: _m, bytesCreated: _b, peakBytesInUse: _u, ...counts } = counter
        .stop();
      seen.push(counts);
    }
    await steps.finish();
    steps.dispose();
    const last = seen[seen.length - 1];
    assert.deepEqual(seen[seen.length - 2], last, "the same work every step");
    assert.equal(last.tensorReads, 0, "no data() or dataSync()");
    assert.equal(last.readbacks, 1, "one read a step: the previous step's loss and norm");
    // 2 micro-batches: pixels and labels each, and tfjs's loss scalars (its mean's count, …)
    // (fp16: one more each: the gradient's seed, a 1 tfjs makes on the host, meets the GPU's
    // loss scale in the scaled loss's product)
    const uploads = precision === "fp16" ? 2 * 7 : 2 * 6;
    assert.ok(last.uploadBuffersCreated <= uploads, `uploads: ${last.uploadBuffersCreated}`);
    assert.equal(last.uniformBuffersCreated, 0, "uniform buffers come from tfjs's pool");
    assert.equal(last.pipelines, 0, "no new shader");
    adam.dispose();
    scaler?.dispose();
    clf.dispose();
  });
}
