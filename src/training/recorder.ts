/**
 * A training run's step log: each optimizer step's metrics line (`metrics.jsonl`, the
 * callbacks, the progress bar), made when its values come back, a step late (see
 * `pipeline.ts`).
 *
 * A step's images/s is its images over the wall time the step took: from its start (the
 * first of its micro-batches asked of the data pipeline) to the next step's start, or, for
 * the last step before an evaluation, a checkpoint or the end, to the moment its values are
 * back. Steps follow one another without a gap, so the figures add up to the run's time, the
 * epoch's last step included, and a resumed run's first step is timed like any other.
 *
 * @module
 */

import type { StepEvent } from "../runs/events.ts";

/** A step begun: what its metrics line needs besides its values. */
export interface StepStart {
  /** Its epoch (from 1). */
  epoch: number;
  /** Its number (from 1). */
  step: number;
  /** Its learning rate. */
  lr: number;
  /** Its images. */
  images: number;
  /** When it began, by the recorder's clock (ms). */
  start: number;
}

/**
 * Pairs steps with their values as they come back, in order: {@link StepRecorder.begin} when
 * a step starts, {@link StepRecorder.cancel} if it was not applied after all,
 * {@link StepRecorder.finish} with the oldest pending step's `[loss, grad_norm]`.
 *
 * @example
 * ```ts
 * import { StepRecorder } from "@lora/vit/training";
 * let now = 0;
 * const log = new StepRecorder({ clock: () => now });
 * log.begin({ epoch: 1, step: 1, lr: 0.01, images: 8, start: now });
 * now = 500; // the second step begins half a second later
 * log.begin({ epoch: 1, step: 2, lr: 0.01, images: 8, start: now });
 * console.log(log.finish(new Float32Array([2.3, 1.1])).images_per_s); // 16
 * now = 1000; // the last step's values are back
 * console.log(log.finish(new Float32Array([2.1, 0.9])).images_per_s); // 16
 * ```
 */
export class StepRecorder {
  /** The clock steps are timed by (ms). */
  readonly clock: () => number;
  #pending: StepStart[] = [];

  /** A recorder timing steps by `clock` (default `performance.now`). */
  constructor(options: { clock?: () => number } = {}) {
    this.clock = options.clock ?? (() => performance.now());
  }

  /** Steps begun whose values have not come back. */
  get pending(): number {
    return this.#pending.length;
  }

  /** A step has begun. */
  begin(step: StepStart): void {
    this.#pending.push(step);
  }

  /** The last step begun was not applied (the run stopped before it): forget it. */
  cancel(): void {
    this.#pending.pop();
  }

  /** The oldest pending step's values are back: its metrics line. */
  finish(values: Float32Array): StepEvent {
    const step = this.#pending.shift();
    if (!step) throw new Error("StepRecorder.finish: no step is pending");
    const end = this.#pending[0]?.start ?? this.clock();
    const seconds = Math.max(end - step.start, 1e-3) / 1000;
    return {
      event: "step",
      epoch: step.epoch,
      step: step.step,
      loss: values[0],
      lr: step.lr,
      grad_norm: values[1],
      images_per_s: step.images / seconds,
    };
  }

  /** Forgets every pending step (after an error). */
  clear(): void {
    this.#pending = [];
  }
}
