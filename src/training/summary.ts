/**
 * What a run records of itself: its `config.json` (the configuration, backend, adapter,
 * dataset and its parts, schedule, versions) and the summary printed at its end.
 *
 * @module
 */

import type { EvalEvent, EvalSummary } from "../runs/events.ts";
import { tf } from "../core/tf.ts";
import { VERSION } from "../core/version.ts";
import type { BackendInfo } from "../backend/backend.ts";
import { describeSplits } from "../data/splits.ts";
import type { ImageDataset } from "../data/dataset.ts";
import type { ParameterCount, ViTClassifier } from "../model/classifier.ts";
import type { TrainConfig } from "../runs/config.ts";
import { type RunConfig, runPaths } from "../runs/folder.ts";
import type { TrainResult } from "./callbacks.ts";
import type { TrainingPlan } from "./plan.ts";
import type { TrainingData } from "./setup.ts";

/** What {@link runConfigOf} reads of a run. */
export interface RunFacts {
  /** The configuration. */
  config: TrainConfig;
  /** The model. */
  clf: ViTClassifier;
  /** The data and its parts. */
  data: TrainingData;
  /** Steps and rates. */
  plan: TrainingPlan;
  /** The backend. */
  backend: BackendInfo;
  /** Images a forward/backward pass. */
  chunkSize: number;
}

/** The run's `config.json`. */
export function runConfigOf(run: RunFacts, replicas: number): RunConfig {
  const { config, clf, data, plan } = run;
  const lora = clf.lora;
  return {
    train: config,
    backend: run.backend,
    adapter: lora && {
      peft_format: clf.peftFormat,
      r: lora.r,
      lora_alpha: lora.lora_alpha,
      lora_dropout: lora.lora_dropout,
      target_modules: lora.target_modules,
      modules_to_save: lora.modules_to_save,
    },
    parameters: clf.parameterCount(),
    dataset: {
      root: data.dataset.root,
      kind: data.dataset.kind,
      labels: data.dataset.labels,
      labels_from: data.dataset.labelsFrom,
      ...data.sizes,
      parts: describeSplits(data.splits, config),
    },
    schedule: {
      steps_per_epoch: plan.stepsPerEpoch,
      total_steps: plan.totalSteps,
      epochs: plan.epochs,
    },
    chunk_size: run.chunkSize,
    precision: clf.precision,
    replicas,
    versions: { deno: Deno.version.deno, tfjs: tf.version.tfjs, vit_lora: VERSION },
  };
}

/** What the data gives cause to say before training: unnamed classes, files left out. */
export function dataNotes(source: string, dataset: ImageDataset): string[] {
  const notes: string[] = [];
  if (dataset.labelsFrom === "generated") {
    notes.push(
      `warning: ${source}: the data names no classes (no ClassLabel metadata, --labels or labels.txt): calling them ${
        dataset.labels[0]
      } … ${dataset.labels.at(-1)}`,
    );
  }
  if (dataset.ignored > 0) {
    notes.push(`${source}: ${dataset.ignored} files that are not images left out`);
  }
  return notes;
}

/** The line printed as a run begins: data, classes, parameters, steps, backend. */
export function startLine(run: RunFacts, parameters: ParameterCount): string {
  const { config, data, plan, backend } = run;
  const { sizes } = data;
  return `training ${config.model} on ${config.data}: ${sizes.train} train, ${sizes.validation} validation, ` +
    `${sizes.test} test images, ${data.dataset.labels.length} classes; ` +
    `${parameters.trainable.toLocaleString("en-US")} trainable of ${
      parameters.total.toLocaleString("en-US")
    } parameters (${(100 * parameters.trainable / parameters.total).toFixed(2)}%); ` +
    `${plan.totalSteps} steps on ${backend.name}${backend.adapter ? ` (${backend.adapter})` : ""}${
      run.clf.precision === "fp16" ? ", fp16 mixed precision" : ""
    }`;
}

/** An evaluation's metrics line. */
export function evalEvent(
  m: EvalSummary,
  epoch: number,
  split: "validation" | "test",
): EvalEvent {
  return {
    event: "eval",
    epoch,
    split,
    loss: m.loss,
    accuracy: m.accuracy,
    top5: m.top5,
    count: m.count,
  };
}

/** The lines printed at the end of a run. */
export function summary(r: TrainResult): string {
  const pct = (x?: number) => x === undefined ? "–" : `${(100 * x).toFixed(2)}%`;
  const { trainable, total } = r.parameters;
  return [
    `done in ${Math.round(r.seconds)} s, ${r.steps} steps${
      r.stoppedEarly ? " (stopped early)" : ""
    }: best epoch ${r.bestEpoch}`,
    `  validation accuracy ${pct(r.validation?.accuracy)} (top-5 ${pct(r.validation?.top5)})`,
    `  test accuracy       ${pct(r.test?.accuracy)} (top-5 ${pct(r.test?.top5)}, ${
      r.test?.count ?? 0
    } images)`,
    `  trainable ${trainable.toLocaleString("en-US")} of ${
      total.toLocaleString("en-US")
    } parameters (${(100 * trainable / total).toFixed(2)}%)`,
    r.skipped > 0
      ? `  ${r.skipped} ${
        r.skipped === 1
          ? "image could not be decoded and was"
          : "images could not be decoded and were"
      } skipped (listed in ${runPaths(r.runDir).skipped})`
      : "",
    `  adapter: ${r.runDir}/best`,
  ].filter(Boolean).join("\n");
}
