/**
 * Fine-tuning, end to end: parquet rows → decode → augment → batches → ViT + LoRA → loss →
 * AdamW → checkpoints, with Hugging Face Trainer's semantics (see `optimizer.ts`), an
 * evaluation and a checkpoint every epoch, the best epoch kept by validation accuracy and
 * evaluated on the held-out test split at the end.
 *
 * @module
 */

import { basename, join, resolve } from "node:path";
import { type BackendName, initBackend } from "../backend/backend.ts";
import {
  latestCheckpoint,
  loadAdapterWeights,
  loadOptimizer,
  saveCheckpoint,
  type TrainerState,
  writeFolderAtomic,
} from "./checkpoint.ts";
import { loadClassifier, type ParameterCount } from "../model/classifier.ts";
import { activationBudget, autoChunkSize } from "../model/memory.ts";
import { VitLoraError } from "../core/errors.ts";
import { type EvalMetrics, evaluateBatches, toEvalReport } from "../eval/evaluate.ts";
import { writeReport } from "../reporting/report.ts";
import { startTrackers, type Tracker } from "../reporting/tracking.ts";
import { exists, writeFileAtomic } from "../core/files.ts";
import { type Batch, batches, DecodePool, type SkippedImage } from "../data/loader.ts";
import { AdamW, clipByGlobalNorm, linearSchedule, trainerNoDecay } from "./optimizer.ts";
import { openParquetDataset } from "../data/parquet.ts";
import { readMetrics, readRunConfig } from "../runs/folder.ts";
import { datasetFolder, type HubSettings } from "../hub/hub.ts";
import { Progress } from "../core/progress.ts";
import { Random } from "../core/random.ts";
import { epochRows, splitIndices } from "../data/sampler.ts";
import { type Scalar, type Tensor, tf } from "../core/tf.ts";
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
  /** AdamW's decoupled weight decay (default 0). */
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

/** Options of {@link train}: the configuration, where the run goes and how it runs. */
export interface TrainOptions extends Partial<TrainConfig> {
  /** The run folder (default `runs/<date-time>`). */
  out?: string;
  /** Continue the run in this folder from its last complete checkpoint. */
  resume?: string;
  /** tfjs backend (default: `VIT_LORA_BACKEND`, else WebGPU). */
  backend?: BackendName;
  /** Decoding workers (default: cores - 1; 0 decodes on the main thread). */
  workers?: number;
  /**
   * Model replicas in workers on the wasm backend, which share each batch's gradients with
   * this isolate (default: one per further core, up to 3, for big models; see
   * `ClassifierOptions.replicas`).
   */
  replicas?: number;
  /** Batches decoded ahead (default 2). */
  prefetch?: number;
  /** Show progress on stderr (default true). */
  progress?: boolean;
  /** Stop at the next optimizer step, saving a checkpoint (e.g. on Ctrl-C). */
  signal?: AbortSignal;
  /** Called after every optimizer step with its metrics line. */
  onStep?: (event: StepEvent) => void;
  /** Hub settings for Hub ids (default: from the environment, see `hubSettings`). */
  hub?: HubSettings;
  /** Also screenshot the report to `report.png` with headless Chromium, when found (default false). */
  screenshot?: boolean;
  /** Where metrics also go: `["wandb"]` streams them to Weights & Biases (see `tracking.ts`). */
  reportTo?: string[];
}

/** One optimizer step, as written to `metrics.jsonl`. */
export interface StepEvent {
  /** Always `"step"`. */
  event: "step";
  /** The epoch (from 1). */
  epoch: number;
  /** The step (from 1). */
  step: number;
  /**
   * Mean cross-entropy over the step's images, before the update (HF Trainer's logged loss:
   * micro-batches weighted by their sizes).
   */
  loss: number;
  /** The learning rate this step used. */
  lr: number;
  /** The gradients' global L2 norm before clipping. */
  grad_norm: number;
  /** Training images a second over this step. */
  images_per_s: number;
}

/** An evaluation, as written to `metrics.jsonl`. */
export interface EvalEvent {
  /** Always `"eval"`. */
  event: "eval";
  /** The epoch evaluated (from 1; for the test, the best epoch). */
  epoch: number;
  /** `validation` or `test`. */
  split: "validation" | "test";
  /** Mean cross-entropy. */
  loss: number;
  /** Top-1 accuracy. */
  accuracy: number;
  /** Top-5 accuracy. */
  top5: number;
  /** Images evaluated. */
  count: number;
}

/** What {@link train} returns. */
export interface TrainResult {
  /** The run folder. */
  runDir: string;
  /** The epoch with the best validation accuracy (from 1). */
  bestEpoch: number;
  /** The best epoch's validation metrics. */
  validation?: EvalEvent;
  /** The best adapter on the test split (absent when interrupted or without a test split). */
  test?: EvalMetrics;
  /** Optimizer steps done. */
  steps: number;
  /** Trainable and total parameters. */
  parameters: ParameterCount;
  /** Seconds spent training and evaluating (over every session of a resumed run). */
  seconds: number;
  /** Images left out because they could not be decoded. */
  skipped: number;
  /** True when stopped by the signal before the end (a checkpoint was saved). */
  interrupted: boolean;
}

/** The reference recipe (HF ViT + PEFT on Food-101). */
export const DEFAULT_TRAIN_CONFIG: Readonly<TrainConfig> = Object.freeze({
  model: "google/vit-base-patch16-224-in21k",
  data: "ethz/food101",
  epochs: 5,
  batchSize: 64,
  gradAccum: 4,
  lr: 5e-3,
  weightDecay: 0,
  warmupRatio: 0,
  loraR: 32,
  loraAlpha: 16,
  loraDropout: 0.1,
  targetModules: ["query", "value"],
  peftFormat: DEFAULT_PEFT_FORMAT,
  seed: 42,
  augment: true,
  shuffle: true,
  testFraction: 0.3,
  maxGradNorm: 1,
  shuffleWindow: 4096,
});

/** Checks a configuration's numbers; a bad one is a {@link VitLoraError} naming the option. */
export function checkTrainConfig(config: TrainConfig): void {
  const flag = (key: string) => "--" + key.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());
  const positiveInt = ["epochs", "batchSize", "gradAccum", "loraR", "shuffleWindow"] as const;
  const checkPositiveInt = (key: string, value: number) => {
    if (!Number.isInteger(value) || value < 1) {
      throw new VitLoraError(`${flag(key)} must be a positive integer, not ${value}`);
    }
  };
  for (const key of positiveInt) checkPositiveInt(key, config[key]);
  for (const key of ["maxSteps", "chunkSize"] as const) {
    if (config[key] !== undefined) checkPositiveInt(key, config[key]);
  }
  const finite = ["lr", "weightDecay", "loraAlpha", "maxGradNorm", "seed"] as const;
  for (const key of finite) {
    if (!Number.isFinite(config[key]) || config[key] < 0) {
      throw new VitLoraError(`${flag(key)} must be a number ≥ 0, not ${config[key]}`);
    }
  }
  const fractions = [["warmupRatio", 1], ["loraDropout", 1], ["testFraction", 1]] as const;
  for (const [key, max] of fractions) {
    if (!(config[key] >= 0 && config[key] < max)) {
      throw new VitLoraError(`${flag(key)} must be in [0, ${max}), not ${config[key]}`);
    }
  }
  if (config.targetModules.length === 0) throw new VitLoraError("--target-modules is empty");
  parsePeftFormat(config.peftFormat);
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
}

/** The run's `metrics.jsonl`, appended to line by line. */
class MetricsLog {
  readonly path: string;
  constructor(path: string) {
    this.path = path;
  }
  async append(event: object): Promise<void> {
    await Deno.writeTextFile(this.path, JSON.stringify(event) + "\n", { append: true });
  }
  /** Drops what a crashed session logged after the checkpoint a resume starts from. */
  async truncate(state: TrainerState): Promise<void> {
    if (!await exists(this.path)) return;
    const kept = (await Deno.readTextFile(this.path)).split("\n").filter((line) => {
      if (!line.trim()) return false;
      const e = JSON.parse(line);
      if (e.event === "step") return e.step <= state.global_step;
      if (e.event === "eval") return e.split === "validation" && e.epoch <= state.epoch;
      return true;
    });
    await writeFileAtomic(this.path, kept.map((l) => l + "\n").join(""));
  }
}

/** Resolves the configuration: a resumed run's own, else defaults + options. */
async function resolveConfig(
  options: TrainOptions,
): Promise<{ config: TrainConfig; runDir: string }> {
  const configKeys = Object.keys(DEFAULT_TRAIN_CONFIG).concat("adapter", "maxSteps", "chunkSize");
  if (options.resume) {
    const given = configKeys.filter((k) => (options as Record<string, unknown>)[k] !== undefined);
    if (given.length > 0 || options.out !== undefined) {
      const flags = [...given, ...(options.out !== undefined ? ["out"] : [])]
        .map((k) => "--" + k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase()));
      throw new VitLoraError(
        `--resume continues a run with its own configuration: leave out ${flags.join(", ")}`,
      );
    }
    const runDir = resolve(options.resume);
    const saved = await readRunConfig(runDir);
    // runs from before peftFormat existed saved their adapters in transformers 4's names
    const before: Partial<TrainConfig> = { peftFormat: "transformers-4" };
    return { config: { ...DEFAULT_TRAIN_CONFIG, ...before, ...saved.train }, runDir };
  }
  const config: TrainConfig = { ...DEFAULT_TRAIN_CONFIG };
  for (const key of configKeys) {
    const value = (options as Record<string, unknown>)[key];
    if (value !== undefined) (config as unknown as Record<string, unknown>)[key] = value;
  }
  checkTrainConfig(config);
  return { config, runDir: resolve(options.out ?? join("runs", timestamp())) };
}

/**
 * Fine-tunes a ViT with LoRA on a parquet image dataset and returns where it ended.
 *
 * The run folder gets `config.json` (the resolved configuration, backend, adapter and
 * dataset), `split.json` (the validation/test indices), `metrics.jsonl` (a line per
 * optimizer step and per evaluation), `checkpoints/epoch-N/` (adapter, optimizer, trainer
 * state) and `best/` (the best epoch's PEFT adapter).
 *
 * @example
 * ```ts ignore
 * import { train } from "@lora/vit";
 * const result = await train({
 *   model: "models/vit-base-patch16-224-in21k",
 *   data: "datasets/food101",
 *   out: "runs/food101",
 * });
 * console.log(result.bestEpoch, result.test?.accuracy);
 * ```
 */
export async function train(options: TrainOptions = {}): Promise<TrainResult> {
  const { config, runDir } = await resolveConfig(options);
  const resuming = options.resume !== undefined;
  const progress = new Progress(
    options.progress === false ? { write: () => {} } : {},
  );

  // data: the splits and their fixed-seed division
  const dataset = await openParquetDataset(
    await datasetFolder(config.data, { progress: options.progress, settings: options.hub }),
  );
  const trainSize = dataset.size("train");
  const heldOut = dataset.splits.has("validation") ? "validation" : "test";
  const heldOutSize = dataset.size(heldOut);
  const split = splitIndices(heldOutSize, { testFraction: config.testFraction, seed: config.seed });
  const backend = await initBackend(options.backend);

  // model: the base checkpoint with a new adapter, or the given one
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
  const pool = new DecodePool({ workers: options.workers });
  const optimizer = new AdamW(clf.trainableVariables(), {
    weightDecay: config.weightDecay,
    noDecay: trainerNoDecay,
  });
  const trackers: Tracker[] = [];
  try {
    const microPerEpoch = Math.ceil(trainSize / config.batchSize);
    const stepsPerEpoch = Math.ceil(microPerEpoch / config.gradAccum);
    const totalSteps = config.maxSteps ?? config.epochs * stepsPerEpoch;
    const epochs = Math.ceil(totalSteps / stepsPerEpoch);
    const schedule = linearSchedule({
      lr: config.lr,
      totalSteps,
      warmupSteps: Math.ceil(config.warmupRatio * totalSteps),
    });
    const parameters = clf.parameterCount();
    const chunkSize = config.chunkSize ??
      autoChunkSize(clf.config, config.batchSize, activationBudget(backend.name));
    // the model's replicas in workers (CPU path), started now rather than in the first step
    const replicas = (await clf.replicas())?.size ?? 0;
    const lora = clf.lora;
    const metrics = new MetricsLog(join(runDir, "metrics.jsonl"));
    let state: TrainerState = {
      global_step: 0,
      epoch: 0,
      rows_done: 0,
      skipped: 0,
      seconds: 0,
      rng: { generator: "mulberry32", seed: config.seed },
    };

    if (resuming) {
      const last = await latestCheckpoint(runDir);
      if (last) {
        await loadAdapterWeights(clf, last.dir);
        await loadOptimizer(optimizer, last.dir, last.state.global_step);
        state = last.state;
        progress.line(`resuming ${runDir} from ${last.dir} (step ${state.global_step})`);
      }
      await metrics.truncate(state);
    } else {
      await Deno.mkdir(runDir, { recursive: true });
      if (await exists(join(runDir, "config.json"))) {
        throw new VitLoraError(
          `${runDir}: already holds a run (resume it with --resume ${runDir})`,
        );
      }
      await writeFileAtomic(
        join(runDir, "split.json"),
        JSON.stringify({
          seed: config.seed,
          test_fraction: config.testFraction,
          source: heldOut,
          ...split,
        }) + "\n",
      );
      await writeFileAtomic(
        join(runDir, "config.json"),
        JSON.stringify(
          {
            train: config,
            backend,
            adapter: lora && {
              peft_format: clf.peftFormat,
              r: lora.r,
              lora_alpha: lora.lora_alpha,
              lora_dropout: lora.lora_dropout,
              target_modules: lora.target_modules,
              modules_to_save: lora.modules_to_save,
            },
            parameters,
            dataset: {
              root: dataset.root,
              labels: dataset.labels,
              labels_from: dataset.labelsFrom,
              train: trainSize,
              validation: split.validation.length,
              test: split.test.length,
            },
            schedule: { steps_per_epoch: stepsPerEpoch, total_steps: totalSteps, epochs },
            chunk_size: chunkSize,
            replicas,
            versions: { deno: Deno.version.deno, tfjs: tf.version.tfjs, vit_lora: "0.1.0" },
          },
          null,
          2,
        ) + "\n",
      );
      await Deno.writeTextFile(metrics.path, "");
    }
    trackers.push(
      ...await startTrackers(options.reportTo ?? [], {
        name: basename(runDir),
        config: { ...config, backend, parameters, chunk_size: chunkSize, replicas },
        warn: (line) => progress.line(line),
      }),
    );
    /** A metrics line: to metrics.jsonl, then to the trackers. */
    const record = async (event: StepEvent | EvalEvent) => {
      await metrics.append(event);
      for (const t of trackers) event.event === "step" ? t.step(event) : t.eval(event);
    };

    const evalSpec = clf.transformSpec();
    const trainSpec = clf.transformSpec(config.augment);
    const reported = new Set<string>();
    const onSkip = (s: SkippedImage) => {
      const where = `${s.file}: row ${s.row}`;
      if (reported.has(where)) return; // once a run, not once an epoch
      reported.add(where);
      state.skipped++;
      progress.line(`warning: ${where}: ${s.error} (image skipped)`);
    };
    const evaluate = (indices: number[], label: string) => {
      const subset = new Set(indices);
      progress.start(label, indices.length);
      return evaluateBatches(
        clf,
        batches(epochRows(dataset, heldOut, { subset }), {
          spec: evalSpec,
          batchSize: config.batchSize,
          pool,
          prefetch: options.prefetch,
          onSkip,
        }),
        { onBatch: (done) => progress.update(done) },
      );
    };

    progress.line(
      `training ${config.model} on ${config.data}: ${trainSize} train, ${split.validation.length} validation, ` +
        `${split.test.length} test images, ${dataset.labels.length} classes; ` +
        `${parameters.trainable.toLocaleString("en-US")} trainable of ${
          parameters.total.toLocaleString("en-US")
        } parameters (${(100 * parameters.trainable / parameters.total).toFixed(2)}%); ` +
        `${totalSteps} steps on ${backend.name}${backend.adapter ? ` (${backend.adapter})` : ""}`,
    );
    let sessionStart = performance.now();
    const elapsed = () => state.seconds + (performance.now() - sessionStart) / 1000;
    let interrupted = false;

    for (let epoch = state.epoch; epoch < epochs && state.global_step < totalSteps; epoch++) {
      const rows = epochRows(dataset, "train", {
        shuffle: config.shuffle,
        seed: config.seed,
        epoch,
        window: config.shuffleWindow,
        skip: state.rows_done,
      });
      const source = batches(rows, {
        spec: trainSpec,
        batchSize: config.batchSize,
        pool,
        prefetch: options.prefetch,
        rng: (row) => [config.seed, epoch, row.index],
        onSkip,
      })[Symbol.asyncIterator]();
      const stepsThisEpoch = Math.min(stepsPerEpoch, totalSteps - epoch * stepsPerEpoch);
      progress.start(`epoch ${epoch + 1}/${epochs}`, stepsThisEpoch);
      const firstStep = epoch * stepsPerEpoch;
      progress.update(state.global_step - firstStep);

      let next = await source.next();
      while (!next.done && state.global_step < totalSteps) {
        // one optimizer step: up to gradAccum micro-batches, the epoch's last may be fewer or
        // shorter. As HF Trainer (≥ 4.46) does, the step's loss and gradient are the mean over
        // all of its images: each micro-batch's mean is weighted by its share of them.
        const stepStart = performance.now();
        const group: Batch[] = [];
        let grads: Record<string, Tensor> | undefined;
        let lossSum: Scalar | undefined;
        while (!next.done && group.length < config.gradAccum) {
          const batch = next.value;
          const out = await clf.batchGradients(batch, {
            chunkSize,
            training: true,
            dropoutSeed: Random.derive(config.seed, 3, state.global_step, group.length).state,
          });
          // sums over the micro-batch's images: its mean × its size
          const summed = tf.tidy(() => ({
            loss: out.loss.mul(batch.size),
            ...Object.fromEntries(
              Object.entries(out.grads).map(([k, g]) => [k, g.mul(batch.size)]),
            ),
          }));
          tf.dispose([out.loss, ...Object.values(out.grads)]);
          const { loss: microLoss, ...microGrads } = summed;
          grads = accumulate(grads, microGrads);
          lossSum = accumulate(lossSum && { loss: lossSum }, { loss: microLoss }).loss as Scalar;
          group.push(batch);
          next = await source.next();
        }
        const n = group.reduce((s, b) => s + b.size, 0); // the step's images
        const lr = schedule(state.global_step);
        const mean = tf.tidy(() =>
          Object.fromEntries(Object.entries(grads!).map(([k, g]) => [k, g.div(n)]))
        ) as Record<string, Tensor>;
        const clipped = clipByGlobalNorm(
          mean,
          config.maxGradNorm > 0 ? config.maxGradNorm : Infinity,
        );
        optimizer.step(clipped.grads, lr);
        const stats = tf.tidy(() => tf.stack([lossSum!.div(n), clipped.norm]));
        const [loss, gradNorm] = await stats.data();
        tf.dispose([
          stats,
          lossSum!,
          clipped.norm,
          ...Object.values(grads!),
          ...Object.values(mean),
          ...Object.values(clipped.grads),
        ]);

        state.global_step++;
        state.rows_done += group.reduce((s, b) => s + b.rows, 0);
        const images = group.reduce((s, b) => s + b.size, 0);
        const event: StepEvent = {
          event: "step",
          epoch: epoch + 1,
          step: state.global_step,
          loss,
          lr,
          grad_norm: gradNorm,
          images_per_s: images / ((performance.now() - stepStart) / 1000),
        };
        await record(event);
        options.onStep?.(event);
        progress.update(
          state.global_step - firstStep,
          `loss ${loss.toFixed(4)} · lr ${lr.toExponential(2)} · ${
            event.images_per_s.toFixed(1)
          } img/s`,
        );
        if (options.signal?.aborted && state.global_step < totalSteps) {
          state.seconds = elapsed();
          sessionStart = performance.now();
          const dir = join(runDir, "checkpoints", `step-${state.global_step}`);
          await saveCheckpoint(dir, { classifier: clf, optimizer, state });
          progress.line(
            `stopped at step ${state.global_step}: saved ${dir}; continue with --resume ${runDir}`,
          );
          interrupted = true;
          break;
        }
      }
      await source.return?.(undefined);
      if (interrupted) break;

      // end of the epoch: evaluate, keep the best, checkpoint
      state.epoch = epoch + 1;
      state.rows_done = 0;
      const val = await evaluate(split.validation, `validation ${epoch + 1}/${epochs}`);
      const evalEvent: EvalEvent = {
        event: "eval",
        epoch: epoch + 1,
        split: "validation",
        loss: val.loss,
        accuracy: val.accuracy,
        top5: val.top5,
        count: val.count,
      };
      await record(evalEvent);
      progress.line(
        `epoch ${epoch + 1}/${epochs}: validation accuracy ${(100 * val.accuracy).toFixed(2)}%, ` +
          `top-5 ${(100 * val.top5).toFixed(2)}%, loss ${val.loss.toFixed(4)}`,
      );
      if (!state.best || val.accuracy > state.best.accuracy) {
        state.best = { epoch: epoch + 1, accuracy: val.accuracy };
        await writeFolderAtomic(join(runDir, "best"), (tmp) => clf.saveAdapter(tmp));
      }
      state.seconds = elapsed();
      sessionStart = performance.now();
      await saveCheckpoint(join(runDir, "checkpoints", `epoch-${epoch + 1}`), {
        classifier: clf,
        optimizer,
        state,
      });
    }

    const validation = await bestValidation(runDir, state.best?.epoch);
    let test: EvalMetrics | undefined;
    if (!interrupted && state.best && split.test.length > 0) {
      await loadAdapterWeights(clf, join(runDir, "best"));
      test = await evaluate(split.test, "test");
      await writeFileAtomic(
        join(runDir, "eval-test.json"),
        JSON.stringify(
          toEvalReport(test, dataset.labels, {
            split: "test",
            model: config.model,
            adapter: join(runDir, "best"),
            data: config.data,
          }),
        ) + "\n",
      );
      await record(
        {
          event: "eval",
          epoch: state.best.epoch,
          split: "test",
          loss: test.loss,
          accuracy: test.accuracy,
          top5: test.top5,
          count: test.count,
        } satisfies EvalEvent,
      );
    }
    const seconds = elapsed();
    const result: TrainResult = {
      runDir,
      bestEpoch: state.best?.epoch ?? 0,
      validation,
      test,
      steps: state.global_step,
      parameters,
      seconds,
      skipped: state.skipped,
      interrupted,
    };
    if (!interrupted) {
      const report = await writeReport({ run: runDir, screenshot: options.screenshot ?? false });
      progress.line(summary(result));
      progress.line(`  report: ${report.html}${report.png ? ` (and ${report.png})` : ""}`);
    }
    return result;
  } finally {
    for (const tracker of trackers) await tracker.finish().catch(() => {});
    pool.close();
    optimizer.dispose();
    clf.dispose();
  }
}

/** `into + add` key by key (a new record; both inputs are disposed), or `add` when `into` is empty. */
function accumulate(
  into: Record<string, Tensor> | undefined,
  add: Record<string, Tensor>,
): Record<string, Tensor> {
  if (!into) return add;
  const out: Record<string, Tensor> = {};
  for (const [key, t] of Object.entries(add)) {
    out[key] = into[key].add(t);
    tf.dispose([into[key], t]);
  }
  return out;
}

async function bestValidation(runDir: string, epoch?: number): Promise<EvalEvent | undefined> {
  if (epoch === undefined) return undefined;
  return (await readMetrics(runDir)).findLast((e): e is EvalEvent =>
    e.event === "eval" && e.split === "validation" && e.epoch === epoch
  );
}

function summary(r: TrainResult): string {
  const pct = (x?: number) => x === undefined ? "–" : `${(100 * x).toFixed(2)}%`;
  const { trainable, total } = r.parameters;
  return [
    `done in ${Math.round(r.seconds)} s, ${r.steps} steps: best epoch ${r.bestEpoch}`,
    `  validation accuracy ${pct(r.validation?.accuracy)} (top-5 ${pct(r.validation?.top5)})`,
    `  test accuracy       ${pct(r.test?.accuracy)} (top-5 ${pct(r.test?.top5)}, ${
      r.test?.count ?? 0
    } images)`,
    `  trainable ${trainable.toLocaleString("en-US")} of ${
      total.toLocaleString("en-US")
    } parameters (${(100 * trainable / total).toFixed(2)}%)`,
    r.skipped > 0 ? `  ${r.skipped} images could not be decoded and were skipped` : "",
    `  adapter: ${join(r.runDir, "best")}`,
  ].filter(Boolean).join("\n");
}
