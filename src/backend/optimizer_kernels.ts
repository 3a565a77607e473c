/**
 * The optimizer step's arithmetic as WGSL kernels for WebGPU, where tfjs would run a kernel
 * per operation and upload every constant as a tensor of its own (a buffer created, a copy,
 * and the compute pass ended, for each `mul(0.9)`):
 *
 * - `scaledAdd`: `acc + x · w` in one kernel (gradient accumulation over micro-batches);
 * - `globalNorm`: the L2 norm over many tensors, a kernel a tensor (one workgroup summing the
 *   squares into its slot of one buffer) and one for the square root of the total;
 * - `adamWUpdate`: PyTorch's AdamW for one parameter, with the gradient's clipping factor
 *   `min(1, maxNorm / (norm + 1e-6))` worked out from the norm on the GPU: three kernels (the
 *   two moments, then the parameter) instead of some thirteen plus seven constant uploads.
 *
 * Constants travel as uniforms. Each kernel does the arithmetic of the plain ops it replaces in
 * the same order (`optimizer.ts` keeps those ops for the other backends); tests hold them to
 * the cpu backend (`tests/backend/optimizer_kernels_test.ts`).
 *
 * @module
 */

import type { TensorInfo } from "@tensorflow/tfjs";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import { webgpu_util } from "@tensorflow/tfjs-backend-webgpu";
import { type Scalar, type Tensor, tf } from "../core/tf.ts";
import { FlatProgram } from "./programs.ts";

/** An elementwise program: `result[index] = expr`, over inputs of the output's size. */
class MapProgram extends FlatProgram {
  constructor(
    outputShape: number[],
    inputs: string[],
    uniforms: string,
    key: string,
    code: string,
  ) {
    super({
      outputShape,
      inputs,
      uniforms,
      key: `vit_lora_${key}`,
      code: `
      fn main(index : i32) {
        if (index < uniforms.size) {
          ${code}
        }
      }`,
    });
  }
}

const WORKGROUP = 256;

/**
 * One workgroup: the sum of the squares of `X` (`uniforms.n` values) into `result[slot]`,
 * `uniforms.scale ·` the square root of the sum of `X` when `root` (the final step).
 */
class SumSquaresProgram implements WebGPUProgram {
  variableNames = ["X"];
  uniforms = "n : i32, slot : i32,";
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  outputShape: number[];
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number] = [1, 1, 1];
  shaderKey: string;
  #root: boolean;

  constructor(outputShape: number[], root: boolean) {
    this.outputShape = outputShape;
    this.dispatchLayout = webgpu_util.flatDispatchLayout(outputShape);
    this.#root = root;
    this.shaderKey = `vit_lora_SumSquares_${root}`;
  }

  getUserCode(): string {
    // partial sums a thread (strided), then a tree in workgroup memory: the same order on every
    // GPU for a given size
    return `
      var<workgroup> partial : array<f32, ${WORKGROUP}>;
      fn main(index : i32) {
        let t = i32(localIndex);
        var s = 0.0;
        for (var i = t; i < uniforms.n; i += ${WORKGROUP}) {
          let x = X[i];
          s += ${this.#root ? "x" : "x * x"};
        }
        partial[t] = s;
        workgroupBarrier();
        for (var half = ${WORKGROUP / 2}; half > 0; half = half / 2) {
          if (t < half) { partial[t] += partial[t + half]; }
          workgroupBarrier();
        }
        if (t == 0) { result[uniforms.slot] = ${this.#root ? "sqrt(partial[0])" : "partial[0]"}; }
      }`;
  }
}

const SCALED_ADD = "VitLoraScaledAdd";
const GLOBAL_NORM = "VitLoraGlobalNorm";
const ADAMW_M = "VitLoraAdamWMoment1";
const ADAMW_V = "VitLoraAdamWMoment2";
const ADAMW_P = "VitLoraAdamWParam";

type Attrs = Record<string, number>;

function run(
  backend: unknown,
  program: WebGPUProgram,
  inputs: TensorInfo[],
  uniforms: [string, number][],
  output?: TensorInfo,
): TensorInfo {
  return (backend as WebGPUBackend).runWebGPUProgram(
    program,
    inputs,
    "float32",
    uniforms.map(([type, v]) => ({ type, data: [v] })),
    output,
  );
}

tf.registerKernel({
  kernelName: SCALED_ADD,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { x, acc } = inputs as { x: TensorInfo; acc?: TensorInfo };
    const { w } = attrs as Attrs;
    const program = acc
      ? new MapProgram(
        x.shape,
        ["X", "Acc"],
        "w : f32,",
        `${SCALED_ADD}_acc`,
        `
          setOutputAtIndex(index, Acc[index] + X[index] * uniforms.w);`,
      )
      : new MapProgram(
        x.shape,
        ["X"],
        "w : f32,",
        SCALED_ADD,
        `
          setOutputAtIndex(index, X[index] * uniforms.w);`,
      );
    return run(backend, program, acc ? [x, acc] : [x], [["float32", w]]);
  },
});

tf.registerKernel({
  kernelName: GLOBAL_NORM,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend }) => {
    const gpu = backend as WebGPUBackend;
    const tensors = Object.values(inputs) as TensorInfo[];
    // every tensor's sum of squares into its slot of one buffer, then the root of their sum
    const partials = gpu.makeTensorInfo([tensors.length], "float32");
    tensors.forEach((t, slot) => {
      const n = t.shape.reduce((a, b) => a * b, 1);
      run(gpu, new SumSquaresProgram([tensors.length], false), [t], [
        ["int32", n],
        ["int32", slot],
      ], partials);
    });
    const norm = run(gpu, new SumSquaresProgram([], true), [partials], [
      ["int32", tensors.length],
      ["int32", 0],
    ]);
    gpu.disposeData(partials.dataId);
    return norm;
  },
});

// the clipped gradient, `g · min(1, maxNorm / (norm + 1e-6))`, as clipByGlobalNorm computes it
const CLIPPED = `let coef = min(uniforms.maxNorm / (Norm[0] + 1e-6), 1.0);
          let g = G[index] * coef;`;

/**
 * With a loss scale `S` (`Scale`): the gradients and their norm are `S` times the true ones.
 * An overflow (a norm that is not finite: GradScaler's `found_inf`) leaves `keep` as it was;
 * otherwise the gradient is unscaled (`· 1/S`, exact for a power of two, as `unscale_` does),
 * then clipped against the true norm.
 */
function scaledClip(keep: string): string {
  return `if ((bitcast<u32>(Norm[0]) & 0x7f800000u) == 0x7f800000u) {
            setOutputAtIndex(index, ${keep}[index]);
            return;
          }
          let s = Scale[0];
          let coef = min(uniforms.maxNorm / (Norm[0] / s + 1e-6), 1.0);
          let g = (G[index] * (1.0 / s)) * coef;`;
}

/** AdamW's two moment kernels: `X · b + f(g) · c` for X the moment, `f` the identity or the square. */
for (const [name, moment, term] of [[ADAMW_M, "M", "g"], [ADAMW_V, "V", "(g * g)"]] as const) {
  tf.registerKernel({
    kernelName: name,
    backendName: "webgpu",
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { x, g, norm, scale } = inputs as Record<string, TensorInfo>;
      const a = attrs as Attrs;
      const program = new MapProgram(
        x.shape,
        scale ? [moment, "G", "Norm", "Scale"] : [moment, "G", "Norm"],
        "b : f32, c : f32, maxNorm : f32,",
        `${name}${scale ? "_scaled" : ""}`,
        `${scale ? scaledClip(moment) : CLIPPED}
          setOutputAtIndex(index, ${moment}[index] * uniforms.b + ${term} * uniforms.c);`,
      );
      return run(backend, program, scale ? [x, g, norm, scale] : [x, g, norm], [
        ["float32", a.beta],
        ["float32", 1 - a.beta],
        ["float32", a.maxNorm],
      ]);
    },
  });
}

tf.registerKernel({
  kernelName: ADAMW_P,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { p, m, v, norm, scale } = inputs as Record<string, TensorInfo>;
    const a = attrs as Attrs;
    // with a loss scale: an overflow leaves the parameter as it was
    const skip = `if ((bitcast<u32>(Norm[0]) & 0x7f800000u) == 0x7f800000u) {
            setOutputAtIndex(index, P[index]);
            return;
          }`;
    const program = new MapProgram(
      p.shape,
      scale ? ["P", "M", "V", "Norm"] : ["P", "M", "V"],
      "decay : f32, bias2Sqrt : f32, eps : f32, step : f32, decays : i32,",
      `${ADAMW_P}${scale ? "_scaled" : ""}`,
      `${scale ? skip : ""}
          var p = P[index];
          if (uniforms.decays != 0) { p = p * uniforms.decay; }
          let denom = sqrt(V[index]) / uniforms.bias2Sqrt + uniforms.eps;
          setOutputAtIndex(index, p - (M[index] / denom) * uniforms.step);`,
    );
    return run(backend, program, scale ? [p, m, v, norm] : [p, m, v], [
      ["float32", 1 - a.lr * a.weightDecay],
      ["float32", a.bias2Sqrt],
      ["float32", a.eps],
      ["float32", a.lr / a.bias1],
      ["int32", a.weightDecay !== 0 ? 1 : 0],
    ]);
  },
});

/**
 * `acc + x · w` (or `x · w` without `acc`) in one kernel on WebGPU; plain ops elsewhere.
 *
 * @example
 * ```ts
 * import { initBackend, tf } from "@lora/vit";
 * import { scaledAdd } from "./optimizer_kernels.ts";
 * await initBackend("cpu");
 * console.log(await scaledAdd(tf.tensor1d([1, 2]), 0.5, tf.tensor1d([10, 10])).data()); // [10.5, 11]
 * ```
 */
export function scaledAdd<T extends Tensor>(x: T, w: number, acc?: T): T {
  if (tf.getBackend() !== "webgpu") {
    return tf.tidy(() => acc ? acc.add(x.mul(w)) : x.mul(w)) as T;
  }
  return tf.engine().runKernel(SCALED_ADD, acc ? { x, acc } : { x }, { w }) as T;
}

/**
 * The global L2 norm of `tensors` (all float32): `√(Σ Σ x²)`. On WebGPU a kernel a tensor
 * (squares summed in one workgroup) and one for the root; plain ops elsewhere, summed in
 * order (as `clipByGlobalNorm` always has).
 *
 * @example
 * ```ts
 * import { initBackend, tf } from "@lora/vit";
 * import { globalNorm } from "./optimizer_kernels.ts";
 * await initBackend("cpu");
 * console.log(await globalNorm([tf.tensor1d([3]), tf.tensor1d([4])]).data()); // [5]
 * ```
 */
export function globalNorm(tensors: readonly Tensor[]): Scalar {
  if (tf.getBackend() !== "webgpu") {
    return tf.tidy(() => {
      const squares = tensors.map((g) => g.square().sum());
      let total = squares[0];
      for (const s of squares.slice(1)) total = total.add(s);
      return total.sqrt() as Scalar;
    });
  }
  const inputs = Object.fromEntries(tensors.map((t, i) => [`x${i}`, t]));
  return tf.engine().runKernel(GLOBAL_NORM, inputs, {}) as Scalar;
}

/** The constants of one AdamW update (see {@link adamWUpdate}). */
export interface AdamWConstants {
  /** The learning rate. */
  lr: number;
  /** β₁, β₂. */
  betas: readonly [number, number];
  /** Added to the denominator. */
  eps: number;
  /** This parameter's decoupled weight decay (0 for none). */
  weightDecay: number;
  /** `1 − β₁ᵗ`. */
  bias1: number;
  /** `√(1 − β₂ᵗ)`. */
  bias2Sqrt: number;
  /** The gradient is clipped by `min(1, maxNorm / (norm + 1e-6))` (`Infinity`: not clipped). */
  maxNorm: number;
  /**
   * A loss scale (a scalar tensor, see `GradScaler`): `g` and `norm` are this times the true
   * ones; an overflow (a norm that is not finite) leaves the parameter and moments as they were.
   */
  lossScale?: Tensor;
}

/**
 * PyTorch's AdamW update of one parameter on WebGPU, three kernels: the new first and second
 * moments, then the new parameter, from the gradient `g` clipped against `norm` (a scalar
 * tensor, the global norm of the step's gradients). Returns new tensors; the caller assigns
 * them. WebGPU only (`AdamW` runs plain ops elsewhere).
 */
export function adamWUpdate(
  p: Tensor,
  g: Tensor,
  m: Tensor,
  v: Tensor,
  norm: Tensor,
  c: AdamWConstants,
): { p: Tensor; m: Tensor; v: Tensor } {
  const engine = tf.engine();
  const scale: Record<string, Tensor> = c.lossScale ? { scale: c.lossScale } : {};
  const m1 = engine.runKernel(ADAMW_M, { x: m, g, norm, ...scale }, {
    beta: c.betas[0],
    maxNorm: c.maxNorm,
  });
  const v1 = engine.runKernel(ADAMW_V, { x: v, g, norm, ...scale }, {
    beta: c.betas[1],
    maxNorm: c.maxNorm,
  });
  const extra: Record<string, Tensor> = c.lossScale ? { norm, scale: c.lossScale } : {};
  const p1 = engine.runKernel(ADAMW_P, { p, m: m1, v: v1, ...extra } as Record<string, Tensor>, {
    lr: c.lr,
    weightDecay: c.weightDecay,
    bias1: c.bias1,
    bias2Sqrt: c.bias2Sqrt,
    eps: c.eps,
  });
  return { p: p1 as Tensor, m: m1 as Tensor, v: v1 as Tensor };
}
