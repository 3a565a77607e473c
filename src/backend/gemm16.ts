/**
 * The matrix products of `--precision fp16` as one WGSL kernel family: `C = A B` with float16
 * inputs and float32 accumulation, the result rounded to float16 (what cuBLAS does for a float16
 * product under autocast; PyTorch's CPU kernels too). Operands are read as they are stored:
 * float16 tensors packed ({@link HalfTensor}), float32 tensors rounded to float16 as they are
 * read (autocast's casts of float32 inputs: LayerNorm's output, LoRA's weights, a float32
 * gradient), either transposed or a column window of a wider tensor (the fused query/key/value
 * projection's output, `[rows, 3·hidden]`, read a projection at a time). A read can apply a dropout mask (drawn from its key and the element's index, as
 * `dropout` draws it) and a scale, each followed by a rounding to float16, so that a product
 * reads `dropout(x)` or `s · dy` without a tensor made for them.
 *
 * The epilogue adds, in float16 arithmetic as PyTorch does: a bias; low-rank terms `D E`
 * (LoRA's `B A x` branch, each its own float32 accumulator over tiles, as a product of its own
 * would, then its scaling or its dropout's gradient), either inside the float16 result (a sum of
 * float16 tensors) or after it in float32 (a float32 tensor's gradient, summed over its uses);
 * and a residual in float32 (`h + dropout(y)`).
 *
 * Tiles of 64×64 outputs a workgroup of 16×16 invocations (4×4 each), the shared `K` tiles
 * (16 deep) held as `f16`. A product reads up to 10 tensors; where the device allows fewer a
 * shader (WebGPU's default is 8), its terms run as kernels of their own after it.
 *
 * @module
 */

import type { TensorInfo } from "@tensorflow/tfjs";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import { type Tensor, tf } from "../core/tf.ts";
import { HALF_WGSL, halfReader, HalfTensor } from "./half.ts";
import { KEEP_WGSL } from "./programs.ts";
import { VitLoraError } from "../core/errors.ts";

/** A dropout mask read with an operand (or applied to a term). */
export interface GemmDropout {
  /** The mask's key (see `dropoutKey`). */
  key: number;
  /** The rate. */
  rate: number;
}

/** One operand of a product: a logical `[rows, cols]` matrix and how it is stored. */
export interface GemmOperand {
  /** The tensor: float32, or float16 packed. */
  t: Tensor | HalfTensor;
  /** Stored transposed: element `(r, c)` is at `c · ld + r`. */
  trans?: boolean;
  /** The storage's row length (default: the stored tensor's last dimension). */
  ld?: number;
  /** The first element's index in the storage (a column window of a wider tensor). */
  offset?: number;
  /** Only logical columns in `[lo, hi)` are read (the rest are zeros), re-based at `lo`. */
  window?: [number, number];
  /** Dropout on the value read, its mask by the element's storage index. */
  drop?: GemmDropout;
  /** A factor on the value read (after the dropout). */
  scale?: number;
}

/** A low-rank term `D E` of the epilogue (`D` `[M, r]`, `E` `[r, N]`). */
export interface GemmTerm {
  /** `D`, `[M, r]`. */
  d: GemmOperand;
  /** `E`, `[r, N]`. */
  e: GemmOperand;
  /** `r`. */
  rank: number;
  /** `inside`: added to the float16 result; `outside`: added to it in float32. */
  place: "inside" | "outside";
  /** A factor on the rounded product (LoRA's scaling). */
  scale?: number;
  /** The gradient of a dropout: masked by output element `(m·N + n)`, divided by `1 − rate`. */
  drop?: GemmDropout;
}

/** A product `A B` (`A` `[M, K]`, `B` `[K, N]`) and its epilogue. */
export interface GemmSpec {
  a: GemmOperand;
  b: GemmOperand;
  /** `M`, `K`, `N`. */
  m: number;
  k: number;
  n: number;
  /** A float32 bias `[N]`. */
  bias?: Tensor;
  /** Low-rank terms. */
  terms?: GemmTerm[];
  /** `residual + dropout(result)` in float32 (`residual` `[M, N]`, float32). */
  residual?: { t: Tensor; drop?: GemmDropout };
  /** `half`: a packed float16 result (`N` even); `f32` (default): float32. */
  out?: "half" | "f32";
  /**
   * The product is a term (its `scale`, `drop`, `place`) of `base` (`[M, N]`, float16 or
   * float32): the result is `base` with it added, as a term of the epilogue would be. For the
   * terms a product runs after it (see the module's notes).
   */
  base?: { t: Tensor | HalfTensor; term: Omit<GemmTerm, "d" | "e" | "rank"> };
}

const TILE = 64, DEPTH = 16;

interface Bound {
  name: string;
  tensor: TensorInfo;
  half: boolean;
}

/** Declares an operand's tensor as a program input and writes its loader, `fn <fn>(r, c)`. */
function loader(
  fn: string,
  op: GemmOperand,
  rows: string,
  cols: string,
  inputs: Bound[],
  uniforms: string[],
): string {
  const name = input(op.t, inputs);
  const half = op.t instanceof HalfTensor;
  const shape = op.t.shape;
  const ld = op.ld ?? shape[shape.length - 1];
  let transform = "";
  if (op.drop) {
    uniforms.push(`${fn}Key : u32,`);
    transform += `
      if (!keep(u32(e), uniforms.${fn}Key, ${f(op.drop.rate)})) { return 0.0; }
      v = r16(v * ${f(1 / (1 - op.drop.rate))});`;
  }
  if (op.scale !== undefined) transform += `\n      v = r16(v * ${f(op.scale)});`;
  const [lo, hi] = op.window ?? [0, 0];
  return `
    fn ${fn}(r : i32, c : i32) -> f32 {
      if (r >= ${rows} || c >= ${cols}) { return 0.0; }
      var cc = c;${
    op.window ? `\n      if (c < ${lo} || c >= ${hi}) { return 0.0; }\n      cc = c - ${lo};` : ""
  }
      let e = ${op.offset ?? 0} + ${op.trans ? `cc * ${ld} + r` : `r * ${ld} + cc`};
      var v = ${half ? `${name}_h(e)` : `r16(${name}[e])`};${transform}
      return v;
    }`;
}

/** Declares a tensor as the program's next input; its name. */
function input(t: Tensor | HalfTensor, inputs: Bound[]): string {
  const name = `I${inputs.length}`;
  const half = t instanceof HalfTensor;
  inputs.push({ name, tensor: half ? t.packed : t, half });
  return name;
}

/** A float literal for WGSL. */
function f(x: number): string {
  const s = String(Math.fround(x));
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/**
 * WGSL: term `i`'s value at output `(m, n)` from its accumulator, in `t<i>`: rounded to
 * float16, scaled, its dropout's gradient applied.
 */
function termCode(t: Omit<GemmTerm, "d" | "e" | "rank">, i: number, acc: string): string {
  let code = `var t${i} = r16(${acc});`;
  if (t.scale !== undefined) code += ` t${i} = r16(t${i} * ${f(t.scale)});`;
  if (t.drop) {
    const inv = f(1 / (1 - t.drop.rate));
    code += `
          if (!keep(u32(m * uniforms.N + n), uniforms.dropT${i}, ${
      f(t.drop.rate)
    })) { t${i} = 0.0; }
          else { t${i} = ${t.place === "inside" ? `r16(t${i} * ${inv})` : `t${i} * ${inv}`}; }`;
  }
  return t.place === "inside" ? `{ ${code} v = r16(v + t${i}); }` : `{ ${code} v += t${i}; }`;
}

/** The program of one {@link GemmSpec}. */
class Gemm16Program implements WebGPUProgram {
  variableNames: string[];
  uniforms: string;
  workgroupSize: [number, number, number] = [16, 16, 1];
  outputShape: number[];
  dispatchLayout: { x: number[]; y: number[] };
  dispatch: [number, number, number];
  shaderKey: string;
  readonly inputs: Bound[] = [];
  readonly keys: number[] = [];
  #code: string;

  constructor(spec: GemmSpec) {
    const uniforms: string[] = ["M : i32, N : i32, K : i32,"];
    const { inputs, keys } = this;
    const terms = spec.terms ?? [];
    const loaders = [
      loader("loadA", spec.a, "uniforms.M", "uniforms.K", inputs, uniforms),
      loader("loadB", spec.b, "uniforms.K", "uniforms.N", inputs, uniforms),
      ...terms.flatMap((t, i) => [
        loader(`loadD${i}`, t.d, "uniforms.M", `${t.rank}`, inputs, uniforms),
        loader(`loadE${i}`, t.e, `${t.rank}`, "uniforms.N", inputs, uniforms),
      ]),
    ];
    for (const op of [spec.a, spec.b, ...terms.flatMap((t) => [t.d, t.e])]) {
      if (op.drop) keys.push(op.drop.key);
    }
    const phase = (acc: string, a: string, b: string, depth: string) => `
      for (var k0 = 0; k0 < ${depth}; k0 += ${DEPTH}) {
        for (var q = 0; q < ${(TILE * DEPTH) / 256}; q++) {
          let i = tid + q * 256;
          tileA[i] = f16(${a}(m0 + i / ${DEPTH}, k0 + i % ${DEPTH}));
          tileB[i] = f16(${b}(k0 + i / ${TILE}, n0 + i % ${TILE}));
        }
        workgroupBarrier();
        for (var k = 0; k < ${DEPTH}; k++) {
          let bk = k * ${TILE} + tx * 4;
          let b = vec4<f32>(f32(tileB[bk]), f32(tileB[bk + 1]), f32(tileB[bk + 2]), f32(tileB[bk + 3]));
          for (var i = 0; i < 4; i++) { ${acc}[i] += f32(tileA[(ty * 4 + i) * ${DEPTH} + k]) * b; }
        }
        workgroupBarrier();
      }`;
    // the epilogue, in PyTorch's order: bias, float16 result, float16 sums, residual, float32 sums
    const epilogue: string[] = [];
    if (spec.base) {
      const base = input(spec.base.t, inputs);
      const read = spec.base.t instanceof HalfTensor
        ? `${base}_h(m * uniforms.N + n)`
        : `${base}[m * uniforms.N + n]`;
      epilogue.push(`let product = v;\n          v = ${read};`);
      epilogue.push(termCode(spec.base.term, 0, "product"));
      if (spec.base.term.drop) {
        uniforms.push("dropT0 : u32,");
        keys.push(spec.base.term.drop.key);
      }
    } else {
      if (spec.bias) epilogue.push(`v += r16(${input(spec.bias, inputs)}[n]);`);
      epilogue.push("v = r16(v);");
    }
    terms.forEach((t, i) => {
      if (t.drop) {
        uniforms.push(`dropT${i} : u32,`);
        keys.push(t.drop.key);
      }
    });
    const inside = terms.map((t, i) =>
      t.place === "inside" ? termCode(t, i, `acc${i + 1}[i][j]`) : ""
    );
    const outside = terms.map((t, i) =>
      t.place === "outside" ? termCode(t, i, `acc${i + 1}[i][j]`) : ""
    );
    epilogue.push(...inside);
    if (spec.residual) {
      const res = `${input(spec.residual.t, inputs)}[m * uniforms.N + n]`;
      if (spec.residual.drop) {
        uniforms.push("dropR : u32,");
        keys.push(spec.residual.drop.key);
        const { rate } = spec.residual.drop;
        epilogue.push(
          `v = ${res} + select(0.0, r16(v * ${
            f(1 / (1 - rate))
          }), keep(u32(m * uniforms.N + n), uniforms.dropR, ${f(rate)}));`,
        );
      } else {
        epilogue.push(`v = ${res} + v;`);
      }
    }
    epilogue.push(...outside);
    const half = spec.out === "half";
    const store = half
      ? `for (var j = 0; j < 4; j += 2) {
          let n = n0 + tx * 4 + j;
          if (n < uniforms.N) { setOutputAtIndexI32((m * uniforms.N + n) / 2, packHalves(out[j], out[j + 1])); }
        }`
      : `for (var j = 0; j < 4; j++) {
          let n = n0 + tx * 4 + j;
          if (n < uniforms.N) { setOutputAtIndex(m * uniforms.N + n, out[j]); }
        }`;
    this.variableNames = inputs.map((i) => i.name);
    this.uniforms = uniforms.join(" ");
    this.outputShape = half ? [(spec.m * spec.n) / 2] : [spec.m, spec.n];
    this.dispatchLayout = { x: [0], y: [1] }; // not flat: main() takes no index
    this.dispatch = [Math.ceil(spec.n / TILE), Math.ceil(spec.m / TILE), 1];
    this.#code = `
    enable f16;
    ${HALF_WGSL}
    ${keys.length > 0 ? KEEP_WGSL : ""}
    ${inputs.filter((i) => i.half).map((i) => halfReader(i.name)).join("")}
    ${loaders.join("")}
    var<workgroup> tileA : array<f16, ${TILE * DEPTH}>;
    var<workgroup> tileB : array<f16, ${TILE * DEPTH}>;
    fn main() {
      let tx = i32(localId.x);
      let ty = i32(localId.y);
      let tid = ty * 16 + tx;
      let m0 = i32(workgroupId.y) * ${TILE};
      let n0 = i32(workgroupId.x) * ${TILE};
      ${
      [0, ...terms.map((_, i) => i + 1)].map((a) => `var acc${a} : array<vec4<f32>, 4>;`).join(
        "\n      ",
      )
    }
      ${phase("acc0", "loadA", "loadB", "uniforms.K")}
      ${terms.map((t, i) => phase(`acc${i + 1}`, `loadD${i}`, `loadE${i}`, `${t.rank}`)).join("")}
      for (var i = 0; i < 4; i++) {
        let m = m0 + ty * 4 + i;
        if (m >= uniforms.M) { continue; }
        var out : array<f32, 4>;
        for (var j = 0; j < 4; j++) {
          let n = min(n0 + tx * 4 + j, uniforms.N - 1);
          var v = acc0[i][j];
          ${epilogue.filter((e) => e).join("\n          ")}
          out[j] = v;
        }
        ${store}
      }
    }`;
    this.shaderKey = `vit_lora_Gemm16_${hashCode(this.#code)}`;
  }

  getUserCode(): string {
    return this.#code;
  }
}

/** A short hash of a shader's code, for its pipeline's cache key. */
function hashCode(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(36) + text.length.toString(36);
}

/** The storage buffers a shader may bind (tests lower it to exercise the split). */
let bindingLimit: number | undefined;

/** Sets the storage buffers a product may bind (undefined: the device's limit). For tests. */
export function setGemmBindingLimit(limit: number | undefined): void {
  bindingLimit = limit;
}

/** Storage buffers the spec's kernel binds: its inputs and its output. */
function bindings(spec: GemmSpec): number {
  return 3 + (spec.bias ? 1 : 0) + (spec.residual ? 1 : 0) + (spec.base ? 1 : 0) +
    2 * (spec.terms?.length ?? 0);
}

/**
 * The product {@link GemmSpec} describes, on WebGPU: a packed float16 tensor `[M, N]`
 * (`out: "half"`) or a float32 one of float16 values (a float32 sum, with a residual or an
 * outside term). One dispatch, and one a term when they do not fit the device's bindings.
 *
 * @example
 * ```ts ignore
 * import { initBackend, tf } from "@lora/vit";
 * import { gemm16 } from "./gemm16.ts";
 * import { packHalf } from "./half.ts";
 *
 * await initBackend("webgpu"); // an adapter with shader-f16
 * const [rows, inDim, outDim] = [394, 768, 3072];
 * const x = tf.randomNormal([rows, inDim]); // float32
 * const weightT = packHalf(tf.randomNormal([inDim, outDim], 0, 0.02)); // Wᵀ, float16
 * const bias = tf.zeros([outDim]);
 * // y = x Wᵀ + b, float32 [rows, out] holding float16 values
 * const y = gemm16({ a: { t: x }, b: { t: weightT }, m: rows, k: inDim, n: outDim, bias });
 * ```
 */
export function gemm16(spec: GemmSpec): Tensor | HalfTensor {
  const backend = tf.backend() as unknown as WebGPUBackend;
  const limit = bindingLimit ?? backend.device.limits.maxStorageBuffersPerShaderStage;
  if (bindings(spec) <= limit) return run(spec);
  // the terms as kernels after the product, the float16 sums first, as the epilogue adds them
  if (spec.residual) {
    // unreachable: a residual comes with one term at most (7 bindings; WebGPU allows 8)
    throw new VitLoraError("gemm16: a product with a residual must fit the device's bindings");
  }
  const terms = [...(spec.terms ?? [])].sort((a, b) =>
    (a.place === "inside" ? 0 : 1) - (b.place === "inside" ? 0 : 1)
  );
  let y = run({ ...spec, terms: [] });
  for (const t of terms) {
    const next = run({
      a: t.d,
      b: t.e,
      m: spec.m,
      k: t.rank,
      n: spec.n,
      base: { t: y, term: t },
      out: spec.out,
    });
    y.dispose();
    y = next;
  }
  return y;
}

function run(spec: GemmSpec): Tensor | HalfTensor {
  const program = new Gemm16Program(spec);
  const backend = tf.backend() as unknown as WebGPUBackend;
  const uniforms = [
    { type: "int32", data: [spec.m] },
    { type: "int32", data: [spec.n] },
    { type: "int32", data: [spec.k] },
    ...program.keys.map((key) => ({ type: "uint32", data: [key] })),
  ];
  const half = spec.out === "half";
  const info = backend.runWebGPUProgram(
    program,
    program.inputs.map((i) => i.tensor),
    half ? "int32" : "float32",
    uniforms,
  );
  const t = tf.engine().makeTensorFromTensorInfo(info);
  return half ? new HalfTensor(t, [spec.m, spec.n]) : t;
}
