/**
 * IEEE half precision on the host: a float32 value to float16 bits, and bits to their value.
 * One rounding serves every float16 the module writes (the WebGPU kernels' mirror, the ONNX
 * export, safetensors decoding).
 *
 * @module
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * The float16 bits nearest to `x` as a float32: ties to even, ±∞ beyond float16's range
 * (|x| ≥ 65520), NaN as a quiet NaN (`0x7e00` with the sign); as NumPy's `float16()`,
 * PyTorch's casts and the WebGPU kernels' `halfBits` round.
 *
 * @example
 * ```ts
 * import { float16Bits } from "./float16.ts";
 * console.log(float16Bits(1).toString(16), float16Bits(65520).toString(16)); // "3c00" "7c00"
 * ```
 */
export function float16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const a = b & 0x7fffffff;
  if (a >= 0x7f800000) return sign | (a > 0x7f800000 ? 0x7e00 : 0x7c00);
  if (a >= 0x477ff000) return sign | 0x7c00;
  if (a >= 0x38800000) {
    const r = a - 0x38000000;
    return sign | ((r + 0x0fff + ((r >>> 13) & 1)) >>> 13);
  }
  u32[0] = a;
  const scaled = f32[0] * 16777216; // exact: a float16 subnormal count
  const floor = Math.floor(scaled), rest = scaled - floor;
  const even = rest > 0.5 || (rest === 0.5 && floor % 2 === 1) ? floor + 1 : floor;
  return sign | even;
}

/**
 * The value of float16 bits, exact (subnormals, infinities and NaN included).
 *
 * @example
 * ```ts
 * import { float16Value } from "./float16.ts";
 * console.log(float16Value(0x3c00), float16Value(0x7bff)); // 1 65504
 * ```
 */
export function float16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f, mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}
