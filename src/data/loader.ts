/**
 * Batches of model input from a stream of rows: images are decoded and transformed by a pool
 * of Deno workers, off the main thread, while a bounded number of batches is prepared ahead,
 * so decoding overlaps the model's step. Batches keep the order of the rows; an image that
 * cannot be decoded is reported and left out, never ending the run.
 *
 * @module
 */

import { VitLoraError } from "../core/errors.ts";
import type { ImageRow } from "./dataset.ts";
import { prepareImage } from "./prepare.ts";
import { augmentMode, type TransformSpec } from "./transforms.ts";

/** A batch of model input. */
export interface Batch {
  /** `[size, 3, S, S]` float32, normalised, channels first. */
  pixels: Float32Array;
  /** `[size]` class indices. */
  labels: Int32Array;
  /** The rows' indices in their split. */
  indices: number[];
  /** Images in the batch (the last one of a pass may be short). */
  size: number;
  /** Rows of the stream this batch used up: its images and those left out before them. */
  rows: number;
}

/** An image left out because it could not be decoded. */
export interface SkippedImage {
  /** The shard. */
  file: string;
  /** The row within the shard. */
  row: number;
  /** What was wrong. */
  error: string;
}

interface Pending {
  resolve: (pixels: Float32Array) => void;
  reject: (error: Error) => void;
}

/**
 * Workers that decode and transform images. With `workers: 0` the work runs on the calling
 * thread (same results, no overlap).
 *
 * @example
 * ```ts ignore
 * import { DecodePool, type TransformSpec } from "@lora/vit/data";
 * const pool = new DecodePool({ workers: 2 });
 * const spec: TransformSpec = {
 *   size: 224,
 *   mean: [0.5, 0.5, 0.5],
 *   std: [0.5, 0.5, 0.5],
 *   augment: "none", // the evaluation transform
 * };
 * const pixels = await pool.prepare(await Deno.readFile("dish.jpg"), spec);
 * pool.close();
 * ```
 */
export class DecodePool {
  /** The number of workers (0: the calling thread). */
  readonly workers: number;
  readonly #idle: Worker[] = [];
  readonly #all: Worker[] = [];
  readonly #queue: { id: number; message: unknown; transfer: ArrayBuffer[] }[] = [];
  readonly #pending = new Map<number, Pending>();
  #nextId = 0;

  /** Starts the workers (default: one per core but one, at least one). */
  constructor(options: { workers?: number } = {}) {
    this.workers = options.workers ?? Math.max(1, navigator.hardwareConcurrency - 1);
    if (!Number.isInteger(this.workers) || this.workers < 0) {
      throw new VitLoraError(`--workers must be a count (0 or more), not ${options.workers}`);
    }
    for (let i = 0; i < this.workers; i++) {
      const worker = new Worker(new URL("./decode_worker.ts", import.meta.url).href, {
        type: "module",
      });
      worker.onmessage = (event) => this.#done(worker, event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        this.#failAll(new Error(`a decoding worker failed: ${event.message}`));
      };
      this.#all.push(worker);
      this.#idle.push(worker);
    }
  }

  /** Decodes and transforms one image (see `prepareImage`). */
  prepare(bytes: Uint8Array, spec: TransformSpec, rng?: number[]): Promise<Float32Array> {
    if (this.workers === 0) return prepareImage(bytes, spec, rng);
    const id = this.#nextId++;
    const copy = bytes.slice(); // transferred to the worker
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#queue.push({ id, message: { id, bytes: copy, spec, rng }, transfer: [copy.buffer] });
      this.#dispatch();
    });
  }

  /** Stops the workers; pending work fails. */
  close(): void {
    for (const worker of this.#all) worker.terminate();
    this.#all.length = 0;
    this.#idle.length = 0;
    this.#failAll(new Error("the decoding pool was closed"));
  }

  #dispatch(): void {
    while (this.#idle.length > 0 && this.#queue.length > 0) {
      const job = this.#queue.shift()!;
      this.#idle.pop()!.postMessage(job.message, job.transfer);
    }
  }

  #done(worker: Worker, data: { id: number; pixels?: Float32Array; error?: string }): void {
    this.#idle.push(worker);
    const pending = this.#pending.get(data.id);
    this.#pending.delete(data.id);
    if (data.pixels) pending?.resolve(data.pixels);
    else pending?.reject(new Error(data.error ?? "unknown error"));
    this.#dispatch();
  }

  #failAll(error: Error): void {
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
    this.#queue.length = 0;
  }
}

/** Options of {@link batches}. */
export interface BatchOptions {
  /** The transform of every image. */
  spec: TransformSpec;
  /** Images a batch. */
  batchSize: number;
  /** The decoding pool (default: decode on this thread). */
  pool?: DecodePool;
  /** Batches prepared ahead of the one being used (default 2). */
  prefetch?: number;
  /** The augmentation stream of a row, e.g. `[seed, epoch, row.index]`. */
  rng?: (row: ImageRow) => number[];
  /** Called for each image left out. */
  onSkip?: (skipped: SkippedImage) => void;
}

/**
 * Turns rows into batches of model input, preparing up to `prefetch` batches ahead.
 *
 * @example
 * ```ts ignore
 * import { batches, DecodePool, epochRows, openParquetDataset } from "@lora/vit/data";
 * import type { TransformSpec } from "@lora/vit/data";
 * const data = await openParquetDataset("food101");
 * const pool = new DecodePool();
 * const spec: TransformSpec = {
 *   size: 224,
 *   mean: [0.5, 0.5, 0.5],
 *   std: [0.5, 0.5, 0.5],
 *   augment: "none", // the evaluation transform
 * };
 * const rows = epochRows(data, "validation");
 * for await (const batch of batches(rows, { spec, batchSize: 64, pool })) {
 *   console.log(batch.size, batch.labels);
 * }
 * pool.close();
 * ```
 */
export async function* batches(
  rows: AsyncIterable<ImageRow>,
  options: BatchOptions,
): AsyncGenerator<Batch> {
  const { spec, batchSize, pool, rng, onSkip } = options;
  const plane = 3 * spec.size * spec.size;
  const limit = Math.max(1, (options.prefetch ?? 2) + 1) * batchSize;
  type Result = { row: ImageRow; pixels?: Float32Array; error?: string };
  const inflight: Promise<Result>[] = [];
  let current: { row: ImageRow; pixels: Float32Array }[] = [];
  let skipped = 0;

  const start = (row: ImageRow): Promise<Result> => {
    const stream = augmentMode(spec.augment) !== "none" ? rng?.(row) : undefined;
    const work = pool
      ? pool.prepare(row.bytes, spec, stream)
      : prepareImage(row.bytes, spec, stream);
    return work.then(
      (pixels) => ({ row, pixels }),
      (e) => ({ row, error: (e as Error)?.message ?? String(e) }),
    );
  };
  const assemble = (items: typeof current): Batch => {
    const pixels = new Float32Array(items.length * plane);
    items.forEach((item, i) => pixels.set(item.pixels, i * plane));
    const rowsUsed = items.length + skipped;
    skipped = 0;
    return {
      pixels,
      labels: Int32Array.from(items, (item) => item.row.label),
      indices: items.map((item) => item.row.index),
      size: items.length,
      rows: rowsUsed,
    };
  };
  const take = async (): Promise<Batch | undefined> => {
    const result = await inflight.shift()!;
    if (!result.pixels) {
      onSkip?.({ file: result.row.file, row: result.row.row, error: result.error! });
      skipped++;
      return undefined;
    }
    current.push({ row: result.row, pixels: result.pixels });
    if (current.length < batchSize) return undefined;
    const batch = assemble(current);
    current = [];
    return batch;
  };

  for await (const row of rows) {
    inflight.push(start(row));
    while (inflight.length >= limit) {
      const batch = await take();
      if (batch) yield batch;
    }
  }
  while (inflight.length > 0) {
    const batch = await take();
    if (batch) yield batch;
  }
  if (current.length > 0) yield assemble(current);
}
