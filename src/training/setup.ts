/**
 * What a training run starts from: its configuration (a resumed run's own, else the recipe's
 * defaults and the options), its data (the dataset and its train, validation and test parts)
 * and its model (the base checkpoint with a new adapter, or the given one).
 *
 * @module
 */

import { join, resolve } from "node:path";
import { VitLoraError } from "../core/errors.ts";
import { readJsonFile } from "../core/files.ts";
import type { BackendName } from "../backend/backend.ts";
import type { ImageDataset } from "../data/dataset.ts";
import { type DatasetSplits, parseSplitFile, partSize, planSplits } from "../data/splits.ts";
import { openDataset } from "../hub/dataset.ts";
import type { HubSettings } from "../hub/settings.ts";
import type { ViTClassifier } from "../model/classifier.ts";
import { loadClassifier } from "../model/loading.ts";
import {
  checkTrainConfig,
  DEFAULT_TRAIN_CONFIG,
  TRAIN_CONFIG_KEYS,
  TRAIN_CONFIG_OPTIONS,
  type TrainConfig,
  upgradeTrainConfig,
} from "../runs/config.ts";
import { readRunConfig, runPaths } from "../runs/folder.ts";

/** The run's data: the dataset and its three parts. */
export interface TrainingData {
  /** The dataset. */
  dataset: ImageDataset;
  /** Its train, validation and test parts. */
  splits: DatasetSplits;
  /** Rows in each part. */
  sizes: { train: number; validation: number; test: number };
}

/** What {@link resolveConfig} reads of `train()`'s options. */
export interface ConfigSources extends Partial<TrainConfig> {
  /** The run folder (default `runs/<date-time>`). */
  out?: string;
  /** Continue the run in this folder. */
  resume?: string;
}

function flagsOf(keys: string[]): string {
  const specs = TRAIN_CONFIG_OPTIONS as Record<string, { flag: string }>;
  return keys.map((k) => `--${specs[k]?.flag ?? k}`).join(", ");
}

/**
 * The run's configuration and folder: a resumed run's own (no option of the configuration
 * may be given then), else the defaults and the options, checked.
 */
export async function resolveConfig(
  options: ConfigSources,
): Promise<{ config: TrainConfig; runDir: string }> {
  const given = TRAIN_CONFIG_KEYS.filter((k) => options[k] !== undefined);
  if (options.resume) {
    if (given.length > 0 || options.out !== undefined) {
      throw new VitLoraError(
        `--resume continues a run with its own configuration: leave out ${
          flagsOf([...given, ...(options.out !== undefined ? ["out"] : [])])
        }`,
      );
    }
    const runDir = resolve(options.resume);
    const saved = await readRunConfig(runDir);
    const config = {
      ...DEFAULT_TRAIN_CONFIG,
      ...upgradeTrainConfig(saved.train as unknown as Record<string, unknown>),
    } as TrainConfig;
    return { config, runDir };
  }
  const config = { ...DEFAULT_TRAIN_CONFIG } as TrainConfig;
  for (const key of given) (config as Record<string, unknown>)[key] = options[key];
  checkTrainConfig(config);
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return { config, runDir: resolve(options.out ?? join("runs", stamp)) };
}

/**
 * The run's data: the dataset of `config.data`, and its parts as a resumed run recorded them
 * (`split.json`), else as {@link planSplits} makes them.
 */
export async function openTrainingData(
  config: TrainConfig,
  options: { progress?: boolean; hub?: HubSettings; resumeFrom?: string },
): Promise<TrainingData> {
  const dataset = await openDataset(config.data, {
    progress: options.progress,
    settings: options.hub,
    imageColumn: config.imageColumn,
    labelColumn: config.labelColumn,
    labels: config.labels,
  });
  const splits = options.resumeFrom
    ? parseSplitFile(
      await readJsonFile(runPaths(options.resumeFrom).split),
      runPaths(options.resumeFrom).split,
    )
    : planSplits(dataset.sizes, config, config.data);
  const sizes = {
    train: partSize(splits.train, dataset.sizes),
    validation: partSize(splits.validation, dataset.sizes),
    test: partSize(splits.test, dataset.sizes),
  };
  if (sizes.train === 0) throw new VitLoraError(`${config.data}: no training images`);
  if (sizes.validation === 0) {
    throw new VitLoraError(
      `${config.data}: no validation images (${sizes.train} training images; raise --validation-fraction)`,
    );
  }
  return { dataset, splits, sizes };
}

/** The run's model: the base checkpoint with a new adapter, or with the given one. */
export async function loadTrainingModel(
  config: TrainConfig,
  dataset: ImageDataset,
  options: { backend?: BackendName; progress?: boolean; hub?: HubSettings; replicas?: number },
): Promise<ViTClassifier> {
  const clf = await loadClassifier(config.model, {
    adapter: config.adapter,
    lora: config.adapter ? undefined : {
      r: config.loraR,
      alpha: config.loraAlpha,
      dropout: config.loraDropout,
      targetModules: config.targetModules,
    },
    labels: dataset.labels,
    backend: options.backend,
    seed: config.seed,
    loraDropout: config.loraDropout,
    peftFormat: config.peftFormat,
    precision: config.precision,
    progress: options.progress,
    hub: options.hub,
    replicas: options.replicas,
  });
  if (clf.labels.length !== dataset.labels.length) {
    clf.dispose();
    throw new VitLoraError(
      `${config.adapter}: its classifier has ${clf.labels.length} classes, the dataset ${dataset.labels.length}`,
    );
  }
  return clf;
}
