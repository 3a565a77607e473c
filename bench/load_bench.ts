/**
 * Loading a ViT-B/16-sized checkpoint (344 MB of float32, generated: no download) into a
 * classifier with a new LoRA adapter, on the cpu backend. Weights that the model keeps
 * transposed are transposed as each tensor is read, so the checkpoint is held once. This
 * times it; `deno task bench:memory` measures its peak memory in a fresh process (about 1.2×
 * the file).
 */

import { initBackend } from "../src/backend/backend.ts";
import { loadClassifier } from "../src/model/loading.ts";
import { writeGeneratedViTBase } from "./generated.ts";

const dir = await Deno.makeTempDir({ prefix: "vit-lora-bench-" });
await writeGeneratedViTBase(dir);
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
