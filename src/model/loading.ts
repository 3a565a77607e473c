/**
 * Loading a classifier from folders in Hugging Face layout and from the Hub (Deno): a model
 * folder (`config.json`, `model.safetensors`, optionally `preprocessor_config.json`) or a Hub
 * id, and a PEFT adapter folder or Hub id; new random weights from a config. The checks and
 * the assembly are `assembly.ts`'s.
 *
 * @module
 */

import "../backend/deno_platform.ts"; // Deno's environment, files and BLAS (core/platform.ts)
import { join } from "node:path";
import { exists, readJsonFile } from "../core/files.ts";
import { VitLoraError } from "../core/errors.ts";
import { initBackend } from "../backend/backend.ts";
import { downloadAdapter, downloadModel } from "../hub/hub.ts";
import type { HubDownloadOptions } from "../hub/settings.ts";
import { isRepoId, parseRepoId } from "../hub/ids.ts";
import type { PreprocessorConfig, ViTConfig } from "./config.ts";
import type { ViTClassifier } from "./classifier.ts";
import {
  type Adapter,
  adapterFromStore,
  adapterTensors,
  assemble,
  classifierFrom,
  type ClassifierOptions,
  type LoadedModel,
  modelFromStore,
  randomParts,
} from "./assembly.ts";
import { openSafetensors } from "./safetensors_file.ts";
import { tf } from "../core/tf.ts";

async function adapterFolder(source: string, hub: HubDownloadOptions): Promise<string> {
  if ((await exists(source)) || !isRepoId(source)) return source;
  const { id, revision } = parseRepoId(source);
  return await downloadAdapter(id, { progress: hub.progress, settings: hub.settings, revision });
}

/** Reads a PEFT adapter folder (see `adapterFromStore` for what is checked). */
async function readAdapter(dir: string, config: ViTConfig): Promise<Adapter> {
  const configPath = join(dir, "adapter_config.json");
  const json = await readJsonFile(configPath);
  const path = join(dir, "adapter_model.safetensors");
  if (!(await exists(path)) && (await exists(join(dir, "adapter_model.bin")))) {
    throw new VitLoraError(
      `${path}: not found; the folder has adapter_model.bin (a PyTorch pickle), which this module does not read: save the adapter with safe_serialization=True`,
    );
  }
  using file = await openSafetensors(path);
  return await adapterFromStore(json, file, config, { config: configPath, source: dir });
}

/** Reads a model folder, or downloads it first when `source` is a Hub id. */
async function readModel(source: string, hub: HubDownloadOptions): Promise<LoadedModel> {
  let dir = source;
  if (!(await exists(dir))) {
    if (!isRepoId(source)) throw new VitLoraError(`${dir}: no such model folder`);
    const { id, revision } = parseRepoId(source);
    dir = await downloadModel(id, { ...hub, revision: revision ?? hub.revision });
  }
  const configPath = join(dir, "config.json");
  const configJson = await readJsonFile(configPath);
  const preprocessorPath = join(dir, "preprocessor_config.json");
  const preprocessorJson = (await exists(preprocessorPath))
    ? await readJsonFile(preprocessorPath)
    : undefined;
  const path = join(dir, "model.safetensors");
  if (!(await exists(path)) && (await exists(join(dir, "pytorch_model.bin")))) {
    throw new VitLoraError(
      `${path}: not found; the folder has only pytorch_model.bin (a PyTorch pickle), which this module does not read: convert it to safetensors`,
    );
  }
  using file = await openSafetensors(path);
  return await modelFromStore(configJson, preprocessorJson, file, {
    config: configPath,
    preprocessor: preprocessorPath,
    source,
  });
}

/**
 * Loads a classifier from a model folder in Hugging Face layout (`config.json`,
 * `model.safetensors`, optionally `preprocessor_config.json`), either checkpoint shape:
 * a `ViTModel` (no head: a new one is made for `labels`) or a `ViTForImageClassification`.
 * With `adapter`, a PEFT LoRA adapter is applied; with `lora`, a new one is started.
 *
 * @example
 * ```ts ignore
 * import { loadClassifier } from "@lora/vit";
 * const clf = await loadClassifier("models/vit-base-patch16-224-in21k", {
 *   labels: ["apple_pie", "baby_back_ribs"],
 *   lora: { r: 32, alpha: 16, dropout: 0.1, targetModules: ["query", "value"] },
 * });
 * console.log(clf.parameterCount());
 * ```
 */
export async function loadClassifier(
  source: string,
  options: ClassifierOptions = {},
): Promise<ViTClassifier> {
  await initBackend(options.backend);
  const hub = { revision: options.revision, progress: options.progress, settings: options.hub };
  const model = await readModel(source, hub);
  let adapter: Adapter | undefined;
  try {
    adapter = options.adapter
      ? await readAdapter(await adapterFolder(options.adapter, hub), model.config)
      : undefined;
  } catch (e) {
    tf.dispose([...model.tensors.values()]);
    if (model.head) tf.dispose([model.head.weight, model.head.bias]);
    throw e;
  }
  return classifierFrom(model, adapter, options);
}

/**
 * Builds a classifier with new random weights from a config, initialised as transformers
 * does (normal std `initializer_range` for weights, zero biases, unit LayerNorms): for
 * benchmarks, demos and tests that need no download.
 *
 * @example
 * ```ts
 * import { createClassifier, parseViTConfig } from "@lora/vit";
 * const config = parseViTConfig({
 *   hidden_size: 64,
 *   num_hidden_layers: 2,
 *   num_attention_heads: 4,
 *   intermediate_size: 128,
 *   image_size: 32,
 *   patch_size: 8,
 * });
 * const clf = await createClassifier(config, {
 *   labels: ["cat", "dog"],
 *   lora: { r: 4 },
 *   backend: "cpu", // default: WebGPU when there is a GPU, else wasm
 * });
 * console.log(clf.parameterCount()); // { trainable: 2178, total: 82754 }
 * clf.dispose();
 * ```
 */
export async function createClassifier(
  config: ViTConfig,
  options: ClassifierOptions & { preprocessor?: PreprocessorConfig } = {},
): Promise<ViTClassifier> {
  await initBackend(options.backend);
  const parts = randomParts(config, options);
  const adapter = options.adapter
    ? await readAdapter(
      await adapterFolder(options.adapter, { progress: options.progress, settings: options.hub }),
      config,
    )
    : undefined;
  try {
    return assemble(parts, adapter, options);
  } finally {
    if (adapter) tf.dispose(adapterTensors(adapter));
  }
}
