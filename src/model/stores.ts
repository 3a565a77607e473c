/**
 * Reading a model and a PEFT adapter from tensor stores (safetensors files, in a folder, a
 * download or bytes), each tensor checked against the config as it is read: a model
 * checkpoint in either shape (`ViTModel`, as `google/vit-base-patch16-224-in21k`, or
 * `ViTForImageClassification`), an adapter in either generation's names (see
 * `peft_format.ts`). Any mismatch is one clear error naming the file. Assembling a classifier
 * from what is read is `assembly.ts`'s.
 *
 * @module
 */

import { type Tensor, type Tensor1D, type Tensor2D, tf } from "../core/tf.ts";
import { VitLoraError } from "../core/errors.ts";
import { formatShape, sameShape } from "../core/shapes.ts";
import {
  linearModules,
  linearShape,
  parsePreprocessorConfig,
  parseViTConfig,
  type PreprocessorConfig,
  type ViTConfig,
  vitTensorShapes,
} from "./config.ts";
import { type LoraConfig, type LoraTarget, loraTargets, parseAdapterConfig } from "./lora.ts";
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
import { takesTransposed, transposeWeight } from "./vit.ts";

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
