/**
 * A ViT-B/16-sized checkpoint for the benchmarks, generated (no download): `config.json` and a
 * 344 MB `model.safetensors` of float32 with a few non-zero values.
 *
 * @module
 */

import { join } from "node:path";
import { VIT_BASE_CONFIG, vitTensorShapes, writeSafetensors } from "../mod.ts";

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
