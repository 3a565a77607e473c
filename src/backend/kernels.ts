/**
 * Fused operations for the ViT, each one kernel on WebGPU (WGSL, registered in tfjs's kernel
 * registry) where tfjs would run several, with a gradient of its own, and the same arithmetic
 * from plain ops on the other backends.
 *
 * - `gelu`: the exact GELU, `0.5 x (1 + erf(x / √2))`, forward in one kernel instead of five,
 *   and its gradient `dy (Φ(x) + x φ(x))` in one; the backward pass keeps only `x` instead of the
 *   five intermediate tensors autodiff would keep (each as large as the MLP's activations).
 *
 * - `scale`: `x · w` with `w` a uniform.
 *
 * - `dropout`: inverted dropout whose mask is drawn on the GPU from a counter-based hash of
 *   the seed and the element's index, in the kernel that applies it: no random numbers made
 *   on the host and uploaded (tfjs's `tf.dropout` draws them on the CPU, a float an element:
 *   3.7 GB a step at the recipe's shapes), and no mask kept for the backward pass, which
 *   draws the same mask again.
 *
 * `erf` is Abramowitz and Stegun's 7.1.26 (absolute error under 1.5e-7), as tfjs's own `Erf`.
 * LayerNorm's kernels are `layer_norm.ts`'s; the program shapes are `programs.ts`'s.
 *
 * @module
 */

import type { TensorInfo } from "@tensorflow/tfjs";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { type Tensor, tf } from "../core/tf.ts";
import { ElementwiseProgram, FlatProgram, HASH_WGSL } from "./programs.ts";

const GELU = "VitLoraGelu";
const GELU_GRAD = "VitLoraGeluGrad";

// the gradient kernel takes dy too: dy · (Φ(x) + x φ(x)) in one pass
for (
  const [name, body] of [
    [GELU, "return 0.5 * a * (1.0 + erf_as(a * 0.7071067811865476));"],
    [
      GELU_GRAD,
      "return dy * (0.5 * (1.0 + erf_as(a * 0.7071067811865476)) + a * 0.3989422804014327 * exp(-0.5 * a * a));",
    ],
  ]
) {
  tf.registerKernel({
    kernelName: name,
    backendName: "webgpu",
    kernelFunc: ({ inputs, backend }) => {
      const x = inputs.x as TensorInfo;
      const dy = inputs.dy as TensorInfo | undefined;
      const program = new ElementwiseProgram(x.shape, `vit_lora_${name}`, body, {
        withDy: dy !== undefined,
      });
      return (backend as WebGPUBackend).runWebGPUProgram(program, dy ? [x, dy] : [x], "float32");
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
          if (fused) return tf.engine().runKernel(GELU_GRAD, { x: s, dy }) as Tensor;
          return (dy as Tensor).mul(geluDerivative(s));
        },
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0],
  );
  return op(x) as T;
}
const SCALE = "VitLoraScale";

tf.registerKernel({
  kernelName: SCALE,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const x = inputs.x as TensorInfo;
    const program = new ElementwiseProgram(
      x.shape,
      "vit_lora_VitLoraScale",
      "return a * uniforms.w;",
      {
        uniforms: "w : f32,",
      },
    );
    return (backend as WebGPUBackend).runWebGPUProgram(program, [x], "float32", [
      { type: "float32", data: [(attrs as { w: number }).w] },
    ]);
  },
});

/**
 * `x · w` for a number `w`, with its gradient: on WebGPU one kernel each way with `w` a
 * uniform (tfjs's `mul` would upload `w` as a tensor of its own each call); `x.mul(w)`
 * elsewhere.
 *
 * @example
 * ```ts
 * import { initBackend, tf } from "@lora/vit";
 * import { scale } from "./kernels.ts";
 * await initBackend("cpu");
 * console.log(await scale(tf.tensor1d([1, 2]), 0.5).data()); // [0.5, 1]
 * ```
 */
export function scale<T extends Tensor>(x: T, w: number): T {
  if (tf.getBackend() !== "webgpu") return x.mul(w);
  const op = tf.customGrad(
    ((input: Tensor) => ({
      value: tf.engine().runKernel(SCALE, { x: input }, { w }) as Tensor,
      gradFunc: (dy: Tensor) => tf.engine().runKernel(SCALE, { x: dy }, { w }) as Tensor,
    })) as unknown as Parameters<typeof tf.customGrad>[0],
  );
  return op(x) as T;
}

const DROPOUT = "VitLoraDropout";

/** The same hash on the host (for the key and for tests). */
export function hash32(v: number): number {
  let x = v >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * The key of a dropout mask: from a seed (any integer below 2⁵³, or a float, whose bits
 * count) and the mask's number in its pass.
 */
export function dropoutKey(seed: number, draw = 0): number {
  const low = seed >>> 0;
  const high = Math.floor(seed / 2 ** 32) >>> 0;
  return hash32(hash32(low ^ hash32(high + 0x9e3779b9)) ^ hash32(draw + 0x85ebca6b));
}

/** `x · mask / keep`, the mask an element's: kept when its uniform draw is ≥ `rate`. */
const DROPOUT_WGSL = `${HASH_WGSL}
      fn main(index : i32) {
        if (index < uniforms.size) {
          let h = hash32(hash32(u32(index)) ^ uniforms.key);
          let u = f32(h >> 8u) * (1.0 / 16777216.0); // 24 bits: uniform in [0, 1)
          let a = getAByOutputIndex(index);
          setOutputAtIndex(index, select(0.0, a * uniforms.scale, u >= uniforms.rate));
        }
      }`;

tf.registerKernel({
  kernelName: DROPOUT,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const x = inputs.x as TensorInfo;
    const { rate, scale, key } = attrs as unknown as { rate: number; scale: number; key: number };
    return (backend as WebGPUBackend).runWebGPUProgram(
      new FlatProgram({
        outputShape: x.shape,
        inputs: ["A"],
        uniforms: "rate : f32, scale : f32, key : u32,",
        key: "vit_lora_VitLoraDropout",
        code: DROPOUT_WGSL,
      }),
      [x],
      "float32",
      [
        { type: "float32", data: [rate] },
        { type: "float32", data: [scale / (1 - rate)] },
        { type: "uint32", data: [key] },
      ],
    );
  },
});

/**
 * Inverted dropout at `rate` (each element zeroed with probability `rate`, the rest scaled by
 * `factor / (1 − rate)`, `factor` 1 by default), its mask from `seed` and `draw` (the mask's number in its pass; a random
 * seed when none is given). On WebGPU, one kernel each way that draws the mask itself, from
 * a hash of the key and the element's index (the same mask for the same seed, draw and shape,
 * on any GPU), and nothing kept for the backward pass; elsewhere tfjs's `tf.dropout` with
 * seed `seed + draw` (its masks come from the CPU's seeded generator).
 *
 * @example
 * ```ts
 * import { initBackend, tf } from "@lora/vit";
 * import { dropout } from "./kernels.ts";
 * await initBackend("cpu");
 * const y = dropout(tf.ones([8]), 0.5, 42);
 * console.log(await y.data()); // each 0 or 2
 * ```
 */
export function dropout<T extends Tensor>(
  x: T,
  rate: number,
  seed?: number,
  draw = 0,
  factor = 1,
): T {
  if (rate <= 0) return factor === 1 ? x : scale(x, factor);
  if (tf.getBackend() !== "webgpu") {
    const y = tf.dropout(x, rate, undefined, seed === undefined ? undefined : seed + draw) as T;
    return factor === 1 ? y : y.mul(factor);
  }
  const attrs = {
    rate,
    scale: factor,
    key: dropoutKey(seed ?? Math.floor(Math.random() * 2 ** 32), draw),
  };
  const op = tf.customGrad(
    ((input: Tensor) => ({
      value: tf.engine().runKernel(DROPOUT, { x: input }, attrs) as Tensor,
      // y = x · m elementwise, so dx = dy · m: the same kernel, the same mask
      gradFunc: (dy: Tensor) => tf.engine().runKernel(DROPOUT, { x: dy }, attrs) as Tensor,
    })) as unknown as Parameters<typeof tf.customGrad>[0],
  );
  return op(x) as T;
}
