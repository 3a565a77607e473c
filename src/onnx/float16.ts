/**
 * A float32 graph in float16, as onnxruntime's (and transformers.js's) `convert_float_to_float16`
 * makes it with `keep_io_types=True` and a block list: weights and activations in float16, the
 * inputs and outputs float32 (a `Cast` after each input, before each output), and the blocked
 * operations in float32 with casts around them (a `Cast` to float32 before each of their float16
 * inputs, their float32 initializers left as they are, a `Cast` to float16 after each output
 * that a float16 operation reads). Here the blocked operations are those that lose precision in
 * float16: `LayerNormalization` (its sums of squares), `Softmax` (its sum of exponentials) and
 * the classifier's `Gemm` (the logits); a blocked operation feeding another reads its float32
 * output directly.
 *
 * Initializers are rounded to the nearest float16 (ties to even) after clamping as the Python
 * converter does: magnitudes below 1e-7 become 1e-7, above 1e4 become 1e4 (zeros, infinities and
 * NaN unchanged).
 *
 * @module
 */

import { float16Bits } from "../core/float16.ts";
import {
  DATA_TYPES,
  ELEMENT_TYPES,
  type ElementType,
  int,
  type OnnxGraph,
  type OnnxNode,
  type OnnxTensor,
} from "./ir.ts";

/** Options of {@link toFloat16}. */
export interface Float16Options {
  /** Operators kept in float32 (default {@link FLOAT16_BLOCKED_OPS}). */
  blockedOps?: readonly string[];
  /** Nodes kept in float32, by name (default `["logits"]`: the classifier's product). */
  blockedNodes?: readonly string[];
  /** Smallest magnitude of a non-zero initializer value (default 1e-7). */
  minPositive?: number;
  /** Largest magnitude of a finite initializer value (default 1e4). */
  maxFinite?: number;
}

/** The operators {@link toFloat16} keeps in float32 by default. */
export const FLOAT16_BLOCKED_OPS: readonly string[] = ["LayerNormalization", "Softmax"];

/** A float32 graph (float32 inputs and outputs) in float16; see the module's documentation. */
export function toFloat16(graph: OnnxGraph, options: Float16Options = {}): OnnxGraph {
  const blockedOps = new Set(options.blockedOps ?? FLOAT16_BLOCKED_OPS);
  const blockedNodes = new Set(options.blockedNodes ?? ["logits"]);
  const blocked = (n: OnnxNode) => blockedOps.has(n.op) || blockedNodes.has(n.name);
  const minPositive = options.minPositive ?? 1e-7, maxFinite = options.maxFinite ?? 1e4;

  // which initializers a float16 operation reads (those become float16)
  const readByFloat16 = new Set<string>();
  for (const n of graph.nodes) if (!blocked(n)) { for (const i of n.inputs) readByFloat16.add(i); }
  const types = new Map<string, ElementType>();
  const initializers: OnnxTensor[] = graph.initializers.map((t) => {
    if (t.type !== "float32" || !readByFloat16.has(t.name)) {
      types.set(t.name, t.type);
      return t;
    }
    types.set(t.name, "float16");
    return { ...t, type: "float16", data: float16Array(t.data, minPositive, maxFinite) };
  });

  const nodes: OnnxNode[] = [];
  /** A float tensor's version in `type`, by a cast made once. */
  const casts = new Map<string, string>();
  const castTo = (tensor: string, type: "float32" | "float16"): string => {
    if (types.get(tensor) === type) return tensor;
    const key = `${tensor}|${type}`;
    let out = casts.get(key);
    if (!out) {
      out = `${tensor}_${type === "float16" ? "fp16" : "fp32"}`;
      nodes.push({
        op: "Cast",
        name: out,
        inputs: [tensor],
        outputs: [out],
        attributes: { to: int(DATA_TYPES[type]) },
      });
      types.set(out, type);
      casts.set(key, out);
    }
    return out;
  };
  for (const input of graph.inputs) types.set(input.name, input.type);

  const outputs = new Set(graph.outputs.map((o) => o.name));
  const isFloat = (t: string) => types.get(t) === "float32" || types.get(t) === "float16";
  for (const n of graph.nodes) {
    const want = blocked(n) ? "float32" : "float16";
    const inputs = n.inputs.map((i) => isFloat(i) ? castTo(i, want) : i);
    // a float16 node writing a graph output writes `<name>_fp16`, cast back to float32 below
    const renamed = n.outputs.map((o) => !blocked(n) && outputs.has(o) ? `${o}_fp16` : o);
    nodes.push({ ...n, inputs, outputs: renamed });
    const outType: ElementType = n.op === "Shape"
      ? "int64"
      : n.op === "Cast"
      ? typeOf(n.attributes.to)
      : (types.get(inputs[0]) ?? "float32");
    for (const o of renamed) types.set(o, outType);
    n.outputs.forEach((o, j) => {
      if (renamed[j] === o) return;
      nodes.push({
        op: "Cast",
        name: `${o}_output_cast`,
        inputs: [renamed[j]],
        outputs: [o],
        attributes: { to: int(DATA_TYPES.float32) },
      });
      types.set(o, "float32");
    });
  }
  return { ...graph, nodes, initializers };
}

/** The element type a `Cast` node's `to` attribute names (float32 when it names none here). */
function typeOf(to: OnnxNode["attributes"][string] | undefined): ElementType {
  return (to?.kind === "int" ? ELEMENT_TYPES.get(to.value) : undefined) ?? "float32";
}

/** The platform's `Float16Array` (Deno 2, current browsers), when it has one. */
const Float16 = (globalThis as { Float16Array?: new (data: ArrayLike<number>) => ArrayBufferView })
  .Float16Array;

/**
 * float32 values as float16 bits, clamped as the module's documentation says; by the
 * platform's `Float16Array` where there is one (the same rounding), else `float16Bits`.
 */
export function float16Array(data: Float32Array, minPositive = 1e-7, maxFinite = 1e4): Uint16Array {
  const lo = Math.fround(minPositive), hi = Math.fround(maxFinite);
  const outside = (v: number) =>
    (v > 0 && v < lo) || (v < 0 && v > -lo) || (v > hi && v < Infinity) ||
    (v < -hi && v > -Infinity);
  let src = data;
  for (let i = 0; i < data.length; i++) {
    if (!outside(data[i])) continue;
    src = data.slice(); // clamped, in a copy
    for (let j = i; j < src.length; j++) {
      const v = src[j];
      if (!outside(v)) continue;
      src[j] = v > 0 ? (v < lo ? lo : hi) : (v > -lo ? -lo : -hi);
    }
    break;
  }
  if (Float16) {
    const half = new Float16(src);
    return new Uint16Array(half.buffer, half.byteOffset, src.length);
  }
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = float16Bits(src[i]);
  return out;
}
