/**
 * What a training run logs, a line each in its `metrics.jsonl`: every optimizer step and
 * every evaluation.
 *
 * @module
 */

/** The figures of an evaluation over a split. */
export interface EvalSummary {
  /** Mean cross-entropy. */
  loss: number;
  /** Top-1 accuracy. */
  accuracy: number;
  /** Top-5 accuracy. */
  top5: number;
  /** Images evaluated. */
  count: number;
}

/** One optimizer step, as written to `metrics.jsonl`. */
export interface StepEvent {
  /** Always `"step"`. */
  event: "step";
  /** The epoch (from 1). */
  epoch: number;
  /** The step (from 1). */
  step: number;
  /**
   * Mean cross-entropy over the step's images, before the update (HF Trainer's logged loss:
   * micro-batches weighted by their sizes).
   */
  loss: number;
  /** The learning rate this step used. */
  lr: number;
  /** The gradients' global L2 norm before clipping (null when not finite: a skipped step's). */
  grad_norm: number;
  /**
   * True for a step the loss scaler skipped (fp16: the gradients overflowed), which changed no
   * weight, as Trainer's; absent otherwise.
   */
  skipped?: boolean;
  /** Training images a second over this step. */
  images_per_s: number;
}

/** An evaluation, as written to `metrics.jsonl`. */
export interface EvalEvent extends EvalSummary {
  /** Always `"eval"`. */
  event: "eval";
  /** The epoch evaluated (from 1; for the test, the best epoch). */
  epoch: number;
  /** `validation` or `test`. */
  split: "validation" | "test";
}

/** A line of `metrics.jsonl`. */
export type RunEvent = StepEvent | EvalEvent;
