/**
 * A training run's plan, as HF Trainer makes it: optimizer steps an epoch (micro-batches of
 * `batchSize` images, `gradAccum` of them a step, the epoch's last step taking what is left),
 * steps in all (`maxSteps`, else every epoch's), and the learning rate of each step (linear
 * warm-up from 0, then linear decay to 0). `train()` and the page's `train` both run by it.
 * Browser-safe.
 *
 * @module
 */

import { linearSchedule } from "./optimizer.ts";

/** What a plan is made from: the recipe's numbers and the training rows. */
export interface PlanOptions {
  /** Training images. */
  trainSize: number;
  /** Images a micro-batch. */
  batchSize: number;
  /** Micro-batches an optimizer step. */
  gradAccum: number;
  /** Passes over the training images. */
  epochs: number;
  /** Stop after this many steps (default: every epoch's). */
  maxSteps?: number;
  /** Peak learning rate. */
  lr: number;
  /** Fraction of the steps warming the rate up from 0 (default 0). */
  warmupRatio?: number;
}

/** Steps an epoch, in all, and epochs, with the learning rate of each step. */
export interface TrainingPlan {
  /** Optimizer steps an epoch. */
  stepsPerEpoch: number;
  /** Optimizer steps in all. */
  totalSteps: number;
  /** Epochs begun (the last may stop part way, at `maxSteps`). */
  epochs: number;
  /** The learning rate of step `step` (from 0). */
  lr: (step: number) => number;
}

/**
 * The plan of a run.
 *
 * @example
 * ```ts
 * import { makePlan } from "@lora/vit/training";
 * // Food-101's 75,750 training images, the reference recipe
 * const plan = makePlan({ trainSize: 75750, batchSize: 64, gradAccum: 4, epochs: 5, lr: 5e-3 });
 * console.log(plan.stepsPerEpoch, plan.totalSteps, plan.lr(0)); // 296 1480 0.005
 * ```
 */
export function makePlan(options: PlanOptions): TrainingPlan {
  const microBatches = Math.ceil(options.trainSize / options.batchSize);
  const stepsPerEpoch = Math.max(1, Math.ceil(microBatches / options.gradAccum));
  const totalSteps = options.maxSteps ?? options.epochs * stepsPerEpoch;
  return {
    stepsPerEpoch,
    totalSteps,
    epochs: Math.ceil(totalSteps / stepsPerEpoch),
    lr: linearSchedule({
      lr: options.lr,
      totalSteps,
      warmupSteps: Math.ceil((options.warmupRatio ?? 0) * totalSteps),
    }),
  };
}

/**
 * An epoch's rows (in its order) as optimizer steps: micro-batches of `batchSize` rows,
 * `gradAccum` of them a step.
 *
 * @example
 * ```ts
 * import { stepGroups } from "@lora/vit/training";
 * console.log(stepGroups([0, 1, 2, 3, 4], 2, 2)); // [[[0, 1], [2, 3]], [[4]]]
 * ```
 */
export function stepGroups<T>(rows: readonly T[], batchSize: number, gradAccum: number): T[][][] {
  const micro: T[][] = [];
  for (let i = 0; i < rows.length; i += batchSize) micro.push(rows.slice(i, i + batchSize));
  const steps: T[][][] = [];
  for (let i = 0; i < micro.length; i += gradAccum) steps.push(micro.slice(i, i + gradAccum));
  return steps;
}
