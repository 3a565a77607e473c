/**
 * `deno task bench:memory`: what a LoRA training pass holds in memory at ViT-B/16's shapes
 * (hidden 768, MLP 3072, 12 heads, 224×224, patch 16), measured, and what that means for a
 * batch of 64 on a 16 GB GPU.
 *
 * Each measurement runs in a fresh process: a ViT with `L` layers at ViT-B/16's shapes does
 * one forward + backward pass on `B` images, and the growth of the process's peak resident
 * memory (VmHWM) over that pass is read. On Mesa's software WebGPU adapter the GPU's buffers
 * are ordinary memory, so this is the WebGPU backend's real footprint, buffer pool included.
 * Per-layer and per-image costs come from the differences between (L, B) = (1, 1), (2, 1)
 * and (1, 4).
 *
 * It also measures loading: a generated ViT-B/16-sized `model.safetensors` (344 MB) read
 * into a classifier with a new LoRA adapter, in a fresh process, as the growth of the peak
 * resident memory over the load, against the file's size.
 *
 * Usage: deno task bench:memory [--backend webgpu|wasm|cpu]
 */

import { parseArgs } from "node:util";
import { type BackendName, initBackend, parseBackendName } from "../src/backend/backend.ts";
import { type Tensor4D, tf } from "../src/core/tf.ts";
import { parseViTConfig, VIT_BASE_CONFIG } from "../src/model/config.ts";
import { createClassifier, loadClassifier } from "../src/model/loading.ts";
import { autoChunkSize, trainingBytesPerImage } from "../src/model/memory.ts";
import { writeGeneratedViTBase } from "./generated.ts";

const MIB = 2 ** 20;

function status(field: string): number {
  const match = new RegExp(`${field}:\\s+(\\d+)`).exec(Deno.readTextFileSync("/proc/self/status"));
  return Number(match![1]) * 1024;
}

/** One measurement, in this process: bytes the pass added to the peak. */
async function child(layers: number, batch: number, backend: BackendName): Promise<number> {
  await initBackend(backend, { quiet: true });
  const config = parseViTConfig({ num_hidden_layers: layers });
  const labels = Array.from({ length: 101 }, (_, i) => `class_${i}`);
  const clf = await createClassifier(config, { labels, lora: { r: 32, alpha: 16 } });
  const x = tf.randomNormal([batch, 3, 224, 224]) as Tensor4D;
  const y = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 101), "int32");
  // compile the kernels first, on one image and without gradients
  const warm = clf.logits(x.slice([0, 0, 0, 0], [1, 3, 224, 224]) as Tensor4D);
  await warm.data();
  warm.dispose();
  const before = status("VmRSS");
  const { loss, grads } = clf.lossAndGradients(x, y, { training: true });
  await loss.data();
  for (const g of Object.values(grads)) await g.data();
  return status("VmHWM") - before;
}

/** One load, in this process: bytes the load added to the peak. */
async function loadChild(dir: string, backend: BackendName): Promise<number> {
  await initBackend(backend, { quiet: true });
  const before = status("VmRSS");
  const clf = await loadClassifier(dir, { labels: ["a", "b"], lora: { r: 32, alpha: 16 } });
  const grown = status("VmHWM") - before;
  clf.dispose();
  return grown;
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    backend: { type: "string", default: "webgpu" },
    child: { type: "string" },
    load: { type: "string" },
  },
});
const backend = parseBackendName(values.backend!);
if (values.load) {
  console.log(JSON.stringify({ bytes: await loadChild(values.load, backend) }));
  Deno.exit(0);
}
if (values.child) {
  const [layers, batch] = values.child.split(",").map(Number);
  console.log(JSON.stringify({ bytes: await child(layers, batch, backend) }));
  Deno.exit(0);
}

/** Runs this file in a fresh process with `args`; the bytes it reports. */
async function inChild(args: string[]): Promise<number> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--lock=dev.lock",
      // Deno lets only --allow-all read /proc/self/status (VmHWM: the peak); the child runs
      // this file and nothing else
      "--allow-all",
      new URL(import.meta.url).pathname,
      "--backend",
      backend,
      ...args,
    ],
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`measurement (${args.join(" ")}) failed`);
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!).bytes;
}

async function measure(layers: number, batch: number): Promise<number> {
  const bytes = await inChild(["--child", `${layers},${batch}`]);
  console.log(`  ${layers} layer(s), batch ${batch}: +${(bytes / MIB).toFixed(0)} MiB`);
  return bytes;
}

console.log(`training-pass memory at ViT-B/16's shapes on ${backend} (peak RSS growth):`);
const m11 = await measure(1, 1), m21 = await measure(2, 1), m14 = await measure(1, 4);
const perLayerImage = m21 - m11;
const perImageOneLayer = (m14 - m11) / 3;
const measured = Math.max(perLayerImage, perImageOneLayer);
const estimate = trainingBytesPerImage(VIT_BASE_CONFIG) / VIT_BASE_CONFIG.num_hidden_layers;
const chunk = autoChunkSize(VIT_BASE_CONFIG, 64);
const weights = 344 * 1e6;
const full = 12 * 64 * measured + weights;
const chunked = 12 * chunk * measured + weights;
console.log(`
per layer and image: ${(perLayerImage / MIB).toFixed(0)} MiB (from the second layer), ${
  (perImageOneLayer / MIB).toFixed(0)
} MiB (from the extra images); the estimate the trainer sizes chunks by: ${
  (estimate / MIB).toFixed(0)
} MiB
ViT-B/16, batch 64 in one pass:   ${(full / 2 ** 30).toFixed(1)} GiB
ViT-B/16, batch 64 in chunks of ${chunk} (the default): ${(chunked / 2 ** 30).toFixed(1)} GiB${
  chunked < 16e9 ? " (fits 16 GB)" : " (does NOT fit 16 GB)"
}`);

// loading: a generated ViT-B/16-sized checkpoint, in a fresh process
const dir = await Deno.makeTempDir({ prefix: "vit-lora-memory-" });
try {
  const size = await writeGeneratedViTBase(dir);
  const bytes = await inChild(["--load", dir]);
  console.log(
    `\nloading ViT-B/16 (${
      (size / 1e6).toFixed(0)
    } MB) + a new LoRA r 32 on ${backend}: peak RSS +${(bytes / MIB).toFixed(0)} MiB, ${
      (bytes / size).toFixed(2)
    }× the file`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
