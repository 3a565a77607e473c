/**
 * The WGSL program shapes this module's kernels are made of, as tfjs-webgpu programs
 * (`WebGPUProgram`): one invocation an element ({@link FlatProgram},
 * {@link ElementwiseProgram}), one a row
 * ({@link RowsProgram}: LayerNorm's and attention's kernels), and the WGSL functions several
 * kernels share (`erf`, the dropout hash).
 *
 * @module
 */

import type { WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import { webgpu_util } from "@tensorflow/tfjs-backend-webgpu";

/** `erf` by Abramowitz and Stegun's 7.1.26 (absolute error under 1.5e-7), as tfjs's own `Erf`. */
export const ERF_WGSL = `
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

/**
 * A WGSL program with one invocation an output element (128 a workgroup): its inputs, uniforms
 * and whole code (a `fn main(index : i32)` that leaves out `index ≥ uniforms.size`) are the
 * caller's. The elementwise, float16 packing, activation, dropout and optimiser kernels are
 * made of it.
 */
export class FlatProgram implements WebGPUProgram {
  variableNames: string[];
  size = true;
  uniforms?: string;
  workgroupSize: [number, number, number] = [128, 1, 1];
  outputShape: number[];
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  shaderKey: string;
  #code: string;

  constructor(options: {
    outputShape: number[];
    inputs: string[];
    uniforms?: string;
    key: string;
    code: string;
  }) {
    this.outputShape = options.outputShape;
    this.variableNames = options.inputs;
    this.uniforms = options.uniforms;
    this.dispatchLayout = webgpu_util.flatDispatchLayout(options.outputShape);
    this.dispatch = webgpu_util.computeDispatch(
      this.dispatchLayout,
      options.outputShape,
      this.workgroupSize,
    );
    this.shaderKey = options.key;
    this.#code = options.code;
  }

  getUserCode(): string {
    return this.#code;
  }
}

/**
 * An elementwise WGSL program over one input `A` (`op(a)`), or two, `A` and `Dy`
 * (`op(a, dy)`), with uniforms of its own if given.
 */
export class ElementwiseProgram extends FlatProgram {
  constructor(
    outputShape: number[],
    key: string,
    body: string,
    options: { uniforms?: string; withDy?: boolean } = {},
  ) {
    const dy = options.withDy === true;
    super({
      outputShape,
      inputs: dy ? ["A", "Dy"] : ["A"],
      uniforms: options.uniforms,
      key,
      code: `${ERF_WGSL}
      fn op(a : f32${dy ? ", dy : f32" : ""}) -> f32 { ${body} }
      fn main(index : i32) {
        if (index < uniforms.size) {
          setOutputAtIndex(index, op(getAByOutputIndex(index)${
        dy ? ", getDyByOutputIndex(index)" : ""
      }));
        }
      }`,
    });
  }
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

/** Chris Wellons' `lowbias32` integer hash: every output bit depends on every input bit. */
export const HASH_WGSL = `
fn hash32(v : u32) -> u32 {
  var x = v;
  x ^= x >> 16u;
  x *= 0x7feb352du;
  x ^= x >> 15u;
  x *= 0x846ca68bu;
  x ^= x >> 16u;
  return x;
}`;

/**
 * `keep(index, key, rate)`: whether dropout keeps element `index` of a mask with key `key`
 * (its uniform draw, 24 bits of the hash of the index and the key, is ≥ `rate`). The same
 * draw as `dropout`'s kernel, so that any kernel can apply or recompute a mask.
 */
export const KEEP_WGSL = `${HASH_WGSL}
fn keep(index : u32, key : u32, rate : f32) -> bool {
  let h = hash32(hash32(index) ^ key);
  return f32(h >> 8u) * (1.0 / 16777216.0) >= rate;
}`;
