/**
 * Label smoothing as Trainer's `label_smoothing_factor` (`LabelSmoother`), against the real
 * transformers 5.18 (`fixtures/hf5-trainer-more/`): the loss and every adapter gradient on a
 * fixed batch at ε 0.1 and 0.3, on every backend, and a whole `Trainer` run step for step.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type Tensor1D, type Tensor4D, tf } from "../../src/core/tf.ts";
import { loadClassifier } from "../../src/model/loading.ts";
import { readSafetensors } from "../../src/model/safetensors_file.ts";
import type { StepEvent } from "../../src/runs/events.ts";
import { train } from "../../src/training/trainer.ts";
import {
  assertTrainerSteps,
  BACKENDS,
  fixture,
  relError,
  tempDir,
  type TrainerStep,
  useBackend,
} from "../helpers.ts";

const MORE = fixture("hf5-more");
const RUNS = fixture("hf5-trainer-more");

for (const backend of BACKENDS) {
  Deno.test(`on ${backend}: the label-smoothed loss and its gradients are LabelSmoother's (ε 0.1, 0.3)`, async () => {
    await useBackend(backend);
    const ref = await readSafetensors(join(RUNS, "loss-ls.safetensors"));
    const clf = await loadClassifier(join(MORE, "model"), {
      adapter: join(MORE, "adapter-list"),
      backend,
    });
    const px = ref.get("pixel_values")!;
    const x = tf.tensor4d(
      Float32Array.from(px.data),
      px.shape as [number, number, number, number],
    ) as Tensor4D;
    const y = tf.tensor1d(Int32Array.from(ref.get("labels")!.data), "int32") as Tensor1D;
    try {
      // a first pass sets up what the backend keeps (WebGPU's kernels' constants)
      const warm = clf.lossAndGradients(x, y, { labelSmoothing: 0.1 });
      tf.dispose([warm.loss, ...Object.values(warm.grads)]);
      const before = tf.memory().numTensors;
      const plain = clf.loss(x, y);
      assert.ok(relError(await plain.data(), ref.get("ce_loss")!.data) < 1e-5, "ε 0");
      plain.dispose();
      for (const eps of [0.1, 0.3]) {
        const { loss, grads } = clf.lossAndGradients(x, y, { labelSmoothing: eps });
        const lossErr = relError(await loss.data(), ref.get(`eps${eps}.loss`)!.data);
        assert.ok(lossErr < 1e-5, `ε ${eps} loss: ${lossErr}`);
        let worst = 0;
        for (const [key, g] of Object.entries(grads)) {
          const want = ref.get(`eps${eps}.grad.${key}`);
          assert.ok(want, `a reference gradient for ${key}`);
          worst = Math.max(worst, relError(await g.data(), want.data));
        }
        assert.ok(worst < 1e-3, `ε ${eps} gradients: ${worst}`);
        console.log(
          `  ε ${eps}: loss ${lossErr.toExponential(2)}, gradients ${worst.toExponential(2)}`,
        );
        tf.dispose([loss, ...Object.values(grads)]);
      }
      assert.equal(tf.memory().numTensors, before, "no tensor left behind");
    } finally {
      tf.dispose([x, y]);
      clf.dispose();
    }
  });
}

Deno.test("train() with labelSmoothing 0.1 matches transformers.Trainer with label_smoothing_factor 0.1, step for step", async () => {
  await useBackend("cpu");
  await using tmp = await tempDir();
  const trainer = JSON.parse(
    await Deno.readTextFile(join(RUNS, "trainer-ls", "trainer_run.json")),
  ) as {
    args: Record<string, number>;
    steps: TrainerStep[];
  };
  const a = trainer.args;
  const steps: StepEvent[] = [];
  await train({
    model: join(MORE, "model"),
    adapter: join(MORE, "adapter-list"),
    data: join(MORE, "data-a"),
    out: join(tmp.path, "run"),
    epochs: a.num_train_epochs,
    batchSize: a.per_device_train_batch_size,
    gradAccum: a.gradient_accumulation_steps,
    lr: a.learning_rate,
    maxGradNorm: a.max_grad_norm,
    labelSmoothing: a.label_smoothing_factor,
    augment: "none",
    shuffle: false,
    loraDropout: 0,
    workers: 0,
    progress: false,
    backend: "cpu",
    onStep: (e) => steps.push(e),
  });
  const worst = assertTrainerSteps("trainer-ls", steps, trainer.steps);
  console.log(`  worst step error ${worst.toExponential(2)}`);
});
