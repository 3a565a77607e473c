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

import { VitLoraError } from "../core/errors.ts";
import {
  LAYERS_PATTERN,
  leafTarget,
  moduleParts,
  PEFT_FORMATS,
  type PeftFormat,
  peftModuleName,
} from "./peft_format.ts";

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
  /**
   * Module names (matched as PEFT does: equal, or ending in `.name`) or one regular
   * expression, in either generation's names (`query` or `q_proj`, see `peft_format.ts`).
   */
  target_modules: string[] | string;
  /** Modules left out although `target_modules` names them (names, or one regular expression). */
  exclude_modules?: string[] | string | null;
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
  /**
   * Target modules (default `["query", "value"]`), in either generation's names: `query`
   * and `q_proj` name the same modules.
   */
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
 * import { loraConfig } from "./lora.ts";
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
    // what PEFT writes for a ViTForImageClassification, so that AutoPeftModel can load it
    auto_mapping: {
      base_model_class: "ViTForImageClassification",
      parent_library: "transformers.models.vit.modeling_vit",
    },
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
 * import { parseAdapterConfig } from "./lora.ts";
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
  if (typeof t === "string" && config.layers_to_transform != null) {
    throw new VitLoraError(
      `${source}: layers_to_transform cannot be used when target_modules is a regular expression (PEFT refuses it too)`,
    );
  }
  if (typeof t === "string" && config.layers_pattern != null) {
    throw new VitLoraError(
      `${source}: layers_pattern cannot be used when target_modules is a regular expression (PEFT refuses it too)`,
    );
  }
  if (isNonEmpty(config.layers_pattern) && config.layers_to_transform == null) {
    throw new VitLoraError(
      `${source}: layers_pattern is set but layers_to_transform is not (PEFT refuses it too)`,
    );
  }
  const l = config.layers_to_transform;
  if (
    l != null && !(Number.isSafeInteger(l) ||
      (Array.isArray(l) && l.every((x) => Number.isSafeInteger(x))))
  ) {
    throw new VitLoraError(
      `${source}: layers_to_transform must be a layer index or a list of them`,
    );
  }
  const x = config.exclude_modules;
  if (
    x != null && typeof x !== "string" &&
    !(Array.isArray(x) && x.every((e) => typeof e === "string"))
  ) {
    throw new VitLoraError(
      `${source}: exclude_modules must be a list of names or a regular expression`,
    );
  }
  for (const key of ["rank_pattern", "alpha_pattern"] as const) {
    const patterns = config[key];
    if (typeof patterns !== "object" || patterns === null || Array.isArray(patterns)) {
      throw new VitLoraError(`${source}: ${key} must map module patterns to numbers`);
    }
    for (const [pattern, value] of Object.entries(patterns)) {
      const ok = key === "rank_pattern"
        ? Number.isSafeInteger(value) && value > 0
        : typeof value === "number" && Number.isFinite(value);
      if (!ok) {
        throw new VitLoraError(
          `${source}: ${key}['${pattern}'] must be ${
            key === "rank_pattern" ? "a positive integer" : "a number"
          }, not ${JSON.stringify(value)}`,
        );
      }
    }
  }
  // fields of newer PEFT versions that change what the adapter computes
  const unsupported: [string, unknown][] = [
    ["lora_bias", config.lora_bias],
    ["use_qalora", config.use_qalora],
    ["target_parameters", isNonEmpty(config.target_parameters) ? config.target_parameters : null],
    ["layer_replication", config.layer_replication],
  ];
  for (const [field, value] of unsupported) {
    if (value !== undefined && value !== null && value !== false) {
      throw new VitLoraError(
        `${source}: ${field} ${JSON.stringify(value)} is not supported by this module`,
      );
    }
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

/**
 * A regular expression of a PEFT config (Python's `re` syntax) as a JavaScript one matching
 * whole names, as `re.fullmatch` does; named groups are translated.
 */
function fullMatcher(pattern: string, field: string): RegExp {
  const js = pattern.replace(/\(\?P</g, "(?<").replace(/\(\?P=(\w+)\)/g, "\\k<$1>");
  try {
    return new RegExp(`^(?:${js})$`);
  } catch (e) {
    throw new VitLoraError(
      `${field} '${pattern}' is not a regular expression this module can read: ${
        (e as Error).message
      }`,
    );
  }
}

function isNonEmpty(value: unknown): boolean {
  if (value === null || value === undefined || value === "") return false;
  return !(Array.isArray(value) && value.length === 0);
}

/** One linear module that a config puts LoRA on, with its own rank and scaling. */
export interface LoraTarget {
  /** The module, in this module's own naming, e.g. `encoder.layer.0.attention.attention.query`. */
  module: string;
  /** Rank. */
  r: number;
  /** Alpha. */
  alpha: number;
  /** `alpha / r`, or `alpha / √r` with rsLoRA. */
  scaling: number;
}

/** PEFT's `get_pattern_key`: the first key `k` of `patterns` with `(.*\.)?(k)$` matching `name`. */
function patternValue(patterns: Record<string, number>, name: string): number | undefined {
  for (const [key, value] of Object.entries(patterns)) {
    if (fullMatcher(`(?:.*\\.)?(?:${key})`, "a pattern key").test(name)) return value;
  }
  return undefined;
}

/** PEFT's `check_target_module_exists` for one module's full name. */
function targeted(config: LoraConfig, name: string): boolean {
  const x = config.exclude_modules;
  if (x) {
    const excluded = typeof x === "string"
      ? fullMatcher(x, "exclude_modules").test(name)
      : x.some((e) => name === e || name.endsWith(`.${e}`));
    if (excluded) return false;
  }
  const t = config.target_modules;
  if (typeof t === "string") return fullMatcher(t, "target_modules").test(name);
  if (t.includes(name)) return true;
  if (!t.some((e) => name.endsWith(`.${e}`))) return false;
  const layers = config.layers_to_transform;
  if (layers === null || layers === undefined || (Array.isArray(layers) && layers.length === 0)) {
    return true;
  }
  // the first numbered segment after the layer list's name (any name, when none is given)
  const patterns = config.layers_pattern;
  let index: string | undefined;
  if (!isNonEmpty(patterns)) {
    index = /^.*?\.[^.]*\.(\d+)\./.exec(name)?.[1];
  } else {
    for (const p of typeof patterns === "string" ? [patterns] : patterns!) {
      index = new RegExp(`^(?:|.*?\\.)${p}\\.(\\d+)\\.`).exec(name)?.[1];
      if (index !== undefined) break;
    }
  }
  if (index === undefined) return false;
  return typeof layers === "number" ? Number(index) === layers : layers.includes(Number(index));
}

/**
 * The modules a LoRA config targets among `modules` (this module's names,
 * `encoder.layer.N.attention.attention.query`, …), by PEFT's rules, with PEFT matching
 * against each module's full name in `format`'s naming (see `peft_format.ts`): a string
 * `target_modules` is a regular expression the full name must match; a list matches names
 * equal to an entry or ending in `.entry`, and then `layers_to_transform` keeps only those
 * layer indices; `exclude_modules` leaves modules out; `rank_pattern` and `alpha_pattern`
 * override r and alpha per module.
 *
 * Without `format`, a module is targeted when the config names it in either generation's
 * names (so `query` and `q_proj` mean the same): for configs a user writes, not for
 * adapters read from files, whose keys say which naming they use.
 *
 * @example
 * ```ts
 * import { loraConfig, loraTargets } from "./lora.ts";
 * const modules = [
 *   "encoder.layer.0.attention.attention.query",
 *   "encoder.layer.0.attention.attention.key",
 * ];
 * console.log(loraTargets(loraConfig({ r: 4, alpha: 8, targetModules: ["q_proj"] }), modules));
 * // [{ module: "encoder.layer.0.attention.attention.query", r: 4, alpha: 8, scaling: 2 }]
 * ```
 */
export function loraTargets(
  config: LoraConfig,
  modules: readonly string[],
  format?: PeftFormat,
): LoraTarget[] {
  const formats = format ? [format] : PEFT_FORMATS;
  const targets: LoraTarget[] = [];
  for (const module of modules) {
    const name = formats.map((f) => peftModuleName(module, f)).find((n) => targeted(config, n));
    if (name === undefined) continue;
    const r = patternValue(config.rank_pattern ?? {}, name) ?? config.r;
    const alpha = patternValue(config.alpha_pattern ?? {}, name) ?? config.lora_alpha;
    const scaling = config.use_rslora ? alpha / Math.sqrt(r) : alpha / r;
    targets.push({ module, r, alpha, scaling });
  }
  return targets;
}

function sameTargets(a: readonly LoraTarget[], b: readonly LoraTarget[]): boolean {
  return a.length === b.length &&
    a.every((t, i) => t.module === b[i].module && t.r === b[i].r && t.alpha === b[i].alpha);
}

/**
 * `config` written in `format`'s names: a config that PEFT, reading it with that generation
 * of transformers, resolves to exactly `targets` (the same modules, ranks and alphas).
 * `config` itself when it already does; otherwise `target_modules`, `layers_to_transform`,
 * `layers_pattern`, `rank_pattern` and `alpha_pattern` are rewritten: by kind of module
 * (`q_proj`, `fc1`, …) where that says it exactly, by full module name where not.
 *
 * @example
 * ```ts
 * import { loraConfig, loraConfigIn, loraTargets } from "./lora.ts";
 * const config = loraConfig({ r: 4, targetModules: ["query", "value"] });
 * const modules = ["encoder.layer.0.attention.attention.query", "encoder.layer.0.attention.attention.value"];
 * const t5 = loraConfigIn(config, loraTargets(config, modules), modules, "transformers-5");
 * console.log(t5.target_modules); // ["q_proj", "v_proj"]
 * ```
 */
export function loraConfigIn(
  config: LoraConfig,
  targets: readonly LoraTarget[],
  modules: readonly string[],
  format: PeftFormat,
): LoraConfig {
  if (sameTargets(loraTargets(config, modules, format), targets)) return config;
  const parts = targets.map((t) => ({ ...moduleParts(t.module), target: t }));
  const layerCount = new Set(modules.map((m) => moduleParts(m).layer)).size;
  const layers = [...new Set(parts.map((p) => p.layer))].sort((a, b) => a - b);
  const linears = [...new Set(parts.map((p) => p.linear))];
  const leaves = linears.map((l) => leafTarget(l, format));
  const fullName = (module: string) => peftModuleName(module, format);
  const base = {
    ...config,
    exclude_modules: null,
    rank_pattern: {},
    alpha_pattern: {},
  } as LoraConfig;
  const byKind = leaves.every((l) => l !== null)
    ? {
      target_modules: leaves as string[],
      layers_to_transform: layers.length === layerCount ? null : layers,
      layers_pattern: layers.length === layerCount ? null : LAYERS_PATTERN[format],
    }
    : undefined;
  const byName = {
    target_modules: targets.map((t) => fullName(t.module)),
    layers_to_transform: null,
    layers_pattern: null,
  };
  /** rank_pattern and alpha_pattern: by kind when every module of a kind agrees, else by name. */
  const patterns = (key: "r" | "alpha", fallback: number, kindKeys: boolean) => {
    const out: Record<string, number> = {};
    for (const linear of linears) {
      const ofKind = parts.filter((p) => p.linear === linear);
      const values = new Set(ofKind.map((p) => p.target[key]));
      const leaf = leafTarget(linear, format);
      if (kindKeys && leaf !== null && values.size === 1) {
        const [value] = values;
        if (value !== fallback) out[leaf] = value;
        continue;
      }
      for (const p of ofKind) {
        if (p.target[key] !== fallback) out[fullName(p.target.module)] = p.target[key];
      }
    }
    return out;
  };
  const candidates: LoraConfig[] = [];
  for (const targeting of [byKind, byName]) {
    if (!targeting) continue;
    for (const kindKeys of [true, false]) {
      candidates.push({
        ...base,
        ...targeting,
        rank_pattern: patterns("r", config.r, kindKeys),
        alpha_pattern: patterns("alpha", config.lora_alpha, kindKeys),
      });
    }
  }
  const fits = candidates.find((c) => sameTargets(loraTargets(c, modules, format), targets));
  if (!fits) {
    // unreachable: full names with per-module patterns always say it exactly
    throw new VitLoraError(`cannot write this LoRA config in ${format}'s names`);
  }
  return fits;
}
