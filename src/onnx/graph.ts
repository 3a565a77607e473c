/**
 * A classifier as an ONNX model: the merged ViT (LoRA folded into the weights, as
 * `ViTClassifier.saveMerged` writes it) and its head, `pixel_values [batch, C, S, S]` →
 * `logits [batch, labels]`, for ONNX Runtime (`ort.ts`) and for any other ONNX consumer
 * (transformers.js reads it from a model folder's `onnx/model.onnx`).
 *
 * The ONNX protobuf is written here (a few dozen lines of protobuf encoding: no dependency),
 * opset 17 (`LayerNormalization`). Two layouts of the same arithmetic:
 *
 * - `"fused"` (the default, what `ort.ts` runs): tokens as rows of one `[batch·tokens,
 *   hidden]` matrix, every linear layer a `Gemm` with its bias (the weight as the checkpoint
 *   stores it, `transB`), query, key and value in one `Gemm` of the three weights stacked; the
 *   last layer computes the CLS token alone past its keys and values (its query, attention
 *   row, output projection and MLP: what the classifier reads), which spares a twelfth of
 *   ViT-B's products;
 * - `"torch"`: the graph `torch.onnx.export` makes of transformers' `ViTForImageClassification`
 *   (what Optimum exports and transformers.js users download): `MatMul` + `Add` on
 *   `[batch, tokens, hidden]`, separate query, key and value, the scores divided by √d. The
 *   benchmark runs transformers.js on this one.
 *
 * GELU is `x · 0.5 · (1 + erf(x / √2))`, the pattern ONNX Runtime fuses into one kernel.
 *
 * @module
 */

import { VitLoraError } from "../core/errors.ts";
import { tf } from "../core/tf.ts";
import type { ViTClassifier } from "../model/classifier.ts";
import type { ViTConfig } from "../model/config.ts";
import { type Float32TensorData, tensorData } from "../model/safetensors.ts";

/** The graph's layout: see the module's documentation. */
export type OnnxLayout = "fused" | "torch";

/** Options of {@link exportOnnx} and {@link encodeViTOnnx}. */
export interface OnnxExportOptions {
  /** `"fused"` (default) or `"torch"`. */
  layout?: OnnxLayout;
}

/**
 * `clf` as an ONNX model (the bytes of a `.onnx` file): its merged weights (LoRA folded in)
 * and head, input `pixel_values`, output `logits`, the batch dimension free.
 *
 * @example
 * ```ts ignore
 * const onnx = await exportOnnx(clf);
 * await Deno.writeFile("model.onnx", onnx);
 * ```
 */
export async function exportOnnx(
  clf: ViTClassifier,
  options: OnnxExportOptions = {},
): Promise<Uint8Array> {
  clf.check();
  const tensors: Record<string, Float32TensorData> = {};
  const merged = clf.vit.mergedTensors();
  try {
    for (const [name, t] of merged) tensors[`vit.${name}`] = await tensorData(t);
  } finally {
    tf.dispose([...merged.values()]);
  }
  tensors["classifier.weight"] = await tensorData(clf.classifier.weight);
  tensors["classifier.bias"] = await tensorData(clf.classifier.bias);
  return encodeViTOnnx(clf.config, tensors, options);
}

/**
 * A `ViTForImageClassification` checkpoint's tensors (transformers' names: `vit.…`,
 * `classifier.weight`, `classifier.bias`) as an ONNX model.
 */
export function encodeViTOnnx(
  config: ViTConfig,
  tensors: Record<string, Float32TensorData>,
  options: OnnxExportOptions = {},
): Uint8Array {
  const layout = options.layout ?? "fused";
  const g = new GraphBuilder(tensors);
  const {
    hidden_size: h,
    num_attention_heads: heads,
    num_hidden_layers: layers,
    num_channels: c,
    patch_size: p,
    image_size: s,
    layer_norm_eps: eps,
  } = config;
  const d = h / heads;
  const grid = Math.floor(s / p), tokens = grid * grid + 1;
  const labels = tensors["classifier.bias"]?.shape[0];
  if (!labels) throw new VitLoraError("exportOnnx: the checkpoint has no classifier.bias");

  // patch embedding, CLS token, position embeddings: [batch, tokens, hidden]
  const conv = g.node("Conv", [
    "pixel_values",
    g.weight("vit.embeddings.patch_embeddings.projection.weight"),
    g.weight("vit.embeddings.patch_embeddings.projection.bias"),
  ], { kernel_shape: ints([p, p]), strides: ints([p, p]) }); // [batch, hidden, grid, grid]
  const patches = g.node("Transpose", [g.reshape(conv, [0, h, -1])], { perm: ints([0, 2, 1]) });
  const batch = g.node("Shape", ["pixel_values"], { start: int(0), end: int(1) }); // [1]
  const clsShape = g.node("Concat", [batch, g.constant([1, h], "int64")], { axis: int(0) });
  const cls = g.node("Expand", [g.weight("vit.embeddings.cls_token"), clsShape]);
  let x = g.node("Add", [
    g.node("Concat", [cls, patches], { axis: int(1) }),
    g.weight("vit.embeddings.position_embeddings"),
  ]);
  const fused = layout === "fused";
  if (fused) x = g.reshape(x, [-1, h]); // [batch·tokens, hidden]

  const layerNorm = (input: string, prefix: string) =>
    g.node("LayerNormalization", [
      input,
      g.weight(`${prefix}.weight`),
      g.weight(`${prefix}.bias`),
    ], { axis: int(-1), epsilon: float(eps) });
  // x Wᵀ + b: a Gemm on rows (fused), MatMul + Add on [batch, tokens, in] (torch)
  const linear = (input: string, module: string) => {
    const bias = tensors[`${module}.bias`] ? g.weight(`${module}.bias`) : undefined;
    if (fused) {
      return g.node("Gemm", [input, g.weight(`${module}.weight`), ...(bias ? [bias] : [])], {
        transB: int(1),
      });
    }
    const y = g.node("MatMul", [input, g.transposedWeight(`${module}.weight`)]);
    return bias ? g.node("Add", [bias, y]) : y;
  };
  const headsOf = (y: string) =>
    // → [batch, heads, tokens, d]
    g.node("Transpose", [g.reshape(y, [fused ? -1 : 0, fused ? tokens : 0, heads, d])], {
      perm: ints([0, 2, 1, 3]),
    });

  /** A token's rows, `[batch·tokens, hidden]` → `[batch, hidden]` (fused layout). */
  const clsRows = (y: string) =>
    g.node("Gather", [g.reshape(y, [-1, tokens, h]), g.constant([0], "int64", [])], {
      axis: int(1),
    });
  /** `[batch·tokens, count·hidden]` → `count` tensors `[batch, heads, tokens, d]`. */
  const splitHeads = (y: string, count: number) => {
    const split = g.node("Transpose", [g.reshape(y, [-1, tokens, count, heads, d])], {
      perm: ints([2, 0, 3, 1, 4]),
    }); // [count, batch, heads, tokens, d]
    return Array.from(
      { length: count },
      (_, j) => g.node("Gather", [split, g.constant([j], "int64", [])], { axis: int(0) }),
    );
  };
  const gemm = (input: string, w: { weight: string; bias?: string }) =>
    g.node("Gemm", [input, w.weight, ...(w.bias ? [w.bias] : [])], { transB: int(1) });

  for (let i = 0; i < layers; i++) {
    const prefix = `vit.encoder.layer.${i}`;
    const attn = `${prefix}.attention.attention`;
    const normed = layerNorm(x, `${prefix}.layernorm_before`);
    const names = (...ms: string[]) => ms.map((m) => `${attn}.${m}`);
    let q: string, k: string, v: string;
    if (fused && i === layers - 1) {
      // The last layer feeds the classifier through the CLS token alone: only its query, its
      // attention row, its output projection and its MLP are needed (keys and values still
      // come from every token). A twelfth of the encoder's products is spared.
      [k, v] = splitHeads(gemm(normed, g.stacked(`${attn}.kv`, names("key", "value"))), 2);
      const query = g.stacked(`${attn}.q`, names("query"));
      q = g.reshape(gemm(clsRows(normed), query), [-1, heads, 1, d]);
      x = clsRows(x); // [batch, hidden]
    } else if (fused) {
      [q, k, v] = splitHeads(
        gemm(normed, g.stacked(`${attn}.qkv`, names("query", "key", "value"))),
        3,
      );
    } else {
      [q, k, v] = ["query", "key", "value"].map((m) => headsOf(linear(normed, `${attn}.${m}`)));
    }
    const kT = g.node("Transpose", [k], { perm: ints([0, 1, 3, 2]) });
    const scores = fused
      ? g.node("Mul", [g.node("MatMul", [q, kT]), g.constant([1 / Math.sqrt(d)], "float", [])])
      : g.node("Div", [g.node("MatMul", [q, kT]), g.constant([Math.sqrt(d)], "float", [])]);
    const probs = g.node("Softmax", [scores], { axis: int(-1) });
    const context = g.reshape(
      g.node("Transpose", [g.node("MatMul", [probs, v])], { perm: ints([0, 2, 1, 3]) }),
      fused ? [-1, h] : [0, 0, h],
    );
    const h1 = g.node("Add", [linear(context, `${prefix}.attention.output.dense`), x]);
    const up = linear(layerNorm(h1, `${prefix}.layernorm_after`), `${prefix}.intermediate.dense`);
    x = g.node("Add", [linear(activation(g, config.hidden_act, up), `${prefix}.output.dense`), h1]);
  }
  // fused: x is already the CLS token's [batch, hidden] (LayerNorm is per token)
  const features = fused
    ? layerNorm(x, "vit.layernorm")
    : g.node("Gather", [layerNorm(x, "vit.layernorm"), g.constant([0], "int64", [])], {
      axis: int(1),
    });
  g.node("Gemm", [features, g.weight("classifier.weight"), g.weight("classifier.bias")], {
    transB: int(1),
  }, "logits");
  return g.encode({
    inputs: [{ name: "pixel_values", shape: ["batch", c, s, s] }],
    outputs: [{ name: "logits", shape: ["batch", labels] }],
  });
}

function activation(g: GraphBuilder, kind: ViTConfig["hidden_act"], x: string): string {
  switch (kind) {
    case "gelu": { // x · 0.5 · (1 + erf(x / √2)), as torch exports it (ONNX Runtime fuses it)
      const erf = g.node("Erf", [g.node("Div", [x, g.constant([Math.SQRT2], "float", [])])]);
      const scaled = g.node("Mul", [x, g.node("Add", [erf, g.constant([1], "float", [])])]);
      return g.node("Mul", [scaled, g.constant([0.5], "float", [])]);
    }
    case "gelu_new":
    case "gelu_pytorch_tanh": { // 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))
      const cube = g.node("Mul", [x, g.node("Mul", [x, x])]);
      const inner = g.node("Mul", [
        g.node("Add", [x, g.node("Mul", [cube, g.constant([0.044715], "float", [])])]),
        g.constant([Math.sqrt(2 / Math.PI)], "float", []),
      ]);
      const t = g.node("Add", [g.node("Tanh", [inner]), g.constant([1], "float", [])]);
      return g.node("Mul", [g.node("Mul", [x, t]), g.constant([0.5], "float", [])]);
    }
    case "relu":
      return g.node("Relu", [x]);
    case "silu":
    case "swish":
      return g.node("Mul", [x, g.node("Sigmoid", [x])]);
  }
}

// ---- the graph ---------------------------------------------------------------------------

type Attribute =
  | { kind: "int"; value: number }
  | { kind: "ints"; value: number[] }
  | { kind: "float"; value: number };

const int = (value: number): Attribute => ({ kind: "int", value });
const ints = (value: number[]): Attribute => ({ kind: "ints", value });
const float = (value: number): Attribute => ({ kind: "float", value });

interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  attributes: Record<string, Attribute>;
}

interface Initializer {
  name: string;
  dims: number[];
  type: "float" | "int64";
  data: Uint8Array;
}

/** Nodes and initializers, named as they are made. */
class GraphBuilder {
  readonly nodes: Node[] = [];
  readonly initializers: Initializer[] = [];
  readonly #tensors: Record<string, Float32TensorData>;
  readonly #names = new Set<string>();
  #next = 0;

  constructor(tensors: Record<string, Float32TensorData>) {
    this.#tensors = tensors;
  }

  /** A node; returns its (first) output's name. */
  node(op: string, inputs: string[], attributes: Record<string, Attribute> = {}, output?: string) {
    const name = output ?? `${op.toLowerCase()}_${this.#next++}`;
    this.nodes.push({ op, inputs, outputs: [name], attributes });
    return name;
  }

  reshape(x: string, shape: number[]): string {
    return this.node("Reshape", [x, this.constant(shape, "int64")]);
  }

  /** A checkpoint tensor as an initializer of the same name (once). */
  weight(name: string): string {
    if (this.#names.has(name)) return name;
    const t = this.#get(name);
    this.#add(name, [...t.shape], "float", bytesOf(t.data));
    return name;
  }

  /** A linear weight `[out, in]` transposed to `[in, out]` (for MatMul). */
  transposedWeight(name: string): string {
    const key = `${name}_transposed`;
    if (this.#names.has(key)) return key;
    const t = this.#get(name);
    const [rows, cols] = t.shape;
    const out = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) out[c * rows + r] = t.data[r * cols + c];
    }
    this.#add(key, [cols, rows], "float", bytesOf(out));
    return key;
  }

  /** Linear layers' weights stacked by rows (and their biases, when all have one). */
  stacked(name: string, modules: string[]): { weight: string; bias?: string } {
    const ws = modules.map((m) => this.#get(`${m}.weight`));
    const cols = ws[0].shape[1];
    const rows = ws.reduce((n, w) => n + w.shape[0], 0);
    const weight = new Float32Array(rows * cols);
    let at = 0;
    for (const w of ws) {
      weight.set(w.data, at);
      at += w.data.length;
    }
    this.#add(`${name}.weight`, [rows, cols], "float", bytesOf(weight));
    const biases = modules.map((m) => this.#tensors[`${m}.bias`]);
    if (biases.every((b) => !b)) return { weight: `${name}.weight` };
    // a missing bias (some but not all) is zero
    const bias = new Float32Array(rows);
    at = 0;
    modules.forEach((_, j) => {
      if (biases[j]) bias.set(biases[j].data, at);
      at += ws[j].shape[0];
    });
    this.#add(`${name}.bias`, [rows], "float", bytesOf(bias));
    return { weight: `${name}.weight`, bias: `${name}.bias` };
  }

  /** A constant initializer (`dims` default: a vector). */
  constant(values: number[], type: "float" | "int64", dims: number[] = [values.length]): string {
    const name = `const_${this.#next++}`;
    const data = type === "float"
      ? bytesOf(Float32Array.from(values))
      : new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer);
    this.#add(name, dims, type, data);
    return name;
  }

  #get(name: string): Float32TensorData {
    const t = this.#tensors[name];
    if (!t) throw new VitLoraError(`exportOnnx: the checkpoint has no tensor ${name}`);
    return t;
  }

  #add(name: string, dims: number[], type: "float" | "int64", data: Uint8Array): void {
    this.#names.add(name);
    this.initializers.push({ name, dims, type, data });
  }

  /** The ModelProto's bytes. */
  encode(io: {
    inputs: { name: string; shape: (number | string)[] }[];
    outputs: { name: string; shape: (number | string)[] }[];
  }): Uint8Array {
    const graph = new ProtoWriter();
    for (const n of this.nodes) graph.message(1, nodeProto(n));
    graph.string(2, "vit");
    for (const t of this.initializers) graph.message(5, tensorProto(t));
    for (const i of io.inputs) graph.message(11, valueInfo(i.name, i.shape));
    for (const o of io.outputs) graph.message(12, valueInfo(o.name, o.shape));
    const model = new ProtoWriter();
    model.varint(1, 8); // ir_version 8 (ONNX 1.13, opset 17 and below)
    model.string(2, "vit-lora");
    model.message(7, graph);
    const opset = new ProtoWriter();
    opset.string(1, "");
    opset.varint(2, 17);
    model.message(8, opset);
    return model.bytes();
  }
}

function nodeProto(n: Node): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.outputs[0]);
  w.string(4, n.op);
  for (const [name, a] of Object.entries(n.attributes)) {
    const attr = new ProtoWriter();
    attr.string(1, name);
    if (a.kind === "float") {
      attr.float(2, a.value);
      attr.varint(20, 1);
    } else if (a.kind === "int") {
      attr.varint(3, a.value);
      attr.varint(20, 2);
    } else {
      for (const v of a.value) attr.varint(8, v);
      attr.varint(20, 7);
    }
    w.message(5, attr);
  }
  return w;
}

function tensorProto(t: Initializer): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of t.dims) w.varint(1, d);
  w.varint(2, t.type === "float" ? 1 : 7);
  w.string(8, t.name);
  w.bytesField(9, t.data);
  return w;
}

function valueInfo(name: string, shape: (number | string)[]): ProtoWriter {
  const dims = new ProtoWriter();
  for (const d of shape) {
    const dim = new ProtoWriter();
    if (typeof d === "number") dim.varint(1, d);
    else dim.string(2, d);
    dims.message(1, dim);
  }
  const tensor = new ProtoWriter();
  tensor.varint(1, 1); // float
  tensor.message(2, dims);
  const type = new ProtoWriter();
  type.message(1, tensor);
  const info = new ProtoWriter();
  info.string(1, name);
  info.message(2, type);
  return info;
}

function bytesOf(data: Float32Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * A protobuf message being written: parts kept by reference (a weight's bytes are copied
 * once, into the final buffer), lengths summed as they are added.
 */
class ProtoWriter {
  readonly parts: Uint8Array[] = [];
  length = 0;
  #scratch: number[] = [];

  #push(part: Uint8Array): void {
    this.parts.push(part);
    this.length += part.length;
  }

  #flush(): void {
    if (this.#scratch.length) {
      this.#push(Uint8Array.from(this.#scratch));
      this.#scratch = [];
    }
  }

  #raw(value: number): void {
    // a varint of a non-negative integer, or a negative one as 10 bytes (two's complement)
    let v = BigInt.asUintN(64, BigInt(value));
    do {
      const byte = Number(v & 0x7fn);
      v >>= 7n;
      this.#scratch.push(v ? byte | 0x80 : byte);
    } while (v);
  }

  varint(field: number, value: number): void {
    this.#raw(field << 3);
    this.#raw(value);
  }

  float(field: number, value: number): void {
    this.#raw((field << 3) | 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.#scratch.push(...b);
  }

  bytesField(field: number, data: Uint8Array): void {
    this.#raw((field << 3) | 2);
    this.#raw(data.length);
    this.#flush();
    this.#push(data);
  }

  string(field: number, text: string): void {
    this.bytesField(field, new TextEncoder().encode(text));
  }

  message(field: number, child: ProtoWriter): void {
    child.#flush();
    this.#raw((field << 3) | 2);
    this.#raw(child.length);
    this.#flush();
    for (const part of child.parts) this.#push(part);
  }

  bytes(): Uint8Array {
    this.#flush();
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const part of this.parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
}
