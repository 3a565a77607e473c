/**
 * The model's parts, for those who build on them: the ViT encoder and its layers, LoRA
 * targeting by PEFT's rules, the two generations of PEFT adapter names, safetensors and the
 * memory estimate that sizes training chunks.
 * The everyday API (`loadClassifier`, `ViTClassifier`, …) is in the package's main entry.
 *
 * @example
 * ```ts
 * import { peftModuleName } from "@lora/vit/model";
 * console.log(peftModuleName("encoder.layer.0.attention.attention.query", "transformers-5"));
 * // vit.layers.0.attention.q_proj
 * ```
 *
 * @module
 */

import "../backend/deno_platform.ts"; // Deno's environment, files and BLAS (core/platform.ts)
export {
  configLabels,
  LAYER_LINEARS,
  linearModules,
  linearShape,
  vitTensorShapes,
} from "./config.ts";
export { loraConfigIn, type LoraTarget, loraTargets } from "./lora.ts";
export {
  DEFAULT_PEFT_FORMAT,
  parsePeftKey,
  PEFT_CLASSIFIER_KEYS,
  type PeftKey,
  peftLoraKey,
  peftModuleName,
} from "./peft_format.ts";
export {
  decodeSafetensors,
  encodeSafetensors,
  type Float32TensorData,
  type SafetensorsDtype,
  type SafetensorsEntry,
  safetensorsFromBytes,
  type TensorData,
  tensorData,
  type TensorStore,
} from "./safetensors.ts";
export {
  openSafetensors,
  readSafetensors,
  SafetensorsFile,
  writeSafetensors,
} from "./safetensors_file.ts";
export {
  Dropout,
  LayerNorm,
  Linear,
  LoraLayer,
  type TensorSource,
  type ViTLayer,
  ViTModel,
} from "./vit.ts";
export { forwardFlops } from "./config.ts";
export { activationBudget, autoChunkSize, trainingBytesPerImage } from "./memory.ts";
export {
  countParameters,
  type LossAndGradients,
  type LossOptions,
  type ParameterCount,
} from "./classifier.ts";
export { type HiddenAct, parsePreprocessorConfig, type PreprocessorConfig } from "./config.ts";
export { type LoraConfig, loraConfig, parseAdapterConfig } from "./lora.ts";
export { parsePeftFormat, PEFT_FORMATS } from "./peft_format.ts";

export {
  type BackendInfo,
  BACKENDS,
  type InitBackendOptions,
  parseBackendName,
} from "../backend/backend.ts";
export type {
  Scalar,
  Tensor,
  Tensor1D,
  Tensor2D,
  Tensor3D,
  Tensor4D,
  Variable,
} from "../core/tf.ts";
export {
  parsePrecision,
  type Precision,
  type PrecisionOption,
  PRECISIONS,
  resolvePrecision,
} from "./precision.ts";
export { HalfTensor } from "../backend/half.ts";
