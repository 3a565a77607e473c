/**
 * Assembling a classifier from its parts, wherever they come from (files, the Hub, URLs in a
 * web page, bytes): a model checkpoint in either shape (`ViTModel`, as
 * `google/vit-base-patch16-224-in21k`, or `ViTForImageClassification`), a PEFT adapter in
 * either generation's names (see `peft_format.ts`), or new random weights from a config;
 * each tensor checked against the config as it is read. Reading them from folders and the
 * Hub is `loading.ts`'s.
 *
 * @module
 */

import { type Tensor, type Tensor1D, type Tensor2D, tf } from "../core/tf.ts";
import { VitLoraError } from "../core/errors.ts";
import { formatShape, sameShape } from "../core/shapes.ts";
import type { BackendName } from "../backend/backend.ts";
import type { HubSettings } from "../hub/settings.ts";
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
import { isFloatDtype, type TensorStore } from "./safetensors.ts";
import { LoraLayer, takesTransposed, transposeWeight, ViTModel } from "./vit.ts";

/** Options of `loadClassifier` and `createClassifier` (and the web loaders). */
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
/**
 * A PEFT adapter from its `adapter_config.json` (parsed JSON) and its tensors, in either
 * generation's names (see `peft_format.ts`): the tensors' keys say which, and the config must
 * target exactly the modules they hold, as PEFT would load them. Anything else (keys of both
 * generations, a config naming the other generation's modules, a missing, extra or misshapen
 * tensor) is one clear error naming `where.config` or the store's path.
 */
export async function adapterFromStore(
  configJson: unknown,
  file: TensorStore,
  config: ViTConfig,
  where: { config: string; source: string },
): Promise<Adapter> {
  const configPath = where.config;
  const dir = where.source;
  const path = file.path;
  const lora = parseAdapterConfig(configJson, configPath);
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
export async function readChecked(
  file: TensorStore,
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

/** A loaded model: its parts, and the tensors to dispose should assembly fail. */
export type LoadedModel = Parts & { tensors: Map<string, Tensor> };

/**
 * A model from its `config.json` and `preprocessor_config.json` (parsed JSON; the latter may
 * be missing) and its checkpoint's tensors, each checked against the config as it is read:
 * either checkpoint shape (`ViTModel`, `ViTForImageClassification`).
 */
export async function modelFromStore(
  configJson: unknown,
  preprocessorJson: unknown | undefined,
  file: TensorStore,
  where: { config: string; preprocessor: string; source: string },
): Promise<LoadedModel> {
  const configPath = where.config;
  const source = where.source;
  const path = file.path;
  const config = parseViTConfig(configJson, configPath);
  const preprocessor = parsePreprocessorConfig(
    preprocessorJson ?? { size: config.image_size },
    where.preprocessor,
  );
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
    ? `${adapter!.source}/adapter_model.safetensors`
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
 * The parts of a model with new random weights, initialised as transformers does (normal std
 * `initializer_range` for weights, zero biases, unit LayerNorms).
 */
export function randomParts(
  config: ViTConfig,
  options: { seed?: number; preprocessor?: PreprocessorConfig } = {},
): Parts {
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
  return {
    config,
    preprocessor: options.preprocessor ?? parsePreprocessorConfig({ size: config.image_size }),
    baseModel: "(random init)",
    encoder,
  };
}

/**
 * A classifier from a loaded model and (optionally) an adapter; the loaded tensors are
 * released whether it succeeds or not.
 */
export function classifierFrom(
  model: LoadedModel,
  adapter: Adapter | undefined,
  options: ClassifierOptions,
): ViTClassifier {
  try {
    return assemble(model, adapter, options);
  } catch (e) {
    tf.dispose([...model.tensors.values()]);
    if (model.head) tf.dispose([model.head.weight, model.head.bias]);
    throw e;
  } finally {
    if (adapter) tf.dispose(adapterTensors(adapter));
  }
}
