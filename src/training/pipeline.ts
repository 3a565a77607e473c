/**
 * Optimizer steps as the trainer runs them: the micro-batches through `batchGradients` (in
 * chunks, on every core of the CPU path), combined and applied as `step.ts` does it, each
 * step's loss and gradient norm read a step late so that the GPU never waits for the host.
 * With a `GradScaler` (mixed precision), the steps are scaled and a skipped one settled as
 * Trainer counts it (see `grad_scaler.ts`).
 *
 * @module
 */

import { submitRecorded } from "../backend/readback.ts";
import type { Scalar } from "../core/tf.ts";
import type { ViTClassifier } from "../model/classifier.ts";
import { batchGradients } from "../engines/parallel.ts";
import type { AdamW } from "./optimizer.ts";
import type { GradScaler } from "./grad_scaler.ts";
import {
  applyGradients,
  type ApplyOptions,
  combineGradients,
  HeldGradients,
  readStepStats,
  type StepGradients,
} from "./step.ts";

/** Options of {@link stepGradients}. */
export interface StepGradientOptions {
  /** Images a forward + backward pass takes at most (see `batchGradients`). */
  chunkSize?: number;
  /** The dropout seed of micro-batch `m` (default: unseeded masks). */
  dropoutSeed?: (m: number) => number;
  /** Multiply the loss by this before the backward pass (a loss scaler's `scale`). */
  lossScale?: Scalar;
  /** Label smoothing of the loss (Trainer's `label_smoothing_factor`; default 0). */
  labelSmoothing?: number;
}

/** Options of a whole step ({@link StepPipeline.step}). */
export interface OptimizerStepOptions extends StepGradientOptions, Omit<ApplyOptions, "lr"> {
  /**
   * The step's learning rate, or the schedule: the rate for the optimizer steps applied so far
   * (`AdamW.steps`, which skipped steps do not advance, as Trainer's scheduler does not step
   * on them), asked once the previous step is settled.
   */
  lr: number | ((applied: number) => number);
}

type Batch = { pixels: Float32Array; labels: Int32Array; size: number };

/**
 * The first half of an optimizer step as `train()` does it: `group`'s micro-batches
 * through `batchGradients` (in chunks of `chunkSize`, dropout seeded per micro-batch),
 * combined by `combineGradients` into the mean over all of the step's images.
 */
export function stepGradients(
  clf: ViTClassifier,
  group: readonly Batch[],
  options: StepGradientOptions = {},
): Promise<StepGradients> {
  return combineGradients(group, (batch, m) =>
    batchGradients(clf, batch, {
      chunkSize: options.chunkSize,
      training: true,
      dropoutSeed: options.dropoutSeed?.(m),
      lossScale: options.lossScale,
      labelSmoothing: options.labelSmoothing,
    }));
}

/**
 * Optimizer steps as the trainer runs them, each step's loss and gradient norm read a step
 * late so that the GPU never waits for the host: a step's forward and backward passes are
 * queued ({@link stepGradients}, the gradients held in {@link HeldGradients}) and submitted;
 * then the previous step's values, which have had those passes to arrive, are handed over;
 * then the step is applied ({@link applyGradients}) and its values start their way back.
 * {@link StepPipeline.finish} waits for the last step's.
 *
 * @example
 * ```ts
 * import { createClassifier, parseViTConfig } from "@lora/vit";
 * import { AdamW, linearSchedule, trainerNoDecay } from "@lora/vit/training";
 * import { StepPipeline } from "./pipeline.ts";
 * const config = parseViTConfig({
 *   hidden_size: 64,
 *   num_hidden_layers: 2,
 *   num_attention_heads: 4,
 *   intermediate_size: 128,
 *   image_size: 32,
 *   patch_size: 8,
 * });
 * const clf = await createClassifier(config, {
 *   labels: ["cat", "dog"],
 *   lora: { r: 4 },
 *   backend: "cpu",
 * });
 * const batch = (labels: number[]) => ({
 *   pixels: new Float32Array(labels.length * 3 * 32 * 32).map(() => Math.random() - 0.5),
 *   labels: Int32Array.from(labels),
 *   size: labels.length,
 * });
 * // three steps: of two micro-batches of 2 images, of one of 3, of one of 1
 * const groups = [[batch([0, 1]), batch([1, 0])], [batch([0, 0, 1])], [batch([1])]];
 * const adam = new AdamW(clf.trainableVariables(), { noDecay: trainerNoDecay });
 * const rate = linearSchedule({ lr: 1e-3, totalSteps: groups.length }); // by applied steps
 *
 * const steps = new StepPipeline(clf, adam);
 * for (const [k, group] of groups.entries()) {
 *   // step k + 1's passes are queued, step k's values handed over, then step k + 1 applied
 *   await steps.step(group, { lr: rate, maxGradNorm: 1 }, ([loss, norm]) => {
 *     console.log(`step ${k}: loss ${loss}, grad_norm ${norm}`);
 *   });
 * }
 * const [loss, norm] = (await steps.finish())!; // the last step's
 * console.log(`step ${groups.length}: loss ${loss}, grad_norm ${norm}`);
 * steps.dispose();
 * adam.dispose();
 * clf.dispose();
 * ```
 */
export class StepPipeline {
  readonly clf: ViTClassifier;
  readonly optimizer: AdamW;
  /** The loss scaler, under mixed precision. */
  readonly scaler?: GradScaler;
  #held = new HeldGradients();
  #pending?: Promise<Float32Array>;

  /**
   * Steps of `clf`'s trainable tensors by `optimizer`; with `scaler`, loss-scaled (the
   * scaler's to dispose: the caller's, as are the model and the optimizer).
   */
  constructor(clf: ViTClassifier, optimizer: AdamW, options: { scaler?: GradScaler } = {}) {
    this.clf = clf;
    this.optimizer = optimizer;
    this.scaler = options.scaler;
  }

  /**
   * One step over `group`: its passes queued, the previous step's `[loss, grad_norm]` (with a
   * scaler `[loss, grad_norm, skipped, scale]`, the step settled) handed to `previous` (if there
   * was one), then the step applied, unless `previous` returned false (its gradients are then
   * dropped). Returns whether it was applied (a step the scaler skips counts as applied: its
   * verdict comes with its values).
   */
  async step(
    group: readonly Batch[],
    options: OptimizerStepOptions,
    previous?: (values: Float32Array) => boolean | void | Promise<boolean | void>,
  ): Promise<boolean> {
    const lossScale = this.scaler?.scale;
    const gradients = this.#held.hold(
      await stepGradients(this.clf, group, { ...options, lossScale }),
    );
    const values = await this.finish();
    if (values && previous && (await previous(values)) === false) return false;
    const lr = typeof options.lr === "function" ? options.lr(this.optimizer.steps) : options.lr;
    const stats = applyGradients(this.optimizer, gradients, {
      ...options,
      lr,
      scaler: this.scaler,
    });
    const { read } = readStepStats(stats);
    read.catch(() => {}); // an error surfaces when it is awaited, not as an unhandled rejection
    this.#pending = read;
    return true;
  }

  /**
   * The last step's `[loss, grad_norm]` (`[loss, grad_norm, skipped, scale]` with a scaler,
   * settled), once back (undefined when none is pending).
   */
  async finish(): Promise<Float32Array | undefined> {
    const pending = this.#pending;
    this.#pending = undefined;
    // what is queued goes to the GPU before the host waits (and tfjs frees what it held)
    submitRecorded();
    const values = await pending;
    if (values && this.scaler) this.scaler.settle(values, this.optimizer);
    return values;
  }

  /**
   * Frees the held gradients (the optimizer, the scaler and the model are the caller's). A step
   * still on its way is settled with the scaler when its values arrive, so that the scaler and
   * the optimizer's count stay in step with what ran.
   */
  dispose(): void {
    const pending = this.#pending, scaler = this.scaler;
    if (pending && scaler) pending.then((v) => scaler.settle(v, this.optimizer), () => {});
    this.#pending = undefined;
    this.#held.dispose();
  }
}
