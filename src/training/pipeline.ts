/**
 * Optimizer steps as the trainer runs them: the micro-batches through `batchGradients` (in
 * chunks, on every core of the CPU path), combined and applied as `step.ts` does it, each
 * step's loss and gradient norm read a step late so that the GPU never waits for the host.
 *
 * @module
 */

import { submitRecorded } from "../backend/readback.ts";
import type { ViTClassifier } from "../model/classifier.ts";
import { batchGradients } from "../engines/parallel.ts";
import type { AdamW } from "./optimizer.ts";
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
}

/** Options of a whole step ({@link StepPipeline.step}). */
export interface OptimizerStepOptions extends StepGradientOptions, ApplyOptions {}

/**
 * The first half of an optimizer step as `train()` does it: `group`'s micro-batches
 * through `batchGradients` (in chunks of `chunkSize`, dropout seeded per micro-batch),
 * combined by `combineGradients` into the mean over all of the step's images.
 */
export function stepGradients(
  clf: ViTClassifier,
  group: readonly { pixels: Float32Array; labels: Int32Array; size: number }[],
  options: StepGradientOptions = {},
): Promise<StepGradients> {
  return combineGradients(group, (batch, m) =>
    batchGradients(clf, batch, {
      chunkSize: options.chunkSize,
      training: true,
      dropoutSeed: options.dropoutSeed?.(m),
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
 * ```ts ignore
 * const steps = new StepPipeline(clf, adam);
 * for (const [k, group] of groups.entries()) {
 *   await steps.step(group, { lr: rate(k), maxGradNorm: 1 }, ([loss, norm]) => log(k - 1, loss, norm));
 * }
 * const last = await steps.finish();
 * steps.dispose();
 * ```
 */
export class StepPipeline {
  readonly clf: ViTClassifier;
  readonly optimizer: AdamW;
  #held = new HeldGradients();
  #pending?: Promise<Float32Array>;

  /** Steps of `clf`'s trainable tensors by `optimizer`. */
  constructor(clf: ViTClassifier, optimizer: AdamW) {
    this.clf = clf;
    this.optimizer = optimizer;
  }

  /**
   * One step over `group`: its passes queued, the previous step's `[loss, grad_norm]` handed to
   * `previous` (if there was one), then the step applied, unless `previous` returned false
   * (its gradients are then dropped). Returns whether it was applied.
   */
  async step(
    group: readonly { pixels: Float32Array; labels: Int32Array; size: number }[],
    options: OptimizerStepOptions,
    previous?: (values: Float32Array) => boolean | void | Promise<boolean | void>,
  ): Promise<boolean> {
    const gradients = this.#held.hold(await stepGradients(this.clf, group, options));
    const values = await this.finish();
    if (values && previous && (await previous(values)) === false) return false;
    const { read } = readStepStats(applyGradients(this.optimizer, gradients, options));
    read.catch(() => {}); // an error surfaces when it is awaited, not as an unhandled rejection
    this.#pending = read;
    return true;
  }

  /** The last step's `[loss, grad_norm]`, once back (undefined when none is pending). */
  finish(): Promise<Float32Array | undefined> {
    const pending = this.#pending;
    this.#pending = undefined;
    // what is queued goes to the GPU before the host waits (and tfjs frees what it held)
    submitRecorded();
    return pending ?? Promise.resolve(undefined);
  }

  /** Frees the held gradients (the optimizer and the model are the caller's). */
  dispose(): void {
    this.#pending = undefined;
    this.#held.dispose();
  }
}
