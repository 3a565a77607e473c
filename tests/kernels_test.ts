/** The fused kernels against the plain-op versions they replace, on every backend. */

import assert from "node:assert/strict";
import { gelu, layerNorm, type Tensor, tf } from "../mod.ts";
import { BACKENDS, relError, useBackend } from "./helpers.ts";

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
