/**
 * Merging shards (see `shard.ts`): the evaluation shards of a run into the report one process
 * writes, and prediction shard files into the results one process gives. The shards are
 * checked first (all there, once each, of one shard count, over the same rows or files, with
 * the same model and adapter); anything wrong is a {@link VitLoraError} of one line.
 *
 * @module
 */

import { basename, join } from "node:path";
import { VitLoraError } from "../core/errors.ts";
import { readJsonFile, writeFileAtomic } from "../core/files.ts";
import { type EvalReport, metricsFromOutcomes, toEvalReport } from "./evaluate.ts";
import type { PredictResult } from "./predict.ts";
import {
  emptyOutcomes,
  type EvalOutcomes,
  type EvalShardFile,
  type PredictShardHeader,
  sha256,
  type Shard,
  shardLabel,
  shardRange,
} from "./shard.ts";

/** Options of {@link mergeEvalShards}. */
export interface MergeEvalOptions {
  /** The run folder the shards wrote to. */
  run: string;
  /** Which split: `test` (default) or `validation`. */
  split?: "test" | "validation";
}

/** What a merge found, besides its result. */
export interface MergeInfo {
  /** The shard files, in shard order. */
  files: string[];
}

/** One file of a set of shards, read and checked on its own. */
interface ShardOf<T> {
  file: string;
  shard: Shard;
  content: T;
}

/**
 * Checks that `shards` are shards `0 … n-1` of one `n`, each once; returns them in order.
 * `what` names the set in errors.
 */
function inOrder<T>(shards: ShardOf<T>[], what: string): ShardOf<T>[] {
  if (shards.length === 0) throw new VitLoraError(`${what}: no shard files`);
  const counts = new Map<number, string[]>();
  for (const s of shards) counts.set(s.shard.count, [...counts.get(s.shard.count) ?? [], s.file]);
  if (counts.size > 1) {
    const list = [...counts].map(([n, files]) => `${files.length} of ${n} (${basename(files[0])}…)`)
      .join(", ");
    throw new VitLoraError(
      `${what}: shards of different counts: ${list}; remove the stale ones and merge again`,
    );
  }
  const n = shards[0].shard.count;
  const byIndex = new Map<number, ShardOf<T>>();
  for (const s of shards) {
    const other = byIndex.get(s.shard.index);
    if (other) {
      throw new VitLoraError(
        `${what}: shards overlap: ${basename(other.file)} and ${basename(s.file)} are both ${
          shardLabel(s.shard)
        }`,
      );
    }
    byIndex.set(s.shard.index, s);
  }
  const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !byIndex.has(i));
  if (missing.length > 0) {
    throw new VitLoraError(
      `${what}: ${missing.length === 1 ? "shard" : "shards"} ${missing.join(", ")} of ${n} ${
        missing.length === 1 ? "is" : "are"
      } missing (${shards.length} of ${n} found)`,
    );
  }
  return Array.from({ length: n }, (_, i) => byIndex.get(i)!);
}

/** Throws unless every shard has the same value of `key` (compared as JSON). */
function same<T>(
  shards: ShardOf<T>[],
  what: string,
  key: string,
  value: (c: T) => unknown,
): void {
  const first = JSON.stringify(value(shards[0].content) ?? null);
  for (const s of shards.slice(1)) {
    const v = JSON.stringify(value(s.content) ?? null);
    if (v !== first) {
      const show = (x: string) => (x.length > 80 ? `${x.slice(0, 77)}…` : x);
      throw new VitLoraError(
        `${what}: the shards differ in ${key}: ${basename(shards[0].file)} has ${show(first)}, ${
          basename(s.file)
        } ${show(v)}`,
      );
    }
  }
}

/** Throws unless each shard's block is the one its index gives, so that they do not overlap. */
function blocks<T>(
  shards: ShardOf<T>[],
  what: string,
  total: number,
  unit: number,
  noun: string,
  block: (c: T) => [number, number],
): void {
  for (const s of shards) {
    const [start, end] = block(s.content);
    const [want, wantEnd] = shardRange(total, s.shard, unit);
    if (start === want && end === wantEnd) continue;
    const other = shards.find((o) => {
      if (o === s) return false;
      const [a, b] = block(o.content);
      return a < end && start < b;
    });
    throw new VitLoraError(
      other
        ? `${what}: shards overlap: ${basename(s.file)} holds ${noun} ${start}–${end}, ${
          basename(other.file)
        } ${block(other.content).join("–")}`
        : `${what}: ${
          basename(s.file)
        } holds ${noun} ${start}–${end}, not the ${want}–${wantEnd} of ${shardLabel(s.shard)}`,
    );
  }
}

const EVAL_SHARD = /^eval-(test|validation)\.shard-(\d+)-of-(\d+)\.json$/;

/**
 * Merges the evaluation shards of a run (`RUN/eval-<split>.shard-<i>-of-<n>.json`, written by
 * `evaluate` with `shard`) into `RUN/eval-<split>.json`: the same report a single process
 * writes, figure for figure and image for image; only `imagesPerSecond`, a timing, differs
 * (see {@link EvalReport.imagesPerSecond}). The shard files are kept.
 *
 * @example
 * ```ts ignore
 * import { mergeEvalShards } from "@lora/vit";
 *
 * // after `deno task eval --run runs/food101 --shard i/3` for i = 0, 1, 2
 * const report = await mergeEvalShards({ run: "runs/food101" });
 * console.log(report.accuracy);
 * ```
 */
export async function mergeEvalShards(
  options: MergeEvalOptions,
): Promise<EvalReport & MergeInfo> {
  const split = options.split ?? "test";
  if (split !== "test" && split !== "validation") {
    throw new VitLoraError(`--split must be test or validation, not ${split}`);
  }
  const { run } = options;
  const what = `${run}: eval-${split} shards`;
  let entries: string[];
  try {
    entries = [];
    for await (const e of Deno.readDir(run)) if (e.isFile) entries.push(e.name);
  } catch (e) {
    throw new VitLoraError(`${run}: cannot read the run folder: ${(e as Error).message}`);
  }
  const shards: ShardOf<EvalShardFile>[] = [];
  for (const name of entries.sort()) {
    const m = EVAL_SHARD.exec(name);
    if (!m || m[1] !== split) continue;
    const file = join(run, name);
    const content = await readJsonFile(file) as EvalShardFile;
    if (content?.format !== "vit-lora/eval-shard@1" || !content.outcomes || !content.rows) {
      throw new VitLoraError(`${file}: not an evaluation shard file`);
    }
    const shard = { index: Number(m[2]), count: Number(m[3]) };
    if (content.shard?.index !== shard.index || content.shard?.count !== shard.count) {
      throw new VitLoraError(
        `${file}: its content is ${
          content.shard ? shardLabel(content.shard) : "no shard"
        }, its name ${shardLabel(shard)}`,
      );
    }
    shards.push({ file, shard, content });
  }
  if (shards.length === 0) {
    throw new VitLoraError(
      `${run}: no shard files eval-${split}.shard-<i>-of-<n>.json (evaluate with --shard i/n first)`,
    );
  }
  const ordered = inOrder(shards, what);
  same(ordered, what, "split", (c) => c.split);
  same(ordered, what, "model", (c) => c.model);
  same(ordered, what, "adapter", (c) => c.adapter);
  same(ordered, what, "adapter weights (SHA-256)", (c) => c.adapterSha256);
  same(ordered, what, "dataset", (c) => c.data);
  same(ordered, what, "classes", (c) => c.classes);
  same(ordered, what, "batch size", (c) => c.batchSize);
  same(ordered, what, "split rows", (c) => [c.rows.total, c.rows.sha256]);
  const { total } = ordered[0].content.rows;
  blocks(
    ordered,
    what,
    total,
    ordered[0].content.batchSize,
    "rows",
    (c) => [c.rows.start, c.rows.end],
  );
  const all = emptyOutcomes();
  const seen = new Set<number>();
  let seconds = 0;
  for (const { file, content } of ordered) {
    const o = content.outcomes;
    const n = o.indices.length;
    const keys = Object.keys(all) as (keyof EvalOutcomes)[];
    if (keys.some((k) => !Array.isArray(o[k]) || o[k].length !== n)) {
      throw new VitLoraError(`${file}: its outcome arrays are not all of one length`);
    }
    if (n > content.rows.end - content.rows.start) {
      throw new VitLoraError(`${file}: more outcomes (${n}) than rows in its block`);
    }
    for (const index of o.indices) {
      if (seen.has(index)) {
        throw new VitLoraError(`${what}: shards overlap: row ${index} is in more than one`);
      }
      seen.add(index);
    }
    for (const k of keys) (all[k] as unknown[]).push(...o[k]);
    seconds += content.seconds;
  }
  const first = ordered[0].content;
  const report = toEvalReport(metricsFromOutcomes(all, seconds), first.classes, {
    split,
    model: first.model,
    adapter: first.adapter,
    data: first.data,
  });
  if (first.precision) report.precision = first.precision;
  await writeFileAtomic(join(run, `eval-${split}.json`), JSON.stringify(report) + "\n");
  return Object.assign(report, { files: ordered.map((s) => s.file) });
}

/** Options of {@link mergePredictShards}. */
export interface MergePredictOptions {
  /** Shard files (`predict --out`), or folders of them (their `*.jsonl` files). */
  paths: string[];
}

/** What {@link mergePredictShards} gives. */
export interface MergedPredictions extends MergeInfo {
  /** Every input's result, in the order one process gives them. */
  results: PredictResult[];
  /** A header for the merged list as one file (shard 0 of 1). */
  header: PredictShardHeader;
}

/**
 * Puts prediction shard files (`predict` with `shard` and `out`) back together: the results
 * in the order a single process gives them, after checking that the files are shards 0 … n-1
 * of one run over the same inputs, model and adapter, each complete.
 *
 * @example
 * ```ts ignore
 * import { mergePredictShards } from "@lora/vit";
 *
 * // after `deno task predict … --shard i/2 --out predictions/part-i.jsonl` for i = 0, 1
 * const { results } = await mergePredictShards({ paths: ["predictions/"] });
 * for (const r of results) console.log(r.source, r.error ?? r.top![0].label);
 * ```
 */
export async function mergePredictShards(
  options: MergePredictOptions,
): Promise<MergedPredictions> {
  const files: string[] = [];
  for (const path of options.paths) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch {
      throw new VitLoraError(`${path}: no such file or folder`);
    }
    if (!info.isDirectory) {
      files.push(path);
      continue;
    }
    const inside: string[] = [];
    for await (const e of Deno.readDir(path)) {
      if (e.isFile && e.name.endsWith(".jsonl")) inside.push(join(path, e.name));
    }
    if (inside.length === 0) throw new VitLoraError(`${path}: no .jsonl files in this folder`);
    files.push(...inside.sort());
  }
  if (files.length === 0) throw new VitLoraError("--merge: give the shard files or their folder");
  const what = "prediction shards";
  const shards: ShardOf<{ header: PredictShardHeader; results: PredictResult[] }>[] = [];
  for (const file of [...new Set(files)]) {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (e) {
      throw new VitLoraError(`${file}: cannot read: ${(e as Error).message}`);
    }
    const lines = text.split("\n");
    if (lines.at(-1) === "") lines.pop();
    const parse = (l: string, i: number) => {
      try {
        return JSON.parse(l);
      } catch {
        throw new VitLoraError(`${file}: line ${i + 1} is not JSON (was the shard interrupted?)`);
      }
    };
    const header = lines.length ? parse(lines[0], 0) as PredictShardHeader : undefined;
    if (header?.format !== "vit-lora/predict-shard@1" || !header.shard) {
      throw new VitLoraError(`${file}: not a prediction shard file (written by predict --out)`);
    }
    const results = lines.slice(1).map((l, i) => parse(l, i + 1) as PredictResult);
    if (results.length !== header.end - header.start) {
      throw new VitLoraError(
        `${file}: incomplete: ${results.length} of ${
          header.end - header.start
        } results (was the shard interrupted?)`,
      );
    }
    shards.push({ file, shard: header.shard, content: { header, results } });
  }
  const ordered = inOrder(shards, what);
  same(ordered, what, "inputs", (c) => [c.header.inputs, c.header.inputsSha256]);
  same(ordered, what, "model", (c) => c.header.model);
  same(ordered, what, "adapter", (c) => c.header.adapter);
  same(ordered, what, "adapter weights (SHA-256)", (c) => c.header.adapterSha256);
  same(ordered, what, "top-k", (c) => c.header.topK);
  const first = ordered[0].content.header;
  blocks(ordered, what, first.inputs, 1, "files", (c) => [c.header.start, c.header.end]);
  const results = ordered.flatMap((s) => s.content.results);
  if (await sha256(JSON.stringify(results.map((r) => r.source))) !== first.inputsSha256) {
    throw new VitLoraError(`${what}: the files' inputs are not those their headers name`);
  }
  const header: PredictShardHeader = {
    ...first,
    shard: { index: 0, count: 1 },
    start: 0,
    end: first.inputs,
  };
  return { results, header, files: ordered.map((s) => s.file) };
}
