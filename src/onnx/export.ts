/**
 * A classifier as ONNX: one model's bytes (`exportOnnxModel`, what `ort.ts` runs), or the model
 * folder transformers.js loads (`exportOnnx`: `config.json`, `preprocessor_config.json`,
 * `README.md`, and `onnx/model.onnx`, `onnx/model_fp16.onnx`, `onnx/model_quantized.onnx`),
 * the LoRA merged. Bytes only, no file system: the browser entry can use it; `write.ts` writes a
 * folder from Deno.
 *
 * The three precisions are one graph (`graph.ts`) and two passes over it: `float16.ts` and
 * `quantize.ts`.
 *
 * @module
 */

import { VitLoraError } from "../core/errors.ts";
import type { ViTClassifier } from "../model/classifier.ts";
import type { ViTConfig } from "../model/config.ts";
import type { Float32TensorData } from "../model/safetensors.ts";
import { toFloat16 } from "./float16.ts";
import {
  configJson,
  ONNX_DTYPES,
  ONNX_FILES,
  type OnnxDtype,
  preprocessorJson,
  readmeText,
} from "./folder.ts";
import { type AdapterInputs, buildViTGraph, type OnnxLayout } from "./graph.ts";
import { encodeGraph, type OnnxGraph } from "./ir.ts";
import { quantizeDynamic } from "./quantize.ts";

/** Options of {@link exportOnnxModel} and {@link encodeViTOnnx}. */
export interface OnnxModelOptions {
  /** `"fp32"` (default), `"fp16"` or `"q8"`. */
  dtype?: OnnxDtype;
  /** The graph's layout, `"fused"` (default) or `"torch"` (see `graph.ts`). */
  layout?: OnnxLayout;
}

/**
 * A `ViTForImageClassification` checkpoint's tensors (transformers' names: `vit.…`,
 * `classifier.weight`, `classifier.bias`) as an ONNX model's bytes, in `dtype`. A missing tensor
 * is a {@link VitLoraError}.
 */
export function encodeViTOnnx(
  config: ViTConfig,
  tensors: Record<string, Float32TensorData>,
  options: OnnxModelOptions & { adapterInputs?: AdapterInputs } = {},
): Uint8Array {
  const dtype = options.dtype ?? "fp32";
  if (options.adapterInputs && dtype !== "fp32") {
    throw new VitLoraError("exportOnnx: adapter inputs are float32 only");
  }
  return encodeInDtype(buildViTGraph(config, tensors, options), dtype);
}

/** A float32 graph in `dtype` (by `float16.ts`'s or `quantize.ts`'s pass), as a model's bytes. */
function encodeInDtype(graph: OnnxGraph, dtype: OnnxDtype): Uint8Array {
  if (dtype === "fp16") graph = toFloat16(graph);
  else if (dtype === "q8") graph = quantizeDynamic(graph);
  else if (dtype !== "fp32") throw unknownDtype(dtype);
  return encodeGraph(graph, { docString: `vit-lora ViTForImageClassification, ${dtype}` });
}

function unknownDtype(dtype: string): VitLoraError {
  return new VitLoraError(
    `unknown ONNX dtype ${JSON.stringify(dtype)} (one of ${ONNX_DTYPES.join(", ")})`,
  );
}

/**
 * Dtypes from a comma-separated list (`"fp32,q8"`), in the order given, once each; an unknown
 * one or an empty list is a {@link VitLoraError}.
 *
 * @example
 * ```ts
 * import { parseOnnxDtypes } from "./export.ts";
 * console.log(parseOnnxDtypes("q8, fp16")); // [ "q8", "fp16" ]
 * ```
 */
export function parseOnnxDtypes(text: string): OnnxDtype[] {
  const out: OnnxDtype[] = [];
  for (const part of text.split(",").map((s) => s.trim())) {
    if (!(ONNX_DTYPES as readonly string[]).includes(part)) throw unknownDtype(part);
    if (!out.includes(part as OnnxDtype)) out.push(part as OnnxDtype);
  }
  return out;
}

/**
 * `clf` as one ONNX model (the bytes of a `.onnx` file): its merged weights (LoRA folded in)
 * and head, input `pixel_values`, output `logits`, the batch dimension free, in `dtype`.
 *
 * @example
 * ```ts
 * import { parseViTConfig } from "../model/config.ts";
 * import { createClassifier } from "../model/loading.ts";
 * import { exportOnnxModel } from "./export.ts";
 * const config = parseViTConfig({
 *   hidden_size: 32,
 *   num_hidden_layers: 1,
 *   num_attention_heads: 2,
 *   intermediate_size: 64,
 *   image_size: 16,
 *   patch_size: 8,
 * });
 * const clf = await createClassifier(config, { labels: ["cat", "dog"], backend: "cpu" });
 * const bytes = await exportOnnxModel(clf, { dtype: "q8" }); // a .onnx file
 * clf.dispose();
 * ```
 */
export async function exportOnnxModel(
  clf: ViTClassifier,
  options: OnnxModelOptions = {},
): Promise<Uint8Array> {
  return encodeViTOnnx(clf.config, await clf.checkpointTensors(), options);
}

/** Options of {@link exportOnnx}. */
export interface ExportOnnxOptions {
  /** The precisions to write (default all: `["fp32", "fp16", "q8"]`). */
  dtypes?: readonly OnnxDtype[];
  /** The graph's layout (default `"fused"`). */
  layout?: OnnxLayout;
}

/**
 * `clf` as the model folder transformers.js (3 and 4) loads from a local path, as files by
 * path in the folder: `config.json` (`ViTForImageClassification`, `id2label`/`label2id`),
 * `preprocessor_config.json`, `README.md` (how to load it) and one ONNX model per dtype
 * (`onnx/model.onnx`, `onnx/model_fp16.onnx`, `onnx/model_quantized.onnx`), the LoRA merged.
 * Bytes only: `writeOnnxFolder` (`write.ts`) writes them from Deno; a page zips them.
 *
 * @example
 * ```ts
 * import { parseViTConfig } from "../model/config.ts";
 * import { createClassifier } from "../model/loading.ts";
 * import { exportOnnx } from "./export.ts";
 * const config = parseViTConfig({
 *   hidden_size: 32,
 *   num_hidden_layers: 1,
 *   num_attention_heads: 2,
 *   intermediate_size: 64,
 *   image_size: 16,
 *   patch_size: 8,
 * });
 * const clf = await createClassifier(config, { labels: ["cat", "dog"], backend: "cpu" });
 * const files = await exportOnnx(clf, { dtypes: ["fp32", "q8"] });
 * console.log([...files.keys()]);
 * // [ "config.json", "preprocessor_config.json", "README.md", "onnx/model.onnx",
 * //   "onnx/model_quantized.onnx" ]
 * clf.dispose();
 * ```
 */
export async function exportOnnx(
  clf: ViTClassifier,
  options: ExportOnnxOptions = {},
): Promise<Map<string, Uint8Array>> {
  const dtypes = options.dtypes ?? ONNX_DTYPES;
  if (dtypes.length === 0) throw new VitLoraError("exportOnnx: no dtype to export");
  for (const d of dtypes) if (!ONNX_DTYPES.includes(d)) throw unknownDtype(d);
  const files = new Map<string, Uint8Array>([
    ["config.json", configJson(clf.config, clf.labels, dtypes)],
    ["preprocessor_config.json", preprocessorJson(clf.preprocessor)],
    [
      "README.md",
      readmeText({
        labels: clf.labels,
        dtypes,
        baseModel: clf.baseModel,
        size: clf.config.image_size,
      }),
    ],
  ]);
  // one float32 graph; each dtype is a pass over it that leaves it as it is
  const graph = buildViTGraph(clf.config, await clf.checkpointTensors(), {
    layout: options.layout,
  });
  for (const dtype of dtypes) files.set(ONNX_FILES[dtype], encodeInDtype(graph, dtype));
  return files;
}
