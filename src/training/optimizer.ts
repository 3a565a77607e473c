/**
 * The optimisation step of Hugging Face Trainer's defaults: AdamW (PyTorch's, decoupled
 * weight decay, bias-corrected), a linear learning-rate schedule with optional warmup, and
 * gradient clipping to a global L2 norm. All of it runs on the tensors' backend; nothing is
 * read back to the CPU. On WebGPU, AdamW's update (clipping included) and the norm are WGSL
 * kernels (`backend/optimizer_kernels.ts`): three kernels a parameter instead of some thirteen,
 * and no constant uploaded as a tensor.
 *
 * @module
 */

import { type Float32TensorData, tensorData } from "../model/safetensors.ts";
import { type Scalar, type Tensor, tf, type Variable } from "../core/tf.ts";
import { VitLoraError } from "../core/errors.ts";
import { adamWUpdate, globalNorm } from "../backend/optimizer_kernels.ts";

/** Options of {@link AdamW}. */
export interface AdamWOptions {
  /** β₁ and β₂ (default 0.9, 0.999). */
  betas?: readonly [number, number];
  /** Added to the denominator (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay (default 0). */
  weightDecay?: number;
  /**
   * Which parameters weight decay leaves alone (default: none). HF Trainer's rule is
   * {@link trainerNoDecay}: biases (and LayerNorm weights, never trainable here).
   */
  noDecay?: (name: string) => boolean;
}

/**
 * HF Trainer's rule for the parameters weight decay skips (`get_decay_parameter_names`):
 * every bias (and LayerNorm's weights, which LoRA training here never updates).
 *
 * @example
 * ```ts
 * import { trainerNoDecay } from "@lora/vit/training";
 * console.log(trainerNoDecay("base_model.model.classifier.bias")); // true
 * console.log(trainerNoDecay("base_model.model.classifier.weight")); // false
 * ```
 */
export function trainerNoDecay(name: string): boolean {
  return name.includes("bias") || /layernorm|layer_norm/i.test(name);
}

/**
 * PyTorch's `torch.optim.AdamW` over named variables.
 *
 * @example
 * ```ts
 * import { initBackend, tf } from "@lora/vit";
 * import { AdamW } from "@lora/vit/training";
 * await initBackend("cpu");
 * const w = tf.variable(tf.tensor1d([1, 2]));
 * const adam = new AdamW({ w });
 * const grad = tf.tensor1d([0.5, -0.5]);
 * adam.step({ w: grad }, 0.1);
 * console.log(await w.data()); // [0.9, 2.1]
 * adam.dispose();
 * tf.dispose([w, grad]);
 * ```
 */
export class AdamW {
  /** Updates done so far. */
  steps = 0;
  readonly #params: Record<string, Variable>;
  readonly #m = new Map<string, Variable>();
  readonly #v = new Map<string, Variable>();
  readonly #betas: readonly [number, number];
  readonly #eps: number;
  readonly #weightDecay: number;
  readonly #noDecay: (name: string) => boolean;

  /** An optimizer for `params` (keyed by name), with zero moments. */
  constructor(params: Record<string, Variable>, options: AdamWOptions = {}) {
    this.#params = params;
    this.#betas = options.betas ?? [0.9, 0.999];
    this.#eps = options.eps ?? 1e-8;
    this.#weightDecay = options.weightDecay ?? 0;
    this.#noDecay = options.noDecay ?? (() => false);
    for (const [key, p] of Object.entries(params)) {
      this.#m.set(key, zeroVariable(p));
      this.#v.set(key, zeroVariable(p));
    }
  }

  /**
   * Applies one update with learning rate `lr`, given a gradient for every parameter. With
   * `clip`, each gradient is first scaled by `min(1, maxNorm / (norm + 1e-6))`, as
   * {@link clipByGlobalNorm} does (`norm` from {@link globalNorm}), without making the clipped
   * gradients. With `lossScale` (a loss scaler's, see `GradScaler`; `clip` required), the
   * gradients and their norm are that times the true ones: they are unscaled first, and a norm
   * that is not finite (an overflow) leaves every parameter and moment as it was (the step
   * still counts here until the scaler settles it). On WebGPU each parameter takes three fused
   * kernels (`adamWUpdate`); elsewhere plain tfjs ops.
   */
  step(
    grads: Record<string, Tensor>,
    lr: number,
    options: { clip?: { norm: Tensor; maxNorm: number }; lossScale?: Tensor } = {},
  ): void {
    this.steps++;
    const [b1, b2] = this.#betas;
    const bias1 = 1 - b1 ** this.steps;
    const bias2Sqrt = Math.sqrt(1 - b2 ** this.steps);
    const fused = tf.getBackend() === "webgpu";
    const { clip, lossScale } = options;
    if (lossScale && !clip) throw new Error("AdamW: a loss scale needs the gradients' norm (clip)");
    tf.tidy(() => {
      const norm = fused ? clip?.norm ?? tf.zeros([1]) : undefined;
      // unscaled (· 1/S: exact for a power of two), then clipped against the true norm
      const unscale = !fused && lossScale ? tf.scalar(1).div(lossScale) : undefined;
      const trueNorm = clip && unscale ? clip.norm.mul(unscale) : clip?.norm;
      const clipCoef = !fused && clip
        ? tf.minimum(tf.scalar(clip.maxNorm).div(trueNorm!.add(1e-6)), 1)
        : undefined;
      const overflow = !fused && lossScale ? tf.logicalNot(tf.isFinite(clip!.norm)) : undefined;
      /** The new value, or the old one on an overflow. */
      const kept = (old: Tensor, next: Tensor) => overflow ? tf.where(overflow, old, next) : next;
      for (const [key, p] of Object.entries(this.#params)) {
        const grad = grads[key];
        if (!grad) throw new Error(`AdamW: no gradient for ${key}`);
        const m = this.#m.get(key)!;
        const v = this.#v.get(key)!;
        const decay = this.#noDecay(key) ? 0 : this.#weightDecay;
        if (fused) {
          const next = adamWUpdate(p, grad, m, v, norm!, {
            lr,
            betas: this.#betas,
            eps: this.#eps,
            weightDecay: decay,
            bias1,
            bias2Sqrt,
            maxNorm: clip?.maxNorm ?? Infinity,
            lossScale,
          });
          m.assign(next.m);
          v.assign(next.v);
          p.assign(next.p);
          continue;
        }
        const g = unscale ? grad.mul(unscale).mul(clipCoef!) : clipCoef ? grad.mul(clipCoef) : grad;
        const decayed = decay !== 0 ? p.mul(1 - lr * decay) : p;
        const m1 = m.mul(b1).add(g.mul(1 - b1));
        const v1 = v.mul(b2).add(g.square().mul(1 - b2));
        const denom = v1.sqrt().div(bias2Sqrt).add(this.#eps);
        const p1 = decayed.sub(m1.div(denom).mul(lr / bias1));
        m.assign(kept(m, m1));
        v.assign(kept(v, v1));
        p.assign(kept(p, p1));
      }
    });
  }

  /** The moments, as `exp_avg.<name>` and `exp_avg_sq.<name>` tensors (PyTorch's names). */
  async state(): Promise<Record<string, Float32TensorData>> {
    const out: Record<string, Float32TensorData> = {};
    for (const key of Object.keys(this.#params)) {
      const m = this.#m.get(key)!, v = this.#v.get(key)!;
      out[`exp_avg.${key}`] = await tensorData(m);
      out[`exp_avg_sq.${key}`] = await tensorData(v);
    }
    return out;
  }

  /** Restores moments saved by {@link AdamW.state} and the update count. */
  load(
    state: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array | Int32Array }>,
    steps: number,
  ): void {
    for (const key of Object.keys(this.#params)) {
      for (const [prefix, target] of [["exp_avg", this.#m], ["exp_avg_sq", this.#v]] as const) {
        const t = state.get(`${prefix}.${key}`);
        const v = target.get(key)!;
        if (!t || t.data.length !== v.size) {
          throw new VitLoraError(
            `optimizer state: ${prefix}.${key} is missing or of the wrong size`,
          );
        }
        v.assign(tf.tensor(Float32Array.from(t.data), v.shape));
      }
    }
    this.steps = steps;
  }

  /** Frees the moments (the parameters belong to their owner). */
  dispose(): void {
    tf.dispose([...this.#m.values(), ...this.#v.values()]);
    this.#m.clear();
    this.#v.clear();
  }
}

/** A variable of zeros shaped as `p` (the zeros it is made from freed: it holds their data). */
function zeroVariable(p: Tensor): Variable {
  const zeros = tf.zerosLike(p);
  const v = tf.variable(zeros, false);
  zeros.dispose();
  return v;
}

/** Options of {@link linearSchedule}. */
export interface ScheduleOptions {
  /** The peak learning rate. */
  lr: number;
  /** Optimizer steps in the whole run. */
  totalSteps: number;
  /** Steps of linear warmup from 0 (default 0). */
  warmupSteps?: number;
}

/**
 * transformers' `get_linear_schedule_with_warmup`: the rate of step `k` (from 0) rises
 * linearly over the warmup, then falls linearly to 0 at `totalSteps`.
 *
 * @example
 * ```ts
 * import { linearSchedule } from "@lora/vit/training";
 * const rate = linearSchedule({ lr: 0.01, totalSteps: 8 });
 * console.log(rate(0), rate(1), rate(7)); // 0.01 0.00875 0.00125
 * ```
 */
export function linearSchedule(options: ScheduleOptions): (step: number) => number {
  const { lr, totalSteps, warmupSteps = 0 } = options;
  return (k) => {
    if (k < warmupSteps) return lr * k / Math.max(1, warmupSteps);
    return lr * Math.max(0, (totalSteps - k) / Math.max(1, totalSteps - warmupSteps));
  };
}

/**
 * PyTorch's `clip_grad_norm_`: the global L2 norm over every gradient, and the gradients
 * scaled by `min(1, maxNorm / (norm + 1e-6))`. Returns new tensors; the caller disposes them.
 *
 * @example
 * ```ts
 * import { initBackend, tf } from "@lora/vit";
 * import { clipByGlobalNorm } from "@lora/vit/training";
 * await initBackend("cpu");
 * const { grads, norm } = clipByGlobalNorm({ a: tf.tensor1d([3, 4]) }, 1);
 * console.log(await norm.data(), await grads.a.data()); // [5] [~0.6, ~0.8]
 * ```
 */
export function clipByGlobalNorm(
  grads: Record<string, Tensor>,
  maxNorm: number,
): { grads: Record<string, Tensor>; norm: Scalar } {
  const norm = globalNorm(Object.values(grads));
  return tf.tidy(() => {
    const coef = tf.minimum(tf.scalar(maxNorm).div(norm.add(1e-6)), 1);
    const clipped: Record<string, Tensor> = {};
    for (const [key, g] of Object.entries(grads)) clipped[key] = g.mul(coef);
    return { grads: clipped, norm };
  });
}

export { globalNorm };
