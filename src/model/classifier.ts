/**
 * An image classifier: a frozen {@link ViTModel}, LoRA branches on the targeted linear layers,
 * and a classifier head on the CLS token trained in full (PEFT's `modules_to_save`): its
 * forward pass, loss and gradients, and saving it as a PEFT adapter or a merged transformers
 * checkpoint. Loading is `loading.ts`'s; the every-core CPU path is `parallel.ts`'s.
 *
 * @module
 */

import {
  type Scalar,
  type Tensor,
  type Tensor1D,
  type Tensor2D,
  type Tensor4D,
  tf,
  type Variable,
} from "../core/tf.ts";
import { VitLoraError } from "../core/errors.ts";
import { numel } from "../core/shapes.ts";
import { platform } from "../core/platform.ts";
import type { TransformSpec } from "../data/transforms.ts";
import {
  linearModules,
  linearShape,
  type PreprocessorConfig,
  preprocessorConfigJson,
  type ViTConfig,
  vitTensorShapes,
} from "./config.ts";
import { type LoraConfig, loraConfigIn, type LoraTarget, loraTargets } from "./lora.ts";
import { PEFT_CLASSIFIER_KEYS, type PeftFormat, peftLoraKey } from "./peft_format.ts";
import { encodeSafetensors, type Float32TensorData, tensorData } from "./safetensors.ts";
import { Dropout, type LoraLayer, type ViTModel } from "./vit.ts";
import type { Precision } from "./precision.ts";
import { head16 } from "./head16.ts";

/** Trainable and total parameter counts. */
export interface ParameterCount {
  /** Parameters that training updates: LoRA A and B, and the classifier. */
  trainable: number;
  /** All parameters of the classifier, frozen and trainable (the unused pooler excluded). */
  total: number;
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** Options of {@link ViTClassifier.loss}. */
export interface LossOptions {
  /** Turn dropout on, as in training (default false). */
  training?: boolean;
  /**
   * Draw the dropout masks from this seed (in the order the pass needs them), so a training
   * pass can be repeated exactly (default: unseeded masks).
   */
  dropoutSeed?: number;
  /**
   * Label smoothing, as Trainer's `label_smoothing_factor` (`LabelSmoother`): the loss is
   * `(1 − ε) · cross-entropy + ε · the mean over classes of −log p` (default 0).
   */
  labelSmoothing?: number;
  /**
   * {@link ViTClassifier.lossAndGradients}: the gradients are of the loss times this scalar
   * (a loss scaler's scale, see `GradScaler`); the loss returned is not scaled.
   */
  lossScale?: Scalar;
}

/** The loss and the gradient of every trainable tensor, keyed as {@link ViTClassifier.trainableVariables}. */
export interface LossAndGradients {
  /** Mean cross-entropy over the batch. */
  loss: Scalar;
  /** d loss / d each trainable tensor, by PEFT key. */
  grads: Record<string, Tensor>;
}

/**
 * A ViT image classifier with LoRA adapters. Make one with `loadClassifier` or
 * `createClassifier` (`loading.ts`).
 *
 * @example
 * ```ts ignore
 * import { loadClassifier, tf } from "@lora/vit";
 * import type { Tensor4D } from "@lora/vit/model";
 *
 * const clf = await loadClassifier("vit-tiny/model", { adapter: "vit-tiny/adapter" });
 * const pixels = tf.randomNormal([2, 3, 32, 32]) as Tensor4D;
 * const logits = clf.logits(pixels); // [2, labels]
 * console.log(clf.labels[(await logits.argMax(1).data())[0]]);
 * clf.dispose();
 * ```
 */
export class ViTClassifier {
  /** The model's configuration (`config.json`). */
  readonly config: ViTConfig;
  /** The image processor's settings (`preprocessor_config.json`, or ViT's defaults). */
  readonly preprocessor: PreprocessorConfig;
  /** Class names, by index. */
  readonly labels: string[];
  /**
   * The LoRA configuration, in PEFT's form and in {@link ViTClassifier.peftFormat}'s names;
   * undefined when the classifier has no LoRA.
   */
  readonly lora: LoraConfig | undefined;
  /** The naming of the adapter's keys and config (see {@link ClassifierOptions.peftFormat}). */
  readonly peftFormat: PeftFormat;
  /**
   * The arithmetic it runs in: `fp32`, or `fp16` (mixed precision as PyTorch's autocast:
   * float16 frozen weights and products, see `half_layer.ts`).
   */
  readonly precision: Precision;
  /** Where the base model came from (a folder, or a Hub id), as recorded in saved adapters. */
  readonly baseModel: string;
  /** The encoder. */
  readonly vit: ViTModel;
  /** The head, trained in full: weight `[labels, hidden]`, bias `[labels]`. */
  readonly classifier: { weight: Variable; bias: Variable };
  #loraLayers: Map<string, LoraLayer>;
  #targets: LoraTarget[];
  #disposed = false;
  #onDispose: (() => void)[] = [];
  /**
   * Model replicas in workers that the every-core path (`parallel.ts`) may start for this
   * classifier on the CPU: the `replicas` option it was loaded with (undefined: the default).
   */
  readonly replicaCount: number | undefined;

  /** Use `loadClassifier` or `createClassifier` (`loading.ts`). */
  constructor(init: {
    config: ViTConfig;
    preprocessor: PreprocessorConfig;
    labels: string[];
    lora: LoraConfig | undefined;
    peftFormat: PeftFormat;
    targets: LoraTarget[];
    baseModel: string;
    vit: ViTModel;
    classifier: { weight: Tensor2D; bias: Tensor1D };
    loraLayers: Map<string, LoraLayer>;
    replicas?: number;
    precision?: Precision;
  }) {
    this.config = init.config;
    this.preprocessor = init.preprocessor;
    this.labels = init.labels;
    this.lora = init.lora;
    this.peftFormat = init.peftFormat;
    this.#targets = init.targets;
    this.baseModel = init.baseModel;
    this.vit = init.vit;
    this.classifier = {
      weight: tf.variable(init.classifier.weight, true),
      bias: tf.variable(init.classifier.bias, true),
    };
    this.#loraLayers = init.loraLayers;
    this.replicaCount = init.replicas;
    this.precision = init.precision ?? "fp32";
  }

  #forward(pixelValues: Tensor4D, drop: Dropout): Tensor2D {
    const cls = this.vit.forward(pixelValues, drop); // [batch, hidden]
    const { weight, bias } = this.classifier;
    if (this.precision === "fp16") return head16(cls, weight, bias); // autocast's float16 linear
    return tf.matMul(cls, weight, false, true).add(bias); // [batch, labels]
  }

  /**
   * The image transform this model takes its input through: the model's size, the
   * normalisation of `preprocessor_config.json`, and training's augmentation when `augment`.
   *
   * @example
   * ```ts ignore
   * import type { ViTClassifier } from "@lora/vit";
   * import { decodeImage, transformImage } from "@lora/vit/data";
   * declare const clf: ViTClassifier;
   *
   * const image = await decodeImage(await Deno.readFile("cat.jpg"));
   * const pixels = transformImage(image, clf.transformSpec()); // [3, size, size], normalised
   * ```
   */
  transformSpec(augment = false): TransformSpec {
    return {
      size: this.config.image_size,
      mean: this.preprocessor.image_mean,
      std: this.preprocessor.image_std,
      augment,
    };
  }

  /**
   * Class scores for `pixelValues` `[batch, channels, H, W]` (HF's NCHW layout, already
   * normalised): `[batch, labels]`. Evaluation mode: no dropout.
   */
  logits(pixelValues: Tensor4D): Tensor2D {
    this.#check();
    return tf.tidy(() => this.#forward(pixelValues, Dropout.off));
  }

  /** The CLS token after the final layernorm, `[batch, hidden]` (what the head reads). */
  features(pixelValues: Tensor4D): Tensor2D {
    this.#check();
    return tf.tidy(() => this.vit.forward(pixelValues));
  }

  /**
   * Mean cross-entropy of the logits against integer `labels` `[batch]` (label-smoothed by
   * `labelSmoothing`). With `training: true`, dropout is on (LoRA dropout and the config's own),
   * its masks drawn from `dropoutSeed` when given.
   */
  loss(pixelValues: Tensor4D, labels: Tensor1D, options: LossOptions = {}): Scalar {
    this.#check();
    return tf.tidy(() => {
      const drop = new Dropout(options.training ?? false, options.dropoutSeed);
      const logits = this.#forward(pixelValues, drop);
      const logp = tf.logSoftmax(logits); // [batch, classes]
      const oneHot = tf.oneHot(labels.toInt(), this.labels.length);
      const nll = tf.neg(tf.sum(oneHot.mul(logp), 1)); // [batch]
      const eps = options.labelSmoothing ?? 0;
      if (!eps) return tf.mean(nll) as Scalar;
      // LabelSmoother: (1 − ε) nll + ε · mean over classes of −log p, averaged over the batch
      const smooth = tf.neg(tf.mean(logp, 1)); // [batch]
      return tf.mean(nll.mul(1 - eps).add(smooth.mul(eps))) as Scalar;
    });
  }

  /**
   * The loss and its gradient with respect to every trainable tensor, in one pass.
   *
   * @example
   * ```ts
   * import { createClassifier, parseViTConfig, tf } from "@lora/vit";
   * import type { Tensor4D } from "@lora/vit/model";
   * const config = parseViTConfig({
   *   hidden_size: 64,
   *   num_hidden_layers: 2,
   *   num_attention_heads: 4,
   *   intermediate_size: 128,
   *   image_size: 32,
   *   patch_size: 8,
   * });
   * const clf = await createClassifier(config, {
   *   labels: ["cat", "dog"],
   *   lora: { r: 4 },
   *   backend: "cpu",
   * });
   * const pixels = tf.randomNormal([2, 3, 32, 32]) as Tensor4D;
   * const labels = tf.tensor1d([0, 1], "int32");
   *
   * const { loss, grads } = clf.lossAndGradients(pixels, labels, { training: true });
   * console.log(await loss.data(), Object.keys(grads).length); // ≈ [0.7] 10 (8 LoRA, 2 head)
   * tf.dispose([loss, ...Object.values(grads), pixels, labels]);
   * clf.dispose();
   * ```
   */
  lossAndGradients(
    pixelValues: Tensor4D,
    labels: Tensor1D,
    options: LossOptions = {},
  ): LossAndGradients {
    const vars = this.trainableVariables();
    const scale = options.lossScale;
    const { value, grads } = tf.variableGrads(
      () => {
        const loss = this.loss(pixelValues, labels, options);
        return scale ? loss.mul(scale) as Scalar : loss;
      },
      Object.values(vars),
    );
    const byKey: Record<string, Tensor> = {};
    for (const [key, v] of Object.entries(vars)) byKey[key] = grads[v.name];
    if (!scale) return { loss: value, grads: byKey };
    // the scale is a power of two: dividing gives the loss back exactly
    const loss = tf.tidy(() => value.div(scale)) as Scalar;
    value.dispose();
    return { loss, grads: byKey };
  }

  /**
   * The trainable tensors, keyed by their names in PEFT's `adapter_model.safetensors` (in
   * {@link ViTClassifier.peftFormat}'s naming): every `lora_A`/`lora_B`, then the
   * classifier's weight and bias.
   */
  trainableVariables(): Record<string, Variable> {
    this.#check();
    const out: Record<string, Variable> = {};
    for (const [module, layer] of this.#loraLayers) {
      out[peftLoraKey(module, "lora_A", this.peftFormat)] = layer.A;
      out[peftLoraKey(module, "lora_B", this.peftFormat)] = layer.B;
    }
    out[PEFT_CLASSIFIER_KEYS.weight] = this.classifier.weight;
    out[PEFT_CLASSIFIER_KEYS.bias] = this.classifier.bias;
    return out;
  }

  /** Trainable and total parameters (see {@link countParameters}). */
  parameterCount(): ParameterCount {
    const trainable = Object.values(this.trainableVariables()).reduce((s, v) => s + v.size, 0);
    const frozen = [...vitTensorShapes(this.config).values()].reduce(
      (s, shape) => s + numel(shape),
      0,
    );
    return { trainable, total: trainable + frozen };
  }

  /**
   * Saves the adapter in PEFT's format: `adapter_config.json` and
   * `adapter_model.safetensors` (LoRA A and B of every targeted module, the classifier), each
   * written to a temporary name and renamed. The folder is created if needed.
   *
   * Names follow `peftFormat` (default: {@link ViTClassifier.peftFormat}): `transformers-5`
   * is what `PeftModel.from_pretrained` reads on transformers 5, `transformers-4` what it
   * reads on transformers 4. The config's targets are rewritten into that naming when needed.
   *
   * @example
   * ```ts ignore
   * import type { ViTClassifier } from "@lora/vit";
   * declare const clf: ViTClassifier;
   *
   * await clf.saveAdapter("adapter"); // for PEFT on transformers 5
   * await clf.saveAdapter("adapter-t4", { peftFormat: "transformers-4" }); // for transformers 4
   * ```
   */
  async saveAdapter(dir: string, options: { peftFormat?: PeftFormat } = {}): Promise<void> {
    await writeFolder(dir, await this.adapterFiles(options));
  }

  /**
   * The adapter's files as {@link ViTClassifier.saveAdapter} writes them, as bytes by file
   * name (`adapter_model.safetensors`, `adapter_config.json`): for a web page to offer as a
   * download, or to upload.
   */
  async adapterFiles(options: { peftFormat?: PeftFormat } = {}): Promise<Map<string, Uint8Array>> {
    this.#check();
    const format = options.peftFormat ?? this.peftFormat;
    if (!this.lora) {
      throw new VitLoraError(
        "this classifier has no LoRA adapter to save (load one or pass lora options)",
      );
    }
    const config = loraConfigIn(this.lora, this.#targets, linearModules(this.config), format);
    const tensors: Record<string, Float32TensorData> = {};
    for (const [module, layer] of this.#loraLayers) {
      for (const [which, v] of [["lora_A", layer.A], ["lora_B", layer.B]] as const) {
        tensors[peftLoraKey(module, which, format)] = await tensorData(v);
      }
    }
    for (const [part, v] of Object.entries(this.classifier)) {
      tensors[PEFT_CLASSIFIER_KEYS[part as "weight" | "bias"]] = await tensorData(v);
    }
    const json: Record<string, unknown> = { ...config, base_model_name_or_path: this.baseModel };
    const sorted = Object.fromEntries(Object.keys(json).sort().map((k) => [k, json[k]]));
    return new Map([
      ["adapter_model.safetensors", encodeSafetensors(tensors)],
      ["adapter_config.json", utf8(JSON.stringify(sorted, null, 2) + "\n")],
    ]);
  }

  /**
   * Saves a `ViTForImageClassification` checkpoint with the LoRA updates folded into the
   * weights (`W + scaling · B A`): `config.json` (with `id2label`/`label2id`),
   * `model.safetensors` (`vit.`-prefixed names, the classifier) and
   * `preprocessor_config.json`, which transformers' `from_pretrained` loads as is.
   */
  async saveMerged(dir: string): Promise<void> {
    await writeFolder(dir, await this.mergedFiles());
  }

  /**
   * The checkpoint's tensors in transformers' names (`vit.…`, `classifier.weight`,
   * `classifier.bias`), as float32: the LoRA folded into the weights, as a merged checkpoint
   * stores them; with `{ lora: false }`, the frozen weights as they are.
   */
  async checkpointTensors(
    options: { lora?: boolean } = {},
  ): Promise<Record<string, Float32TensorData>> {
    this.#check();
    const tensors: Record<string, Float32TensorData> = {};
    const merged = this.vit.mergedTensors(options);
    try {
      for (const [name, t] of merged) tensors[`vit.${name}`] = await tensorData(t);
    } finally {
      tf.dispose([...merged.values()]);
    }
    tensors["classifier.weight"] = await tensorData(this.classifier.weight);
    tensors["classifier.bias"] = await tensorData(this.classifier.bias);
    return tensors;
  }

  /**
   * The merged checkpoint's files as {@link ViTClassifier.saveMerged} writes them, as bytes
   * by file name (`model.safetensors`, `config.json`, `preprocessor_config.json`).
   */
  async mergedFiles(): Promise<Map<string, Uint8Array>> {
    const tensors = await this.checkpointTensors();
    const config = {
      ...this.config,
      architectures: ["ViTForImageClassification"],
      id2label: Object.fromEntries(this.labels.map((l, i) => [String(i), l])),
      label2id: Object.fromEntries(this.labels.map((l, i) => [l, i])),
      torch_dtype: "float32",
    };
    const preprocessor = preprocessorConfigJson(this.preprocessor);
    return new Map([
      ["model.safetensors", encodeSafetensors(tensors)],
      ["config.json", utf8(JSON.stringify(config, null, 2) + "\n")],
      ["preprocessor_config.json", utf8(JSON.stringify(preprocessor, null, 2) + "\n")],
    ]);
  }

  /** Calls `stop` when the classifier is disposed (e.g. to stop workers holding a copy of it). */
  onDispose(stop: () => void): void {
    this.#check();
    this.#onDispose.push(stop);
  }

  /** Whether {@link ViTClassifier.dispose} has been called. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** Frees every tensor and variable of this classifier; it cannot be used afterwards. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const stop of this.#onDispose) stop();
    this.vit.dispose(); // the LoRA layers hang on its linear layers
    this.classifier.weight.dispose();
    this.classifier.bias.dispose();
  }

  /** Throws when the classifier has been disposed. */
  check(): void {
    this.#check();
  }

  #check(): void {
    if (this.#disposed) throw new VitLoraError("this classifier has been disposed");
  }
}

/**
 * Parameter counts implied by a config, without weights: the encoder (pooler excluded),
 * a head for `numLabels` classes, and LoRA on the modules `lora` targets.
 *
 * @example
 * ```ts
 * import { countParameters } from "./classifier.ts";
 * import { VIT_BASE_CONFIG } from "./config.ts";
 * import { loraConfig } from "./lora.ts";
 * const { trainable, total } = countParameters(VIT_BASE_CONFIG, {
 *   numLabels: 101,
 *   lora: loraConfig({ r: 32, alpha: 16 }),
 * });
 * console.log(trainable, total); // 1257317 87055973
 * ```
 */
export function countParameters(
  config: ViTConfig,
  options: { numLabels: number; lora?: LoraConfig },
): ParameterCount {
  const frozen = [...vitTensorShapes(config).values()].reduce((s, shape) => s + numel(shape), 0);
  let trainable = options.numLabels * config.hidden_size + options.numLabels;
  if (options.lora) {
    for (const t of loraTargets(options.lora, linearModules(config))) {
      const [out, inp] = linearShape(config, t.module);
      trainable += t.r * (inp + out);
    }
  }
  return { trainable, total: frozen + trainable };
}

/** Files into a folder through the platform (Deno); in a web page, an error saying what to use. */
async function writeFolder(dir: string, files: Map<string, Uint8Array>): Promise<void> {
  const write = platform().writeFiles;
  if (!write) {
    throw new VitLoraError(
      `${dir}: no file system here: use adapterFiles() or mergedFiles() for the files' bytes`,
    );
  }
  await write(dir, files);
}
