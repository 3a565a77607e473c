/**
 * What a training run keeps, and when it stops early: after each epoch's evaluation the best
 * adapter so far (`best/`, by validation accuracy, as Trainer's `load_best_model_at_end` with
 * `metric_for_best_model="accuracy"`) and a checkpoint (`checkpoints/epoch-N/`), on a stop a
 * checkpoint of the step reached (`checkpoints/step-N/`), and early stopping with the rules of
 * transformers' `EarlyStoppingCallback`.
 *
 * @module
 */

import { join } from "node:path";
import type { ViTClassifier } from "../model/classifier.ts";
import { runPaths } from "../runs/folder.ts";
import { saveCheckpoint, type TrainerState, writeFolderAtomic } from "./checkpoint.ts";
import type { AdamW } from "./optimizer.ts";

/** Early stopping's settings (`EarlyStoppingCallback`'s). */
export interface EarlyStopping {
  /** Evaluations without an improvement before the run stops; undefined: never stop early. */
  patience?: number;
  /** How much better than the best a metric must be to count as an improvement. */
  threshold: number;
}

/**
 * The state after an evaluation of validation accuracy `accuracy` at `epoch`: a new best
 * when it beats the best so far (Trainer's `_determine_best_metric`: strictly greater), and
 * early stopping's counter as `EarlyStoppingCallback.check_metric_value` keeps it (compared
 * with the best before this evaluation: reset when better by more than the threshold, else
 * one more). Returns whether it is a new best and whether the run should stop.
 *
 * @example
 * ```ts
 * import { afterEvaluation } from "@lora/vit/training";
 * const state = { global_step: 10, epoch: 2, rows_done: 0, skipped: 0, seconds: 1,
 *   best: { epoch: 1, accuracy: 0.8 } };
 * console.log(afterEvaluation(state, 2, 0.79, { patience: 1, threshold: 0 }));
 * // { best: false, stop: true }
 * ```
 */
export function afterEvaluation(
  state: TrainerState,
  epoch: number,
  accuracy: number,
  early: EarlyStopping,
): { best: boolean; stop: boolean } {
  const previous = state.best?.accuracy;
  const improved = previous === undefined ||
    (accuracy > previous && Math.abs(accuracy - previous) > early.threshold);
  state.patience = improved ? 0 : (state.patience ?? 0) + 1;
  const best = previous === undefined || accuracy > previous;
  if (best) state.best = { epoch, accuracy };
  const stop = early.patience !== undefined && state.patience >= early.patience;
  if (stop) state.stopped_early = true;
  return { best, stop };
}

/** Writes a run's adapters and checkpoints into its folder. */
export class Checkpointer {
  /** The run folder. */
  readonly runDir: string;
  readonly #clf: ViTClassifier;
  readonly #optimizer: AdamW;

  /** Checkpoints of `clf` and `optimizer` in `runDir`. */
  constructor(runDir: string, clf: ViTClassifier, optimizer: AdamW) {
    this.runDir = runDir;
    this.#clf = clf;
    this.#optimizer = optimizer;
  }

  /** The adapter as it is now, as the run's best (`best/`, replaced whole). */
  async saveBest(): Promise<void> {
    await writeFolderAtomic(runPaths(this.runDir).best, (tmp) => this.#clf.saveAdapter(tmp));
  }

  /** The checkpoint of an epoch's end (`checkpoints/epoch-N/`). */
  async saveEpoch(epoch: number, state: TrainerState): Promise<string> {
    return await this.#save(`epoch-${epoch}`, state);
  }

  /** The checkpoint of a stop part way (`checkpoints/step-N/`). */
  async saveStep(state: TrainerState): Promise<string> {
    return await this.#save(`step-${state.global_step}`, state);
  }

  async #save(name: string, state: TrainerState): Promise<string> {
    const dir = join(runPaths(this.runDir).checkpoints, name);
    await saveCheckpoint(dir, { classifier: this.#clf, optimizer: this.#optimizer, state });
    return dir;
  }
}
