/**
 * The messages between a classifier and its replica workers (see `replicas.ts`).
 *
 * @module
 */

import type { Float32TensorData } from "../model/safetensors.ts";
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
    labelSmoothing?: number;
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

/** A typed array as it crosses to or from a worker: its kind and its own buffer. */
interface WireArray {
  /** The typed array's constructor. */
  typedArray: "Float32Array" | "Int32Array" | "Uint8Array";
  /** Its bytes, and nothing else. */
  buffer: ArrayBuffer;
}

const TYPED_ARRAYS = { Float32Array, Int32Array, Uint8Array } as const;

/**
 * `value` with every typed array (at any depth of plain objects and arrays) replaced by its
 * buffer, for `postMessage` between `node:worker_threads`. Deno walks a typed array in such a
 * message element by element (8 s for ViT-B's 346 MB of weights) but an `ArrayBuffer` not at
 * all (0.7 s, as between Web Workers); {@link fromWire} undoes it. A typed array that is a
 * view into part of a larger buffer is copied out of it.
 */
export function toWire<T>(value: T): T {
  if (ArrayBuffer.isView(value)) {
    const name = value.constructor.name as WireArray["typedArray"];
    if (!(name in TYPED_ARRAYS)) throw new TypeError(`a ${name} cannot be sent to a replica`);
    const whole = value.byteOffset === 0 && value.byteLength === value.buffer.byteLength;
    const buffer = (whole ? value.buffer : value.buffer.slice(
      value.byteOffset,
      value.byteOffset + value.byteLength,
    )) as ArrayBuffer;
    return { typedArray: name, buffer } satisfies WireArray as T;
  }
  if (Array.isArray(value)) return value.map(toWire) as T;
  if (
    value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype
  ) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = toWire(v);
    return out as T;
  }
  return value;
}

/** The value {@link toWire} was given, from what crossed. */
export function fromWire<T>(value: T): T {
  if (Array.isArray(value)) return value.map(fromWire) as T;
  if (
    value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype
  ) {
    const wire = value as unknown as WireArray;
    if (typeof wire.typedArray === "string" && wire.buffer instanceof ArrayBuffer) {
      return new TYPED_ARRAYS[wire.typedArray](wire.buffer) as T;
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = fromWire(v);
    return out as T;
  }
  return value;
}
