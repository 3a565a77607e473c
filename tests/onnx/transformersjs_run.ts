/**
 * Run by transformersjs_test.ts in a process of its own (transformers.js brings sharp, which
 * reads environment variables the test task does not grant): the real transformers.js
 * (`@huggingface/transformers` 4.3.2, remote models off) loads an exported folder in each of the
 * three dtypes and classifies:
 *
 * - `pixels.f32` (`ROWS` normalised images, NCHW) through `AutoModelForImageClassification`,
 *   logits written to `tjs_<dtype>.f32`;
 * - `images.u8` (`IMAGES` RGB images of the model's size) through
 *   `pipeline("image-classification", …, { dtype })`, its top-5 labels to `pipeline_<dtype>.json`;
 *
 * and ONNX Runtime Web (the wasm build transformers.js runs in browsers) runs the three files on
 * `pixels.f32`, logits to `web_<dtype>.f32`. Prints the versions as one JSON line.
 *
 * Usage: deno run --allow-read --allow-write --allow-env --allow-ffi --allow-sys
 *        tests/onnx/transformersjs_run.ts MODEL_DIR WORK_DIR ROWS IMAGES
 *
 * @module
 */

import { join } from "node:path";
// deno-lint-ignore no-import-prefix
import * as ortWeb from "npm:onnxruntime-web@1.31.0-dev.20260914-8d85527a0";
import {
  AutoModelForImageClassification,
  env,
  pipeline,
  RawImage,
  Tensor,
  // deno-lint-ignore no-import-prefix
} from "npm:@huggingface/transformers@4.3.2";

const [dir, work, rowsText, imagesText] = Deno.args;
const rows = Number(rowsText), images = Number(imagesText);
const config = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
const size: number = config.image_size, channels: number = config.num_channels;
const plane = channels * size * size;
const pixels = new Float32Array((await Deno.readFile(join(work, "pixels.f32"))).buffer);
const rgb = await Deno.readFile(join(work, "images.u8"));

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = "";
ortWeb.env.wasm.numThreads = 1;

const files = { fp32: "model.onnx", fp16: "model_fp16.onnx", q8: "model_quantized.onnx" };
const write = (name: string, data: Float32Array) =>
  Deno.writeFile(join(work, name), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));

for (const dtype of ["fp32", "fp16", "q8"] as const) {
  const model = await AutoModelForImageClassification.from_pretrained(dir, {
    dtype,
    device: "cpu",
    local_files_only: true,
  });
  const logits: number[] = [];
  for (let start = 0; start < rows; start += 64) {
    const n = Math.min(64, rows - start);
    const x = new Tensor("float32", pixels.slice(start * plane, (start + n) * plane), [
      n,
      channels,
      size,
      size,
    ]);
    const out = await model({ pixel_values: x });
    if (out.logits.type !== "float32") throw new Error(`${dtype}: logits are ${out.logits.type}`);
    logits.push(...(out.logits.data as Float32Array));
  }
  await model.dispose();
  await write(`tjs_${dtype}.f32`, Float32Array.from(logits));

  const classify = await pipeline("image-classification", dir, {
    dtype,
    device: "cpu",
    local_files_only: true,
  });
  const tops: string[][] = [];
  for (let i = 0; i < images; i++) {
    const data = new Uint8ClampedArray(
      rgb.subarray(i * size * size * 3, (i + 1) * size * size * 3),
    );
    const top = await classify(new RawImage(data, size, size, 3), { top_k: 5 });
    tops.push((top as { label: string }[]).map((t) => t.label));
  }
  await classify.dispose();
  await Deno.writeTextFile(join(work, `pipeline_${dtype}.json`), JSON.stringify(tops));

  const session = await ortWeb.InferenceSession.create(
    await Deno.readFile(join(dir, "onnx", files[dtype])),
    { executionProviders: ["wasm"] },
  );
  const out = await session.run({
    pixel_values: new ortWeb.Tensor("float32", pixels, [rows, channels, size, size]),
  });
  await write(`web_${dtype}.f32`, Float32Array.from(out.logits.data as Float32Array));
  await session.release();
}
console.log(JSON.stringify({
  transformers_js: env.version,
  onnxruntime_web: ortWeb.env.versions?.web ?? ortWeb.env.versions?.common,
}));
