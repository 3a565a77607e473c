/**
 * Classifying image files: a run's best adapter (or a model and adapter) on files, folders
 * and standard input, each image on its own so that one bad file does not stop the others.
 *
 * @module
 */

import { extname, join } from "node:path";
import type { BackendName } from "../backend/backend.ts";
import { loadClassifier } from "../model/loading.ts";
import { classify, type Prediction } from "./classify.ts";
import { VitLoraError } from "../core/errors.ts";
import { readRunConfig } from "../runs/folder.ts";
import type { HubSettings } from "../hub/settings.ts";

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
 * others are classified.
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
  const sources = (await Promise.all(options.inputs.map(expand))).flat();
  const clf = await loadClassifier(model, {
    adapter,
    labels,
    backend: options.backend,
    hub: options.hub,
    progress: options.progress,
  });
  try {
    const results: PredictResult[] = [];
    for (const source of sources) {
      try {
        const [top] = await classify(clf, [await readInput(source)], { topK: options.topK });
        results.push({ source, top });
      } catch (e) {
        const message = (e as Error).message.replace(/^image 0: /, "");
        results.push({ source, error: message });
      }
    }
    return results;
  } finally {
    clf.dispose();
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
