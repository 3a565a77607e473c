/**
 * The model's configuration as transformers' `ViTConfig` writes it to `config.json`, and the
 * image processor's `preprocessor_config.json`; plus the table of tensors (names and shapes)
 * a config implies, shared by the checkpoint checks and the parameter count.
 *
 * @module
 */

import { VitLoraError } from "../core/errors.ts";

/** The activations `hidden_act` may name. */
export type HiddenAct = "gelu" | "gelu_new" | "gelu_pytorch_tanh" | "relu" | "silu" | "swish";

const HIDDEN_ACTS: readonly string[] = [
  "gelu",
  "gelu_new",
  "gelu_pytorch_tanh",
  "relu",
  "silu",
  "swish",
];

/**
 * A ViT's `config.json`, with transformers' `ViTConfig` defaults filled in. Fields this
 * module does not use are kept as read, so a config written back is the one read.
 */
export interface ViTConfig {
  /** Always `"vit"`. */
  model_type: "vit";
  /** Width of every token. */
  hidden_size: number;
  /** Number of encoder layers. */
  num_hidden_layers: number;
  /** Attention heads per layer; divides `hidden_size`. */
  num_attention_heads: number;
  /** Width of the MLP's hidden layer. */
  intermediate_size: number;
  /** MLP activation; `gelu` is the exact erf form. */
  hidden_act: HiddenAct;
  /** Dropout after the embeddings, the attention output and the MLP, in training. */
  hidden_dropout_prob: number;
  /** Dropout on the attention probabilities, in training. */
  attention_probs_dropout_prob: number;
  /** Standard deviation of new weights. */
  initializer_range: number;
  /** LayerNorm's epsilon. */
  layer_norm_eps: number;
  /** Input height and width. */
  image_size: number;
  /** Patch height and width (the patch-embedding convolution's kernel and stride). */
  patch_size: number;
  /** Input channels. */
  num_channels: number;
  /** Whether query, key and value have biases. */
  qkv_bias: boolean;
  /** Class names by index, when the config has a head. */
  id2label?: Record<string, string>;
  /** Class indices by name. */
  label2id?: Record<string, number>;
  /** The transformers classes the checkpoint was saved from. */
  architectures?: string[];
  /** Other fields, kept as read. */
  [field: string]: unknown;
}

/** transformers' `ViTConfig()` defaults: ViT-B/16 at 224×224. */
export const VIT_BASE_CONFIG: Readonly<ViTConfig> = Object.freeze({
  model_type: "vit",
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072,
  hidden_act: "gelu",
  hidden_dropout_prob: 0,
  attention_probs_dropout_prob: 0,
  initializer_range: 0.02,
  layer_norm_eps: 1e-12,
  image_size: 224,
  patch_size: 16,
  num_channels: 3,
  qkv_bias: true,
});

/**
 * Validates a parsed `config.json` (`source` names it in errors) and fills in defaults.
 *
 * @example
 * ```ts
 * import { parseViTConfig } from "@lora/vit";
 * const config = parseViTConfig({ hidden_size: 48, num_attention_heads: 3, num_hidden_layers: 2 });
 * console.log(config.intermediate_size); // 3072: transformers' default
 * ```
 */
export function parseViTConfig(json: unknown, source = "config.json"): ViTConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new VitLoraError(`${source}: not a JSON object`);
  }
  const raw = json as Record<string, unknown>;
  if (raw.model_type !== undefined && raw.model_type !== "vit") {
    throw new VitLoraError(
      `${source}: model_type is '${raw.model_type}', but this module runs ViT models ('vit')`,
    );
  }
  const config = { ...VIT_BASE_CONFIG, ...raw, model_type: "vit" } as ViTConfig;
  const positive = [
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "image_size",
    "patch_size",
    "num_channels",
  ] as const;
  for (const key of positive) {
    const v = config[key];
    if (!Number.isSafeInteger(v) || v <= 0) {
      throw new VitLoraError(
        `${source}: ${key} must be a positive integer, not ${JSON.stringify(v)}`,
      );
    }
  }
  for (const key of ["hidden_dropout_prob", "attention_probs_dropout_prob"] as const) {
    const v = config[key];
    if (typeof v !== "number" || !(v >= 0 && v < 1)) {
      throw new VitLoraError(
        `${source}: ${key} must be a number in [0, 1), not ${JSON.stringify(v)}`,
      );
    }
  }
  for (const key of ["layer_norm_eps", "initializer_range"] as const) {
    const v = config[key];
    if (typeof v !== "number" || !(v > 0)) {
      throw new VitLoraError(
        `${source}: ${key} must be a positive number, not ${JSON.stringify(v)}`,
      );
    }
  }
  if (config.hidden_size % config.num_attention_heads !== 0) {
    throw new VitLoraError(
      `${source}: hidden_size ${config.hidden_size} is not a multiple of num_attention_heads ${config.num_attention_heads}`,
    );
  }
  if (config.image_size < config.patch_size) {
    throw new VitLoraError(
      `${source}: image_size ${config.image_size} is smaller than patch_size ${config.patch_size}`,
    );
  }
  if (!HIDDEN_ACTS.includes(config.hidden_act)) {
    throw new VitLoraError(
      `${source}: hidden_act '${config.hidden_act}' is not supported (${HIDDEN_ACTS.join(", ")})`,
    );
  }
  if (typeof config.qkv_bias !== "boolean") {
    throw new VitLoraError(`${source}: qkv_bias must be true or false`);
  }
  if (config.id2label !== undefined) {
    const ok = typeof config.id2label === "object" && config.id2label !== null &&
      Object.values(config.id2label).every((v) => typeof v === "string");
    if (!ok) throw new VitLoraError(`${source}: id2label must map indices to names`);
  }
  return config;
}

/** The class names of a config's `id2label`, in index order, or undefined when it has none. */
export function configLabels(config: ViTConfig, source = "config.json"): string[] | undefined {
  if (!config.id2label) return undefined;
  const n = Object.keys(config.id2label).length;
  const labels: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = config.id2label[String(i)];
    if (name === undefined) {
      throw new VitLoraError(`${source}: id2label has ${n} entries but no entry for index ${i}`);
    }
    labels.push(name);
  }
  return labels;
}

/** Number of patches along each side, as the patch convolution (no padding) makes them. */
export function patchGrid(config: ViTConfig): number {
  return Math.floor(config.image_size / config.patch_size);
}

/** Tokens per image: one per patch plus the CLS token. */
export function numTokens(config: ViTConfig): number {
  return patchGrid(config) ** 2 + 1;
}

/**
 * Multiply-adds ×2 of one image's forward pass (the linear layers and attention): what
 * decides whether a model is worth ONNX Runtime's export or replicas' start-up.
 *
 * @example
 * ```ts
 * import { VIT_BASE_CONFIG } from "@lora/vit";
 * import { forwardFlops } from "@lora/vit/model";
 * console.log((forwardFlops(VIT_BASE_CONFIG) / 1e9).toFixed(1)); // 34.9
 * ```
 */
export function forwardFlops(config: ViTConfig): number {
  const { hidden_size: h, intermediate_size: i, num_hidden_layers: layers } = config;
  const tokens = numTokens(config);
  return 2 * layers * tokens * (4 * h * h + 2 * h * i + 2 * tokens * h);
}

/** The linear modules of one encoder layer, by their name inside `encoder.layer.N.`. */
export const LAYER_LINEARS = [
  "attention.attention.query",
  "attention.attention.key",
  "attention.attention.value",
  "attention.output.dense",
  "intermediate.dense",
  "output.dense",
] as const;

/**
 * The names of the linear modules LoRA may target (`encoder.layer.N.<linear>`, the names
 * checkpoints use on disk), in layer order.
 */
export function linearModules(config: ViTConfig): string[] {
  return Array.from(
    { length: config.num_hidden_layers },
    (_, i) => LAYER_LINEARS.map((m) => `encoder.layer.${i}.${m}`),
  ).flat();
}

/** `[out, in]` of one of {@link LAYER_LINEARS}. */
export function linearShape(config: ViTConfig, module: string): [number, number] {
  const h = config.hidden_size, m = config.intermediate_size;
  if (module.endsWith("intermediate.dense")) return [m, h];
  if (module.endsWith("output.dense") && !module.includes("attention")) return [h, m];
  return [h, h];
}

/**
 * The tensors of a `ViTModel` checkpoint without its pooler, named as transformers names them
 * (no `vit.` prefix), with their shapes, in the order transformers registers them.
 *
 * @example
 * ```ts
 * import { VIT_BASE_CONFIG, vitTensorShapes } from "./config.ts";
 * const shapes = vitTensorShapes(VIT_BASE_CONFIG);
 * console.log(shapes.get("embeddings.patch_embeddings.projection.weight")); // [768, 3, 16, 16]
 * ```
 */
export function vitTensorShapes(config: ViTConfig): Map<string, number[]> {
  const h = config.hidden_size, p = config.patch_size;
  const shapes = new Map<string, number[]>([
    ["embeddings.cls_token", [1, 1, h]],
    ["embeddings.position_embeddings", [1, numTokens(config), h]],
    ["embeddings.patch_embeddings.projection.weight", [h, config.num_channels, p, p]],
    ["embeddings.patch_embeddings.projection.bias", [h]],
  ]);
  for (let i = 0; i < config.num_hidden_layers; i++) {
    const layer = `encoder.layer.${i}`;
    for (const module of LAYER_LINEARS) {
      const [out, inp] = linearShape(config, module);
      shapes.set(`${layer}.${module}.weight`, [out, inp]);
      const isQkv = module.startsWith("attention.attention.");
      if (!isQkv || config.qkv_bias) shapes.set(`${layer}.${module}.bias`, [out]);
    }
    for (const norm of ["layernorm_before", "layernorm_after"]) {
      shapes.set(`${layer}.${norm}.weight`, [h]);
      shapes.set(`${layer}.${norm}.bias`, [h]);
    }
  }
  shapes.set("layernorm.weight", [h]);
  shapes.set("layernorm.bias", [h]);
  return shapes;
}

/** The image processor's settings from `preprocessor_config.json`. */
export interface PreprocessorConfig {
  /** Per-channel mean subtracted after rescaling. */
  image_mean: number[];
  /** Per-channel standard deviation divided by after subtracting the mean. */
  image_std: number[];
  /** Output height and width in pixels. */
  size: { height: number; width: number };
  /** Whether images are resized to `size`. */
  do_resize: boolean;
  /** Whether pixel values are multiplied by `rescale_factor`. */
  do_rescale: boolean;
  /** The rescale factor, 1/255. */
  rescale_factor: number;
  /** Whether `image_mean`/`image_std` are applied. */
  do_normalize: boolean;
  /** PIL resampling filter (2: bilinear). */
  resample: number;
}

/**
 * The `preprocessor_config.json` a saved folder holds: a `ViTImageProcessor` with these
 * settings, keys in alphabetical order as transformers writes them.
 *
 * @example
 * ```ts
 * import { parsePreprocessorConfig, preprocessorConfigJson } from "./config.ts";
 * const json = preprocessorConfigJson(parsePreprocessorConfig({ size: 32 }));
 * console.log(json.image_processor_type); // "ViTImageProcessor"
 * ```
 */
export function preprocessorConfigJson(p: PreprocessorConfig): Record<string, unknown> {
  return {
    do_normalize: p.do_normalize,
    do_rescale: p.do_rescale,
    do_resize: p.do_resize,
    image_mean: p.image_mean,
    image_processor_type: "ViTImageProcessor",
    image_std: p.image_std,
    resample: p.resample,
    rescale_factor: p.rescale_factor,
    size: p.size,
  };
}

/**
 * Validates a parsed `preprocessor_config.json`, with `ViTImageProcessor`'s defaults
 * (224×224, mean and std 0.5, bilinear). `size` may be a number or `{height, width}`.
 *
 * @example
 * ```ts
 * import { parsePreprocessorConfig } from "./config.ts";
 * const p = parsePreprocessorConfig({ size: 32, image_mean: [0.5, 0.5, 0.5] });
 * console.log(p.size); // { height: 32, width: 32 }
 * ```
 */
export function parsePreprocessorConfig(
  json: unknown,
  source = "preprocessor_config.json",
): PreprocessorConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new VitLoraError(`${source}: not a JSON object`);
  }
  const raw = json as Record<string, unknown>;
  const triple = (key: string, fallback: number[]): number[] => {
    const v = raw[key] ?? fallback;
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === "number")) {
      throw new VitLoraError(`${source}: ${key} must be three numbers, not ${JSON.stringify(v)}`);
    }
    return v;
  };
  let size: { height: number; width: number };
  const s = raw.size ?? 224;
  if (typeof s === "number") size = { height: s, width: s };
  else if (typeof s === "object" && s !== null && "height" in s && "width" in s) {
    size = { height: Number(s.height), width: Number(s.width) };
  } else if (typeof s === "object" && s !== null && "shortest_edge" in s) {
    const e = Number(s.shortest_edge);
    size = { height: e, width: e };
  } else throw new VitLoraError(`${source}: size ${JSON.stringify(s)} is not understood`);
  if (!(size.height > 0 && size.width > 0)) {
    throw new VitLoraError(`${source}: size must be positive, not ${JSON.stringify(s)}`);
  }
  const std = triple("image_std", [0.5, 0.5, 0.5]);
  if (std.some((x) => x === 0)) throw new VitLoraError(`${source}: image_std has a zero`);
  return {
    image_mean: triple("image_mean", [0.5, 0.5, 0.5]),
    image_std: std,
    size,
    do_resize: raw.do_resize !== false,
    do_rescale: raw.do_rescale !== false,
    rescale_factor: typeof raw.rescale_factor === "number" ? raw.rescale_factor : 1 / 255,
    do_normalize: raw.do_normalize !== false,
    resample: typeof raw.resample === "number" ? raw.resample : 2,
  };
}
