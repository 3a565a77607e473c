/**
 * Replicas of a classifier in workers (the CPU path's use of more than one core): forward
 * passes and training gradients split between this isolate and a worker equal those made
 * here alone, bit for bit; the replicas follow changes of the trainable tensors, and stop
 * with the classifier.
 */

import assert from "node:assert/strict";
import { type Tensor, type Tensor1D, type Tensor4D, tf } from "../../src/core/tf.ts";
import type { ViTClassifier } from "../../src/model/classifier.ts";
import { loadClassifier } from "../../src/model/loading.ts";
import { splitRows } from "../../src/engines/replicas.ts";
import { AdamW } from "../../src/training/optimizer.ts";
import { fixture, useBackend } from "../helpers.ts";
import {
  batchGradients,
  classifierReplicas,
  predictLogits,
  rowAlignment,
} from "../../src/engines/parallel.ts";

const dir = fixture("vit-tiny-a");

/** A classifier of the tiny fixture on wasm with `replicas` replicas (0: none). */
function tiny(replicas: number): Promise<ViTClassifier> {
  return loadClassifier(`${dir}/model`, { adapter: `${dir}/adapter`, backend: "wasm", replicas });
}

/** `rows` images of 3×32×32, deterministic. */
function batch(rows: number) {
  return {
    pixels: Float32Array.from({ length: rows * 3 * 32 * 32 }, (_, i) => Math.sin(i * 0.37)),
    labels: Int32Array.from({ length: rows }, (_, i) => i % 3),
    size: rows,
  };
}

Deno.test("splitRows: contiguous, as equal as can be, larger parts first, cut at multiples of the alignment", () => {
  assert.deepEqual(splitRows(29, 2, 12), [[0, 12], [12, 29]]);
  assert.deepEqual(splitRows(64, 2, 12), [[0, 36], [36, 64]]);
  assert.deepEqual(splitRows(30, 3, 12), [[0, 12], [12, 24], [24, 30]]);
  assert.deepEqual(splitRows(11, 2, 12), [[0, 11]]);
  assert.deepEqual(splitRows(11, 2, Infinity), [[0, 11]]);
  assert.deepEqual(splitRows(8, 2), [[0, 4], [4, 8]]);
  assert.deepEqual(splitRows(5, 2), [[0, 3], [3, 5]]);
  assert.deepEqual(splitRows(7, 3), [[0, 3], [3, 5], [5, 7]]);
  assert.deepEqual(splitRows(1, 3), [[0, 1]]);
});

Deno.test("replicas: predictLogits split with a worker equals logits() bit for bit, also after the trainable tensors change", async () => {
  await useBackend("wasm");
  const clf = await tiny(1);
  try {
    const replicas = await classifierReplicas(clf);
    assert.equal(replicas?.size, 1);
    // enough images to be cut at the BLAS's row period (12 on OpenBLAS's Haswell kernels)
    const rows = 2 * rowAlignment() + 5;
    assert.equal(splitRows(rows, 2, rowAlignment()).length, 2, "the batch is split");
    const { pixels } = batch(rows);
    const x = tf.tensor4d(pixels, [rows, 3, 32, 32]) as Tensor4D;
    const compare = async () => {
      const before = tf.memory().numTensors;
      const split = await predictLogits(clf, x);
      const alone = clf.logits(x);
      assert.deepEqual(split.shape, [rows, clf.labels.length]);
      assert.deepEqual(await split.data(), await alone.data());
      tf.dispose([split, alone]);
      assert.equal(tf.memory().numTensors, before, "no tensor left behind");
    };
    await compare();
    // an optimizer step changes every trainable tensor: the replica must follow
    const vars = clf.trainableVariables();
    const adam = new AdamW(vars);
    const grads = tf.tidy(() =>
      Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, tf.onesLike(v)]))
    );
    adam.step(grads, 0.05);
    tf.dispose(Object.values(grads));
    adam.dispose();
    await compare();
    x.dispose();
  } finally {
    clf.dispose();
  }
});

Deno.test("replicas: batchGradients with a worker equals it without, bit for bit (dropout on, seeded), and the whole batch's within 1e-6", async () => {
  await useBackend("wasm");
  const split = await tiny(1);
  const alone = await tiny(0);
  const data = batch(5);
  try {
    assert.equal(await classifierReplicas(alone), undefined);
    const read = async ({ loss, grads }: { loss: Tensor; grads: Record<string, Tensor> }) => {
      const out: Record<string, Float32Array> = { "": (await loss.data()) as Float32Array };
      for (const [k, g] of Object.entries(grads)) out[k] = (await g.data()) as Float32Array;
      tf.dispose([loss, ...Object.values(grads)]);
      return out;
    };
    const options = { chunkSize: 2, training: true, dropoutSeed: 7 };
    const before = tf.memory().numTensors;
    const a = await read(await batchGradients(split, data, options));
    const b = await read(await batchGradients(alone, data, options));
    assert.equal(tf.memory().numTensors, before, "no tensor left behind");
    assert.deepEqual(Object.keys(a), Object.keys(b));
    for (const k of Object.keys(a)) assert.deepEqual(a[k], b[k], k);
    // a different dropout seed gives different gradients (the masks are really seeded)
    const c = await read(await batchGradients(alone, data, { ...options, dropoutSeed: 8 }));
    assert.notDeepEqual(c[""], b[""]);
    // without dropout, the chunks add up to the whole batch's gradients
    const x = tf.tensor4d(data.pixels, [5, 3, 32, 32]) as Tensor4D;
    const y = tf.tensor1d(data.labels, "int32") as Tensor1D;
    const whole = await read(alone.lossAndGradients(x, y));
    tf.dispose([x, y]);
    const chunked = await read(await batchGradients(split, data, { chunkSize: 2 }));
    for (const k of Object.keys(whole)) {
      const scale = Math.max(...whole[k].map(Math.abs));
      const worst = Math.max(...whole[k].map((v, i) => Math.abs(v - chunked[k][i])));
      assert.ok(worst <= 1e-6 * Math.max(scale, 1), `${k}: ${worst}`);
    }
  } finally {
    split.dispose();
    alone.dispose();
  }
});

Deno.test("replicas: a failure in a worker is a clear error; stopped when the classifier is disposed; none off wasm or for small models by default", async () => {
  await useBackend("wasm");
  const clf = await tiny(1);
  const replicas = (await classifierReplicas(clf))!;
  // 2 rows announced, pixels for 1: the worker's tfjs refuses the shape
  await assert.rejects(
    replicas.request(0, { type: "logits", pixels: new Float32Array(3072), rows: 2, size: 32 }),
    (e: Error) => e.name === "ViTLoraError" && /^a model replica failed: .*shape/.test(e.message),
  );
  // the replica still answers after a failed request
  const ok = await replicas.request(0, {
    type: "logits",
    pixels: new Float32Array(3072),
    rows: 1,
    size: 32,
  });
  assert.equal(ok.data?.length, clf.labels.length);
  clf.dispose();
  await new Promise((r) => setTimeout(r, 0));
  await assert.rejects(
    replicas.request(0, { type: "logits", pixels: new Float32Array(3072), rows: 1, size: 32 }),
    /closed/,
  );
  const small = await loadClassifier(`${dir}/model`, { backend: "wasm" });
  assert.equal(await classifierReplicas(small), undefined, "a tiny model gets none by default");
  small.dispose();
  await useBackend("cpu");
  const cpu = await loadClassifier(`${dir}/model`, { backend: "cpu", replicas: 1 });
  assert.equal(await classifierReplicas(cpu), undefined, "replicas are for the wasm backend");
  cpu.dispose();
});
