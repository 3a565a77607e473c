/**
 * Fine-tune Vision Transformers with LoRA on the GPU from Deno, and classify images with the
 * result: Hugging Face's ViT + PEFT recipe without Python.
 *
 * The model (`google/vit-base-patch16-224-in21k` and any ViT in Hugging Face layout) runs on
 * tfjs: on Deno's WebGPU when there is a GPU, else on tfjs's wasm backend (XNNPACK, with
 * replicas of the model in workers so that every core works), and matches transformers +
 * PEFT to float32 rounding: logits, features, loss and the gradient of every adapter tensor.
 * Adapters load and save in PEFT's own format; merged checkpoints in transformers' format.
 *
 * @example
 * ```ts ignore
 * import { loadClassifier, tf } from "@lora/vit";
 *
 * const clf = await loadClassifier("google-vit-base/", {
 *   labels: ["apple_pie", "bibimbap", "sushi"],
 *   lora: { r: 32, alpha: 16, dropout: 0.1, targetModules: ["query", "value"] },
 * });
 * const pixels = tf.randomNormal([2, 3, 224, 224]) as tf.Tensor4D; // normalised, NCHW
 * const labels = tf.tensor1d([0, 2], "int32");
 * const { loss, grads } = clf.lossAndGradients(pixels, labels, { training: true });
 * console.log(await loss.data(), Object.keys(grads).length);
 * await clf.saveAdapter("my-adapter"); // adapter_config.json + adapter_model.safetensors
 * ```
 *
 * @module
 */

export {
  type Scalar,
  type Tensor,
  type Tensor1D,
  type Tensor2D,
  type Tensor3D,
  type Tensor4D,
  tf,
  type Variable,
} from "./src/core/tf.ts";
export {
  type BackendInfo,
  type BackendName,
  BACKENDS,
  initBackend,
  type InitBackendOptions,
  parseBackendName,
} from "./src/backend/backend.ts";
export { formatShape, VitLoraError } from "./src/core/errors.ts";
export {
  decodeSafetensors,
  encodeSafetensors,
  type Float32TensorData,
  openSafetensors,
  readSafetensors,
  type SafetensorsDtype,
  type SafetensorsEntry,
  SafetensorsFile,
  type TensorData,
  writeSafetensors,
} from "./src/model/safetensors.ts";
export {
  configLabels,
  type HiddenAct,
  parsePreprocessorConfig,
  parseViTConfig,
  type PreprocessorConfig,
  VIT_BASE_CONFIG,
  type ViTConfig,
  vitTensorShapes,
} from "./src/model/config.ts";
export {
  type LoraConfig,
  loraConfig,
  loraConfigIn,
  type LoraOptions,
  type LoraTarget,
  loraTargets,
  parseAdapterConfig,
} from "./src/model/lora.ts";
export {
  DEFAULT_PEFT_FORMAT,
  parsePeftFormat,
  parsePeftKey,
  PEFT_CLASSIFIER_KEYS,
  PEFT_FORMATS,
  type PeftFormat,
  type PeftKey,
  peftLoraKey,
  peftModuleName,
} from "./src/model/peft_format.ts";
export {
  LayerNorm,
  Linear,
  LoraLayer,
  seedDropout,
  takesTransposed,
  type TensorSource,
  transposeWeight,
  type ViTLayer,
  ViTModel,
} from "./src/model/vit.ts";
export {
  type BatchGradientOptions,
  classifierFromSnapshot,
  type ClassifierOptions,
  type ClassifierSnapshot,
  countParameters,
  createClassifier,
  loadClassifier,
  type LossAndGradients,
  type LossOptions,
  type ParameterCount,
  type Prediction,
  snapshotClassifier,
  ViTClassifier,
} from "./src/model/classifier.ts";
export {
  type ReplicaJob,
  type ReplicaReply,
  type ReplicaRequest,
  Replicas,
  splitRows,
} from "./src/model/replicas.ts";
export { Random } from "./src/core/random.ts";
export {
  type ImageRow,
  openParquetDataset,
  ParquetDataset,
  type ParquetDatasetOptions,
  type ParquetShard,
  type RowGroup,
} from "./src/data/parquet.ts";
export { FOOD101_LABELS } from "./src/data/food101.ts";
export { type EpochOptions, epochRows, type SplitIndices, splitIndices } from "./src/data/sampler.ts";
export { decodeImage, type DecodeOptions, type RgbImage } from "./src/data/image.ts";
export { type CropBox, cropImage, resizeImage } from "./src/data/resize.ts";
export {
  augmentImage,
  centerCropBox,
  evalImage,
  flipHorizontal,
  normalize,
  randomResizedCropBox,
  resizeShorter,
  roundHalfEven,
  transformImage,
  type TransformSpec,
} from "./src/data/transforms.ts";
export { prepareImage } from "./src/data/prepare.ts";
export {
  type Batch,
  batches,
  type BatchOptions,
  DecodePool,
  type SkippedImage,
} from "./src/data/loader.ts";
export {
  AdamW,
  type AdamWOptions,
  clipByGlobalNorm,
  linearSchedule,
  type ScheduleOptions,
  trainerNoDecay,
} from "./src/training/optimizer.ts";
export {
  type EvalMetrics,
  type EvalReport,
  evaluate,
  evaluateBatches,
  type EvaluateOptions,
  formatEvalReport,
  toEvalReport,
} from "./src/eval/evaluate.ts";
export {
  latestCheckpoint,
  loadAdapterWeights,
  loadOptimizer,
  readTrainerState,
  saveCheckpoint,
  type TrainerState,
  writeFolderAtomic,
} from "./src/training/checkpoint.ts";
export { formatBytes, formatDuration, Progress, type ProgressOptions } from "./src/core/progress.ts";
export {
  checkTrainConfig,
  DEFAULT_TRAIN_CONFIG,
  type EvalEvent,
  type StepEvent,
  train,
  type TrainConfig,
  type TrainOptions,
  type TrainResult,
} from "./src/training/trainer.ts";
export {
  SYNTHETIC_CLASSES,
  type SyntheticDatasetOptions,
  writeSyntheticDataset,
} from "./src/data/synthetic.ts";
export {
  activationBudget,
  autoChunkSize,
  DEFAULT_ACTIVATION_BUDGET,
  trainingBytesPerImage,
} from "./src/model/memory.ts";
export {
  datasetFolder,
  downloadAdapter,
  downloadDataset,
  downloadModel,
  type HubDownloadOptions,
  hubFile,
  type HubRepo,
  type HubSettings,
  hubSettings,
  isRepoId,
  parseRepoId,
  repoCacheDir,
  type RepoType,
  snapshotOf,
} from "./src/hub/hub.ts";
export {
  defaultRepoName,
  modelCard,
  type PushOptions,
  type PushResult,
  pushRun,
} from "./src/reporting/push.ts";
export { parseMetrics, readMetrics, readRunConfig, type RunConfig } from "./src/runs/folder.ts";
export {
  type ClassificationMetrics,
  classificationMetrics,
  type ClassMetrics,
} from "./src/eval/metrics.ts";
export {
  formatPredictions,
  predict,
  type PredictOptions,
  type PredictResult,
} from "./src/eval/predict.ts";
export { openInChromium, type ReportFiles, type ReportOptions, writeReport } from "./src/reporting/report.ts";
export { startTrackers, type Tracker, TRACKERS } from "./src/reporting/tracking.ts";
export { gelu, layerNorm } from "./src/backend/kernels.ts";
export { fusedAttention } from "./src/backend/attention.ts";
