/**
 * Fine-tune Vision Transformers with LoRA on the GPU from Deno, and classify images with the
 * result: Hugging Face's ViT + PEFT recipe without Python.
 *
 * The model (`google/vit-base-patch16-224-in21k` and any ViT in Hugging Face layout) runs on
 * tfjs: on Deno's WebGPU when there is a GPU, else on tfjs's wasm backend (XNNPACK, with
 * replicas of the model in workers so that every core works), and matches transformers +
 * PEFT to float32 rounding: logits, features, loss and the gradient of every adapter tensor.
 * Adapters load and save in PEFT's own format (transformers 5's names by default, transformers
 * 4's on request); merged checkpoints in transformers' format.
 *
 * This entry holds what a user of the recipe needs. More specialised parts have entries of
 * their own: `@lora/vit/model` (the ViT's parts, LoRA targeting, PEFT names, safetensors, the
 * classifier's option and result types), `@lora/vit/data` (image folders and parquet datasets,
 * splits, decoding, transforms, batches), `@lora/vit/training` (AdamW, the schedule, the plan,
 * checkpoints, early stopping, the option tables), `@lora/vit/results` (evaluation and
 * prediction's types, shards), `@lora/vit/onnx` (the ONNX export's parts), `@lora/vit/hub` (downloads into the Hugging Face
 * cache) and
 * `@lora/vit/web` (the browser entry).
 *
 * @example
 * ```ts ignore
 * import { loadClassifier, tf } from "@lora/vit";
 * import type { Tensor4D } from "@lora/vit/model";
 *
 * const clf = await loadClassifier("google-vit-base/", {
 *   labels: ["apple_pie", "bibimbap", "sushi"],
 *   lora: { r: 32, alpha: 16, dropout: 0.1, targetModules: ["query", "value"] },
 * });
 * const pixels = tf.randomNormal([2, 3, 224, 224]) as Tensor4D; // normalised, NCHW
 * const labels = tf.tensor1d([0, 2], "int32");
 * const { loss, grads } = clf.lossAndGradients(pixels, labels, { training: true });
 * console.log(await loss.data(), Object.keys(grads).length);
 * await clf.saveAdapter("my-adapter"); // adapter_config.json + adapter_model.safetensors
 * ```
 *
 * @module
 */

// ---- training: a run folder from a base model and your images ----
export { train, type TrainOptions } from "./src/training/trainer.ts";
export type { RunStart, TrainerCallback, TrainResult } from "./src/training/callbacks.ts";
export { DEFAULT_TRAIN_CONFIG, type TrainConfig } from "./src/runs/config.ts";
export type { EvalEvent, StepEvent } from "./src/runs/events.ts";

// ---- what plugs into training: the report, W&B, the Hub ----
export { pushCallback, reportCallback, trackingCallback } from "./src/reporting/callbacks.ts";
export { type ReportFiles, type ReportOptions, writeReport } from "./src/reporting/report.ts";
export { type PushOptions, type PushResult, pushRun } from "./src/reporting/push.ts";

// ---- results: evaluation of a run, prediction on files, classification of images ----
export { type EvalReport, evaluate, type EvaluateOptions } from "./src/eval/evaluate.ts";
export { predict, type PredictOptions, type PredictResult } from "./src/eval/predict.ts";
export { classify } from "./src/eval/classify.ts";
export type { Prediction } from "./src/eval/top.ts";
export { mergeEvalShards, mergePredictShards } from "./src/eval/merge.ts";

// ---- your images: image folders, parquet shards, Hub datasets ----
export { openDataset } from "./src/hub/dataset.ts";
export type { ImageDataset } from "./src/data/dataset.ts";

// ---- the model: load, create, run, save ----
export { createClassifier, loadClassifier } from "./src/model/loading.ts";
export type { ClassifierOptions } from "./src/model/assembly.ts";
export { ViTClassifier } from "./src/model/classifier.ts";
export { batchGradients, predictLogits } from "./src/engines/parallel.ts";
export { parseViTConfig, VIT_BASE_CONFIG, type ViTConfig } from "./src/model/config.ts";
export type { LoraOptions } from "./src/model/lora.ts";
export type { PeftFormat } from "./src/model/peft_format.ts";
export type { Precision, PrecisionOption } from "./src/model/precision.ts";

// ---- shipping: ONNX in transformers.js's layout (fp32, fp16, q8) ----
export { exportOnnx, type ExportOnnxOptions } from "./src/onnx/export.ts";
export type { OnnxDtype } from "./src/onnx/folder.ts";
export { writeOnnxFolder } from "./src/onnx/write.ts";

// ---- backend, tensors, errors ----
export { type BackendName, initBackend } from "./src/backend/backend.ts";
export { tf } from "./src/core/tf.ts";
export { ViTLoraError, VitLoraError } from "./src/core/errors.ts";
