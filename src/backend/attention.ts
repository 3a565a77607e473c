/**
 * Fused multi-head attention for WebGPU: `softmax(Q Kᵀ / √d) V` for every head in one WGSL
 * kernel, with a backward pass of its own (three kernels), reading Q, K and V where the
 * linear layers wrote them (`[batch·tokens, hidden]`, heads side by side) and writing the
 * context in the same layout.
 *
 * tfjs would run, forward: three head-splitting transposes, a batched `QKᵀ`, a scale, a
 * softmax (several kernels), a batched `PV` and a merging transpose, and keep the scores and
 * probabilities (`[batch·heads, tokens, tokens]`, each 1.9 MB an image and layer at ViT-B's
 * shapes) for the backward pass. Here the forward pass keeps nothing but its inputs and
 * output; the backward pass recomputes the probabilities row by row, as FlashAttention does:
 *
 * - forward, one invocation a query row: an online softmax over the keys (running maximum
 *   and sum), accumulating `Σ p·v`;
 * - backward: a row's statistics first (`L = m + log l`, the log of the softmax's
 *   denominator, and `Dᵢ = dOᵢ·Oᵢ`), then `dQ` a query row at a time
 *   (`dQᵢ = s Σⱼ Pᵢⱼ (dOᵢ·Vⱼ − Dᵢ) Kⱼ`), then `dK` and `dV` a key row at a time
 *   (`dVⱼ = Σᵢ Pᵢⱼ dOᵢ`, `dKⱼ = s Σᵢ Pᵢⱼ (dOᵢ·Vⱼ − Dᵢ) Qᵢ`).
 *
 * Other backends, and attention dropout in training, use the plain ops (`attention`'s
 * caller). The kernels equal the plain version within 1e-5 (`tests/kernels_test.ts`).
 *
 * @module
 */

import type { TensorInfo } from "@tensorflow/tfjs";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { RowsProgram } from "./programs.ts";
import { type Tensor, type Tensor2D, tf } from "../core/tf.ts";

const FORWARD = "VitLoraAttention";
const STATS = "VitLoraAttentionStats";
const GRAD_Q = "VitLoraAttentionGradQ";
const GRAD_KV = "VitLoraAttentionGradKV";

/**
 * The code of an attention kernel: one invocation a (batch, head, token) row, with `D` (the
 * head size) a constant, the row's position worked out, and the dot products of head-sized
 * rows its inputs allow; then `body`.
 */
function attentionCode(head: number, inputs: string[], body: string): string {
  const has = (name: string) => inputs.includes(name);
  // the dot product of a row of A and a row of B (head-sized, starting at a and b)
  const dot = (name: string, a: string, b: string) => `
      fn dot${name}(a : i32, b : i32) -> f32 {
        var s = 0.0;
        for (var c = 0; c < D; c++) { s += ${a}[a + c] * ${b}[b + c]; }
        return s;
      }`;
  return `
      const D = ${head};
      ${dot("QK", "Q", "K")}
      ${has("Dy") && has("V") ? dot("DyV", "Dy", "V") : ""}
      ${has("Dy") && has("O") ? dot("DyO", "Dy", "O") : ""}
      fn main(index : i32) {
        if (index >= uniforms.rows) { return; }
        let T = uniforms.tokens;
        let NH = uniforms.heads;
        let H = NH * D;
        let i = index % T;
        let bh = index / T;
        let hd = bh % NH;
        let b = bh / NH;
        let row = (b * T + i) * H + hd * D; // this row's start in [batch·tokens, hidden]
        let first = b * T * H + hd * D; // the head's first row
        let scale = uniforms.scale;
        ${body}
      }`;
}

function run(
  backend: WebGPUBackend,
  name: string,
  body: string,
  inputs: Record<string, TensorInfo>,
  attrs: { heads: number; tokens: number; outputShape: number[] },
): TensorInfo {
  const q = Object.values(inputs)[0];
  const hidden = q.shape[1];
  const head = hidden / attrs.heads;
  const rows = (q.shape[0] / attrs.tokens) * attrs.heads * attrs.tokens;
  const program = new RowsProgram({
    rows,
    outputShape: attrs.outputShape,
    inputs: Object.keys(inputs),
    uniforms: "rows : i32, tokens : i32, heads : i32, scale : f32,",
    key: `vit_lora_${name}_${head}`,
    code: attentionCode(head, Object.keys(inputs), body),
  });
  return backend.runWebGPUProgram(program, Object.values(inputs), "float32", [
    { type: "int32", data: [rows] },
    { type: "int32", data: [attrs.tokens] },
    { type: "int32", data: [attrs.heads] },
    { type: "float32", data: [1 / Math.sqrt(head)] },
  ]);
}

// The softmax's running maximum m and sum l over the keys of query row `row` (online).
const ROW_SOFTMAX_STATS = `
        var m = -3.0e38;
        var l = 0.0;
        for (var j = 0; j < T; j++) {
          let s = scale * dotQK(row, first + j * H);
          if (s > m) { l = l * exp(m - s); m = s; }
          l += exp(s - m);
        }`;

const KERNELS: Record<string, { inputs: string[]; body: string }> = {
  [FORWARD]: {
    inputs: ["Q", "K", "V"],
    body: `
        var acc : array<f32, D>;
        var m = -3.0e38;
        var l = 0.0;
        for (var j = 0; j < T; j++) {
          let k = first + j * H;
          let s = scale * dotQK(row, k);
          if (s > m) {
            let r = exp(m - s);
            l = l * r;
            for (var c = 0; c < D; c++) { acc[c] = acc[c] * r; }
            m = s;
          }
          let p = exp(s - m);
          l += p;
          for (var c = 0; c < D; c++) { acc[c] += p * V[k + c]; }
        }
        for (var c = 0; c < D; c++) { setOutputAtIndex(row + c, acc[c] / l); }`,
  },
  // per query row: L = m + log l, and Dᵢ = dOᵢ·Oᵢ, as [rows, 2]
  [STATS]: {
    inputs: ["Q", "K", "Dy", "O"],
    body: `${ROW_SOFTMAX_STATS}
        setOutputAtIndex(index * 2, m + log(l));
        setOutputAtIndex(index * 2 + 1, dotDyO(row, row));`,
  },
  [GRAD_Q]: {
    inputs: ["Q", "K", "V", "Dy", "S"],
    body: `
        let L = S[index * 2];
        let Di = S[index * 2 + 1];
        var acc : array<f32, D>;
        for (var j = 0; j < T; j++) {
          let k = first + j * H;
          let p = exp(scale * dotQK(row, k) - L);
          let ds = p * (dotDyV(row, k) - Di);
          for (var c = 0; c < D; c++) { acc[c] += ds * K[k + c]; }
        }
        for (var c = 0; c < D; c++) { setOutputAtIndex(row + c, scale * acc[c]); }`,
  },
  // this row is a key row j: dK into the first half of the output, dV into the second
  [GRAD_KV]: {
    inputs: ["Q", "K", "V", "Dy", "S"],
    body: `
        var dk : array<f32, D>;
        var dv : array<f32, D>;
        for (var q = 0; q < T; q++) {
          let qrow = first + q * H;
          let stat = (bh * T + q) * 2;
          let p = exp(scale * dotQK(qrow, row) - S[stat]);
          let ds = p * (dotDyV(qrow, row) - S[stat + 1]);
          for (var c = 0; c < D; c++) {
            dv[c] += p * Dy[qrow + c];
            dk[c] += ds * Q[qrow + c];
          }
        }
        let half = uniforms.rows * D;
        for (var c = 0; c < D; c++) {
          setOutputAtIndex(row + c, scale * dk[c]);
          setOutputAtIndex(half + row + c, dv[c]);
        }`,
  },
};

for (const [name, { inputs, body }] of Object.entries(KERNELS)) {
  tf.registerKernel({
    kernelName: name,
    backendName: "webgpu",
    kernelFunc: ({ inputs: given, backend, attrs }) => {
      const { heads, tokens } = attrs as unknown as { heads: number; tokens: number };
      const tensors = Object.fromEntries(
        inputs.map((k) => [k, (given as Record<string, TensorInfo>)[k]]),
      );
      const [rows, hidden] = tensors.Q.shape;
      const outputShape = name === STATS
        ? [(rows / tokens) * heads * tokens, 2]
        : name === GRAD_KV
        ? [2 * rows, hidden]
        : [rows, hidden];
      return run(backend as WebGPUBackend, name, body, tensors, { heads, tokens, outputShape });
    },
  });
}

/**
 * Multi-head attention without dropout, on `q`, `k`, `v` `[batch·tokens, hidden]` as the
 * linear layers give them (head `h` in columns `h·d … h·d + d`): the context
 * `softmax(q kᵀ / √d) v` per head, in the same layout. One WGSL kernel forward and three
 * backward on WebGPU (call it there only).
 *
 * @example
 * ```ts ignore
 * import { initBackend, tf } from "@lora/vit";
 * import type { Tensor2D } from "@lora/vit/model";
 * import { fusedAttention } from "./attention.ts";
 *
 * await initBackend("webgpu");
 * // a batch of 2 images of 197 tokens, ViT-Base's 12 heads of 64
 * const [q, k, v] = [0, 1, 2].map(() => tf.randomNormal([2 * 197, 768]) as Tensor2D);
 * const context = fusedAttention(q, k, v, { heads: 12, tokens: 197 }); // [2·197, 768]
 * ```
 */
export function fusedAttention(
  q: Tensor2D,
  k: Tensor2D,
  v: Tensor2D,
  shape: { heads: number; tokens: number },
): Tensor2D {
  const attrs = { heads: shape.heads, tokens: shape.tokens };
  const op = tf.customGrad(
    ((qi: Tensor, ki: Tensor, vi: Tensor, save: (tensors: Tensor[]) => void) => {
      const value = tf.engine().runKernel(FORWARD, { Q: qi, K: ki, V: vi }, attrs) as Tensor;
      save([qi, ki, vi, value]);
      return {
        value,
        gradFunc: (dy: Tensor, saved: Tensor[]) => {
          const [Q, K, V, O] = saved;
          const S = tf.engine().runKernel(STATS, { Q, K, Dy: dy, O }, attrs) as Tensor;
          const dq = tf.engine().runKernel(GRAD_Q, { Q, K, V, Dy: dy, S }, attrs) as Tensor;
          const dkv = tf.engine().runKernel(GRAD_KV, { Q, K, V, Dy: dy, S }, attrs) as Tensor;
          const [dk, dv] = tf.split(dkv, 2, 0);
          tf.dispose([S, dkv]);
          return [dq, dk, dv];
        },
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0],
  );
  return op(q, k, v) as Tensor2D;
}
