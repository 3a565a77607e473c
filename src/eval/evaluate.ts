/**
 * Evaluation: on batches of images (mean cross-entropy, top-1 and top-5 accuracy and each
 * image's prediction, computed on the backend with one read-back a batch), and of a run or a
 * model on its held-out split (macro F1, per-class accuracy, the confusion matrix).
 *
 * @module
 */

import { join } from "node:path";
import type { ViTClassifier } from "../model/classifier.ts";
import { loadClassifier } from "../model/loading.ts";
import { predictLogits } from "../engines/parallel.ts";
import { setOnnxDtype } from "../engines/ort.ts";
import type { OnnxDtype } from "../onnx/folder.ts";
import type { Precision } from "../model/precision.ts";
import { VitLoraError } from "../core/errors.ts";
import { exists, readJsonFile, writeFileAtomic } from "../core/files.ts";
import { openDataset, type OpenDatasetOptions } from "../hub/dataset.ts";
import type { HubSettings } from "../hub/settings.ts";
import { type Batch, batches, DecodePool } from "../data/loader.ts";
import { classificationMetrics, type ClassMetrics } from "./metrics.ts";
import { Progress } from "../core/progress.ts";
import { readRunConfig, runPaths } from "../runs/folder.ts";
import { partRows } from "../data/sampler.ts";
import { type DatasetSplits, parseSplitFile, planSplits } from "../data/splits.ts";
import { checkOptions, type OptionInputs, withDefaults } from "../core/options.ts";
import { EVAL_OPTIONS } from "./options.ts";
import { type Tensor1D, type Tensor4D, tf } from "../core/tf.ts";
import type { EvalSummary } from "../runs/events.ts";
import {
  adapterDigest,
  checkShard,
  emptyOutcomes,
  type EvalOutcomes,
  type EvalShardFile,
  evalShardPath,
  parseShard,
  sha256,
  type Shard,
  shardLabel,
  shardRange,
} from "./shard.ts";

/**
 * What {@link evaluateBatches} measures: loss, top-1 and top-5 accuracy (top-k with
 * k = min(5, classes)) and the count, and each image's outcome.
 */
export interface EvalMetrics extends EvalSummary, EvalOutcomes {
  /** Images a second. */
  imagesPerSecond: number;
}

/**
 * The figures of {@link EvalMetrics} from per-image outcomes (the mean loss summed in order),
 * so that outcomes read back from shard files give exactly the figures of one process.
 */
export function metricsFromOutcomes(o: EvalOutcomes, seconds: number): EvalMetrics {
  let lossSum = 0, correct = 0, correct5 = 0;
  const count = o.indices.length;
  for (let i = 0; i < count; i++) {
    lossSum += o.losses[i];
    if (o.top5Hits[i]) correct5++;
    if (o.predictions[i] === o.labels[i]) correct++;
  }
  return {
    loss: count ? lossSum / count : NaN,
    accuracy: count ? correct / count : NaN,
    top5: count ? correct5 / count : NaN,
    count,
    imagesPerSecond: count / seconds,
    ...o,
  };
}

/**
 * Evaluates a classifier (dropout off) on a stream of batches.
 *
 * @example
 * ```ts ignore
 * import { loadClassifier } from "@lora/vit";
 * import { batches, epochRows, openParquetDataset } from "@lora/vit/data";
 * import { evaluateBatches } from "./evaluate.ts";
 * const clf = await loadClassifier("model", { adapter: "run/best" });
 * const data = await openParquetDataset("food101");
 * const spec = clf.transformSpec();
 * const m = await evaluateBatches(clf, batches(epochRows(data, "validation"), { spec, batchSize: 64 }));
 * console.log(m.accuracy, m.top5);
 * ```
 */
export async function evaluateBatches(
  clf: ViTClassifier,
  source: AsyncIterable<Batch>,
  options: { onBatch?: (done: number) => void } = {},
): Promise<EvalMetrics> {
  const size = clf.config.image_size;
  const k = Math.min(5, clf.labels.length);
  let count = 0;
  const o = emptyOutcomes();
  const start = performance.now();
  for await (const batch of source) {
    const pixels = tf.tensor4d(batch.pixels, [batch.size, 3, size, size]) as Tensor4D;
    const logits = await predictLogits(clf, pixels); // on every core (replicas on wasm)
    pixels.dispose();
    const out = tf.tidy(() => {
      const y = tf.tensor1d(batch.labels, "int32") as Tensor1D;
      const nll = tf.neg(tf.sum(tf.oneHot(y, clf.labels.length).mul(tf.logSoftmax(logits)), 1));
      const top = tf.topk(logits, k).indices; // [batch, k]
      const hit5 = tf.any(tf.equal(top, y.expandDims(1)), 1).cast("float32");
      const pred = top.slice([0, 0], [-1, 1]).reshape([-1]).cast("float32");
      const prob = tf.softmax(logits).max(1);
      return tf.concat([nll, hit5, pred, prob]);
    });
    logits.dispose();
    const values = await out.data();
    out.dispose();
    const n = batch.size;
    for (let i = 0; i < n; i++) {
      o.losses.push(values[i]);
      o.top5Hits.push(values[n + i] === 1);
      o.predictions.push(values[2 * n + i]);
      o.labels.push(batch.labels[i]);
      o.probabilities.push(values[3 * n + i]);
      o.indices.push(batch.indices[i]);
    }
    count += n;
    options.onBatch?.(count);
  }
  return metricsFromOutcomes(o, (performance.now() - start) / 1000);
}

/**
 * Options of {@link evaluate} (see {@link EVAL_OPTIONS}): a run (its model, data and split), or
 * a model, adapter and data.
 */
export interface EvaluateOptions extends Omit<OptionInputs<typeof EVAL_OPTIONS>, "shard"> {
  /**
   * With `run`: evaluate one shard of the split only (`{ index: 0…count-1, count }`, or its
   * text `i/n` / `auto/n`): a contiguous block of whole batches of its rows, in their order.
   * The shard's outcomes go to `RUN/eval-<split>.shard-<index>-of-<count>.json` instead of
   * `eval-<split>.json`; `mergeEvalShards` makes that one from all shards, the same as a single
   * process writes.
   */
  shard?: Shard | string;
  /** Progress on stderr (default true). */
  progress?: boolean;
  /** Hub settings for Hub ids. */
  hub?: HubSettings;
}

/** What {@link evaluate} reports (and writes to `RUN/eval-<split>.json`). */
export interface EvalReport {
  /** The split evaluated. */
  split: "test" | "validation";
  /** The base model. */
  model: string;
  /** The adapter evaluated (folder), if any. */
  adapter?: string;
  /** The dataset. */
  data: string;
  /** Images evaluated. */
  count: number;
  /** Mean cross-entropy. */
  loss: number;
  /** Top-1 accuracy. */
  accuracy: number;
  /** Top-5 accuracy. */
  top5: number;
  /** Macro-averaged F1. */
  macroF1: number;
  /**
   * Images a second: timing, not a result; it differs from run to run. In a report merged
   * from shards it is the images over the shards' summed evaluation seconds (one process's
   * rate, averaged), not the rate of the shards together.
   */
  imagesPerSecond: number;
  /** The precision of the forward passes, when one was asked for (`evaluate({ dtype })`). */
  dtype?: OnnxDtype;
  /** The arithmetic the model ran in on its backend (`fp16`: WebGPU mixed precision). */
  precision?: Precision;
  /**
   * In `precision` fp16, or with `dtype` `fp16` or `q8`: fp32's accuracy on the same images, and
   * the share of images whose top class is the same in both.
   */
  againstFp32?: { accuracy: number; top1Agreement: number };
  /** Class names. */
  labels: string[];
  /** Per class: support, accuracy (recall), precision, F1. */
  perClass: ClassMetrics[];
  /** `confusion[true][predicted]`. */
  confusion: number[][];
  /** Each image: its row in the split, true and predicted class, the prediction's probability. */
  predictions: { index: number; label: number; predicted: number; probability: number }[];
}

/**
 * Evaluates a classifier on the held-out validation or test split: accuracy, top-5, macro F1,
 * per-class accuracy, the confusion matrix and images/s. With `run`, the model, data and split
 * are the run's and the report is also written to `RUN/eval-<split>.json`; with `shard` too,
 * only that shard's rows are evaluated, and its outcomes are written to
 * `RUN/eval-<split>.shard-<i>-of-<n>.json` for `mergeEvalShards` (the report returned is the
 * shard's own).
 *
 * @example
 * ```ts ignore
 * import { evaluate } from "@lora/vit";
 * const report = await evaluate({ run: "runs/food101", split: "test" });
 * console.log(report.accuracy, report.macroF1);
 * ```
 */
export async function evaluate(options: EvaluateOptions): Promise<EvalReport> {
  const { shard: shardText, progress: showProgress, hub, ...given } = options;
  checkOptions(EVAL_OPTIONS, given);
  const o = withDefaults(EVAL_OPTIONS, given);
  const split = o.split;
  let model: string, data: string, adapter: string | undefined;
  let batchSize = o.batchSize ?? 64;
  let splits: DatasetSplits | undefined;
  let dataOptions: OpenDatasetOptions = {
    imageColumn: o.imageColumn,
    labelColumn: o.labelColumn,
  };
  const shard = shardText === undefined
    ? undefined
    : checkShard(typeof shardText === "string" ? parseShard(shardText) : shardText);
  if (shard && !options.run) {
    throw new VitLoraError("--shard needs --run: the shard files are written to the run's folder");
  }
  if (options.run) {
    const run = options.run;
    const saved = await readRunConfig(run);
    const config = saved.train;
    model = options.model ?? config.model;
    data = options.data ?? config.data;
    batchSize = options.batchSize ?? config.batchSize;
    dataOptions = {
      imageColumn: options.imageColumn ?? config.imageColumn,
      labelColumn: options.labelColumn ?? config.labelColumn,
      labels: config.labels,
    };
    const checkpoint = options.checkpoint ?? "best";
    adapter = options.adapter ??
      (checkpoint === "best"
        ? join(run, "best")
        : /^(epoch|step)-\d+$/.test(checkpoint)
        ? join(run, "checkpoints", checkpoint)
        : checkpoint);
    if (!(await exists(join(adapter, "adapter_model.safetensors")))) {
      throw new VitLoraError(`${adapter}: no adapter there (checkpoints: best, epoch-N, step-N)`);
    }
    const splitPath = runPaths(run).split;
    splits = parseSplitFile(await readJsonFile(splitPath), splitPath);
  } else {
    if (!options.model || !options.data) {
      throw new VitLoraError("evaluate: give a run (--run), or a model and data (--model, --data)");
    }
    model = options.model;
    data = options.data;
    adapter = options.adapter;
  }
  const dataset = await openDataset(data, {
    ...dataOptions,
    progress: showProgress,
    settings: hub,
  });
  splits ??= planSplits(dataset.sizes, o, data);
  const part = splits[split];
  // the rows in the order evaluation visits them (the split's order); a shard takes a block
  const ordered = part.indices ??
    Array.from({ length: dataset.sizes[part.source] ?? 0 }, (_, i) => i);
  const [first, end] = shard ? shardRange(ordered.length, shard, batchSize) : [0, ordered.length];
  const rows = ordered.slice(first, end);
  const adapterSha256 = shard ? await adapterDigest(adapter) : undefined;
  const clf = await loadClassifier(model, {
    adapter,
    labels: dataset.labels,
    backend: options.backend,
    progress: showProgress,
    hub,
    replicas: options.replicas,
    precision: o.precision,
  });
  const pool = new DecodePool({ workers: options.workers });
  const progress = new Progress(showProgress === false ? { write: () => {} } : {});
  try {
    if (clf.labels.length !== dataset.labels.length) {
      throw new VitLoraError(
        `${
          adapter ?? model
        }: its classifier has ${clf.labels.length} classes, the dataset ${dataset.labels.length}`,
      );
    }
    const spec = clf.transformSpec();
    if (o.dtype) setOnnxDtype(clf, o.dtype);
    const passWith = (model: ViTClassifier, label: string) => {
      progress.start(label, rows.length);
      return evaluateBatches(
        model,
        batches(partRows(dataset, { source: part.source, indices: rows }), {
          spec,
          batchSize,
          pool,
          onSkip: (s) =>
            progress.line(
              `warning: ${
                s.row === 0 && !s.file.endsWith(".parquet") ? s.file : `${s.file}: row ${s.row}`
              }: ${s.error} (image skipped)`,
            ),
        }),
        { onBatch: (done) => progress.update(done) },
      );
    };
    const pass = (label: string) => passWith(clf, label);
    const m = await pass(
      `evaluating on ${split}${shard ? ` (${shardLabel(shard)}: rows ${first}–${end})` : ""}${
        o.dtype ? ` in ${o.dtype}` : ""
      }`,
    );
    let againstFp32: EvalReport["againstFp32"];
    if (clf.precision === "fp16" && !shard) {
      // what mixed precision costs: the same images through the model in float32
      const fp32 = await loadClassifier(model, {
        adapter,
        labels: dataset.labels,
        backend: options.backend,
        progress: showProgress,
        hub,
        precision: "fp32",
      });
      try {
        const ref = await passWith(fp32, "the same in fp32");
        const agree = m.predictions.filter((p, i) => p === ref.predictions[i]).length;
        againstFp32 = { accuracy: ref.accuracy, top1Agreement: m.count ? agree / m.count : NaN };
      } finally {
        fp32.dispose();
      }
    } else if (o.dtype && o.dtype !== "fp32" && !shard) {
      // what the precision costs: fp32 on the same images
      setOnnxDtype(clf, "fp32");
      const ref = await pass(`the same in fp32`);
      const agree = m.predictions.filter((p, i) => p === ref.predictions[i]).length;
      againstFp32 = {
        accuracy: ref.accuracy,
        top1Agreement: m.count ? agree / m.count : NaN,
      };
    }
    const report = toEvalReport(m, dataset.labels, { split, model, adapter, data });
    if (o.dtype) report.dtype = o.dtype;
    if (clf.precision !== "fp32") report.precision = clf.precision;
    if (againstFp32) report.againstFp32 = againstFp32;
    if (options.run && shard) {
      const file: EvalShardFile = {
        format: "vit-lora/eval-shard@1",
        shard,
        split,
        model,
        ...(clf.precision !== "fp32" ? { precision: clf.precision } : {}),
        adapter,
        adapterSha256,
        data,
        batchSize,
        classes: dataset.labels,
        rows: {
          total: ordered.length,
          sha256: await sha256(JSON.stringify(ordered)),
          start: first,
          end,
        },
        seconds: m.count ? m.count / m.imagesPerSecond : 0,
        outcomes: {
          indices: m.indices,
          labels: m.labels,
          predictions: m.predictions,
          probabilities: m.probabilities,
          losses: m.losses,
          top5Hits: m.top5Hits,
        },
      };
      await writeFileAtomic(evalShardPath(options.run, split, shard), JSON.stringify(file) + "\n");
    } else if (options.run) {
      await writeFileAtomic(join(options.run, `eval-${split}.json`), JSON.stringify(report) + "\n");
    }
    return report;
  } finally {
    pool.close();
    clf.dispose();
  }
}

/** An {@link EvalReport} from {@link evaluateBatches}' metrics. */
export function toEvalReport(
  m: EvalMetrics,
  labels: string[],
  meta: { split: "test" | "validation"; model: string; adapter?: string; data: string },
): EvalReport {
  const metrics = classificationMetrics(m.labels, m.predictions, labels);
  return {
    ...meta,
    count: m.count,
    loss: m.loss,
    accuracy: m.accuracy,
    top5: m.top5,
    macroF1: metrics.macroF1,
    imagesPerSecond: m.imagesPerSecond,
    labels,
    perClass: metrics.perClass,
    confusion: metrics.confusion,
    predictions: m.indices.map((index, i) => ({
      index,
      label: m.labels[i],
      predicted: m.predictions[i],
      probability: m.probabilities[i],
    })),
  };
}

/** A short text table of a report: the headline figures and the five worst classes. */
export function formatEvalReport(report: EvalReport): string {
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  const worst = report.perClass.filter((c) => c.support > 0)
    .sort((a, b) => a.accuracy - b.accuracy).slice(0, 5);
  const width = Math.max(12, ...worst.map((c) => c.label.length));
  return [
    `${report.split}: ${report.count} images, ${report.imagesPerSecond.toFixed(1)} images/s`,
    `  accuracy   ${pct(report.accuracy)}`,
    `  top-5      ${pct(report.top5)}`,
    `  macro F1   ${report.macroF1.toFixed(4)}`,
    `  loss       ${report.loss.toFixed(4)}`,
    ...(report.againstFp32
      ? [
        `  ${report.dtype ?? report.precision} against fp32: accuracy ${pct(report.accuracy)} vs ${
          pct(report.againstFp32.accuracy)
        } (${(100 * (report.accuracy - report.againstFp32.accuracy)).toFixed(2)} points), ` +
        `top-1 the same on ${pct(report.againstFp32.top1Agreement)}`,
      ]
      : []),
    `  worst classes:`,
    ...worst.map((c) =>
      `    ${c.label.padEnd(width)} ${pct(c.accuracy).padStart(7)} of ${c.support}`
    ),
  ].join("\n");
}
