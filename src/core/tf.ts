/**
 * The one tfjs instance the module uses, and the tensor types its API speaks in.
 *
 * @module
 */

import * as tfjs from "@tensorflow/tfjs";

/**
 * The one tfjs instance this module uses (`npm:@tensorflow/tfjs@4.22.0`): make input tensors
 * with it, and read results.
 *
 * @example
 * ```ts
 * import { initBackend, tf } from "@lora/vit";
 * await initBackend("cpu"); // or the default: WebGPU on a GPU, else wasm
 * const labels = tf.tensor1d([0, 2], "int32");
 * console.log(labels.shape); // [2]
 * labels.dispose();
 * ```
 */
export const tf: typeof tfjs = tfjs;
/** A tfjs tensor of any rank. */
export type Tensor = tfjs.Tensor;
/** A rank-0 tfjs tensor (a loss). */
export type Scalar = tfjs.Scalar;
/** A rank-1 tfjs tensor (labels, biases). */
export type Tensor1D = tfjs.Tensor1D;
/** A rank-2 tfjs tensor (logits, features, weights). */
export type Tensor2D = tfjs.Tensor2D;
/** A rank-3 tfjs tensor (token embeddings). */
export type Tensor3D = tfjs.Tensor3D;
/** A rank-4 tfjs tensor (pixel values, NCHW). */
export type Tensor4D = tfjs.Tensor4D;
/** A trainable tfjs variable of any rank. */
export type Variable = tfjs.Variable;
