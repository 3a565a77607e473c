/**
 * The float16 kernels of `--precision fp16` (WebGPU with shader-f16; Mesa's lavapipe here)
 * against a host emulation of PyTorch's float16 arithmetic: inputs rounded to float16, products
 * accumulated in float32 (in the kernels' order: a float32 sum of exact float16 products, so
 * the emulation is bit for bit), results rounded to float16 (to nearest even, ±∞ past 65504).
 */

import assert from "node:assert/strict";
import { webgpuInfo } from "../../src/backend/backend.ts";
import {
  HalfTensor,
  packHalf,
  packHalvesHost,
  roundHalf,
  toHalf,
  unpackHalvesHost,
} from "../../src/backend/half.ts";
import { float16Bits, float16Value } from "../../src/core/float16.ts";
import { gemm16, type GemmSpec, setGemmBindingLimit } from "../../src/backend/gemm16.ts";
import { attention16, attention16Grad } from "../../src/backend/attention16.ts";
import { dropoutKey, hash32 } from "../../src/backend/kernels.ts";
import { type Tensor, tf } from "../../src/core/tf.ts";
import { useBackend } from "../helpers.ts";

const fr = Math.fround;

/** Deterministic pseudo-random values (a sine hash), `scale` wide. */
function values(n: number, seed: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => {
    const x = Math.sin(i * 12.9898 + seed * 78.233) * 43758.5453;
    return fr((x - Math.floor(x) - 0.5) * 2 * scale);
  });
}

/** Float32 values packed as a float16 tensor (the float32 tensor freed). */
function half(data: Float32Array, shape: number[]): HalfTensor {
  const t = tf.tensor(data, shape);
  const h = packHalf(t);
  t.dispose();
  return h;
}

async function halfValues(h: HalfTensor): Promise<Float32Array> {
  return unpackHalvesHost(await h.packed.data() as Int32Array, h.size);
}

/** The host's `keep` (the kernels' dropout draw). */
function keep(index: number, key: number, rate: number): boolean {
  return (hash32(hash32(index) ^ key) >>> 8) / 2 ** 24 >= rate;
}

Deno.test("float16 rounding on the host: to nearest even, ±∞ from 65520, subnormals, NaN", () => {
  const cases: [number, number][] = [
    [1, 0x3c00],
    [1 + 2 ** -11, 0x3c00], // a tie: to even
    [1 + 3 * 2 ** -11, 0x3c02],
    [65504, 0x7bff],
    [65519.99, 0x7bff],
    [65520, 0x7c00],
    [-1e6, 0xfc00],
    [2 ** -24, 0x0001],
    [2 ** -25, 0x0000], // a tie at the smallest subnormal: to even (zero)
    [3 * 2 ** -25, 0x0002],
    [2 ** -14, 0x0400],
    [-0, 0x8000],
    [Infinity, 0x7c00],
    [NaN, 0x7e00],
  ];
  for (const [x, bits] of cases) {
    assert.equal(float16Bits(x), bits, `float16Bits(${x})`);
    if (!Number.isNaN(x)) assert.equal(float16Value(bits), toHalf(x));
  }
  const xs = values(1001, 3, 70000);
  const back = unpackHalvesHost(packHalvesHost(xs), xs.length);
  xs.forEach((x, i) => assert.equal(back[i], toHalf(x)));
});

Deno.test("on webgpu: the device offers f16, and packing, unpacking and rounding equal the host's", async () => {
  await useBackend("webgpu");
  assert.equal(webgpuInfo()?.f16, true, "lavapipe offers shader-f16");
  const special = [1 + 2 ** -11, 65520, -65519, 2 ** -25, 3 * 2 ** -25, 1e-9, NaN, -Infinity];
  const xs = Float32Array.from([...values(1001, 4, 9), ...special, ...values(300, 5, 1e5)]);
  const x = tf.tensor1d(xs);
  const h = packHalf(x);
  assert.deepEqual(await h.packed.data(), packHalvesHost(xs), "the same words as the host's");
  const [unpacked, rounded] = [h.unpack(), roundHalf(x)];
  const want = Float32Array.from(xs, toHalf);
  assert.deepEqual(await unpacked.data(), want);
  assert.deepEqual(await rounded.data(), want);
  tf.dispose([x, unpacked, rounded]);
  h.dispose();
});

/** A host operand: logical [rows, cols] values, with the read's transforms. */
interface HostOperand {
  read(r: number, c: number): number;
}

function hostOperand(
  data: ArrayLike<number>,
  cols: number,
  o: {
    trans?: boolean;
    ld?: number;
    offset?: number;
    drop?: { key: number; rate: number };
    scale?: number;
  } = {},
): HostOperand {
  const ld = o.ld ?? cols;
  return {
    read(r, c) {
      const e = (o.offset ?? 0) + (o.trans ? c * ld + r : r * ld + c);
      let v = toHalf(data[e]);
      if (o.drop) {
        if (!keep(e, o.drop.key, o.drop.rate)) return 0;
        v = toHalf(v * fr(1 / (1 - o.drop.rate)));
      }
      if (o.scale !== undefined) v = toHalf(v * fr(o.scale));
      return v;
    },
  };
}

/** The kernel's arithmetic on the host, in its order. */
function hostGemm(
  a: HostOperand,
  b: HostOperand,
  m: number,
  k: number,
  n: number,
  epilogue: (acc: number, i: number, j: number) => number = (acc) => toHalf(acc),
): Float32Array {
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let q = 0; q < k; q++) acc = fr(acc + a.read(i, q) * b.read(q, j));
      out[i * n + j] = epilogue(acc, i, j);
    }
  }
  return out;
}

function assertSame(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let worst = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= worst) && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) {
      worst = Number.isNaN(d) ? Infinity : d;
      at = i;
    }
  }
  assert.equal(worst, 0, `${what}: element ${at}: ${got[at]} ≠ ${want[at]}`);
}

Deno.test("on webgpu: float16 products equal the host's emulation bit for bit (layouts, blocks, windows, dropout, scale, epilogues)", async () => {
  await useBackend("webgpu");
  const before = tf.memory().numTensors;
  // shapes that leave partial tiles
  const [m, k, n] = [70, 37, 66];
  const aData = values(m * k, 1, 3), bData = values(k * n, 2, 0.5);
  const bias = values(n, 3, 0.3);
  const a = tf.tensor2d(aData, [m, k]);
  const aHalf = packHalf(a);
  const bT = tf.tensor2d(
    Float32Array.from({ length: n * k }, (_, i) => bData[(i % k) * n + Math.floor(i / k)]),
    [n, k],
  );
  const bHalf = half(bData, [k, n]);
  const biasT = tf.tensor1d(bias);
  const drop = { key: dropoutKey(7, 1), rate: 0.3 };
  const cases: { what: string; spec: GemmSpec; want: Float32Array }[] = [
    {
      what: "float32 A (rounded as read) · float16 B + bias, float32 out",
      spec: { a: { t: a }, b: { t: bHalf }, m, k, n, bias: biasT },
      want: hostGemm(
        hostOperand(aData, k),
        hostOperand(bData, n),
        m,
        k,
        n,
        (acc, _i, j) => toHalf(fr(acc + toHalf(bias[j]))),
      ),
    },
    {
      what: "float16 A · float32 Bᵀ (stored [N, K]), packed out",
      spec: { a: { t: aHalf }, b: { t: bT, trans: true }, m, k, n, out: "half" },
      want: hostGemm(hostOperand(aData, k), hostOperand(bData, n), m, k, n),
    },
    {
      what: "Aᵀ stored [K, M] with dropout and a scale as it is read",
      spec: {
        a: {
          t: tf.tensor2d(
            Float32Array.from({ length: m * k }, (_, i) => aData[(i % m) * k + Math.floor(i / m)]),
            [k, m],
          ),
          trans: true,
          drop,
          scale: 0.37,
        },
        b: { t: bHalf },
        m,
        k,
        n,
      },
      want: (() => {
        const stored = Float32Array.from(
          { length: m * k },
          (_, i) => aData[(i % m) * k + Math.floor(i / m)],
        );
        return hostGemm(
          hostOperand(stored, m, { trans: true, ld: m, drop, scale: 0.37 }),
          hostOperand(bData, n),
          m,
          k,
          n,
        );
      })(),
    },
  ];
  for (const { what, spec, want } of cases) {
    const out = gemm16(spec);
    const got = out instanceof HalfTensor ? await halfValues(out) : await out.data();
    assertSame(got, want, what);
    out.dispose();
    if (spec.a.t instanceof tf.Tensor && spec.a.t !== a) spec.a.t.dispose();
  }
  tf.dispose([a, bT, biasT]);
  aHalf.dispose();
  bHalf.dispose();
  assert.equal(tf.memory().numTensors, before, "no tensor left behind");
});

for (const limit of [undefined, 4]) {
  Deno.test(`on webgpu: the fused query/key/value product with LoRA terms inside, and a residual with dropout and an outside term${limit ? ` (terms as kernels of their own: ${limit} bindings)` : ""}`, async () => {
    await useBackend("webgpu");
    setGemmBindingLimit(limit);
    try {
      await fusedProducts();
    } finally {
      setGemmBindingLimit(undefined);
    }
  });
}

async function fusedProducts(): Promise<void> {
  const before = tf.memory().numTensors;
  const [m, h, r] = [45, 24, 3];
  const x = values(m * h, 11, 2);
  const w = values(h * 3 * h, 12, 0.4); // [in, 3·out]: query, key, value side by side
  const bias = values(3 * h, 15, 0.2);
  const down = [18, 22].map((s) => Float32Array.from(values(m * r, s, 1), toHalf));
  const loraB = [19, 23].map((s) => values(h * r, s, 0.5)); // [out, r]
  const xT = tf.tensor2d(x, [m, h]);
  const wHalf = half(w, [h, 3 * h]);
  const biasT = tf.tensor1d(bias);
  const downT = down.map((d) => tf.tensor2d(d, [m, r]));
  const loraBT = loraB.map((b) => tf.tensor2d(b, [h, r]));
  // LoRA on the query (block 0, scaling 2) and the value (block 2, scaling 1.5)
  const windows: [number, number][] = [[0, h], [2 * h, 3 * h]];
  const scales = [2, 1.5];
  const out = gemm16({
    a: { t: xT },
    b: { t: wHalf },
    m,
    k: h,
    n: 3 * h,
    bias: biasT,
    terms: [0, 1].map((t) => ({
      d: { t: downT[t] },
      e: { t: loraBT[t], trans: true, window: windows[t] },
      rank: r,
      place: "inside" as const,
      scale: scales[t],
    })),
    out: "half",
  }) as HalfTensor;
  const xa = hostOperand(x, h);
  const want = new Float32Array(m * 3 * h);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < 3 * h; j++) {
      let acc = 0;
      for (let q = 0; q < h; q++) acc = fr(acc + xa.read(i, q) * toHalf(w[q * 3 * h + j]));
      let v = toHalf(fr(acc + toHalf(bias[j])));
      for (const t of [0, 1]) {
        const [lo, hi] = windows[t];
        let s = 0;
        if (j >= lo && j < hi) {
          for (let q = 0; q < r; q++) {
            s = fr(s + down[t][i * r + q] * toHalf(loraB[t][(j - lo) * r + q]));
          }
        }
        v = toHalf(fr(v + toHalf(fr(toHalf(s) * scales[t]))));
      }
      want[i * 3 * h + j] = v;
    }
  }
  assertSame(await halfValues(out), want, "fused QKV with LoRA");
  // h + dropout(r16(y W)) in float32 (y the key block, times 0.5 as read), with an outside
  // term masked by its own dropout (a float32 input's gradient)
  const res = values(m * h, 20, 1);
  const resT = tf.tensor2d(res, [m, h]);
  const drop = { key: dropoutKey(3, 0), rate: 0.25 }, dropT = { key: dropoutKey(3, 1), rate: 0.1 };
  const loraA = values(r * h, 21, 0.5); // [r, in]
  const loraAT = tf.tensor2d(loraA, [r, h]);
  const wq = half(
    Float32Array.from({ length: h * h }, (_, i) => w[Math.floor(i / h) * 3 * h + (i % h)]),
    [h, h],
  );
  const spec = {
    a: { t: out, ld: 3 * h, offset: h, scale: 0.5 },
    b: { t: wq, trans: true }, // the query weight [in, out] read as [out, in]: y W
    m,
    k: h,
    n: h,
    terms: [{
      d: { t: downT[0] },
      e: { t: loraAT },
      rank: r,
      place: "outside" as const,
      drop: dropT,
    }],
  };
  const ya = hostOperand(want, h, { ld: 3 * h, offset: h, scale: 0.5 });
  const wantY = new Float32Array(m * h), wantZ = new Float32Array(m * h);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < h; j++) {
      let acc = 0;
      for (let q = 0; q < h; q++) acc = fr(acc + ya.read(i, q) * toHalf(w[j * 3 * h + q]));
      const e = i * h + j;
      const v = toHalf(acc);
      wantY[e] = fr(res[e] + (keep(e, drop.key, drop.rate) ? toHalf(fr(v * fr(1 / 0.75))) : 0));
      let t = 0;
      for (let q = 0; q < r; q++) t = fr(t + down[0][i * r + q] * toHalf(loraA[q * h + j]));
      wantZ[e] = fr(v + (keep(e, dropT.key, dropT.rate) ? fr(toHalf(t) * fr(1 / 0.9)) : 0));
    }
  }
  const y = gemm16({ ...spec, terms: [], residual: { t: resT, drop } }) as Tensor;
  assertSame(await y.data(), wantY, "residual with dropout");
  const z = gemm16(spec) as Tensor;
  assertSame(await z.data(), wantZ, "an outside term with dropout");
  tf.dispose([xT, biasT, ...downT, ...loraBT, resT, loraAT, y, z]);
  for (const t of [wHalf, wq, out]) t.dispose();
  assert.equal(tf.memory().numTensors, before, "no tensor left behind");
}

Deno.test("on webgpu: float16 attention and its gradients equal float32 attention on the same float16 values", async () => {
  await useBackend("webgpu");
  const before = tf.memory().numTensors;
  for (const [batch, tokens, heads, d] of [[2, 17, 2, 16], [1, 70, 3, 8]]) {
    const h = heads * d, rows = batch * tokens;
    const qkv = Float32Array.from(values(rows * 3 * h, batch + tokens, 1.5), toHalf);
    const dy = Float32Array.from(values(rows * h, 9, 1), toHalf);
    const qkvH = half(qkv, [rows, 3 * h]);
    const dyH = half(dy, [rows, h]);
    const ctx = attention16(qkvH, { heads, tokens });
    const grad = attention16Grad(qkvH, ctx, dyH, { heads, tokens });
    // float32 reference on the same (float16) values, by plain ops on the cpu-equivalent path
    const [q, k, v] = tf.tidy(() => tf.split(tf.tensor2d(qkv, [rows, 3 * h]), 3, 1));
    const split = (t: Tensor) =>
      t.reshape([batch, tokens, heads, d]).transpose([0, 2, 1, 3]).reshape([
        batch * heads,
        tokens,
        d,
      ]);
    const plain = (qi: Tensor, ki: Tensor, vi: Tensor) =>
      tf.matMul(
        tf.softmax(tf.matMul(split(qi), split(ki), false, true).mul(1 / Math.sqrt(d))),
        split(vi),
      )
        .reshape([batch, heads, tokens, d]).transpose([0, 2, 1, 3]).reshape([rows, h]);
    const dyT = tf.tensor2d(dy, [rows, h]);
    const [ref, refGrad] = tf.tidy(() => {
      const refs = tf.grads((a: Tensor, b: Tensor, c: Tensor) => plain(a, b, c).mul(dyT).sum())([
        q,
        k,
        v,
      ]);
      return [plain(q, k, v), tf.concat(refs, 1)];
    });
    // each output is the float32 value rounded once to float16: within half a float16 step
    // (2⁻¹¹ relative) of the float32 result. The context sums float16-rounded probabilities
    // (as PyTorch's kernels do): Σⱼ |δPᵢⱼ||Vⱼ| ≤ 2⁻¹¹ max|V| more. The gradients' row statistic Dᵢ = dOᵢ·Oᵢ reads the
    // float16 context (as FlashAttention and PyTorch's kernels do), which moves each
    // dSᵢⱼ = Pᵢⱼ(dOᵢ·Vⱼ − Dᵢ) by up to Pᵢⱼ·|dOᵢ||Oᵢ|·2⁻¹¹; summed over the keys (Σⱼ Pᵢⱼ = 1) that
    // is within a float16 step (2⁻¹⁰) of the gradients' largest value
    const [c, cr] = [await halfValues(ctx), await ref.data()];
    const [g, gr] = [await halfValues(grad), await refGrad.data()];
    const scale = (xs: ArrayLike<number>) => Math.max(...Array.from(xs, Math.abs));
    const limits = { context: 2 ** -11 * scale(qkv), dQKV: 2 ** -10 * scale(gr) };
    for (const [got, want, what] of [[c, cr, "context"], [g, gr, "dQKV"]] as const) {
      for (let i = 0; i < want.length; i++) {
        const err = Math.abs(got[i] - want[i]);
        assert.ok(
          err <= Math.abs(want[i]) * 2 ** -11 + limits[what],
          `${what} [${batch}, ${tokens}, ${heads}, ${d}] ${i}: ${got[i]} vs ${want[i]}`,
        );
      }
    }
    tf.dispose([q, k, v, ref, dyT, refGrad]);
    for (const t of [qkvH, dyH, ctx, grad]) t.dispose();
  }
  assert.equal(tf.memory().numTensors, before, "no tensor left behind");
});
