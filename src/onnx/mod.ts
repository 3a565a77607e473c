/**
 * Shipping a fine-tuned model to where apps run: the classifier, LoRA merged, as ONNX in the
 * folder layout transformers.js loads (`config.json`, `preprocessor_config.json`,
 * `onnx/model.onnx`, `onnx/model_fp16.onnx`, `onnx/model_quantized.onnx`), in fp32, fp16 (the
 * precision-sensitive operations kept in float32) and q8 (ONNX Runtime's dynamic int8
 * quantization), written by this module's own graph builder and protobuf encoder.
 *
 * @example
 * ```ts
 * import { ONNX_FILES, parseOnnxDtypes } from "@lora/vit/onnx";
 * console.log(parseOnnxDtypes("fp32,q8").map((d) => ONNX_FILES[d]));
 * // [ "onnx/model.onnx", "onnx/model_quantized.onnx" ]
 * ```
 *
 * @module
 */

import "../backend/deno_platform.ts"; // Deno's environment, files and BLAS (core/platform.ts)

export {
  exportOnnx,
  exportOnnxModel,
  type ExportOnnxOptions,
  type OnnxModelOptions,
  parseOnnxDtypes,
} from "./export.ts";
export { ONNX_DTYPES, ONNX_FILES, type OnnxDtype } from "./folder.ts";
export type { OnnxLayout } from "./graph.ts";
export { checkOnnxFolder, writeOnnxFolder } from "./write.ts";
