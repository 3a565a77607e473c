/**
 * The Vision Transformer (Dosovitskiy et al., 2021) with the semantics of transformers'
 * `modeling_vit.py`, written with tfjs ops that have gradients on every backend:
 *
 * 1. patch embedding: a convolution with kernel = stride = patch, done as a matrix product
 *    over the flattened patches (the same sums), row-major patch order;
 * 2. the CLS token first, then position embeddings added;
 * 3. pre-norm encoder layers: `h += attention(layernorm_before(h))`,
 *    `h += mlp(layernorm_after(h))`, attention scaled by 1/√head_dim, exact-erf GELU;
 * 4. the final `layernorm` (here on the CLS token, the only one a classifier reads).
 *
 * Hidden states stay 2-D (`[batch·tokens, hidden]`) so that every linear layer is a plain
 * 2-D matMul; frozen weights are kept transposed (`[in, out]`) for the same reason (and, for
 * WebGPU's backward pass, also as stored, `[out, in]`: see {@link Linear}). Names
 * follow the checkpoint's own (`layernorm_before`, `attention.attention.query`, …).
 *
 * Under `precision` `fp16` (WebGPU with shader-f16), the linear layers' weights are float16
 * (the query, key and value weights fused into one), the patch embedding a float16 product, and
 * each encoder layer one custom gradient in PyTorch's mixed precision (`half_layer.ts`). The
 * layers' parts are `layers.ts`'s.
 *
 * @module
 */

import {
  type Tensor,
  type Tensor1D,
  type Tensor2D,
  type Tensor3D,
  type Tensor4D,
  tf,
} from "../core/tf.ts";
import { LAYER_LINEARS, numTokens, patchGrid, type ViTConfig } from "./config.ts";
import { VitLoraError } from "../core/errors.ts";
import { formatShape } from "../core/shapes.ts";
import { fusedAttention } from "../backend/attention.ts";
import { type HalfTensor, packHalf } from "../backend/half.ts";
import { activation, Dropout, LayerNorm, Linear, type ViTLayer } from "./layers.ts";
import { encoderLayer16 } from "./half_layer.ts";
import type { Precision } from "./precision.ts";

export { Dropout, LayerNorm, Linear, LoraLayer, type ViTLayer } from "./layers.ts";

/**
 * Reads one checkpoint tensor by its `ViTModel` name (no `vit.` prefix): in the checkpoint's
 * layout, except the weights {@link takesTransposed} names, which come as `[in, out]`.
 */
export type TensorSource = (name: string) => Tensor;

/**
 * True for the weights a {@link ViTModel} keeps transposed, `[in, out]`: every linear layer's
 * and the patch projection's (flattened to `[hidden, C·p·p]` first). Loaders transpose these
 * as they read them, so a checkpoint is never held twice.
 *
 * @example
 * ```ts
 * import { takesTransposed } from "./vit.ts";
 * console.log(takesTransposed("encoder.layer.0.attention.attention.query.weight")); // true
 * console.log(takesTransposed("encoder.layer.0.layernorm_before.weight")); // false
 * ```
 */
export function takesTransposed(name: string): boolean {
  return name === "embeddings.patch_embeddings.projection.weight" ||
    (name.startsWith("encoder.layer.") && LAYER_LINEARS.some((m) => name.endsWith(`.${m}.weight`)));
}

/**
 * Transposes a row-major weight `[out, …in]` into `[in, out]` (the trailing dimensions
 * flattened), as {@link takesTransposed} weights are taken.
 *
 * @example
 * ```ts
 * import { transposeWeight } from "./vit.ts";
 * const t = transposeWeight(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
 * console.log(t.shape, t.data); // [3, 2] Float32Array [1, 4, 2, 5, 3, 6]
 * ```
 */
export function transposeWeight(
  data: Float32Array,
  shape: readonly number[],
): { data: Float32Array; shape: [number, number] } {
  const rows = shape[0], cols = data.length / rows;
  const out = new Float32Array(data.length);
  const block = 64; // tiles keep both sides in cache
  for (let r0 = 0; r0 < rows; r0 += block) {
    const r1 = Math.min(rows, r0 + block);
    for (let c0 = 0; c0 < cols; c0 += block) {
      const c1 = Math.min(cols, c0 + block);
      for (let r = r0; r < r1; r++) {
        for (let c = c0; c < c1; c++) out[c * rows + r] = data[r * cols + c];
      }
    }
  }
  return { data: out, shape: [cols, rows] };
}

/**
 * A ViT encoder (transformers' `ViTModel` without its pooler) over frozen weights.
 *
 * @example
 * ```ts ignore
 * import { tf, VIT_BASE_CONFIG } from "@lora/vit";
 * import { type Tensor, type Tensor4D, ViTModel } from "@lora/vit/model";
 * // a checkpoint's tensors by ViTModel name, the takesTransposed ones as [in, out]
 * declare const weights: Map<string, Tensor>;
 * declare const pixelValues: Tensor4D; // [batch, 3, 224, 224], normalised
 *
 * const vit = ViTModel.fromTensors(VIT_BASE_CONFIG, (name) => weights.get(name)!);
 * const cls = tf.tidy(() => vit.forward(pixelValues)); // [batch, hidden], no dropout
 * ```
 */
export class ViTModel {
  /** The model's configuration. */
  readonly config: ViTConfig;
  /** `embeddings.cls_token` `[1, 1, hidden]`. */
  readonly cls_token: Tensor3D;
  /** `embeddings.position_embeddings` `[1, tokens, hidden]`. */
  readonly position_embeddings: Tensor3D;
  /** `embeddings.patch_embeddings.projection` as a linear layer over flattened patches. */
  readonly projection: Linear;
  /** `encoder.layer.N`. */
  readonly layers: ViTLayer[];
  /** The final `layernorm`. */
  readonly layernorm: LayerNorm;
  /**
   * `fp16`: the linear layers' weights are float16 and the encoder runs in mixed precision
   * (`half_layer.ts`); `fp32`: all float32.
   */
  readonly precision: Precision;
  /** Every frozen tensor, by the name it was read under (see {@link ViTModel.tensors}). */
  #stored = new Map<string, Tensor>();

  private constructor(config: ViTConfig, read: TensorSource, precision: Precision) {
    this.config = config;
    this.precision = precision;
    const half = precision === "fp16";
    const get = (name: string) => {
      const t = read(name);
      if (!half) this.#stored.set(name, t);
      return t;
    };
    /** A weight as this model keeps it: float16 packed, its float32 source freed, or float32. */
    const weight = (t: Tensor): Tensor2D | HalfTensor => {
      if (!half) return t as Tensor2D;
      const h = packHalf(t);
      t.dispose();
      return h;
    };
    const linear = (name: string, hasBias = true) =>
      new Linear(
        weight(get(`${name}.weight`)),
        hasBias ? get(`${name}.bias`) as Tensor1D : undefined,
      );
    /** The query, key and value layers, float16 over one fused weight and bias. */
    const projections = (l: string) => {
      const names = ["query", "key", "value"].map((m) => `${l}.attention.attention.${m}`);
      if (!half) {
        const [query, key, value] = names.map((n) => linear(n, config.qkv_bias));
        return { query, key, value };
      }
      const h = config.hidden_size;
      const parts = names.map((n) => get(`${n}.weight`));
      const fused = tf.concat(parts, 1);
      tf.dispose(parts);
      const biases = config.qkv_bias ? names.map((n) => get(`${n}.bias`)) : undefined;
      const qkv = {
        weightT: weight(fused) as HalfTensor,
        bias: biases && tf.concat(biases) as Tensor1D,
      };
      if (biases) tf.dispose(biases);
      const [query, key, value] = [0, 1, 2].map((i) =>
        new Linear(qkv.weightT, qkv.bias, [i * h, (i + 1) * h])
      );
      return { query, key, value, qkv };
    };
    const norm = (name: string) =>
      new LayerNorm(
        get(`${name}.weight`) as Tensor1D,
        get(`${name}.bias`) as Tensor1D,
        config.layer_norm_eps,
      );
    this.cls_token = get("embeddings.cls_token") as Tensor3D;
    this.position_embeddings = get("embeddings.position_embeddings") as Tensor3D;
    // Conv2d weight [hidden, C, p, p] as a linear layer over patches flattened (C, py, px):
    // it comes as [C·p·p, hidden].
    this.projection = new Linear(
      weight(get("embeddings.patch_embeddings.projection.weight")),
      get("embeddings.patch_embeddings.projection.bias") as Tensor1D,
    );
    this.layers = [];
    for (let i = 0; i < config.num_hidden_layers; i++) {
      const l = `encoder.layer.${i}`;
      const layernorm_before = norm(`${l}.layernorm_before`);
      const { query, key, value, qkv } = projections(l);
      this.layers.push({
        layernorm_before,
        attention: { query, key, value, output: linear(`${l}.attention.output.dense`) },
        layernorm_after: norm(`${l}.layernorm_after`),
        intermediate: linear(`${l}.intermediate.dense`),
        output: linear(`${l}.output.dense`),
        qkv,
      });
    }
    this.layernorm = norm("layernorm");
  }

  /**
   * Builds the encoder, reading each tensor through `get` (by `ViTModel` name), which it takes
   * over. The caller checks the shapes first (see `vitTensorShapes`). With `precision` `fp16`
   * (WebGPU with shader-f16: see `resolvePrecision`), the linear layers' weights are kept as
   * float16 (the float32 ones read are freed) and the encoder runs in mixed precision.
   */
  static fromTensors(
    config: ViTConfig,
    get: TensorSource,
    options: { precision?: Precision } = {},
  ): ViTModel {
    return new ViTModel(config, get, options.precision ?? "fp32");
  }

  /**
   * The frozen tensors as this model holds them, by the names {@link ViTModel.fromTensors}
   * reads (linear weights transposed, `[in, out]`): what a copy of the model is built from.
   * They stay owned by the model; do not dispose them. A float32 model's only: a float16
   * model's weights are not float32 tensors (see {@link ViTModel.mergedTensors}).
   */
  tensors(): ReadonlyMap<string, Tensor> {
    if (this.precision === "fp16") {
      throw new VitLoraError(
        "this model's weights are float16 (precision fp16): it has no float32 tensors to copy (load it with precision fp32)",
      );
    }
    return this.#stored;
  }

  /** Every linear layer of the encoder by module name (`encoder.layer.N.attention.attention.query`, …). */
  linears(): Map<string, Linear> {
    const out = new Map<string, Linear>();
    this.layers.forEach((layer, i) => {
      const modules: Record<(typeof LAYER_LINEARS)[number], Linear> = {
        "attention.attention.query": layer.attention.query,
        "attention.attention.key": layer.attention.key,
        "attention.attention.value": layer.attention.value,
        "attention.output.dense": layer.attention.output,
        "intermediate.dense": layer.intermediate,
        "output.dense": layer.output,
      };
      for (const name of LAYER_LINEARS) out.set(`encoder.layer.${i}.${name}`, modules[name]);
    });
    return out;
  }

  /** Checks `pixelValues` against the config: `[batch, channels, image, image]`. */
  checkInput(pixelValues: Tensor): void {
    const { num_channels: c, image_size: s } = this.config;
    const [, ch, hh, ww] = pixelValues.shape;
    if (pixelValues.rank !== 4 || ch !== c || hh !== s || ww !== s) {
      throw new VitLoraError(
        `pixel values of shape ${
          formatShape(pixelValues.shape)
        } do not fit the model: it takes [batch, ${c}, ${s}, ${s}] (NCHW)`,
      );
    }
  }

  /** Patch embedding + CLS token + position embeddings: `[batch, C, H, W]` → `[batch·tokens, hidden]`. */
  embeddings(pixelValues: Tensor4D, drop: Dropout): Tensor2D {
    const { num_channels: c, patch_size: p, hidden_size: h } = this.config;
    const n = pixelValues.shape[0], g = patchGrid(this.config), t = numTokens(this.config);
    // The convolution reads only whole patches: drop edge pixels it would not reach.
    const px = pixelValues.shape[2] === g * p
      ? pixelValues
      : pixelValues.slice([0, 0, 0, 0], [n, c, g * p, g * p]);
    const patches = px
      .reshape([n, c, g, p, g, p])
      .transpose([0, 2, 4, 1, 3, 5]) // [batch, gy, gx, C, py, px]
      .reshape([n * g * g, c * p * p]) as Tensor2D;
    const embedded = this.projection.apply(patches).reshape([n, g * g, h]); // [batch, patches, hidden]
    const cls = tf.tile(this.cls_token, [n, 1, 1]); // [batch, 1, hidden]
    const tokens = tf.concat([cls, embedded], 1).add(this.position_embeddings); // [batch, tokens, hidden]
    return drop.apply(tokens.reshape([n * t, h]) as Tensor2D, this.config.hidden_dropout_prob);
  }

  /** Multi-head self-attention, output projection included: `[batch·tokens, hidden]` → same. */
  selfAttention(layer: ViTLayer, x: Tensor2D, batch: number, drop: Dropout): Tensor2D {
    const { num_attention_heads: heads, hidden_size: h } = this.config;
    const t = numTokens(this.config), d = h / heads;
    const split = (y: Tensor2D) =>
      y.reshape([batch, t, heads, d]).transpose([0, 2, 1, 3]).reshape([
        batch * heads,
        t,
        d,
      ]) as Tensor3D;
    const query = layer.attention.query.apply(x, drop); // [batch·tokens, hidden]
    const key = layer.attention.key.apply(x, drop);
    const value = layer.attention.value.apply(x, drop);
    const dropProbs = drop.training && this.config.attention_probs_dropout_prob > 0;
    let context: Tensor2D; // [batch·tokens, hidden]
    if (tf.getBackend() === "webgpu" && !dropProbs) {
      // one WGSL kernel each way, heads read and written in place (see attention.ts)
      context = fusedAttention(query, key, value, { heads, tokens: t });
    } else {
      const [q, k, v] = [query, key, value].map(split); // [batch·heads, tokens, d]
      const scores = tf.matMul(q, k, false, true).mul(1 / Math.sqrt(d)); // [batch·heads, tokens, tokens]
      const probs = drop.apply(tf.softmax(scores), this.config.attention_probs_dropout_prob);
      context = tf.matMul(probs, v) // [batch·heads, tokens, d]
        .reshape([batch, heads, t, d])
        .transpose([0, 2, 1, 3])
        .reshape([batch * t, h]) as Tensor2D;
    }
    return drop.apply(layer.attention.output.apply(context, drop), this.config.hidden_dropout_prob);
  }

  /** The MLP: `intermediate.dense` → activation → `output.dense`. */
  mlp(layer: ViTLayer, x: Tensor2D, drop: Dropout): Tensor2D {
    const up = activation(this.config.hidden_act, layer.intermediate.apply(x, drop)); // [rows, intermediate]
    return drop.apply(layer.output.apply(up, drop), this.config.hidden_dropout_prob);
  }

  /**
   * The CLS token after the final layernorm, `[batch, hidden]`: what a classifier reads.
   * `drop` is the pass's dropout (default none): in training, LoRA's and the config's
   * hidden and attention dropout. Call inside `tf.tidy` (or a gradient function):
   * intermediates are not disposed here.
   */
  forward(pixelValues: Tensor4D, drop: Dropout = Dropout.off): Tensor2D {
    this.checkInput(pixelValues);
    const batch = pixelValues.shape[0], t = numTokens(this.config), h = this.config.hidden_size;
    let hidden = tf.tidy(() => this.embeddings(pixelValues, drop)); // [batch·tokens, hidden]
    for (const layer of this.layers) {
      // Each layer in a scope of its own: its intermediates are freed as soon as it is done.
      // (When gradients are recorded, tfjs keeps what the backward pass needs, and only that.)
      const input = hidden;
      hidden = tf.tidy(() => {
        if (this.precision === "fp16") {
          return encoderLayer16(layer, input, {
            heads: this.config.num_attention_heads,
            tokens: t,
            act: this.config.hidden_act,
            hiddenDropout: this.config.hidden_dropout_prob,
          }, drop);
        }
        const h1 = input.add(
          this.selfAttention(layer, layer.layernorm_before.apply(input), batch, drop),
        );
        return h1.add(this.mlp(layer, layer.layernorm_after.apply(h1 as Tensor2D), drop));
      });
      input.dispose();
    }
    // LayerNorm is per token, so normalising the CLS token alone gives the same features.
    const cls = hidden.reshape([batch, t, h]).slice([0, 0, 0], [batch, 1, h]).reshape([
      batch,
      h,
    ]) as Tensor2D;
    return this.layernorm.apply(cls);
  }

  /**
   * The frozen tensors by checkpoint name (no `vit.` prefix), LoRA folded into the linear
   * weights: what a merged checkpoint stores; with `{ lora: false }`, the frozen weights as
   * they are. Each returned tensor is new; dispose them.
   */
  mergedTensors(options: { lora?: boolean } = {}): Map<string, Tensor> {
    const { hidden_size: h, num_channels: c, patch_size: p } = this.config;
    const out = new Map<string, Tensor>();
    out.set("embeddings.cls_token", this.cls_token.clone());
    out.set("embeddings.position_embeddings", this.position_embeddings.clone());
    const conv = this.projection.mergedWeight(options);
    out.set("embeddings.patch_embeddings.projection.weight", conv.reshape([h, c, p, p]));
    conv.dispose();
    out.set("embeddings.patch_embeddings.projection.bias", this.projection.bias!.clone());
    for (const [module, linear] of this.linears()) {
      out.set(`${module}.weight`, linear.mergedWeight(options));
      const bias = linear.biasCopy();
      if (bias) out.set(`${module}.bias`, bias);
    }
    this.layers.forEach((layer, i) => {
      for (const name of ["layernorm_before", "layernorm_after"] as const) {
        out.set(`encoder.layer.${i}.${name}.weight`, layer[name].weight.clone());
        out.set(`encoder.layer.${i}.${name}.bias`, layer[name].bias.clone());
      }
    });
    out.set("layernorm.weight", this.layernorm.weight.clone());
    out.set("layernorm.bias", this.layernorm.bias.clone());
    return out;
  }

  /** Frees every tensor and variable. */
  dispose(): void {
    this.cls_token.dispose();
    this.position_embeddings.dispose();
    this.projection.dispose();
    for (const layer of this.layers) {
      layer.layernorm_before.dispose();
      layer.layernorm_after.dispose();
      for (
        const l of [
          layer.attention.query,
          layer.attention.key,
          layer.attention.value,
          layer.attention.output,
        ]
      ) {
        l.dispose();
      }
      layer.intermediate.dispose();
      layer.output.dispose();
      layer.qkv?.weightT.dispose();
      layer.qkv?.bias?.dispose();
    }
    this.layernorm.dispose();
  }
}
