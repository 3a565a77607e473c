/**
 * Copies of a classifier in workers, so that the CPU path uses every core.
 *
 * tfjs's wasm backend runs one thread an isolate (it takes Deno for Node and turns its
 * threads off), so a batch on the CPU would keep one core busy. Instead, a classifier on
 * wasm starts replicas of itself in workers (one per further core, up to 3), and a batch is
 * split: one part computed in this isolate, one in each replica, at the same time. Forward
 * passes (`ViTClassifier.predictLogits`, and so `classify` and `evaluate`) and training
 * gradients (`train`) use them. Each replica holds its own copy of the weights (346 MB for
 * ViT-B/16) and costs about a second to start, so only models whose forward pass costs more
 * than that get them.
 *
 * The trainable tensors are sent again whenever they have changed (after an optimizer
 * step): 5 MB for ViT-B/16 with LoRA r 32.
 *
 * The workers are `node:worker_threads` workers (Deno runs them), not Web Workers, because
 * those can be unref'd: a worker holds the process open only while a request to it is in
 * flight. A program that ends without `clf.dispose()` therefore exits when its work is done,
 * instead of waiting forever on idle replicas; one that is still waiting for a replica's
 * answer does not exit before it comes.
 *
 * @module
 */

import { Worker } from "node:worker_threads";
import type { Variable } from "../core/tf.ts";
import { VitLoraError } from "../core/errors.ts";
import { fromWire, type ReplicaJob, type ReplicaReply, toWire } from "./replica_protocol.ts";
import { type Float32TensorData, tensorData } from "../model/safetensors.ts";
import type { ClassifierSnapshot } from "./snapshot.ts";

/**
 * Replica workers of one classifier, started by `classifierReplicas` (`parallel.ts`).
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
export class Replicas {
  readonly #workers: Worker[];
  readonly #pending = new Map<
    number,
    { resolve: (r: ReplicaReply) => void; reject: (e: Error) => void }
  >();
  #next = 0;
  /** Whether the workers hold the process open now. */
  #held = false;
  /** Why a worker stopped by itself, if one did: later requests fail with it. */
  #broken: string | undefined;
  /** The trainable variables' data ids the replicas last received. */
  #synced = new Map<string, unknown>();
  #closed = false;

  private constructor(count: number) {
    this.#workers = Array.from({ length: count }, () => {
      const worker = new Worker(new URL("./replica_worker.ts", import.meta.url));
      worker.unref(); // held by the requests in flight only (see #hold)
      worker.on("message", (message: ReplicaReply) => {
        const reply = fromWire(message);
        const waiting = this.#pending.get(reply.id);
        this.#pending.delete(reply.id);
        this.#hold();
        if (reply.error) {
          waiting?.reject(new VitLoraError(`a model replica failed: ${reply.error}`));
        } else waiting?.resolve(reply);
      });
      const fail = (message: string) => {
        this.#failAll(new VitLoraError(`a model replica failed: ${message}`));
      };
      worker.on("error", (e: Error) => fail(e?.message ?? String(e)));
      worker.on("messageerror", (e: Error) => fail(e?.message ?? String(e)));
      worker.on("exit", (code: number) => {
        if (this.#closed) return;
        this.#broken ??= `its worker stopped (exit code ${code})`;
        fail(this.#broken);
      });
      return worker;
    });
  }

  /**
   * Starts `count` replicas of the classifier `snapshot` was read from, and waits until
   * they are ready. `trainable` are its variables, to tell later when they change.
   */
  static async start(
    snapshot: ClassifierSnapshot,
    trainable: Record<string, Variable>,
    count: number,
  ): Promise<Replicas> {
    const replicas = new Replicas(count);
    try {
      await Promise.all(
        replicas.#workers.map((_, i) => replicas.request(i, { type: "init", snapshot })),
      );
    } catch (e) {
      replicas.close();
      throw e;
    }
    for (const [key, v] of Object.entries(trainable)) replicas.#synced.set(key, v.dataId);
    return replicas;
  }

  /** How many replicas there are. */
  get size(): number {
    return this.#workers.length;
  }

  /** Sends the trainable tensors to every replica if any has changed since they were sent. */
  async sync(trainable: Record<string, Variable>): Promise<void> {
    const changed = Object.entries(trainable).some(([key, v]) =>
      this.#synced.get(key) !== v.dataId
    );
    if (!changed) return;
    const tensors: Record<string, Float32TensorData> = {};
    for (const [key, v] of Object.entries(trainable)) {
      tensors[key] = await tensorData(v);
      this.#synced.set(key, v.dataId);
    }
    await Promise.all(this.#workers.map((_, i) => this.request(i, { type: "trainable", tensors })));
  }

  /** Sends `request` to replica `index`; resolves with its answer. */
  request(index: number, request: ReplicaJob, transfer: ArrayBuffer[] = []): Promise<ReplicaReply> {
    if (this.#closed) return Promise.reject(new VitLoraError("the model replicas are closed"));
    if (this.#broken) {
      return Promise.reject(new VitLoraError(`a model replica failed: ${this.#broken}`));
    }
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#hold();
      try {
        this.#workers[index].postMessage(toWire({ ...request, id }), transfer);
      } catch (e) {
        this.#pending.delete(id);
        this.#hold();
        reject(e);
      }
    });
  }

  /** Stops the workers; pending requests fail. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const worker of this.#workers) worker.terminate();
    this.#failAll(new VitLoraError("the model replicas were closed"));
  }

  /**
   * Refs the workers while a request is in flight, so that the process waits for its answer,
   * and unrefs them when none is, so that idle replicas never keep it alive.
   */
  #hold(): void {
    const busy = this.#pending.size > 0 && !this.#closed;
    if (busy === this.#held) return;
    this.#held = busy;
    for (const worker of this.#workers) busy ? worker.ref() : worker.unref();
  }

  #failAll(error: Error): void {
    const waiting = [...this.#pending.values()];
    this.#pending.clear();
    this.#hold();
    for (const w of waiting) w.reject(error);
  }
}

/**
 * Splits `rows` into `parts` contiguous ranges as equal as can be, the larger ones first:
 * `[start, end)` each; empty ranges are left out. Every range starts at a multiple of `align`
 * (the BLAS's row period, see `Blas.rowPeriod`), so fewer parts come back when `rows` is too
 * small for that.
 *
 * @example
 * ```ts
 * import { splitRows } from "./replicas.ts";
 * console.log(splitRows(5, 2)); // [[0, 3], [3, 5]]
 * console.log(splitRows(29, 2, 12)); // [[0, 12], [12, 29]]
 * ```
 */
export function splitRows(rows: number, parts: number, align = 1): [number, number][] {
  if (!Number.isFinite(align)) return rows > 0 ? [[0, rows]] : [];
  const blocks = Math.floor(rows / align); // whole blocks; the rest goes with the last range
  const out: [number, number][] = [];
  let start = 0;
  for (let i = 0; i < parts; i++) {
    let n = (Math.floor(blocks / parts) + (i < blocks % parts ? 1 : 0)) * align;
    if (i === parts - 1 || start + n >= rows) n = rows - start;
    if (n > 0) out.push([start, start + n]);
    start += n;
  }
  return out;
}
