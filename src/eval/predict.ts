/**
 * Classifying image files: a run's best adapter (or a model and adapter) on files, folders
 * and standard input, each image on its own so that one bad file does not stop the others.
 *
 * @module
 */

import { dirname, extname, join } from "node:path";
import { checkOptions, type OptionInputs } from "../core/options.ts";
import { IMAGE_EXTENSIONS } from "../data/imagefolder.ts";
import { PREDICT_OPTIONS } from "./options.ts";
import type { ViTClassifier } from "../model/classifier.ts";
import { loadClassifier } from "../model/loading.ts";
import { classify } from "./classify.ts";
import { setOnnxDtype } from "../engines/ort.ts";
import type { Prediction } from "./top.ts";
import { VitLoraError } from "../core/errors.ts";
import { readRunConfig } from "../runs/folder.ts";
import type { HubSettings } from "../hub/settings.ts";
import {
  adapterDigest,
  checkShard,
  parseShard,
  type PredictShardHeader,
  sha256,
  type Shard,
  shardRange,
} from "./shard.ts";

/** Options of {@link predict} (see {@link PREDICT_OPTIONS}). */
export interface PredictOptions extends Omit<OptionInputs<typeof PREDICT_OPTIONS>, "shard"> {
  /** Image files, folders (searched recursively for images), or `-` for standard input. */
  inputs: string[];
  /**
   * Classify one shard of the inputs only (`{ index: 0…count-1, count }`, or its text `i/n` /
   * `auto/n`): a contiguous block of the expanded, sorted list of files (standard input cannot
   * be sharded). With `out`, `mergePredictShards` puts the shards' files back together.
   */
  shard?: Shard | string;
  /** Hub settings for Hub ids. */
  hub?: HubSettings;
  /** Download progress on stderr (default true). */
  progress?: boolean;
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
  const { inputs: _, shard: shardText, hub: __, progress: ___, ...given } = options;
  checkOptions(PREDICT_OPTIONS, given);
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
  const asked = typeof shardText === "string" ? parseShard(shardText) : shardText;
  const shard = checkShard(asked ?? { index: 0, count: 1 });
  if (asked && all.includes("-")) {
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
      precision: options.precision,
    });
    if (options.dtype) setOnnxDtype(clf, options.dtype);
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

/** A writer of a new (or emptied) file; its folder is made if needed. */
async function openLines(path: string): Promise<WritableStreamDefaultWriter<Uint8Array>> {
  try {
    await Deno.mkdir(dirname(path), { recursive: true });
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
