/**
 * The CPU path's native BLAS (`src/backend/blas.ts`, OpenBLAS through Deno's FFI) and the wasm
 * kernels that use it: products equal the cpu backend's; every row of a product is the same
 * bit for bit whatever batch it came in (what the replicas' split relies on); without the
 * library, or without the permission to load it, one line says so and the products stay on
 * XNNPACK with the same results. Skipped (with a line saying why) where no OpenBLAS is
 * installed: CI installs it.
 */

import assert from "node:assert/strict";
import { blasStatus, ROW_STABLE_WORK } from "../../src/backend/blas.ts";
import { BLAS_MIN_MATRIX, blasProductCount } from "../../src/backend/wasm_kernels.ts";
import "../../src/backend/deno_platform.ts"; // the Deno side: OpenBLAS through the FFI
import { initBackend } from "../../src/backend/backend.ts";
import { type Tensor2D, tf } from "../../src/core/tf.ts";

const { blas, reason } = blasStatus();
const ignore = !blas;

// Without OpenBLAS the tests below cannot run: this one fails and says why, so that a local
// run is as loud about it as CI (which counts the ignored ones as failed too).
Deno.test("OpenBLAS loads here (the CPU path's products; CI installs libopenblas0-pthread)", () => {
  if (!blas) assert.fail(`OpenBLAS is not usable here: ${reason}`);
});

function random(length: number, seed: number): Float32Array<ArrayBuffer> {
  return Float32Array.from({ length }, (_, i) => Math.sin(i * 0.37 + seed) * 2);
}

Deno.test({
  name:
    "OpenBLAS: a row of a product is the same bit for bit whatever rows come with it at the same index modulo the row period (small products and tails padded)",
  ignore,
  fn() {
    const { sgemmRows, rowPeriod: p } = blas!;
    // rows at the same index modulo the period are computed alike (12 for the Haswell kernels)
    assert.ok(p <= 96, `row period ${p}`);
    // [n, k]: a tiny ViT's, ViT-B's (linear layers, LoRA, attention per head, a 101-class head)
    const shapes = [
      [7, 48],
      [48, 48],
      [192, 48],
      [4, 48],
      [48, 4],
      [101, 768],
      [768, 768],
      [
        32,
        768,
      ],
      [768, 32],
      [197, 64],
      [64, 197],
    ];
    for (const [n, k] of shapes) {
      for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]]) {
        const total = Math.max(5 * p + 40, Math.ceil(2 * ROW_STABLE_WORK / (n * k)));
        const a = random(total * k, n), b = random(k * n, k);
        const product = (first: number, m: number) => {
          // rows [first, first + m) of A, laid out as the product wants them
          const part = new Float32Array(m * k);
          for (let i = 0; i < m; i++) {
            for (let j = 0; j < k; j++) {
              part[transA ? j * m + i : i * k + j] = a[(first + i) * k + j];
            }
          }
          const bb = transB ? transpose(b, k, n) : b;
          const c = new Float32Array(m * n);
          sgemmRows(transA, transB, m, n, k, 1, part, transA ? m : k, bb, transB ? k : n, 0, c, n);
          return c;
        };
        const whole = product(0, total);
        const cuts = [[0, 1], [0, 3], [p, 5], [2 * p, 17], [5 * p, 34], [3 * p, total - 3 * p]];
        for (const [first, m] of cuts) {
          const got = product(first, m);
          for (let i = 0; i < m * n; i++) {
            if (got[i] !== whole[first * n + i]) {
              assert.fail(
                `[${n}, ${k}] ${transA}/${transB}: rows ${first}..${first + m} differ at ${i}`,
              );
            }
          }
        }
      }
    }
  },
});

function transpose(x: Float32Array<ArrayBuffer>, rows: number, cols: number) {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c];
  return out;
}

Deno.test({
  name:
    "wasm on OpenBLAS: transposed, batched, broadcast and fused (bias) products equal the cpu backend's",
  ignore,
  async fn() {
    // right-hand matrices of at least BLAS_MIN_MATRIX elements (smaller ones stay on XNNPACK)
    const cases: [number[], number[], boolean, boolean][] = [
      [[37, 96], [96, 100], false, false],
      [[37, 96], [100, 96], false, true],
      [[96, 37], [96, 100], true, false],
      [[96, 37], [100, 96], true, true],
      [[3, 11, 96], [3, 100, 96], false, true],
      [[3, 96, 11], [3, 96, 100], true, false],
      [[2, 3, 11, 96], [2, 3, 96, 100], false, false],
      [[2, 3, 11, 96], [96, 100], false, false],
      [[11, 96], [4, 96, 100], false, false],
      [[4, 96, 11], [100, 96], true, true],
      [[2, 1, 11, 96], [3, 96, 100], false, false],
      [[0, 96], [96, 100], false, false],
      [[300, 200], [200, 150], false, false],
    ];
    for (const [sa, sb, ta, tb] of cases) {
      assert.ok(sb.at(-1)! * sb.at(-2)! >= BLAS_MIN_MATRIX);
      const a = random(sa.reduce((x, y) => x * y, 1), 1);
      const b = random(sb.reduce((x, y) => x * y, 1), 2);
      const n = tb ? sb.at(-2)! : sb.at(-1)!;
      const bias = random(n, 3);
      const products = async () => {
        const [x, y, z] = [tf.tensor(a, sa), tf.tensor(b, sb), tf.tensor1d(bias)];
        const plain = tf.matMul(x, y, ta, tb);
        const fused = sb.length === 2
          ? tf.fused.matMul({
            a: x as Tensor2D,
            b: y as Tensor2D,
            transposeA: ta,
            transposeB: tb,
            bias: z,
          })
          : undefined;
        const out = [{ shape: plain.shape, data: await plain.data() }];
        if (fused) out.push({ shape: fused.shape, data: await fused.data() });
        tf.dispose([x, y, z, plain, fused!].filter(Boolean));
        return out;
      };
      await initBackend("cpu");
      const ref = await products();
      await initBackend("wasm");
      const before = tf.memory().numTensors;
      const calls = blasProductCount();
      const got = await products();
      const [ba, bb] = [sa.slice(0, -2), sb.slice(0, -2)];
      const count = (x: number[]) => x.reduce((p, q) => p * q, 1);
      const broadcast = count(ba) > 1 && count(bb) > 1 && ba.join() !== bb.join();
      if (!broadcast) assert.ok(blasProductCount() > calls, "the products ran on the BLAS");
      assert.equal(tf.memory().numTensors, before, "no tensor left behind");
      ref.forEach((r, j) => {
        assert.deepEqual(got[j].shape, r.shape);
        for (let i = 0; i < r.data.length; i++) {
          assert.ok(
            Math.abs(got[j].data[i] - r.data[i]) < 1e-4 * (1 + Math.abs(r.data[i])),
            `[${sa}]·[${sb}] ${ta}/${tb}${j ? " fused" : ""} at ${i}: ${got[j].data[i]} vs ${
              r.data[i]
            }`,
          );
        }
      });
    }
    await initBackend("cpu");
  },
});
