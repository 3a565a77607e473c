/** train(): HF Trainer's semantics against PyTorch, learning, checkpoints, resume, memory. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type Tensor4D, tf } from "../../src/core/tf.ts";
import { writeSyntheticDataset } from "../../src/data/synthetic.ts";
import { loadClassifier } from "../../src/model/loading.ts";
import { readSafetensors } from "../../src/model/safetensors_file.ts";
import { checkTrainConfig, DEFAULT_TRAIN_CONFIG } from "../../src/runs/config.ts";
import type { StepEvent } from "../../src/runs/events.ts";
import { AdamW, clipByGlobalNorm, linearSchedule } from "../../src/training/optimizer.ts";
import { train, type TrainOptions } from "../../src/training/trainer.ts";
import { parseTrainArgs } from "../../tasks/train.ts";
import {
  assertTrainerSteps,
  BACKENDS,
  fixture,
  relError,
  taskPermissions,
  tempDir,
  useBackend,
} from "../helpers.ts";

const TINY = fixture("train-tiny");
const MODEL = `${fixture("vit-tiny-a")}/model`;
const ADAPTER = `${fixture("vit-tiny-a")}/adapter`;

/** The recipe of ../shared/fixtures/train-tiny's expected_run.json. */
const TINY_RECIPE: TrainOptions = {
  model: MODEL,
  adapter: ADAPTER,
  data: TINY,
  epochs: 2,
  batchSize: 4,
  gradAccum: 2,
  lr: 0.01,
  augment: "none",
  shuffle: false,
  loraDropout: 0,
  workers: 0,
  progress: false,
};

async function readMetrics(runDir: string): Promise<Record<string, unknown>[]> {
  const text = await Deno.readTextFile(join(runDir, "metrics.jsonl"));
  return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
}

for (const backend of BACKENDS) {
  Deno.test(`on ${backend}: every step's loss, lr and grad norm, and the final logits, match PyTorch + HF Trainer`, async () => {
    await useBackend(backend);
    await using dir = await tempDir();
    const expected = JSON.parse(await Deno.readTextFile(join(TINY, "expected_run.json")));
    const steps: StepEvent[] = [];
    const result = await train({
      ...TINY_RECIPE,
      backend,
      out: join(dir.path, "run"),
      onStep: (e) => steps.push(e),
    });
    assert.equal(result.steps, 8);
    const worst = assertTrainerSteps(backend, steps, expected.steps, 1e-5);
    // the adapter after the last step, on the validation split in file order
    const clf = await loadClassifier(MODEL, {
      adapter: join(result.runDir, "checkpoints", "epoch-2"),
      backend,
    });
    const pixels = (await readSafetensors(join(TINY, "pixels.safetensors"))).get(
      "validation.pixels",
    )!;
    const x = tf.tidy(() =>
      tf.tensor4d(Float32Array.from(pixels.data), pixels.shape as [number, number, number, number])
        .div(255).sub(0.5).div(0.5).transpose([0, 3, 1, 2])
    ) as Tensor4D;
    const logits = clf.logits(x);
    const err = relError(await logits.data(), expected.validation_logits.flat());
    tf.dispose([x, logits]);
    clf.dispose();
    assert.ok(err < 1e-5, `validation logits: relative error ${err.toExponential(2)}`);
    console.log(`  worst step error ${worst.toExponential(2)}, logits ${err.toExponential(2)}`);
  });
}

Deno.test("a batch split into chunks trains as the whole batch does (PyTorch's run, within 1e-5)", async () => {
  await useBackend("cpu");
  await using dir = await tempDir();
  const expected = JSON.parse(await Deno.readTextFile(join(TINY, "expected_run.json")));
  const steps: StepEvent[] = [];
  const result = await train({
    ...TINY_RECIPE,
    chunkSize: 3, // batches of 4 as 3 + 1
    backend: "cpu",
    out: join(dir.path, "run"),
    onStep: (e) => steps.push(e),
  });
  const config = JSON.parse(await Deno.readTextFile(join(result.runDir, "config.json")));
  assert.equal(config.chunk_size, 3);
  for (const [i, e] of expected.steps.entries()) {
    for (const key of ["loss", "grad_norm"] as const) {
      const rel = Math.abs(steps[i][key] - e[key]) / Math.abs(e[key]);
      assert.ok(rel < 1e-5, `step ${e.step} ${key}: ${rel.toExponential(2)}`);
    }
  }
});

Deno.test("a tiny ViT learns a generated JPEG dataset: high accuracy, best/, checkpoints, metrics", async () => {
  await useBackend("cpu");
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await writeSyntheticDataset(data, {
    classes: 4,
    trainPerClass: 24,
    validationPerClass: 10,
    corrupt: 1,
  });
  const runDir = join(dir.path, "run");
  const result = await train({
    model: MODEL,
    data,
    out: runDir,
    epochs: 3,
    batchSize: 16,
    gradAccum: 2,
    lr: 5e-3,
    loraR: 8,
    backend: "cpu",
    workers: 1,
    progress: false,
  });
  assert.ok(
    result.validation!.accuracy >= 0.9,
    `validation accuracy ${result.validation!.accuracy}`,
  );
  assert.ok(result.test!.accuracy >= 0.8, `test accuracy ${result.test!.accuracy}`);
  assert.equal(result.skipped, 1);
  assert.equal(result.steps, 9); // ceil(ceil(96 / 16) / 2) = 3 a epoch
  for (
    const file of [
      "config.json",
      "split.json",
      "metrics.jsonl",
      "best/adapter_config.json",
      "best/adapter_model.safetensors",
    ]
  ) {
    assert.ok((await Deno.stat(join(runDir, file))).isFile, file);
  }
  for (const epoch of [1, 2, 3]) {
    for (
      const file of ["adapter_model.safetensors", "optimizer.safetensors", "trainer_state.json"]
    ) {
      assert.ok((await Deno.stat(join(runDir, `checkpoints/epoch-${epoch}/${file}`))).isFile);
    }
  }
  const metrics = await readMetrics(runDir);
  const steps = metrics.filter((m) => m.event === "step");
  assert.deepEqual(steps.map((m) => m.step), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(steps.map((m) => m.epoch), [1, 1, 1, 2, 2, 2, 3, 3, 3]);
  for (const m of steps) {
    for (const key of ["loss", "lr", "grad_norm", "images_per_s"]) {
      assert.equal(typeof m[key], "number", key);
    }
  }
  const evals = metrics.filter((m) => m.event === "eval");
  assert.deepEqual(evals.map((m) => [m.split, m.epoch]), [
    ["validation", 1],
    ["validation", 2],
    ["validation", 3],
    ["test", result.bestEpoch],
  ]);
  const config = JSON.parse(await Deno.readTextFile(join(runDir, "config.json")));
  assert.equal(config.train.loraR, 8);
  assert.equal(config.backend.name, "cpu");
  assert.equal(config.dataset.validation + config.dataset.test, 40);
  const split = JSON.parse(await Deno.readTextFile(join(runDir, "split.json")));
  assert.equal(split.test.indices.length, 12);
  await assert.rejects(
    () => train({ model: MODEL, data, out: runDir, progress: false }),
    /already holds a run/,
  );
});

Deno.test("resume: stopped mid-epoch and at an epoch's end, then resumed, equals an uninterrupted run", async () => {
  await useBackend("cpu");
  await using dir = await tempDir();
  // augmentation, shuffling and dropout on: all of it is seeded
  const recipe: TrainOptions = {
    ...TINY_RECIPE,
    augment: "standard",
    shuffle: true,
    loraDropout: 0.1,
    shuffleWindow: 8,
  };
  const whole = await train({ ...recipe, out: join(dir.path, "whole") });
  assert.equal(whole.steps, 8);

  const out = join(dir.path, "parts");
  for (const stopAt of [3, 4]) {
    const stop = new AbortController();
    const part = await train({
      ...(stopAt === 3 ? { ...recipe, out } : { resume: out, workers: 0, progress: false }),
      signal: stop.signal,
      onStep: (e) => e.step === stopAt && stop.abort(),
    });
    assert.ok(part.interrupted);
    assert.equal(part.steps, stopAt);
  }
  await assert.rejects(
    () => train({ resume: out, epochs: 3, progress: false }),
    /--resume continues a run with its own configuration: leave out --epochs/,
  );
  const resumed = await train({ resume: out, workers: 0, progress: false });
  assert.ok(!resumed.interrupted);
  assert.equal(resumed.steps, 8);

  const strip = (m: Record<string, unknown>[]) => m.map(({ images_per_s: _, ...rest }) => rest);
  assert.deepEqual(strip(await readMetrics(out)), strip(await readMetrics(whole.runDir)));
  for (
    const file of ["best/adapter_model.safetensors", "checkpoints/epoch-2/optimizer.safetensors"]
  ) {
    assert.deepEqual(
      await Deno.readFile(join(out, file)),
      await Deno.readFile(join(whole.runDir, file)),
      file,
    );
  }
  const { imagesPerSecond: _a, ...resumedTest } = resumed.test!;
  const { imagesPerSecond: _b, ...wholeTest } = whole.test!;
  assert.deepEqual(resumedTest, wholeTest);
});

for (const backend of BACKENDS) {
  Deno.test(`${backend}: the tensor count, and the memory in use, are flat across training steps and epochs`, async () => {
    await useBackend(backend);
    await using dir = await tempDir();
    const seen: { tensors: number; bytes: number; gpu?: number; gpuAllocated?: number }[] = [];
    await train({
      ...TINY_RECIPE,
      gradAccum: 1,
      loraDropout: 0.1,
      augment: "standard",
      backend,
      out: join(dir.path, "run"),
      onStep: () => {
        const m = tf.memory() as ReturnType<typeof tf.memory> & {
          numBytesInGPU?: number;
          numBytesAllocatedInGPU?: number;
        };
        seen.push({
          tensors: m.numTensors,
          bytes: m.numBytes,
          gpu: m.numBytesInGPU,
          gpuAllocated: m.numBytesAllocatedInGPU,
        });
      },
    });
    assert.equal(seen.length, 16);
    const show = (k: keyof (typeof seen)[0]) => seen.map((s) => s[k]).join(" ");
    for (const key of ["tensors", "bytes", "gpu"] as const) {
      assert.ok(seen.every((s) => s[key] === seen[0][key]), `${key}: ${show(key)}`);
    }
    if (backend === "webgpu") {
      // GPU buffers: the pool tfjs reuses stops growing once every shape has been seen
      // (the first epoch: steps 1–8)
      assert.ok(seen[0].gpu! > 0 && seen[0].gpuAllocated! > 0, "WebGPU reports its buffers");
      const late = seen.slice(8).map((s) => s.gpuAllocated);
      assert.ok(late.every((b) => b === late[0]), `GPU bytes allocated: ${show("gpuAllocated")}`);
    }
  });
}

Deno.test("AdamW, the linear schedule and clipping follow PyTorch's formulas", async () => {
  await useBackend("cpu");
  const rate = linearSchedule({ lr: 1, totalSteps: 10, warmupSteps: 2 });
  assert.deepEqual([0, 1, 2, 6, 10, 12].map(rate), [0, 0.5, 1, 0.5, 0, 0]);

  const { grads, norm } = clipByGlobalNorm({ a: tf.tensor1d([3, 0]), b: tf.tensor1d([4]) }, 1);
  assert.ok(Math.abs((await norm.data())[0] - 5) < 1e-6);
  assert.ok(Math.abs((await grads.a.data())[0] - 3 / (5 + 1e-6)) < 1e-6);
  const small = clipByGlobalNorm({ a: tf.tensor1d([0.3]) }, 1);
  assert.ok(Math.abs((await small.grads.a.data())[0] - 0.3) < 1e-7, "below the norm: unchanged");
  tf.dispose([norm, ...Object.values(grads), small.norm, ...Object.values(small.grads)]);

  // two steps by hand: torch.optim.AdamW(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
  const p = tf.variable(tf.tensor1d([1, -2]));
  const adam = new AdamW({ p }, { weightDecay: 0.1 });
  const g = [[0.5, 0.25], [-1, 2]];
  let ref = [1, -2], m = [0, 0], v = [0, 0];
  for (let t = 1; t <= 2; t++) {
    const lr = 0.01;
    const grad = tf.tensor1d(g[t - 1]);
    adam.step({ p: grad }, lr);
    grad.dispose();
    ref = ref.map((x, i) => {
      const decayed = x * (1 - lr * 0.1);
      m[i] = 0.9 * m[i] + 0.1 * g[t - 1][i];
      v[i] = 0.999 * v[i] + 0.001 * g[t - 1][i] ** 2;
      const denom = Math.sqrt(v[i]) / Math.sqrt(1 - 0.999 ** t) + 1e-8;
      return decayed - (lr / (1 - 0.9 ** t)) * m[i] / denom;
    });
  }
  const got = await p.data();
  ref.forEach((r, i) => assert.ok(Math.abs(got[i] - r) < 1e-6, `${got[i]} vs ${r}`));
  const state = await adam.state();
  assert.deepEqual(Object.keys(state), ["exp_avg.p", "exp_avg_sq.p"]);
  adam.dispose();
  p.dispose();
  m = v = [];
});

Deno.test("deno task train: flags map onto train()'s options; bad ones are one clear line", () => {
  const o = parseTrainArgs([
    "--model",
    "m",
    "--data",
    "d",
    "--epochs",
    "3",
    "--batch-size",
    "8",
    "--grad-accum",
    "2",
    "--lr",
    "1e-3",
    "--lora-r",
    "16",
    "--target-modules",
    "query, key,value",
    "--no-augment",
    "--no-shuffle",
    "--test-fraction",
    "0.2",
    "--max-steps",
    "50",
    "--out",
    "runs/x",
    "--backend",
    "cpu",
  ]);
  assert.equal(o.model, "m");
  assert.equal(o.epochs, 3);
  assert.equal(o.batchSize, 8);
  assert.equal(o.lr, 1e-3);
  assert.deepEqual(o.targetModules, ["query", "key", "value"]);
  assert.equal(o.augment, "none");
  assert.equal(o.shuffle, false);
  assert.equal(o.maxSteps, 50);
  assert.equal(o.backend, "cpu");
  assert.equal(parseTrainArgs([]).augment, undefined, "defaults left to train()");
  assert.throws(
    () => parseTrainArgs(["--epochs", "five"]),
    /--epochs must be a positive integer, not "five"/,
  );
  assert.equal(parseTrainArgs(["--augment", "trivial"]).augment, "trivial");
  assert.throws(
    () => parseTrainArgs(["--augment", "heavy"]),
    /--augment must be one of standard, trivial, none, not "heavy"/,
  );
  assert.throws(
    () => parseTrainArgs(["--validation-fraction", "1"]),
    /--validation-fraction must be a number in \[0, 1\), not 1/,
  );
  assert.equal(parseTrainArgs(["--early-stopping-patience", "2"]).earlyStoppingPatience, 2);
  assert.deepEqual(parseTrainArgs(["--labels", "cat,dog"]).labels, ["cat", "dog"]);
  assert.throws(() => parseTrainArgs(["--bogus"]), /Unknown option '--bogus'/);
  assert.throws(() => parseTrainArgs(["--backend", "tpu"]), /tpu/);
  assert.equal(parseTrainArgs(["--replicas", "2"]).replicas, 2);
  assert.throws(
    () => parseTrainArgs(["--replicas", "1.5"]),
    /--replicas must be a count \(0, 1, 2, …\), not 1.5/,
  );
  assert.throws(() => parseTrainArgs(["--workers", "1.5"]), /--workers must be a count/);
  assert.throws(() => parseTrainArgs(["--prefetch=-1"]), /--prefetch must be a count/);
  assert.throws(
    () => parseTrainArgs(["--chunk-size", "0"]),
    /--chunk-size must be a positive integer, not 0/,
  );
  assert.equal(parseTrainArgs(["--workers", "0"]).workers, 0);
  const checked = (o: Record<string, unknown>) => () =>
    checkTrainConfig({ ...DEFAULT_TRAIN_CONFIG, ...o } as typeof DEFAULT_TRAIN_CONFIG);
  assert.throws(checked({ chunkSize: 0 }), /--chunk-size must be a positive integer, not 0/);
  assert.throws(checked({ batchSize: 2.5 }), /--batch-size must be a positive integer, not 2.5/);
  assert.doesNotThrow(checked({ chunkSize: 4 }));
});

Deno.test("deno task train: Ctrl-C saves a checkpoint and exits 130; --resume finishes the run", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await writeSyntheticDataset(data, { classes: 3, trainPerClass: 40, validationPerClass: 4 });
  const out = join(dir.path, "run");
  const permissions = await taskPermissions("train");
  const command = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", ...permissions, "tasks/train.ts", ...args],
      cwd: new URL("../..", import.meta.url).pathname,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    });
  const child = command([
    "--model",
    MODEL,
    "--data",
    data,
    "--out",
    out,
    "--epochs",
    "3",
    "--batch-size",
    "2",
    "--grad-accum",
    "1",
    "--lora-r",
    "4",
    "--backend",
    "cpu",
    "--workers",
    "0",
  ]).spawn();
  // wait for the first progress line, then press Ctrl-C
  let stderr = "";
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  while (!/epoch 1\/3 \d+\/\d+ loss/.test(stderr)) {
    const { value, done } = await reader.read();
    if (done) break;
    stderr += value;
  }
  child.kill("SIGINT");
  for (let r = await reader.read(); !r.done; r = await reader.read()) stderr += r.value;
  const status = await child.status;
  await child.stdout.cancel();
  assert.equal(status.code, 130, stderr);
  assert.match(
    stderr,
    /stopped at step (\d+): saved .*checkpoints\/step-\d+; continue with --resume/,
  );
  const step = Number(/stopped at step (\d+)/.exec(stderr)![1]);
  assert.ok(step < 180, "stopped before the end");
  assert.ok(
    (await Deno.stat(join(out, "checkpoints", `step-${step}`, "trainer_state.json"))).isFile,
  );

  const resumed = await command(["--resume", out, "--backend", "cpu", "--workers", "0"]).output();
  const text = new TextDecoder().decode(resumed.stderr);
  assert.equal(resumed.code, 0, text);
  assert.match(text, new RegExp(`resuming .* \\(step ${step}\\)`));
  assert.match(text, /done in .* 180 steps/);
});

Deno.test("wasm: training with a model replica in a worker gives the same run, bit for bit, as without", async () => {
  await useBackend("wasm");
  await using dir = await tempDir();
  // augmentation, shuffling and dropout on; two chunks a batch, one of them in the replica
  const recipe: TrainOptions = {
    ...TINY_RECIPE,
    backend: "wasm",
    augment: "standard",
    shuffle: true,
    loraDropout: 0.1,
    chunkSize: 2,
  };
  const alone = await train({ ...recipe, replicas: 0, out: join(dir.path, "alone") });
  const split = await train({ ...recipe, replicas: 1, out: join(dir.path, "split") });
  assert.equal(split.steps, 8);
  const used = async (run: string) =>
    JSON.parse(await Deno.readTextFile(join(run, "config.json"))).replicas;
  assert.equal(await used(split.runDir), 1, "the run recorded its replica");
  assert.equal(await used(alone.runDir), 0);
  const strip = (m: Record<string, unknown>[]) => m.map(({ images_per_s: _, ...rest }) => rest);
  assert.deepEqual(strip(await readMetrics(split.runDir)), strip(await readMetrics(alone.runDir)));
  assert.deepEqual(
    await Deno.readFile(join(split.runDir, "best/adapter_model.safetensors")),
    await Deno.readFile(join(alone.runDir, "best/adapter_model.safetensors")),
  );
  const { imagesPerSecond: _a, ...splitTest } = split.test!;
  const { imagesPerSecond: _b, ...aloneTest } = alone.test!;
  assert.deepEqual(splitTest, aloneTest);
});
