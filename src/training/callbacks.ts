/**
 * What plugs into a training run, as HF Trainer's callbacks do: reporters (the run report,
 * Weights & Biases, a push to the Hub) see the run begin, every step and evaluation, and its
 * end, without the trainer knowing them.
 *
 * @module
 */

import type { BackendInfo } from "../backend/backend.ts";
import type { ParameterCount } from "../model/classifier.ts";
import type { TrainConfig } from "../runs/config.ts";
import type { EvalEvent, StepEvent } from "../runs/events.ts";
import type { EvalMetrics } from "../eval/evaluate.ts";

/** A run as it begins. */
export interface RunStart {
  /** The run folder. */
  runDir: string;
  /** The run's name (its folder's). */
  name: string;
  /** The resolved configuration. */
  config: TrainConfig;
  /** The backend it runs on. */
  backend: BackendInfo;
  /** Trainable and total parameters. */
  parameters: ParameterCount;
  /** Images a forward/backward pass. */
  chunkSize: number;
  /** Model replicas in workers. */
  replicas: number;
  /** Whether it continues an earlier session. */
  resumed: boolean;
}

/** What {@link train} returns, and callbacks see at the end. */
export interface TrainResult {
  /** The run folder. */
  runDir: string;
  /** The epoch with the best validation accuracy (from 1). */
  bestEpoch: number;
  /** The best epoch's validation metrics. */
  validation?: EvalEvent;
  /** The best adapter on the test split (absent when interrupted or without a test split). */
  test?: EvalMetrics;
  /** Optimizer steps done. */
  steps: number;
  /** Trainable and total parameters. */
  parameters: ParameterCount;
  /** Seconds spent training and evaluating (over every session of a resumed run). */
  seconds: number;
  /** Images left out because they could not be decoded. */
  skipped: number;
  /** True when stopped by the signal before the end (a checkpoint was saved). */
  interrupted: boolean;
  /** True when early stopping ended the run before its last epoch. */
  stoppedEarly: boolean;
}

/** What a callback may use: the run's own log (the progress output). */
export interface CallbackContext {
  /** Prints a line with the run's progress output (stderr, or nothing when quiet). */
  log(line: string): void;
}

/**
 * A training callback. Every hook is optional and may be async; the trainer awaits each in
 * turn. `onClose` is called last, also when training failed, to release what the callback
 * holds.
 *
 * @example
 * ```ts ignore
 * import { train, type TrainerCallback } from "@lora/vit";
 *
 * const printer: TrainerCallback = {
 *   onStep: (e) => console.log(e.step, e.loss),
 *   onEvaluate: (e) => console.log(e.split, e.accuracy),
 * };
 * await train({
 *   model: "google/vit-base-patch16-224-in21k",
 *   data: "photos",
 *   out: "runs/photos",
 *   callbacks: [printer],
 * });
 * ```
 */
export interface TrainerCallback {
  /** The run begins (the run folder exists, the model is loaded). */
  onTrainBegin?(run: RunStart, context: CallbackContext): void | Promise<void>;
  /** After every optimizer step. */
  onStep?(event: StepEvent, context: CallbackContext): void | Promise<void>;
  /** After every evaluation (validation each epoch, test at the end). */
  onEvaluate?(event: EvalEvent, context: CallbackContext): void | Promise<void>;
  /** The run ended (completed, or interrupted with a checkpoint saved). */
  onTrainEnd?(result: TrainResult, context: CallbackContext): void | Promise<void>;
  /** Always last, also after a failure. */
  onClose?(): void | Promise<void>;
}

/** Calls `hook` of every callback in turn. */
export async function notify<K extends keyof TrainerCallback>(
  callbacks: readonly TrainerCallback[],
  hook: K,
  ...args: Parameters<NonNullable<TrainerCallback[K]>>
): Promise<void> {
  for (const callback of callbacks) {
    const fn = callback[hook] as ((...a: unknown[]) => unknown) | undefined;
    await fn?.apply(callback, args);
  }
}
