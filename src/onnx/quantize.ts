/**
 * A float32 graph with its products in int8, as ONNX Runtime's
 * `onnxruntime.quantization.quantize_dynamic` rewrites it (transformers.js's `q8`): every
 * `MatMul` whose second input is a weight (`MatMulConstBOnly`) and every `Conv` becomes
 *
 * ```
 * DynamicQuantizeLinear(x) → x_quantized (uint8), x_scale, x_zero_point   (once per tensor)
 * MatMulInteger(x_quantized, W_quantized, x_zero_point, W_zero_point)     (ConvInteger for Conv)
 * Cast(to float) · Mul(x_scale, W_scale)  (+ the bias, for Conv)
 * ```
 *
 * with the weight quantized per tensor, asymmetric, to uint8: `scale = (max(W, 0) − min(W, 0)) /
 * 255`, `zero_point = round(−min(W, 0) / scale)`, `W_quantized = clip(round(W / scale) +
 * zero_point, 0, 255)`, rounding half to even in the same float32/float64 steps as
 * `onnxruntime.quantization.quant_utils`, so the bytes equal ONNX Runtime's. A `Gemm` with a
 * weight is first a `MatMul` (its weight transposed when `transB`) and an `Add` of its bias, as
 * ONNX Runtime's quantizer rewrites it. The products of activations (attention's scores and
 * context) stay float32, as do LayerNorm, Softmax and GELU.
 *
 * The weights are uint8 (`weight_type=QuantType.QUInt8`), the choice transformers.js's own
 * converter makes for a model with a `Conv` (the patch embedding): ONNX Runtime Web's
 * `ConvInteger` long took uint8 weights only. Every ONNX Runtime, native and web, runs these
 * operators (all in the default domain, opset 10 and later).
 *
 * @module
 */

import type { OnnxGraph, OnnxNode, OnnxTensor } from "./ir.ts";
import { TensorProto_DataType } from "./onnx_proto.ts";

/** A weight quantized per tensor to uint8. */
export interface QuantizedWeight {
  /** The values, `clip(round(W / scale) + zeroPoint, 0, 255)`. */
  data: Uint8Array;
  /** The scale (a float32). */
  scale: number;
  /** The zero point. */
  zeroPoint: number;
}

const FLOAT32_TINY = 1.1754943508222875e-38;

/** NumPy's `round`: halves to the even neighbour. */
function roundHalfEven(v: number): number {
  const r = Math.round(v); // halves up
  return r - v === 0.5 && r & 1 ? r - 1 : r;
}

/**
 * `data` quantized to uint8 per tensor, asymmetric, exactly as ONNX Runtime's
 * `quantize_data(data, TensorProto.UINT8, symmetric=False)` does.
 *
 * @example
 * ```ts
 * import { quantizeUint8 } from "./quantize.ts";
 * const q = quantizeUint8(Float32Array.from([-1, 0, 0.5, 1]));
 * console.log(q.zeroPoint, Array.from(q.data)); // 128 [ 0, 128, 192, 255 ]
 * ```
 */
export function quantizeUint8(data: Float32Array): QuantizedWeight {
  let min = 0, max = 0; // the range always holds 0
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const range = Math.fround(max - min); // float32, as NumPy subtracts two float32 scalars
  let scale = range / 255, zeroPoint = 0; // float64
  if (scale < FLOAT32_TINY) scale = 1;
  else zeroPoint = roundHalfEven(0 - min / scale);
  scale = Math.fround(scale);
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = Math.fround(data[i] / scale); // as NumPy divides two float32
    const q = roundHalfEven(v) + zeroPoint;
    out[i] = q < 0 ? 0 : q > 255 ? 255 : q;
  }
  return { data: out, scale, zeroPoint };
}

/** A float32 graph with its weights' products in int8; see the module's documentation. */
export function quantizeDynamic(graph: OnnxGraph): OnnxGraph {
  const weights = new Map<string, OnnxTensor>();
  for (const t of graph.initializers) weights.set(t.name, t);
  const isWeight = (name: string) => weights.get(name)?.type === "float32";
  const nodes: OnnxNode[] = [];
  const added: OnnxTensor[] = [];
  const removed = new Set<string>();
  const node = (n: Omit<OnnxNode, "attributes"> & Partial<Pick<OnnxNode, "attributes">>) =>
    nodes.push({ attributes: {}, ...n });

  /** Each activation quantized once: its DynamicQuantizeLinear's outputs. */
  const activations = new Map<string, [string, string, string]>();
  const quantizeActivation = (x: string): [string, string, string] => {
    let q = activations.get(x);
    if (!q) {
      q = [`${x}_quantized`, `${x}_scale`, `${x}_zero_point`];
      node({ op: "DynamicQuantizeLinear", name: `${x}_QuantizeLinear`, inputs: [x], outputs: q });
      activations.set(x, q);
    }
    return q;
  };
  /** A weight quantized (per tensor: its layout does not change the values), then transposed. */
  const quantizeWeight = (w: string, transposed = false): [string, string, string] => {
    const t = weights.get(w)!;
    const q = quantizeUint8(t.data as Float32Array);
    removed.add(w);
    const [rows, cols] = t.dims;
    added.push(
      { name: `${w}_scale`, dims: [], type: "float32", data: Float32Array.of(q.scale) },
      { name: `${w}_zero_point`, dims: [], type: "uint8", data: Uint8Array.of(q.zeroPoint) },
      transposed
        ? {
          name: `${w}_quantized`,
          dims: [cols, rows],
          type: "uint8",
          data: transpose(q.data, rows, cols),
        }
        : { name: `${w}_quantized`, dims: t.dims, type: "uint8", data: q.data },
    );
    return [`${w}_quantized`, `${w}_scale`, `${w}_zero_point`];
  };
  /**
   * The integer product of `n` (MatMulInteger or ConvInteger), dequantized into `output`;
   * `transposed`: its weight is `[out, in]` (a Gemm's `transB`).
   */
  const integerProduct = (n: OnnxNode, op: string, output: string, transposed = false) => {
    const [xq, xs, xz] = quantizeActivation(n.inputs[0]);
    const [wq, ws, wz] = quantizeWeight(n.inputs[1], transposed);
    const name = `${n.name}_quant`, integer = `${n.outputs[0]}_output_quantized`;
    const scales = `${name}_scales_mul:0`;
    node({ op: "Mul", name: `${name}_scales_mul`, inputs: [xs, ws], outputs: [scales] });
    node({ op, name, inputs: [xq, wq, xz, wz], outputs: [integer], attributes: n.attributes });
    node({
      op: "Cast",
      name: `${integer}_cast`,
      inputs: [integer],
      outputs: [`${integer}_cast_output`],
      attributes: { to: { kind: "int", value: TensorProto_DataType.FLOAT } },
    });
    node({
      op: "Mul",
      name: `${name}_output_scale_mul`,
      inputs: [`${integer}_cast_output`, scales],
      outputs: [output],
    });
  };

  for (const n of graph.nodes) {
    if (n.op === "Gemm" && isWeight(n.inputs[1]) && plainGemm(n)) {
      // Gemm → MatMul (+ Add), as ONNX Runtime's quantizer rewrites it first
      const bias = n.inputs[2];
      const product = bias ? `${n.name}_MatMul` : n.outputs[0];
      integerProduct(
        { ...n, name: `${n.name}_MatMul`, outputs: [product], attributes: {} },
        "MatMulInteger",
        product,
        n.attributes.transB?.value === 1,
      );
      if (bias) {
        node({ op: "Add", name: `${n.name}_Add`, inputs: [product, bias], outputs: n.outputs });
      }
    } else if (n.op === "MatMul" && isWeight(n.inputs[1])) {
      integerProduct(n, "MatMulInteger", n.outputs[0]);
    } else if (n.op === "Conv" && isWeight(n.inputs[1])) {
      const bias = n.inputs[2];
      const scaled = bias ? `${n.name}quant_scaled_output` : n.outputs[0];
      integerProduct(n, "ConvInteger", scaled);
      if (bias) {
        const shape = `${n.name}_bias_reshape_shape`;
        added.push({
          name: shape,
          dims: [4],
          type: "int64",
          data: BigInt64Array.of(1n, -1n, 1n, 1n),
        });
        const reshaped = `${n.name}_bias_reshape_output`;
        node({
          op: "Reshape",
          name: `${n.name}_bias_reshape`,
          inputs: [bias, shape],
          outputs: [reshaped],
        });
        node({
          op: "Add",
          name: `${n.name}_bias_add`,
          inputs: [scaled, reshaped],
          outputs: n.outputs,
        });
      }
    } else {
      nodes.push(n);
    }
  }
  const initializers = [
    ...graph.initializers.filter((t) => !removed.has(t.name)),
    ...added,
  ];
  return { ...graph, nodes, initializers };
}

/** A Gemm that is `A B(ᵀ) + C` (alpha and beta 1, A not transposed). */
function plainGemm(n: OnnxNode): boolean {
  const a = n.attributes;
  return (a.alpha?.value ?? 1) === 1 && (a.beta?.value ?? 1) === 1 && (a.transA?.value ?? 0) === 0;
}

/** A `[rows, cols]` matrix of bytes transposed, in tiles (cache-friendly). */
function transpose(data: Uint8Array, rows: number, cols: number): Uint8Array {
  const out = new Uint8Array(rows * cols), tile = 64;
  for (let r0 = 0; r0 < rows; r0 += tile) {
    for (let c0 = 0; c0 < cols; c0 += tile) {
      const r1 = Math.min(r0 + tile, rows), c1 = Math.min(c0 + tile, cols);
      for (let r = r0; r < r1; r++) {
        for (let c = c0; c < c1; c++) out[c * rows + r] = data[r * cols + c];
      }
    }
  }
  return out;
}
