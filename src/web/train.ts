/**
 * Fine-tuning, evaluating and classifying in a web page, over labelled images held in
 * memory: the same model, optimizer (HF Trainer's AdamW, biases not decayed), linear schedule,
 * clipping and per-image step loss as `train()`, the same transforms (RandomResizedCrop and
 * flip when training, resize and center crop when evaluating), and the same seeded streams,
 * without the run folder, the parquet reader or the workers, which need Deno.
 *
 * @module
 */

import {
  checkOptions,
  type OptionInputs,
  type OptionSchema,
  withDefaults,
} from "../core/options.ts";
import { Random, STREAMS } from "../core/random.ts";
import { type Tensor1D, type Tensor4D, tf } from "../core/tf.ts";
import { VitLoraError } from "../core/errors.ts";
import type { RgbImage } from "../data/image.ts";
import { transformImage, type TransformSpec } from "../data/transforms.ts";
import { type Prediction, topClasses } from "../eval/top.ts";
import type { ViTClassifier } from "../model/classifier.ts";
import type { EvalSummary, StepEvent } from "../runs/events.ts";
import { TRAIN_CONFIG_OPTIONS } from "../runs/config.ts";
import { GradScaler } from "../training/grad_scaler.ts";
import { AdamW, trainerNoDecay } from "../training/optimizer.ts";
import { makePlan, stepGroups } from "../training/plan.ts";
import { applyGradients, combineGradients, readStepStats } from "../training/step.ts";

/** One labelled image. */
export interface Example {
  /** The decoded image (any size: the transforms bring it to the model's). */
  image: RgbImage;
  /** Its class index. */
  label: number;
}

/** The options of {@link train}: training's, with defaults sized for a browser tab. */
export const WEB_TRAIN_OPTIONS = {
  /** Passes over the examples. */
  epochs: { ...TRAIN_CONFIG_OPTIONS.epochs, default: 3 },
  /** Images a micro-batch. */
  batchSize: { ...TRAIN_CONFIG_OPTIONS.batchSize, default: 8 },
  /** Micro-batches an optimizer step. */
  gradAccum: { ...TRAIN_CONFIG_OPTIONS.gradAccum, default: 1 },
  /** Peak learning rate, decayed linearly to 0. */
  lr: TRAIN_CONFIG_OPTIONS.lr,
  /** AdamW's decoupled weight decay, not on biases. */
  weightDecay: TRAIN_CONFIG_OPTIONS.weightDecay,
  /** Fraction of the steps warming up from 0. */
  warmupRatio: TRAIN_CONFIG_OPTIONS.warmupRatio,
  /** Gradient clipping's global norm (0: none). */
  maxGradNorm: TRAIN_CONFIG_OPTIONS.maxGradNorm,
  /** Seed of the order, the augmentation and dropout. */
  seed: TRAIN_CONFIG_OPTIONS.seed,
  /** Training augmentation: `standard`, `trivial` or `none`. */
  augment: TRAIN_CONFIG_OPTIONS.augment,
  /** Label smoothing of the loss. */
  labelSmoothing: TRAIN_CONFIG_OPTIONS.labelSmoothing,
} as const satisfies OptionSchema;

/** Options of {@link train}: {@link WEB_TRAIN_OPTIONS} and what the page listens to. */
export interface WebTrainOptions extends OptionInputs<typeof WEB_TRAIN_OPTIONS> {
  /** Evaluated after every epoch (accuracy, loss), when given. */
  validation?: Example[];
  /** After every optimizer step. */
  onStep?: (event: StepEvent) => void;
  /** After every epoch's evaluation. */
  onEpoch?: (epoch: number, validation: EvalSummary) => void;
  /** Stops before the next optimizer step. */
  signal?: AbortSignal;
}

/** What {@link train} did. */
export interface WebTrainResult {
  /** Optimizer steps done. */
  steps: number;
  /** The last epoch's validation figures, when there was a validation set. */
  validation?: EvalSummary;
  /** Seconds it took. */
  seconds: number;
  /** True when stopped by the signal. */
  stopped: boolean;
}

/** The examples' pixels through `spec`, as one `[n, 3, S, S]` batch and its labels. */
function batchOf(
  clf: ViTClassifier,
  examples: Example[],
  spec: TransformSpec,
  rng?: (i: number) => Random,
): { x: Tensor4D; y: Tensor1D } {
  const size = clf.config.image_size, plane = 3 * size * size;
  const pixels = new Float32Array(examples.length * plane);
  examples.forEach((e, i) => pixels.set(transformImage(e.image, spec, rng?.(i)), i * plane));
  return {
    x: tf.tensor4d(pixels, [examples.length, 3, size, size]) as Tensor4D,
    y: tf.tensor1d(Int32Array.from(examples, (e) => e.label), "int32") as Tensor1D,
  };
}

/**
 * Fine-tunes `clf`'s LoRA adapter and head on labelled images in memory.
 *
 * @example
 * ```ts ignore
 * import { type Example, train, type ViTClassifier } from "@lora/vit/web";
 * declare const clf: ViTClassifier; // e.g. from loadClassifierFromUrl
 * declare const examples: Example[]; // { image: await decodeImageInBrowser(file), label }
 * declare const validation: Example[];
 *
 * const result = await train(clf, examples, {
 *   epochs: 3,
 *   validation,
 *   onStep: (e) => console.log(e.step, e.loss),
 * });
 * console.log(result.steps, result.validation?.accuracy);
 * ```
 */
export async function train(
  clf: ViTClassifier,
  examples: Example[],
  options: WebTrainOptions = {},
): Promise<WebTrainResult> {
  if (examples.length === 0) throw new VitLoraError("fineTune: no training images");
  for (const e of examples) {
    if (!(Number.isInteger(e.label) && e.label >= 0 && e.label < clf.labels.length)) {
      throw new VitLoraError(`fineTune: label ${e.label} is not one of the model's classes`);
    }
  }
  const { validation: _, onStep: __, onEpoch: ___, signal: ____, ...given } = options;
  checkOptions(WEB_TRAIN_OPTIONS, given);
  const o = withDefaults(WEB_TRAIN_OPTIONS, given);
  const { epochs, batchSize, gradAccum, seed, maxGradNorm } = o;
  // the same plan (steps, schedule) as train()'s
  const plan = makePlan({ ...o, trainSize: examples.length });
  const optimizer = new AdamW(clf.trainableVariables(), {
    weightDecay: o.weightDecay,
    noDecay: trainerNoDecay,
  });
  const spec = { ...clf.transformSpec(), augment: o.augment };
  // fp16: dynamic loss scaling, as train() (and Trainer's GradScaler)
  const scaler = clf.precision === "fp16" ? new GradScaler() : undefined;
  const start = performance.now();
  let step = 0, validation: EvalSummary | undefined, stopped = false;
  try {
    for (let epoch = 0; epoch < epochs && !stopped; epoch++) {
      // each epoch's order, as the trainer's on data of one row group
      const order = Random.stream(seed, STREAMS.epochOrder, epoch).permutation(examples.length);
      for (const group of stepGroups(order, batchSize, gradAccum)) {
        if (options.signal?.aborted) {
          stopped = true;
          break;
        }
        const stepStart = performance.now();
        const images = group.reduce((n, b) => n + b.length, 0);
        // the step's loss and gradient: the mean over all of its images (HF Trainer's), as the
        // trainer's own step makes them (training/step.ts)
        const gradients = await combineGradients(
          group.map((rows) => ({ rows, size: rows.length })),
          ({ rows }, m) => {
            const { x, y } = batchOf(
              clf,
              rows.map((r) => examples[r]),
              spec,
              (i) => Random.stream(seed, STREAMS.augment, epoch, rows[i]),
            );
            try {
              return clf.lossAndGradients(x, y, {
                training: true,
                dropoutSeed: Random.stream(seed, STREAMS.dropout, step, m).state,
                labelSmoothing: o.labelSmoothing,
                lossScale: scaler?.scale,
              });
            } finally {
              tf.dispose([x, y]);
            }
          },
        );
        // the schedule counts applied steps (a step the scaler skips does not advance it)
        const rate = plan.lr(optimizer.steps);
        const { read } = readStepStats(
          applyGradients(optimizer, gradients, { lr: rate, maxGradNorm, scaler }),
        );
        const values = await read;
        scaler?.settle(values, optimizer);
        const [loss, gradNorm] = values;
        step++;
        options.onStep?.({
          event: "step",
          epoch: epoch + 1,
          step,
          loss,
          lr: rate,
          grad_norm: gradNorm,
          images_per_s: images / ((performance.now() - stepStart) / 1000),
          ...(values.length > 2 && values[2] === 1 ? { skipped: true } : {}),
        });
        // let the page draw between steps
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      if (options.validation?.length && !stopped) {
        validation = await evaluate(clf, options.validation, { batchSize });
        options.onEpoch?.(epoch + 1, validation);
      }
    }
  } finally {
    scaler?.dispose();
    optimizer.dispose();
  }
  return { steps: step, validation, seconds: (performance.now() - start) / 1000, stopped };
}

/**
 * Loss, top-1 and top-5 accuracy of `clf` (dropout off) on labelled images, through the
 * evaluation transform.
 *
 * @example
 * ```ts ignore
 * import { evaluate, type Example, type ViTClassifier } from "@lora/vit/web";
 * declare const clf: ViTClassifier;
 * declare const validation: Example[]; // { image: await decodeImageInBrowser(file), label }
 *
 * const { accuracy, top5, loss } = await evaluate(clf, validation);
 * console.log(accuracy, top5, loss);
 * ```
 */
export async function evaluate(
  clf: ViTClassifier,
  examples: Example[],
  options: { batchSize?: number } = {},
): Promise<EvalSummary> {
  const batchSize = options.batchSize ?? 16, spec = clf.transformSpec();
  const k = Math.min(5, clf.labels.length);
  let loss = 0, correct = 0, correct5 = 0;
  for (let i = 0; i < examples.length; i += batchSize) {
    const { x, y } = batchOf(clf, examples.slice(i, i + batchSize), spec);
    const out = tf.tidy(() => {
      const logits = clf.logits(x);
      const nll = tf.neg(tf.sum(tf.oneHot(y, clf.labels.length).mul(tf.logSoftmax(logits)), 1));
      const top = tf.topk(logits, k).indices;
      const hit1 = tf.equal(top.slice([0, 0], [-1, 1]).reshape([-1]), y).cast("float32");
      const hit5 = tf.any(tf.equal(top, y.expandDims(1)), 1).cast("float32");
      return tf.stack([nll.sum(), hit1.sum(), hit5.sum()]);
    });
    const [l, c1, c5] = await out.data();
    tf.dispose([x, y, out]);
    loss += l;
    correct += c1;
    correct5 += c5;
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  const n = examples.length;
  return { loss: loss / n, accuracy: correct / n, top5: correct5 / n, count: n };
}

/**
 * The `topK` most probable classes of each image (evaluation transform, dropout off).
 *
 * @example
 * ```ts ignore
 * import { classify, decodeImageInBrowser, type ViTClassifier } from "@lora/vit/web";
 * declare const clf: ViTClassifier;
 * declare const file: File; // e.g. from an <input type="file">
 *
 * const [top] = await classify(clf, [await decodeImageInBrowser(file)], { topK: 3 });
 * console.log(top.map((p) => `${p.label} ${(p.probability * 100).toFixed(1)}%`));
 * ```
 */
export async function classify(
  clf: ViTClassifier,
  images: RgbImage[],
  options: { topK?: number } = {},
): Promise<Prediction[][]> {
  const topK = options.topK ?? 5;
  const out: Prediction[][] = [];
  for (let i = 0; i < images.length; i += 16) {
    const part = images.slice(i, i + 16).map((image) => ({ image, label: 0 }));
    const { x, y } = batchOf(clf, part, clf.transformSpec());
    const logits = clf.logits(x);
    out.push(...await topClasses(logits, clf.labels, topK));
    tf.dispose([x, y, logits]);
  }
  return out;
}

/**
 * The old name of {@link train}, kept for one release.
 *
 * @deprecated Use {@link train}.
 */
export const fineTune: typeof train = train;
/**
 * The old name of {@link evaluate}, kept for one release.
 *
 * @deprecated Use {@link evaluate}.
 */
export const evaluateExamples: typeof evaluate = evaluate;
/**
 * The old name of {@link classify} (with `topK` as a plain argument), kept for one release.
 *
 * @deprecated Use {@link classify}.
 */
export function classifyImages(
  clf: ViTClassifier,
  images: RgbImage[],
  topK = 5,
): Promise<Prediction[][]> {
  return classify(clf, images, { topK });
}
/**
 * The old name of {@link WebTrainOptions}, kept for one release.
 *
 * @deprecated Use {@link WebTrainOptions}.
 */
export type FineTuneOptions = WebTrainOptions;
/**
 * The old name of {@link WebTrainResult}, kept for one release.
 *
 * @deprecated Use {@link WebTrainResult}.
 */
export type FineTuneResult = WebTrainResult;
