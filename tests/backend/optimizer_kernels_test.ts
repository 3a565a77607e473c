/**
 * The optimizer's WGSL kernels (`scaledAdd`, `globalNorm`, AdamW's update with clipping) against
 * the cpu backend's plain ops, and the late readback.
 */

import assert from "node:assert/strict";
import { startGpuCounting } from "../../src/backend/gpu_counters.ts";
import { globalNorm, scaledAdd } from "../../src/backend/optimizer_kernels.ts";
import { readAndDispose } from "../../src/backend/readback.ts";
import { type Tensor, tf, type Variable } from "../../src/core/tf.ts";
import { AdamW, clipByGlobalNorm } from "../../src/training/optimizer.ts";
import { BACKENDS, relError, useBackend } from "../helpers.ts";

/** Seeded values: a sine of the index, so both backends see the same numbers. */
function values(n: number, seed: number, amplitude = 1): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => amplitude * Math.sin(seed * 7.1 + i * 0.37));
}

const SHAPES = [[5], [48, 32], [101, 48], [1], [3, 300]];

/** A variable holding `t`'s values (`t` freed). */
function variable(t: Tensor): Variable {
  const v = tf.variable(t);
  t.dispose();
  return v;
}

Deno.test("on webgpu: scaledAdd and globalNorm equal the cpu backend's plain ops", async () => {
  const results: Record<string, Record<string, Float32Array>> = {};
  for (const backend of ["cpu", "webgpu"] as const) {
    await useBackend(backend);
    const ts = SHAPES.map((s, k) => tf.tensor(values(s.reduce((a, b) => a * b, 1), k, 3), s));
    const acc = tf.tensor(values(48 * 32, 9), [48, 32]);
    const norm = globalNorm(ts);
    const big = tf.tensor(values(101 * 768, 4), [101, 768]); // many strides a thread
    const bigNorm = globalNorm([big]);
    const added = scaledAdd(ts[1], 0.3, acc);
    const scaled = scaledAdd(ts[1], 0.3);
    const scalar = scaledAdd(tf.scalar(2), 0.5, tf.scalar(1));
    results[backend] = {
      norm: await norm.data() as Float32Array,
      bigNorm: await bigNorm.data() as Float32Array,
      added: await added.data() as Float32Array,
      scaled: await scaled.data() as Float32Array,
      scalar: await scalar.data() as Float32Array,
    };
    assert.deepEqual(norm.shape, []);
    assert.deepEqual(scalar.shape, []);
    tf.dispose([...ts, acc, norm, big, bigNorm, added, scaled, scalar]);
  }
  for (const key of Object.keys(results.cpu)) {
    const err = relError(results.webgpu[key], results.cpu[key]);
    assert.ok(err < 1e-6, `${key}: ${err}`);
  }
  assert.equal(results.webgpu.scalar[0], 2);
});

Deno.test("on webgpu: AdamW's fused update (weight decay, clipping) equals the cpu backend's over several steps", async () => {
  const results: Record<string, Float32Array[]> = {};
  for (const backend of ["cpu", "webgpu"] as const) {
    await useBackend(backend);
    const params = {
      "lora_A.weight": tf.variable(tf.tensor(values(8 * 48, 1), [8, 48])),
      "lora_B.weight": tf.variable(tf.tensor(values(48 * 8, 2, 0.1), [48, 8])),
      "classifier.bias": tf.variable(tf.tensor(values(101, 3), [101])),
    };
    const adam = new AdamW(params, { weightDecay: 0.05, noDecay: (k) => k.includes("bias") });
    // step 1 clipped (norm ≫ 1), step 2 not (norm < 1), step 3 without clipping
    for (const [step, amplitude] of [[1, 5], [2, 0.01], [3, 2]]) {
      const grads: Record<string, Tensor> = {};
      for (const [k, p] of Object.entries(params)) {
        grads[k] = tf.tensor(values(p.size, step * 10 + k.length, amplitude), p.shape);
      }
      if (step < 3) {
        const norm = globalNorm(Object.values(grads));
        adam.step(grads, 0.01 / step, { clip: { norm, maxNorm: 1 } });
        norm.dispose();
      } else adam.step(grads, 0.003);
      tf.dispose(Object.values(grads));
    }
    const state = await adam.state();
    results[backend] = [
      ...await Promise.all(Object.values(params).map(async (p) => await p.data() as Float32Array)),
      ...Object.values(state).map((t) => t.data),
    ];
    adam.dispose();
    tf.dispose(Object.values(params));
  }
  results.cpu.forEach((ref, i) => {
    const err = relError(results.webgpu[i], ref);
    assert.ok(err < 1e-5, `tensor ${i}: ${err}`);
  });
});

Deno.test("on webgpu: AdamW with a loss scale (unscaled, clipped; an overflow leaves all as it was) equals the cpu backend's, and the unscaled update", async () => {
  const results: Record<string, Float32Array[]> = {};
  for (const backend of ["cpu", "webgpu"] as const) {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    const params = {
      "lora_A.weight": variable(tf.tensor(values(8 * 48, 1), [8, 48])),
      "classifier.bias": variable(tf.tensor(values(101, 3), [101])),
    };
    const adam = new AdamW(params, { weightDecay: 0.05, noDecay: (k) => k.includes("bias") });
    const scale = tf.scalar(2 ** 12);
    const snapshots: Float32Array[] = [];
    // step 1 clipped, step 2 overflows (an infinity in one gradient), step 3 not clipped
    for (const [step, amplitude] of [[1, 5], [2, 1], [3, 0.01]]) {
      const grads: Record<string, Tensor> = {};
      for (const [k, p] of Object.entries(params)) {
        const v = values(p.size, step * 10 + k.length, amplitude).map((x) => x * 2 ** 12);
        if (step === 2 && k.includes("bias")) v[7] = Infinity;
        grads[k] = tf.tensor(v, p.shape);
      }
      const norm = globalNorm(Object.values(grads));
      adam.step(grads, 0.01, { clip: { norm, maxNorm: 1 }, lossScale: scale });
      tf.dispose([norm, ...Object.values(grads)]);
      for (const p of Object.values(params)) snapshots.push(await p.data() as Float32Array);
    }
    // the overflowing step changed nothing
    assert.deepEqual(snapshots[0], snapshots[2]);
    assert.deepEqual(snapshots[1], snapshots[3]);
    results[backend] = snapshots;
    adam.dispose();
    tf.dispose([scale, ...Object.values(params)]);
    assert.equal(tf.memory().numTensors, before);
  }
  results.cpu.forEach((ref, i) => {
    const err = relError(results.webgpu[i], ref);
    assert.ok(err < 1e-5, `tensor ${i}: ${err}`);
  });
  // the same as unscaled gradients without a scale (cpu): a power-of-two scale divides exactly
  await useBackend("cpu");
  const p = { w: tf.variable(tf.tensor1d(values(20, 1))) };
  const adam = new AdamW(p);
  const grad = { w: tf.tensor1d(values(20, 2, 4)) };
  const norm = globalNorm([grad.w]);
  adam.step(grad, 0.01, { clip: { norm, maxNorm: 1 } });
  const q = { w: tf.variable(tf.tensor1d(values(20, 1))) };
  const scaled = new AdamW(q);
  const scale = tf.scalar(2 ** 16);
  const sgrad = { w: grad.w.mul(scale) };
  const snorm = globalNorm([sgrad.w]);
  scaled.step(sgrad, 0.01, { clip: { norm: snorm, maxNorm: 1 }, lossScale: scale });
  assert.deepEqual(await q.w.data(), await p.w.data());
  adam.dispose();
  scaled.dispose();
  tf.dispose([p.w, q.w, grad.w, sgrad.w, norm, snorm, scale]);
});

Deno.test("AdamW's clip option equals clipByGlobalNorm's clipped gradients, on cpu bit for bit", async () => {
  await useBackend("cpu");
  const make = () => ({ w: tf.variable(tf.tensor1d(values(20, 1))) });
  const [a, b] = [make(), make()];
  const grad = { w: tf.tensor1d(values(20, 2, 4)) };
  const adamA = new AdamW(a), adamB = new AdamW(b);
  const clipped = clipByGlobalNorm(grad, 1);
  adamA.step(clipped.grads, 0.01);
  adamB.step(grad, 0.01, { clip: { norm: clipped.norm, maxNorm: 1 } });
  assert.deepEqual(await a.w.data(), await b.w.data());
  adamA.dispose();
  adamB.dispose();
  tf.dispose([a.w, b.w, grad.w, clipped.norm, ...Object.values(clipped.grads)]);
});

for (const backend of BACKENDS) {
  Deno.test(`on ${backend}: readAndDispose releases the tensor at once and reads it later`, async () => {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    // large enough for tfjs-webgpu to compute it on the GPU (small ops run on the CPU)
    const t = tf.tidy(() => tf.fill([2000], 1.5).add(tf.range(0, 2000)));
    const counter = backend === "webgpu" ? startGpuCounting() : undefined;
    let values: Float32Array, others: Float32Array;
    try {
      const pending = readAndDispose(t);
      assert.equal(tf.memory().numTensors, before, "disposed before the values arrive");
      assert.ok(t.isDisposed);
      // more work queued meanwhile, reusing the freed buffer
      const other = tf.tidy(() => tf.fill([2000], 7).mul(tf.ones([2000])));
      values = await pending;
      others = await readAndDispose(other);
    } finally {
      counter?.stop();
    }
    assert.equal(values.length, 2000);
    assert.ok(values.every((v, i) => v === 1.5 + i));
    assert.ok(others.every((v) => v === 7));
    assert.equal(tf.memory().numTensors, before);
    const counts = counter?.stop();
    if (counts) {
      assert.equal(counts.readbacks, 2, "one mapAsync a read");
      assert.equal(counts.tensorReads, 0, "no data() or dataSync()");
    }
  });
}
