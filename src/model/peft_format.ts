/**
 * The two generations of names a PEFT adapter for ViT uses.
 *
 * transformers 5 renamed ViT's modules in memory, and PEFT names an adapter's tensors and
 * matches its `target_modules` by the names in memory. So the same LoRA has two spellings:
 *
 * | module (this module's name, as on disk) | transformers 4 (the seed era)              | transformers 5 (today)        |
 * | --------------------------------------- | ------------------------------------------ | ----------------------------- |
 * | `encoder.layer.N.attention.attention.query` | `vit.encoder.layer.N.attention.attention.query` | `vit.layers.N.attention.q_proj` |
 * | `….attention.attention.key` / `value`   | `….attention.attention.key` / `value`      | `….attention.k_proj` / `v_proj` |
 * | `….attention.output.dense`              | `….attention.output.dense`                 | `….attention.o_proj`          |
 * | `….intermediate.dense` / `output.dense` | `….intermediate.dense` / `output.dense`    | `….mlp.fc1` / `mlp.fc2`       |
 *
 * Base checkpoints on disk keep the transformers 4 names in both generations (transformers 5
 * converts them as it loads and saves), so merged checkpoints need no choice. Adapters do:
 * PEFT 0.21 on transformers 5 writes and reads the new names, PEFT on transformers 4 the old.
 *
 * @module
 */

import { LAYER_LINEARS } from "./config.ts";
import { VitLoraError } from "../core/errors.ts";

/**
 * The naming of a PEFT adapter: `transformers-5` (what PEFT writes and reads on today's
 * transformers; the default) or `transformers-4` (the seed era's, read by PEFT on
 * transformers 4).
 */
export type PeftFormat = "transformers-5" | "transformers-4";

/** Both formats, the default first. */
export const PEFT_FORMATS: readonly PeftFormat[] = ["transformers-5", "transformers-4"];

/** The format adapters are written in unless asked otherwise. */
export const DEFAULT_PEFT_FORMAT: PeftFormat = "transformers-5";

/**
 * Checks a `--peft-format` value.
 *
 * @example
 * ```ts
 * import { parsePeftFormat } from "./peft_format.ts";
 * console.log(parsePeftFormat("transformers-4")); // "transformers-4"
 * ```
 */
export function parsePeftFormat(value: string, what = "--peft-format"): PeftFormat {
  if ((PEFT_FORMATS as readonly string[]).includes(value)) return value as PeftFormat;
  throw new VitLoraError(
    `${what}: '${value}' is not a PEFT format (${PEFT_FORMATS.join(" or ")})`,
  );
}

/** One of {@link LAYER_LINEARS}: a linear module of an encoder layer. */
export type LayerLinear = (typeof LAYER_LINEARS)[number];

/** Each layer linear's name inside `layers.N.` under transformers 5. */
const T5_NAMES: Readonly<Record<LayerLinear, string>> = {
  "attention.attention.query": "attention.q_proj",
  "attention.attention.key": "attention.k_proj",
  "attention.attention.value": "attention.v_proj",
  "attention.output.dense": "attention.o_proj",
  "intermediate.dense": "mlp.fc1",
  "output.dense": "mlp.fc2",
};

/**
 * The shortest `target_modules` entry that names one kind of layer linear (and no other) by
 * PEFT's suffix rule, in each format. transformers 4's MLP output (`output.dense`) has none:
 * every suffix of it also ends `attention.output.dense`.
 */
const LEAF_TARGETS: Readonly<Record<PeftFormat, Readonly<Record<LayerLinear, string | null>>>> = {
  "transformers-5": {
    "attention.attention.query": "q_proj",
    "attention.attention.key": "k_proj",
    "attention.attention.value": "v_proj",
    "attention.output.dense": "o_proj",
    "intermediate.dense": "fc1",
    "output.dense": "fc2",
  },
  "transformers-4": {
    "attention.attention.query": "query",
    "attention.attention.key": "key",
    "attention.attention.value": "value",
    "attention.output.dense": "attention.output.dense",
    "intermediate.dense": "intermediate.dense",
    "output.dense": null,
  },
};

/** The name of the layer list that PEFT's `layers_pattern` names, in each format. */
export const LAYERS_PATTERN: Readonly<Record<PeftFormat, string>> = {
  "transformers-5": "layers",
  "transformers-4": "layer",
};

/** A module name of this module's own (`encoder.layer.N.<linear>`), taken apart. */
export interface ModuleParts {
  /** The layer index. */
  layer: number;
  /** Which linear of the layer. */
  linear: LayerLinear;
}

const OWN_NAME = /^encoder\.layer\.(\d+)\.(.+)$/;

/** Splits a module name of this module's own (`encoder.layer.3.attention.attention.query`). */
export function moduleParts(module: string): ModuleParts {
  const m = OWN_NAME.exec(module);
  if (!m || !(LAYER_LINEARS as readonly string[]).includes(m[2])) {
    throw new VitLoraError(`'${module}' is not a linear module of a ViT encoder layer`);
  }
  return { layer: Number(m[1]), linear: m[2] as LayerLinear };
}

/**
 * A module's full name inside `ViTForImageClassification` (what PEFT matches
 * `target_modules` against) under `format`'s naming.
 *
 * @example
 * ```ts
 * import { peftModuleName } from "@lora/vit/model";
 * const own = "encoder.layer.3.attention.attention.query";
 * console.log(peftModuleName(own, "transformers-5")); // vit.layers.3.attention.q_proj
 * console.log(peftModuleName(own, "transformers-4")); // vit.encoder.layer.3.attention.attention.query
 * ```
 */
export function peftModuleName(module: string, format: PeftFormat): string {
  if (format === "transformers-4") return `vit.${module}`;
  const { layer, linear } = moduleParts(module);
  return `vit.layers.${layer}.${T5_NAMES[linear]}`;
}

/**
 * The key of a LoRA tensor in PEFT's `adapter_model.safetensors`, in `format`'s naming.
 *
 * @example
 * ```ts
 * import { peftLoraKey } from "@lora/vit/model";
 * const own = "encoder.layer.0.attention.attention.query";
 * console.log(peftLoraKey(own, "lora_A"));
 * // base_model.model.vit.layers.0.attention.q_proj.lora_A.weight
 * console.log(peftLoraKey(own, "lora_A", "transformers-4"));
 * // base_model.model.vit.encoder.layer.0.attention.attention.query.lora_A.weight
 * ```
 */
export function peftLoraKey(
  module: string,
  which: "lora_A" | "lora_B",
  format: PeftFormat = DEFAULT_PEFT_FORMAT,
): string {
  return `base_model.model.${peftModuleName(module, format)}.${which}.weight`;
}

/** The keys of the classifier, trained in full, in PEFT's `adapter_model.safetensors`. */
export const PEFT_CLASSIFIER_KEYS = {
  weight: "base_model.model.classifier.weight",
  bias: "base_model.model.classifier.bias",
} as const;

/** What a key of `adapter_model.safetensors` names. */
export type PeftKey =
  | { kind: "lora"; module: string; which: "lora_A" | "lora_B"; format: PeftFormat }
  | { kind: "classifier"; part: "weight" | "bias" }
  | { kind: "other" };

const T5_KEY = /^base_model\.model\.vit\.layers\.(\d+)\.(.+)\.(lora_A|lora_B)\.weight$/;
const T4_KEY = /^base_model\.model\.vit\.(encoder\.layer\.\d+\..+)\.(lora_A|lora_B)\.weight$/;

/**
 * Reads a key of `adapter_model.safetensors`: a LoRA tensor (its module in this module's own
 * naming, and the format the key is in), the classifier, or something else.
 *
 * @example
 * ```ts
 * import { parsePeftKey } from "@lora/vit/model";
 * console.log(parsePeftKey("base_model.model.vit.layers.2.mlp.fc1.lora_B.weight"));
 * // { kind: "lora", module: "encoder.layer.2.intermediate.dense", which: "lora_B", format: "transformers-5" }
 * ```
 */
export function parsePeftKey(key: string): PeftKey {
  if (key === PEFT_CLASSIFIER_KEYS.weight) return { kind: "classifier", part: "weight" };
  if (key === PEFT_CLASSIFIER_KEYS.bias) return { kind: "classifier", part: "bias" };
  const t5 = T5_KEY.exec(key);
  if (t5) {
    const linear = (Object.keys(T5_NAMES) as LayerLinear[]).find((l) => T5_NAMES[l] === t5[2]);
    if (linear) {
      const which = t5[3] as "lora_A" | "lora_B";
      return {
        kind: "lora",
        module: `encoder.layer.${t5[1]}.${linear}`,
        which,
        format: "transformers-5",
      };
    }
    return { kind: "other" };
  }
  const t4 = T4_KEY.exec(key);
  const own = t4 && OWN_NAME.exec(t4[1]);
  if (t4 && own && (LAYER_LINEARS as readonly string[]).includes(own[2])) {
    return {
      kind: "lora",
      module: t4[1],
      which: t4[2] as "lora_A" | "lora_B",
      format: "transformers-4",
    };
  }
  return { kind: "other" };
}

/**
 * The format of an adapter's LoRA keys, or undefined when it has none. Keys of both
 * generations in one file are an error naming `source`: no PEFT version loads such a file.
 */
export function keysFormat(keys: Iterable<string>, source: string): PeftFormat | undefined {
  const seen = new Map<PeftFormat, string>();
  for (const key of keys) {
    const k = parsePeftKey(key);
    if (k.kind === "lora" && !seen.has(k.format)) seen.set(k.format, key);
  }
  if (seen.size > 1) {
    throw new VitLoraError(
      `${source}: mixes transformers 5 names ('${
        seen.get("transformers-5")
      }') with transformers 4 names ('${
        seen.get("transformers-4")
      }'); PEFT loads neither kind of key from such a file`,
    );
  }
  return seen.keys().next().value;
}

/**
 * The `target_modules` entry that names exactly one kind of layer linear by PEFT's suffix
 * rule in `format`, or null when there is none.
 */
export function leafTarget(linear: LayerLinear, format: PeftFormat): string | null {
  return LEAF_TARGETS[format][linear];
}
