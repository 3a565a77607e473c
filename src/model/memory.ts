/**
 * How much memory a training pass takes, and so how many images to put through the model at
 * once. tfjs keeps, until the backward pass, every tensor a gradient needs; for a ViT that is
 * tens of megabytes a layer and an image (about 54–64 MiB at ViT-B/16's shapes, measured
 * with `deno task bench:memory`), so a batch of 64 at ViT-B/16 would need some 48 GiB in one
 * pass. The trainer splits each batch into chunks whose gradients add up exactly to the
 * batch's, sized by the estimate here.
 *
 * @module
 */

import type { BackendName } from "../backend/backend.ts";
import { numTokens, type ViTConfig } from "./config.ts";

/**
 * Estimated bytes a training pass holds for one image: per layer, the hidden-sized and
 * MLP-sized activations and the attention maps the backward pass keeps; 20% above what was
 * measured at ViT-B/16's shapes (see the module doc).
 *
 * @example
 * ```ts
 * import { VIT_BASE_CONFIG } from "@lora/vit";
 * import { trainingBytesPerImage } from "@lora/vit/model";
 * console.log(Math.round(trainingBytesPerImage(VIT_BASE_CONFIG) / 2 ** 20)); // 919 (MiB)
 * ```
 */
export function trainingBytesPerImage(config: ViTConfig): number {
  const t = numTokens(config);
  const h = config.hidden_size, i = config.intermediate_size, heads = config.num_attention_heads;
  const perLayer = 4 * t * (60 * h + 12 * i) + 4 * 8 * heads * t * t;
  return perLayer * config.num_hidden_layers;
}

/** The activation budget {@link autoChunkSize} fills by default: 12 GiB. */
export const DEFAULT_ACTIVATION_BUDGET: number = 12 * 2 ** 30;

/**
 * The activation budget for a backend: 2 GiB on wasm, whose memory cannot grow past 4 GiB
 * (weights included); {@link DEFAULT_ACTIVATION_BUDGET} elsewhere. What the trainer sizes its
 * chunks by.
 *
 * @example
 * ```ts
 * import { VIT_BASE_CONFIG } from "@lora/vit";
 * import { activationBudget, autoChunkSize } from "@lora/vit/model";
 * console.log(autoChunkSize(VIT_BASE_CONFIG, 64, activationBudget("wasm"))); // 2
 * ```
 */
export function activationBudget(backend: BackendName): number {
  return backend === "wasm" ? 2 * 2 ** 30 : DEFAULT_ACTIVATION_BUDGET;
}

/**
 * Images a forward + backward pass should take so that its activations fit `budget` bytes
 * (default 12 GiB: ViT-B/16 on a 16 GB GPU; see {@link activationBudget} for the trainer's
 * per backend), at most `batchSize`, at least 1.
 *
 * @example
 * ```ts
 * import { VIT_BASE_CONFIG } from "@lora/vit";
 * import { autoChunkSize } from "@lora/vit/model";
 * console.log(autoChunkSize(VIT_BASE_CONFIG, 64)); // 13
 * ```
 */
export function autoChunkSize(
  config: ViTConfig,
  batchSize: number,
  budget: number = DEFAULT_ACTIVATION_BUDGET,
): number {
  return Math.max(1, Math.min(batchSize, Math.floor(budget / trainingBytesPerImage(config))));
}
