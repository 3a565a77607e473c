/**
 * Fine-tuning, end to end: parquet rows → decode → augment → batches → ViT + LoRA → loss →
 * AdamW → checkpoints, with Hugging Face Trainer's semantics (see `optimizer.ts` and
 * {@link TrainingRun.step}), an evaluation and a checkpoint every epoch, the best epoch kept by
 * validation accuracy and evaluated on the held-out test split at the end. Reporters plug in
 * as callbacks (`callbacks.ts`).
 *
 * @module
 */

import { basename, join, resolve } from "node:path";
import { VitLoraError } from "../core/errors.ts";
import { writeFileAtomic } from "../core/files.ts";
import { Progress } from "../core/progress.ts";
import { Random } from "../core/random.ts";
import { tf } from "../core/tf.ts";
import { VERSION } from "../core/version.ts";
import { type BackendInfo, type BackendName, initBackend } from "../backend/backend.ts";
import { type Batch, batches, DecodePool, type SkippedImage } from "../data/loader.ts";
import { openParquetDataset, type ParquetDataset } from "../data/parquet.ts";
import { epochRows, splitIndices } from "../data/sampler.ts";
import { datasetFolder } from "../hub/hub.ts";
import type { HubSettings } from "../hub/settings.ts";
import type { ViTClassifier } from "../model/classifier.ts";
import { loadClassifier } from "../model/loading.ts";
import { activationBudget, autoChunkSize } from "../model/memory.ts";
import { classifierReplicas } from "../engines/parallel.ts";
import {
  checkTrainConfig,
  DEFAULT_TRAIN_CONFIG,
  TRAIN_CONFIG_KEYS,
  TRAIN_OPTIONS,
  type TrainConfig,
} from "../runs/config.ts";
import type { EvalEvent, StepEvent } from "../runs/events.ts";
import {
  createRunFolder,
  MetricsLog,
  readRunConfig,
  type RunConfig,
  runPaths,
  validationOf,
} from "../runs/folder.ts";
import { type EvalMetrics, evaluateBatches, toEvalReport } from "../eval/evaluate.ts";
import {
  type CallbackContext,
  notify,
  type TrainerCallback,
  type TrainResult,
} from "./callbacks.ts";
import {
  latestCheckpoint,
  loadAdapterWeights,
  loadOptimizer,
  saveCheckpoint,
  type TrainerState,
  writeFolderAtomic,
} from "./checkpoint.ts";
import { AdamW, linearSchedule, trainerNoDecay } from "./optimizer.ts";
import { StepPipeline } from "./pipeline.ts";

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
  /**
   * What plugs into the run: reporters such as the run report, Weights & Biases and a push to
   * the Hub (see `reporting/`), or your own.
   */
  callbacks?: TrainerCallback[];
  /** Hub settings for Hub ids (default: from the environment, see `hubSettings`). */
  hub?: HubSettings;
}

/**
 * Fine-tunes a ViT with LoRA on a parquet image dataset and returns where it ended.
 *
 * The run folder (see `runs/folder.ts`) gets `config.json`, `split.json`, `metrics.jsonl` (a
 * line per optimizer step and per evaluation), `checkpoints/epoch-N/` (adapter, optimizer,
 * trainer state), `best/` (the best epoch's PEFT adapter) and `eval-test.json`.
 *
 * @example
 * ```ts ignore
 * import { reportCallback, train } from "@lora/vit";
 * const result = await train({
 *   model: "models/vit-base-patch16-224-in21k",
 *   data: "datasets/food101",
 *   out: "runs/food101",
 *   callbacks: [reportCallback()], // and report.html at the end
 * });
 * console.log(result.bestEpoch, result.test?.accuracy);
 * ```
 */
export async function train(options: TrainOptions = {}): Promise<TrainResult> {
  // configure: a resumed run's own configuration, else the defaults and the options
  const { config, runDir } = await resolveConfig(options);
  const progress = new Progress(options.progress === false ? { write: () => {} } : {});

  // data: the splits and the fixed-seed division of the held-out one
  const data = await openData(config, options);
  const backend = await initBackend(options.backend);

  // model: the base checkpoint with a new adapter, or the given one
  const clf = await loadModel(config, data.dataset, options);

  const run = new TrainingRun({ config, runDir, options, progress, data, backend, clf });
  try {
    await run.begin();
    for (let epoch = run.state.epoch; epoch < run.plan.epochs && !run.done; epoch++) {
      const stopped = await run.trainEpoch(epoch);
      if (stopped) break;
      await run.endOfEpoch(epoch);
    }
    return await run.end();
  } finally {
    await run.close();
  }
}

/** The splits: the dataset, its training size, and the held-out split's division. */
interface TrainingData {
  dataset: ParquetDataset;
  trainSize: number;
  heldOut: "validation" | "test";
  split: { validation: number[]; test: number[] };
}

async function openData(config: TrainConfig, options: TrainOptions): Promise<TrainingData> {
  const dataset = await openParquetDataset(
    await datasetFolder(config.data, { progress: options.progress, settings: options.hub }),
  );
  const heldOut = dataset.splits.has("validation") ? "validation" : "test";
  const split = splitIndices(dataset.size(heldOut), {
    testFraction: config.testFraction,
    seed: config.seed,
  });
  return { dataset, trainSize: dataset.size("train"), heldOut, split };
}

async function loadModel(
  config: TrainConfig,
  dataset: ParquetDataset,
  options: TrainOptions,
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

function flagsOf(keys: string[]): string {
  return keys.map((k) => `--${TRAIN_OPTIONS.find((o) => o.key === k)?.flag ?? k}`).join(", ");
}

/** Resolves the configuration: a resumed run's own, else defaults + options. */
async function resolveConfig(
  options: TrainOptions,
): Promise<{ config: TrainConfig; runDir: string }> {
  const given = TRAIN_CONFIG_KEYS.filter((k) =>
    (options as Record<string, unknown>)[k] !== undefined
  );
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
    // runs from before peftFormat existed saved their adapters in transformers 4's names
    const before: Partial<TrainConfig> = { peftFormat: "transformers-4" };
    return { config: { ...DEFAULT_TRAIN_CONFIG, ...before, ...saved.train }, runDir };
  }
  const config = { ...DEFAULT_TRAIN_CONFIG } as TrainConfig;
  for (const key of given) {
    (config as unknown as Record<string, unknown>)[key] = (options as Record<string, unknown>)[key];
  }
  checkTrainConfig(config);
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return { config, runDir: resolve(options.out ?? join("runs", stamp)) };
}

/** Steps an epoch, in all, and epochs, with the learning rate of each step. */
interface Plan {
  stepsPerEpoch: number;
  totalSteps: number;
  epochs: number;
  lr: (step: number) => number;
  chunkSize: number;
}

function makePlan(
  config: TrainConfig,
  trainSize: number,
  clf: ViTClassifier,
  backend: BackendInfo,
): Plan {
  const stepsPerEpoch = Math.ceil(Math.ceil(trainSize / config.batchSize) / config.gradAccum);
  const totalSteps = config.maxSteps ?? config.epochs * stepsPerEpoch;
  return {
    stepsPerEpoch,
    totalSteps,
    epochs: Math.ceil(totalSteps / stepsPerEpoch),
    lr: linearSchedule({
      lr: config.lr,
      totalSteps,
      warmupSteps: Math.ceil(config.warmupRatio * totalSteps),
    }),
    chunkSize: config.chunkSize ??
      autoChunkSize(clf.config, config.batchSize, activationBudget(backend.name)),
  };
}

/** One training run in progress: its model, optimizer, data, state and log. */
class TrainingRun {
  readonly config: TrainConfig;
  readonly runDir: string;
  readonly options: TrainOptions;
  readonly progress: Progress;
  readonly data: TrainingData;
  readonly backend: BackendInfo;
  readonly clf: ViTClassifier;
  readonly plan: Plan;
  readonly pool: DecodePool;
  readonly optimizer: AdamW;
  readonly metrics: MetricsLog;
  readonly callbacks: TrainerCallback[];
  readonly context: CallbackContext;
  state: TrainerState;
  interrupted = false;
  #sessionStart = performance.now();
  #reportedSkips = new Set<string>();

  constructor(init: {
    config: TrainConfig;
    runDir: string;
    options: TrainOptions;
    progress: Progress;
    data: TrainingData;
    backend: BackendInfo;
    clf: ViTClassifier;
  }) {
    this.config = init.config;
    this.runDir = init.runDir;
    this.options = init.options;
    this.progress = init.progress;
    this.data = init.data;
    this.backend = init.backend;
    this.clf = init.clf;
    this.plan = makePlan(init.config, init.data.trainSize, init.clf, init.backend);
    this.pool = new DecodePool({ workers: init.options.workers });
    this.optimizer = new AdamW(init.clf.trainableVariables(), {
      weightDecay: init.config.weightDecay,
      noDecay: trainerNoDecay,
    });
    this.metrics = new MetricsLog(init.runDir);
    this.callbacks = init.options.callbacks ?? [];
    this.context = { log: (line) => init.progress.line(line) };
    this.state = {
      global_step: 0,
      epoch: 0,
      rows_done: 0,
      skipped: 0,
      seconds: 0,
      rng: { generator: "mulberry32", seed: init.config.seed },
    };
  }

  /** Whether every step of the plan is done. */
  get done(): boolean {
    return this.state.global_step >= this.plan.totalSteps;
  }

  /** Seconds of training so far, over every session. */
  elapsed(): number {
    return this.state.seconds + (performance.now() - this.#sessionStart) / 1000;
  }

  /** Starts or resumes the run folder, then tells the callbacks. */
  async begin(): Promise<void> {
    const { config, clf, runDir } = this;
    // the model's replicas in workers (CPU path), started now rather than in the first step
    const replicas = (await classifierReplicas(clf))?.size ?? 0;
    const parameters = clf.parameterCount();
    const resumed = this.options.resume !== undefined;
    if (resumed) {
      const last = await latestCheckpoint(runDir);
      if (last) {
        await loadAdapterWeights(clf, last.dir);
        await loadOptimizer(this.optimizer, last.dir, last.state.global_step);
        this.state = last.state;
        this.progress.line(`resuming ${runDir} from ${last.dir} (step ${this.state.global_step})`);
      }
      await this.metrics.truncate({ step: this.state.global_step, epoch: this.state.epoch });
    } else {
      await createRunFolder(runDir, { config: this.runConfig(replicas), split: this.splitFile() });
    }
    await notify(this.callbacks, "onTrainBegin", {
      runDir,
      name: basename(runDir),
      config,
      backend: this.backend,
      parameters,
      chunkSize: this.plan.chunkSize,
      replicas,
      resumed,
    }, this.context);
    const { dataset, trainSize, split } = this.data;
    this.progress.line(
      `training ${config.model} on ${config.data}: ${trainSize} train, ${split.validation.length} validation, ` +
        `${split.test.length} test images, ${dataset.labels.length} classes; ` +
        `${parameters.trainable.toLocaleString("en-US")} trainable of ${
          parameters.total.toLocaleString("en-US")
        } parameters (${(100 * parameters.trainable / parameters.total).toFixed(2)}%); ` +
        `${this.plan.totalSteps} steps on ${this.backend.name}${
          this.backend.adapter ? ` (${this.backend.adapter})` : ""
        }`,
    );
    this.#sessionStart = performance.now();
  }

  /** The run's `config.json`. */
  runConfig(replicas: number): RunConfig {
    const { config, clf, data, plan } = this;
    const lora = clf.lora;
    return {
      train: config,
      backend: this.backend,
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
        labels: data.dataset.labels,
        labels_from: data.dataset.labelsFrom,
        train: data.trainSize,
        validation: data.split.validation.length,
        test: data.split.test.length,
      },
      schedule: {
        steps_per_epoch: plan.stepsPerEpoch,
        total_steps: plan.totalSteps,
        epochs: plan.epochs,
      },
      chunk_size: plan.chunkSize,
      replicas,
      versions: { deno: Deno.version.deno, tfjs: tf.version.tfjs, vit_lora: VERSION },
    };
  }

  /** The run's `split.json`: which held-out rows are validation and which test. */
  splitFile(): object {
    const { config, data } = this;
    return {
      seed: config.seed,
      test_fraction: config.testFraction,
      source: data.heldOut,
      ...data.split,
    };
  }

  /** A metrics line: to `metrics.jsonl`, then to the callbacks. */
  async record(event: StepEvent | EvalEvent): Promise<void> {
    await this.metrics.append(event);
    if (event.event === "step") {
      this.options.onStep?.(event);
      await notify(this.callbacks, "onStep", event, this.context);
    } else await notify(this.callbacks, "onEvaluate", event, this.context);
  }

  /** Reports an undecodable image once a run (not once an epoch) and counts it. */
  onSkip = (s: SkippedImage): void => {
    const where = `${s.file}: row ${s.row}`;
    if (this.#reportedSkips.has(where)) return;
    this.#reportedSkips.add(where);
    this.state.skipped++;
    this.progress.line(`warning: ${where}: ${s.error} (image skipped)`);
  };

  /** The held-out rows `indices` through the evaluation transform, evaluated. */
  evaluate(indices: number[], label: string): Promise<EvalMetrics> {
    const subset = new Set(indices);
    this.progress.start(label, indices.length);
    const { dataset, heldOut } = this.data;
    return evaluateBatches(
      this.clf,
      batches(epochRows(dataset, heldOut, { subset }), {
        spec: this.clf.transformSpec(),
        batchSize: this.config.batchSize,
        pool: this.pool,
        prefetch: this.options.prefetch,
        onSkip: this.onSkip,
      }),
      { onBatch: (done) => this.progress.update(done) },
    );
  }

  /**
   * One epoch's optimizer steps from where the run stands; true when stopped by the signal
   * (a checkpoint saved). Every step's metrics line is recorded by the time it returns.
   */
  async trainEpoch(epoch: number): Promise<boolean> {
    const { config, plan, state } = this;
    const source = batches(
      epochRows(this.data.dataset, "train", {
        shuffle: config.shuffle,
        seed: config.seed,
        epoch,
        window: config.shuffleWindow,
        skip: state.rows_done,
      }),
      {
        spec: this.clf.transformSpec(config.augment),
        batchSize: config.batchSize,
        pool: this.pool,
        prefetch: this.options.prefetch,
        rng: (row) => [config.seed, epoch, row.index],
        onSkip: this.onSkip,
      },
    )[Symbol.asyncIterator]();
    const firstStep = epoch * plan.stepsPerEpoch;
    this.progress.start(
      `epoch ${epoch + 1}/${plan.epochs}`,
      Math.min(plan.stepsPerEpoch, plan.totalSteps - firstStep),
    );
    this.progress.update(state.global_step - firstStep);
    try {
      let next = await source.next();
      while (!next.done && !this.done) {
        // one optimizer step: up to gradAccum micro-batches (the epoch's last may be fewer)
        const group: Batch[] = [];
        const stepStart = performance.now();
        while (!next.done && group.length < config.gradAccum) {
          group.push(next.value);
          next = await source.next();
        }
        const applied = await this.step(group, epoch, stepStart);
        if (!applied || this.#stopping()) {
          await this.flush();
          await this.interrupt();
          return true;
        }
      }
      await this.flush(); // the epoch's last step: recorded before the evaluation
      if (this.#stopping()) {
        await this.interrupt();
        return true;
      }
      return false;
    } catch (e) {
      this.#abandon();
      throw e;
    } finally {
      await source.return?.(undefined);
    }
  }

  /** The steps, their values read a step late. */
  #steps?: StepPipeline;
  /** What the pending step's metrics line needs besides its values. */
  #pending?: PendingStep;

  /**
   * One optimizer step over `group`'s micro-batches (see {@link StepPipeline}: HF Trainer's
   * semantics, the loss and gradient norm read a step late); false when it was not applied
   * because the run is stopping.
   *
   * The previous step is recorded once this step's passes are queued. A stop asked for then
   * (Ctrl-C, or a callback) stops there, this step's gradients unapplied: the checkpoint and the
   * metrics end at the previous step, as they would have without the late read.
   * {@link TrainingRun.flush} records the last step.
   */
  async step(group: Batch[], epoch: number, stepStart: number): Promise<boolean> {
    const { config, state } = this;
    const steps = this.#steps ??= new StepPipeline(this.clf, this.optimizer);
    const lr = this.plan.lr(state.global_step);
    const applied = await steps.step(group, {
      chunkSize: this.plan.chunkSize,
      dropoutSeed: (m) => Random.derive(config.seed, 3, state.global_step, m).state,
      lr,
      maxGradNorm: config.maxGradNorm,
    }, async (values) => {
      await this.#recordStep(values);
      return !this.#stopping();
    });
    if (!applied) return false;
    state.global_step++;
    state.rows_done += group.reduce((s, b) => s + b.rows, 0);
    this.#pending = {
      epoch: epoch + 1,
      step: state.global_step,
      lr,
      images: group.reduce((s, b) => s + b.size, 0),
      start: stepStart,
    };
    return true;
  }

  /** Whether the signal asks the run to stop before its last step. */
  #stopping(): boolean {
    return (this.options.signal?.aborted ?? false) && !this.done;
  }

  /** Records the step still pending, if any: before an evaluation, a checkpoint, the end. */
  async flush(): Promise<void> {
    const values = await this.#steps?.finish();
    if (values) await this.#recordStep(values);
  }

  /** Forgets a pending step (after an error: its values are not recorded). */
  #abandon(): void {
    this.#steps?.dispose();
    this.#steps = undefined;
    this.#pending = undefined;
  }

  /** The pending step's values are back: its metrics line, to the log, the callbacks, the bar. */
  async #recordStep(values: Float32Array): Promise<void> {
    const pending = this.#pending!;
    this.#pending = undefined;
    const [loss, gradNorm] = values;
    const now = performance.now();
    // the step's time: from its start, or from the previous step's end when they overlapped
    const since = Math.max(pending.start, this.#lastStepEnd);
    this.#lastStepEnd = now;
    const event: StepEvent = {
      event: "step",
      epoch: pending.epoch,
      step: pending.step,
      loss,
      lr: pending.lr,
      grad_norm: gradNorm,
      images_per_s: pending.images / ((now - since) / 1000),
    };
    await this.record(event);
    const firstStep = (pending.epoch - 1) * this.plan.stepsPerEpoch;
    this.progress.update(
      pending.step - firstStep,
      `loss ${loss.toFixed(4)} · lr ${pending.lr.toExponential(2)} · ${
        event.images_per_s.toFixed(1)
      } img/s`,
    );
  }

  #lastStepEnd = 0;

  /** Stopped by the signal: a checkpoint of where the run stands. */
  async interrupt(): Promise<void> {
    this.#checkpointTime();
    const dir = join(runPaths(this.runDir).checkpoints, `step-${this.state.global_step}`);
    await saveCheckpoint(dir, {
      classifier: this.clf,
      optimizer: this.optimizer,
      state: this.state,
    });
    this.progress.line(
      `stopped at step ${this.state.global_step}: saved ${dir}; continue with --resume ${this.runDir}`,
    );
    this.interrupted = true;
  }

  #checkpointTime(): void {
    this.state.seconds = this.elapsed();
    this.#sessionStart = performance.now();
  }

  /** The end of an epoch: evaluate, keep the best adapter, checkpoint. */
  async endOfEpoch(epoch: number): Promise<void> {
    const { state, plan } = this;
    state.epoch = epoch + 1;
    state.rows_done = 0;
    const val = await this.evaluate(
      this.data.split.validation,
      `validation ${epoch + 1}/${plan.epochs}`,
    );
    await this.record({
      event: "eval",
      epoch: epoch + 1,
      split: "validation",
      loss: val.loss,
      accuracy: val.accuracy,
      top5: val.top5,
      count: val.count,
    });
    this.progress.line(
      `epoch ${epoch + 1}/${plan.epochs}: validation accuracy ${
        (100 * val.accuracy).toFixed(2)
      }%, ` +
        `top-5 ${(100 * val.top5).toFixed(2)}%, loss ${val.loss.toFixed(4)}`,
    );
    if (!state.best || val.accuracy > state.best.accuracy) {
      state.best = { epoch: epoch + 1, accuracy: val.accuracy };
      await writeFolderAtomic(runPaths(this.runDir).best, (tmp) => this.clf.saveAdapter(tmp));
    }
    this.#checkpointTime();
    await saveCheckpoint(join(runPaths(this.runDir).checkpoints, `epoch-${epoch + 1}`), {
      classifier: this.clf,
      optimizer: this.optimizer,
      state,
    });
  }

  /** The best adapter on the test split (when the run finished and has one). */
  async testBest(): Promise<EvalMetrics | undefined> {
    const { state, data, config, runDir } = this;
    if (this.interrupted || !state.best || data.split.test.length === 0) return undefined;
    const paths = runPaths(runDir);
    await loadAdapterWeights(this.clf, paths.best);
    const test = await this.evaluate(data.split.test, "test");
    await writeFileAtomic(
      paths.evalTest,
      JSON.stringify(
        toEvalReport(test, data.dataset.labels, {
          split: "test",
          model: config.model,
          adapter: paths.best,
          data: config.data,
        }),
      ) + "\n",
    );
    await this.record({
      event: "eval",
      epoch: state.best.epoch,
      split: "test",
      loss: test.loss,
      accuracy: test.accuracy,
      top5: test.top5,
      count: test.count,
    });
    return test;
  }

  /** The run's end: the test, the summary, the callbacks. */
  async end(): Promise<TrainResult> {
    const validation = await validationOf(this.runDir, this.state.best?.epoch);
    const test = await this.testBest();
    const result: TrainResult = {
      runDir: this.runDir,
      bestEpoch: this.state.best?.epoch ?? 0,
      validation,
      test,
      steps: this.state.global_step,
      parameters: this.clf.parameterCount(),
      seconds: this.elapsed(),
      skipped: this.state.skipped,
      interrupted: this.interrupted,
    };
    if (!this.interrupted) this.progress.line(summary(result));
    await notify(this.callbacks, "onTrainEnd", result, this.context);
    return result;
  }

  /** Releases everything: callbacks, decoding workers, optimizer, model. */
  async close(): Promise<void> {
    for (const callback of this.callbacks) {
      try {
        await callback.onClose?.();
      } catch {
        // releasing must not hide the run's own outcome
      }
    }
    this.pool.close();
    this.#steps?.dispose();
    this.optimizer.dispose();
    this.clf.dispose();
  }
}

/** A step applied whose loss and gradient norm are still on their way. */
interface PendingStep {
  /** Its epoch (from 1), step number (from 1) and learning rate. */
  epoch: number;
  step: number;
  lr: number;
  /** Its images, and when it started. */
  images: number;
  start: number;
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
