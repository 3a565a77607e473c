/**
 * The text files of an exported model folder: `config.json` (a `ViTForImageClassification`
 * config as transformers 5 saves it, with `id2label`/`label2id`), `preprocessor_config.json`
 * (`ViTImageProcessor`) and a README.md saying how to load the folder.
 *
 * @module
 */

import {
  type PreprocessorConfig,
  preprocessorConfigJson,
  type ViTConfig,
} from "../model/config.ts";

/** The precisions of an export: float32, float16, int8 products (see `export.ts`). */
export type OnnxDtype = "fp32" | "fp16" | "q8";

/** Every {@link OnnxDtype}, in the order a folder lists them. */
export const ONNX_DTYPES: readonly OnnxDtype[] = ["fp32", "fp16", "q8"];

/**
 * Each dtype's file in the folder: the names transformers.js (3 and 4) maps its `dtype`
 * option to (`onnx/model{suffix}.onnx`, suffix `""`, `"_fp16"`, `"_quantized"`).
 */
export const ONNX_FILES: Readonly<Record<OnnxDtype, string>> = {
  fp32: "onnx/model.onnx",
  fp16: "onnx/model_fp16.onnx",
  q8: "onnx/model_quantized.onnx",
};

const utf8 = (text: string) => new TextEncoder().encode(text);
const sorted = (json: Record<string, unknown>) =>
  Object.fromEntries(Object.keys(json).sort().map((k) => [k, json[k]]));

/** Fields a source `config.json` may hold that transformers 5 does not save as they are. */
const DROPPED = ["_name_or_path", "torch_dtype", "transformers_version", "transformers.js_config"];

/**
 * `config.json` of a `ViTForImageClassification`: the model's config (fields kept as read,
 * transformers' `ViTConfig` defaults filled in), architectures, `id2label`/`label2id`,
 * `dtype: "float32"`, keys sorted, as transformers 5's `save_pretrained` writes it. When the
 * folder has no float32 model, `transformers.js_config.dtype` names the first it has, so that
 * transformers.js loads it without a `dtype` option.
 */
export function configJson(
  config: ViTConfig,
  labels: readonly string[],
  dtypes: readonly OnnxDtype[],
): Uint8Array {
  const json: Record<string, unknown> = { ...config };
  for (const key of DROPPED) delete json[key];
  Object.assign(json, {
    architectures: ["ViTForImageClassification"],
    dtype: "float32",
    encoder_stride: config.encoder_stride ?? config.patch_size,
    pooler_act: config.pooler_act ?? "tanh",
    pooler_output_size: config.pooler_output_size ?? config.hidden_size,
    id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])),
    label2id: Object.fromEntries(labels.map((l, i) => [l, i])),
  });
  if (!dtypes.includes("fp32") && dtypes.length > 0) {
    json["transformers.js_config"] = { dtype: dtypes[0] };
  }
  return utf8(JSON.stringify(sorted(json), null, 2) + "\n");
}

/** `preprocessor_config.json`: `ViTImageProcessor` with the model's normalisation and size. */
export function preprocessorJson(p: PreprocessorConfig): Uint8Array {
  return utf8(JSON.stringify(preprocessorConfigJson(p), null, 2) + "\n");
}

const DTYPE_TEXT: Record<OnnxDtype, string> = {
  fp32: "float32",
  fp16: "float16 weights and activations; LayerNorm, Softmax and the logits in float32",
  q8: "int8 weights and products (dynamic quantization, as ONNX Runtime's quantize_dynamic)",
};

/** The folder's README.md: what it holds and how to load it. */
export function readmeText(options: {
  labels: readonly string[];
  dtypes: readonly OnnxDtype[];
  baseModel: string;
  size: number;
}): Uint8Array {
  const { dtypes, labels, size } = options;
  const first = dtypes.includes("fp32") ? "fp32" : dtypes[0];
  const files = dtypes.map((d) => `| \`${ONNX_FILES[d]}\` | \`${d}\` | ${DTYPE_TEXT[d]} |`);
  const shown = labels.slice(0, 5).map((l) => JSON.stringify(l)).join(", ");
  return utf8(`# ViT image classifier (LoRA merged), ONNX

Fine-tuned from \`${options.baseModel}\` with [vit-lora](https://jsr.io/@lora/vit), the LoRA
update merged into the weights. ${labels.length} classes (${shown}${
    labels.length > 5 ? ", …" : ""
  }).
Input \`pixel_values\` float32 \`[batch, 3, ${size}, ${size}]\` (normalised as
\`preprocessor_config.json\` says), output \`logits\` float32 \`[batch, ${labels.length}]\`;
opset 17, the batch dimension free.

| file | dtype | precision |
| --- | --- | --- |
${files.join("\n")}

## transformers.js (3 or 4), in the browser, Node or Deno

\`\`\`js
import { env, pipeline } from "@huggingface/transformers";
env.allowRemoteModels = false;
env.localModelPath = "/models/"; // the folder holding this one
const classify = await pipeline("image-classification", "this-folder", { dtype: "${first}" });
console.log(await classify("photo.jpg", { top_k: 5 })); // [{ label, score }, …]
\`\`\`

\`dtype\` picks the file: \`"fp32"\` → \`onnx/model.onnx\`, \`"fp16"\` →
\`onnx/model_fp16.onnx\`, \`"q8"\` → \`onnx/model_quantized.onnx\`.

## Python: onnxruntime

\`\`\`python
import json, numpy as np, onnxruntime as ort
from PIL import Image

session = ort.InferenceSession("${ONNX_FILES[first]}")
p = json.load(open("preprocessor_config.json"))
labels = json.load(open("config.json"))["id2label"]
image = Image.open("photo.jpg").convert("RGB").resize((${size}, ${size}), Image.BILINEAR)
x = (np.asarray(image, np.float32) * p["rescale_factor"] - p["image_mean"]) / p["image_std"]
logits = session.run(["logits"], {"pixel_values": x.transpose(2, 0, 1)[None].astype(np.float32)})[0]
print(labels[str(int(logits.argmax()))])
\`\`\`

The image processor resizes to ${size}×${size} (transformers' \`ViTImageProcessor\`), while
vit-lora's \`predict\` resizes the shorter side and crops the center: crop a photo to a
square first for the same predictions.
`);
}
