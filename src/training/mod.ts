/**
 * The parts of training, for those who write their own loop, callbacks or front end: HF
 * Trainer's AdamW (biases not decayed), linear schedule and clipping; the plan of a run; the
 * step log; checkpoints and early stopping; and the option tables every option of `train()`,
 * `evaluate()` and `predict()` is declared in, with the machinery that derives types, checks,
 * flags and help from them. `train()` itself is in the package's main entry.
 *
 * @example
 * ```ts
 * import { linearSchedule } from "@lora/vit/training";
 * const lr = linearSchedule({ lr: 0.01, totalSteps: 4 });
 * console.log(lr(0), lr(2)); // 0.01 0.005
 * ```
 *
 * @module
 */

import "../backend/deno_platform.ts"; // Deno's environment, files and BLAS (core/platform.ts)
export {
  AdamW,
  type AdamWOptions,
  clipByGlobalNorm,
  linearSchedule,
  type ScheduleOptions,
  trainerNoDecay,
} from "./optimizer.ts";
export { makePlan, type PlanOptions, stepGroups, type TrainingPlan } from "./plan.ts";
export { StepRecorder, type StepStart } from "./recorder.ts";
export {
  latestCheckpoint,
  loadAdapterWeights,
  loadOptimizer,
  readTrainerState,
  saveCheckpoint,
  type TrainerState,
} from "./checkpoint.ts";
export { afterEvaluation, type EarlyStopping } from "./checkpointer.ts";
export {
  checkTrainConfig,
  SHARED_OPTIONS,
  TRAIN_CONFIG_OPTIONS,
  TRAIN_RUN_OPTIONS,
  type TrainRunOptions,
} from "../runs/config.ts";
export { EVAL_OPTIONS, PREDICT_OPTIONS } from "../eval/options.ts";
export {
  checkOption,
  checkOptions,
  optionDefaults,
  type OptionInputs,
  type OptionKind,
  type OptionSchema,
  optionsHelp,
  type OptionSpec,
  optionsTable,
  type OptionValue,
  type OptionValues,
  withDefaults,
} from "../core/options.ts";
export type { CallbackContext } from "./callbacks.ts";
export type { EvalSummary, RunEvent } from "../runs/events.ts";
export { readMetrics, readRunConfig, type RunConfig } from "../runs/folder.ts";
export type { BatchGradientOptions } from "../engines/parallel.ts";
export {
  GradScaler,
  type GradScalerOptions,
  type GradScalerState,
  nextScale,
  type ScalerRules,
} from "./grad_scaler.ts";
