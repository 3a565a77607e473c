/**
 * The trainer's own optimizer steps on WebGPU, ready to count (`bench/gpu_counts.ts`,
 * `bench/gpu_counts_bench.ts`): a classifier of a given shape with LoRA on query and value
 * and a 101-class head, one step's micro-batches of generated pixels, and a `StepPipeline`
 * as `TrainingRun.step` drives it; in fp16, with a loss scaler (Trainer's `fp16=True`).
 */

import { Random } from "../src/core/random.ts";
import type { ViTConfig } from "../src/model/config.ts";
import type { ViTClassifier } from "../src/model/classifier.ts";
import { createClassifier } from "../src/model/loading.ts";
import { AdamW, trainerNoDecay } from "../src/training/optimizer.ts";
import { StepPipeline } from "../src/training/pipeline.ts";
import { GradScaler } from "../src/training/grad_scaler.ts";
import type { PrecisionOption } from "../src/model/precision.ts";

/** A classifier, its optimizer and a step function; `dispose` frees them. */
export interface CountedSteps {
  clf: ViTClassifier;
  group: { pixels: Float32Array; labels: Int32Array; size: number }[];
  /** Optimizer step `k` (its passes queued, the previous step read, the update applied). */
  step(k: number): Promise<boolean>;
  /** Waits for the last step's values and frees everything. */
  dispose(): Promise<void>;
}

/** Sets up the trainer's steps for `config` at `batchSize` × `accum`, in chunks of `chunkSize`. */
export async function countedSteps(options: {
  config: ViTConfig;
  batchSize: number;
  accum: number;
  chunkSize: number;
  r: number;
  /** The classifier's precision (default fp32); fp16 steps are loss-scaled. */
  precision?: PrecisionOption;
  /**
   * Nothing runs (`--dry`): the steps' values never come back, so the scaler's host side does
   * not check them.
   */
  dry?: boolean;
}): Promise<CountedSteps> {
  const { config, batchSize, accum, chunkSize } = options;
  const clf = await createClassifier(config, {
    labels: Array.from({ length: 101 }, (_, i) => `class_${i}`),
    lora: { r: options.r, alpha: 16, dropout: 0.1, targetModules: ["query", "value"] },
    seed: 1,
    precision: options.precision,
  });
  const adam = new AdamW(clf.trainableVariables(), { noDecay: trainerNoDecay });
  const scaler = clf.precision !== "fp16"
    ? undefined
    : options.dry
    ? new (class extends GradScaler {
      override settle(): boolean {
        return false;
      }
    })()
    : new GradScaler();
  const size = config.image_size;
  const group = Array.from({ length: accum }, (_, m) => ({
    pixels: Float32Array.from({ length: batchSize * 3 * size * size }, (_, i) => Math.sin(i + m)),
    labels: Int32Array.from({ length: batchSize }, (_, i) => (i * 7 + m) % 101),
    size: batchSize,
  }));
  const steps = new StepPipeline(clf, adam, { scaler });
  return {
    clf,
    group,
    step: (k) =>
      steps.step(group, {
        chunkSize,
        dropoutSeed: (m) => Random.derive(42, 3, k, m).state,
        lr: (applied) => 5e-3 * (1 - applied / 100),
        maxGradNorm: 1,
      }),
    dispose: async () => {
      await steps.finish();
      steps.dispose();
      scaler?.dispose();
      adam.dispose();
      clf.dispose();
    },
  };
}
