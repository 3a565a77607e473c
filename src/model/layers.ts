/**
 * The building blocks of the ViT (`vit.ts`): a frozen linear layer with its optional LoRA
 * branch, LayerNorm, the encoder layer's modules by their checkpoint names, the MLP's
 * activation, and the dropout of one forward pass. Frozen weights are kept transposed
 * (`[in, out]`), as float32 tensors or, under `--precision fp16`, as float16 ones
 * ({@link HalfTensor}: what the float16 layer of `half_layer.ts` reads).
 *
 * @module
 */

import { type Tensor, type Tensor1D, type Tensor2D, tf, type Variable } from "../core/tf.ts";
import type { HiddenAct } from "./config.ts";
import { dropout, dropoutKey, gelu, scale } from "../backend/kernels.ts";
import { layerNorm } from "../backend/layer_norm.ts";
import { HalfTensor } from "../backend/half.ts";
import { gemm16 } from "../backend/gemm16.ts";

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

  /** The rank `r`. */
  get rank(): number {
    return this.A.shape[0] as number;
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

/**
 * A frozen linear layer `x Wᵀ + b`, with an optional LoRA branch. Its weight is float32, or
 * float16 under `--precision fp16`, where the query, key and value layers share one fused
 * weight `[in, 3·out]` (and bias), each reading its own `columns`.
 */
export class Linear {
  /** The weight, transposed: `[in, out]` (float16: maybe a fused one, see `columns`). */
  readonly weightT: Tensor2D | HalfTensor;
  /** The bias `[out]` (or the fused bias, see `columns`), if the layer has one. */
  readonly bias?: Tensor1D;
  /** This layer's columns `[lo, hi)` of a fused weight and bias that it does not own. */
  readonly columns?: [number, number];
  /** The LoRA branch, once one is attached. */
  lora?: LoraLayer;
  /** The weight as the checkpoint stores it, `[out, in]`: WebGPU's backward pass (see `#frozen`). */
  #weight?: Tensor2D;

  /**
   * Takes the weight already transposed, `[in, out]` (see {@link takesTransposed}), and the
   * bias; with `columns`, a fused weight and bias shared with other layers (not taken over).
   */
  constructor(weightT: Tensor2D | HalfTensor, bias?: Tensor1D, columns?: [number, number]) {
    this.weightT = weightT;
    this.bias = bias;
    this.columns = columns;
  }

  /** `x` `[rows, in]` → `[rows, out]`; `drop` is the pass's dropout (LoRA's branch only). */
  apply(x: Tensor2D, drop: Dropout = Dropout.off): Tensor2D {
    if (this.weightT instanceof HalfTensor) return this.#half(x);
    const y = this.#frozen(x); // [rows, out]
    return this.lora ? this.lora.addTo(y, x, drop) : y;
  }

  /**
   * A float16 product `x Wᵀ + b` (autocast's: `x` rounded to float16, float32 accumulation,
   * the result rounded), for a layer of its own without LoRA (the patch embedding): no
   * gradient. The encoder's layers run in `half_layer.ts`.
   */
  #half(x: Tensor2D): Tensor2D {
    const w = this.weightT as HalfTensor;
    if (this.lora || this.columns) {
      throw new Error("Linear: a float16 layer with LoRA or a fused weight runs in half_layer.ts");
    }
    return gemm16({
      a: { t: x },
      b: { t: w },
      m: x.shape[0],
      k: w.shape[0],
      n: w.shape[1],
      bias: this.bias,
    }) as Tensor2D;
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
    const { bias } = this;
    const weightT = this.weightT as Tensor2D;
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

  /**
   * The weight with the LoRA update folded in, as the checkpoint stores it: `[out, in]` (a
   * float16 weight's values, as float32); with `{ lora: false }`, the frozen weight alone.
   */
  mergedWeight(options: { lora?: boolean } = {}): Tensor2D {
    return tf.tidy(() => {
      let w: Tensor2D;
      if (this.weightT instanceof HalfTensor) {
        w = this.weightT.unpack() as Tensor2D;
        if (this.columns) {
          const [lo, hi] = this.columns;
          w = w.slice([0, lo], [w.shape[0], hi - lo]);
        }
      } else {
        w = this.weightT;
      }
      const wT = this.lora && options.lora !== false ? w.add(this.lora.deltaT()) : w;
      return tf.transpose(wT) as Tensor2D;
    });
  }

  /** A copy of the bias (this layer's columns of a fused one). */
  biasCopy(): Tensor1D | undefined {
    if (!this.bias) return undefined;
    if (!this.columns) return this.bias.clone();
    const [lo, hi] = this.columns;
    return this.bias.slice([lo], [hi - lo]);
  }

  /** Frees the weights (unless shared) and the LoRA branch. */
  dispose(): void {
    if (!this.columns) {
      this.weightT.dispose();
      this.bias?.dispose();
    }
    this.#weight?.dispose();
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
  /**
   * Under `--precision fp16`: the query, key and value weights side by side, `[in, 3·hidden]`,
   * float16, and their biases, `[3·hidden]` (the three layers read their columns of them).
   */
  qkv?: { weightT: HalfTensor; bias?: Tensor1D };
}

/** The MLP's activation `hidden_act` on `x` (GELU fused: one kernel each way on WebGPU). */
export function activation(kind: HiddenAct, x: Tensor2D): Tensor2D {
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
 * ```ts
 * import { createClassifier, parseViTConfig, tf } from "@lora/vit";
 * import { Dropout, type Tensor4D } from "@lora/vit/model";
 * const config = parseViTConfig({
 *   hidden_size: 64,
 *   num_hidden_layers: 2,
 *   num_attention_heads: 4,
 *   intermediate_size: 128,
 *   image_size: 32,
 *   patch_size: 8,
 *   hidden_dropout_prob: 0.1,
 * });
 * const clf = await createClassifier(config, { labels: ["cat", "dog"], backend: "cpu" });
 * const pixels = tf.randomNormal([2, 3, 32, 32]) as Tensor4D;
 *
 * // two training passes with the same seed: the same masks, the same features
 * const [a, b] = [0, 1].map(() => clf.vit.forward(pixels, new Dropout(true, 1234)));
 * console.log(await tf.equal(a, b).all().data()); // [1]
 * tf.dispose([a, b, pixels]);
 * clf.dispose();
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

  /**
   * The next mask at `rate` for the float16 kernels, which draw it themselves (`gemm16`): its
   * key (as {@link Dropout.apply} would draw it) and rate; undefined in evaluation or at rate 0.
   */
  mask(rate: number): { key: number; rate: number } | undefined {
    if (!this.training || rate <= 0) return undefined;
    const seed = this.#seed ?? Math.floor(Math.random() * 2 ** 32);
    return { key: dropoutKey(seed, this.#drawn++), rate };
  }
}
