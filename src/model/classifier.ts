/**
 * An image classifier: a frozen {@link ViTModel}, LoRA branches on the targeted linear layers,
 * and a classifier head on the CLS token trained in full (PEFT's `modules_to_save`).
 *
 * Loads the two checkpoint shapes users have (`ViTModel`, as
 * `google/vit-base-patch16-224-in21k`, and `ViTForImageClassification`), PEFT adapters, and
 * saves adapters in PEFT's format and merged checkpoints in transformers' format.
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
import { join } from "node:path";
import { type BackendName, initBackend } from "../backend/backend.ts";
import {
  configLabels,
  linearModules,
  linearShape,
  parsePreprocessorConfig,
  parseViTConfig,
  type PreprocessorConfig,
  type ViTConfig,
  vitTensorShapes,
} from "./config.ts";
import { formatShape, sameShape, VitLoraError } from "../core/errors.ts";
import { exists, readJsonFile, writeFileAtomic } from "../core/files.ts";
import {
  type LoraConfig,
  loraConfig,
  loraConfigIn,
  type LoraOptions,
  type LoraTarget,
  loraTargets,
  parseAdapterConfig,
} from "./lora.ts";
import {
  DEFAULT_PEFT_FORMAT,
  keysFormat,
  parsePeftKey,
  PEFT_CLASSIFIER_KEYS,
  PEFT_FORMATS,
  type PeftFormat,
  peftLoraKey,
} from "./peft_format.ts";
import {
  type Float32TensorData,
  isFloatDtype,
  openSafetensors,
  type SafetensorsFile,
  writeSafetensors,
} from "./safetensors.ts";
import { LoraLayer, seedDropout, takesTransposed, transposeWeight, ViTModel } from "./vit.ts";
import { Random } from "../core/random.ts";
import { Replicas, splitRows } from "./replicas.ts";
import { decodeImage, type RgbImage } from "../data/image.ts";
import { transformImage, type TransformSpec } from "../data/transforms.ts";
import {
  downloadAdapter,
  downloadModel,
  type HubDownloadOptions,
  type HubSettings,
  isRepoId,
  parseRepoId,
} from "../hub/hub.ts";

/** Options of {@link loadClassifier} and {@link createClassifier}. */
export interface ClassifierOptions {
  /**
   * A PEFT LoRA adapter folder (`adapter_config.json`, `adapter_model.safetensors`). Its
   * classifier, when it has one, replaces the checkpoint's.
   */
  adapter?: string;
  /**
   * Start a new LoRA adapter with these settings (r, alpha, dropout, target modules), A
   * kaiming-uniform and B zeros, when no `adapter` is given. Without `adapter` or `lora`, the
   * classifier has no LoRA (only its head is trainable).
   */
  lora?: LoraOptions;
  /**
   * Class names. They name the classes of a new head (one is made when the checkpoint has
   * none); with a head from a checkpoint or adapter, their count must match it.
   */
  labels?: string[];
  /** The tfjs backend (default: `VIT_LORA_BACKEND`, else WebGPU). */
  backend?: BackendName;
  /** Seed for new weights (head, LoRA A); default 0. */
  seed?: number;
  /**
   * The naming of the adapter's tensors and config: the keys of
   * {@link ViTClassifier.trainableVariables} and what {@link ViTClassifier.saveAdapter} writes
   * (`transformers-5`, what PEFT reads on today's transformers, or `transformers-4`, the seed
   * era's; see `peft_format.ts`). Default: a loaded adapter's own, else `transformers-5`.
   */
  peftFormat?: PeftFormat;
  /** LoRA dropout in training, replacing the adapter's own (e.g. 0 for exact repeats). */
  loraDropout?: number;
  /** The Hub revision (branch, tag, commit) of a model given by Hub id (default `main`). */
  revision?: string;
  /** Download progress on stderr for Hub ids (default true). */
  progress?: boolean;
  /** Hub settings for Hub ids (default: from the environment, see `hubSettings`). */
  hub?: HubSettings;
  /**
   * Replicas of the model in workers, so that the CPU path (tfjs-wasm, one thread an isolate)
   * uses more than one core: batches are split between this isolate and the replicas (see
   * {@link ViTClassifier.replicas}). Default: on the wasm backend, one per further core (up
   * to 3) for models whose forward pass costs over a GFLOP an image (ViT-B/16: 17.5); none
   * otherwise. 0 turns them off.
   */
  replicas?: number;
}

/** A class and its probability. */
export interface Prediction {
  /** The class name. */
  label: string;
  /** The class index. */
  index: number;
  /** Its softmax probability. */
  probability: number;
}

/** Trainable and total parameter counts. */
export interface ParameterCount {
  /** Parameters that training updates: LoRA A and B, and the classifier. */
  trainable: number;
  /** All parameters of the classifier, frozen and trainable (the unused pooler excluded). */
  total: number;
}

/** Options of {@link ViTClassifier.loss}. */
export interface LossOptions {
  /** Turn dropout on, as in training (default false). */
  training?: boolean;
}

/** Options of {@link ViTClassifier.batchGradients}. */
export interface BatchGradientOptions extends LossOptions {
  /**
   * Images a forward + backward pass takes at most (default: the whole batch): the batch goes
   * through in chunks of this size, to bound memory (see `autoChunkSize`).
   */
  chunkSize?: number;
  /**
   * Seeds the dropout masks: chunk `k`'s come from `(dropoutSeed, k)`, wherever it is
   * computed, so a step can be repeated exactly (default: unseeded masks).
   */
  dropoutSeed?: number;
}

/** The loss and the gradient of every trainable tensor, keyed as {@link ViTClassifier.trainableVariables}. */
export interface LossAndGradients {
  /** Mean cross-entropy over the batch. */
  loss: Scalar;
  /** d loss / d each trainable tensor, by PEFT key. */
  grads: Record<string, Tensor>;
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Independent random streams, so that e.g. adding LoRA does not change a new head's weights. */
const STREAM = { encoder: 1, head: 2, lora: 3 } as const;

/** A deterministic stream of seeds for tfjs's seeded random ops. */
function seeds(seed: number, stream: number): () => number {
  let i = 0;
  return () => seed * 1_000_003 + stream * 10_007 + ++i;
}

/**
 * A ViT image classifier with LoRA adapters. Make one with {@link loadClassifier} or
 * {@link createClassifier}.
 *
 * @example
 * ```ts ignore
 * import { loadClassifier, tf } from "@lora/vit";
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
  /** Where the base model came from (a folder, or a Hub id), as recorded in saved adapters. */
  readonly baseModel: string;
  /** The encoder. */
  readonly vit: ViTModel;
  /** The head, trained in full: weight `[labels, hidden]`, bias `[labels]`. */
  readonly classifier: { weight: Variable; bias: Variable };
  #loraLayers: Map<string, LoraLayer>;
  #targets: LoraTarget[];
  #disposed = false;
  #replicaCount: number | undefined;
  #replicas?: Promise<Replicas | undefined>;

  /** Use {@link loadClassifier} or {@link createClassifier}. */
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
    this.#replicaCount = init.replicas;
  }

  #forward(pixelValues: Tensor4D, training: boolean): Tensor2D {
    const cls = this.vit.forward(pixelValues, training); // [batch, hidden]
    return tf.matMul(cls, this.classifier.weight, false, true).add(this.classifier.bias); // [batch, labels]
  }

  /**
   * The image transform this model takes its input through: the model's size, the
   * normalisation of `preprocessor_config.json`, and training's augmentation when `augment`.
   *
   * @example
   * ```ts ignore
   * const pixels = transformImage(await decodeImage(bytes), clf.transformSpec());
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
   * Classifies images (encoded JPEG/PNG/TIFF bytes, or decoded RGB), with the evaluation
   * transform the model was trained with (shorter side to the model's size, center crop,
   * normalised by `preprocessor_config.json`): the `topK` classes of each, most probable
   * first. An image that cannot be decoded is an error naming its position.
   *
   * @example
   * ```ts ignore
   * const [top] = await clf.classify([await Deno.readFile("dish.jpg")], { topK: 3 });
   * console.log(top); // [{ label: "ramen", probability: 0.91 }, …]
   * ```
   */
  async classify(
    images: readonly (Uint8Array | RgbImage)[],
    options: { topK?: number; batchSize?: number } = {},
  ): Promise<Prediction[][]> {
    this.#check();
    const size = this.config.image_size, plane = 3 * size * size;
    const spec = this.transformSpec();
    const k = Math.min(options.topK ?? 5, this.labels.length);
    const batchSize = options.batchSize ?? 32;
    const out: Prediction[][] = [];
    for (let start = 0; start < images.length; start += batchSize) {
      const chunk = images.slice(start, start + batchSize);
      const pixels = new Float32Array(chunk.length * plane);
      for (const [i, image] of chunk.entries()) {
        try {
          const rgb = image instanceof Uint8Array ? await decodeImage(image) : image;
          pixels.set(transformImage(rgb, spec), i * plane);
        } catch (e) {
          throw new VitLoraError(`image ${start + i}: ${(e as Error).message}`);
        }
      }
      const x = tf.tensor4d(pixels, [chunk.length, 3, size, size]) as Tensor4D;
      const logits = await this.predictLogits(x);
      x.dispose();
      const [values, indices] = tf.tidy(() => {
        const top = tf.topk(tf.softmax(logits), k);
        return [top.values, top.indices];
      });
      logits.dispose();
      const [p, idx] = [await values.data(), await indices.data()];
      tf.dispose([values, indices]);
      for (let i = 0; i < chunk.length; i++) {
        out.push(
          Array.from({ length: k }, (_, j) => ({
            label: this.labels[idx[i * k + j]],
            index: idx[i * k + j],
            probability: p[i * k + j],
          })),
        );
      }
    }
    return out;
  }

  /**
   * Class scores for `pixelValues` `[batch, channels, H, W]` (HF's NCHW layout, already
   * normalised): `[batch, labels]`. Evaluation mode: no dropout.
   */
  logits(pixelValues: Tensor4D): Tensor2D {
    this.#check();
    return tf.tidy(() => this.#forward(pixelValues, false));
  }

  /**
   * {@link ViTClassifier.logits}, on every core the backend can use: on wasm with replicas
   * (see {@link ClassifierOptions.replicas}), the batch is split between this isolate and the
   * replica workers, which run at the same time. The values are the same as `logits`'.
   *
   * @example
   * ```ts ignore
   * const logits = await clf.predictLogits(pixels); // [batch, labels]
   * console.log(await logits.argMax(1).data());
   * logits.dispose();
   * ```
   */
  async predictLogits(pixelValues: Tensor4D): Promise<Tensor2D> {
    this.#check();
    const batch = pixelValues.shape[0];
    const replicas = batch > 1 ? await this.replicas() : undefined;
    if (!replicas) return this.logits(pixelValues);
    await replicas.sync(this.trainableVariables());
    const size = this.config.image_size, plane = 3 * size * size;
    const [[, own], ...theirs] = splitRows(batch, replicas.size + 1);
    const pixels = (await pixelValues.data()) as Float32Array;
    const answers = theirs.map(([start, end], i) => {
      const part = pixels.slice(start * plane, end * plane);
      return replicas.request(i, { type: "logits", pixels: part, rows: end - start, size }, [
        part.buffer,
      ]);
    });
    const mine = tf.tidy(() => this.logits(pixelValues.slice(0, own) as Tensor4D));
    try {
      const parts = (await Promise.all(answers)).map((a, i) =>
        tf.tensor2d(a.data!, [theirs[i][1] - theirs[i][0], this.labels.length])
      );
      const all = tf.concat([mine, ...parts]) as Tensor2D;
      tf.dispose(parts);
      return all;
    } finally {
      mine.dispose();
    }
  }

  /**
   * The replica workers this classifier splits batches with on the CPU path (see
   * {@link ClassifierOptions.replicas}), started on the first call; undefined when it uses
   * none. They stop when the classifier is disposed.
   */
  replicas(): Promise<Replicas | undefined> {
    this.#check();
    return this.#replicas ??= (async () => {
      const count = this.#replicaCount ?? defaultReplicaCount(this.config);
      if (count <= 0 || tf.getBackend() !== "wasm") return undefined;
      const snapshot = await snapshotClassifier(this);
      return await Replicas.start(snapshot, this.trainableVariables(), count);
    })();
  }

  /** The CLS token after the final layernorm, `[batch, hidden]` (what the head reads). */
  features(pixelValues: Tensor4D): Tensor2D {
    this.#check();
    return tf.tidy(() => this.vit.forward(pixelValues, false));
  }

  /**
   * Mean cross-entropy of the logits against integer `labels` `[batch]`. With
   * `training: true`, dropout is on (LoRA dropout and the config's own).
   */
  loss(pixelValues: Tensor4D, labels: Tensor1D, options: LossOptions = {}): Scalar {
    this.#check();
    return tf.tidy(() => {
      const logits = this.#forward(pixelValues, options.training ?? false);
      const oneHot = tf.oneHot(labels.toInt(), this.labels.length);
      return tf.neg(tf.mean(tf.sum(oneHot.mul(tf.logSoftmax(logits)), 1))) as Scalar;
    });
  }

  /**
   * The loss and its gradient with respect to every trainable tensor, in one pass.
   *
   * @example
   * ```ts ignore
   * const { loss, grads } = clf.lossAndGradients(pixels, labels, { training: true });
   * console.log(await loss.data(), Object.keys(grads));
   * tf.dispose([loss, ...Object.values(grads)]);
   * ```
   */
  lossAndGradients(
    pixelValues: Tensor4D,
    labels: Tensor1D,
    options: LossOptions = {},
  ): LossAndGradients {
    const vars = this.trainableVariables();
    const { value, grads } = tf.variableGrads(
      () => this.loss(pixelValues, labels, options),
      Object.values(vars),
    );
    const byKey: Record<string, Tensor> = {};
    for (const [key, v] of Object.entries(vars)) byKey[key] = grads[v.name];
    return { loss: value, grads: byKey };
  }

  /**
   * The batch's mean loss and its gradients, as {@link ViTClassifier.lossAndGradients} gives
   * them for the whole batch, computed in chunks of at most `chunkSize` images, each weighted
   * by its share of the batch. On wasm with replicas, the chunks are shared out between this
   * isolate and the replicas (the batch is cut into at least as many chunks as there are
   * isolates), which run at the same time. The sums are made in chunk order, so a given
   * chunk size and replica count always give the same result.
   *
   * @example
   * ```ts ignore
   * const { loss, grads } = await clf.batchGradients(
   *   { pixels, labels, size: 8 }, // Float32Array [8·3·224·224], Int32Array [8]
   *   { chunkSize: 2, training: true, dropoutSeed: 42 },
   * );
   * ```
   */
  async batchGradients(
    batch: { pixels: Float32Array; labels: Int32Array; size: number },
    options: BatchGradientOptions = {},
  ): Promise<LossAndGradients> {
    this.#check();
    const size = this.config.image_size, plane = 3 * size * size;
    const training = options.training ?? false;
    const replicas = batch.size > 1 ? await this.replicas() : undefined;
    const isolates = (replicas?.size ?? 0) + 1;
    const chunk = Math.min(options.chunkSize ?? batch.size, Math.ceil(batch.size / isolates));
    const chunks: [number, number][] = [];
    for (let start = 0; start < batch.size; start += chunk) {
      chunks.push([start, Math.min(start + chunk, batch.size)]);
    }
    const seed = (k: number) =>
      options.dropoutSeed === undefined ? undefined : Random.derive(options.dropoutSeed, k).state;
    const vars = this.trainableVariables();
    if (replicas) await replicas.sync(vars);
    // the replicas' chunks first, so that they run while this isolate computes its own
    const parts = new Array<LossAndGradients | Promise<LossAndGradients>>(chunks.length);
    chunks.forEach(([start, end], k) => {
      if (k % isolates === 0) return;
      const pixels = batch.pixels.slice(start * plane, end * plane);
      const labels = batch.labels.slice(start, end);
      const request = { pixels, labels, rows: end - start, size, training, dropoutSeed: seed(k) };
      parts[k] = replicas!
        .request(k % isolates - 1, { type: "gradients", ...request }, [
          pixels.buffer,
          labels.buffer,
        ])
        .then((reply) => ({
          loss: tf.scalar(reply.loss!),
          grads: Object.fromEntries(
            Object.entries(reply.grads!).map(([key, g]) => [key, tf.tensor(g, vars[key].shape)]),
          ),
        }));
    });
    for (let k = 0; k < chunks.length; k += isolates) {
      const [start, end] = chunks[k];
      const x = tf.tensor4d(batch.pixels.subarray(start * plane, end * plane), [
        end - start,
        3,
        size,
        size,
      ]) as Tensor4D;
      const y = tf.tensor1d(batch.labels.subarray(start, end), "int32") as Tensor1D;
      seedDropout(seed(k));
      try {
        parts[k] = this.lossAndGradients(x, y, { training });
      } catch (e) {
        parts[k] = Promise.reject(e);
        break;
      } finally {
        seedDropout(undefined);
        tf.dispose([x, y]);
      }
    }
    const results = await Promise.allSettled(parts.filter((p) => p !== undefined));
    const failed = results.find((r) => r.status === "rejected") as
      | PromiseRejectedResult
      | undefined;
    const done = results.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
    if (failed) {
      for (const part of done) tf.dispose([part.loss, ...Object.values(part.grads)]);
      throw failed.reason;
    }
    if (done.length === 1) return done[0];
    return tf.tidy(() => {
      const sum = (ts: Tensor[]) =>
        ts.reduce(
          (acc, t, k) => acc.add(t.mul((chunks[k][1] - chunks[k][0]) / batch.size)),
          tf.scalar(0),
        );
      const loss = sum(done.map((p) => p.loss)) as Scalar;
      const grads: Record<string, Tensor> = {};
      for (const key of Object.keys(done[0].grads)) grads[key] = sum(done.map((p) => p.grads[key]));
      for (const part of done) tf.dispose([part.loss, ...Object.values(part.grads)]);
      return { loss, grads };
    });
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
   * await clf.saveAdapter("adapter"); // for PEFT on transformers 5
   * await clf.saveAdapter("adapter-t4", { peftFormat: "transformers-4" }); // for transformers 4
   * ```
   */
  async saveAdapter(dir: string, options: { peftFormat?: PeftFormat } = {}): Promise<void> {
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
        tensors[peftLoraKey(module, which, format)] = {
          shape: v.shape,
          data: (await v.data()) as Float32Array,
        };
      }
    }
    for (const [part, v] of Object.entries(this.classifier)) {
      tensors[PEFT_CLASSIFIER_KEYS[part as "weight" | "bias"]] = {
        shape: v.shape,
        data: (await v.data()) as Float32Array,
      };
    }
    const json: Record<string, unknown> = { ...config, base_model_name_or_path: this.baseModel };
    const sorted = Object.fromEntries(Object.keys(json).sort().map((k) => [k, json[k]]));
    await Deno.mkdir(dir, { recursive: true });
    await writeSafetensors(join(dir, "adapter_model.safetensors"), tensors);
    await writeFileAtomic(join(dir, "adapter_config.json"), JSON.stringify(sorted, null, 2) + "\n");
  }

  /**
   * Saves a `ViTForImageClassification` checkpoint with the LoRA updates folded into the
   * weights (`W + scaling · B A`): `config.json` (with `id2label`/`label2id`),
   * `model.safetensors` (`vit.`-prefixed names, the classifier) and
   * `preprocessor_config.json`, which transformers' `from_pretrained` loads as is.
   */
  async saveMerged(dir: string): Promise<void> {
    this.#check();
    const tensors: Record<string, Float32TensorData> = {};
    const merged = this.vit.mergedTensors();
    try {
      for (const [name, t] of merged) {
        tensors[`vit.${name}`] = { shape: t.shape, data: (await t.data()) as Float32Array };
      }
    } finally {
      tf.dispose([...merged.values()]);
    }
    tensors["classifier.weight"] = {
      shape: this.classifier.weight.shape,
      data: (await this.classifier.weight.data()) as Float32Array,
    };
    tensors["classifier.bias"] = {
      shape: this.classifier.bias.shape,
      data: (await this.classifier.bias.data()) as Float32Array,
    };
    const config = {
      ...this.config,
      architectures: ["ViTForImageClassification"],
      id2label: Object.fromEntries(this.labels.map((l, i) => [String(i), l])),
      label2id: Object.fromEntries(this.labels.map((l, i) => [l, i])),
      torch_dtype: "float32",
    };
    const p = this.preprocessor;
    const preprocessor = {
      do_normalize: p.do_normalize,
      do_rescale: p.do_rescale,
      do_resize: p.do_resize,
      image_mean: p.image_mean,
      image_processor_type: "ViTImageProcessor",
      image_std: p.image_std,
      resample: p.resample,
      rescale_factor: p.rescale_factor,
      size: p.size,
    };
    await Deno.mkdir(dir, { recursive: true });
    await writeSafetensors(join(dir, "model.safetensors"), tensors);
    await writeFileAtomic(join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
    await writeFileAtomic(
      join(dir, "preprocessor_config.json"),
      JSON.stringify(preprocessor, null, 2) + "\n",
    );
  }

  /** Frees every tensor and variable of this classifier; it cannot be used afterwards. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#replicas?.then((r) => r?.close(), () => {});
    this.vit.dispose(); // the LoRA layers hang on its linear layers
    this.classifier.weight.dispose();
    this.classifier.bias.dispose();
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
 * import { countParameters, loraConfig, VIT_BASE_CONFIG } from "@lora/vit";
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

/** Where tensors come from when a classifier is assembled. */
interface Parts {
  config: ViTConfig;
  preprocessor: PreprocessorConfig;
  baseModel: string;
  /** Encoder tensors by `ViTModel` name (linear weights transposed, see `takesTransposed`). */
  encoder: (name: string) => Tensor;
  /** The checkpoint's head, when it has one. */
  head?: { weight: Tensor2D; bias: Tensor1D; source: string };
}

/** An adapter read from disk and checked against the model. */
interface Adapter {
  /** Its config, as read. */
  config: LoraConfig;
  /** The naming of its keys and config. */
  format: PeftFormat;
  /** The modules it targets, with their ranks and alphas. */
  targets: LoraTarget[];
  /** LoRA's A and B by module (this module's own names). */
  lora: Map<string, { A: Tensor2D; B: Tensor2D }>;
  /** The classifier, when `modules_to_save` names it. */
  head?: { weight: Tensor2D; bias: Tensor1D };
  /** Where it came from. */
  source: string;
}

/** Every tensor of an adapter, to dispose. */
function adapterTensors(adapter: Adapter): Tensor[] {
  const head: Tensor[] = adapter.head ? [adapter.head.weight, adapter.head.bias] : [];
  return [...adapter.lora.values()].flatMap(({ A, B }): Tensor[] => [A, B]).concat(head);
}

/** An adapter's folder: `source` itself, or its download when it is a Hub id. */
async function adapterFolder(source: string, hub: HubDownloadOptions): Promise<string> {
  if ((await exists(source)) || !isRepoId(source)) return source;
  const { id, revision } = parseRepoId(source);
  return await downloadAdapter(id, { progress: hub.progress, settings: hub.settings, revision });
}

/**
 * Reads a PEFT adapter folder, in either generation's names (see `peft_format.ts`): its
 * tensors' keys say which, and its config must target exactly the modules they hold, as PEFT
 * would load them. Anything else (keys of both generations, a config naming the other
 * generation's modules, a missing, extra or misshapen tensor) is one clear error.
 */
async function readAdapter(dir: string, config: ViTConfig): Promise<Adapter> {
  const configPath = join(dir, "adapter_config.json");
  const lora = parseAdapterConfig(await readJsonFile(configPath), configPath);
  const path = join(dir, "adapter_model.safetensors");
  if (!(await exists(path)) && (await exists(join(dir, "adapter_model.bin")))) {
    throw new VitLoraError(
      `${path}: not found; the folder has adapter_model.bin (a PyTorch pickle), which this module does not read: save the adapter with safe_serialization=True`,
    );
  }
  using file = await openSafetensors(path);
  const modules = linearModules(config);
  const targetsIn = (f: PeftFormat) => {
    try {
      return loraTargets(lora, modules, f);
    } catch (e) {
      throw new VitLoraError(`${configPath}: ${(e as Error).message}`);
    }
  };
  // the tensors' names say which generation wrote them; without LoRA tensors, the config does
  const format = keysFormat(file.entries.keys(), path) ??
    PEFT_FORMATS.find((f) => targetsIn(f).length > 0) ?? DEFAULT_PEFT_FORMAT;
  const targets = targetsIn(format);
  const described = `target_modules ${JSON.stringify(lora.target_modules)}${
    lora.layers_to_transform != null
      ? ` (layers_to_transform ${JSON.stringify(lora.layers_to_transform)})`
      : ""
  }`;
  if (targets.length === 0) {
    const other = PEFT_FORMATS.find((f) => f !== format)!;
    if (targetsIn(other).length > 0) {
      const example = [...file.entries.keys()].find((k) => parsePeftKey(k).kind === "lora");
      throw new VitLoraError(
        `${configPath}: ${described} names ${other}'s modules, but the tensors of ${path} use ${format}'s names ('${example}'): the config and the tensors disagree, and PEFT would not load this adapter`,
      );
    }
    throw new VitLoraError(`${configPath}: ${described} matches no linear layer of the ViT`);
  }
  const adapter: Adapter = { config: lora, format, targets, lora: new Map(), source: dir };
  const read = new Set<string>();
  const readTensor = async (key: string, shape: number[], expectation: string) => {
    read.add(key);
    return await readChecked(file, key, shape, expectation) as Tensor2D;
  };
  try {
    for (const t of targets) {
      const [out, inp] = linearShape(config, t.module);
      const expectation =
        `${configPath} (r ${t.r} for ${t.module}, hidden_size ${config.hidden_size})`;
      const A = await readTensor(peftLoraKey(t.module, "lora_A", format), [t.r, inp], expectation);
      try {
        const B = await readTensor(
          peftLoraKey(t.module, "lora_B", format),
          [out, t.r],
          expectation,
        );
        adapter.lora.set(t.module, { A, B });
      } catch (e) {
        A.dispose();
        throw e;
      }
    }
    if (lora.modules_to_save?.includes("classifier")) {
      for (const key of Object.values(PEFT_CLASSIFIER_KEYS)) {
        if (!file.entries.has(key)) {
          throw new VitLoraError(
            `${path}: missing tensor '${key}' (modules_to_save names the classifier)`,
          );
        }
      }
      const numLabels = file.entries.get(PEFT_CLASSIFIER_KEYS.weight)!.shape[0];
      const weight = await readTensor(
        PEFT_CLASSIFIER_KEYS.weight,
        [numLabels, config.hidden_size],
        `hidden_size ${config.hidden_size}`,
      );
      try {
        const bias = await readTensor(
          PEFT_CLASSIFIER_KEYS.bias,
          [numLabels],
          `${numLabels} classes`,
        );
        adapter.head = { weight, bias: bias as unknown as Tensor1D };
      } catch (e) {
        weight.dispose();
        throw e;
      }
    }
    for (const key of file.entries.keys()) {
      if (!read.has(key)) {
        throw new VitLoraError(
          `${path}: tensor '${key}' is not one that ${configPath} describes (${described}, ${format}'s names)`,
        );
      }
    }
  } catch (e) {
    tf.dispose(adapterTensors(adapter));
    throw e;
  }
  return adapter;
}

/**
 * Reads a float tensor whose shape must be `shape`; `expectation` says where that shape comes
 * from. With `transposed`, a weight `[out, …in]` comes back as `[in, out]`.
 */
async function readChecked(
  file: SafetensorsFile,
  name: string,
  shape: number[],
  expectation: string,
  transposed = false,
): Promise<Tensor> {
  const entry = file.entries.get(name);
  if (!entry) {
    throw new VitLoraError(
      `${file.path}: missing tensor '${name}' (expected ${formatShape(shape)})`,
    );
  }
  if (!sameShape(entry.shape, shape)) {
    throw new VitLoraError(
      `${file.path}: tensor '${name}' has shape ${
        formatShape(entry.shape)
      }, but ${expectation} needs ${formatShape(shape)}`,
    );
  }
  if (!isFloatDtype(entry.dtype)) {
    throw new VitLoraError(`${file.path}: tensor '${name}' is ${entry.dtype}, not a float type`);
  }
  const t = await file.read(name);
  if (transposed) {
    const w = transposeWeight(t.data as Float32Array, t.shape);
    return tf.tensor2d(w.data, w.shape);
  }
  return tf.tensor(t.data, t.shape, "float32");
}

/** Reads a model folder: config, preprocessor config, and the checked checkpoint. */
async function readModel(
  source: string,
  hub: HubDownloadOptions,
): Promise<Parts & { tensors: Map<string, Tensor> }> {
  let dir = source;
  if (!(await exists(dir))) {
    if (!isRepoId(source)) throw new VitLoraError(`${dir}: no such model folder`);
    const { id, revision } = parseRepoId(source);
    dir = await downloadModel(id, { ...hub, revision: revision ?? hub.revision });
  }
  const configPath = join(dir, "config.json");
  const config = parseViTConfig(await readJsonFile(configPath), configPath);
  const preprocessorPath = join(dir, "preprocessor_config.json");
  const preprocessor = parsePreprocessorConfig(
    (await exists(preprocessorPath))
      ? await readJsonFile(preprocessorPath)
      : { size: config.image_size },
    preprocessorPath,
  );
  const path = join(dir, "model.safetensors");
  if (!(await exists(path)) && (await exists(join(dir, "pytorch_model.bin")))) {
    throw new VitLoraError(
      `${path}: not found; the folder has only pytorch_model.bin (a PyTorch pickle), which this module does not read: convert it to safetensors`,
    );
  }
  using file = await openSafetensors(path);
  const prefix = file.entries.has("vit.embeddings.cls_token")
    ? "vit."
    : file.entries.has("embeddings.cls_token")
    ? ""
    : undefined;
  if (prefix === undefined) {
    throw new VitLoraError(
      `${path}: not a ViT checkpoint (no 'embeddings.cls_token' or 'vit.embeddings.cls_token')`,
    );
  }
  const describe =
    `${configPath} (hidden_size ${config.hidden_size}, ${config.num_hidden_layers} layers, intermediate_size ${config.intermediate_size}, image_size ${config.image_size}, patch_size ${config.patch_size})`;
  const tensors = new Map<string, Tensor>();
  let head: Parts["head"];
  try {
    for (const [name, shape] of vitTensorShapes(config)) {
      tensors.set(
        name,
        await readChecked(file, prefix + name, shape, describe, takesTransposed(name)),
      );
    }
    if (file.entries.has("classifier.weight")) {
      const rows = file.entries.get("classifier.weight")!.shape[0];
      head = {
        weight: await readChecked(
          file,
          "classifier.weight",
          [rows, config.hidden_size],
          describe,
        ) as Tensor2D,
        bias: await readChecked(file, "classifier.bias", [rows], `${rows} classes`) as Tensor1D,
        source: path,
      };
    }
  } catch (e) {
    tf.dispose([...tensors.values()]);
    throw e;
  }
  return {
    config,
    preprocessor,
    baseModel: source,
    tensors,
    encoder: (name) => tensors.get(name)!,
    head,
  };
}

function assemble(
  parts: Parts,
  adapter: Adapter | undefined,
  options: ClassifierOptions,
): ViTClassifier {
  const { config } = parts;
  const loraSeed = seeds(options.seed ?? 0, STREAM.lora);
  const adapterHead = adapter?.head?.weight;
  const headRows = adapterHead?.shape[0] ?? parts.head?.weight.shape[0];
  const headSource = adapterHead
    ? join(adapter!.source, "adapter_model.safetensors")
    : parts.head?.source;
  if (options.labels && headRows !== undefined && options.labels.length !== headRows) {
    throw new VitLoraError(
      `${headSource}: the classifier has ${headRows} classes, but ${options.labels.length} labels were given`,
    );
  }
  const fromConfig = configLabels(config);
  const numLabels = headRows ?? options.labels?.length ?? fromConfig?.length ?? 2;
  const labels = options.labels ??
    (fromConfig?.length === numLabels
      ? fromConfig
      : Array.from({ length: numLabels }, (_, i) => `LABEL_${i}`));
  if (new Set(labels).size !== labels.length) {
    throw new VitLoraError("labels: class names must be distinct");
  }

  // the LoRA config (an adapter's, or a new one), in the classifier's naming
  const modules = linearModules(config);
  const peftFormat = options.peftFormat ?? adapter?.format ?? DEFAULT_PEFT_FORMAT;
  let lora = adapter?.config ??
    (options.lora ? loraConfig(options.lora, parts.baseModel) : undefined);
  const targets = adapter?.targets ?? (lora ? loraTargets(lora, modules) : []);
  if (lora && targets.length === 0) {
    throw new VitLoraError(
      `lora.targetModules ${
        JSON.stringify(lora.target_modules)
      } matches no linear layer of the ViT`,
    );
  }
  if (lora) lora = loraConfigIn(lora, targets, modules, peftFormat);
  if (lora && options.loraDropout !== undefined) {
    lora = { ...lora, lora_dropout: options.loraDropout };
  }

  const vit = ViTModel.fromTensors(config, parts.encoder);
  const loraLayers = new Map<string, LoraLayer>();
  if (lora) {
    const linears = vit.linears();
    for (const t of targets) {
      const [out, inp] = linearShape(config, t.module);
      const A = adapter?.lora.get(t.module)?.A ??
        // kaiming_uniform_(a=√5) on [r, in]: bound = gain·√(3/fan_in) = 1/√in.
        tf.randomUniform(
          [t.r, inp],
          -1 / Math.sqrt(inp),
          1 / Math.sqrt(inp),
          "float32",
          loraSeed(),
        );
      const B = adapter?.lora.get(t.module)?.B ?? tf.zeros([out, t.r]);
      const layer = new LoraLayer(A, B, t.scaling, lora.lora_dropout);
      A.dispose();
      B.dispose();
      linears.get(t.module)!.lora = layer;
      loraLayers.set(t.module, layer);
    }
  }
  let weight: Tensor2D, bias: Tensor1D;
  if (adapterHead) {
    weight = adapterHead;
    bias = adapter!.head!.bias;
    if (parts.head) tf.dispose([parts.head.weight, parts.head.bias]);
  } else if (parts.head) {
    ({ weight, bias } = parts.head);
  } else {
    // transformers' _init_weights: trunc_normal_(std=initializer_range) with PyTorch's default
    // bounds of ±2 (absolute, i.e. ±100 std): a plain normal in practice. Bias zeros.
    weight = tf.randomNormal(
      [numLabels, config.hidden_size],
      0,
      config.initializer_range,
      "float32",
      seeds(options.seed ?? 0, STREAM.head)(),
    );
    bias = tf.zeros([numLabels]);
  }
  const classifier = new ViTClassifier({
    config,
    preprocessor: parts.preprocessor,
    labels,
    lora,
    peftFormat,
    targets: lora ? targets : [],
    baseModel: parts.baseModel,
    vit,
    classifier: { weight, bias },
    loraLayers,
    replicas: options.replicas,
  });
  tf.dispose([weight, bias]);
  return classifier;
}

/**
 * Loads a classifier from a model folder in Hugging Face layout (`config.json`,
 * `model.safetensors`, optionally `preprocessor_config.json`), either checkpoint shape:
 * a `ViTModel` (no head: a new one is made for `labels`) or a `ViTForImageClassification`.
 * With `adapter`, a PEFT LoRA adapter is applied; with `lora`, a new one is started.
 *
 * @example
 * ```ts ignore
 * import { loadClassifier } from "@lora/vit";
 * const clf = await loadClassifier("models/vit-base-patch16-224-in21k", {
 *   labels: ["apple_pie", "baby_back_ribs"],
 *   lora: { r: 32, alpha: 16, dropout: 0.1, targetModules: ["query", "value"] },
 * });
 * console.log(clf.parameterCount());
 * ```
 */
export async function loadClassifier(
  source: string,
  options: ClassifierOptions = {},
): Promise<ViTClassifier> {
  await initBackend(options.backend);
  const hub = { revision: options.revision, progress: options.progress, settings: options.hub };
  const model = await readModel(source, hub);
  let adapter: Adapter | undefined;
  try {
    adapter = options.adapter
      ? await readAdapter(await adapterFolder(options.adapter, hub), model.config)
      : undefined;
    const clf = assemble(model, adapter, options);
    if (adapter) tf.dispose(adapterTensors(adapter));
    return clf;
  } catch (e) {
    tf.dispose([...model.tensors.values()]);
    if (model.head) tf.dispose([model.head.weight, model.head.bias]);
    if (adapter) tf.dispose(adapterTensors(adapter));
    throw e;
  }
}

/**
 * Builds a classifier with new random weights from a config, initialised as transformers
 * does (normal std `initializer_range` for weights, zero biases, unit LayerNorms): for
 * benchmarks, demos and tests that need no download.
 *
 * @example
 * ```ts ignore
 * import { createClassifier, parseViTConfig } from "@lora/vit";
 * const config = parseViTConfig({ hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4,
 *   intermediate_size: 128, image_size: 32, patch_size: 8 });
 * const clf = await createClassifier(config, { labels: ["cat", "dog"], lora: { r: 4 } });
 * ```
 */
export async function createClassifier(
  config: ViTConfig,
  options: ClassifierOptions & { preprocessor?: PreprocessorConfig } = {},
): Promise<ViTClassifier> {
  await initBackend(options.backend);
  const nextSeed = seeds(options.seed ?? 0, STREAM.encoder);
  const std = config.initializer_range;
  const shapes = vitTensorShapes(config);
  const encoder = (name: string): Tensor => {
    const shape = shapes.get(name)!;
    if (takesTransposed(name)) {
      return tf.randomNormal([numel(shape.slice(1)), shape[0]], 0, std, "float32", nextSeed());
    }
    if (name.includes("layernorm") && name.endsWith(".weight")) return tf.ones(shape);
    if (name.endsWith(".bias")) return tf.zeros(shape);
    return tf.randomNormal(shape, 0, std, "float32", nextSeed());
  };
  const parts: Parts = {
    config,
    preprocessor: options.preprocessor ?? parsePreprocessorConfig({ size: config.image_size }),
    baseModel: "(random init)",
    encoder,
  };
  const adapter = options.adapter
    ? await readAdapter(
      await adapterFolder(options.adapter, { progress: options.progress, settings: options.hub }),
      config,
    )
    : undefined;
  try {
    return assemble(parts, adapter, options);
  } finally {
    if (adapter) tf.dispose(adapterTensors(adapter));
  }
}

/**
 * Replicas a classifier starts by default: on the wasm backend, one per further core (up to
 * 3) when a forward pass costs over a GFLOP an image; none otherwise.
 */
function defaultReplicaCount(config: ViTConfig): number {
  if (tf.getBackend() !== "wasm") return 0;
  const { hidden_size: h, intermediate_size: i, num_hidden_layers: layers } = config;
  const tokens = (config.image_size / config.patch_size) ** 2 + 1;
  const flops = 2 * layers * tokens * (4 * h * h + 2 * h * i + 2 * tokens * h);
  if (flops < 1e9) return 0;
  return Math.max(0, Math.min(3, (navigator.hardwareConcurrency ?? 1) - 1));
}

/**
 * A classifier as plain data (configs, labels, every tensor's values), from which
 * {@link classifierFromSnapshot} builds an equal copy: what a worker receives to run a
 * replica of the model (see `replicas.ts`).
 */
export interface ClassifierSnapshot {
  /** {@link ViTClassifier.config}. */
  config: ViTConfig;
  /** {@link ViTClassifier.preprocessor}. */
  preprocessor: PreprocessorConfig;
  /** {@link ViTClassifier.labels}. */
  labels: string[];
  /** {@link ViTClassifier.lora}. */
  lora: LoraConfig | undefined;
  /** {@link ViTClassifier.peftFormat}. */
  peftFormat: PeftFormat;
  /** {@link ViTClassifier.baseModel}. */
  baseModel: string;
  /** The frozen encoder tensors, by `ViTModel` name (linear weights `[in, out]`). */
  encoder: Record<string, Float32TensorData>;
  /** The trainable tensors, by PEFT name (see {@link ViTClassifier.trainableVariables}). */
  trainable: Record<string, Float32TensorData>;
}

/**
 * Reads every tensor of `clf` into a {@link ClassifierSnapshot}.
 *
 * @example
 * ```ts ignore
 * const snapshot = await snapshotClassifier(clf); // plain data: postMessage it to a worker
 * const copy = classifierFromSnapshot(snapshot); // there: the same model
 * ```
 */
export async function snapshotClassifier(clf: ViTClassifier): Promise<ClassifierSnapshot> {
  const read = async (entries: Iterable<[string, Tensor]>) => {
    const out: Record<string, Float32TensorData> = {};
    for (const [name, t] of entries) {
      out[name] = { shape: t.shape, data: (await t.data()) as Float32Array };
    }
    return out;
  };
  return {
    config: clf.config,
    preprocessor: clf.preprocessor,
    labels: clf.labels,
    lora: clf.lora,
    peftFormat: clf.peftFormat,
    baseModel: clf.baseModel,
    encoder: await read(clf.vit.tensors()),
    trainable: await read(Object.entries(clf.trainableVariables())),
  };
}

/**
 * Builds a classifier equal to the one `snapshot` was read from, on the current backend.
 *
 * @example
 * ```ts ignore
 * self.onmessage = (e) => { clf = classifierFromSnapshot(e.data.snapshot); };
 * ```
 */
export function classifierFromSnapshot(snapshot: ClassifierSnapshot): ViTClassifier {
  const tensor = ({ shape, data }: Float32TensorData) => tf.tensor(data, [...shape], "float32");
  const trainable = new Map(
    Object.entries(snapshot.trainable).map(([k, v]) => [k, tensor(v)] as [string, Tensor]),
  );
  const parts: Parts = {
    config: snapshot.config,
    preprocessor: snapshot.preprocessor,
    baseModel: snapshot.baseModel,
    encoder: (name) => tensor(snapshot.encoder[name]),
  };
  const options = { labels: snapshot.labels, peftFormat: snapshot.peftFormat };
  const head = {
    weight: trainable.get(PEFT_CLASSIFIER_KEYS.weight) as Tensor2D,
    bias: trainable.get(PEFT_CLASSIFIER_KEYS.bias) as Tensor1D,
  };
  if (!snapshot.lora) {
    parts.head = { ...head, source: "(snapshot)" };
    return assemble(parts, undefined, options);
  }
  const lora = new Map<string, { A: Tensor2D; B: Tensor2D }>();
  for (const [key, t] of trainable) {
    const k = parsePeftKey(key);
    if (k.kind !== "lora") continue;
    const entry = lora.get(k.module) ?? {} as { A: Tensor2D; B: Tensor2D };
    entry[k.which === "lora_A" ? "A" : "B"] = t as Tensor2D;
    lora.set(k.module, entry);
  }
  const adapter: Adapter = {
    config: snapshot.lora,
    format: snapshot.peftFormat,
    targets: loraTargets(snapshot.lora, linearModules(snapshot.config), snapshot.peftFormat),
    lora,
    head,
    source: "(snapshot)",
  };
  try {
    return assemble(parts, adapter, options);
  } finally {
    tf.dispose([...trainable.values()]);
  }
}
