/**
 * Results, for those who build on them: what `evaluate()`, `predict()` and `classify()` take
 * and return in full, the metrics, the shard files of evaluation and prediction spread over
 * machines and their merge, and the option tables of `evaluate()` and `predict()`. The
 * functions themselves are in the package's main entry.
 *
 * @example
 * ```ts
 * import { parseShard, shardRange } from "@lora/vit/results";
 * const shard = parseShard("1/3");
 * console.log(shardRange(100, shard, 10)); // [ 40, 70 ]: whole batches of 10
 * ```
 *
 * @module
 */

import "../backend/deno_platform.ts"; // Deno's environment, files and BLAS (core/platform.ts)

export type { EvalMetrics } from "./evaluate.ts";
export type { ClassMetrics } from "./metrics.ts";
export type { ClassifyOptions } from "./classify.ts";
export type {
  MergedPredictions,
  MergeEvalOptions,
  MergeInfo,
  MergePredictOptions,
} from "./merge.ts";
export {
  type EvalOutcomes,
  type EvalShardFile,
  parseShard,
  type PredictShardHeader,
  type Shard,
  shardRange,
} from "./shard.ts";
export { EVAL_OPTIONS, PREDICT_OPTIONS } from "./options.ts";
