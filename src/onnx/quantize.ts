/**
 * A float32 graph with its weights' products in int8, as ONNX Runtime's
 * `onnxruntime.quantization.quantize_dynamic(model, out, op_types_to_quantize=["MatMul"])`
 * rewrites it (every other option its default: int8 weights, `MatMulConstBOnly`): each `MatMul`
 * whose second input is a weight becomes
 *
 * ```
 * DynamicQuantizeLinear(x) → x_quantized (uint8), x_scale, x_zero_point   (once per tensor)
 * MatMulInteger(x_quantized, W_quantized (int8), x_zero_point, W_zero_point)
 * Cast(to float) · Mul(x_scale, W_scale)
 * ```
 *
 * with the weight quantized per tensor, symmetric, to int8: `scale = 2·max|W| / 254`,
 * `W_quantized = clip(round(W / scale), −128, 127)`, zero point 0, rounding half to even in the
 * same float32/float64 steps as `onnxruntime.quantization.quant_utils`, so the bytes equal ONNX
 * Runtime's. A `Gemm` with a weight is first a `MatMul` (its weight transposed when `transB`)
 * and an `Add` of its bias, as ONNX Runtime's quantizer rewrites it. The products of
 * activations (attention's scores and context) stay float32, as do the patch embedding's `Conv`
 * (0.7 % of ViT-B's weights), LayerNorm, Softmax and GELU.
 *
 * Why these choices: int8 weights are ONNX Runtime's default and its fast kernels on x86 (u8s8;
 * uint8 weights run about 1.5× slower on ViT-B/16 here), and leaving the `Conv` alone keeps
 * `ConvInteger` out, which ONNX Runtime Web long ran with uint8 weights only (transformers.js's
 * converter switches a model with a `Conv` to uint8 weights for that reason). The operators
 * left (`DynamicQuantizeLinear`, `MatMulInteger`, `Cast`, `Mul`) run on every ONNX Runtime,
 * native and web.
 *
 * @module
 */

import { DATA_TYPES, int, type OnnxGraph, type OnnxNode, type OnnxTensor } from "./ir.ts";
import { transposeWeight } from "../model/vit.ts";

/** A weight quantized per tensor to int8. */
export interface QuantizedWeight {
  /** The values, `clip(round(W / scale), −128, 127)`. */
  data: Int8Array;
  /** The scale (a float32). */
  scale: number;
}

const FLOAT32_TINY = 1.1754943508222875e-38;

/** NumPy's `round`: halves to the even neighbour. */
function roundHalfEven(v: number): number {
  const r = Math.round(v); // halves up
  return r - v === 0.5 && r & 1 ? r - 1 : r;
}

/**
 * `data` quantized to int8 per tensor, symmetric, exactly as ONNX Runtime's
 * `quantize_data(data, TensorProto.INT8, symmetric=True)` does.
 *
 * @example
 * ```ts
 * import { quantizeInt8 } from "./quantize.ts";
 * const q = quantizeInt8(Float32Array.from([-1, 0, 0.5, 1]));
 * console.log(Array.from(q.data)); // [ -127, 0, 64, 127 ]
 * ```
 */
export function quantizeInt8(data: Float32Array): QuantizedWeight {
  let absMax = 0; // the range always holds 0
  for (let i = 0; i < data.length; i++) {
    const v = Math.abs(data[i]);
    if (v > absMax) absMax = v;
  }
  const range = Math.fround(absMax + absMax); // float32, as NumPy subtracts two float32 scalars
  let scale = range / 254; // float64
  if (scale < FLOAT32_TINY) scale = 1;
  scale = Math.fround(scale);
  const out = new Int8Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const q = roundHalfEven(Math.fround(data[i] / scale)); // as NumPy divides two float32
    out[i] = q < -128 ? -128 : q > 127 ? 127 : q;
  }
  return { data: out, scale };
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
  /** A weight, transposed when `transposed`, quantized (per tensor: its layout does not change the values). */
  const quantizeWeight = (w: string, transposed: boolean): [string, string, string] => {
    const t = weights.get(w)!;
    const { data, shape } = transposed
      ? transposeWeight(t.data as Float32Array, t.dims)
      : { data: t.data as Float32Array, shape: t.dims };
    const q = quantizeInt8(data);
    removed.add(w);
    const name = `${w}_quantized`;
    added.push(
      { name: `${w}_scale`, dims: [], type: "float32", data: Float32Array.of(q.scale) },
      { name: `${w}_zero_point`, dims: [], type: "int8", data: Int8Array.of(0) },
      { name, dims: [...shape], type: "int8", data: q.data },
    );
    return [name, `${w}_scale`, `${w}_zero_point`];
  };
  /** `n`'s product as MatMulInteger, dequantized into `output`; `transposed`: W is `[out, in]`. */
  const integerProduct = (n: OnnxNode, output: string, transposed: boolean) => {
    const [xq, xs, xz] = quantizeActivation(n.inputs[0]);
    const [wq, ws, wz] = quantizeWeight(n.inputs[1], transposed);
    const name = `${n.name}_quant`, integer = `${n.outputs[0]}_output_quantized`;
    const scales = `${name}_scales_mul:0`;
    node({ op: "Mul", name: `${name}_scales_mul`, inputs: [xs, ws], outputs: [scales] });
    node({ op: "MatMulInteger", name, inputs: [xq, wq, xz, wz], outputs: [integer] });
    node({
      op: "Cast",
      name: `${integer}_cast`,
      inputs: [integer],
      outputs: [`${integer}_cast_output`],
      attributes: { to: int(DATA_TYPES.float32) },
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
      const matmul = { ...n, name: `${n.name}_MatMul`, outputs: [product] };
      integerProduct(matmul, product, n.attributes.transB?.value === 1);
      if (bias) {
        node({ op: "Add", name: `${n.name}_Add`, inputs: [product, bias], outputs: n.outputs });
      }
    } else if (n.op === "MatMul" && isWeight(n.inputs[1])) {
      integerProduct(n, n.outputs[0], false);
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
