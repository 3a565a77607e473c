/**
 * The classifier head under `--precision fp16`: autocast's float16 linear layer over the
 * float32 features and the float32 (trainable) weight and bias, cast to float16 as they are
 * read; its gradients as autograd's: the logits' gradient cast to float16 (the loss reads the
 * logits cast to float32), the weight's, the bias's and the features' computed in float16 and
 * cast back to float32.
 *
 * @module
 */

import { type Tensor, type Tensor1D, type Tensor2D, tf } from "../core/tf.ts";
import { gemm16 } from "../backend/gemm16.ts";
import { roundHalf } from "../backend/half.ts";

/**
 * `features Wᵀ + b` (`[batch, hidden]`, `[labels, hidden]`, `[labels]`) as PyTorch's autocast
 * computes it in float16, with gradients for all three. WebGPU.
 *
 * @example
 * ```ts ignore
 * import type { ViTClassifier } from "@lora/vit";
 * import type { Tensor4D } from "@lora/vit/model";
 * import { head16 } from "./head16.ts";
 * declare const clf: ViTClassifier; // on WebGPU
 * declare const pixels: Tensor4D;
 *
 * const cls = clf.features(pixels); // [batch, hidden]
 * const logits = head16(cls, clf.classifier.weight, clf.classifier.bias); // [batch, labels]
 * ```
 */
export function head16(features: Tensor2D, weight: Tensor, bias: Tensor): Tensor2D {
  const [batch, hidden] = features.shape;
  const labels = weight.shape[0] as number;
  const op = tf.customGrad(
    ((f: Tensor, w: Tensor, b: Tensor, save: (t: Tensor[]) => void) => {
      save([f, w]);
      return {
        value: gemm16({
          a: { t: f },
          b: { t: w, trans: true },
          m: batch,
          k: hidden,
          n: labels,
          bias: b,
        }),
        gradFunc: (dy: Tensor, [fs, ws]: Tensor[]) =>
          tf.tidy(() => {
            // dy is read as float16 (the cast of the float16 logits for the loss, backward)
            const dW = gemm16({
              a: { t: dy, trans: true },
              b: { t: fs },
              m: labels,
              k: batch,
              n: hidden,
            });
            const db = roundHalf(tf.sum(roundHalf(dy), 0)); // float16 sum over the batch
            const df = gemm16({ a: { t: dy }, b: { t: ws }, m: batch, k: labels, n: hidden });
            return [df as Tensor, dW as Tensor, db as Tensor1D];
          }),
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0],
  );
  return op(features, weight, bias) as Tensor2D;
}
