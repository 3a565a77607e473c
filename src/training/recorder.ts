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

import type { Progress } from "../core/progress.ts";
import type { SkippedImage } from "../data/loader.ts";
import type { EvalEvent, StepEvent } from "../runs/events.ts";
import { MetricsLog, runPaths } from "../runs/folder.ts";
import { type CallbackContext, notify, type TrainerCallback } from "./callbacks.ts";

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

  /** Sets the learning rate of the last step begun (known once the previous one is settled). */
  setRate(lr: number): void {
    const last = this.#pending.at(-1);
    if (last) last.lr = lr;
  }

  /** The last step begun was not applied (the run stopped before it): forget it. */
  cancel(): void {
    this.#pending.pop();
  }

  /**
   * The oldest pending step's values are back (`[loss, grad_norm]`, with a loss scaler
   * `[loss, grad_norm, skipped, scale]`): its metrics line.
   */
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
      ...(values.length > 2 && values[2] === 1 ? { skipped: true } : {}),
    };
  }

  /** Forgets every pending step (after an error). */
  clear(): void {
    this.#pending = [];
  }
}

/** What a {@link RunLog} writes to and tells. */
export interface RunLogOptions {
  /** The run folder (`metrics.jsonl`, `skipped.jsonl`). */
  runDir: string;
  /** The progress output (lines and the bar). */
  progress: Progress;
  /** Told of every step, evaluation, and the run's begin and end. */
  callbacks?: TrainerCallback[];
  /** Called with every step's metrics line. */
  onStep?: (event: StepEvent) => void;
  /** The clock steps are timed by (ms). */
  clock?: () => number;
  /** Optimizer steps an epoch (for the progress bar). */
  stepsPerEpoch: number;
  /** Called once for each image newly found undecodable. */
  onNewSkip?: () => void;
}

/**
 * A run's log: metrics lines to `metrics.jsonl` and the callbacks (steps timed by a
 * {@link StepRecorder}), the progress bar, and the undecodable images (said once a run, listed
 * in `skipped.jsonl`).
 */
export class RunLog {
  /** Pairs steps with their values. */
  readonly recorder: StepRecorder;
  /** `metrics.jsonl`. */
  readonly metrics: MetricsLog;
  /** The run's callbacks. */
  readonly callbacks: TrainerCallback[];
  /** What callbacks may use. */
  readonly context: CallbackContext;
  readonly #options: RunLogOptions;
  readonly #reported = new Set<string>();

  /** The log of the run in `options.runDir`. */
  constructor(options: RunLogOptions) {
    this.#options = options;
    this.recorder = new StepRecorder({ clock: options.clock });
    this.metrics = new MetricsLog(options.runDir);
    this.callbacks = options.callbacks ?? [];
    this.context = { log: (line) => options.progress.line(line) };
  }

  /** A metrics line: to `metrics.jsonl`, then to the callbacks. */
  async record(event: StepEvent | EvalEvent): Promise<void> {
    await this.metrics.append(event);
    if (event.event === "step") {
      this.#options.onStep?.(event);
      await notify(this.callbacks, "onStep", event, this.context);
    } else await notify(this.callbacks, "onEvaluate", event, this.context);
  }

  /** The oldest pending step's values are back: its line to the log, the callbacks, the bar. */
  async step(values: Float32Array): Promise<void> {
    const event = this.recorder.finish(values);
    await this.record(event);
    const firstStep = (event.epoch - 1) * this.#options.stepsPerEpoch;
    this.#options.progress.update(
      event.step - firstStep,
      `loss ${event.loss.toFixed(4)} · lr ${event.lr.toExponential(2)} · ${
        event.images_per_s.toFixed(1)
      } img/s`,
    );
  }

  /** An undecodable image: said once a run (not once an epoch), counted, listed in the run. */
  onSkip = (s: SkippedImage): void => {
    const where = s.row === 0 && !s.file.endsWith(".parquet") ? s.file : `${s.file}: row ${s.row}`;
    if (this.#reported.has(where)) return;
    this.#reported.add(where);
    this.#options.onNewSkip?.();
    this.#options.progress.line(`warning: ${where}: ${s.error} (image skipped)`);
    Deno.writeTextFile(runPaths(this.#options.runDir).skipped, JSON.stringify(s) + "\n", {
      append: true,
    }).catch(() => {});
  };
}
