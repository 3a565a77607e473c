/**
 * The arithmetic a classifier runs in: `fp32`, or `fp16`, PyTorch's mixed precision as
 * Trainer's `fp16=True` uses it (float16 weights and products, float32 accumulation, what
 * trains and its optimizer state float32; see `half_layer.ts`), which needs WebGPU with the
 * adapter's `shader-f16` feature. `auto` is `fp16` on a hardware GPU that offers it, `fp32`
 * elsewhere.
 *
 * @module
 */

import { VitLoraError } from "../core/errors.ts";
import { tf } from "../core/tf.ts";
import { webgpuInfo } from "../backend/backend.ts";
import type { ViTConfig } from "./config.ts";

/** The arithmetic a classifier runs in. */
export type Precision = "fp32" | "fp16";

/** What a user may ask for: a precision, or `auto`. */
export type PrecisionOption = Precision | "auto";

/** The choices, for flag validation. */
export const PRECISIONS: readonly PrecisionOption[] = ["fp32", "fp16", "auto"];

/**
 * Checks a `--precision` value.
 *
 * @example
 * ```ts
 * import { parsePrecision } from "./precision.ts";
 * console.log(parsePrecision("fp16")); // "fp16"
 * ```
 */
export function parsePrecision(value: string, source = "--precision"): PrecisionOption {
  if ((PRECISIONS as readonly string[]).includes(value)) return value as PrecisionOption;
  throw new VitLoraError(
    `${source}: unknown precision '${value}' (choose ${PRECISIONS.join(", ")})`,
  );
}

/**
 * Why float16 cannot run here for `config`, or undefined when it can: it needs the WebGPU
 * backend, an adapter with `shader-f16`, and even sizes (the kernels pack two halves a word).
 */
export function fp16Unavailable(config: ViTConfig): string | undefined {
  const backend = tf.getBackend();
  if (backend !== "webgpu") return `the ${backend} backend has no float16 kernels (WebGPU has)`;
  const info = webgpuInfo();
  if (!info?.f16) {
    return `the WebGPU adapter (${info?.adapter ?? "unknown"}) does not offer shader-f16`;
  }
  const head = config.hidden_size / config.num_attention_heads;
  if (head % 2 !== 0 || config.intermediate_size % 2 !== 0) {
    return `the float16 kernels need an even head size and intermediate_size (the model has ${head} and ${config.intermediate_size})`;
  }
  if (config.attention_probs_dropout_prob > 0) {
    return `the float16 attention has no dropout on its probabilities (attention_probs_dropout_prob is ${config.attention_probs_dropout_prob})`;
  }
  return undefined;
}

/**
 * The precision a classifier of `config` runs in when `requested` is asked for, on the
 * current backend: `fp32` as asked; `fp16` where it can run, else `fp32` with one line on
 * stderr saying why; `auto`, `fp16` on a hardware GPU where it can run, else `fp32` (quietly).
 *
 * @example
 * ```ts ignore
 * import { initBackend, VIT_BASE_CONFIG } from "@lora/vit";
 * import { resolvePrecision } from "./precision.ts";
 *
 * await initBackend("webgpu");
 * // "fp16" on a hardware GPU with shader-f16; "fp32" elsewhere (a software adapter: llvmpipe)
 * console.log(resolvePrecision("auto", VIT_BASE_CONFIG));
 * ```
 */
export function resolvePrecision(
  requested: PrecisionOption | undefined,
  config: ViTConfig,
  options: { quiet?: boolean } = {},
): Precision {
  if (requested === undefined || requested === "fp32") return "fp32";
  const why = fp16Unavailable(config);
  if (requested === "auto") return why || webgpuInfo()?.software ? "fp32" : "fp16";
  if (why) {
    if (!options.quiet) console.error(`vit-lora: precision fp16: ${why}: running in fp32`);
    return "fp32";
  }
  return "fp16";
}
