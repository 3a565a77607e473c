/**
 * Fine-tuning, end to end: rows → decode → augment → batches → ViT + LoRA → loss → AdamW →
 * checkpoints, with Hugging Face Trainer's semantics (see `optimizer.ts` and `pipeline.ts`),
 * an evaluation and a checkpoint every epoch, the best epoch kept by validation accuracy
 * (early stopping as `EarlyStoppingCallback`, when asked) and evaluated on the test split at
 * the end. The parts: `setup.ts` (configuration, data, model), `plan.ts` (steps and rates),
 * `recorder.ts` (each step's metrics line), `checkpointer.ts` (adapters, checkpoints, early
 * stopping); reporters plug in as callbacks (`callbacks.ts`).
 *
 * @module
 */

import "../backend/deno_platform.ts"; // Deno's environment, files and BLAS (core/platform.ts)
import { basename } from "node:path";
import { VitLoraError } from "../core/errors.ts";
import { writeFileAtomic } from "../core/files.ts";
import { Progress } from "../core/progress.ts";
import { Random, STREAMS } from "../core/random.ts";
import { type BackendInfo, initBackend } from "../backend/backend.ts";
import { type Batch, batches, DecodePool } from "../data/loader.ts";
import { partRows } from "../data/sampler.ts";
import { splitFile, type SplitPart } from "../data/splits.ts";
import type { HubSettings } from "../hub/settings.ts";
import type { ViTClassifier } from "../model/classifier.ts";
import { activationBudget, autoChunkSize } from "../model/memory.ts";
import { classifierReplicas } from "../engines/parallel.ts";
import type { TrainConfig, TrainRunOptions } from "../runs/config.ts";
import type { StepEvent } from "../runs/events.ts";
import { createRunFolder, runPaths, validationOf } from "../runs/folder.ts";
import { type EvalMetrics, evaluateBatches, toEvalReport } from "../eval/evaluate.ts";
import { notify, type TrainerCallback, type TrainResult } from "./callbacks.ts";
import {
  latestCheckpoint,
  loadAdapterWeights,
  loadOptimizer,
  type TrainerState,
} from "./checkpoint.ts";
import { afterEvaluation, Checkpointer } from "./checkpointer.ts";
import { GradScaler } from "./grad_scaler.ts";
import { AdamW, trainerNoDecay } from "./optimizer.ts";
import { StepPipeline } from "./pipeline.ts";
import { makePlan, type TrainingPlan } from "./plan.ts";
import { RunLog } from "./recorder.ts";
import { dataNotes, evalEvent, runConfigOf, startLine, summary } from "./summary.ts";
import { loadTrainingModel, openTrainingData, resolveConfig, type TrainingData } from "./setup.ts";

/** Options of {@link train}: the configuration, where the run goes and how it runs. */
export interface TrainOptions extends Partial<TrainConfig>, TrainRunOptions {
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
  /** The clock steps are timed by, in ms (default `performance.now`; tests inject one). */
  clock?: () => number;
}

/**
 * Fine-tunes a ViT with LoRA on an image dataset (an image folder, parquet shards or a Hub
 * dataset) and returns where it ended.
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
 *   data: "photos", // photos/cat/*.jpg, photos/dog/*.jpg
 *   out: "runs/photos",
 *   callbacks: [reportCallback()], // and report.html at the end
 * });
 * console.log(result.bestEpoch, result.test?.accuracy);
 * ```
 */
export async function train(options: TrainOptions = {}): Promise<TrainResult> {
  // configure: a resumed run's own configuration, else the defaults and the options
  const { config, runDir } = await resolveConfig(options);
  const progress = new Progress(options.progress === false ? { write: () => {} } : {});

  // data: the dataset and its train, validation and test parts
  const data = await openTrainingData(config, {
    progress: options.progress,
    hub: options.hub,
    resumeFrom: options.resume ? runDir : undefined,
  });
  for (const line of dataNotes(config.data, data.dataset)) progress.line(line);
  const backend = await initBackend(options.backend);

  // model: the base checkpoint with a new adapter, or the given one
  const clf = await loadTrainingModel(config, data.dataset, options);

  const run = new TrainingRun({ config, runDir, options, progress, data, backend, clf });
  try {
    await run.begin();
    for (let epoch = run.state.epoch; epoch < run.plan.epochs && !run.done; epoch++) {
      if (await run.trainEpoch(epoch)) break; // stopped by the signal
      if (await run.endOfEpoch(epoch)) break; // stopped early
    }
    return await run.end();
  } finally {
    await run.close();
  }
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
  readonly plan: TrainingPlan;
  readonly chunkSize: number;
  readonly pool: DecodePool;
  readonly optimizer: AdamW;
  readonly log: RunLog;
  readonly checkpoints: Checkpointer;
  state: TrainerState;
  interrupted = false;
  #sessionStart = performance.now();
  /** Training images decoded this session, by class (to find a class left without any). */
  #seenClasses = new Set<number>();
  #steps?: StepPipeline;
  /** The loss scaler of a run in fp16 (Trainer's `GradScaler` defaults). */
  readonly scaler?: GradScaler;

  constructor(init: {
    config: TrainConfig;
    runDir: string;
    options: TrainOptions;
    progress: Progress;
    data: TrainingData;
    backend: BackendInfo;
    clf: ViTClassifier;
  }) {
    const { config, clf, options } = init;
    this.config = config;
    this.runDir = init.runDir;
    this.options = options;
    this.progress = init.progress;
    this.data = init.data;
    this.backend = init.backend;
    this.clf = clf;
    this.plan = makePlan({ ...config, trainSize: init.data.sizes.train });
    this.chunkSize = config.chunkSize ??
      autoChunkSize(clf.config, config.batchSize, activationBudget(init.backend.name));
    this.pool = new DecodePool({ workers: options.workers });
    this.optimizer = new AdamW(clf.trainableVariables(), {
      weightDecay: config.weightDecay,
      noDecay: trainerNoDecay,
    });
    this.log = new RunLog({
      runDir: init.runDir,
      progress: init.progress,
      callbacks: options.callbacks,
      onStep: options.onStep,
      clock: options.clock,
      stepsPerEpoch: this.plan.stepsPerEpoch,
      onNewSkip: () => this.state.skipped++,
    });
    this.checkpoints = new Checkpointer(init.runDir, clf, this.optimizer);
    this.scaler = clf.precision === "fp16" ? new GradScaler() : undefined;
    this.state = {
      global_step: 0,
      epoch: 0,
      rows_done: 0,
      skipped: 0,
      seconds: 0,
      rng: { generator: "mulberry32", seed: config.seed },
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
        const applied = last.state.optimizer_steps ?? last.state.global_step;
        await loadOptimizer(this.optimizer, last.dir, applied);
        if (last.state.scaler) this.scaler?.load(last.state.scaler);
        this.state = last.state;
        this.progress.line(`resuming ${runDir} from ${last.dir} (step ${this.state.global_step})`);
      }
      await this.log.metrics.truncate({ step: this.state.global_step, epoch: this.state.epoch });
    } else {
      await createRunFolder(runDir, {
        config: runConfigOf(this, replicas),
        split: splitFile(this.data.splits, config),
      });
    }
    await notify(this.log.callbacks, "onTrainBegin", {
      runDir,
      name: basename(runDir),
      config,
      backend: this.backend,
      parameters,
      chunkSize: this.chunkSize,
      replicas,
      resumed,
    }, this.log.context);
    this.progress.line(startLine(this, parameters));
    this.#sessionStart = performance.now();
  }

  /** A part's rows through the evaluation transform, evaluated. */
  evaluate(part: SplitPart, label: string, count: number): Promise<EvalMetrics> {
    this.progress.start(label, count);
    return evaluateBatches(
      this.clf,
      batches(partRows(this.data.dataset, part), {
        spec: this.clf.transformSpec(),
        batchSize: this.config.batchSize,
        pool: this.pool,
        prefetch: this.options.prefetch,
        onSkip: this.log.onSkip,
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
      partRows(this.data.dataset, this.data.splits.train, {
        shuffle: config.shuffle,
        seed: config.seed,
        epoch,
        window: config.shuffleWindow,
        skip: state.rows_done,
      }),
      {
        spec: { ...this.clf.transformSpec(), augment: config.augment },
        batchSize: config.batchSize,
        pool: this.pool,
        prefetch: this.options.prefetch,
        rng: (row) => [config.seed, STREAMS.augment, epoch, row.index],
        onSkip: this.log.onSkip,
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
        const start = this.log.recorder.clock();
        const group: Batch[] = [];
        while (!next.done && group.length < config.gradAccum) {
          group.push(next.value);
          for (const label of next.value.labels) this.#seenClasses.add(label);
          next = await source.next();
        }
        if (!await this.step(group, epoch, start) || this.#stopping()) {
          await this.flush();
          await this.interrupt();
          return true;
        }
      }
      await this.flush(); // the epoch's last step: recorded before the evaluation
      if (epoch === 0 && state.rows_done === 0) this.#checkClasses();
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

  /** After a whole first epoch: every class had a training image that could be decoded. */
  #checkClasses(): void {
    const missing = this.data.dataset.labels.filter((_, i) => !this.#seenClasses.has(i));
    if (missing.length > 0 && this.state.skipped > 0) {
      throw new VitLoraError(
        `${this.config.data}: no training image of ${missing.join(", ")} could be decoded ` +
          `(see ${runPaths(this.runDir).skipped})`,
      );
    }
  }

  /**
   * One optimizer step over `group`'s micro-batches (see {@link StepPipeline}: HF Trainer's
   * semantics, the loss and gradient norm read a step late); false when it was not applied
   * because the run is stopping. The previous step is recorded once this step's passes are
   * queued; a stop asked for then leaves this step's gradients unapplied, so the checkpoint
   * and the metrics end at the previous step. {@link TrainingRun.flush} records the last step.
   */
  async step(group: Batch[], epoch: number, start: number): Promise<boolean> {
    const { config, state } = this;
    const steps = this.#steps ??= new StepPipeline(this.clf, this.optimizer, {
      scaler: this.scaler,
    });
    const images = group.reduce((s, b) => s + b.size, 0);
    const { recorder } = this.log;
    recorder.begin({ epoch: epoch + 1, step: state.global_step + 1, lr: NaN, images, start });
    const applied = await steps.step(group, {
      chunkSize: this.chunkSize,
      dropoutSeed: (m) => Random.stream(config.seed, STREAMS.dropout, state.global_step, m).state,
      // the schedule counts applied steps: a step the loss scaler skips does not advance it,
      // as Trainer's scheduler does not step then
      lr: (appliedSteps) => {
        const lr = this.plan.lr(appliedSteps);
        recorder.setRate(lr);
        return lr;
      },
      maxGradNorm: config.maxGradNorm,
      labelSmoothing: config.labelSmoothing,
    }, async (values) => {
      await this.log.step(values);
      return !this.#stopping();
    });
    if (!applied) {
      this.log.recorder.cancel();
      return false;
    }
    state.global_step++;
    state.rows_done += group.reduce((s, b) => s + b.rows, 0);
    return true;
  }

  /** Whether the signal asks the run to stop before its last step. */
  #stopping(): boolean {
    return (this.options.signal?.aborted ?? false) && !this.done;
  }

  /** Records the step still pending, if any: before an evaluation, a checkpoint, the end. */
  async flush(): Promise<void> {
    const values = await this.#steps?.finish();
    if (values) await this.log.step(values);
  }

  /** Forgets a pending step (after an error: its values are not recorded). */
  #abandon(): void {
    this.#steps?.dispose();
    this.#steps = undefined;
    this.log.recorder.clear();
  }

  /** Stopped by the signal: a checkpoint of where the run stands. */
  async interrupt(): Promise<void> {
    this.#checkpointTime();
    const dir = await this.checkpoints.saveStep(this.state);
    this.progress.line(
      `stopped at step ${this.state.global_step}: saved ${dir}; continue with --resume ${this.runDir}`,
    );
    this.interrupted = true;
  }

  /** The state a checkpoint records: the time, the optimizer's steps, the scaler. */
  #checkpointTime(): void {
    this.state.seconds = this.elapsed();
    this.#sessionStart = performance.now();
    this.state.optimizer_steps = this.optimizer.steps;
    if (this.scaler) this.state.scaler = this.scaler.state();
  }

  /**
   * The end of an epoch: evaluate, keep the best adapter, checkpoint; true when early
   * stopping ends the run here.
   */
  async endOfEpoch(epoch: number): Promise<boolean> {
    const { state, plan, config, data } = this;
    state.epoch = epoch + 1;
    state.rows_done = 0;
    const val = await this.evaluate(
      data.splits.validation,
      `validation ${epoch + 1}/${plan.epochs}`,
      data.sizes.validation,
    );
    await this.log.record(evalEvent(val, epoch + 1, "validation"));
    this.progress.line(
      `epoch ${epoch + 1}/${plan.epochs}: validation accuracy ${
        (100 * val.accuracy).toFixed(2)
      }%, top-5 ${(100 * val.top5).toFixed(2)}%, loss ${val.loss.toFixed(4)}`,
    );
    const { best, stop } = afterEvaluation(state, epoch + 1, val.accuracy, {
      patience: config.earlyStoppingPatience,
      threshold: config.earlyStoppingThreshold,
    });
    if (best) await this.checkpoints.saveBest();
    this.#checkpointTime();
    await this.checkpoints.saveEpoch(epoch + 1, state);
    if (stop && !this.done) {
      this.progress.line(
        `early stopping: no better validation accuracy for ${state.patience} epochs (best: epoch ${state.best?.epoch})`,
      );
      return true;
    }
    return false;
  }

  /** The best adapter on the test split (when the run finished and has one). */
  async testBest(): Promise<EvalMetrics | undefined> {
    const { state, data, config, runDir } = this;
    if (this.interrupted || !state.best || data.sizes.test === 0) return undefined;
    const paths = runPaths(runDir);
    await loadAdapterWeights(this.clf, paths.best);
    const test = await this.evaluate(data.splits.test, "test", data.sizes.test);
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
    await this.log.record(evalEvent(test, state.best.epoch, "test"));
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
      stoppedEarly: this.state.stopped_early ?? false,
    };
    if (!this.interrupted) this.progress.line(summary(result));
    await notify(this.log.callbacks, "onTrainEnd", result, this.log.context);
    return result;
  }

  /** Releases everything: callbacks, decoding workers, optimizer, model. */
  async close(): Promise<void> {
    for (const callback of this.log.callbacks) {
      try {
        await callback.onClose?.();
      } catch {
        // releasing must not hide the run's own outcome
      }
    }
    this.pool.close();
    this.#steps?.dispose();
    this.scaler?.dispose();
    this.optimizer.dispose();
    this.clf.dispose();
  }
}
