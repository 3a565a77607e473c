/**
 * Loading a ViT-B/16-sized checkpoint (344 MB of float32, generated: no download) into a
 * classifier with a new LoRA adapter, on the cpu backend. Weights that the model keeps
 * transposed are transposed as each tensor is read, so the checkpoint is held once (in a
 * fresh process, resident memory grows by about 1.1× the file; the benchmark process holds the
 * generated tensors' garbage too, so it times only).
 */

import { join } from "node:path";
import {
  initBackend,
  loadClassifier,
  VIT_BASE_CONFIG,
  vitTensorShapes,
  writeSafetensors,
} from "../mod.ts";

const dir = await Deno.makeTempDir({ prefix: "vit-lora-bench-" });
const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
for (const [name, shape] of vitTensorShapes(VIT_BASE_CONFIG)) {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i += 97) data[i] = (i % 13) / 100;
  tensors[name] = { shape, data };
}
await writeSafetensors(join(dir, "model.safetensors"), tensors);
for (const key of Object.keys(tensors)) delete tensors[key];
await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(VIT_BASE_CONFIG));
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

Deno.bench({
  name: "load ViT-B/16 (344 MB) + new LoRA r 32, cpu",
  n: 3,
  warmup: 0,
  async fn() {
    await initBackend("cpu");
    const clf = await loadClassifier(dir, { labels: ["a", "b"], lora: { r: 32 } });
    clf.dispose();
  },
});
