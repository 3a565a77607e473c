/**
 * The transformers.js peer of bench/vit_bench.ts: ViT-B/16 at 224 classified by transformers.js
 * (npm `@huggingface/transformers`, on ONNX Runtime's native CPU engine through
 * `onnxruntime-node`), forward at batch 1 and 8, as a JavaScript user runs a ViT on a CPU today.
 *
 * The model is the bench's own (the recipe classifier: random weights, 101 labels, LoRA r 32
 * merged in), exported to ONNX in the layout `torch.onnx.export` gives transformers' ViT (what
 * Optimum exports and transformers.js models on the Hub hold: `onnx_export.ts`, `"torch"`),
 * written into a temporary model folder (`config.json`, `preprocessor_config.json`,
 * `onnx/model.onnx`) and loaded with `AutoModelForImageClassification.from_pretrained`, fp32,
 * device `cpu`, ONNX Runtime's default session (every physical core, all graph optimisations).
 * Before timing, it checks that transformers.js's logits equal this module's for the same
 * pixels (within 1e-4 relative), and fails loudly if not.
 *
 * Timed: `model({ pixel_values })` on a normalised batch (the image processor is not timed,
 * as the PyTorch peer and this module's bench time the model alone); a warm-up call, then the
 * mean of `--repeat` calls.
 *
 * Prints one JSON object (the last line of stdout): forward_b{N}_images_per_s, implementation
 * "transformers.js", the transformers.js and onnxruntime-node versions, threads, cpu, layout.
 *
 * Usage: deno run --allow-read --allow-write --allow-env --allow-ffi --allow-sys
 *        bench/peers/transformersjs_vit.ts [--repeat N] [--small]
 */

import { join } from "node:path";
import { cpus } from "node:os";
// The peer's own dependency, named here rather than in deno.json so that `deno install` (and CI)
// does not fetch it and the 140 MB of onnxruntime-web it brings: bench:json fetches it when run.
// deno-lint-ignore no-import-prefix
import { AutoModelForImageClassification, env, Tensor } from "npm:@huggingface/transformers@4.3.2";
import { initBackend } from "../../src/backend/backend.ts";
import { tf } from "../../src/core/tf.ts";
import { VIT_BASE_CONFIG } from "../../src/model/config.ts";
import { exportOnnxModel } from "../../src/onnx/export.ts";
import { recipeClassifier, SMALL_VIT_CONFIG } from "../generated.ts";

const NAME = "transformersjs_vit.ts";
const args = Deno.args;
const repeat = Number(args[args.indexOf("--repeat") + 1] || 2) || 2;
const small = args.includes("--small");
const config = small ? SMALL_VIT_CONFIG : VIT_BASE_CONFIG;
const size = config.image_size;

function die(message: string): never {
  console.error(`${NAME}: ${message}`);
  Deno.exit(1);
}

try {
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    die("transformers.js runs ONNX Runtime's Node-API addon: run with --allow-ffi");
  }
} catch {
  die("cannot query the ffi permission");
}

// the bench's model, merged and exported, in a model folder transformers.js reads
const dir = await Deno.makeTempDir({ prefix: "vit-lora-tjs-" });
let reference: { pixels: Float32Array; logits: Float32Array; rows: number };
{
  await initBackend("wasm", { quiet: true });
  const clf = await recipeClassifier(config);
  for (const [name, bytes] of await clf.mergedFiles()) {
    if (name !== "model.safetensors") await Deno.writeFile(join(dir, name), bytes);
  }
  await Deno.mkdir(join(dir, "onnx"));
  await Deno.writeFile(
    join(dir, "onnx", "model.onnx"),
    await exportOnnxModel(clf, { layout: "torch" }),
  );
  const rows = 2;
  const pixels = Float32Array.from({ length: rows * 3 * size * size }, (_, i) => Math.sin(i));
  const logits = tf.tidy(() => clf.logits(tf.tensor4d(pixels, [rows, 3, size, size])));
  reference = { pixels, rows, logits: (await logits.data()) as Float32Array };
  logits.dispose();
  clf.dispose();
}

try {
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = "";
  const model = await AutoModelForImageClassification.from_pretrained(dir, {
    dtype: "fp32",
    device: "cpu",
    local_files_only: true,
  });
  const logitsOf = async (pixels: Float32Array, rows: number) => {
    const out = await model({ pixel_values: new Tensor("float32", pixels, [rows, 3, size, size]) });
    return out.logits.data as Float32Array;
  };

  // the same model: transformers.js's logits are this module's
  const got = await logitsOf(reference.pixels, reference.rows);
  let diff = 0, scale = 0;
  reference.logits.forEach((v, i) => {
    diff = Math.max(diff, Math.abs(got[i] - v));
    scale = Math.max(scale, Math.abs(v));
  });
  if (!(diff / scale <= 1e-4)) {
    die(`transformers.js's logits differ from this module's by ${diff / scale} (relative)`);
  }

  const result: Record<string, unknown> = {
    implementation: "transformers.js",
    transformers_js: env.version,
    onnxruntime_node: (await import("onnxruntime-node")).env.versions?.node,
    layout: "torch.onnx.export's (MatMul + Add)",
    threads: navigator.hardwareConcurrency,
    cpu: cpus()[0]?.model ?? null,
    device: "cpu",
    config: small ? "small" : "ViT-B/16",
    logits_max_relative_difference: diff / scale,
  };
  for (const batch of [1, 8]) {
    const pixels = Float32Array.from({ length: batch * 3 * size * size }, (_, i) => Math.cos(i));
    await logitsOf(pixels, batch); // warm-up
    const start = performance.now();
    for (let i = 0; i < repeat; i++) await logitsOf(pixels, batch);
    result[`forward_b${batch}_images_per_s`] = batch * repeat /
      ((performance.now() - start) / 1000);
  }
  await model.dispose();
  console.log(JSON.stringify(result));
} finally {
  await Deno.remove(dir, { recursive: true });
}
