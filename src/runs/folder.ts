/**
 * Reading a training run's folder: its `config.json` (the resolved configuration `train`
 * wrote) and its `metrics.jsonl`.
 *
 * @module
 */

import { join } from "node:path";
import { VitLoraError } from "../core/errors.ts";
import { readJsonFile } from "../core/files.ts";
import type { EvalEvent, StepEvent, TrainConfig } from "../training/trainer.ts";

/** The parts of a run's `config.json` that evaluation, prediction, reports and pushes use. */
export interface RunConfig {
  /** The training configuration. */
  train: TrainConfig;
  /** The dataset: class names and split sizes. */
  dataset?: { labels?: string[]; train?: number; validation?: number; test?: number };
  /** Trainable and total parameters. */
  parameters?: { trainable: number; total: number };
  /** The backend the run used. */
  backend?: { name: string; adapter?: string };
}

/**
 * A run's `config.json`; a file that is not one a training run wrote is a
 * {@link VitLoraError} naming it.
 *
 * @example
 * ```ts ignore
 * import { readRunConfig } from "@lora/vit";
 * const { train, dataset } = await readRunConfig("runs/food101");
 * console.log(train.model, dataset?.labels?.length);
 * ```
 */
export async function readRunConfig(run: string): Promise<RunConfig> {
  const path = join(run, "config.json");
  const config = await readJsonFile(path) as RunConfig;
  if (typeof config?.train?.model !== "string") {
    throw new VitLoraError(`${path}: not a training run's config`);
  }
  return config;
}

/** The events of a `metrics.jsonl` text, one JSON object a line. */
export function parseMetrics(text: string): (StepEvent | EvalEvent)[] {
  return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
}

/** A run's `metrics.jsonl` events (none when the file is missing). */
export async function readMetrics(run: string): Promise<(StepEvent | EvalEvent)[]> {
  return parseMetrics(await Deno.readTextFile(join(run, "metrics.jsonl")).catch(() => ""));
}
