/**
 * A training run's folder, written by `train()` and read by evaluation, prediction, reports
 * and pushes:
 *
 * ```
 * RUN/config.json              the resolved configuration, backend, adapter, dataset, versions
 * RUN/split.json               which rows are train, validation and test (`data/splits.ts`)
 * RUN/metrics.jsonl            a line per optimizer step and per evaluation
 * RUN/checkpoints/epoch-N/     adapter, optimizer moments, trainer state
 * RUN/best/                    the best epoch's PEFT adapter
 * RUN/eval-test.json           the best adapter on the test split
 * RUN/skipped.jsonl            the images that could not be decoded, a line each
 * ```
 *
 * @module
 */

import { join } from "node:path";
import { VitLoraError } from "../core/errors.ts";
import { exists, readJsonFile, writeFileAtomic } from "../core/files.ts";
import type { TrainConfig } from "./config.ts";
import type { EvalEvent, RunEvent } from "./events.ts";

/** A run's `config.json`: what evaluation, prediction, reports and pushes read of it. */
export interface RunConfig {
  /** The training configuration. */
  train: TrainConfig;
  /** The dataset: where, class names and split sizes. */
  dataset?: {
    root?: string;
    kind?: string;
    labels?: string[];
    labels_from?: string;
    train?: number;
    validation?: number;
    test?: number;
    /** Where each part came from, in words (see `describeSplits`). */
    parts?: { train: string; validation: string; test: string };
  };
  /** Trainable and total parameters. */
  parameters?: { trainable: number; total: number };
  /** The backend the run used. */
  backend?: { name: string; adapter?: string };
  /** The adapter's settings. */
  adapter?: Record<string, unknown>;
  /** Steps an epoch, in all, and epochs. */
  schedule?: { steps_per_epoch: number; total_steps: number; epochs: number };
  /** Images a forward/backward pass. */
  chunk_size?: number;
  /** The arithmetic the run trained in (fp16: mixed precision on WebGPU). */
  precision?: string;
  /** Model replicas in workers. */
  replicas?: number;
  /** Deno, tfjs and this module's versions. */
  versions?: Record<string, string>;
}

/** The files of a run folder. */
export function runPaths(run: string): {
  config: string;
  split: string;
  metrics: string;
  checkpoints: string;
  best: string;
  evalTest: string;
  skipped: string;
} {
  return {
    config: join(run, "config.json"),
    split: join(run, "split.json"),
    metrics: join(run, "metrics.jsonl"),
    checkpoints: join(run, "checkpoints"),
    best: join(run, "best"),
    evalTest: join(run, "eval-test.json"),
    skipped: join(run, "skipped.jsonl"),
  };
}

/**
 * A run's `config.json`; a file that is not one a training run wrote is a
 * {@link VitLoraError} naming it.
 *
 * @example
 * ```ts ignore
 * import { readRunConfig } from "@lora/vit/training";
 * const { train, dataset } = await readRunConfig("runs/food101");
 * console.log(train.model, dataset?.labels?.length);
 * ```
 */
export async function readRunConfig(run: string): Promise<RunConfig> {
  const path = runPaths(run).config;
  const config = await readJsonFile(path) as RunConfig;
  if (typeof config?.train?.model !== "string") {
    throw new VitLoraError(`${path}: not a training run's config`);
  }
  return config;
}

/**
 * Starts a new run folder: `split.json`, `config.json` and an empty `metrics.jsonl`. A
 * folder that already holds a run is an error that says how to resume it.
 */
export async function createRunFolder(
  run: string,
  files: { config: RunConfig; split: object },
): Promise<void> {
  const paths = runPaths(run);
  await Deno.mkdir(run, { recursive: true });
  if (await exists(paths.config)) {
    throw new VitLoraError(`${run}: already holds a run (resume it with --resume ${run})`);
  }
  await writeFileAtomic(paths.split, JSON.stringify(files.split) + "\n");
  await writeFileAtomic(paths.config, JSON.stringify(files.config, null, 2) + "\n");
  await Deno.writeTextFile(paths.metrics, "");
}

/** The events of a `metrics.jsonl` text, one JSON object a line. */
export function parseMetrics(text: string): RunEvent[] {
  return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
}

/** A run's `metrics.jsonl` events (none when the file is missing). */
export async function readMetrics(run: string): Promise<RunEvent[]> {
  return parseMetrics(await Deno.readTextFile(runPaths(run).metrics).catch(() => ""));
}

/** The validation evaluation of `epoch` in a run's metrics, if any. */
export async function validationOf(run: string, epoch?: number): Promise<EvalEvent | undefined> {
  if (epoch === undefined) return undefined;
  return (await readMetrics(run)).findLast((e): e is EvalEvent =>
    e.event === "eval" && e.split === "validation" && e.epoch === epoch
  );
}

/** A run's `metrics.jsonl`, appended to line by line. */
export class MetricsLog {
  /** The file. */
  readonly path: string;

  /** The log of the run in `run`. */
  constructor(run: string) {
    this.path = runPaths(run).metrics;
  }

  /** Appends one event. */
  async append(event: RunEvent): Promise<void> {
    await Deno.writeTextFile(this.path, JSON.stringify(event) + "\n", { append: true });
  }

  /**
   * Drops what a crashed session logged after the checkpoint a resume starts from: steps
   * after `step`, validations after `epoch`, and any test.
   */
  async truncate(at: { step: number; epoch: number }): Promise<void> {
    if (!await exists(this.path)) return;
    const kept = (await Deno.readTextFile(this.path)).split("\n").filter((line) => {
      if (!line.trim()) return false;
      const e = JSON.parse(line);
      if (e.event === "step") return e.step <= at.step;
      if (e.event === "eval") return e.split === "validation" && e.epoch <= at.epoch;
      return true;
    });
    await writeFileAtomic(this.path, kept.map((l) => l + "\n").join(""));
  }
}
