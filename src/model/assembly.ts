/**
 * Assembling a classifier from its parts, wherever they come from (files, the Hub, URLs in a
 * web page, bytes): a model checkpoint and a PEFT adapter read and checked by `stores.ts`, or
 * new random weights from a config; the LoRA config in the chosen naming, new LoRA and head
 * weights where none were read, and the precision it runs in. Reading from folders and the
 * Hub is `loading.ts`'s.
 *
 * @module
 */

import { STREAMS } from "../core/random.ts";
import { type Tensor, type Tensor1D, type Tensor2D, tf } from "../core/tf.ts";
import { VitLoraError } from "../core/errors.ts";
import { numel } from "../core/shapes.ts";
import type { BackendName } from "../backend/backend.ts";
import type { HubSettings } from "../hub/settings.ts";
import {
  configLabels,
  linearModules,
  linearShape,
  parsePreprocessorConfig,
  type PreprocessorConfig,
  type ViTConfig,
  vitTensorShapes,
} from "./config.ts";
import { ViTClassifier } from "./classifier.ts";
import { loraConfig, loraConfigIn, type LoraOptions, loraTargets } from "./lora.ts";
import { DEFAULT_PEFT_FORMAT, type PeftFormat } from "./peft_format.ts";
import { LoraLayer, takesTransposed, ViTModel } from "./vit.ts";
import { type Adapter, adapterTensors, type LoadedModel, type Parts } from "./stores.ts";
import { type PrecisionOption, resolvePrecision } from "./precision.ts";

export {
  type Adapter,
  adapterFromStore,
  adapterTensors,
  type LoadedModel,
  modelFromStore,
  type Parts,
  readChecked,
} from "./stores.ts";

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
   * The arithmetic: `fp32` (default); `fp16`, PyTorch's mixed precision as Trainer's
   * `fp16=True` runs it (float16 frozen weights and products with float32 accumulation,
   * LoRA, the head and the optimizer state float32), which needs WebGPU with `shader-f16`
   * (elsewhere one line says so, and it runs in fp32); `auto`, fp16 on a hardware GPU that
   * offers it, fp32 otherwise. {@link ViTClassifier.precision} says which it runs in.
   */
  precision?: PrecisionOption;
  /**
   * Replicas of the model in workers, so that the CPU path (tfjs-wasm, one thread an isolate)
   * uses more than one core: batches are split between this isolate and the replicas (see
   * `parallel.ts`). Default: on the wasm backend, one per further core (up
   * to 3) for models whose forward pass costs over a GFLOP an image (ViT-B/16: 17.5); none
   * otherwise. 0 turns them off.
   */
  replicas?: number;
}

/**
 * A deterministic stream of seeds for tfjs's seeded random ops, one of the run's named streams
 * (`STREAMS` in `core/random.ts`: new encoder, head and adapter weights each their own, so that
 * e.g. adding LoRA does not change a new head's weights).
 */
function seeds(seed: number, stream: number): () => number {
  let i = 0;
  return () => seed * 1_000_003 + stream * 10_007 + ++i;
}

export function assemble(
  parts: Parts,
  adapter: Adapter | undefined,
  options: ClassifierOptions,
): ViTClassifier {
  const { config } = parts;
  const loraSeed = seeds(options.seed ?? 0, STREAMS.loraInit);
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

  const precision = resolvePrecision(options.precision, config);
  const vit = ViTModel.fromTensors(config, parts.encoder, { precision });
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
      seeds(options.seed ?? 0, STREAMS.headInit)(),
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
    precision,
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
  const nextSeed = seeds(options.seed ?? 0, STREAMS.encoderInit);
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
