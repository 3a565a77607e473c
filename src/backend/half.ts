/**
 * Float16 storage on WebGPU. tfjs has no float16 dtype, so a float16 tensor is held packed:
 * two halves a 32-bit word, element `e` in the low (`e` even) or high half of word `e >> 1`,
 * in an `int32` tensor of half the length ({@link HalfTensor}). The kernels of
 * `--precision fp16` read and write that layout; `enable f16;` WGSL uses the `f16` type for
 * their workgroup tiles.
 *
 * Rounding to float16 is done in integer arithmetic ({@link HALF_WGSL}'s `halfBits`): to
 * nearest, ties to even, and ±∞ beyond float16's range (|x| ≥ 65520), as IEEE 754, PyTorch's
 * casts and CUDA's `__float2half_rn` do. WGSL leaves the rounding of an `f32` → `f16`
 * conversion to the implementation and an out-of-range conversion indeterminate; the loss
 * scaler needs overflows to show as infinities, as they do in PyTorch.
 *
 * @module
 */

import type { TensorInfo } from "@tensorflow/tfjs";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { type Tensor, tf } from "../core/tf.ts";
import { VitLoraError } from "../core/errors.ts";
import { float16Bits, float16Value } from "../core/float16.ts";
import { FlatProgram } from "./programs.ts";

/**
 * WGSL: `halfBits(x)`, the float16 bits of `x` rounded to nearest even (overflow to ±∞, NaN
 * kept); `r16(x)`, `x` rounded to float16, as an `f32`; `packHalves(a, b)`, a word of two.
 */
export const HALF_WGSL = `
fn halfBits(x : f32) -> u32 {
  let b = bitcast<u32>(x);
  let sign = (b >> 16u) & 0x8000u;
  let a = b & 0x7fffffffu;
  if (a >= 0x7f800000u) { return sign | select(0x7c00u, 0x7e00u, a > 0x7f800000u); }
  if (a >= 0x477ff000u) { return sign | 0x7c00u; }
  if (a >= 0x38800000u) {
    let r = a - 0x38000000u;
    return sign | ((r + 0x0fffu + ((r >> 13u) & 1u)) >> 13u);
  }
  return sign | u32(round(bitcast<f32>(a) * 16777216.0));
}
fn r16(x : f32) -> f32 { return unpack2x16float(halfBits(x)).x; }
fn packHalves(a : f32, b : f32) -> i32 { return bitcast<i32>(halfBits(a) | (halfBits(b) << 16u)); }
`;

/**
 * WGSL: `fn <name>_h(e : i32) -> f32`, element `e` of the packed float16 input `name` (an
 * `array<i32>` of words).
 */
export function halfReader(name: string): string {
  return `
fn ${name}_h(e : i32) -> f32 {
  let w = bitcast<u32>(${name}[e >> 1u]);
  return unpack2x16float(select(w, w >> 16u, (e & 1) == 1)).x;
}`;
}

/** A float16 tensor: its words (an `int32` tensor of `⌈size / 2⌉`) and its logical shape. */
export class HalfTensor {
  /** The packed words. */
  readonly packed: Tensor;
  /** The shape of the float16 tensor they hold. */
  readonly shape: number[];

  /** Wraps packed words (taken over) holding a tensor of `shape`. */
  constructor(packed: Tensor, shape: readonly number[]) {
    const size = shape.reduce((a, b) => a * b, 1);
    if (packed.dtype !== "int32" || packed.size !== Math.ceil(size / 2)) {
      throw new VitLoraError(
        `a packed float16 tensor of shape [${shape}] needs ${Math.ceil(size / 2)} int32 words`,
      );
    }
    this.packed = packed;
    this.shape = [...shape];
  }

  /** Elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Bytes on the GPU (half a float32 tensor's). */
  get bytes(): number {
    return this.packed.size * 4;
  }

  /** A float32 copy of the values (new; dispose it). */
  unpack(): Tensor {
    return unpackHalf(this);
  }

  /** Frees the words. */
  dispose(): void {
    this.packed.dispose();
  }
}

const PACK = "VitLoraPackHalf";
const UNPACK = "VitLoraUnpackHalf";
const ROUND = "VitLoraRoundHalf";

const KERNELS: Record<string, { dtype: "int32" | "float32"; code: string }> = {
  [PACK]: {
    dtype: "int32",
    code: `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let e = 2 * index;
          let b = select(0.0, X[e + 1], e + 1 < uniforms.n);
          setOutputAtIndexI32(index, packHalves(X[e], b));
        }
      }`,
  },
  [UNPACK]: {
    dtype: "float32",
    code: `${halfReader("X")}
      fn main(index : i32) {
        if (index < uniforms.size) { setOutputAtIndex(index, X_h(index)); }
      }`,
  },
  [ROUND]: {
    dtype: "float32",
    code: `
      fn main(index : i32) {
        if (index < uniforms.size) { setOutputAtIndex(index, r16(X[index])); }
      }`,
  },
};

for (const [name, { dtype, code }] of Object.entries(KERNELS)) {
  tf.registerKernel({
    kernelName: name,
    backendName: "webgpu",
    kernelFunc: ({ inputs, backend, attrs }) => {
      const x = inputs.x as TensorInfo;
      const { shape, n } = attrs as unknown as { shape: number[]; n: number };
      // one invocation a word (pack), or an element (unpack, round)
      const program = new FlatProgram({
        outputShape: shape,
        inputs: ["X"],
        uniforms: "n : i32,",
        key: `vit_lora_${name}`,
        code: `${HALF_WGSL}${code}`,
      });
      return (backend as WebGPUBackend).runWebGPUProgram(program, [x], dtype, [
        { type: "int32", data: [n] },
      ]);
    },
  });
}

function requireWebGPU(what: string): void {
  if (tf.getBackend() !== "webgpu") {
    throw new VitLoraError(`${what}: float16 tensors live on WebGPU only`);
  }
}

/**
 * `x` (float32) rounded to float16 and packed (WebGPU).
 *
 * @example
 * ```ts ignore
 * import { initBackend, tf } from "@lora/vit";
 * import { packHalf } from "./half.ts";
 *
 * await initBackend("webgpu");
 * const h = packHalf(tf.tensor2d([[1, 2.0001]])); // words holding 1 and 2
 * console.log(await h.unpack().data()); // [1, 2]
 * ```
 */
export function packHalf(x: Tensor): HalfTensor {
  requireWebGPU("packHalf");
  const words = Math.ceil(x.size / 2);
  const packed = tf.engine().runKernel(PACK, { x }, { shape: [words], n: x.size }) as Tensor;
  return new HalfTensor(packed, x.shape);
}

/** The float32 values of a float16 tensor, in its shape (WebGPU). */
export function unpackHalf(h: HalfTensor): Tensor {
  requireWebGPU("unpackHalf");
  return tf.engine().runKernel(UNPACK, { x: h.packed }, { shape: h.shape, n: h.size }) as Tensor;
}

/** `x` rounded to float16, still float32 (WebGPU; no gradient: use inside custom gradients). */
export function roundHalf<T extends Tensor>(x: T): T {
  requireWebGPU("roundHalf");
  return tf.engine().runKernel(ROUND, { x }, { shape: x.shape, n: x.size }) as T;
}

/**
 * `x` rounded to float16 (on the host), as the kernels' `r16`.
 *
 * @example
 * ```ts
 * import { toHalf } from "./half.ts";
 * console.log(toHalf(0.1)); // 0.0999755859375
 * ```
 */
export function toHalf(x: number): number {
  return float16Value(float16Bits(x));
}

/** Float32 values packed as float16 words (on the host), as {@link packHalf} packs them. */
export function packHalvesHost(values: ArrayLike<number>): Int32Array {
  const out = new Int32Array(Math.ceil(values.length / 2));
  for (let i = 0; i < values.length; i += 2) {
    const hi = i + 1 < values.length ? float16Bits(values[i + 1]) : 0;
    out[i >> 1] = float16Bits(values[i]) | (hi << 16);
  }
  return out;
}

/** The `size` float16 values of packed words, as float32 (on the host). */
export function unpackHalvesHost(words: Int32Array, size: number): Float32Array {
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = float16Value((words[i >> 1] >>> (16 * (i & 1))) & 0xffff);
  return out;
}
