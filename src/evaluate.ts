/**
 * Accuracy on batches of images: mean cross-entropy, top-1 and top-5 accuracy, and each
 * image's prediction, computed on the backend with one read-back a batch.
 *
 * @module
 */

import type { ViTClassifier } from "./classifier.ts";
import type { Batch } from "./loader.ts";
import { type Tensor1D, type Tensor4D, tf } from "./tf.ts";

/** What {@link evaluateBatches} measures. */
export interface EvalMetrics {
  /** Mean cross-entropy. */
  loss: number;
  /** Top-1 accuracy in [0, 1]. */
  accuracy: number;
  /** Top-5 accuracy (top-k with k = min(5, classes)). */
  top5: number;
  /** Images evaluated. */
  count: number;
  /** Images a second. */
  imagesPerSecond: number;
  /** The true class of each image, in order. */
  labels: number[];
  /** The predicted class of each image, in order. */
  predictions: number[];
}

/**
 * Evaluates a classifier (dropout off) on a stream of batches.
 *
 * @example
 * ```ts ignore
 * import { batches, epochRows, evaluateBatches, loadClassifier, openParquetDataset } from "@lora/vit";
 * const clf = await loadClassifier("model", { adapter: "run/best" });
 * const data = await openParquetDataset("food101");
 * const spec = { size: 224, mean: clf.preprocessor.image_mean, std: clf.preprocessor.image_std, augment: false };
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
  let lossSum = 0, correct = 0, correct5 = 0, count = 0;
  const labels: number[] = [], predictions: number[] = [];
  const start = performance.now();
  for await (const batch of source) {
    const out = tf.tidy(() => {
      const pixels = tf.tensor4d(batch.pixels, [batch.size, 3, size, size]) as Tensor4D;
      const y = tf.tensor1d(batch.labels, "int32") as Tensor1D;
      const logits = clf.logits(pixels);
      const nll = tf.neg(tf.sum(tf.oneHot(y, clf.labels.length).mul(tf.logSoftmax(logits)), 1));
      const top = tf.topk(logits, k).indices; // [batch, k]
      const hit5 = tf.any(tf.equal(top, y.expandDims(1)), 1).cast("float32");
      const pred = top.slice([0, 0], [-1, 1]).reshape([-1]).cast("float32");
      return tf.concat([nll, hit5, pred]);
    });
    const values = await out.data();
    out.dispose();
    const n = batch.size;
    for (let i = 0; i < n; i++) {
      lossSum += values[i];
      correct5 += values[n + i];
      const p = values[2 * n + i];
      predictions.push(p);
      labels.push(batch.labels[i]);
      if (p === batch.labels[i]) correct++;
    }
    count += n;
    options.onBatch?.(count);
  }
  const seconds = (performance.now() - start) / 1000;
  return {
    loss: count ? lossSum / count : NaN,
    accuracy: count ? correct / count : NaN,
    top5: count ? correct5 / count : NaN,
    count,
    imagesPerSecond: count / seconds,
    labels,
    predictions,
  };
}
