/**
 * Loading and assembling a classifier: a model folder in Hugging Face layout (or a Hub id)
 * in either checkpoint shape (`ViTModel`, as `google/vit-base-patch16-224-in21k`, or
 * `ViTForImageClassification`), a PEFT adapter in either generation's names (see
 * `peft_format.ts`), or new random weights from a config; each tensor checked against the
 * config as it is read.
 *
 * @module
 */

import { join } from "node:path";
import { type Tensor, type Tensor1D, type Tensor2D, tf } from "../core/tf.ts";
import { VitLoraError } from "../core/errors.ts";
import { formatShape, sameShape } from "../core/shapes.ts";
import { exists, readJsonFile } from "../core/files.ts";
import { type BackendName, initBackend } from "../backend/backend.ts";
import { downloadAdapter, downloadModel } from "../hub/hub.ts";
import {
  type HubDownloadOptions,
  type HubSettings,
  isRepoId,
  parseRepoId,
} from "../hub/settings.ts";
import {
  configLabels,
  linearModules,
  linearShape,
  parsePreprocessorConfig,
  parseViTConfig,
  type PreprocessorConfig,
  type ViTConfig,
  vitTensorShapes,
} from "./config.ts";
import { ViTClassifier } from "./classifier.ts";
import {
  type LoraConfig,
  loraConfig,
  loraConfigIn,
  type LoraOptions,
  type LoraTarget,
  loraTargets,
  parseAdapterConfig,
} from "./lora.ts";
import {
  DEFAULT_PEFT_FORMAT,
  keysFormat,
  parsePeftKey,
  PEFT_CLASSIFIER_KEYS,
  PEFT_FORMATS,
  type PeftFormat,
  peftLoraKey,
} from "./peft_format.ts";
import { isFloatDtype, openSafetensors, type SafetensorsFile } from "./safetensors.ts";
import { LoraLayer, takesTransposed, transposeWeight, ViTModel } from "./vit.ts";

/** Options of {@link loadClassifier} and {@link createClassifier}. */
export interface ClassifierOptions {
  /**
   * A PEFT LoRA adapter folder (`adapter_config.json`, `adapter_model.safetensors`). Its
   * classifier, when it has one, replaces the checkpoint's.
   */
  adapter?: string;
  /**
   * Start a new LoRA adapter with these settings (r, alpha, dropout, target modules), A
   * kaiming-uniform and B zeros, when no `adapter` is given. Without `adapter` or `lora`, the
   * classifier has no LoRA (only its head is trainable).
   */
  lora?: LoraOptions;
  /**
   * Class names. They name the classes of a new head (one is made when the checkpoint has
   * none); with a head from a checkpoint or adapter, their count must match it.
   */
  labels?: string[];
  /** The tfjs backend (default: `VIT_LORA_BACKEND`, else WebGPU). */
  backend?: BackendName;
  /** Seed for new weights (head, LoRA A); default 0. */
  seed?: number;
  /**
   * The naming of the adapter's tensors and config: the keys of
   * {@link ViTClassifier.trainableVariables} and what {@link ViTClassifier.saveAdapter} writes
   * (`transformers-5`, what PEFT reads on today's transformers, or `transformers-4`, the seed
   * era's; see `peft_format.ts`). Default: a loaded adapter's own, else `transformers-5`.
   */
  peftFormat?: PeftFormat;
  /** LoRA dropout in training, replacing the adapter's own (e.g. 0 for exact repeats). */
  loraDropout?: number;
  /** The Hub revision (branch, tag, commit) of a model given by Hub id (default `main`). */
  revision?: string;
  /** Download progress on stderr for Hub ids (default true). */
  progress?: boolean;
  /** Hub settings for Hub ids (default: from the environment, see `hubSettings`). */
  hub?: HubSettings;
  /**
   * Replicas of the model in workers, so that the CPU path (tfjs-wasm, one thread an isolate)
   * uses more than one core: batches are split between this isolate and the replicas (see
   * `parallel.ts`). Default: on the wasm backend, one per further core (up
   * to 3) for models whose forward pass costs over a GFLOP an image (ViT-B/16: 17.5); none
   * otherwise. 0 turns them off.
   */
  replicas?: number;
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Independent random streams, so that e.g. adding LoRA does not change a new head's weights. */
const STREAM = { encoder: 1, head: 2, lora: 3 } as const;

/** A deterministic stream of seeds for tfjs's seeded random ops. */
function seeds(seed: number, stream: number): () => number {
  let i = 0;
  return () => seed * 1_000_003 + stream * 10_007 + ++i;
}

/** Where tensors come from when a classifier is assembled. */
export interface Parts {
  config: ViTConfig;
  preprocessor: PreprocessorConfig;
  baseModel: string;
  /** Encoder tensors by `ViTModel` name (linear weights transposed, see `takesTransposed`). */
  encoder: (name: string) => Tensor;
  /** The checkpoint's head, when it has one. */
  head?: { weight: Tensor2D; bias: Tensor1D; source: string };
}

/** An adapter read from disk (or a snapshot), checked against the model. */
export interface Adapter {
  /** Its config, as read. */
  config: LoraConfig;
  /** The naming of its keys and config. */
  format: PeftFormat;
  /** The modules it targets, with their ranks and alphas. */
  targets: LoraTarget[];
  /** LoRA's A and B by module (this module's own names). */
  lora: Map<string, { A: Tensor2D; B: Tensor2D }>;
  /** The classifier, when `modules_to_save` names it. */
  head?: { weight: Tensor2D; bias: Tensor1D };
  /** Where it came from. */
  source: string;
}

/** Every tensor of an adapter, to dispose. */
export function adapterTensors(adapter: Adapter): Tensor[] {
  const head: Tensor[] = adapter.head ? [adapter.head.weight, adapter.head.bias] : [];
  return [...adapter.lora.values()].flatMap(({ A, B }): Tensor[] => [A, B]).concat(head);
}

/** An adapter's folder: `source` itself, or its download when it is a Hub id. */
async function adapterFolder(source: string, hub: HubDownloadOptions): Promise<string> {
  if ((await exists(source)) || !isRepoId(source)) return source;
  const { id, revision } = parseRepoId(source);
  return await downloadAdapter(id, { progress: hub.progress, settings: hub.settings, revision });
}

/**
 * Reads a PEFT adapter folder, in either generation's names (see `peft_format.ts`): its
 * tensors' keys say which, and its config must target exactly the modules they hold, as PEFT
 * would load them. Anything else (keys of both generations, a config naming the other
 * generation's modules, a missing, extra or misshapen tensor) is one clear error.
 */
async function readAdapter(dir: string, config: ViTConfig): Promise<Adapter> {
  const configPath = join(dir, "adapter_config.json");
  const lora = parseAdapterConfig(await readJsonFile(configPath), configPath);
  const path = join(dir, "adapter_model.safetensors");
  if (!(await exists(path)) && (await exists(join(dir, "adapter_model.bin")))) {
    throw new VitLoraError(
      `${path}: not found; the folder has adapter_model.bin (a PyTorch pickle), which this module does not read: save the adapter with safe_serialization=True`,
    );
  }
  using file = await openSafetensors(path);
  const modules = linearModules(config);
  const targetsIn = (f: PeftFormat) => {
    try {
      return loraTargets(lora, modules, f);
    } catch (e) {
      throw new VitLoraError(`${configPath}: ${(e as Error).message}`);
    }
  };
  // the tensors' names say which generation wrote them; without LoRA tensors, the config does
  const format = keysFormat(file.entries.keys(), path) ??
    PEFT_FORMATS.find((f) => targetsIn(f).length > 0) ?? DEFAULT_PEFT_FORMAT;
  const targets = targetsIn(format);
  const described = `target_modules ${JSON.stringify(lora.target_modules)}${
    lora.layers_to_transform != null
      ? ` (layers_to_transform ${JSON.stringify(lora.layers_to_transform)})`
      : ""
  }`;
  if (targets.length === 0) {
    const other = PEFT_FORMATS.find((f) => f !== format)!;
    if (targetsIn(other).length > 0) {
      const example = [...file.entries.keys()].find((k) => parsePeftKey(k).kind === "lora");
      throw new VitLoraError(
        `${configPath}: ${described} names ${other}'s modules, but the tensors of ${path} use ${format}'s names ('${example}'): the config and the tensors disagree, and PEFT would not load this adapter`,
      );
    }
    throw new VitLoraError(`${configPath}: ${described} matches no linear layer of the ViT`);
  }
  const adapter: Adapter = { config: lora, format, targets, lora: new Map(), source: dir };
  const read = new Set<string>();
  const readTensor = async (key: string, shape: number[], expectation: string) => {
    read.add(key);
    return await readChecked(file, key, shape, expectation) as Tensor2D;
  };
  try {
    for (const t of targets) {
      const [out, inp] = linearShape(config, t.module);
      const expectation =
        `${configPath} (r ${t.r} for ${t.module}, hidden_size ${config.hidden_size})`;
      const A = await readTensor(peftLoraKey(t.module, "lora_A", format), [t.r, inp], expectation);
      try {
        const B = await readTensor(
          peftLoraKey(t.module, "lora_B", format),
          [out, t.r],
          expectation,
        );
        adapter.lora.set(t.module, { A, B });
      } catch (e) {
        A.dispose();
        throw e;
      }
    }
    if (lora.modules_to_save?.includes("classifier")) {
      for (const key of Object.values(PEFT_CLASSIFIER_KEYS)) {
        if (!file.entries.has(key)) {
          throw new VitLoraError(
            `${path}: missing tensor '${key}' (modules_to_save names the classifier)`,
          );
        }
      }
      const numLabels = file.entries.get(PEFT_CLASSIFIER_KEYS.weight)!.shape[0];
      const weight = await readTensor(
        PEFT_CLASSIFIER_KEYS.weight,
        [numLabels, config.hidden_size],
        `hidden_size ${config.hidden_size}`,
      );
      try {
        const bias = await readTensor(
          PEFT_CLASSIFIER_KEYS.bias,
          [numLabels],
          `${numLabels} classes`,
        );
        adapter.head = { weight, bias: bias as unknown as Tensor1D };
      } catch (e) {
        weight.dispose();
        throw e;
      }
    }
    for (const key of file.entries.keys()) {
      if (!read.has(key)) {
        throw new VitLoraError(
          `${path}: tensor '${key}' is not one that ${configPath} describes (${described}, ${format}'s names)`,
        );
      }
    }
  } catch (e) {
    tf.dispose(adapterTensors(adapter));
    throw e;
  }
  return adapter;
}

/**
 * Reads a float tensor whose shape must be `shape`; `expectation` says where that shape comes
 * from. With `transposed`, a weight `[out, …in]` comes back as `[in, out]`.
 */
async function readChecked(
  file: SafetensorsFile,
  name: string,
  shape: number[],
  expectation: string,
  transposed = false,
): Promise<Tensor> {
  const entry = file.entries.get(name);
  if (!entry) {
    throw new VitLoraError(
      `${file.path}: missing tensor '${name}' (expected ${formatShape(shape)})`,
    );
  }
  if (!sameShape(entry.shape, shape)) {
    throw new VitLoraError(
      `${file.path}: tensor '${name}' has shape ${
        formatShape(entry.shape)
      }, but ${expectation} needs ${formatShape(shape)}`,
    );
  }
  if (!isFloatDtype(entry.dtype)) {
    throw new VitLoraError(`${file.path}: tensor '${name}' is ${entry.dtype}, not a float type`);
  }
  const t = await file.read(name);
  if (transposed) {
    const w = transposeWeight(t.data as Float32Array, t.shape);
    return tf.tensor2d(w.data, w.shape);
  }
  return tf.tensor(t.data, t.shape, "float32");
}

/** Reads a model folder: config, preprocessor config, and the checked checkpoint. */
async function readModel(
  source: string,
  hub: HubDownloadOptions,
): Promise<Parts & { tensors: Map<string, Tensor> }> {
  let dir = source;
  if (!(await exists(dir))) {
    if (!isRepoId(source)) throw new VitLoraError(`${dir}: no such model folder`);
    const { id, revision } = parseRepoId(source);
    dir = await downloadModel(id, { ...hub, revision: revision ?? hub.revision });
  }
  const configPath = join(dir, "config.json");
  const config = parseViTConfig(await readJsonFile(configPath), configPath);
  const preprocessorPath = join(dir, "preprocessor_config.json");
  const preprocessor = parsePreprocessorConfig(
    (await exists(preprocessorPath))
      ? await readJsonFile(preprocessorPath)
      : { size: config.image_size },
    preprocessorPath,
  );
  const path = join(dir, "model.safetensors");
  if (!(await exists(path)) && (await exists(join(dir, "pytorch_model.bin")))) {
    throw new VitLoraError(
      `${path}: not found; the folder has only pytorch_model.bin (a PyTorch pickle), which this module does not read: convert it to safetensors`,
    );
  }
  using file = await openSafetensors(path);
  const prefix = file.entries.has("vit.embeddings.cls_token")
    ? "vit."
    : file.entries.has("embeddings.cls_token")
    ? ""
    : undefined;
  if (prefix === undefined) {
    throw new VitLoraError(
      `${path}: not a ViT checkpoint (no 'embeddings.cls_token' or 'vit.embeddings.cls_token')`,
    );
  }
  const describe =
    `${configPath} (hidden_size ${config.hidden_size}, ${config.num_hidden_layers} layers, intermediate_size ${config.intermediate_size}, image_size ${config.image_size}, patch_size ${config.patch_size})`;
  const tensors = new Map<string, Tensor>();
  let head: Parts["head"];
  try {
    for (const [name, shape] of vitTensorShapes(config)) {
      tensors.set(
        name,
        await readChecked(file, prefix + name, shape, describe, takesTransposed(name)),
      );
    }
    if (file.entries.has("classifier.weight")) {
      const rows = file.entries.get("classifier.weight")!.shape[0];
      head = {
        weight: await readChecked(
          file,
          "classifier.weight",
          [rows, config.hidden_size],
          describe,
        ) as Tensor2D,
        bias: await readChecked(file, "classifier.bias", [rows], `${rows} classes`) as Tensor1D,
        source: path,
      };
    }
  } catch (e) {
    tf.dispose([...tensors.values()]);
    throw e;
  }
  return {
    config,
    preprocessor,
    baseModel: source,
    tensors,
    encoder: (name) => tensors.get(name)!,
    head,
  };
}

/** A classifier from its parts: an adapter's (or new) LoRA and head, in the chosen naming. */
export function assemble(
  parts: Parts,
  adapter: Adapter | undefined,
  options: ClassifierOptions,
): ViTClassifier {
  const { config } = parts;
  const loraSeed = seeds(options.seed ?? 0, STREAM.lora);
  const adapterHead = adapter?.head?.weight;
  const headRows = adapterHead?.shape[0] ?? parts.head?.weight.shape[0];
  const headSource = adapterHead
    ? join(adapter!.source, "adapter_model.safetensors")
    : parts.head?.source;
  if (options.labels && headRows !== undefined && options.labels.length !== headRows) {
    throw new VitLoraError(
      `${headSource}: the classifier has ${headRows} classes, but ${options.labels.length} labels were given`,
    );
  }
  const fromConfig = configLabels(config);
  const numLabels = headRows ?? options.labels?.length ?? fromConfig?.length ?? 2;
  const labels = options.labels ??
    (fromConfig?.length === numLabels
      ? fromConfig
      : Array.from({ length: numLabels }, (_, i) => `LABEL_${i}`));
  if (new Set(labels).size !== labels.length) {
    throw new VitLoraError("labels: class names must be distinct");
  }

  // the LoRA config (an adapter's, or a new one), in the classifier's naming
  const modules = linearModules(config);
  const peftFormat = options.peftFormat ?? adapter?.format ?? DEFAULT_PEFT_FORMAT;
  let lora = adapter?.config ??
    (options.lora ? loraConfig(options.lora, parts.baseModel) : undefined);
  const targets = adapter?.targets ?? (lora ? loraTargets(lora, modules) : []);
  if (lora && targets.length === 0) {
    throw new VitLoraError(
      `lora.targetModules ${
        JSON.stringify(lora.target_modules)
      } matches no linear layer of the ViT`,
    );
  }
  if (lora) lora = loraConfigIn(lora, targets, modules, peftFormat);
  if (lora && options.loraDropout !== undefined) {
    lora = { ...lora, lora_dropout: options.loraDropout };
  }

  const vit = ViTModel.fromTensors(config, parts.encoder);
  const loraLayers = new Map<string, LoraLayer>();
  if (lora) {
    const linears = vit.linears();
    for (const t of targets) {
      const [out, inp] = linearShape(config, t.module);
      const A = adapter?.lora.get(t.module)?.A ??
        // kaiming_uniform_(a=√5) on [r, in]: bound = gain·√(3/fan_in) = 1/√in.
        tf.randomUniform(
          [t.r, inp],
          -1 / Math.sqrt(inp),
          1 / Math.sqrt(inp),
          "float32",
          loraSeed(),
        );
      const B = adapter?.lora.get(t.module)?.B ?? tf.zeros([out, t.r]);
      const layer = new LoraLayer(A, B, t.scaling, lora.lora_dropout);
      A.dispose();
      B.dispose();
      linears.get(t.module)!.lora = layer;
      loraLayers.set(t.module, layer);
    }
  }
  let weight: Tensor2D, bias: Tensor1D;
  if (adapterHead) {
    weight = adapterHead;
    bias = adapter!.head!.bias;
    if (parts.head) tf.dispose([parts.head.weight, parts.head.bias]);
  } else if (parts.head) {
    ({ weight, bias } = parts.head);
  } else {
    // transformers' _init_weights: trunc_normal_(std=initializer_range) with PyTorch's default
    // bounds of ±2 (absolute, i.e. ±100 std): a plain normal in practice. Bias zeros.
    weight = tf.randomNormal(
      [numLabels, config.hidden_size],
      0,
      config.initializer_range,
      "float32",
      seeds(options.seed ?? 0, STREAM.head)(),
    );
    bias = tf.zeros([numLabels]);
  }
  const classifier = new ViTClassifier({
    config,
    preprocessor: parts.preprocessor,
    labels,
    lora,
    peftFormat,
    targets: lora ? targets : [],
    baseModel: parts.baseModel,
    vit,
    classifier: { weight, bias },
    loraLayers,
    replicas: options.replicas,
  });
  tf.dispose([weight, bias]);
  return classifier;
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
    const clf = assemble(model, adapter, options);
    if (adapter) tf.dispose(adapterTensors(adapter));
    return clf;
  } catch (e) {
    tf.dispose([...model.tensors.values()]);
    if (model.head) tf.dispose([model.head.weight, model.head.bias]);
    if (adapter) tf.dispose(adapterTensors(adapter));
    throw e;
  }
}

/**
 * Builds a classifier with new random weights from a config, initialised as transformers
 * does (normal std `initializer_range` for weights, zero biases, unit LayerNorms): for
 * benchmarks, demos and tests that need no download.
 *
 * @example
 * ```ts ignore
 * import { createClassifier, parseViTConfig } from "@lora/vit";
 * const config = parseViTConfig({ hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4,
 *   intermediate_size: 128, image_size: 32, patch_size: 8 });
 * const clf = await createClassifier(config, { labels: ["cat", "dog"], lora: { r: 4 } });
 * ```
 */
export async function createClassifier(
  config: ViTConfig,
  options: ClassifierOptions & { preprocessor?: PreprocessorConfig } = {},
): Promise<ViTClassifier> {
  await initBackend(options.backend);
  const nextSeed = seeds(options.seed ?? 0, STREAM.encoder);
  const std = config.initializer_range;
  const shapes = vitTensorShapes(config);
  const encoder = (name: string): Tensor => {
    const shape = shapes.get(name)!;
    if (takesTransposed(name)) {
      return tf.randomNormal([numel(shape.slice(1)), shape[0]], 0, std, "float32", nextSeed());
    }
    if (name.includes("layernorm") && name.endsWith(".weight")) return tf.ones(shape);
    if (name.endsWith(".bias")) return tf.zeros(shape);
    return tf.randomNormal(shape, 0, std, "float32", nextSeed());
  };
  const parts: Parts = {
    config,
    preprocessor: options.preprocessor ?? parsePreprocessorConfig({ size: config.image_size }),
    baseModel: "(random init)",
    encoder,
  };
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
