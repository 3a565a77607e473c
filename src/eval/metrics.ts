/**
 * Classification metrics from true and predicted classes: accuracy, macro F1, per-class
 * accuracy (recall), precision and F1, and the confusion matrix.
 *
 * @module
 */

/** One class's figures. */
export interface ClassMetrics {
  /** The class name. */
  label: string;
  /** Images of this class. */
  support: number;
  /** Share of this class's images predicted as it (recall); NaN without images. */
  accuracy: number;
  /** Share of the images predicted as this class that are of it; 0 when none are. */
  precision: number;
  /** Harmonic mean of precision and recall; 0 when both are 0. */
  f1: number;
}

/** What {@link classificationMetrics} computes. */
export interface ClassificationMetrics {
  /** Top-1 accuracy. */
  accuracy: number;
  /** The mean of the per-class F1 over the classes that have images or predictions. */
  macroF1: number;
  /** Per class, in label order. */
  perClass: ClassMetrics[];
  /** `confusion[true][predicted]`: image counts. */
  confusion: number[][];
}

/**
 * Metrics from the true and predicted class of each image.
 *
 * @example
 * ```ts
 * import { classificationMetrics } from "./metrics.ts";
 * const m = classificationMetrics([0, 0, 1, 1], [0, 1, 1, 1], ["cat", "dog"]);
 * console.log(m.accuracy, m.confusion); // 0.75 [[1, 1], [0, 2]]
 * ```
 */
export function classificationMetrics(
  labels: ArrayLike<number>,
  predictions: ArrayLike<number>,
  names: readonly string[],
): ClassificationMetrics {
  const k = names.length;
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    confusion[labels[i]][predictions[i]]++;
    if (labels[i] === predictions[i]) correct++;
  }
  const perClass = names.map((label, c) => {
    const support = confusion[c].reduce((a, b) => a + b, 0);
    const predicted = confusion.reduce((a, row) => a + row[c], 0);
    const hit = confusion[c][c];
    const recall = support ? hit / support : NaN;
    const precision = predicted ? hit / predicted : 0;
    const r = support ? recall : 0;
    const f1 = precision + r > 0 ? 2 * precision * r / (precision + r) : 0;
    return { label, support, accuracy: recall, precision, f1, predicted };
  });
  const counted = perClass.filter((c) => c.support > 0 || c.predicted > 0);
  return {
    accuracy: labels.length ? correct / labels.length : NaN,
    macroF1: counted.length ? counted.reduce((a, c) => a + c.f1, 0) / counted.length : NaN,
    perClass: perClass.map(({ predicted: _, ...rest }) => rest),
    confusion,
  };
}
