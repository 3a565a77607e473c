/**
 * The options of evaluation and prediction, declared once (see `core/options.ts`): `evaluate()`
 * and `deno task eval` take {@link EVAL_OPTIONS}, `predict()` and `deno task predict`
 * {@link PREDICT_OPTIONS}. Those they share with training are training's entries.
 *
 * @module
 */

import type { OptionSchema } from "../core/options.ts";
import { SHARED_OPTIONS, TRAIN_CONFIG_OPTIONS } from "../runs/config.ts";

/** The precision of the CPU path's forward passes (ONNX Runtime), as eval and predict take it. */
const DTYPE = {
  kind: "choice",
  choices: ["fp32", "fp16", "q8"],
  flag: "dtype",
  arg: "D",
  defaultText: "fp32",
  help: "precision on the CPU path (ONNX Runtime): fp32, or the exported fp16\n" +
    "or q8 graphs (deno task export)",
  section: "run",
} as const;

/** Options of `evaluate()` and `deno task eval`. */
export const EVAL_OPTIONS = {
  /** A training run's folder: its model, data, split and checkpoints. */
  run: SHARED_OPTIONS.run,
  /** Which part to evaluate: `test` or `validation`. */
  split: {
    kind: "choice",
    choices: ["test", "validation"],
    flag: "split",
    arg: "S",
    default: "test",
    help: "test or validation",
    section: "what",
  },
  /** With `run`: `best`, `epoch-N`, `step-N` or an adapter folder. */
  checkpoint: {
    kind: "string",
    flag: "checkpoint",
    arg: "C",
    defaultText: "best",
    help: "best, epoch-N, step-N or an adapter folder",
    section: "what",
  },
  /** Without `run`: the base model. */
  model: { ...SHARED_OPTIONS.model, help: "without a run: the base model (Hub id or folder)" },
  /** Without `run`: the adapter. */
  adapter: { ...SHARED_OPTIONS.adapter, help: "without a run: the adapter (Hub id or folder)" },
  /** Without `run`: the data. */
  data: { ...SHARED_OPTIONS.data, help: "without a run: the images, as train's --data" },
  /** Parquet: the image column. */
  imageColumn: SHARED_OPTIONS.imageColumn,
  /** The label column. */
  labelColumn: SHARED_OPTIONS.labelColumn,
  /** Without `run`: the seed of the split, as training's. */
  seed: { ...TRAIN_CONFIG_OPTIONS.seed, help: "without a run: the split's seed, as train's" },
  /** Without `run`: the validation fraction, as training's. */
  validationFraction: TRAIN_CONFIG_OPTIONS.validationFraction,
  /** Without `run`: the test fraction, as training's. */
  testFraction: TRAIN_CONFIG_OPTIONS.testFraction,
  /** Images a batch (default: the run's, else 64). */
  batchSize: { ...SHARED_OPTIONS.batchSize, defaultText: "the run's, else 64", section: "run" },
  /** The tfjs backend. */
  backend: SHARED_OPTIONS.backend,
  /** Decoding workers. */
  workers: SHARED_OPTIONS.workers,
  /** Model replicas on wasm. */
  replicas: SHARED_OPTIONS.replicas,
  /**
   * The precision of the forward passes on the CPU path: `fp16` or `q8` run the graphs
   * `exportOnnx` writes on ONNX Runtime, and the report also gives fp32's accuracy on the same
   * images and how often the two agree.
   */
  dtype: {
    ...DTYPE,
    help: DTYPE.help + "; the report also gives fp32's accuracy and\nhow often the two agree",
  },
  /**
   * The arithmetic on WebGPU (`fp16`: mixed precision; `auto`: fp16 on a hardware GPU that
   * offers it). In fp16 the report also gives fp32's accuracy on the same images.
   */
  precision: {
    ...TRAIN_CONFIG_OPTIONS.precision,
    help: "fp16 (WebGPU mixed precision), fp32, or auto (fp16 on a hardware GPU\n" +
      "with shader-f16); in fp16 the report also gives fp32's accuracy",
    section: "run",
  },
  /**
   * With `run`: evaluate one shard of the part only, `i/n` (or `auto/n`: the index from
   * `JOB_COMPLETION_INDEX` or `SLURM_ARRAY_TASK_ID`): a contiguous block of whole batches,
   * written to `RUN/eval-<split>.shard-<i>-of-<n>.json` for `mergeEvalShards`.
   */
  shard: {
    kind: "string",
    flag: "shard",
    arg: "i/n",
    help: "evaluate shard i (0 … n-1) of n only: a contiguous block of whole\n" +
      "batches, written to RUN/eval-<split>.shard-<i>-of-<n>.json; auto/n\n" +
      "takes i from JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or\n" +
      "SLURM_ARRAY_TASK_ID (Slurm array --array=0-<n-1>)",
    section: "run",
  },
} as const satisfies OptionSchema;

/** Options of `predict()` and `deno task predict`. */
export const PREDICT_OPTIONS = {
  /** A training run: its base model and best adapter. */
  run: { ...SHARED_OPTIONS.run, help: "a training run: its base model and best adapter" },
  /** Without `run`: the base model. */
  model: { ...SHARED_OPTIONS.model, help: "without a run: the base model (Hub id or folder)" },
  /** Without `run`: the adapter. */
  adapter: { ...SHARED_OPTIONS.adapter, help: "without a run: the adapter (Hub id or folder)" },
  /** Classes an image. */
  topK: {
    kind: "integer",
    min: 1,
    flag: "top-k",
    arg: "K",
    default: 5,
    help: "classes per image",
    section: "data and model",
  },
  /**
   * Classify one shard of the inputs only, `i/n` or `auto/n`: a contiguous block of the
   * expanded, sorted list of files (needs `out`).
   */
  shard: {
    kind: "string",
    flag: "shard",
    arg: "i/n",
    help: "classify shard i (0 … n-1) of n only: a contiguous block of the\n" +
      "expanded, sorted files; auto/n as eval's (needs --out)",
    section: "run",
  },
  /** Also write the results to this file as JSON lines, each as soon as it is known. */
  out: {
    kind: "string",
    flag: "out",
    arg: "FILE",
    help: "write the results to FILE as JSON lines (a header line, then one\n" +
      "result a line, as they come); its folder is made if needed",
    section: "run",
  },
  /** The tfjs backend. */
  backend: SHARED_OPTIONS.backend,
  /** The precision of the forward passes on the CPU path (`fp16`, `q8`: ONNX Runtime). */
  dtype: DTYPE,
  /** The arithmetic on WebGPU. */
  precision: { ...TRAIN_CONFIG_OPTIONS.precision, section: "run" },
} as const satisfies OptionSchema;
