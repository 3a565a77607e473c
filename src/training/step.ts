/**
 * One optimizer step with HF Trainer's semantics, in two halves that any loop can use (the
 * trainer's `StepPipeline`, the web page's `train`): the micro-batches' gradients combined
 * into the mean over all of the step's images ({@link combineGradients}), then clipped to the
 * global norm and applied by AdamW ({@link applyGradients}), the loss and norm read back
 * without making the GPU wait ({@link readStepStats}). With a `GradScaler` (mixed precision),
 * the gradients come scaled, are unscaled before clipping, and a step that overflowed leaves
 * the weights as they were, all decided on the backend.
 *
 * @module
 */

import { type Scalar, type Tensor, type Tensor1D, tf, type Variable } from "../core/tf.ts";
import { globalNorm, scaledAdd } from "../backend/optimizer_kernels.ts";
import { readAndDispose } from "../backend/readback.ts";
import type { LossAndGradients } from "../model/classifier.ts";
import { scaledStepStats } from "../backend/scaler_kernels.ts";
import { type AdamW, clipByGlobalNorm } from "./optimizer.ts";
import type { GradScaler } from "./grad_scaler.ts";

/** Options of {@link applyGradients}. */
export interface ApplyOptions {
  /** The step's learning rate. */
  lr: number;
  /** Clip the gradient to this global L2 norm (0 or less: no clipping). */
  maxGradNorm: number;
  /**
   * The loss scaler the gradients were made with (their loss was multiplied by its `scale`):
   * they are unscaled before clipping, an overflow skips the step, and the scale is updated.
   */
  scaler?: GradScaler;
}

/** A step's loss and gradients, still on the backend (see {@link combineGradients}). */
export interface StepGradients {
  /** The loss: the mean over the step's images, or their sum when `summed`. */
  loss: Scalar;
  /** The gradients by trainable tensor: the step's mean, or the sum when `summed`. */
  grads: Record<string, Tensor>;
  /** The step's images. */
  images: number;
  /** Sums over the images (divided by {@link applyGradients}), not means. */
  summed: boolean;
  /** The tensors belong to someone else ({@link HeldGradients}): applying leaves them. */
  held?: boolean;
}

/**
 * Tensors kept from step to step (as PyTorch keeps `.grad`) that hold a step's loss and
 * gradients from their computation to their application. The trainer computes a step's
 * gradients before it records the previous step (see `StepPipeline`): held here, they
 * are the same tensors whether a step is waiting or not, so the tensor count and the memory in
 * use do not change from one recorded step to the next.
 */
export class HeldGradients {
  #loss?: Variable;
  #grads?: Record<string, Variable>;

  /** Takes over `gradients` (their tensors are disposed) and returns them as held. */
  hold(gradients: StepGradients): StepGradients {
    const take = (into: Variable | undefined, t: Tensor): Variable => {
      if (!into) return tf.variable(t, false); // shares t's data
      into.assign(t);
      return into;
    };
    this.#loss = take(this.#loss, gradients.loss);
    const grads: Record<string, Variable> = {};
    for (const [k, g] of Object.entries(gradients.grads)) grads[k] = take(this.#grads?.[k], g);
    this.#grads = grads;
    disposeStepGradients(gradients);
    return { ...gradients, loss: this.#loss as Scalar, grads, held: true };
  }

  /** Frees the tensors. */
  dispose(): void {
    tf.dispose([...(this.#loss ? [this.#loss] : []), ...Object.values(this.#grads ?? {})]);
    this.#loss = undefined;
    this.#grads = undefined;
  }
}

/**
 * The first half of an optimizer step with HF Trainer's semantics: the gradients of `group`'s
 * micro-batches (from `compute`, each the mean over its images) combined so that the step's
 * loss and gradient are the mean over all of its images (each micro-batch's mean weighted by
 * its size). On WebGPU each weighting is one kernel a tensor (`scaledAdd`); elsewhere the sums
 * are made with plain ops and divided when applied. Nothing is read back.
 *
 * @example
 * ```ts ignore
 * import type { ViTClassifier } from "@lora/vit";
 * import type { Tensor1D, Tensor4D } from "@lora/vit/model";
 * import { AdamW, trainerNoDecay } from "@lora/vit/training";
 * import { applyGradients, combineGradients } from "./step.ts";
 * declare const clf: ViTClassifier;
 * // a step's micro-batches: normalised pixels, integer labels, and their images
 * declare const group: { pixels: Tensor4D; labels: Tensor1D; size: number }[];
 * const adam = new AdamW(clf.trainableVariables(), { noDecay: trainerNoDecay });
 *
 * const gradients = await combineGradients(group, (batch, m) =>
 *   clf.lossAndGradients(batch.pixels, batch.labels, { training: true, dropoutSeed: m }));
 * const stats = applyGradients(adam, gradients, { lr: 5e-4, maxGradNorm: 1 }); // [loss, grad_norm]
 * ```
 */
export async function combineGradients<B extends { size: number }>(
  group: readonly B[],
  compute: (batch: B, m: number) => Promise<LossAndGradients> | LossAndGradients,
): Promise<StepGradients> {
  const images = group.reduce((s, b) => s + b.size, 0);
  const fused = tf.getBackend() === "webgpu";
  let sum: { loss: Tensor; grads: Record<string, Tensor> } | undefined;
  for (const [m, batch] of group.entries()) {
    const out = await compute(batch, m);
    let next: { loss: Tensor; grads: Record<string, Tensor> };
    if (fused) {
      const w = batch.size / images;
      next = {
        loss: scaledAdd(out.loss, w, sum?.loss),
        grads: Object.fromEntries(
          Object.entries(out.grads).map(([k, g]) => [k, scaledAdd(g, w, sum?.grads[k])]),
        ),
      };
      if (sum) tf.dispose([sum.loss, ...Object.values(sum.grads)]);
    } else {
      // sums over the micro-batch's images: its mean × its size
      const summed = tf.tidy(() => ({
        loss: out.loss.mul(batch.size) as Scalar,
        grads: Object.fromEntries(
          Object.entries(out.grads).map(([k, g]) => [k, g.mul(batch.size)]),
        ),
      }));
      next = {
        loss: accumulate(sum && { loss: sum.loss }, { loss: summed.loss }).loss,
        grads: accumulate(sum?.grads, summed.grads),
      };
    }
    tf.dispose([out.loss, ...Object.values(out.grads)]);
    sum = next;
  }
  return { loss: sum!.loss as Scalar, grads: sum!.grads, images, summed: !fused };
}

/**
 * The second half of an optimizer step: the step's gradient clipped to the global norm and
 * applied by `optimizer` with rate `lr`. Takes over `gradients` (disposes them, unless held).
 * Returns `[loss, grad_norm]` (the step's mean loss, the norm before clipping) as a tensor,
 * still on the backend: the caller reads and disposes it (see {@link readStepStats}). On WebGPU
 * the norm is a kernel a tensor and the clipping happens inside AdamW's kernels.
 *
 * With a `scaler`, `[loss, grad_norm, skipped, scale]`: the norm of the unscaled gradients
 * (`inf` or `nan` when they overflowed), 1 when the step was skipped for it, and the scale the
 * gradients were made with; hand them to `scaler.settle`.
 */
export function applyGradients(
  optimizer: AdamW,
  gradients: StepGradients,
  options: ApplyOptions,
): Tensor1D {
  const maxNorm = options.maxGradNorm > 0 ? options.maxGradNorm : Infinity;
  const { loss, grads, images } = gradients;
  const { scaler } = options;
  const given = gradients.held ? [] : [loss, ...Object.values(grads)];
  if (!gradients.summed || scaler) {
    // the gradients are the step's mean (or sums, divided first): their norm (scaled, with a
    // scaler) goes to AdamW, which clips (and unscales) inside its update
    const mean = gradients.summed
      ? tf.tidy(() =>
        Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, g.div(images)]))
      ) as Record<string, Tensor>
      : grads;
    const norm = globalNorm(Object.values(mean));
    optimizer.step(mean, options.lr, { clip: { norm, maxNorm }, lossScale: scaler?.scale });
    const meanLoss = gradients.summed ? tf.tidy(() => loss.div(images)) : loss;
    const stats = scaler
      ? scaledStepStats(meanLoss, norm, scaler.scale)
      : tf.tidy(() => tf.stack([meanLoss, norm])) as Tensor1D;
    scaler?.update(norm);
    if (gradients.summed) tf.dispose([meanLoss, ...Object.values(mean)]);
    tf.dispose([norm, ...given]);
    return stats;
  }
  const mean = tf.tidy(() =>
    Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, g.div(images)]))
  ) as Record<string, Tensor>;
  const clipped = clipByGlobalNorm(mean, maxNorm);
  optimizer.step(clipped.grads, options.lr);
  const stats = tf.tidy(() => tf.stack([loss.div(images), clipped.norm])) as Tensor1D;
  tf.dispose([
    clipped.norm,
    ...given,
    ...Object.values(mean),
    ...Object.values(clipped.grads),
  ]);
  return stats;
}

/** Frees a step's gradients without applying them (held ones stay with their holder). */
export function disposeStepGradients(gradients: StepGradients): void {
  if (!gradients.held) tf.dispose([gradients.loss, ...Object.values(gradients.grads)]);
}

/**
 * Starts reading a step's `[loss, grad_norm]` (from {@link applyGradients}) back to the host,
 * and disposes the tensor: on WebGPU the copy is queued behind the step's work and the values
 * arrive when the GPU gets there, so the next step can be queued meanwhile.
 *
 * @example
 * ```ts ignore
 * import type { AdamW } from "@lora/vit/training";
 * import { applyGradients, readStepStats, type StepGradients } from "./step.ts";
 * declare const adam: AdamW;
 * declare const gradients: StepGradients; // from combineGradients
 *
 * const { read } = readStepStats(applyGradients(adam, gradients, { lr: 5e-4, maxGradNorm: 1 }));
 * // … queue the next step …
 * const [loss, gradNorm] = await read;
 * ```
 */
export function readStepStats(stats: Tensor1D): { read: Promise<Float32Array> } {
  return { read: readAndDispose(stats) };
}

/** `into + add` key by key (a new record; both inputs are disposed), or `add` when `into` is empty. */
function accumulate(
  into: Record<string, Tensor> | undefined,
  add: Record<string, Tensor>,
): Record<string, Tensor> {
  if (!into) return add;
  const out: Record<string, Tensor> = {};
  for (const [key, t] of Object.entries(add)) {
    out[key] = into[key].add(t);
    tf.dispose([into[key], t]);
  }
  return out;
}
