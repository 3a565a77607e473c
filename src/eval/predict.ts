/**
 * Classifying image files: a run's best adapter (or a model and adapter) on files, folders
 * and standard input, each image on its own so that one bad file does not stop the others.
 *
 * @module
 */

import { extname, join } from "node:path";
import type { BackendName } from "../backend/backend.ts";
import type { ViTClassifier } from "../model/classifier.ts";
import { loadClassifier } from "../model/loading.ts";
import { classify } from "./classify.ts";
import type { Prediction } from "./top.ts";
import { VitLoraError } from "../core/errors.ts";
import { readRunConfig } from "../runs/folder.ts";
import type { HubSettings } from "../hub/settings.ts";
import {
  adapterDigest,
  checkShard,
  type PredictShardHeader,
  sha256,
  type Shard,
  shardRange,
} from "./shard.ts";

/** Options of {@link predict}. */
export interface PredictOptions {
  /** Image files, folders (searched recursively for images), or `-` for standard input. */
  inputs: string[];
  /** A training run: its base model and best adapter. */
  run?: string;
  /** Without `run`: the base model (folder or Hub id). */
  model?: string;
  /** Without `run`: the adapter (folder or Hub id). */
  adapter?: string;
  /** Classes per image (default 5). */
  topK?: number;
  /** tfjs backend. */
  backend?: BackendName;
  /** Hub settings for Hub ids. */
  hub?: HubSettings;
  /** Download progress on stderr (default true). */
  progress?: boolean;
  /**
   * Classify one shard of the inputs only (`{ index: 0…count-1, count }`): a contiguous block
   * of the expanded, sorted list of files (standard input cannot be sharded). With `out`,
   * `mergePredictShards` puts the shards' files back together.
   */
  shard?: Shard;
  /**
   * Also write the results to this file as JSON lines, each as soon as it is known: first a
   * {@link PredictShardHeader} (shard 0 of 1 without `shard`), then one `PredictResult` a line,
   * in input order.
   */
  out?: string;
}

/** One input's outcome: its top classes, or what went wrong. */
export interface PredictResult {
  /** The file (or `-`). */
  source: string;
  /** The most probable classes, most probable first. */
  top?: Prediction[];
  /** Why this input could not be classified. */
  error?: string;
}

const IMAGE_EXTENSIONS = new Set([".jpg", ".jpeg", ".png", ".tif", ".tiff"]);

async function expand(input: string): Promise<string[]> {
  if (input === "-") return [input];
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(input);
  } catch {
    return [input]; // reported as missing when read
  }
  if (!info.isDirectory) return [input];
  const out: string[] = [];
  for await (const entry of Deno.readDir(input)) {
    const path = join(input, entry.name);
    if (entry.isDirectory) out.push(...await expand(path));
    else if (IMAGE_EXTENSIONS.has(extname(entry.name).toLowerCase())) out.push(path);
  }
  return out.sort();
}

async function readInput(source: string): Promise<Uint8Array> {
  if (source === "-") return new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer());
  try {
    return await Deno.readFile(source);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error("no such file");
    if (e instanceof Deno.errors.IsADirectory) throw new Error("a folder");
    throw e;
  }
}

/**
 * Classifies image files with a run's best adapter (or `model` + `adapter`), using exactly the
 * evaluation transform of training. Inputs that are missing or not images get an `error`; the
 * others are classified. With `shard`, only that shard's block of the inputs; with `out`, the
 * results are also written as JSON lines (see {@link PredictOptions.out}).
 *
 * @example
 * ```ts ignore
 * import { predict } from "@lora/vit";
 * for (const r of await predict({ run: "runs/food101", inputs: ["photos/"] })) {
 *   console.log(r.source, r.error ?? r.top![0].label);
 * }
 * ```
 */
export async function predict(options: PredictOptions): Promise<PredictResult[]> {
  let model = options.model, adapter = options.adapter;
  let labels: string[] | undefined;
  if (options.run) {
    const config = await readRunConfig(options.run);
    model ??= config.train.model;
    adapter ??= join(options.run, "best");
    // a PEFT adapter carries no class names: the run's config has them
    labels = config.dataset?.labels;
  }
  if (!model) throw new VitLoraError("predict: give a run (--run) or a model (--model)");
  if (options.inputs.length === 0) throw new VitLoraError("predict: no images given");
  const all = (await Promise.all(options.inputs.map(expand))).flat();
  const shard = checkShard(options.shard ?? { index: 0, count: 1 });
  if (options.shard && all.includes("-")) {
    throw new VitLoraError("--shard: standard input (-) cannot be sharded; give files or folders");
  }
  const [start, end] = shardRange(all.length, shard);
  const sources = all.slice(start, end);
  // the output first, so that one that cannot be written fails before the model loads
  let out = options.out === undefined ? undefined : await openLines(options.out);
  let clf: ViTClassifier | undefined;
  try {
    clf = await loadClassifier(model, {
      adapter,
      labels,
      backend: options.backend,
      hub: options.hub,
      progress: options.progress,
    });
    if (out) {
      const header: PredictShardHeader = {
        format: "vit-lora/predict-shard@1",
        shard,
        inputs: all.length,
        inputsSha256: await sha256(JSON.stringify(all)),
        start,
        end,
        model,
        adapter,
        adapterSha256: await adapterDigest(adapter),
        topK: options.topK ?? 5,
      };
      await out.write(line(header));
    }
    const results: PredictResult[] = [];
    for (const source of sources) {
      let result: PredictResult;
      try {
        const [top] = await classify(clf, [await readInput(source)], { topK: options.topK });
        result = { source, top };
      } catch (e) {
        const message = (e as Error).message.replace(/^image 0: /, "");
        result = { source, error: message };
      }
      results.push(result);
      await out?.write(line(result));
    }
    await out?.close();
    out = undefined;
    return results;
  } finally {
    await out?.abort().catch(() => {});
    clf?.dispose();
  }
}

/** One JSON line. */
function line(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value) + "\n");
}

/** A writer of a new (or emptied) file. */
async function openLines(path: string): Promise<WritableStreamDefaultWriter<Uint8Array>> {
  try {
    const file = await Deno.open(path, { write: true, create: true, truncate: true });
    return file.writable.getWriter();
  } catch (e) {
    throw new VitLoraError(`${path}: cannot write: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Writes prediction results as a JSON lines file: `header`, then one result a line (what
 * `predict` with `out` writes as it goes).
 */
export async function writePredictionLines(
  path: string,
  header: PredictShardHeader,
  results: PredictResult[],
): Promise<void> {
  const out = await openLines(path);
  try {
    await out.write(line(header));
    for (const r of results) await out.write(line(r));
    await out.close();
  } catch (e) {
    await out.abort().catch(() => {});
    throw new VitLoraError(`${path}: cannot write: ${(e as Error).message}`, { cause: e });
  }
}

/** The results as a text table: each input, then its classes with probabilities. */
export function formatPredictions(results: PredictResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    if (r.error) {
      lines.push(`${r.source}: error: ${r.error}`);
      continue;
    }
    lines.push(r.source);
    const width = Math.max(...r.top!.map((p) => p.label.length));
    for (const p of r.top!) {
      lines.push(`  ${p.label.padEnd(width)}  ${(100 * p.probability).toFixed(1).padStart(5)}%`);
    }
  }
  return lines.join("\n");
}
