/**
 * A classifier as an ONNX graph: the ViT and its head, `pixel_values [batch, C, S, S]` →
 * `logits [batch, labels]`, built from a `ViTForImageClassification` checkpoint's tensors
 * (transformers' names), opset 17 (`LayerNormalization`). `export.ts` writes it (and its float16
 * and int8 versions, `float16.ts` and `quantize.ts`) for transformers.js and ONNX Runtime;
 * `ort.ts` runs it on the CPU. Two layouts of the same arithmetic:
 *
 * - `"fused"` (the default): tokens as rows of one `[batch·tokens, hidden]` matrix, every
 *   linear layer a `Gemm` with its bias (the weight as the checkpoint stores it, `transB`),
 *   query, key and value in one `Gemm` of the three weights stacked; the last layer computes
 *   the CLS token alone past its keys and values (its query, attention row, output projection
 *   and MLP: what the classifier reads), which spares a twelfth of ViT-B's products;
 * - `"torch"`: the graph `torch.onnx.export` makes of transformers' `ViTForImageClassification`
 *   (what Optimum exports): `MatMul` + `Add` on `[batch, tokens, hidden]`, separate query, key
 *   and value, the scores divided by √d.
 *
 * GELU is `x · 0.5 · (1 + erf(x / √2))`, the pattern ONNX Runtime fuses into one kernel.
 *
 * With `adapterInputs` (fused layout), the LoRA branches and the classifier are graph inputs
 * rather than folded into the weights: the frozen weights stay initializers, and each linear
 * group with LoRA adds `(x Aᵀ) Bᵀ` to its product (`A` the group's LoRA A matrices stacked, `B`
 * their B matrices scaled, laid out block by block: {@link adapterGroups}). One session then
 * serves every optimizer step of a training run (see `ort.ts`).
 *
 * @module
 */

import { VitLoraError } from "../core/errors.ts";
import { linearShape, numTokens, type ViTConfig } from "../model/config.ts";
import { transposeWeight } from "../model/vit.ts";
import type { Float32TensorData } from "../model/safetensors.ts";
import { float, GraphBuilder, int, ints, type OnnxGraph, type OnnxValue } from "./ir.ts";

/** The graph's layout: see the module's documentation. */
export type OnnxLayout = "fused" | "torch";

/** LoRA on the graph's inputs: the rank of each module that has it. */
export interface AdapterInputs {
  /** LoRA ranks by module (`encoder.layer.0.attention.attention.query`, no `vit.` prefix). */
  ranks: ReadonlyMap<string, number>;
}

/** Options of {@link buildViTGraph}. */
export interface ViTGraphOptions {
  /** `"fused"` (default) or `"torch"`. */
  layout?: OnnxLayout;
  /** LoRA and the classifier as graph inputs (fused layout only; see the module's doc). */
  adapterInputs?: AdapterInputs;
}

/** Linear modules computed by one product: their outputs side by side. */
export interface LinearGroup {
  /** The group's name (`vit.encoder.layer.0.attention.attention.qkv`, or the module's). */
  name: string;
  /** The modules (without `vit.`), in output order. */
  modules: string[];
}

/**
 * The linear groups of `layer`'s products in a layout: in the fused layout query, key and value
 * are one group (the last layer: key and value, and query alone); every other module is a
 * group of its own.
 */
export function linearGroups(config: ViTConfig, layout: OnnxLayout, layer: number): LinearGroup[] {
  const attn = `encoder.layer.${layer}.attention.attention`;
  const single = (m: string): LinearGroup => ({ name: `vit.${m}`, modules: [m] });
  const qkv = layout === "torch"
    ? ["query", "key", "value"].map((m) => single(`${attn}.${m}`))
    : layer === config.num_hidden_layers - 1
    ? [
      { name: `vit.${attn}.kv`, modules: [`${attn}.key`, `${attn}.value`] },
      { name: `vit.${attn}.q`, modules: [`${attn}.query`] },
    ]
    : [{ name: `vit.${attn}.qkv`, modules: ["query", "key", "value"].map((m) => `${attn}.${m}`) }];
  const p = `encoder.layer.${layer}`;
  return [
    ...qkv,
    ...["attention.output.dense", "intermediate.dense", "output.dense"].map((m) =>
      single(`${p}.${m}`)
    ),
  ];
}

/** A linear group with LoRA, as its graph inputs lay it out. */
export interface AdapterGroup extends LinearGroup {
  /** The input holding the stacked A matrices, `[Σr, in]`. */
  inputA: string;
  /** The input holding the scaled B matrices, `[Σout, Σr]`. */
  inputB: string;
  /** The group's input width. */
  inFeatures: number;
  /** Its output width (all its modules'). */
  outFeatures: number;
  /** Each LoRA module's rows of `B` (output offset) and columns (rank offset) and rank. */
  parts: { module: string; outOffset: number; out: number; rankOffset: number; r: number }[];
  /** Σr. */
  rank: number;
}

/** The graph inputs of `adapterInputs`: each linear group with LoRA, in graph order. */
export function adapterGroups(config: ViTConfig, adapterInputs: AdapterInputs): AdapterGroup[] {
  const out: AdapterGroup[] = [];
  for (let i = 0; i < config.num_hidden_layers; i++) {
    for (const group of linearGroups(config, "fused", i)) {
      let outOffset = 0, rank = 0, inFeatures = 0;
      const parts: AdapterGroup["parts"] = [];
      for (const module of group.modules) {
        const [o, inp] = linearShape(config, module);
        inFeatures = inp;
        const r = adapterInputs.ranks.get(module);
        if (r) {
          parts.push({ module, outOffset, out: o, rankOffset: rank, r });
          rank += r;
        }
        outOffset += o;
      }
      if (parts.length === 0) continue;
      out.push({
        ...group,
        inputA: `${group.name}.lora_A`,
        inputB: `${group.name}.lora_B`,
        inFeatures,
        outFeatures: outOffset,
        parts,
        rank,
      });
    }
  }
  return out;
}

/**
 * A `ViTForImageClassification` checkpoint's tensors (transformers' names: `vit.…`,
 * `classifier.weight`, `classifier.bias`; the LoRA merged in, or with `adapterInputs` the frozen
 * weights) as an ONNX graph. A missing tensor is a {@link VitLoraError}.
 */
export function buildViTGraph(
  config: ViTConfig,
  tensors: Record<string, Float32TensorData>,
  options: ViTGraphOptions = {},
): OnnxGraph {
  const layout = options.layout ?? "fused";
  const fused = layout === "fused";
  const lora = options.adapterInputs;
  if (lora && !fused) throw new VitLoraError("exportOnnx: adapter inputs need the fused layout");
  const g = new GraphBuilder();
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
  const tokens = numTokens(config);
  const labels = tensors["classifier.bias"]?.shape[0];
  if (!labels) throw new VitLoraError("exportOnnx: the checkpoint has no classifier.bias");
  const inputs: OnnxValue[] = [{
    name: "pixel_values",
    type: "float32",
    shape: ["batch", c, s, s],
  }];

  const get = (name: string): Float32TensorData => {
    const t = tensors[name];
    if (!t) throw new VitLoraError(`exportOnnx: the checkpoint has no tensor ${name}`);
    return t;
  };
  /** A checkpoint tensor as an initializer of the same name (once). */
  const weight = (name: string): string => {
    if (!g.has(name)) {
      const t = get(name);
      g.add({ name, dims: [...t.shape], type: "float32", data: t.data });
    }
    return name;
  };
  /** A linear weight `[out, in]` transposed to `[in, out]` (for MatMul). */
  const transposedWeight = (name: string): string => {
    const t = get(name);
    const { data, shape } = transposeWeight(t.data, t.shape);
    g.add({ name: `${name}_transposed`, dims: shape, type: "float32", data });
    return `${name}_transposed`;
  };
  /** A group's weights stacked by rows, and its biases (zero where a module has none). */
  const stacked = (group: LinearGroup): { weight: string; bias?: string } => {
    if (group.modules.length === 1) {
      const m = `vit.${group.modules[0]}`;
      return { weight: weight(`${m}.weight`), bias: tensors[`${m}.bias`] && weight(`${m}.bias`) };
    }
    const ws = group.modules.map((m) => get(`vit.${m}.weight`));
    const cols = ws[0].shape[1];
    const rows = ws.reduce((n, w) => n + w.shape[0], 0);
    const data = new Float32Array(rows * cols);
    let at = 0;
    for (const w of ws) {
      data.set(w.data, at);
      at += w.data.length;
    }
    g.add({ name: `${group.name}.weight`, dims: [rows, cols], type: "float32", data });
    const biases = group.modules.map((m) => tensors[`vit.${m}.bias`]);
    if (biases.every((b) => !b)) return { weight: `${group.name}.weight` };
    const bias = new Float32Array(rows);
    at = 0;
    group.modules.forEach((_, j) => {
      if (biases[j]) bias.set(biases[j].data, at);
      at += ws[j].shape[0];
    });
    g.add({ name: `${group.name}.bias`, dims: [rows], type: "float32", data: bias });
    return { weight: `${group.name}.weight`, bias: `${group.name}.bias` };
  };
  const loraGroups = new Map(lora ? adapterGroups(config, lora).map((a) => [a.name, a]) : []);
  /** x Wᵀ + b for a group: a Gemm on rows (fused, + the LoRA inputs' product), MatMul + Add (torch). */
  const linear = (input: string, group: LinearGroup): string => {
    if (!fused) {
      const m = `vit.${group.modules[0]}`;
      const y = g.node("MatMul", [input, transposedWeight(`${m}.weight`)]);
      return tensors[`${m}.bias`] ? g.node("Add", [weight(`${m}.bias`), y]) : y;
    }
    const w = stacked(group);
    const y = g.node("Gemm", [input, w.weight, ...(w.bias ? [w.bias] : [])], { transB: int(1) });
    const a = loraGroups.get(group.name);
    if (!a) return y;
    inputs.push(
      { name: a.inputA, type: "float32", shape: [a.rank, a.inFeatures] },
      { name: a.inputB, type: "float32", shape: [a.outFeatures, a.rank] },
    );
    const down = g.node("Gemm", [input, a.inputA], { transB: int(1) }); // [rows, Σr]
    return g.node("Gemm", [down, a.inputB, y], { transB: int(1) });
  };

  // patch embedding, CLS token, position embeddings: [batch, tokens, hidden]
  const conv = g.node("Conv", [
    "pixel_values",
    weight("vit.embeddings.patch_embeddings.projection.weight"),
    weight("vit.embeddings.patch_embeddings.projection.bias"),
  ], { kernel_shape: ints([p, p]), strides: ints([p, p]) }); // [batch, hidden, grid, grid]
  const patches = g.node("Transpose", [g.reshape(conv, [0, h, -1])], { perm: ints([0, 2, 1]) });
  const batch = g.node("Shape", ["pixel_values"], { start: int(0), end: int(1) }); // [1]
  const clsShape = g.node("Concat", [batch, g.constant([1, h], "int64")], { axis: int(0) });
  const cls = g.node("Expand", [weight("vit.embeddings.cls_token"), clsShape]);
  let x = g.node("Add", [
    g.node("Concat", [cls, patches], { axis: int(1) }),
    weight("vit.embeddings.position_embeddings"),
  ]);
  if (fused) x = g.reshape(x, [-1, h]); // [batch·tokens, hidden]

  const layerNorm = (input: string, prefix: string) =>
    g.node("LayerNormalization", [
      input,
      weight(`${prefix}.weight`),
      weight(`${prefix}.bias`),
    ], { axis: int(-1), epsilon: float(eps) });
  /** A token's rows, `[batch·tokens, hidden]` → `[batch, hidden]` (fused layout). */
  const clsRows = (y: string) =>
    g.node("Gather", [g.reshape(y, [-1, tokens, h]), g.constant([0], "int64", [])], {
      axis: int(1),
    });
  /** `[batch·tokens, count·hidden]` → `count` tensors `[batch, heads, tokens, d]`. */
  const splitHeads = (y: string, count: number) => {
    if (!fused) { // [batch, tokens, hidden] → [batch, heads, tokens, d]
      return [g.node("Transpose", [g.reshape(y, [0, 0, heads, d])], { perm: ints([0, 2, 1, 3]) })];
    }
    const split = g.node("Transpose", [g.reshape(y, [-1, tokens, count, heads, d])], {
      perm: ints([2, 0, 3, 1, 4]),
    }); // [count, batch, heads, tokens, d]
    return Array.from(
      { length: count },
      (_, j) => g.node("Gather", [split, g.constant([j], "int64", [])], { axis: int(0) }),
    );
  };

  for (let i = 0; i < layers; i++) {
    const prefix = `vit.encoder.layer.${i}`;
    const normed = layerNorm(x, `${prefix}.layernorm_before`);
    const groups = linearGroups(config, layout, i);
    const qkv = groups.slice(0, -3), [out, up, down] = groups.slice(-3);
    let q: string, k: string, v: string;
    if (fused && i === layers - 1) {
      // The last layer feeds the classifier through the CLS token alone: only its query, its
      // attention row, its output projection and its MLP are needed (keys and values still
      // come from every token). A twelfth of the encoder's products is spared.
      [k, v] = splitHeads(linear(normed, qkv[0]), 2);
      q = g.reshape(linear(clsRows(normed), qkv[1]), [-1, heads, 1, d]);
      x = clsRows(x); // [batch, hidden]
    } else if (fused) {
      [q, k, v] = splitHeads(linear(normed, qkv[0]), 3);
    } else {
      [q, k, v] = qkv.map((group) => splitHeads(linear(normed, group), 1)[0]);
    }
    const kT = g.node("Transpose", [k], { perm: ints([0, 1, 3, 2]) });
    const scores = fused
      ? g.node("Mul", [g.node("MatMul", [q, kT]), g.constant([1 / Math.sqrt(d)], "float32", [])])
      : g.node("Div", [g.node("MatMul", [q, kT]), g.constant([Math.sqrt(d)], "float32", [])]);
    const probs = g.node("Softmax", [scores], { axis: int(-1) });
    const context = g.reshape(
      g.node("Transpose", [g.node("MatMul", [probs, v])], { perm: ints([0, 2, 1, 3]) }),
      fused ? [-1, h] : [0, 0, h],
    );
    const h1 = g.node("Add", [linear(context, out), x]);
    const hidden = linear(layerNorm(h1, `${prefix}.layernorm_after`), up);
    x = g.node("Add", [linear(activation(g, config.hidden_act, hidden), down), h1]);
  }
  // fused: x is already the CLS token's [batch, hidden] (LayerNorm is per token)
  const features = fused
    ? layerNorm(x, "vit.layernorm")
    : g.node("Gather", [layerNorm(x, "vit.layernorm"), g.constant([0], "int64", [])], {
      axis: int(1),
    });
  let head: string[];
  if (lora) {
    head = ["classifier.weight", "classifier.bias"];
    inputs.push(
      { name: head[0], type: "float32", shape: [labels, h] },
      { name: head[1], type: "float32", shape: [labels] },
    );
  } else {
    head = [weight("classifier.weight"), weight("classifier.bias")];
  }
  g.node("Gemm", [features, ...head], { transB: int(1) }, "logits");
  return {
    nodes: g.nodes,
    initializers: g.initializers,
    inputs,
    outputs: [{ name: "logits", type: "float32", shape: ["batch", labels] }],
  };
}

function activation(g: GraphBuilder, kind: ViTConfig["hidden_act"], x: string): string {
  const scalar = (v: number) => g.constant([v], "float32", []);
  switch (kind) {
    case "gelu": { // x · 0.5 · (1 + erf(x / √2)), as torch exports it (ONNX Runtime fuses it)
      const erf = g.node("Erf", [g.node("Div", [x, scalar(Math.SQRT2)])]);
      const scaled = g.node("Mul", [x, g.node("Add", [erf, scalar(1)])]);
      return g.node("Mul", [scaled, scalar(0.5)]);
    }
    case "gelu_new":
    case "gelu_pytorch_tanh": { // 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))
      const cube = g.node("Mul", [x, g.node("Mul", [x, x])]);
      const inner = g.node("Mul", [
        g.node("Add", [x, g.node("Mul", [cube, scalar(0.044715)])]),
        scalar(Math.sqrt(2 / Math.PI)),
      ]);
      const t = g.node("Add", [g.node("Tanh", [inner]), scalar(1)]);
      return g.node("Mul", [g.node("Mul", [x, t]), scalar(0.5)]);
    }
    case "relu":
      return g.node("Relu", [x]);
    case "silu":
    case "swish":
      return g.node("Mul", [x, g.node("Sigmoid", [x])]);
  }
}
