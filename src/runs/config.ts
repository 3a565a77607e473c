/**
 * A training run's configuration, declared once: {@link TRAIN_OPTIONS} is the table every
 * option of `train()` and `deno task train` comes from (its default, its check, its flag and
 * its help line), and {@link TrainConfig} the part of it a run records in `config.json` and
 * keeps when resumed.
 *
 * @module
 */

import { VitLoraError } from "../core/errors.ts";
import { DEFAULT_PEFT_FORMAT, parsePeftFormat, type PeftFormat } from "../model/peft_format.ts";

/** The training configuration; every field has the reference recipe's default. */
export interface TrainConfig {
  /**
   * Base model: a folder in Hugging Face layout or a Hub id, `owner/name[@revision]`
   * (default `google/vit-base-patch16-224-in21k`).
   */
  model: string;
  /**
   * Dataset: a folder in the Hub's parquet layout or a Hub dataset id, `owner/name[@revision]`
   * (default `ethz/food101`).
   */
  data: string;
  /**
   * Start from this PEFT adapter (a folder or a Hub id; its r, alpha, targets and classifier)
   * instead of a new one.
   */
  adapter?: string;
  /** Passes over the training split (default 5). */
  epochs: number;
  /** Images a micro-batch (default 64). */
  batchSize: number;
  /** Micro-batches an optimizer step (default 4). */
  gradAccum: number;
  /** Peak learning rate (default 5e-3). */
  lr: number;
  /** AdamW's decoupled weight decay, biases excluded as HF Trainer does (default 0). */
  weightDecay: number;
  /** Fraction of the steps spent warming the rate up from 0 (default 0). */
  warmupRatio: number;
  /** LoRA rank of a new adapter (default 32). */
  loraR: number;
  /** LoRA alpha (default 16). */
  loraAlpha: number;
  /** Dropout on the LoRA branch's input (default 0.1). */
  loraDropout: number;
  /**
   * Modules that get LoRA (default `query`, `value`), in either generation's names: `query`
   * and `q_proj` mean the same modules.
   */
  targetModules: string[];
  /**
   * The naming the adapters are saved in (default `transformers-5`, what PEFT reads on
   * today's transformers; `transformers-4` for PEFT on transformers 4.x). See `peft_format.ts`.
   */
  peftFormat: PeftFormat;
  /** Seed of the split, the order, the augmentation, dropout and new weights (default 42). */
  seed: number;
  /** RandomResizedCrop + flip in training (default true; false uses the eval transform). */
  augment: boolean;
  /** Shuffle the training rows each epoch (default true). */
  shuffle: boolean;
  /** Part of the original validation split held out as the test split (default 0.3). */
  testFraction: number;
  /** Stop after this many optimizer steps (default: all epochs). */
  maxSteps?: number;
  /** Clip gradients to this global L2 norm (default 1; 0 turns clipping off). */
  maxGradNorm: number;
  /** Rows shuffled together (default 4096; see `sampler.ts`). */
  shuffleWindow: number;
  /**
   * Images a forward + backward pass takes; a batch is split into chunks of this size whose
   * gradients add up to the batch's (default: as many as fit 12 GiB of activations, by
   * `autoChunkSize`; 13 for ViT-B/16, the whole batch for small models).
   */
  chunkSize?: number;
}

/** How a flag's text becomes a value, and what values are allowed. */
export type OptionKind =
  | "string"
  | "list" // comma-separated strings, at least one
  | "boolean" // `--x` / `--no-x`
  | "count" // an integer ≥ 0
  | "positive" // an integer ≥ 1
  | "number" // a finite number ≥ 0
  | "fraction" // a number in [0, 1)
  | "peft-format";

/** One option of `train()`: the row of {@link TRAIN_OPTIONS} that declares it. */
export interface OptionSpec {
  /** The option's name in `train()`'s options (and, for configuration, in `config.json`). */
  key: string;
  /** The command-line flag, without `--`. */
  flag: string;
  /** What the flag's value is called in the help, e.g. `N`. */
  arg?: string;
  /** How the value is read and checked. */
  kind: OptionKind;
  /** Part of the run's configuration: recorded in `config.json`, kept on `--resume`. */
  config: boolean;
  /** The default, for configuration options that have one. */
  default?: unknown;
  /** The default as the help says it, when it is not a plain value. */
  defaultText?: string;
  /** The help line(s). */
  help: string;
  /** Which group of the help it is listed under. */
  section: "data and model" | "recipe" | "run";
}

/**
 * Every option of `train()` that is a flag of `deno task train`, in the help's order: the
 * reference recipe's defaults, the checks and the help text all come from here.
 */
export const TRAIN_OPTIONS: readonly OptionSpec[] = [
  {
    key: "model",
    flag: "model",
    arg: "ID|DIR",
    kind: "string",
    config: true,
    default: "google/vit-base-patch16-224-in21k",
    help: "base model: a Hub id (owner/name[@revision]) or a folder in HF layout",
    section: "data and model",
  },
  {
    key: "data",
    flag: "data",
    arg: "ID|DIR",
    kind: "string",
    config: true,
    default: "ethz/food101",
    help: "dataset: a Hub id or a folder of data/train-*.parquet, data/validation-*.parquet",
    section: "data and model",
  },
  {
    key: "adapter",
    flag: "adapter",
    arg: "ID|DIR",
    kind: "string",
    config: true,
    help: "start from this PEFT adapter (its r, alpha, targets and classifier)",
    section: "data and model",
  },
  {
    key: "testFraction",
    flag: "test-fraction",
    arg: "F",
    kind: "fraction",
    config: true,
    default: 0.3,
    help: "part of the validation split held out as test",
    section: "data and model",
  },
  {
    key: "epochs",
    flag: "epochs",
    arg: "N",
    kind: "positive",
    config: true,
    default: 5,
    help: "passes over the training split",
    section: "recipe",
  },
  {
    key: "batchSize",
    flag: "batch-size",
    arg: "N",
    kind: "positive",
    config: true,
    default: 64,
    help: "images a micro-batch",
    section: "recipe",
  },
  {
    key: "gradAccum",
    flag: "grad-accum",
    arg: "N",
    kind: "positive",
    config: true,
    default: 4,
    help: "micro-batches an optimizer step",
    section: "recipe",
  },
  {
    key: "lr",
    flag: "lr",
    arg: "X",
    kind: "number",
    config: true,
    default: 5e-3,
    help: "peak learning rate, decayed linearly to 0",
    section: "recipe",
  },
  {
    key: "weightDecay",
    flag: "weight-decay",
    arg: "X",
    kind: "number",
    config: true,
    default: 0,
    help: "AdamW's decoupled weight decay (not on biases, as HF Trainer)",
    section: "recipe",
  },
  {
    key: "warmupRatio",
    flag: "warmup-ratio",
    arg: "X",
    kind: "fraction",
    config: true,
    default: 0,
    help: "fraction of steps warming up from 0",
    section: "recipe",
  },
  {
    key: "maxSteps",
    flag: "max-steps",
    arg: "N",
    kind: "positive",
    config: true,
    help: "stop after N optimizer steps",
    section: "recipe",
  },
  {
    key: "maxGradNorm",
    flag: "max-grad-norm",
    arg: "X",
    kind: "number",
    config: true,
    default: 1,
    help: "clip gradients to this global L2 norm (0: no clipping)",
    section: "recipe",
  },
  {
    key: "loraR",
    flag: "lora-r",
    arg: "N",
    kind: "positive",
    config: true,
    default: 32,
    help: "LoRA rank",
    section: "recipe",
  },
  {
    key: "loraAlpha",
    flag: "lora-alpha",
    arg: "X",
    kind: "number",
    config: true,
    default: 16,
    help: "LoRA alpha",
    section: "recipe",
  },
  {
    key: "loraDropout",
    flag: "lora-dropout",
    arg: "X",
    kind: "fraction",
    config: true,
    default: 0.1,
    help: "dropout on the LoRA input (also overrides an --adapter's)",
    section: "recipe",
  },
  {
    key: "targetModules",
    flag: "target-modules",
    arg: "A,B",
    kind: "list",
    config: true,
    default: ["query", "value"],
    defaultText: "query,value",
    help: "modules that get LoRA, in either generation's names: query,value\n" +
      "and q_proj,v_proj are the same",
    section: "recipe",
  },
  {
    key: "peftFormat",
    flag: "peft-format",
    arg: "F",
    kind: "peft-format",
    config: true,
    default: DEFAULT_PEFT_FORMAT,
    help: "the adapters' naming: transformers-5 (PEFT on transformers 5) or\n" +
      "transformers-4 (PEFT on transformers 4.x)",
    section: "recipe",
  },
  {
    key: "seed",
    flag: "seed",
    arg: "N",
    kind: "number",
    config: true,
    default: 42,
    help: "seed of split, order, augmentation, dropout, new weights",
    section: "recipe",
  },
  {
    key: "augment",
    flag: "augment",
    kind: "boolean",
    config: true,
    default: true,
    help: "--no-augment trains on the evaluation transform (no random crop or flip)",
    section: "recipe",
  },
  {
    key: "shuffle",
    flag: "shuffle",
    kind: "boolean",
    config: true,
    default: true,
    help: "--no-shuffle trains in file order",
    section: "recipe",
  },
  {
    key: "shuffleWindow",
    flag: "shuffle-window",
    arg: "N",
    kind: "positive",
    config: true,
    default: 4096,
    help: "rows shuffled together (row groups are shuffled as well)",
    section: "recipe",
  },
  {
    key: "out",
    flag: "out",
    arg: "RUN",
    kind: "string",
    config: false,
    defaultText: "runs/<date-time>",
    help: "the run folder",
    section: "run",
  },
  {
    key: "resume",
    flag: "resume",
    arg: "RUN",
    kind: "string",
    config: false,
    help: "continue RUN from its last complete checkpoint",
    section: "run",
  },
  {
    key: "backend",
    flag: "backend",
    arg: "NAME",
    kind: "string",
    config: false,
    defaultText: "VIT_LORA_BACKEND, else webgpu on a hardware GPU, else wasm",
    help: "webgpu, wasm or cpu",
    section: "run",
  },
  {
    key: "workers",
    flag: "workers",
    arg: "N",
    kind: "count",
    config: false,
    defaultText: "cores - 1",
    help: "decoding workers",
    section: "run",
  },
  {
    key: "replicas",
    flag: "replicas",
    arg: "N",
    kind: "count",
    config: false,
    defaultText: "one per further core, up to 3, for models of ViT-B's size",
    help: "model copies in workers on wasm, to use every core",
    section: "run",
  },
  {
    key: "prefetch",
    flag: "prefetch",
    arg: "N",
    kind: "count",
    config: false,
    defaultText: "2",
    help: "batches decoded ahead",
    section: "run",
  },
  {
    key: "chunkSize",
    flag: "chunk-size",
    arg: "N",
    kind: "positive",
    config: true,
    defaultText: "what fits 12 GiB, 13 for ViT-B",
    help: "images a forward/backward pass; batches are split into chunks whose\n" +
      "gradients add up to the batch's",
    section: "run",
  },
];

/** The reference recipe (HF ViT + PEFT on Food-101): the defaults of {@link TRAIN_OPTIONS}. */
export const DEFAULT_TRAIN_CONFIG: Readonly<TrainConfig> = Object.freeze(
  Object.fromEntries(
    TRAIN_OPTIONS.filter((o) => o.config && o.default !== undefined).map((o) => [o.key, o.default]),
  ) as unknown as TrainConfig,
);

/** The keys of {@link TrainConfig}. */
export const TRAIN_CONFIG_KEYS: readonly string[] = TRAIN_OPTIONS.filter((o) => o.config).map((
  o,
) => o.key);

/** An option's value, checked against its kind; a bad one names the flag. */
export function checkOption(spec: OptionSpec, value: unknown): void {
  const bad = (what: string) =>
    new VitLoraError(`--${spec.flag} must be ${what}, not ${JSON.stringify(value)}`);
  switch (spec.kind) {
    case "string":
      if (typeof value !== "string" || value === "") throw bad("a non-empty string");
      return;
    case "list":
      if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
        throw bad("a list of names");
      }
      if (value.length === 0) throw new VitLoraError(`--${spec.flag} is empty`);
      return;
    case "boolean":
      if (typeof value !== "boolean") throw bad("true or false");
      return;
    case "count":
      if (!Number.isInteger(value) || (value as number) < 0) throw bad("a count (0, 1, 2, …)");
      return;
    case "positive":
      if (!Number.isInteger(value) || (value as number) < 1) throw bad("a positive integer");
      return;
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
        throw bad("a number ≥ 0");
      }
      return;
    case "fraction":
      if (typeof value !== "number" || !(value >= 0 && value < 1)) throw bad("in [0, 1)");
      return;
    case "peft-format":
      parsePeftFormat(String(value), `--${spec.flag}`);
      return;
  }
}

/** Checks a configuration; a bad value is a {@link VitLoraError} naming the option's flag. */
export function checkTrainConfig(config: TrainConfig): void {
  for (const spec of TRAIN_OPTIONS) {
    if (!spec.config) continue;
    const value = (config as unknown as Record<string, unknown>)[spec.key];
    if (value === undefined && spec.default === undefined) continue;
    checkOption(spec, value);
  }
}

/**
 * A flag's text as the option's value (`undefined` stays undefined): numbers parsed, lists
 * split on commas, PEFT formats checked. The value is then checked by {@link checkOption}.
 */
export function optionFromFlag(spec: OptionSpec, text: string | boolean | undefined): unknown {
  if (text === undefined || typeof text === "boolean") return text;
  switch (spec.kind) {
    case "list":
      return text.split(",").map((s) => s.trim()).filter(Boolean);
    case "count":
    case "positive":
    case "number":
    case "fraction": {
      const n = Number(text);
      if (text.trim() === "" || !Number.isFinite(n)) {
        throw new VitLoraError(`--${spec.flag}: not a number: ${JSON.stringify(text)}`);
      }
      const min = spec.kind === "positive" ? 1 : 0;
      if (
        (spec.kind === "count" || spec.kind === "positive") && !(Number.isInteger(n) && n >= min)
      ) {
        throw new VitLoraError(`--${spec.flag}: not a ${min ? "positive " : ""}count: ${text}`);
      }
      checkOption(spec, n);
      return n;
    }
    case "peft-format":
      return parsePeftFormat(text, `--${spec.flag}`);
    default:
      return text;
  }
}

/** The help lines of the options of `section`, aligned, with their defaults. */
export function optionsHelp(section: OptionSpec["section"], width = 22): string {
  const lines: string[] = [];
  for (const spec of TRAIN_OPTIONS.filter((o) => o.section === section)) {
    const name = spec.kind === "boolean"
      ? `--no-${spec.flag}`
      : `--${spec.flag}${spec.arg ? ` ${spec.arg}` : ""}`;
    const dflt = spec.defaultText ??
      (spec.default === undefined || spec.kind === "boolean" ? undefined : String(spec.default));
    const text = (spec.kind === "boolean" ? spec.help.replace(/^--no-\S+ /, "") : spec.help) +
      (dflt === undefined ? "" : ` (default ${dflt})`);
    const [first, ...rest] = text.split("\n");
    lines.push(`  ${name.padEnd(width)}${first}`);
    for (const more of rest) lines.push(`  ${"".padEnd(width)}${more}`);
  }
  return lines.join("\n");
}
