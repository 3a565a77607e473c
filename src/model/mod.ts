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
  openSafetensors,
  readSafetensors,
  type SafetensorsDtype,
  type SafetensorsEntry,
  SafetensorsFile,
  safetensorsFromBytes,
  type TensorData,
  tensorData,
  type TensorStore,
  writeSafetensors,
} from "./safetensors.ts";
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
