/**
 * Loading a classifier in a web page: from URLs (a model folder served anywhere, or a Hub id,
 * whose `resolve/` URLs allow cross-origin reads), from `File`s the user picked, or from bytes.
 * The checks and the assembly are the Deno loader's own (`model/assembly.ts`).
 *
 * @module
 */

import { VitLoraError } from "../core/errors.ts";
import { initBackend } from "../backend/backend.ts";
import { isRepoId, resolveUrl } from "../hub/ids.ts";
import {
  type Adapter,
  adapterFromStore,
  classifierFrom,
  type ClassifierOptions,
  modelFromStore,
} from "../model/assembly.ts";
import type { ViTClassifier } from "../model/classifier.ts";
import { safetensorsFromBytes } from "../model/safetensors.ts";

/** Files by name (`config.json`, `model.safetensors`, …), and what to call them in messages. */
export interface FileSet {
  /** Where the files came from: a URL, a Hub id or a folder's name. */
  name: string;
  /** The files' bytes by file name. */
  files: Record<string, Uint8Array>;
}

/** Options of the web loaders: those of `loadClassifier`, with the adapter as files. */
export interface WebClassifierOptions
  extends Omit<ClassifierOptions, "adapter" | "hub" | "revision" | "progress" | "replicas"> {
  /** A PEFT adapter: `adapter_config.json` and `adapter_model.safetensors`. */
  adapter?: FileSet;
}

const MODEL_FILES = ["config.json", "model.safetensors"];
const ADAPTER_FILES = ["adapter_config.json", "adapter_model.safetensors"];

function json(set: FileSet, file: string): unknown {
  const bytes = set.files[file];
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new VitLoraError(`${set.name}/${file}: not valid JSON (${(e as Error).message})`);
  }
}

function need(set: FileSet, files: string[]): void {
  for (const file of files) {
    if (!set.files[file]) throw new VitLoraError(`${set.name}: no ${file}`);
  }
}

/**
 * A classifier from files in memory: a model (`config.json`, `model.safetensors`, and
 * optionally `preprocessor_config.json`) and, in the options, an adapter.
 *
 * @example
 * ```ts ignore
 * import { loadClassifierFromBytes } from "@lora/vit/web";
 * declare const config: Uint8Array; // config.json's bytes
 * declare const weights: Uint8Array; // model.safetensors' bytes
 *
 * const clf = await loadClassifierFromBytes(
 *   { name: "my-model", files: { "config.json": config, "model.safetensors": weights } },
 *   { labels: ["cat", "dog"], lora: { r: 8 } },
 * );
 * ```
 */
export async function loadClassifierFromBytes(
  model: FileSet,
  options: WebClassifierOptions = {},
): Promise<ViTClassifier> {
  await initBackend(options.backend, { quiet: true });
  need(model, MODEL_FILES);
  const loaded = await modelFromStore(
    json(model, "config.json"),
    model.files["preprocessor_config.json"] ? json(model, "preprocessor_config.json") : undefined,
    safetensorsFromBytes(model.files["model.safetensors"], `${model.name}/model.safetensors`),
    {
      config: `${model.name}/config.json`,
      preprocessor: `${model.name}/preprocessor_config.json`,
      source: model.name,
    },
  );
  let adapter: Adapter | undefined;
  const given = options.adapter;
  if (given) {
    try {
      need(given, ADAPTER_FILES);
      adapter = await adapterFromStore(
        json(given, "adapter_config.json"),
        safetensorsFromBytes(
          given.files["adapter_model.safetensors"],
          `${given.name}/adapter_model.safetensors`,
        ),
        loaded.config,
        { config: `${given.name}/adapter_config.json`, source: given.name },
      );
    } catch (e) {
      for (const t of loaded.tensors.values()) t.dispose();
      if (loaded.head) [loaded.head.weight, loaded.head.bias].forEach((t) => t.dispose());
      throw e;
    }
  }
  const { adapter: _, ...rest } = options;
  return classifierFrom(loaded, adapter, { ...rest, replicas: 0 });
}

/**
 * The base URL of a model or adapter: a Hub id (`owner/name[@revision]`) becomes its
 * `resolve/` URL on `endpoint`; a URL (or a path on this site) is taken as a folder.
 */
export function folderUrl(source: string, endpoint = "https://huggingface.co"): string {
  if (isRepoId(source) && !source.startsWith(".") && !/^[a-z]+:/i.test(source)) {
    return resolveUrl(source, "", endpoint);
  }
  return source.endsWith("/") ? source : `${source}/`;
}

/**
 * Fetches `files` (and `optional` ones, when present) from a folder URL.
 *
 * @example
 * ```ts ignore
 * import { fetchFiles, loadClassifierFromBytes } from "@lora/vit/web";
 *
 * const files = ["config.json", "model.safetensors"];
 * const model = await fetchFiles("demo/model/", files, ["preprocessor_config.json"]);
 * const clf = await loadClassifierFromBytes(model, { labels: ["cat", "dog"] });
 * ```
 */
export async function fetchFiles(
  folder: string,
  files: string[],
  optional: string[] = [],
): Promise<FileSet> {
  const out: Record<string, Uint8Array> = {};
  for (const file of [...files, ...optional]) {
    const url = new URL(file, new URL(folder, globalThis.location?.href)).href;
    let res: Response;
    try {
      res = await fetch(url);
    } catch (e) {
      throw new VitLoraError(`${url}: cannot fetch (${(e as Error).message})`);
    }
    if (!res.ok) {
      await res.body?.cancel();
      if (optional.includes(file) && res.status === 404) continue;
      throw new VitLoraError(`${url}: ${res.status} ${res.statusText}`);
    }
    out[file] = new Uint8Array(await res.arrayBuffer());
  }
  return { name: folder.replace(/\/$/, ""), files: out };
}

/**
 * A classifier from URLs: `model` a folder URL or a Hub id, and optionally an adapter's.
 *
 * @example
 * ```ts ignore
 * import { loadClassifierFromUrl } from "@lora/vit/web";
 *
 * const clf = await loadClassifierFromUrl("google/vit-base-patch16-224-in21k", {
 *   labels: ["cat", "dog"],
 *   lora: { r: 16, alpha: 16 },
 * });
 * ```
 */
export async function loadClassifierFromUrl(
  model: string,
  options: Omit<WebClassifierOptions, "adapter"> & { adapter?: string; endpoint?: string } = {},
): Promise<ViTClassifier> {
  const { adapter, endpoint, ...rest } = options;
  const files = await fetchFiles(folderUrl(model, endpoint), MODEL_FILES, [
    "preprocessor_config.json",
  ]);
  const adapterFiles = adapter
    ? await fetchFiles(folderUrl(adapter, endpoint), ADAPTER_FILES)
    : undefined;
  return await loadClassifierFromBytes(files, { ...rest, adapter: adapterFiles });
}

/**
 * A classifier from `File`s a user picked (a model folder's files, and an adapter's, in any
 * order: they are told apart by name).
 *
 * @example
 * ```ts ignore
 * import { loadClassifierFromFiles } from "@lora/vit/web";
 *
 * // <input type="file" multiple>: config.json, model.safetensors (and an adapter's files)
 * const input = document.querySelector<HTMLInputElement>("input[type=file]")!;
 * input.addEventListener("change", async () => {
 *   const clf = await loadClassifierFromFiles(Array.from(input.files!), { labels: ["a", "b"] });
 *   console.log(clf.parameterCount());
 * });
 * ```
 */
export async function loadClassifierFromFiles(
  files: Iterable<File>,
  options: Omit<WebClassifierOptions, "adapter"> = {},
): Promise<ViTClassifier> {
  const model: FileSet = { name: "model", files: {} };
  const adapter: FileSet = { name: "adapter", files: {} };
  for (const file of files) {
    const set = ADAPTER_FILES.includes(file.name) ? adapter : model;
    set.files[file.name] = new Uint8Array(await file.arrayBuffer());
  }
  return await loadClassifierFromBytes(model, {
    ...options,
    adapter: Object.keys(adapter.files).length ? adapter : undefined,
  });
}
