/**
 * Early stopping against a real transformers 5.18 `Trainer` with `EarlyStoppingCallback`
 * (`fixtures/hf5-trainer-more/`, see its README): the same steps, the same evaluations, the
 * same epoch to stop after and the same best epoch restored, with the threshold counting as
 * transformers counts it.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { readSafetensors } from "../../src/model/safetensors_file.ts";
import type { EvalEvent, StepEvent } from "../../src/runs/events.ts";
import { readMetrics } from "../../src/runs/folder.ts";
import { afterEvaluation } from "../../src/training/checkpointer.ts";
import type { TrainerState } from "../../src/training/checkpoint.ts";
import { train } from "../../src/training/trainer.ts";
import {
  assertTrainerSteps,
  fixture,
  relError,
  tempDir,
  type TrainerStep,
  useBackend,
} from "../helpers.ts";

const MORE = fixture("hf5-more");
const RUNS = fixture("hf5-trainer-more");

interface EarlyRun {
  args: Record<string, number>;
  steps: TrainerStep[];
  early_stopping: {
    early_stopping_patience: number;
    early_stopping_threshold: number;
    stopped_after_epoch: number;
    stopped_at_step: number;
    best_epoch: number;
    evaluations: {
      epoch: number;
      eval_accuracy: number;
      eval_loss: number;
      patience_counter: number;
    }[];
  };
}

Deno.test("early stopping: the counter and the best follow EarlyStoppingCallback and Trainer", () => {
  const state: TrainerState = { global_step: 0, epoch: 0, rows_done: 0, skipped: 0, seconds: 0 };
  const early = { patience: 2, threshold: 0.05 };
  const seen = [0.4, 0.5, 0.52, 0.52, 0.6].map((acc, i) => ({
    ...afterEvaluation(state, i + 1, acc, early),
    patience: state.patience,
  }));
  assert.deepEqual(seen, [
    { best: true, stop: false, patience: 0 }, // the first evaluation always resets
    { best: true, stop: false, patience: 0 }, // better by more than the threshold
    { best: true, stop: false, patience: 1 }, // a new best, but not by more than 0.05
    { best: false, stop: true, patience: 2 }, // a tie is no improvement: stop
    { best: true, stop: false, patience: 0 },
  ]);
  assert.deepEqual(state.best, { epoch: 5, accuracy: 0.6 });
  const never = { global_step: 0, epoch: 0, rows_done: 0, skipped: 0, seconds: 0 };
  for (let i = 0; i < 5; i++) {
    assert.equal(afterEvaluation(never, i + 1, 0.5, { threshold: 0 }).stop, false);
  }
});

for (const name of ["trainer-es", "trainer-es-threshold"]) {
  Deno.test(`train() stops early where transformers.Trainer's ${name} stopped, and keeps its best epoch`, async () => {
    await useBackend("cpu");
    await using tmp = await tempDir();
    const trainer = JSON.parse(
      await Deno.readTextFile(join(RUNS, name, "trainer_run.json")),
    ) as EarlyRun;
    const a = trainer.args, es = trainer.early_stopping;
    const steps: StepEvent[] = [];
    const result = await train({
      model: join(MORE, "model"),
      adapter: join(MORE, "adapter-list"),
      data: join(MORE, "data-a"),
      out: join(tmp.path, "run"),
      testFraction: 0, // Trainer evaluates on the whole validation split
      epochs: a.num_train_epochs,
      batchSize: a.per_device_train_batch_size,
      gradAccum: a.gradient_accumulation_steps,
      lr: a.learning_rate,
      maxGradNorm: a.max_grad_norm,
      earlyStoppingPatience: es.early_stopping_patience,
      earlyStoppingThreshold: es.early_stopping_threshold,
      augment: "none",
      shuffle: false,
      loraDropout: 0,
      workers: 0,
      progress: false,
      backend: "cpu",
      onStep: (e) => steps.push(e),
    });
    assert.equal(result.stoppedEarly, true);
    assert.equal(result.steps, es.stopped_at_step);
    assert.equal(result.bestEpoch, es.best_epoch);
    assert.equal(steps.length, es.stopped_at_step);
    assertTrainerSteps(name, steps, trainer.steps.slice(0, steps.length));
    const evals = (await readMetrics(result.runDir)).filter((e): e is EvalEvent =>
      e.event === "eval" && e.split === "validation"
    );
    assert.equal(evals.length, es.stopped_after_epoch);
    for (const [i, e] of es.evaluations.entries()) {
      assert.equal(evals[i].accuracy, e.eval_accuracy, `epoch ${e.epoch} accuracy`);
      assert.ok(
        Math.abs(evals[i].loss - e.eval_loss) / e.eval_loss < 1e-4,
        `epoch ${e.epoch} loss`,
      );
    }
    // best/ is the adapter Trainer restored with load_best_model_at_end
    const ours = await readSafetensors(join(result.runDir, "best", "adapter_model.safetensors"));
    const theirs = await readSafetensors(
      join(RUNS, name, "trained-adapter", "adapter_model.safetensors"),
    );
    assert.deepEqual([...ours.keys()].sort(), [...theirs.keys()].sort());
    let worst = 0;
    for (const [key, t] of theirs) worst = Math.max(worst, relError(ours.get(key)!.data, t.data));
    assert.ok(worst < 1e-4, `best adapter: ${worst}`);
  });
}
