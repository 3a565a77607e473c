/**
 * Dynamic loss scaling, as `torch.amp.GradScaler` does it for Trainer's `fp16=True`: the loss
 * is multiplied by a scale before the backward pass, so that small gradients do not vanish in
 * float16; the gradients are divided by it before clipping and the optimizer; a step whose
 * gradients overflowed (an infinity or a NaN) is skipped, and the scale halves; after
 * `growthInterval` steps in a row without one, it doubles. Initial scale 2¹⁶.
 *
 * The scale lives on the backend (a scalar variable, {@link GradScaler.scale}), and the step's
 * verdict is made there too: the optimizer's kernels leave the parameters and moments as they
 * were on an overflow, and the scale is updated from the step's gradient norm
 * (`backend/scaler_kernels.ts`), so a training loop never waits for the host. The host learns
 * the verdict with the step's values (`[loss, grad_norm, skipped, scale]`, read a step late)
 * and {@link GradScaler.settle}s it: the skipped step is counted, the optimizer's step count
 * (Adam's bias correction, the learning-rate schedule) is taken back, as when PyTorch's
 * `scaler.step` does not call `optimizer.step`.
 *
 * What Trainer does with a skipped step (transformers 5.18, accelerate 1.15): `global_step`
 * still advances and the step is logged (its `grad_norm` is `inf` or `nan`, its loss the
 * unscaled loss); the learning-rate scheduler does not step (`optimizer_step_was_skipped`), so
 * the rate of the next step is that of this one; AdamW's own step count does not advance.
 *
 * @module
 */

import { type Scalar, tf, type Variable } from "../core/tf.ts";
import { VitLoraError } from "../core/errors.ts";
import { type ScalerRules, updateScale } from "../backend/scaler_kernels.ts";
import type { AdamW } from "./optimizer.ts";

export type { ScalerRules };

/** Options of {@link GradScaler}: `torch.amp.GradScaler`'s, with its defaults. */
export interface GradScalerOptions {
  /** The first scale (default 2¹⁶). */
  initScale?: number;
  /** Its factor after `growthInterval` steps without an overflow (default 2). */
  growthFactor?: number;
  /** Its factor after an overflow (default 0.5). */
  backoffFactor?: number;
  /** Steps in a row without an overflow before it grows (default 2000). */
  growthInterval?: number;
}

/** The scaler's state, as `GradScaler.state_dict()` holds it (for checkpoints). */
export interface GradScalerState {
  /** The current scale. */
  scale: number;
  /** Steps since the last overflow or growth. */
  growth_tracker: number;
}

/**
 * The host's rules: the state after a step that `overflowed` or not (PyTorch's
 * `_amp_update_scale_`; a grown scale is kept only when finite).
 *
 * @example
 * ```ts
 * import { nextScale } from "./grad_scaler.ts";
 * const rules = { growth: 2, backoff: 0.5, interval: 2 };
 * console.log(nextScale({ scale: 8, growth_tracker: 1 }, false, rules)); // { scale: 16, growth_tracker: 0 }
 * ```
 */
export function nextScale(
  state: GradScalerState,
  overflowed: boolean,
  rules: ScalerRules,
): GradScalerState {
  if (overflowed) return { scale: state.scale * rules.backoff, growth_tracker: 0 };
  const counted = state.growth_tracker + 1;
  if (counted < rules.interval) return { scale: state.scale, growth_tracker: counted };
  const grown = Math.fround(state.scale * rules.growth);
  return { scale: Number.isFinite(grown) ? grown : state.scale, growth_tracker: 0 };
}

/**
 * PyTorch's dynamic loss scaler (see the module's notes).
 *
 * @example
 * ```ts ignore
 * import type { ViTClassifier } from "@lora/vit";
 * import type { Tensor1D, Tensor4D } from "@lora/vit/model";
 * import { AdamW, trainerNoDecay } from "@lora/vit/training";
 * import { GradScaler } from "./grad_scaler.ts";
 * import { applyGradients, combineGradients, readStepStats } from "./step.ts";
 * declare const clf: ViTClassifier; // precision "fp16", on WebGPU
 * declare const group: { x: Tensor4D; y: Tensor1D; size: number }[]; // a step's micro-batches
 * const adam = new AdamW(clf.trainableVariables(), { noDecay: trainerNoDecay });
 *
 * const scaler = new GradScaler();
 * const gradients = await combineGradients(group, (b) =>
 *   clf.lossAndGradients(b.x, b.y, { training: true, lossScale: scaler.scale }));
 * const stats = applyGradients(adam, gradients, { lr: 5e-4, maxGradNorm: 1, scaler });
 * const values = await readStepStats(stats).read; // [loss, grad_norm, skipped, scale]
 * scaler.settle(values, adam); // true when the step overflowed and was skipped
 * ```
 */
export class GradScaler {
  /** The rules. */
  readonly rules: ScalerRules;
  /** Steps skipped so far (settled ones). */
  skipped = 0;
  #scale: Variable;
  #tracker: Variable;
  /** The state as of the last settled step. */
  #host: GradScalerState;

  /** A scaler at `initScale`. */
  constructor(options: GradScalerOptions = {}) {
    const initScale = options.initScale ?? 2 ** 16;
    this.rules = {
      growth: options.growthFactor ?? 2,
      backoff: options.backoffFactor ?? 0.5,
      interval: options.growthInterval ?? 2000,
    };
    if (!(initScale > 0) || !(this.rules.growth > 1) || !(this.rules.backoff < 1)) {
      throw new VitLoraError(
        "GradScaler: initScale must be positive, growthFactor above 1 and backoffFactor below 1",
      );
    }
    const [scale, tracker] = [tf.scalar(initScale), tf.scalar(0)];
    this.#scale = tf.variable(scale, false);
    this.#tracker = tf.variable(tracker, false);
    tf.dispose([scale, tracker]); // the variables hold their data
    this.#host = { scale: initScale, growth_tracker: 0 };
  }

  /** The scale the next backward pass multiplies the loss by (a scalar on the backend). */
  get scale(): Scalar {
    return this.#scale as unknown as Scalar;
  }

  /**
   * Updates the scale on the backend after a step whose scaled gradient norm is `norm` (not
   * finite: an overflow). `applyGradients` calls it after the optimizer's step.
   */
  update(norm: Scalar): void {
    const next = updateScale(this.#scale, this.#tracker, norm, this.rules);
    this.#scale.assign(next.scale);
    this.#tracker.assign(next.tracker);
    tf.dispose([next.scale, next.tracker]);
  }

  /**
   * The host learns a step's verdict from its values (`[loss, grad_norm, skipped, scale]`, as
   * `applyGradients` returns them with a scaler): on a skipped step, `optimizer`'s step count
   * goes back (its update left everything as it was) and the step is counted. Returns whether
   * it was skipped.
   */
  settle(values: ArrayLike<number>, optimizer?: AdamW): boolean {
    const skipped = values[2] === 1;
    if (values[3] !== this.#host.scale) {
      throw new VitLoraError(
        `GradScaler: a step ran at scale ${
          values[3]
        }, the host expected ${this.#host.scale} (settle each step once, in order)`,
      );
    }
    this.#host = nextScale(this.#host, skipped, this.rules);
    if (skipped) {
      this.skipped++;
      if (optimizer) optimizer.steps--;
    }
    return skipped;
  }

  /** The state as of the last settled step (`scale`, `growth_tracker`), for a checkpoint. */
  state(): GradScalerState {
    return { ...this.#host };
  }

  /** Restores a state from {@link GradScaler.state} (with nothing in flight). */
  load(state: GradScalerState): void {
    const [scale, tracker] = [tf.scalar(state.scale), tf.scalar(state.growth_tracker)];
    this.#scale.assign(scale);
    this.#tracker.assign(tracker);
    tf.dispose([scale, tracker]);
    this.#host = { ...state };
  }

  /** Frees the scale's tensors. */
  dispose(): void {
    this.#scale.dispose();
    this.#tracker.dispose();
  }
}
