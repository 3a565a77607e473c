/**
 * The fused kernels against the plain-op versions they replace, on every backend; dropout's
 * GPU-drawn masks by their properties.
 */

import assert from "node:assert/strict";
import { fusedAttention } from "../../src/backend/attention.ts";
import { dropout, dropoutKey, gelu, hash32, scale } from "../../src/backend/kernels.ts";
import { layerNorm } from "../../src/backend/layer_norm.ts";
import { type Tensor, type Tensor2D, tf } from "../../src/core/tf.ts";
import { BACKENDS, relError, useBackend } from "../helpers.ts";

const plainGelu = (t: Tensor) => t.mul(tf.erf(t.mul(Math.SQRT1_2)).add(1)).mul(0.5);

for (const backend of BACKENDS) {
  Deno.test(`on ${backend}: fused GELU and its gradient equal the plain ops`, async () => {
    await useBackend(backend);
    const x = tf.tidy(() =>
      tf.concat([tf.linspace(-8, 8, 1001), tf.randomNormal([4096], 0, 3, "float32", 7)])
    );
    const [y, ref] = [gelu(x), plainGelu(x)];
    const dy = tf.randomNormal(x.shape, 0, 1, "float32", 8);
    const g = tf.grad((t: Tensor) => gelu(t).mul(dy).sum())(x);
    const gRef = tf.grad((t: Tensor) => plainGelu(t).mul(dy).sum())(x);
    const forward = relError(await y.data(), await ref.data());
    const backward = relError(await g.data(), await gRef.data());
    assert.ok(forward < 1e-6, `forward: ${forward}`);
    assert.ok(backward < 1e-6, `gradient: ${backward}`);
    // the tape keeps x alone: no intermediate survives the pass
    const before = tf.memory().numTensors;
    const again = tf.grad((t: Tensor) => gelu(t).sum())(x);
    assert.equal(tf.memory().numTensors, before + 1);
    tf.dispose([x, y, ref, dy, g, gRef, again]);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`on ${backend}: fused LayerNorm and its input gradient equal the plain ops`, async () => {
    await useBackend(backend);
    for (const [rows, cols, eps] of [[394, 768, 1e-12], [37, 40, 1e-6], [5, 3, 1e-5]] as const) {
      const x = tf.randomNormal([rows, cols], 0.3, 2, "float32", 1);
      const gamma = tf.randomNormal([cols], 1, 0.2, "float32", 2);
      const beta = tf.randomNormal([cols], 0, 0.2, "float32", 3);
      const plain = (t: Tensor) => {
        const mean = tf.mean(t, -1, true);
        const c = t.sub(mean);
        return c.mul(tf.rsqrt(tf.mean(c.square(), -1, true).add(eps))).mul(gamma).add(beta);
      };
      const dy = tf.randomNormal([rows, cols], 0, 1, "float32", 4);
      const [y, ref] = [layerNorm(x, gamma, beta, eps), plain(x)];
      const g = tf.grad((t: Tensor) => layerNorm(t, gamma, beta, eps).mul(dy).sum())(x);
      const gRef = tf.grad((t: Tensor) => plain(t).mul(dy).sum())(x);
      const forward = relError(await y.data(), await ref.data());
      const backward = relError(await g.data(), await gRef.data());
      assert.ok(forward < 1e-5, `[${rows}, ${cols}] forward: ${forward}`);
      assert.ok(backward < 1e-5, `[${rows}, ${cols}] gradient: ${backward}`);
      tf.dispose([x, gamma, beta, dy, y, ref, g, gRef]);
    }
  });
}

Deno.test("on webgpu: fused attention and its gradients (Q, K, V) equal the plain ops", async () => {
  await useBackend("webgpu");
  // ViT-B's head size at a few tokens; a small head over more rows than a workgroup has
  for (const [batch, tokens, heads, d] of [[2, 17, 2, 64], [1, 70, 3, 16]]) {
    const h = heads * d;
    const [q, k, v, dy] = [1, 2, 3, 4].map((seed) =>
      tf.randomNormal([batch * tokens, h], 0, 1.5, "float32", seed) as Tensor2D
    );
    const plain = (qi: Tensor, ki: Tensor, vi: Tensor) => {
      const split = (y: Tensor) =>
        y.reshape([batch, tokens, heads, d]).transpose([0, 2, 1, 3]).reshape([
          batch * heads,
          tokens,
          d,
        ]);
      const probs = tf.softmax(tf.matMul(split(qi), split(ki), false, true).mul(1 / Math.sqrt(d)));
      return tf.matMul(probs, split(vi)).reshape([batch, heads, tokens, d])
        .transpose([0, 2, 1, 3]).reshape([batch * tokens, h]);
    };
    const fused = (qi: Tensor, ki: Tensor, vi: Tensor) =>
      fusedAttention(qi as Tensor2D, ki as Tensor2D, vi as Tensor2D, { heads, tokens });
    const [y, ref] = [fused(q, k, v), plain(q, k, v)];
    const forward = relError(await y.data(), await ref.data());
    assert.ok(forward < 1e-5, `[${batch}, ${tokens}, ${heads}, ${d}] forward: ${forward}`);
    const grads = tf.grads((a: Tensor, b: Tensor, c: Tensor) => fused(a, b, c).mul(dy).sum())([
      q,
      k,
      v,
    ]);
    const refs = tf.grads((a: Tensor, b: Tensor, c: Tensor) => plain(a, b, c).mul(dy).sum())([
      q,
      k,
      v,
    ]);
    for (const [i, name] of ["dQ", "dK", "dV"].entries()) {
      const err = relError(await grads[i].data(), await refs[i].data());
      assert.ok(err < 1e-5, `[${batch}, ${tokens}, ${heads}, ${d}] ${name}: ${err}`);
    }
    // the tape keeps q, k, v and the output: no [heads, tokens, tokens] tensor survives
    const before = tf.memory().numTensors;
    const again = tf.grads((a: Tensor, b: Tensor, c: Tensor) => fused(a, b, c).sum())([q, k, v]);
    assert.equal(tf.memory().numTensors, before + 3);
    tf.dispose([q, k, v, dy, y, ref, ...grads, ...refs, ...again]);
  }
});

Deno.test("on webgpu: dropout draws its mask on the GPU, the same for the same seed and draw; its gradient uses that mask; nothing is kept", async () => {
  await useBackend("webgpu");
  const rate = 0.25, keep = 1 - rate;
  const x = tf.randomNormal([300, 97], 1, 2, "float32", 5);
  const xs = await x.data();
  const mask = async (y: Tensor) => {
    const v = await y.data();
    return Array.from(v, (yi, i) => {
      if (yi === 0) return 0;
      assert.ok(Math.abs(yi - xs[i] / keep) <= 1e-6 * Math.abs(xs[i] / keep), `element ${i}`);
      return 1;
    });
  };
  const [a, b, c, d] = [
    dropout(x, rate, 42, 0),
    dropout(x, rate, 42, 0),
    dropout(x, rate, 42, 1),
    dropout(x, rate, 43, 0),
  ];
  const ma = await mask(a);
  const dropped = ma.filter((k) => k === 0).length / ma.length;
  assert.ok(Math.abs(dropped - rate) < 0.02, `dropped ${dropped}`);
  assert.deepEqual(await mask(b), ma, "same seed and draw: same mask");
  // the mask is the documented hash of the key and the index, bit for bit on any GPU
  const key = dropoutKey(42, 0);
  const host = ma.map((_, i) => ((hash32(hash32(i) ^ key) >>> 8) / 2 ** 24 >= rate ? 1 : 0));
  assert.deepEqual(ma, host, "the host's hash gives the GPU's mask");
  for (const [other, what] of [[c, "draw"], [d, "seed"]] as const) {
    const mo = await mask(other);
    const same = mo.filter((k, i) => k === ma[i]).length / ma.length;
    // independent masks agree on rate² + keep² of the elements
    assert.ok(Math.abs(same - (rate ** 2 + keep ** 2)) < 0.03, `another ${what}: ${same}`);
  }
  // the gradient is dy times the forward mask (and the factor), recomputed from the seed
  const dy = tf.randomNormal(x.shape, 0, 1, "float32", 6);
  const g = tf.grad((t: Tensor) => dropout(t, rate, 42, 0, 0.5).mul(dy).sum())(x);
  const [gv, dyv] = [await g.data(), await dy.data()];
  ma.forEach((k, i) => {
    const want = k ? dyv[i] * 0.5 / keep : 0;
    assert.ok(Math.abs(gv[i] - want) <= 1e-6 * Math.abs(want), `gradient ${i}`);
  });
  const before = tf.memory().numTensors;
  const again = tf.grad((t: Tensor) => dropout(t, rate, 42).sum())(x);
  assert.equal(tf.memory().numTensors, before + 1, "the tape keeps no mask");
  tf.dispose([x, a, b, c, d, dy, g, again]);
});

for (const backend of BACKENDS) {
  Deno.test(`on ${backend}: scale and its gradient equal x · w; dropout at rate 0 scales`, async () => {
    await useBackend(backend);
    const x = tf.randomNormal([5, 33], 0, 1, "float32", 9);
    const y = scale(x, 0.37);
    const ref = x.mul(0.37);
    assert.ok(relError(await y.data(), await ref.data()) < 1e-7);
    const dy = tf.randomNormal([5, 33], 0, 1, "float32", 10);
    const g = tf.grad((t: Tensor) => scale(t, 0.37).mul(dy).sum())(x);
    assert.ok(relError(await g.data(), await dy.mul(0.37).data()) < 1e-7);
    const z = dropout(x, 0, 1, 0, 2);
    assert.ok(relError(await z.data(), await x.mul(2).data()) < 1e-7);
    tf.dispose([x, y, ref, dy, g, z]);
  });
}

Deno.test("dropout's key: from the seed (all of its bits) and the draw", () => {
  assert.equal(hash32(0), 0);
  assert.equal(hash32(1), 0x688990c0, "lowbias32(1)");
  assert.notEqual(dropoutKey(42, 0), dropoutKey(42, 1));
  assert.notEqual(dropoutKey(42, 0), dropoutKey(43, 0));
  assert.notEqual(dropoutKey(2 ** 32 + 5), dropoutKey(5), "the high bits of a seed count");
  assert.equal(dropoutKey(7, 3), dropoutKey(7, 3));
});
