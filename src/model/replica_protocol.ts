/**
 * The messages between a classifier and its replica workers (see `replicas.ts`).
 *
 * @module
 */

import type { Float32TensorData } from "./safetensors.ts";
import type { ClassifierSnapshot } from "./snapshot.ts";

/** A request to a replica worker. */
export type ReplicaRequest =
  | { id: number; type: "init"; snapshot: ClassifierSnapshot }
  | { id: number; type: "trainable"; tensors: Record<string, Float32TensorData> }
  | { id: number; type: "logits"; pixels: Float32Array; rows: number; size: number }
  | {
    id: number;
    type: "gradients";
    pixels: Float32Array;
    labels: Int32Array;
    rows: number;
    size: number;
    training: boolean;
    dropoutSeed?: number;
  };

/** A replica worker's answer. */
export interface ReplicaReply {
  /** The request's id. */
  id: number;
  /** Why the request failed, if it did. */
  error?: string;
  /** Logits `[rows, labels]`, row-major. */
  data?: Float32Array;
  /** The part's mean loss. */
  loss?: number;
  /** The part's gradients, by trainable key. */
  grads?: Record<string, Float32Array>;
}

/** A request without its id (which {@link Replicas.request} assigns). */
export type ReplicaJob = ReplicaRequest extends infer R
  ? R extends { id: number } ? Omit<R, "id"> : never
  : never;
