/**
 * A step's images/s is its images over the wall time the step took (`training/recorder.ts`):
 * start to the next step's start, the last step to when its values are back, also for an
 * epoch's last step and a resumed run's first; the same figure in metrics.jsonl and the
 * callbacks.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { writeSyntheticDataset } from "../../src/data/synthetic.ts";
import type { StepEvent } from "../../src/runs/events.ts";
import { readMetrics } from "../../src/runs/folder.ts";
import { StepRecorder } from "../../src/training/recorder.ts";
import { train } from "../../src/training/trainer.ts";
import { fixture, tempDir, useBackend } from "../helpers.ts";

Deno.test("StepRecorder: values read a step late are timed start to start, the last to its read", () => {
  let now = 1000;
  const log = new StepRecorder({ clock: () => now });
  const begin = (step: number, images: number) =>
    log.begin({ epoch: 1, step, lr: 0.1, images, start: now });
  begin(1, 10);
  now += 200; // step 2 starts 200 ms later; step 1's values come back while it runs
  begin(2, 10);
  now += 30;
  const first = log.finish(new Float32Array([1.5, 0.5]));
  assert.deepEqual(first, {
    event: "step",
    epoch: 1,
    step: 1,
    loss: 1.5,
    lr: 0.1,
    grad_norm: 0.5,
    images_per_s: 50, // 10 images in 200 ms
  });
  now += 470; // the last step: its values are back 500 ms after it began
  assert.equal(log.finish(new Float32Array([1, 1])).images_per_s, 20);
  assert.equal(log.pending, 0);
  begin(3, 4);
  log.cancel(); // not applied: forgotten
  assert.equal(log.pending, 0);
  assert.throws(() => log.finish(new Float32Array(2)), /no step is pending/);
});

Deno.test("train(): every step's images/s, an epoch's last and a resumed run's first included, is its images over its time", async () => {
  await useBackend("cpu");
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await writeSyntheticDataset(data, { classes: 2, trainPerClass: 10, validationPerClass: 4 });
  // a clock that moves 250 ms each time it is read: every step takes exactly one read
  let now = 0;
  const clock = () => (now += 250);
  const steps: StepEvent[] = [];
  const recipe = {
    model: `${fixture("vit-tiny-a")}/model`,
    data,
    epochs: 2,
    batchSize: 4,
    gradAccum: 2,
    loraR: 4,
    workers: 0,
    progress: false,
    backend: "cpu" as const,
  };
  // stopped after step 4 (the second epoch's first), then resumed
  const stop = new AbortController();
  const out = join(dir.path, "run");
  const first = await train({
    ...recipe,
    out,
    clock,
    signal: stop.signal,
    onStep: (e) => {
      steps.push(e);
      if (e.step === 4) stop.abort();
    },
  });
  assert.equal(first.interrupted, true);
  assert.equal(first.steps, 4);
  const result = await train({
    resume: out,
    clock,
    workers: 0,
    progress: false,
    backend: "cpu",
    onStep: (e) => steps.push(e),
  });
  assert.equal(result.steps, 6);
  // 20 images: micro-batches 4,4 | 4,4 | 4 an epoch, so steps of 8, 8 and 4 images
  assert.deepEqual(steps.map((s) => s.step), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(steps.map((s) => s.images_per_s), [32, 32, 16, 32, 32, 16]);
  const logged = (await readMetrics(result.runDir)).filter((e) => e.event === "step");
  assert.deepEqual(logged, steps, "metrics.jsonl has the callbacks' figures");
});
