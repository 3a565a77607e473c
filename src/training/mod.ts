/**
 * The parts of training, for those who write their own loop or callbacks: HF Trainer's
 * AdamW (biases not decayed), linear schedule and clipping; checkpoints; the callback
 * interface; and the table every option of `train()` is declared in. `train()` itself is in
 * the package's main entry.
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

export {
  AdamW,
  type AdamWOptions,
  clipByGlobalNorm,
  linearSchedule,
  type ScheduleOptions,
  trainerNoDecay,
} from "./optimizer.ts";
export {
  latestCheckpoint,
  loadAdapterWeights,
  loadOptimizer,
  readTrainerState,
  saveCheckpoint,
  type TrainerState,
} from "./checkpoint.ts";
export { notify } from "./callbacks.ts";
export {
  checkTrainConfig,
  type OptionKind,
  type OptionSpec,
  TRAIN_OPTIONS,
} from "../runs/config.ts";
