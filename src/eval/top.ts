/**
 * Logits to the most probable classes: what `classify` (Deno) and `classify` (a web
 * page) give for each image. No Deno API, no workers: the browser entry uses it too.
 *
 * @module
 */

import { type Tensor2D, tf } from "../core/tf.ts";

/** A class and its probability. */
export interface Prediction {
  /** The class name. */
  label: string;
  /** The class index. */
  index: number;
  /** Its softmax probability. */
  probability: number;
}

/**
 * The `k` most probable classes of each row of `logits` `[images, classes]` (softmax), most
 * probable first. `logits` stays the caller's.
 *
 * @example
 * ```ts
 * import { initBackend, tf } from "@lora/vit";
 * import { topClasses } from "./top.ts";
 * await initBackend("cpu");
 * const logits = tf.tensor2d([[0, 2, 1]]);
 * console.log((await topClasses(logits, ["a", "b", "c"], 2))[0].map((p) => p.label)); // ["b", "c"]
 * ```
 */
export async function topClasses(
  logits: Tensor2D,
  labels: readonly string[],
  k: number,
): Promise<Prediction[][]> {
  k = Math.min(k, labels.length);
  const [values, indices] = tf.tidy(() => {
    const top = tf.topk(tf.softmax(logits), k);
    return [top.values, top.indices];
  });
  const [p, idx] = [await values.data(), await indices.data()];
  tf.dispose([values, indices]);
  return Array.from({ length: logits.shape[0] }, (_, i) =>
    Array.from({ length: k }, (_, j) => ({
      label: labels[idx[i * k + j]],
      index: idx[i * k + j],
      probability: p[i * k + j],
    })));
}
