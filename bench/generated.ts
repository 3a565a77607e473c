/**
 * What the benchmarks generate instead of downloading: the small ViT config of the quick
 * benchmarks, a classifier with the recipe's LoRA, and a ViT-B/16-sized checkpoint (`config.json` and a 344 MB `model.safetensors`
 * of float32 with a few non-zero values).
 *
 * @module
 */

import type { PrecisionOption } from "../src/model/precision.ts";
import { join } from "node:path";
import type { ViTClassifier } from "../src/model/classifier.ts";
import {
  parseViTConfig,
  VIT_BASE_CONFIG,
  type ViTConfig,
  vitTensorShapes,
} from "../src/model/config.ts";
import { createClassifier } from "../src/model/loading.ts";
import { writeSafetensors } from "../src/model/safetensors_file.ts";

/**
 * A classifier with random weights at `config`'s shapes and the recipe's LoRA (r 32, alpha
 * 16, dropout 0.1 on query and value) over Food-101's 101 classes, on the current backend.
 */
export function recipeClassifier(
  config: ViTConfig,
  precision?: PrecisionOption,
): Promise<ViTClassifier> {
  return createClassifier(config, {
    labels: Array.from({ length: 101 }, (_, i) => `class_${i}`),
    lora: { r: 32, alpha: 16, dropout: 0.1, targetModules: ["query", "value"] },
    precision,
  });
}

/** The small ViT of the quick benchmarks: vit-tiny-b's shape (hidden 64, 3 layers, 48×48). */
export const SMALL_VIT_CONFIG: ViTConfig = parseViTConfig({
  hidden_size: 64,
  num_hidden_layers: 3,
  num_attention_heads: 4,
  intermediate_size: 256,
  image_size: 48,
  patch_size: 16,
});

/** Writes the checkpoint into `dir`; returns the size of its `model.safetensors` in bytes. */
export async function writeGeneratedViTBase(dir: string): Promise<number> {
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, shape] of vitTensorShapes(VIT_BASE_CONFIG)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i += 97) data[i] = (i % 13) / 100;
    tensors[name] = { shape, data };
  }
  await writeSafetensors(join(dir, "model.safetensors"), tensors);
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(VIT_BASE_CONFIG));
  return (await Deno.stat(join(dir, "model.safetensors"))).size;
}
