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
 * @module
 */

import {
  type Tensor,
  type Tensor1D,
  type Tensor2D,
  type Tensor3D,
  type Tensor4D,
  tf,
  type Variable,
} from "../core/tf.ts";
import { type HiddenAct, LAYER_LINEARS, numTokens, patchGrid, type ViTConfig } from "./config.ts";
import { VitLoraError } from "../core/errors.ts";
import { formatShape } from "../core/shapes.ts";
import { fusedAttention } from "../backend/attention.ts";
import { dropout, gelu, scale } from "../backend/kernels.ts";
import { layerNorm } from "../backend/layer_norm.ts";

/** A LoRA branch on one linear layer: `B(A(dropout(x))) · scaling`. */
export class LoraLayer {
  /** `[r, in]`, trainable. */
  readonly A: Variable;
  /** `[out, r]`, trainable. */
  readonly B: Variable;
  /** `alpha / r` (or `alpha / √r` with rsLoRA). */
  readonly scaling: number;
  /** Dropout rate on the branch's input, in training. */
  readonly dropout: number;

  /** Wraps `A` and `B` (taken over: they become variables owned by this layer). */
  constructor(A: Tensor2D, B: Tensor2D, scaling: number, dropout: number) {
    this.A = tf.variable(A, true);
    this.B = tf.variable(B, true);
    this.scaling = scaling;
    this.dropout = dropout;
  }

  /** The branch's output for `x` `[rows, in]`: `[rows, out]`. */
  apply(x: Tensor2D, drop: Dropout): Tensor2D {
    const input = drop.apply(x, this.dropout);
    const down = tf.matMul(input, this.A, false, true); // [rows, r]
    return tf.matMul(down, this.B, false, true).mul(this.scaling); // [rows, out]
  }

  /**
   * `y + B(A(dropout(x))) · scaling`, for the frozen layer's output `y` `[rows, out]` (what
   * {@link Linear.apply} does with the branch). On WebGPU in fewer kernels than
   * `y.add(apply(x))`: the scaling rides on the dropout kernel (or, without dropout, on `B`,
   * `[out, r]`, a small tensor rather than the `[rows, out]` output), and the sum with `y` is
   * the second product's epilogue (tfjs's fused matMul, `y` as its bias).
   */
  addTo(y: Tensor2D, x: Tensor2D, drop: Dropout): Tensor2D {
    if (tf.getBackend() !== "webgpu") return y.add(this.apply(x, drop)) as Tensor2D;
    let input = x, b: Tensor = this.B;
    if (drop.training && this.dropout > 0) input = drop.apply(x, this.dropout, this.scaling);
    else b = scale(this.B, this.scaling);
    const down = tf.matMul(input, this.A, false, true); // [rows, r]
    // y as [1, rows, out], the product's own 3-D shape: its gradient then needs no reduction
    const bias = y.reshape([1, ...y.shape]);
    return tf.fused.matMul({ a: down, b: b as Tensor2D, transposeB: true, bias }) as Tensor2D;
  }

  /** `scaling · B A`, transposed: `[in, out]`, the update merging adds to `Wᵀ`. */
  deltaT(): Tensor2D {
    return tf.tidy(() => tf.matMul(this.A, this.B, true, true).mul(this.scaling));
  }

  /** Frees the variables. */
  dispose(): void {
    this.A.dispose();
    this.B.dispose();
  }
}

/** A frozen linear layer `x Wᵀ + b`, with an optional LoRA branch. */
export class Linear {
  /** The weight, transposed: `[in, out]`. */
  readonly weightT: Tensor2D;
  /** The bias `[out]`, if the layer has one. */
  readonly bias?: Tensor1D;
  /** The LoRA branch, once one is attached. */
  lora?: LoraLayer;
  /** The weight as the checkpoint stores it, `[out, in]`: WebGPU's backward pass (see `#frozen`). */
  #weight?: Tensor2D;

  /** Takes the weight already transposed, `[in, out]` (see {@link takesTransposed}), and the bias. */
  constructor(weightT: Tensor2D, bias?: Tensor1D) {
    this.weightT = weightT;
    this.bias = bias;
  }

  /** `x` `[rows, in]` → `[rows, out]`; `drop` is the pass's dropout (LoRA's branch only). */
  apply(x: Tensor2D, drop: Dropout = Dropout.off): Tensor2D {
    const y = this.#frozen(x); // [rows, out]
    return this.lora ? this.lora.addTo(y, x, drop) : y;
  }

  /**
   * `x Wᵀ + b` with the bias in the product's epilogue (tfjs's fused matMul: one kernel, not
   * two), and a gradient for `x` alone: tfjs's own gradient of the fused op would also compute
   * the frozen weight's and bias's, a wasted product as large as the forward one.
   *
   * The input's gradient is `dy W`. From `weightT` it is a product with a transposed second
   * operand, which tfjs-webgpu runs in its scalar matMul kernel (a float a load, where its
   * vec4 kernel loads four); so on WebGPU the weight is also kept as the checkpoint stores it,
   * `[out, in]`, made on the first backward pass (training only: it doubles the frozen weight's
   * memory, 340 MB for ViT-B/16) and kept until the layer is disposed, and `dy W` is a plain
   * product, in the vec4 kernel.
   */
  #frozen(x: Tensor2D): Tensor2D {
    const { weightT, bias } = this;
    const op = tf.customGrad(
      ((input: Tensor) => ({
        value: bias
          ? tf.fused.matMul({ a: input as Tensor2D, b: weightT, bias })
          : tf.matMul(input as Tensor2D, weightT),
        gradFunc: (dy: Tensor) => { // [rows, in]
          if (tf.getBackend() !== "webgpu") return tf.matMul(dy as Tensor2D, weightT, false, true);
          this.#weight ??= tf.keep(tf.transpose(weightT));
          return tf.matMul(dy as Tensor2D, this.#weight);
        },
      })) as unknown as Parameters<typeof tf.customGrad>[0],
    );
    return op(x) as Tensor2D;
  }

  /** The weight with the LoRA update folded in, as the checkpoint stores it: `[out, in]`. */
  mergedWeight(): Tensor2D {
    return tf.tidy(() => {
      const wT = this.lora ? this.weightT.add(this.lora.deltaT()) : this.weightT;
      return tf.transpose(wT) as Tensor2D;
    });
  }

  /** Frees the weights and the LoRA branch. */
  dispose(): void {
    this.weightT.dispose();
    this.#weight?.dispose();
    this.bias?.dispose();
    this.lora?.dispose();
  }
}

/** LayerNorm over the last axis, with a learned scale and shift. */
export class LayerNorm {
  /** Scale `[hidden]`. */
  readonly weight: Tensor1D;
  /** Shift `[hidden]`. */
  readonly bias: Tensor1D;
  /** Added to the variance. */
  readonly eps: number;

  /** Wraps the checkpoint's tensors. */
  constructor(weight: Tensor1D, bias: Tensor1D, eps: number) {
    this.weight = weight;
    this.bias = bias;
    this.eps = eps;
  }

  /** `x` `[rows, hidden]` → normalised `[rows, hidden]`. */
  apply(x: Tensor2D): Tensor2D {
    // biased variance, as torch's layer_norm; fused (one WGSL kernel each way) on WebGPU
    return layerNorm(x, this.weight, this.bias, this.eps);
  }

  /** Frees the tensors. */
  dispose(): void {
    this.weight.dispose();
    this.bias.dispose();
  }
}

/** One pre-norm transformer layer, named as in transformers' `ViTLayer`. */
export interface ViTLayer {
  /** Norm before self-attention. */
  layernorm_before: LayerNorm;
  /** `attention.attention.{query,key,value}` and `attention.output.dense`. */
  attention: { query: Linear; key: Linear; value: Linear; output: Linear };
  /** Norm before the MLP. */
  layernorm_after: LayerNorm;
  /** MLP up-projection `intermediate.dense`. */
  intermediate: Linear;
  /** MLP down-projection `output.dense`. */
  output: Linear;
}

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

function activation(kind: HiddenAct, x: Tensor2D): Tensor2D {
  switch (kind) {
    case "gelu": // exact: x · Φ(x), fused (one WGSL kernel each way on WebGPU)
      return gelu(x);
    case "gelu_new":
    case "gelu_pytorch_tanh": { // 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))
      const inner = x.add(x.pow(3).mul(0.044715)).mul(Math.sqrt(2 / Math.PI));
      return x.mul(tf.tanh(inner).add(1)).mul(0.5);
    }
    case "relu":
      return tf.relu(x);
    case "silu":
    case "swish":
      return x.mul(tf.sigmoid(x));
  }
}

/**
 * Dropout through one forward pass: off in evaluation; in training, masks drawn in the order
 * the pass needs them, from `seed` when one is given (so a training step can be repeated
 * exactly, wherever it runs), unseeded otherwise.
 *
 * @example
 * ```ts ignore
 * const cls = vit.forward(pixels, new Dropout(true, 1234)); // a repeatable training pass
 * ```
 */
export class Dropout {
  /** Evaluation: no dropout anywhere. */
  static readonly off: Dropout = new Dropout(false);
  /** Whether dropout is on. */
  readonly training: boolean;
  readonly #seed?: number;
  #drawn = 0;

  /** Dropout on when `training`, its masks from `seed` when given. */
  constructor(training: boolean, seed?: number) {
    this.training = training;
    this.#seed = seed;
  }

  /**
   * `x` with dropout at `rate` (no-op in evaluation or at rate 0), times `factor` (applied by
   * the dropout kernel itself on WebGPU, a multiplication elsewhere).
   */
  apply<T extends Tensor>(x: T, rate: number, factor = 1): T {
    if (!this.training || rate <= 0) return factor === 1 ? x : scale(x, factor);
    // on WebGPU the mask is drawn on the GPU (see `dropout`), elsewhere by tfjs on the CPU
    return dropout(x, rate, this.#seed, this.#drawn++, factor);
  }
}

/**
 * A ViT encoder (transformers' `ViTModel` without its pooler) over frozen weights.
 *
 * @example
 * ```ts ignore
 * const vit = ViTModel.fromTensors(config, (name) => tf.tensor(weights[name]));
 * const cls = tf.tidy(() => vit.forward(pixelValues, false)); // [batch, hidden]
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
  /** Every frozen tensor, by the name it was read under (see {@link ViTModel.tensors}). */
  #stored = new Map<string, Tensor>();

  private constructor(config: ViTConfig, read: TensorSource) {
    this.config = config;
    const get = (name: string) => {
      const t = read(name);
      this.#stored.set(name, t);
      return t;
    };
    const linear = (name: string, hasBias = true) =>
      new Linear(
        get(`${name}.weight`) as Tensor2D,
        hasBias ? get(`${name}.bias`) as Tensor1D : undefined,
      );
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
      get("embeddings.patch_embeddings.projection.weight") as Tensor2D,
      get("embeddings.patch_embeddings.projection.bias") as Tensor1D,
    );
    this.layers = [];
    for (let i = 0; i < config.num_hidden_layers; i++) {
      const l = `encoder.layer.${i}`;
      this.layers.push({
        layernorm_before: norm(`${l}.layernorm_before`),
        attention: {
          query: linear(`${l}.attention.attention.query`, config.qkv_bias),
          key: linear(`${l}.attention.attention.key`, config.qkv_bias),
          value: linear(`${l}.attention.attention.value`, config.qkv_bias),
          output: linear(`${l}.attention.output.dense`),
        },
        layernorm_after: norm(`${l}.layernorm_after`),
        intermediate: linear(`${l}.intermediate.dense`),
        output: linear(`${l}.output.dense`),
      });
    }
    this.layernorm = norm("layernorm");
  }

  /**
   * Builds the encoder, reading each tensor through `get` (by `ViTModel` name). The caller
   * checks the shapes first (see `vitTensorShapes`).
   */
  static fromTensors(config: ViTConfig, get: TensorSource): ViTModel {
    return new ViTModel(config, get);
  }

  /**
   * The frozen tensors as this model holds them, by the names {@link ViTModel.fromTensors}
   * reads (linear weights transposed, `[in, out]`): what a copy of the model is built from.
   * They stay owned by the model; do not dispose them.
   */
  tensors(): ReadonlyMap<string, Tensor> {
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
   * weights: what a merged checkpoint stores. Each returned tensor is new; dispose them.
   */
  mergedTensors(): Map<string, Tensor> {
    const { hidden_size: h, num_channels: c, patch_size: p } = this.config;
    const out = new Map<string, Tensor>();
    out.set("embeddings.cls_token", this.cls_token.clone());
    out.set("embeddings.position_embeddings", this.position_embeddings.clone());
    const conv = this.projection.mergedWeight();
    out.set("embeddings.patch_embeddings.projection.weight", conv.reshape([h, c, p, p]));
    conv.dispose();
    out.set("embeddings.patch_embeddings.projection.bias", this.projection.bias!.clone());
    for (const [module, linear] of this.linears()) {
      out.set(`${module}.weight`, linear.mergedWeight());
      if (linear.bias) out.set(`${module}.bias`, linear.bias.clone());
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
    }
    this.layernorm.dispose();
  }
}
