/**
 * LayerNorm over the last axis for WebGPU, in one kernel (one invocation a row) each way, for
 * frozen scale and shift: tfjs would run nine kernels forward and keep four row-sized tensors
 * for the backward pass; this keeps the input alone. The same arithmetic from plain ops on the
 * other backends. The float16 path's variants (`layerNormHalf`, `layerNormGrad`) write a packed
 * float16 output, and add the input gradient to another (the residual's).
 *
 * @module
 */

import type { TensorInfo } from "@tensorflow/tfjs";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { type Tensor, tf } from "../core/tf.ts";
import { RowsProgram } from "./programs.ts";
import { HALF_WGSL, HalfTensor } from "./half.ts";

const ROW_STATS = `
        var mean = 0.0;
        for (var j = 0; j < n; j++) { mean += X[base + j]; }
        mean /= f32(n);
        var variance = 0.0;
        for (var j = 0; j < n; j++) { let c = X[base + j] - mean; variance += c * c; }
        variance /= f32(n);
        let inv = inverseSqrt(variance + EPS);`;

const LAYER_NORM = "VitLoraLayerNorm";
const LAYER_NORM_GRAD = "VitLoraLayerNormGrad";

function epsLiteral(eps: number): string {
  const text = eps.toExponential(10);
  return text.includes(".") || text.includes("e") ? text : `${text}.0`;
}

/**
 * Registers a row kernel for WebGPU: its inputs (named, in order, as the WGSL reads them:
 * the first is `X`, the `[rows, cols]` tensor the rows are of) and its body, which runs after
 * the row's mean, `variance` and `inv` (1/σ) are computed.
 */
function registerRowKernel(
  name: string,
  inputs: Record<string, string>,
  body: string,
  half = false,
): void {
  tf.registerKernel({
    kernelName: name,
    backendName: "webgpu",
    kernelFunc: ({ inputs: given, backend, attrs }) => {
      const tensors = Object.keys(inputs).map((k) => (given as Record<string, TensorInfo>)[k]);
      const x = tensors[0];
      const eps = epsLiteral((attrs as { eps: number }).eps);
      // one invocation a row of the `[rows, cols]` tensor X
      const program = new RowsProgram({
        rows: x.shape[0],
        outputShape: half ? [(x.shape[0] * x.shape[1]) / 2] : x.shape,
        inputs: Object.values(inputs),
        uniforms: "rows : i32, cols : i32,",
        key: `vit_lora_${name}_${eps}`,
        code: `${half ? HALF_WGSL : ""}
      fn main(row : i32) {
        if (row >= uniforms.rows) { return; }
        let n = uniforms.cols;
        let base = row * n;
        let EPS = ${eps};${ROW_STATS}${body}
      }`,
      });
      return (backend as WebGPUBackend).runWebGPUProgram(
        program,
        tensors,
        half ? "int32" : "float32",
        [
          { type: "int32", data: [x.shape[0]] },
          { type: "int32", data: [x.shape[1]] },
        ],
      );
    },
  });
}

registerRowKernel(
  LAYER_NORM,
  { x: "X", gamma: "Gamma", beta: "Beta" },
  `
        for (var j = 0; j < n; j++) {
          setOutputAtIndex(base + j, (X[base + j] - mean) * inv * Gamma[j] + Beta[j]);
        }`,
);

/**
 * The input gradient's WGSL, each element written as `plus` + dx:
 * dx = inv · (g − mean(g) − x̂ · mean(g · x̂)), g = dy · γ, x̂ = (x − mean) · inv.
 */
const gradBody = (plus = "") => `
        var meanG = 0.0;
        var meanGX = 0.0;
        for (var j = 0; j < n; j++) {
          let g = Dy[base + j] * Gamma[j];
          meanG += g;
          meanGX += g * (X[base + j] - mean) * inv;
        }
        meanG /= f32(n);
        meanGX /= f32(n);
        for (var j = 0; j < n; j++) {
          let g = Dy[base + j] * Gamma[j];
          let xhat = (X[base + j] - mean) * inv;
          setOutputAtIndex(base + j, ${plus}inv * (g - meanG - xhat * meanGX));
        }`;

registerRowKernel(LAYER_NORM_GRAD, { x: "X", dy: "Dy", gamma: "Gamma" }, gradBody());

const LAYER_NORM_HALF = "VitLoraLayerNormHalf";
const LAYER_NORM_GRAD_ADD = "VitLoraLayerNormGradAdd";

// the output rounded to float16, packed (an even number of columns)
registerRowKernel(
  LAYER_NORM_HALF,
  { x: "X", gamma: "Gamma", beta: "Beta" },
  `
        for (var j = 0; j < n; j += 2) {
          let a = (X[base + j] - mean) * inv * Gamma[j] + Beta[j];
          let b = (X[base + j + 1] - mean) * inv * Gamma[j + 1] + Beta[j + 1];
          setOutputAtIndexI32((base + j) / 2, packHalves(a, b));
        }`,
  true,
);

// acc + the input gradient
registerRowKernel(
  LAYER_NORM_GRAD_ADD,
  { x: "X", dy: "Dy", gamma: "Gamma", acc: "Acc" },
  gradBody("Acc[base + j] + "),
);

/**
 * LayerNorm of `x` `[rows, hidden]` (float32, `hidden` even) as float16: autocast's float32
 * LayerNorm and the cast of its output for the float16 products that read it. WebGPU; no
 * gradient (see {@link layerNormGradAdd}).
 */
export function layerNormHalf(x: Tensor, gamma: Tensor, beta: Tensor, eps: number): HalfTensor {
  const packed = tf.engine().runKernel(LAYER_NORM_HALF, { x, gamma, beta }, { eps }) as Tensor;
  return new HalfTensor(packed, x.shape);
}

/**
 * `acc + dx`, `dx` LayerNorm's input gradient for `dy` at `x` (all float32 `[rows, hidden]`):
 * a residual stream's gradient with the norm's added. WebGPU.
 */
export function layerNormGradAdd(
  x: Tensor,
  dy: Tensor,
  gamma: Tensor,
  eps: number,
  acc: Tensor,
): Tensor {
  return tf.engine().runKernel(LAYER_NORM_GRAD_ADD, { x, dy, gamma, acc }, { eps }) as Tensor;
}

/** LayerNorm from plain ops (torch's: biased variance). */
function plainLayerNorm(x: Tensor, gamma: Tensor, beta: Tensor, eps: number): Tensor {
  const mean = tf.mean(x, -1, true);
  const centred = x.sub(mean);
  const variance = tf.mean(centred.square(), -1, true);
  return centred.mul(tf.rsqrt(variance.add(eps))).mul(gamma).add(beta);
}

/**
 * LayerNorm over the last axis of `x` `[rows, hidden]` with a frozen scale and shift (no
 * gradient for them): one WGSL kernel each way on WebGPU, plain ops elsewhere.
 *
 * @example
 * ```ts
 * import { initBackend, tf } from "@lora/vit";
 * import { layerNorm } from "./layer_norm.ts";
 * await initBackend("cpu");
 * const y = layerNorm(tf.tensor2d([[1, 2, 3]]), tf.ones([3]), tf.zeros([3]), 1e-12);
 * console.log(await y.data()); // ≈ [-1.2247, 0, 1.2247]
 * ```
 */
export function layerNorm<T extends Tensor>(x: T, gamma: Tensor, beta: Tensor, eps: number): T {
  if (tf.getBackend() !== "webgpu" || x.rank !== 2) return plainLayerNorm(x, gamma, beta, eps) as T;
  const op = tf.customGrad(
    ((input: Tensor, save: (tensors: Tensor[]) => void) => {
      save([input]);
      return {
        value: tf.engine().runKernel(LAYER_NORM, { x: input, gamma, beta }, { eps }) as Tensor,
        gradFunc: (dy: Tensor, saved: Tensor[]) =>
          tf.engine().runKernel(LAYER_NORM_GRAD, { x: saved[0], dy, gamma }, { eps }) as Tensor,
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0],
  );
  return op(x) as T;
}
