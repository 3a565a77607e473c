/**
 * Fused operations for the ViT, each one kernel on WebGPU (WGSL, registered in tfjs's kernel
 * registry) where tfjs would run several, with a gradient of its own, and the same arithmetic
 * from plain ops on the other backends.
 *
 * - `gelu`: the exact GELU, `0.5 x (1 + erf(x / √2))`, forward in one kernel instead of five,
 *   and its derivative `Φ(x) + x φ(x)` in one; the backward pass keeps only `x` instead of the
 *   five intermediate tensors autodiff would keep (each as large as the MLP's activations).
 *
 * - `layerNorm`: LayerNorm over the last axis in one kernel (one invocation a row), and its
 *   input gradient in one, for frozen scale and shift; tfjs would run nine kernels forward and
 *   keep four row-sized tensors for the backward pass, this keeps the input alone.
 *
 * `erf` is Abramowitz and Stegun's 7.1.26 (absolute error under 1.5e-7), as tfjs's own `Erf`.
 *
 * @module
 */

import type { TensorInfo } from "@tensorflow/tfjs";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import { webgpu_util } from "@tensorflow/tfjs-backend-webgpu";
import { type Tensor, tf } from "../core/tf.ts";

const ERF_WGSL = `
fn erf_as(v : f32) -> f32 {
  let p = 0.3275911;
  let a1 = 0.254829592;
  let a2 = -0.284496736;
  let a3 = 1.421413741;
  let a4 = -1.453152027;
  let a5 = 1.061405429;
  let s = sign(v);
  let x = abs(v);
  let t = 1.0 / (1.0 + p * x);
  return s * (1.0 - (((((a5 * t + a4) * t) + a3) * t + a2) * t + a1) * t * exp(-x * x));
}`;

/** An elementwise WGSL program over one input `A`. */
class ElementwiseProgram implements WebGPUProgram {
  variableNames = ["A"];
  size = true;
  workgroupSize: [number, number, number] = [128, 1, 1];
  outputShape: number[];
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  shaderKey: string;
  #body: string;

  constructor(outputShape: number[], key: string, body: string) {
    this.outputShape = outputShape;
    this.dispatchLayout = webgpu_util.flatDispatchLayout(outputShape);
    this.dispatch = webgpu_util.computeDispatch(
      this.dispatchLayout,
      outputShape,
      this.workgroupSize,
    );
    this.shaderKey = key;
    this.#body = body;
  }

  getUserCode(): string {
    return `${ERF_WGSL}
      fn op(a : f32) -> f32 { ${this.#body} }
      fn main(index : i32) {
        if (index < uniforms.size) {
          setOutputAtIndex(index, op(getAByOutputIndex(index)));
        }
      }`;
  }
}

const GELU = "VitLoraGelu";
const GELU_GRAD = "VitLoraGeluGrad";

for (
  const [name, body] of [
    [GELU, "return 0.5 * a * (1.0 + erf_as(a * 0.7071067811865476));"],
    [
      GELU_GRAD,
      "return 0.5 * (1.0 + erf_as(a * 0.7071067811865476)) + a * 0.3989422804014327 * exp(-0.5 * a * a);",
    ],
  ]
) {
  tf.registerKernel({
    kernelName: name,
    backendName: "webgpu",
    kernelFunc: ({ inputs, backend }) => {
      const x = inputs.x as TensorInfo;
      const program = new ElementwiseProgram(x.shape, `vit_lora_${name}`, body);
      return (backend as WebGPUBackend).runWebGPUProgram(program, [x], "float32");
    },
  });
}

/** Φ(x) + x φ(x), from plain ops. */
function geluDerivative(x: Tensor): Tensor {
  return tf.tidy(() =>
    tf.erf(x.mul(Math.SQRT1_2)).add(1).mul(0.5).add(
      x.mul(tf.exp(x.square().mul(-0.5))).mul(1 / Math.sqrt(2 * Math.PI)),
    )
  );
}

/**
 * The exact GELU with a gradient of its own: one WGSL kernel each way on WebGPU, plain ops
 * elsewhere.
 *
 * @example
 * ```ts
 * import { initBackend, tf } from "@lora/vit";
 * import { gelu } from "./kernels.ts";
 * await initBackend("cpu");
 * const y = gelu(tf.tensor1d([-1, 0, 1]));
 * console.log(await y.data()); // ≈ [-0.1587, 0, 0.8413]
 * ```
 */
export function gelu<T extends Tensor>(x: T): T {
  const fused = tf.getBackend() === "webgpu";
  const op = tf.customGrad(
    ((input: Tensor, save: (tensors: Tensor[]) => void) => {
      const t = input;
      save([t]);
      const value = fused
        ? tf.engine().runKernel(GELU, { x: t }) as Tensor
        : t.mul(tf.erf(t.mul(Math.SQRT1_2)).add(1)).mul(0.5);
      return {
        value,
        gradFunc: (dy: Tensor, saved: Tensor[]) => {
          const [s] = saved as Tensor[];
          const derivative = fused
            ? tf.engine().runKernel(GELU_GRAD, { x: s }) as Tensor
            : geluDerivative(s);
          return (dy as Tensor).mul(derivative);
        },
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0],
  );
  return op(x) as T;
}

/**
 * A WGSL program with one invocation a row, over `rows` rows (64 a workgroup): its inputs,
 * uniforms and whole code (a `fn main(row : i32)`) are the caller's. LayerNorm's kernels and
 * attention's (`attention.ts`) are made of it.
 */
export class RowsProgram implements WebGPUProgram {
  variableNames: string[];
  size = true;
  uniforms: string;
  workgroupSize: [number, number, number] = [64, 1, 1];
  outputShape: number[];
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  shaderKey: string;
  #code: string;

  constructor(options: {
    rows: number;
    outputShape: number[];
    inputs: string[];
    uniforms: string;
    key: string;
    code: string;
  }) {
    this.outputShape = options.outputShape;
    this.variableNames = options.inputs;
    this.uniforms = options.uniforms;
    this.dispatchLayout = webgpu_util.flatDispatchLayout([options.rows]);
    this.dispatch = webgpu_util.computeDispatch(
      this.dispatchLayout,
      [options.rows],
      this.workgroupSize,
    );
    this.shaderKey = options.key;
    this.#code = options.code;
  }

  getUserCode(): string {
    return this.#code;
  }
}

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
        outputShape: x.shape,
        inputs: Object.values(inputs),
        uniforms: "rows : i32, cols : i32,",
        key: `vit_lora_${name}_${eps}`,
        code: `
      fn main(row : i32) {
        if (row >= uniforms.rows) { return; }
        let n = uniforms.cols;
        let base = row * n;
        let EPS = ${eps};${ROW_STATS}${body}
      }`,
      });
      return (backend as WebGPUBackend).runWebGPUProgram(program, tensors, "float32", [
        { type: "int32", data: [x.shape[0]] },
        { type: "int32", data: [x.shape[1]] },
      ]);
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

// dx = inv · (g − mean(g) − x̂ · mean(g · x̂)), g = dy · γ, x̂ = (x − mean) · inv
registerRowKernel(
  LAYER_NORM_GRAD,
  { x: "X", dy: "Dy", gamma: "Gamma" },
  `
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
          setOutputAtIndex(base + j, inv * (g - meanG - xhat * meanGX));
        }`,
);

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
 * import { layerNorm } from "./kernels.ts";
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
