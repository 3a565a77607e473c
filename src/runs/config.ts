/**
 * A training run's options, declared once (see `core/options.ts`): {@link TRAIN_CONFIG_OPTIONS}
 * is the configuration a run records in `config.json` and keeps when resumed (the reference
 * recipe's defaults), {@link TRAIN_RUN_OPTIONS} how a run runs, and {@link SHARED_OPTIONS} the
 * options other commands (eval, predict, export) share with training. `train()`'s option types,
 * its defaults and checks, `deno task train`'s flags and help, and the README's table all come
 * from these tables.
 *
 * @module
 */

import {
  checkOptions,
  optionDefaults,
  type OptionInputs,
  type OptionSchema,
  type OptionValues,
} from "../core/options.ts";

/** Options several commands share; each command adds its own default where it has one. */
export const SHARED_OPTIONS = {
  /** Base model: a Hub id (`owner/name[@revision]`) or a folder in Hugging Face layout. */
  model: {
    kind: "string",
    flag: "model",
    arg: "ID|DIR",
    help: "base model: a Hub id (owner/name[@revision]) or a folder in HF layout",
    section: "data and model",
  },
  /** Images: an image folder, a folder of parquet shards, or a Hub dataset id. */
  data: {
    kind: "string",
    flag: "data",
    arg: "ID|DIR",
    help: "images: a folder of class folders (imagefolder), a folder of parquet\n" +
      "shards, or a Hub dataset id",
    section: "data and model",
  },
  /** A PEFT LoRA adapter: a folder or a Hub id. */
  adapter: {
    kind: "string",
    flag: "adapter",
    arg: "ID|DIR",
    help: "a PEFT LoRA adapter (folder or Hub id)",
    section: "data and model",
  },
  /** A training run's folder. */
  run: {
    kind: "string",
    flag: "run",
    arg: "RUN",
    help: "a training run's folder: its model, data, split and adapters",
    section: "data and model",
  },
  /** The column of a parquet dataset holding the images. */
  imageColumn: {
    kind: "string",
    flag: "image-column",
    arg: "NAME",
    defaultText: "image, else img",
    help: "parquet: the column of images",
    section: "data and model",
  },
  /** The column of a parquet dataset holding the labels. */
  labelColumn: {
    kind: "string",
    flag: "label-column",
    arg: "NAME",
    defaultText: "label, else labels",
    help: "parquet: the column of labels",
    section: "data and model",
  },
  /** The tfjs backend. */
  backend: {
    kind: "choice",
    choices: ["webgpu", "wasm", "cpu"],
    flag: "backend",
    arg: "NAME",
    defaultText: "VIT_LORA_BACKEND, else webgpu on a hardware GPU, else wasm",
    help: "webgpu, wasm or cpu",
    section: "run",
  },
  /** Images decoded in workers at once (0 decodes on the main thread). */
  workers: {
    kind: "integer",
    min: 0,
    flag: "workers",
    arg: "N",
    defaultText: "cores - 1",
    help: "decoding workers",
    section: "run",
  },
  /** Model copies in workers on wasm, sharing each batch with this isolate. */
  replicas: {
    kind: "integer",
    min: 0,
    flag: "replicas",
    arg: "N",
    defaultText: "one per further core, up to 3, for models of ViT-B's size",
    help: "model copies in workers on wasm, to use every core",
    section: "run",
  },
  /** Images a batch. */
  batchSize: {
    kind: "integer",
    min: 1,
    flag: "batch-size",
    arg: "N",
    help: "images a micro-batch",
    section: "recipe",
  },
  /** Batches decoded ahead. */
  prefetch: {
    kind: "integer",
    min: 0,
    flag: "prefetch",
    arg: "N",
    defaultText: "2",
    help: "batches decoded ahead",
    section: "run",
  },
} as const satisfies OptionSchema;

/** The configuration of a training run: what `config.json` records; the reference recipe's defaults. */
export const TRAIN_CONFIG_OPTIONS = {
  /** Base model (default `google/vit-base-patch16-224-in21k`). */
  model: { ...SHARED_OPTIONS.model, default: "google/vit-base-patch16-224-in21k" },
  /** Dataset (default `ethz/food101`). */
  data: { ...SHARED_OPTIONS.data, default: "ethz/food101" },
  /** Start from this adapter (its r, alpha, targets and classifier) instead of a new one. */
  adapter: {
    ...SHARED_OPTIONS.adapter,
    help: "start from this PEFT adapter (its r, alpha, targets and classifier)",
  },
  /** Parquet: the image column (default `image`, else `img`). */
  imageColumn: SHARED_OPTIONS.imageColumn,
  /** Parquet: the label column (default `label`, else `labels`). */
  labelColumn: SHARED_OPTIONS.labelColumn,
  /**
   * Class names, by label id, for a parquet dataset whose metadata has none (else its
   * `labels.txt`, else `class_0 …`).
   */
  labels: {
    kind: "list",
    flag: "labels",
    arg: "A,B,…",
    defaultText: "the dataset's ClassLabel names, else labels.txt",
    help: "class names by label id, for data without them",
    section: "data and model",
  },
  /** Part of the train split carved out for validation when the data has no validation split. */
  validationFraction: {
    kind: "number",
    min: 0,
    below: 1,
    flag: "validation-fraction",
    arg: "F",
    default: 0.15,
    help: "part of train held out for validation, when the data has no\nvalidation split",
    section: "data and model",
  },
  /** Part of the validation split held out as the test split when the data has no test split. */
  testFraction: {
    kind: "number",
    min: 0,
    below: 1,
    flag: "test-fraction",
    arg: "F",
    default: 0.3,
    help: "part of validation held out as test, when the data has no test split",
    section: "data and model",
  },
  /** Passes over the training split. */
  epochs: {
    kind: "integer",
    min: 1,
    flag: "epochs",
    arg: "N",
    default: 5,
    help: "passes over the training split",
    section: "recipe",
  },
  /** Images a micro-batch. */
  batchSize: { ...SHARED_OPTIONS.batchSize, default: 64 },
  /** Micro-batches an optimizer step. */
  gradAccum: {
    kind: "integer",
    min: 1,
    flag: "grad-accum",
    arg: "N",
    default: 4,
    help: "micro-batches an optimizer step",
    section: "recipe",
  },
  /** Peak learning rate, decayed linearly to 0. */
  lr: {
    kind: "number",
    min: 0,
    flag: "lr",
    arg: "X",
    default: 5e-3,
    help: "peak learning rate, decayed linearly to 0",
    section: "recipe",
  },
  /** AdamW's decoupled weight decay, biases excluded as HF Trainer does. */
  weightDecay: {
    kind: "number",
    min: 0,
    flag: "weight-decay",
    arg: "X",
    default: 0,
    help: "AdamW's decoupled weight decay (not on biases, as HF Trainer)",
    section: "recipe",
  },
  /** Fraction of the steps spent warming the rate up from 0. */
  warmupRatio: {
    kind: "number",
    min: 0,
    below: 1,
    flag: "warmup-ratio",
    arg: "X",
    default: 0,
    help: "fraction of steps warming up from 0",
    section: "recipe",
  },
  /** Stop after this many optimizer steps (default: all epochs). */
  maxSteps: {
    kind: "integer",
    min: 1,
    flag: "max-steps",
    arg: "N",
    help: "stop after N optimizer steps",
    section: "recipe",
  },
  /** Clip gradients to this global L2 norm (0 turns clipping off). */
  maxGradNorm: {
    kind: "number",
    min: 0,
    flag: "max-grad-norm",
    arg: "X",
    default: 1,
    help: "clip gradients to this global L2 norm (0: no clipping)",
    section: "recipe",
  },
  /** Label smoothing of the loss, as Trainer's `label_smoothing_factor`. */
  labelSmoothing: {
    kind: "number",
    min: 0,
    below: 1,
    flag: "label-smoothing",
    arg: "X",
    default: 0,
    help: "label smoothing of the loss (Trainer's label_smoothing_factor)",
    section: "recipe",
  },
  /**
   * Stop when validation accuracy has not improved for this many evaluations, as transformers'
   * `EarlyStoppingCallback` (default: never).
   */
  earlyStoppingPatience: {
    kind: "integer",
    min: 1,
    flag: "early-stopping-patience",
    arg: "N",
    help: "stop after N epochs without a better validation accuracy",
    section: "recipe",
  },
  /** How much better validation accuracy must be to count as better, for early stopping. */
  earlyStoppingThreshold: {
    kind: "number",
    min: 0,
    flag: "early-stopping-threshold",
    arg: "X",
    default: 0,
    help: "the improvement early stopping counts as better",
    section: "recipe",
  },
  /** LoRA rank of a new adapter. */
  loraR: {
    kind: "integer",
    min: 1,
    flag: "lora-r",
    arg: "N",
    default: 32,
    help: "LoRA rank",
    section: "recipe",
  },
  /** LoRA alpha. */
  loraAlpha: {
    kind: "number",
    min: 0,
    flag: "lora-alpha",
    arg: "X",
    default: 16,
    help: "LoRA alpha",
    section: "recipe",
  },
  /** Dropout on the LoRA branch's input (also overrides an adapter's). */
  loraDropout: {
    kind: "number",
    min: 0,
    below: 1,
    flag: "lora-dropout",
    arg: "X",
    default: 0.1,
    help: "dropout on the LoRA input (also overrides an --adapter's)",
    section: "recipe",
  },
  /** Modules that get LoRA, in either generation's names: `query` and `q_proj` are the same. */
  targetModules: {
    kind: "list",
    flag: "target-modules",
    arg: "A,B",
    default: ["query", "value"],
    help: "modules that get LoRA, in either generation's names: query,value\n" +
      "and q_proj,v_proj are the same",
    section: "recipe",
  },
  /**
   * The naming the adapters are saved in: `transformers-5` (what PEFT reads on today's
   * transformers) or `transformers-4` (PEFT on transformers 4.x). See `peft_format.ts`.
   */
  peftFormat: {
    kind: "choice",
    choices: ["transformers-5", "transformers-4"],
    flag: "peft-format",
    arg: "F",
    default: "transformers-5",
    help: "the adapters' naming: transformers-5 (PEFT on transformers 5) or\n" +
      "transformers-4 (PEFT on transformers 4.x)",
    section: "recipe",
  },
  /** Seed of the split, the order, the augmentation, dropout and new weights. */
  seed: {
    kind: "integer",
    min: 0,
    flag: "seed",
    arg: "N",
    default: 42,
    help: "seed of split, order, augmentation, dropout, new weights",
    section: "recipe",
  },
  /**
   * Training augmentation: `standard` (RandomResizedCrop + flip, the recipe's), `trivial`
   * (those, then torchvision's TrivialAugmentWide) or `none` (the evaluation transform).
   */
  augment: {
    kind: "choice",
    choices: ["standard", "trivial", "none"],
    negated: "none",
    flag: "augment",
    arg: "A",
    default: "standard",
    help: "standard (RandomResizedCrop + flip), trivial (and TrivialAugmentWide)\n" +
      "or none (the evaluation transform; also --no-augment)",
    section: "recipe",
  },
  /**
   * The arithmetic: `fp16` is PyTorch's mixed precision as Trainer's `fp16=True` runs it
   * (frozen weights and products in float16, LayerNorm, softmax, the loss and the trainable
   * tensors in float32, dynamic loss scaling; WebGPU with `shader-f16`), `fp32` is exact
   * against transformers, `auto` is fp16 on a hardware GPU that offers it, else fp32.
   */
  precision: {
    kind: "choice",
    choices: ["auto", "fp32", "fp16"],
    flag: "precision",
    arg: "P",
    default: "auto",
    help: "fp16 (mixed precision, as Trainer's fp16=True; WebGPU), fp32, or auto:\n" +
      "fp16 on a hardware GPU with shader-f16, else fp32",
    section: "recipe",
  },
  /** Shuffle the training rows each epoch. */
  shuffle: {
    kind: "boolean",
    flag: "shuffle",
    default: true,
    help: "train in file order",
    section: "recipe",
  },
  /** Rows shuffled together (see `sampler.ts`). */
  shuffleWindow: {
    kind: "integer",
    min: 1,
    flag: "shuffle-window",
    arg: "N",
    default: 4096,
    help: "rows shuffled together (row groups are shuffled as well)",
    section: "recipe",
  },
  /**
   * Images a forward + backward pass takes; a batch is split into chunks of this size whose
   * gradients add up to the batch's (default: as many as fit 12 GiB of activations).
   */
  chunkSize: {
    kind: "integer",
    min: 1,
    flag: "chunk-size",
    arg: "N",
    defaultText: "what fits 12 GiB, 13 for ViT-B",
    help: "images a forward/backward pass; batches are split into chunks whose\n" +
      "gradients add up to the batch's",
    section: "run",
  },
} as const satisfies OptionSchema;

/** How a training run runs: not part of its configuration. */
export const TRAIN_RUN_OPTIONS = {
  /** The run folder (default `runs/<date-time>`). */
  out: {
    kind: "string",
    flag: "out",
    arg: "RUN",
    defaultText: "runs/<date-time>",
    help: "the run folder",
    section: "run",
  },
  /** Continue the run in this folder from its last complete checkpoint. */
  resume: {
    kind: "string",
    flag: "resume",
    arg: "RUN",
    help: "continue RUN from its last complete checkpoint",
    section: "run",
  },
  /** The tfjs backend. */
  backend: SHARED_OPTIONS.backend,
  /** Decoding workers (0 decodes on the main thread). */
  workers: SHARED_OPTIONS.workers,
  /** Model replicas in workers on wasm (see `ClassifierOptions.replicas`). */
  replicas: SHARED_OPTIONS.replicas,
  /** Batches decoded ahead. */
  prefetch: SHARED_OPTIONS.prefetch,
} as const satisfies OptionSchema;

/** The training configuration: every field has the reference recipe's default or is optional. */
export type TrainConfig = OptionValues<typeof TRAIN_CONFIG_OPTIONS>;

/** How a training run runs (see {@link TRAIN_RUN_OPTIONS}). */
export type TrainRunOptions = OptionInputs<typeof TRAIN_RUN_OPTIONS>;

/** The reference recipe (HF ViT + PEFT on Food-101): the defaults of {@link TRAIN_CONFIG_OPTIONS}. */
export const DEFAULT_TRAIN_CONFIG: Readonly<TrainConfig> = Object.freeze(
  optionDefaults(TRAIN_CONFIG_OPTIONS),
);

/** The keys of {@link TrainConfig}. */
export const TRAIN_CONFIG_KEYS: readonly (keyof TrainConfig)[] = Object.keys(
  TRAIN_CONFIG_OPTIONS,
) as (keyof TrainConfig)[];

/** Checks a configuration; a bad value is a `VitLoraError` naming the option's flag. */
export function checkTrainConfig(config: TrainConfig): void {
  checkOptions(TRAIN_CONFIG_OPTIONS, config);
}

/**
 * A configuration recorded by an older version, brought up to date: `augment` was a boolean
 * (true: `standard`, false: `none`); runs from before `peftFormat` saved their adapters in
 * transformers 4's names.
 */
export function upgradeTrainConfig(saved: Record<string, unknown>): Partial<TrainConfig> {
  const out = { peftFormat: "transformers-4", ...saved } as Record<string, unknown>;
  if (typeof out.augment === "boolean") out.augment = out.augment ? "standard" : "none";
  return out as Partial<TrainConfig>;
}
