/**
 * Sharding evaluation and prediction over processes or machines: which shard a process is
 * (`--shard i/n`, or `auto/n` from a Kubernetes Indexed Job's or a Slurm array's variable),
 * which rows or files a shard takes, and what its result file records so that the shards can
 * be checked and merged (`merge.ts`).
 *
 * A shard takes one **contiguous block** of the ordered list (the held-out split's rows in the
 * order evaluation visits them, or the expanded, sorted input files), the blocks in shard
 * order: shard `i` of `n` takes units `⌊i·U/n⌋` to `⌊(i+1)·U/n⌋` of the `U` units. For
 * evaluation a unit is a whole batch, so that every shard's batches are exactly batches of the
 * single-process run (same images, same batch shapes): on every backend the per-image results,
 * and so the merged report, are those of one process. For prediction a unit is one file.
 *
 * @module
 */

import { VitLoraError } from "../core/errors.ts";
import { readEnv } from "../core/env.ts";
import { exists } from "../core/files.ts";
import { join } from "node:path";

/** One shard of `count`: `index` from 0 to `count - 1`. */
export interface Shard {
  /** This shard, 0-based. */
  index: number;
  /** How many shards there are. */
  count: number;
}

/**
 * The environment variables `--shard auto/n` reads the index from, in this order: a Kubernetes
 * Indexed Job's completion index, then a Slurm job array's task id (give the array as
 * `--array=0-<n-1>`).
 */
export const SHARD_INDEX_VARIABLES = ["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"] as const;

/**
 * Parses `i/n` (0 ≤ i < n), or `auto/n`, which takes `i` from the first of
 * {@link SHARD_INDEX_VARIABLES} that is set. Anything else is a {@link VitLoraError}.
 *
 * @example
 * ```ts
 * import { parseShard } from "./shard.ts";
 * console.log(parseShard("1/3")); // { index: 1, count: 3 }
 * ```
 */
export function parseShard(
  text: string,
  env: (name: string) => string | undefined = readEnv,
): Shard {
  const m = /^\s*([^/\s]*)\s*\/\s*(\S*)\s*$/.exec(text);
  if (!m) throw new VitLoraError(`--shard ${text}: give i/n (0 ≤ i < n), e.g. 0/3, or auto/n`);
  const count = Number(m[2]);
  if (!/^\d+$/.test(m[2]) || count < 1) {
    throw new VitLoraError(`--shard ${text}: the shard count must be a positive integer`);
  }
  let index: string = m[1];
  if (index === "") {
    throw new VitLoraError(
      `--shard ${text}: the shard index is empty (was the variable that gives it unset?)`,
    );
  }
  if (index === "auto") {
    const found = SHARD_INDEX_VARIABLES.map((name) => [name, env(name)] as const)
      .find(([, value]) => value !== undefined);
    if (!found) {
      throw new VitLoraError(
        `--shard ${text}: none of ${
          SHARD_INDEX_VARIABLES.join(", ")
        } is set (or readable: the task's --allow-env must list it)`,
      );
    }
    index = found[1]!;
    if (!/^\d+$/.test(index.trim()) || Number(index) >= count) {
      throw new VitLoraError(
        `--shard ${text}: ${found[0]}=${index} is not a shard index from 0 to ${count - 1}`,
      );
    }
  }
  if (!/^\d+$/.test(index.trim()) || Number(index) >= count) {
    throw new VitLoraError(
      `--shard ${text}: the shard index must be an integer from 0 to ${count - 1}`,
    );
  }
  return { index: Number(index), count };
}

/** Checks a shard given through the API (integers, 0 ≤ index < count). */
export function checkShard(shard: Shard): Shard {
  const { index, count } = shard;
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(index) || index < 0) {
    throw new VitLoraError(`shard ${index}/${count}: give integers, 0 ≤ index < count`);
  }
  if (index >= count) {
    throw new VitLoraError(`shard ${index}/${count}: the index must be below the count`);
  }
  return { index, count };
}

/**
 * The block `[start, end)` of a list of `total` items that `shard` takes, in whole units of
 * `unit` items (the last unit may be short): shard `i` of `n` takes units `⌊i·U/n⌋` up to
 * `⌊(i+1)·U/n⌋`. The blocks of shards `0 … n-1` follow one another and cover the list once;
 * a shard may be empty when there are fewer units than shards.
 *
 * @example
 * ```ts
 * import { shardRange } from "./shard.ts";
 * // 10 rows in batches of 4 (3 batches) over 2 shards: one batch, then two
 * console.log(shardRange(10, { index: 0, count: 2 }, 4)); // [0, 4]
 * console.log(shardRange(10, { index: 1, count: 2 }, 4)); // [4, 10]
 * ```
 */
export function shardRange(total: number, shard: Shard, unit = 1): [number, number] {
  const units = Math.ceil(total / unit);
  const first = Math.floor((shard.index * units) / shard.count);
  const last = Math.floor(((shard.index + 1) * units) / shard.count);
  return [Math.min(first * unit, total), Math.min(last * unit, total)];
}

/** `i/n` as people read it. */
export function shardLabel(shard: Shard): string {
  return `shard ${shard.index} of ${shard.count}`;
}

/** The SHA-256 of text or bytes, in hex. */
export async function sha256(data: string | Uint8Array): Promise<string> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The SHA-256 of an adapter folder's `adapter_model.safetensors`, so that shards can tell
 * they used the same weights; undefined when `adapter` is no local folder (a Hub id).
 */
export async function adapterDigest(adapter: string | undefined): Promise<string | undefined> {
  if (!adapter) return undefined;
  const file = join(adapter, "adapter_model.safetensors");
  if (!(await exists(file))) return undefined;
  return sha256(await Deno.readFile(file));
}

/** The per-image outcomes of an evaluation, in the order it visited the images. */
export interface EvalOutcomes {
  /** Each image's row index in its split. */
  indices: number[];
  /** The true class of each image. */
  labels: number[];
  /** The predicted class of each image. */
  predictions: number[];
  /** The predicted class's probability (softmax). */
  probabilities: number[];
  /** Each image's cross-entropy. */
  losses: number[];
  /** Whether the true class is among the top k = min(5, classes). */
  top5Hits: boolean[];
}

/** Outcomes of no image yet, to append to. */
export function emptyOutcomes(): EvalOutcomes {
  return { indices: [], labels: [], predictions: [], probabilities: [], losses: [], top5Hits: [] };
}

/**
 * What one evaluation shard writes to `RUN/eval-<split>.shard-<i>-of-<n>.json`: where it sits
 * in the split, what it evaluated with, and each image's outcome, from which `merge.ts`
 * recomputes every figure of the single-process report.
 */
export interface EvalShardFile {
  /** The file format. */
  format: "vit-lora/eval-shard@1";
  /** Which shard. */
  shard: Shard;
  /** The split evaluated. */
  split: "test" | "validation";
  /** The base model. */
  model: string;
  /** The arithmetic, when not fp32 (`fp16`: WebGPU mixed precision). */
  precision?: "fp16";
  /** The adapter (folder). */
  adapter?: string;
  /** SHA-256 of the adapter's weights (`adapter_model.safetensors`). */
  adapterSha256?: string;
  /** The dataset. */
  data: string;
  /** Images a batch (the shards' blocks are whole batches). */
  batchSize: number;
  /** Class names. */
  classes: string[];
  /** The split's rows: how many, SHA-256 of their sorted indices as JSON, this shard's block. */
  rows: { total: number; sha256: string; start: number; end: number };
  /** Seconds the shard's evaluation took (for images/s only). */
  seconds: number;
  /** Each image's outcome (images that could not be decoded are left out, as in one process). */
  outcomes: EvalOutcomes;
}

/** The shard file of `split` for `shard` in a run folder. */
export function evalShardPath(run: string, split: string, shard: Shard): string {
  return join(run, `eval-${split}.shard-${shard.index}-of-${shard.count}.json`);
}

/**
 * The first line of a prediction shard's JSON lines file (`predict --out`); each further line
 * is one `PredictResult`, in input order.
 */
export interface PredictShardHeader {
  /** The file format. */
  format: "vit-lora/predict-shard@1";
  /** Which shard (0 of 1 without `--shard`). */
  shard: Shard;
  /** Input files of all shards together (the expanded, sorted list). */
  inputs: number;
  /** SHA-256 of that list (JSON of the paths). */
  inputsSha256: string;
  /** This shard's block of the list: `[start, end)`. */
  start: number;
  /** End of the block. */
  end: number;
  /** The base model. */
  model: string;
  /** The adapter. */
  adapter?: string;
  /** SHA-256 of the adapter's weights, when it is a local folder. */
  adapterSha256?: string;
  /** Classes per image. */
  topK: number;
}
