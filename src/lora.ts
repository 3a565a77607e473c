/**
 * LoRA (Hu et al., 2021) as PEFT implements it: a frozen linear layer `W x + b` gains a
 * trainable low-rank branch, `W x + b + B(A(dropout(x))) · alpha / r`, with `A` `[r, in]`
 * initialised kaiming-uniform (a = √5, PyTorch's Linear default) and `B` `[out, r]` zeros, so
 * training starts from the base model's output.
 *
 * This file holds PEFT's `adapter_config.json` (parse, defaults, write), PEFT's rules for
 * which modules a config targets, and the adapter tensor names of `adapter_model.safetensors`.
 *
 * @module
 */

import { VitLoraError } from "./errors.ts";

/** PEFT's `LoraConfig` as saved in `adapter_config.json`. */
export interface LoraConfig {
  /** Always `"LORA"`. */
  peft_type: "LORA";
  /** PEFT's task type; `null` for image classification as the reference recipe saves it. */
  task_type: string | null;
  /** Rank of the low-rank update. */
  r: number;
  /** Scaling numerator: the branch is multiplied by `lora_alpha / r` (or `/ √r` with rsLoRA). */
  lora_alpha: number;
  /** Dropout on the branch's input, in training only. */
  lora_dropout: number;
  /** Module names (matched as PEFT does: equal, or ending in `.name`) or one regular expression. */
  target_modules: string[] | string;
  /** Modules trained in full and saved with the adapter: `["classifier"]`. */
  modules_to_save: string[] | null;
  /** Which biases are trained: only `"none"` is supported. */
  bias: "none";
  /** Where the base model came from. */
  base_model_name_or_path: string | null;
  /** The base model's revision, when it came from the Hub. */
  revision: string | null;
  /** Whether the base weights are stored `[in, out]`; false for ViT. */
  fan_in_fan_out: boolean;
  /** PEFT's initialisation flag; true is the kaiming-uniform A, zero B initialisation. */
  init_lora_weights: boolean | string;
  /** Saved by PEFT for inference-only adapters. */
  inference_mode: boolean;
  /** Rank-stabilised LoRA: scale by `lora_alpha / √r`. */
  use_rslora: boolean;
  /** DoRA; not supported. */
  use_dora: boolean;
  /** Only these layer indices get LoRA (null: all). */
  layers_to_transform: number[] | number | null;
  /** The name of the layer list that `layers_to_transform` indexes (`layer` for ViT). */
  layers_pattern: string | string[] | null;
  /** Per-module rank overrides, by module-name pattern. */
  rank_pattern: Record<string, number>;
  /** Per-module alpha overrides, by module-name pattern. */
  alpha_pattern: Record<string, number>;
  /** Other fields, kept as read. */
  [field: string]: unknown;
}

/** The options a user sets for a new adapter; the rest of {@link LoraConfig} follows. */
export interface LoraOptions {
  /** Rank (default 32, the reference recipe). */
  r?: number;
  /** Alpha (default 16). */
  alpha?: number;
  /** Dropout on the branch's input (default 0.1). */
  dropout?: number;
  /** Target modules (default `["query", "value"]`). */
  targetModules?: string[];
  /** Use rank-stabilised scaling `alpha / √r` (default false). */
  useRslora?: boolean;
}

/**
 * A full PEFT config for a new adapter, with the reference recipe's defaults: r 32, alpha 16,
 * dropout 0.1 on `query` and `value`, the classifier trained in full.
 *
 * @example
 * ```ts
 * import { loraConfig } from "@lora/vit";
 * const config = loraConfig({ r: 8, alpha: 16 });
 * console.log(config.target_modules); // ["query", "value"]
 * ```
 */
export function loraConfig(
  options: LoraOptions = {},
  baseModel: string | null = null,
): LoraConfig {
  const config: LoraConfig = {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModel,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: options.alpha ?? 16,
    lora_dropout: options.dropout ?? 0.1,
    modules_to_save: ["classifier"],
    peft_type: "LORA",
    r: options.r ?? 32,
    rank_pattern: {},
    revision: null,
    target_modules: options.targetModules ?? ["query", "value"],
    task_type: null,
    use_dora: false,
    use_rslora: options.useRslora ?? false,
  };
  return parseAdapterConfig(config, "LoRA options");
}

/**
 * Validates a parsed `adapter_config.json` (`source` names it in errors), filling PEFT's
 * defaults for fields older PEFT versions did not write.
 *
 * @example
 * ```ts
 * import { parseAdapterConfig } from "@lora/vit";
 * const c = parseAdapterConfig({ peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["query"] });
 * console.log(c.r, c.lora_alpha); // 4 8
 * ```
 */
export function parseAdapterConfig(json: unknown, source = "adapter_config.json"): LoraConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new VitLoraError(`${source}: not a JSON object`);
  }
  const raw = json as Record<string, unknown>;
  if (raw.peft_type === undefined) {
    throw new VitLoraError(`${source}: no peft_type: not a PEFT adapter config`);
  }
  if (raw.peft_type !== "LORA") {
    throw new VitLoraError(
      `${source}: peft_type is '${raw.peft_type}', but only LoRA adapters ('LORA') are supported`,
    );
  }
  const config = {
    task_type: null,
    lora_dropout: 0,
    modules_to_save: null,
    bias: "none",
    base_model_name_or_path: null,
    revision: null,
    fan_in_fan_out: false,
    init_lora_weights: true,
    inference_mode: true,
    use_rslora: false,
    use_dora: false,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    ...raw,
  } as LoraConfig;
  config.r ??= 8;
  config.lora_alpha ??= 8;
  if (!Number.isSafeInteger(config.r) || config.r <= 0) {
    throw new VitLoraError(
      `${source}: r must be a positive integer, not ${JSON.stringify(config.r)}`,
    );
  }
  if (typeof config.lora_alpha !== "number" || !Number.isFinite(config.lora_alpha)) {
    throw new VitLoraError(`${source}: lora_alpha must be a number`);
  }
  if (
    typeof config.lora_dropout !== "number" ||
    !(config.lora_dropout >= 0 && config.lora_dropout < 1)
  ) {
    throw new VitLoraError(`${source}: lora_dropout must be in [0, 1)`);
  }
  const t = config.target_modules;
  const okTargets = typeof t === "string" ||
    (Array.isArray(t) && t.length > 0 && t.every((x) => typeof x === "string"));
  if (!okTargets) {
    throw new VitLoraError(
      `${source}: target_modules must be a list of module names or a regular expression`,
    );
  }
  if (config.bias !== "none") {
    throw new VitLoraError(`${source}: bias '${config.bias}' is not supported (only "none")`);
  }
  if (config.use_dora) {
    throw new VitLoraError(`${source}: DoRA adapters (use_dora) are not supported`);
  }
  if (config.fan_in_fan_out) {
    throw new VitLoraError(
      `${source}: fan_in_fan_out is true, but ViT's linear layers are [out, in]`,
    );
  }
  const mts = config.modules_to_save ?? [];
  if (!Array.isArray(mts) || mts.some((m) => m !== "classifier")) {
    throw new VitLoraError(
      `${source}: modules_to_save ${JSON.stringify(mts)} is not supported (only ["classifier"])`,
    );
  }
  return config;
}

/** One linear module that a config puts LoRA on, with its own rank and scaling. */
export interface LoraTarget {
  /** Module name inside the ViT, e.g. `encoder.layer.0.attention.attention.query`. */
  module: string;
  /** Rank. */
  r: number;
  /** Alpha. */
  alpha: number;
  /** `alpha / r`, or `alpha / √r` with rsLoRA. */
  scaling: number;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** PEFT's pattern lookup for rank_pattern/alpha_pattern: `(.*\.)?KEY$` matched from the start. */
function patternValue(
  patterns: Record<string, number>,
  name: string,
): number | undefined {
  for (const [key, value] of Object.entries(patterns)) {
    if (new RegExp(`^(.*\\.)?${key}$`).test(name)) return value;
  }
  return undefined;
}

/**
 * The modules a LoRA config targets among `modules` (names as inside a
 * `ViTForImageClassification`, without `vit.`), by PEFT's rules: a string `target_modules` is
 * a regular expression the full name must match; a list matches names equal to an entry or
 * ending in `.entry`; `layers_to_transform` keeps only those layer indices; `rank_pattern`
 * and `alpha_pattern` override r and alpha per module.
 *
 * @example
 * ```ts
 * import { loraConfig, loraTargets } from "@lora/vit";
 * const targets = loraTargets(loraConfig({ r: 4, alpha: 8 }), [
 *   "encoder.layer.0.attention.attention.query",
 *   "encoder.layer.0.attention.attention.key",
 * ]);
 * console.log(targets); // [{ module: "…query", r: 4, alpha: 8, scaling: 2 }]
 * ```
 */
export function loraTargets(config: LoraConfig, modules: readonly string[]): LoraTarget[] {
  const t = config.target_modules;
  // PEFT matches against the name inside the whole model, which for ViT starts with "vit.".
  const full = (m: string) => `vit.${m}`;
  const matches = typeof t === "string"
    ? (m: string) => new RegExp(`^(?:${t})$`).test(full(m))
    : (m: string) => t.some((x) => full(m) === x || full(m).endsWith(`.${x}`));
  let layers: number[] | null = null;
  if (config.layers_to_transform !== null && config.layers_to_transform !== undefined) {
    layers = typeof config.layers_to_transform === "number"
      ? [config.layers_to_transform]
      : config.layers_to_transform;
  }
  const layerPatterns = config.layers_pattern === null || config.layers_pattern === undefined
    ? ["[^.]*"]
    : (Array.isArray(config.layers_pattern) ? config.layers_pattern : [config.layers_pattern])
      .map(escapeRegExp);
  const targets: LoraTarget[] = [];
  for (const module of modules) {
    if (!matches(module)) continue;
    if (layers) {
      const index = layerPatterns
        .map((p) => full(module).match(new RegExp(`.*\\.${p}\\.(\\d+)\\.`)))
        .find((m) => m)?.[1];
      if (index === undefined || !layers.includes(Number(index))) continue;
    }
    const r = patternValue(config.rank_pattern ?? {}, full(module)) ?? config.r;
    const alpha = patternValue(config.alpha_pattern ?? {}, full(module)) ?? config.lora_alpha;
    const scaling = config.use_rslora ? alpha / Math.sqrt(r) : alpha / r;
    targets.push({ module, r, alpha, scaling });
  }
  return targets;
}

/**
 * The key of a LoRA tensor in PEFT's `adapter_model.safetensors`.
 *
 * @example
 * ```ts
 * import { peftLoraKey } from "@lora/vit";
 * console.log(peftLoraKey("encoder.layer.0.attention.attention.query", "lora_A"));
 * // base_model.model.vit.encoder.layer.0.attention.attention.query.lora_A.weight
 * ```
 */
export function peftLoraKey(module: string, which: "lora_A" | "lora_B"): string {
  return `base_model.model.vit.${module}.${which}.weight`;
}

/** The keys of the classifier, trained in full, in PEFT's `adapter_model.safetensors`. */
export const PEFT_CLASSIFIER_KEYS = {
  weight: "base_model.model.classifier.weight",
  bias: "base_model.model.classifier.bias",
} as const;
