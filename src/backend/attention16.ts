/**
 * Multi-head attention for `--precision fp16`: the fused kernels of `attention.ts` (an online
 * softmax a query row, nothing but the inputs and the output kept for the backward pass, which
 * recomputes the probabilities row by row) over float16 tensors, as PyTorch's
 * `scaled_dot_product_attention` runs on float16 inputs under autocast: the query, key and value
 * read as float16 from the fused projection's packed `[batch·tokens, 3·hidden]` output, the dot
 * products and the softmax in float32, the context and the gradients written as float16.
 *
 * The forward pass rounds the probabilities to float16 before `P V`, as PyTorch's fused
 * kernels do for float16 inputs (CPU's flash attention, whose one block of keys holds up to 512
 * tokens; CUDA's FlashAttention does it a block of 64 to 128 keys at a time): it takes a row's
 * maximum in a first pass over the keys, then sums; the softmax's denominator is the float32
 * sum. (This brings the logits closer to PyTorch's: 6e-4 to 4e-4 of their largest on the
 * fixtures.) The backward pass works with float32 probabilities.
 *
 * @module
 */

import type { TensorInfo } from "@tensorflow/tfjs";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { type Tensor, tf } from "../core/tf.ts";
import { HALF_WGSL, halfReader, HalfTensor } from "./half.ts";
import { RowsProgram } from "./programs.ts";

/** The shape of one attention: heads, tokens an image, hidden size. */
export interface AttentionShape {
  /** Heads. */
  heads: number;
  /** Tokens an image. */
  tokens: number;
}

/**
 * The code of a kernel: one invocation a (batch, head, token) row; `q(row)`, `k(row)`, `v(row)`
 * the element indices of that token's head in QKV, `o(row)` in a `[rows, hidden]` tensor.
 */
function code(head: number, heads: number, inputs: string[], body: string): string {
  const hidden = head * heads;
  const has = (name: string) => inputs.includes(name);
  const dot = (name: string, a: string, b: string) => `
      fn dot${name}(a : i32, b : i32) -> f32 {
        var s = 0.0;
        for (var c = 0; c < D; c++) { s += ${a}_h(a + c) * ${b}_h(b + c); }
        return s;
      }`;
  return `${HALF_WGSL}
      ${inputs.filter((n) => n !== "S").map(halfReader).join("")}
      const D = ${head};
      const H = ${hidden};
      const NH = ${heads};
      ${dot("QK", "QKV", "QKV")}
      ${has("Dy") ? dot("DyV", "Dy", "QKV") : ""}
      ${has("O") ? dot("DyO", "Dy", "O") : ""}
      fn main(index : i32) {
        if (index >= uniforms.rows) { return; }
        let T = uniforms.tokens;
        let i = index % T;
        let bh = index / T;
        let hd = bh % NH;
        let b = bh / NH;
        let token = b * T + i;
        let q = token * 3 * H + hd * D; // this row's query in QKV
        let row = token * H + hd * D; // and its place in a [rows, hidden] tensor
        let firstK = b * T * 3 * H + H + hd * D; // the head's first key; values follow at + H
        let scale = uniforms.scale;
        ${body}
      }`;
}

const FORWARD = "VitLoraAttention16";
const STATS = "VitLoraAttention16Stats";
const GRAD_Q = "VitLoraAttention16GradQ";
const GRAD_KV = "VitLoraAttention16GradKV";

const KERNELS: Record<string, { inputs: string[]; body: string }> = {
  [FORWARD]: {
    inputs: ["QKV"],
    body: `
        var acc : array<f32, D>;
        var m = -3.0e38;
        for (var j = 0; j < T; j++) { m = max(m, scale * dotQK(q, firstK + j * 3 * H)); }
        var l = 0.0;
        for (var j = 0; j < T; j++) {
          let k = firstK + j * 3 * H;
          let p = exp(scale * dotQK(q, k) - m);
          l += p;
          let p16 = r16(p);
          for (var c = 0; c < D; c++) { acc[c] += p16 * QKV_h(k + H + c); }
        }
        for (var c = 0; c < D; c += 2) {
          setOutputAtIndexI32((row + c) / 2, packHalves(acc[c] / l, acc[c + 1] / l));
        }`,
  },
  // per query row: L = m + log l, and Dᵢ = dOᵢ·Oᵢ, as [rows, 2]
  [STATS]: {
    inputs: ["QKV", "Dy", "O"],
    body: `
        var m = -3.0e38;
        var l = 0.0;
        for (var j = 0; j < T; j++) {
          let s = scale * dotQK(q, firstK + j * 3 * H);
          if (s > m) { l = l * exp(m - s); m = s; }
          l += exp(s - m);
        }
        setOutputAtIndex(index * 2, m + log(l));
        setOutputAtIndex(index * 2 + 1, dotDyO(row, row));`,
  },
  // dQ into the query columns of the [rows, 3·hidden] gradient
  [GRAD_Q]: {
    inputs: ["QKV", "Dy", "S"],
    body: `
        let L = S[index * 2];
        let Di = S[index * 2 + 1];
        var acc : array<f32, D>;
        for (var j = 0; j < T; j++) {
          let k = firstK + j * 3 * H;
          let p = exp(scale * dotQK(q, k) - L);
          let ds = p * (dotDyV(row, k + H) - Di);
          for (var c = 0; c < D; c++) { acc[c] += ds * QKV_h(k + c); }
        }
        for (var c = 0; c < D; c += 2) {
          setOutputAtIndexI32((q + c) / 2, packHalves(scale * acc[c], scale * acc[c + 1]));
        }`,
  },
  // this row is a key row j: dK and dV into its key and value columns
  [GRAD_KV]: {
    inputs: ["QKV", "Dy", "S"],
    body: `
        var dk : array<f32, D>;
        var dv : array<f32, D>;
        let k = q + H;
        for (var t = 0; t < T; t++) {
          let qt = (b * T + t) * 3 * H + hd * D;
          let dyt = (b * T + t) * H + hd * D;
          let stat = (bh * T + t) * 2;
          let p = exp(scale * dotQK(qt, k) - S[stat]);
          let ds = p * (dotDyV(dyt, k + H) - S[stat + 1]);
          for (var c = 0; c < D; c++) {
            dv[c] += p * Dy_h(dyt + c);
            dk[c] += ds * QKV_h(qt + c);
          }
        }
        for (var c = 0; c < D; c += 2) {
          setOutputAtIndexI32((k + c) / 2, packHalves(scale * dk[c], scale * dk[c + 1]));
          setOutputAtIndexI32((k + H + c) / 2, packHalves(dv[c], dv[c + 1]));
        }`,
  },
};

/** Runs one of the kernels (into `output` when given). */
function run(
  name: string,
  tensors: Record<string, TensorInfo>,
  shape: AttentionShape & { rows: number; hidden: number },
  outputShape: number[],
  output?: TensorInfo,
): TensorInfo {
  const { inputs, body } = KERNELS[name];
  const head = shape.hidden / shape.heads;
  const rows = shape.rows * shape.heads; // (batch, head, token) rows
  const program = new RowsProgram({
    rows,
    outputShape,
    inputs,
    uniforms: "rows : i32, tokens : i32, scale : f32,",
    key: `vit_lora_${name}_${head}_${shape.heads}`,
    code: code(head, shape.heads, inputs, body),
  });
  const backend = tf.backend() as unknown as WebGPUBackend;
  return backend.runWebGPUProgram(
    program,
    inputs.map((k) => tensors[k]),
    name === STATS ? "float32" : "int32",
    [
      { type: "int32", data: [rows] },
      { type: "int32", data: [shape.tokens] },
      { type: "float32", data: [1 / Math.sqrt(head)] },
    ],
    output,
  );
}

function tensor(info: TensorInfo): Tensor {
  return tf.engine().makeTensorFromTensorInfo(info) as Tensor;
}

/**
 * The attention context, `softmax(q kᵀ / √d) v` a head, from the packed float16 output of the
 * fused query/key/value projection (`[rows, 3·hidden]`): a float16 `[rows, hidden]`. WebGPU.
 */
export function attention16(qkv: HalfTensor, shape: AttentionShape): HalfTensor {
  const [rows, width] = qkv.shape;
  const hidden = width / 3;
  const out = run(FORWARD, { QKV: qkv.packed }, { ...shape, rows, hidden }, [
    (rows * hidden) / 2,
  ]);
  return new HalfTensor(tensor(out), [rows, hidden]);
}

/**
 * The gradient of {@link attention16} for the context's gradient `dy` (float16
 * `[rows, hidden]`), given its output `o`: the float16 `[rows, 3·hidden]` gradient of `qkv`.
 */
export function attention16Grad(
  qkv: HalfTensor,
  o: HalfTensor,
  dy: HalfTensor,
  shape: AttentionShape,
): HalfTensor {
  const [rows, width] = qkv.shape;
  const hidden = width / 3;
  const dims = { ...shape, rows, hidden };
  const inputs = { QKV: qkv.packed, Dy: dy.packed, O: o.packed };
  const stats = run(STATS, inputs, dims, [rows * shape.heads, 2]);
  const grad = run(GRAD_Q, { ...inputs, S: stats }, dims, [(rows * width) / 2]);
  // dK and dV into the same tensor: the words the query kernel left
  run(GRAD_KV, { ...inputs, S: stats }, dims, [(rows * width) / 2], grad);
  (tf.backend() as unknown as WebGPUBackend).disposeData(stats.dataId);
  return new HalfTensor(tensor(grad), [rows, width]);
}
