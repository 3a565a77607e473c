/**
 * vit-lora in a web page: classify and fine-tune LoRA on the user's GPU through the browser's
 * WebGPU (or on the CPU through tfjs's wasm backend). The same model core as the Deno entry
 * (the same ViT, LoRA, fused WGSL kernels, optimizer and transforms), loaded from URLs, Hub ids
 * or picked files, trained on images held in memory, and saved as PEFT adapter bytes to
 * download. Its module graph has no `node:` import and uses no `Deno` API.
 *
 * @example
 * ```ts ignore
 * import { decodeImageInBrowser, initBackend, loadClassifierFromUrl, train } from "@lora/vit/web";
 * declare const file: File; // e.g. from an <input type="file">
 *
 * const backend = await initBackend("webgpu"); // or "wasm" (see useWasmFiles)
 * console.log(backend.name);
 * const clf = await loadClassifierFromUrl("google/vit-base-patch16-224-in21k", {
 *   labels: ["cat", "dog"],
 *   lora: { r: 16, alpha: 16 },
 * });
 * const examples = [{ image: await decodeImageInBrowser(file), label: 0 }];
 * await train(clf, examples, { epochs: 3, onStep: (e) => console.log(e.loss) });
 * const files = await clf.adapterFiles(); // adapter_config.json, adapter_model.safetensors
 * ```
 *
 * @module
 */

import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";

export { type BackendInfo, type BackendName, initBackend } from "../backend/backend.ts";
export {
  type Scalar,
  type Tensor,
  type Tensor1D,
  type Tensor2D,
  type Tensor4D,
  tf,
  type Variable,
} from "../core/tf.ts";
export { ViTLoraError, VitLoraError } from "../core/errors.ts";
export type { RgbImage } from "../data/image.ts";
export { ViTClassifier } from "../model/classifier.ts";
export type { ClassifierOptions } from "../model/assembly.ts";
export { type LoraOptions } from "../model/lora.ts";
export { type PeftFormat } from "../model/peft_format.ts";
export { resolveUrl } from "../hub/ids.ts";
export type { EvalSummary, StepEvent } from "../runs/events.ts";
export {
  fetchFiles,
  type FileSet,
  folderUrl,
  loadClassifierFromBytes,
  loadClassifierFromFiles,
  loadClassifierFromUrl,
  type WebClassifierOptions,
} from "./load.ts";
export { decodeImageInBrowser, rgbFromRgba } from "./images.ts";
export { exportOnnx, type ExportOnnxOptions } from "../onnx/export.ts";
export { ONNX_DTYPES, ONNX_FILES, type OnnxDtype } from "../onnx/folder.ts";
export type { OnnxLayout } from "../onnx/graph.ts";
export type { Prediction } from "../eval/top.ts";
export {
  classify,
  classifyImages,
  evaluate,
  evaluateExamples,
  type Example,
  fineTune,
  type FineTuneOptions,
  type FineTuneResult,
  train,
  WEB_TRAIN_OPTIONS,
  type WebTrainOptions,
  type WebTrainResult,
} from "./train.ts";

/**
 * Where the page serves tfjs's wasm files (`tfjs-backend-wasm.wasm`,
 * `tfjs-backend-wasm-simd.wasm`, `tfjs-backend-wasm-threaded-simd.wasm`, from the npm package
 * `@tensorflow/tfjs-backend-wasm`'s `wasm-out/`): call before `initBackend("wasm")`.
 *
 * @example
 * ```ts ignore
 * import { initBackend, useWasmFiles } from "@lora/vit/web";
 *
 * useWasmFiles("/wasm/");
 * await initBackend("wasm");
 * ```
 */
export function useWasmFiles(prefix: string): void {
  setWasmPaths(prefix);
}
