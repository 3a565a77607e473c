/**
 * The every-core CPU path: on tfjs's wasm backend (one thread an isolate), a classifier of
 * ViT-B's size starts replicas of itself in workers (`replicas.ts`) and splits each batch
 * with them. {@link predictLogits} (forward passes: `classify`, `evaluate`) and
 * {@link batchGradients} (the trainer's step) give the same values as the plain methods, bit
 * for bit: chunks are summed in order, and dropout masks are seeded per chunk. Forward passes
 * of a model of ViT-B's size go to ONNX Runtime's native engine instead when it loads
 * (`ort.ts`: every core in one process, the same logits within float32 rounding).
 *
 * @module
 */

import {
  type Scalar,
  type Tensor,
  type Tensor1D,
  type Tensor2D,
  type Tensor4D,
  tf,
} from "../core/tf.ts";
import { Random } from "../core/random.ts";
import { blas } from "../backend/blas.ts";
import { scaledAdd } from "../backend/optimizer_kernels.ts";
import type { LossAndGradients, LossOptions, ViTClassifier } from "../model/classifier.ts";
import { forwardFlops, type ViTConfig } from "../model/config.ts";
import { ortLogits } from "./ort.ts";
import { Replicas, splitRows } from "./replicas.ts";
import { snapshotClassifier } from "./snapshot.ts";

/** Options of {@link batchGradients}. */
export interface BatchGradientOptions extends Omit<LossOptions, "dropoutSeed"> {
  /**
   * Images a forward + backward pass takes at most (default: the whole batch): the batch goes
   * through in chunks of this size, to bound memory (see `autoChunkSize`).
   */
  chunkSize?: number;
  /**
   * Seeds the dropout masks: chunk `k`'s come from `(dropoutSeed, k)`, wherever it is
   * computed, so a step can be repeated exactly (default: unseeded masks).
   */
  dropoutSeed?: number;
}

const started = new WeakMap<ViTClassifier, Promise<Replicas | undefined>>();

/**
 * The replica workers `clf` splits batches with on the CPU path (see its `replicas` option),
 * started on the first call; undefined when it uses none. They stop when `clf` is disposed.
 *
 * @example
 * ```ts ignore
 * import type { ViTClassifier } from "@lora/vit";
 * import { classifierReplicas } from "./parallel.ts";
 * declare const clf: ViTClassifier;
 *
 * const replicas = await classifierReplicas(clf); // undefined off wasm, or for small models
 * console.log(replicas?.size); // 1 on a 2-core machine
 * ```
 */
export function classifierReplicas(clf: ViTClassifier): Promise<Replicas | undefined> {
  clf.check();
  let replicas = started.get(clf);
  if (!replicas) {
    replicas = (async () => {
      const count = clf.replicaCount ?? defaultReplicaCount(clf.config);
      if (count <= 0 || tf.getBackend() !== "wasm") return undefined;
      const snapshot = await snapshotClassifier(clf);
      const pool = await Replicas.start(snapshot, clf.trainableVariables(), count);
      if (clf.disposed) pool.close();
      else clf.onDispose(() => pool.close());
      return pool;
    })();
    started.set(clf, replicas);
  }
  return replicas;
}

/**
 * `clf.logits(pixelValues)`, on every core the backend can use: on wasm, by ONNX Runtime for
 * a model of over a GFLOP a forward pass when it loads (`ort.ts`; the same values as
 * `logits`' within float32 rounding), else with replicas, the batch split between this
 * isolate and the replica workers, which run at the same time (the same values as `logits`',
 * bit for bit).
 *
 * @example
 * ```ts ignore
 * import { predictLogits, type ViTClassifier } from "@lora/vit";
 * import type { Tensor4D } from "@lora/vit/model";
 * declare const clf: ViTClassifier;
 * declare const pixels: Tensor4D; // [batch, 3, size, size], normalised
 *
 * const logits = await predictLogits(clf, pixels); // [batch, labels]
 * console.log(await logits.argMax(1).data());
 * logits.dispose();
 * ```
 */
export async function predictLogits(
  clf: ViTClassifier,
  pixelValues: Tensor4D,
): Promise<Tensor2D> {
  clf.check();
  const fast = await ortLogits(clf, pixelValues);
  if (fast) return fast;
  const batch = pixelValues.shape[0];
  const replicas = batch > 1 ? await classifierReplicas(clf) : undefined;
  if (!replicas) return clf.logits(pixelValues);
  await replicas.sync(clf.trainableVariables());
  const size = clf.config.image_size, plane = 3 * size * size;
  const parts = splitRows(batch, replicas.size + 1, rowAlignment());
  if (parts.length === 1) return clf.logits(pixelValues);
  const [[, own], ...theirs] = parts;
  const pixels = (await pixelValues.data()) as Float32Array;
  const answers = theirs.map(([start, end], i) => {
    const part = pixels.slice(start * plane, end * plane);
    return replicas.request(i, { type: "logits", pixels: part, rows: end - start, size }, [
      part.buffer,
    ]);
  });
  const mine = tf.tidy(() => clf.logits(pixelValues.slice(0, own) as Tensor4D));
  try {
    const parts = (await Promise.all(answers)).map((a, i) =>
      tf.tensor2d(a.data!, [theirs[i][1] - theirs[i][0], clf.labels.length])
    );
    const all = tf.concat([mine, ...parts]) as Tensor2D;
    tf.dispose(parts);
    return all;
  } finally {
    mine.dispose();
  }
}

/**
 * The batch's mean loss and its gradients, as `clf.lossAndGradients` gives them for the
 * whole batch, computed in chunks of at most `chunkSize` images, each weighted by its share
 * of the batch. On wasm with replicas, the chunks are shared out between this isolate and the
 * replicas (the batch is cut into at least as many chunks as there are isolates), which run
 * at the same time. The sums are made in chunk order, so a given chunk size and replica count
 * always give the same result.
 *
 * @example
 * ```ts ignore
 * import { batchGradients, tf, type ViTClassifier } from "@lora/vit";
 * declare const clf: ViTClassifier; // of 224 × 224 images
 * declare const pixels: Float32Array; // 8 images, normalised, NCHW: 8 · 3 · 224 · 224 values
 * declare const labels: Int32Array; // their 8 classes
 *
 * const { loss, grads } = await batchGradients(
 *   clf,
 *   { pixels, labels, size: 8 },
 *   { chunkSize: 2, training: true, dropoutSeed: 42 },
 * );
 * console.log(await loss.data(), Object.keys(grads)); // keyed by PEFT's adapter names
 * tf.dispose([loss, ...Object.values(grads)]);
 * ```
 */
export async function batchGradients(
  clf: ViTClassifier,
  batch: { pixels: Float32Array; labels: Int32Array; size: number },
  options: BatchGradientOptions = {},
): Promise<LossAndGradients> {
  clf.check();
  const size = clf.config.image_size, plane = 3 * size * size;
  const training = options.training ?? false;
  const replicas = batch.size > 1 && !options.lossScale ? await classifierReplicas(clf) : undefined;
  const isolates = (replicas?.size ?? 0) + 1;
  const chunk = Math.min(options.chunkSize ?? batch.size, Math.ceil(batch.size / isolates));
  const chunks: [number, number][] = [];
  for (let start = 0; start < batch.size; start += chunk) {
    chunks.push([start, Math.min(start + chunk, batch.size)]);
  }
  const seed = (k: number) =>
    options.dropoutSeed === undefined ? undefined : Random.derive(options.dropoutSeed, k).state;
  const vars = clf.trainableVariables();
  if (replicas) await replicas.sync(vars);
  // the replicas' chunks first, so that they run while this isolate computes its own
  const parts = new Array<LossAndGradients | Promise<LossAndGradients>>(chunks.length);
  chunks.forEach(([start, end], k) => {
    if (k % isolates === 0) return;
    const pixels = batch.pixels.slice(start * plane, end * plane);
    const labels = batch.labels.slice(start, end);
    const request = {
      pixels,
      labels,
      rows: end - start,
      size,
      training,
      dropoutSeed: seed(k),
      labelSmoothing: options.labelSmoothing,
    };
    parts[k] = replicas!
      .request(k % isolates - 1, { type: "gradients", ...request }, [
        pixels.buffer,
        labels.buffer,
      ])
      .then((reply) => ({
        loss: tf.scalar(reply.loss!),
        grads: Object.fromEntries(
          Object.entries(reply.grads!).map(([key, g]) => [key, tf.tensor(g, vars[key].shape)]),
        ),
      }));
  });
  for (let k = 0; k < chunks.length; k += isolates) {
    const [start, end] = chunks[k];
    const x = tf.tensor4d(batch.pixels.subarray(start * plane, end * plane), [
      end - start,
      3,
      size,
      size,
    ]) as Tensor4D;
    const y = tf.tensor1d(batch.labels.subarray(start, end), "int32") as Tensor1D;
    try {
      parts[k] = clf.lossAndGradients(x, y, {
        training,
        dropoutSeed: seed(k),
        labelSmoothing: options.labelSmoothing,
        lossScale: options.lossScale,
      });
    } catch (e) {
      parts[k] = Promise.reject(e);
      break;
    } finally {
      tf.dispose([x, y]);
    }
  }
  const results = await Promise.allSettled(parts.filter((p) => p !== undefined));
  const failed = results.find((r) => r.status === "rejected") as
    | PromiseRejectedResult
    | undefined;
  const done = results.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
  if (failed) {
    for (const part of done) tf.dispose([part.loss, ...Object.values(part.grads)]);
    throw failed.reason;
  }
  if (done.length === 1) return done[0];
  return tf.tidy(() => {
    // each chunk weighted by its share of the batch, summed in order (one kernel a term on WebGPU)
    const sum = (ts: Tensor[]) =>
      ts.reduce<Tensor | undefined>(
        (acc, t, k) => scaledAdd(t, (chunks[k][1] - chunks[k][0]) / batch.size, acc),
        undefined,
      )!;
    const loss = sum(done.map((p) => p.loss)) as Scalar;
    const grads: Record<string, Tensor> = {};
    for (const key of Object.keys(done[0].grads)) grads[key] = sum(done.map((p) => p.grads[key]));
    for (const part of done) tf.dispose([part.loss, ...Object.values(part.grads)]);
    return { loss, grads };
  });
}

/**
 * Where a batch may be cut between isolates so that every image's logits stay as they are
 * computed whole: the BLAS's row period on wasm (a product's rows are computed alike only at
 * the same index modulo it, see `Blas.rowPeriod`), else 1.
 */
export function rowAlignment(): number {
  return tf.getBackend() === "wasm" ? blas()?.rowPeriod ?? 1 : 1;
}

/**
 * Replicas a classifier starts by default: on the wasm backend, one per further core (up to
 * 3) when a forward pass costs over a GFLOP an image; none otherwise.
 */
function defaultReplicaCount(config: ViTConfig): number {
  if (tf.getBackend() !== "wasm") return 0;
  if (forwardFlops(config) < 1e9) return 0;
  return Math.max(0, Math.min(3, (navigator.hardwareConcurrency ?? 1) - 1));
}
