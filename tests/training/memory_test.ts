/** Every tensor has an owner: repeated inference and training passes leave nothing behind. */

import assert from "node:assert/strict";
import { tf } from "../../src/core/tf.ts";
import { loadClassifier } from "../../src/model/loading.ts";
import { AdamW } from "../../src/training/optimizer.ts";
import { StepPipeline } from "../../src/training/pipeline.ts";
import { BACKENDS, expected, fixture, inputs, useBackend } from "../helpers.ts";

for (const backend of BACKENDS) {
  Deno.test(`on ${backend}: tensor count is flat over repeated forward and backward passes`, async () => {
    await useBackend(backend);
    const dir = fixture("vit-tiny-a");
    const clf = await loadClassifier(`${dir}/model`, { adapter: `${dir}/adapter`, backend });
    const { pixels, labels } = inputs(await expected("vit-tiny-a"));
    const step = async () => {
      const logits = clf.logits(pixels);
      await logits.data();
      logits.dispose();
      // Training mode: LoRA dropout is on.
      const { loss, grads } = clf.lossAndGradients(pixels, labels, { training: true });
      await loss.data();
      tf.dispose([loss, ...Object.values(grads)]);
    };
    await step(); // warm-up: kernels and caches
    const tensors = tf.memory().numTensors;
    const bytes = tf.memory().numBytes;
    for (let i = 0; i < 5; i++) await step();
    assert.equal(tf.memory().numTensors, tensors, "tensor count");
    assert.equal(tf.memory().numBytes, bytes, "bytes held");
    tf.dispose([pixels, labels]);
    clf.dispose();
  });
}

Deno.test("dropout in training mode changes the loss; evaluation mode is deterministic", async () => {
  await useBackend("cpu");
  const dir = fixture("vit-tiny-a");
  const clf = await loadClassifier(`${dir}/model`, { adapter: `${dir}/adapter` });
  const { pixels, labels } = inputs(await expected("vit-tiny-a"));
  const evalLoss = async () => (await clf.loss(pixels, labels).data())[0];
  const trainLoss = async () => (await clf.loss(pixels, labels, { training: true }).data())[0];
  assert.equal(await evalLoss(), await evalLoss());
  const train = [await trainLoss(), await trainLoss(), await trainLoss()];
  assert.ok(train.some((l) => l !== train[0]) || train[0] !== await evalLoss(), "dropout acts");
  tf.dispose([pixels, labels]);
  clf.dispose();
});

Deno.test("on webgpu: GPU buffers in use stay flat over many training steps (AdamW included)", async () => {
  await useBackend("webgpu");
  const dir = fixture("vit-tiny-a");
  const clf = await loadClassifier(`${dir}/model`, {
    adapter: `${dir}/adapter`,
    backend: "webgpu",
  });
  const { pixels, labels } = inputs(await expected("vit-tiny-a"));
  const adam = new AdamW(clf.trainableVariables());
  const manager = (tf.backend() as unknown as {
    bufferManager: { getNumUsedBuffers(): number };
  }).bufferManager;
  const step = async () => {
    const { loss, grads } = clf.lossAndGradients(pixels, labels, { training: true });
    adam.step(grads, 1e-3);
    await loss.data();
    tf.dispose([loss, ...Object.values(grads)]);
  };
  await step();
  await step(); // warm-up: kernels, uniform buffers
  const buffers = manager.getNumUsedBuffers();
  const tensors = tf.memory().numTensors;
  for (let i = 0; i < 20; i++) await step();
  assert.equal(tf.memory().numTensors, tensors, "tensor count");
  assert.equal(manager.getNumUsedBuffers(), buffers, "GPU buffers in use");
  adam.dispose();
  tf.dispose([pixels, labels]);
  clf.dispose();
});

Deno.test("on webgpu: the trainer's step (fused AdamW and norm, GPU dropout, its loss read a step late) leaves tensors and GPU buffers flat", async () => {
  await useBackend("webgpu");
  const dir = fixture("vit-tiny-a");
  const clf = await loadClassifier(`${dir}/model`, {
    adapter: `${dir}/adapter`,
    backend: "webgpu",
    loraDropout: 0.1,
  });
  const e = await expected("vit-tiny-a");
  const batch = {
    pixels: Float32Array.from(e.pixelValues.data),
    labels: Int32Array.from(e.labels.data),
    size: e.labels.shape[0],
  };
  const adam = new AdamW(clf.trainableVariables());
  const manager = (tf.backend() as unknown as {
    bufferManager: { getNumUsedBuffers(): number; numBytesAllocated: number };
  }).bufferManager;
  const steps = new StepPipeline(clf, adam);
  const step = (k: number) =>
    steps.step([batch, batch], { lr: 1e-3, maxGradNorm: 1, dropoutSeed: (m) => k * 2 + m });
  for (let k = 0; k < 3; k++) await step(k); // warm-up: kernels, buffer pools, reads in flight
  const buffers = manager.getNumUsedBuffers();
  const allocated = manager.numBytesAllocated;
  const tensors = tf.memory().numTensors;
  for (let k = 3; k < 13; k++) await step(k);
  assert.equal(tf.memory().numTensors, tensors, "tensor count");
  assert.equal(manager.getNumUsedBuffers(), buffers, "GPU buffers in use");
  assert.equal(manager.numBytesAllocated, allocated, "GPU bytes allocated");
  await steps.finish();
  steps.dispose();
  adam.dispose();
  clf.dispose();
});
