/**
 * The loss scaler against `torch.amp.GradScaler` (tests/fixtures/fp16/scaler.safetensors, made
 * by tests/reference/make_fp16.py): its rules; its update on the backend; and a whole fp16
 * training run on WebGPU that overflows, step for step against PyTorch's under autocast with
 * Trainer's order of calls (scale, skipped steps, learning rate, loss, gradient norm, weights).
 * And a demo-size run in fp16 learns as the fp32 one does.
 */

import assert from "node:assert/strict";
import { updateScale } from "../../src/backend/scaler_kernels.ts";
import { tf } from "../../src/core/tf.ts";
import { loadClassifier } from "../../src/model/loading.ts";
import type { TensorData } from "../../src/model/safetensors.ts";
import { readSafetensors } from "../../src/model/safetensors_file.ts";
import { GradScaler, nextScale } from "../../src/training/grad_scaler.ts";
import { AdamW, linearSchedule, trainerNoDecay } from "../../src/training/optimizer.ts";
import { createClassifier } from "../../src/model/loading.ts";
import { parseViTConfig } from "../../src/model/config.ts";
import { Random } from "../../src/core/random.ts";
import { syntheticPattern } from "../../src/data/synthetic.ts";
import { StepPipeline } from "../../src/training/pipeline.ts";
import { fixture, relError, useBackend } from "../helpers.ts";

const RULES = { growth: 2, backoff: 0.5, interval: 3 }; // the fixture's GradScaler
const STEPS = 14, LR = 5e-3;

async function scalerFixture(): Promise<(name: string) => TensorData> {
  const e = await readSafetensors(`${fixture("fp16")}/scaler.safetensors`);
  return (name) => {
    const t = e.get(name);
    if (!t) throw new Error(`scaler.safetensors: no ${name}`);
    return t;
  };
}

Deno.test("GradScaler's rules replay torch.amp.GradScaler's scales over a run that overflows", async () => {
  const get = await scalerFixture();
  const [scales, skipped] = [get("scale").data, get("skipped").data];
  let state = { scale: scales[0], growth_tracker: 0 };
  for (let k = 0; k < STEPS; k++) {
    assert.equal(state.scale, scales[k], `step ${k}`);
    state = nextScale(state, skipped[k] === 1, RULES);
  }
  assert.equal(state.scale, get("final_scale").data[0]);
  // a grown scale that is not finite is not taken (torch's _amp_update_scale_)
  assert.deepEqual(nextScale({ scale: 2 ** 127, growth_tracker: 2 }, false, RULES), {
    scale: 2 ** 127,
    growth_tracker: 0,
  });
});

for (const backend of ["cpu", "webgpu"] as const) {
  Deno.test(`on ${backend}: the scale's update on the backend follows the rules (overflow: inf or NaN norm)`, async () => {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    const norms = [1, Infinity, 3, 2, 5, NaN, 0.5, 7, 1, 1, -Infinity, 2];
    let scale = tf.scalar(2 ** 16), tracker = tf.scalar(0);
    let host = { scale: 2 ** 16, growth_tracker: 0 };
    for (const n of norms) {
      const norm = tf.scalar(n);
      const next = updateScale(scale, tracker, norm, RULES);
      tf.dispose([scale, tracker, norm]);
      [scale, tracker] = [next.scale, next.tracker];
      host = nextScale(host, !Number.isFinite(n), RULES);
      assert.deepEqual([(await scale.data())[0], (await tracker.data())[0]], [
        host.scale,
        host.growth_tracker,
      ]);
    }
    tf.dispose([scale, tracker]);
    assert.equal(tf.memory().numTensors, before);
  });
}

Deno.test("on webgpu: an fp16 run that overflows, step for step against PyTorch's autocast + GradScaler + AdamW (Trainer's order)", async () => {
  await useBackend("webgpu");
  const get = await scalerFixture();
  const clf = await loadClassifier(`${fixture("vit-tiny-a")}/model`, {
    adapter: `${fixture("vit-tiny-a")}/adapter`,
    precision: "fp16",
    loraDropout: 0,
    peftFormat: "transformers-5",
  });
  const vars = clf.trainableVariables();
  for (const [key, v] of Object.entries(vars)) {
    assert.ok(relError(await v.data(), get(`initial.${key}`).data) === 0, `${key}: the same start`);
  }
  const adam = new AdamW(vars, { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
  const scaler = new GradScaler({ initScale: get("scale").data[0], growthInterval: 3 });
  const steps = new StepPipeline(clf, adam, { scaler });
  const px = get("pixel_values");
  const batch = {
    pixels: px.data as Float32Array,
    labels: Int32Array.from(get("labels").data as ArrayLike<number>, Number),
    size: px.shape[0],
  };
  const lrs: number[] = [];
  const seen: Float32Array[] = [];
  let previousWeights: Record<string, Float32Array> | undefined;
  for (let k = 0; k < STEPS; k++) {
    await steps.step([batch], {
      maxGradNorm: 1,
      lr: (applied) => {
        const lr = LR * Math.max(0, (STEPS - applied) / STEPS); // linear, as the fixture's
        lrs.push(lr);
        return lr;
      },
    }, (values) => {
      seen.push(values.slice());
    });
    // the weights after step k: as PyTorch's, within the noise of float16 gradients
    const weights: Record<string, Float32Array> = {};
    for (const [key, v] of Object.entries(vars)) weights[key] = await v.data() as Float32Array;
    if (k > 0) {
      const skipped = seen[k - 1][2] === 1;
      assert.equal(skipped, get("skipped").data[k - 1] === 1, `step ${k - 1} skipped?`);
    }
    for (const [key, w] of Object.entries(weights)) {
      const ref = get(`step${k}.${key}`).data, start = get(`initial.${key}`).data;
      // Adam's first update moves each element by ±lr, by its gradient's sign: an element
      // whose gradient is within the float16 noise of zero (measured 3e-3 of the largest) may
      // go the other way, and stays about 2·lr off. At most 2 % of a tensor's elements (2 of
      // 192 seen); the rest within 1 % of the tensor's move (measured up to 0.4 %).
      let d2 = 0, m2 = 0, flips = 0;
      for (let i = 0; i < w.length; i++) {
        m2 += (ref[i] - start[i]) ** 2;
        if (Math.abs(w[i] - ref[i]) > 0.5 * LR) flips++;
        else d2 += (w[i] - ref[i]) ** 2;
      }
      assert.ok(flips <= 0.02 * w.length, `step ${k} ${key}: ${flips} elements off`);
      assert.ok(d2 <= 1e-4 * m2, `step ${k} ${key}: ${Math.sqrt(d2 / m2)} of the move`);
      if (previousWeights && get("skipped").data[k] === 1) {
        assert.deepEqual(w, previousWeights[key], `step ${k} skipped: ${key} unchanged`);
      }
    }
    previousWeights = weights;
  }
  const last = await steps.finish();
  seen.push(last!.slice());
  steps.dispose();
  // the steps' values: [loss, grad_norm, skipped, scale]
  for (let k = 0; k < STEPS; k++) {
    const [loss, norm, skipped, scale] = seen[k];
    assert.equal(scale, get("scale").data[k], `step ${k}: scale`);
    assert.equal(skipped, get("skipped").data[k], `step ${k}: skipped`);
    // the loss: within 2e-3 (measured up to 7.1e-4: a float16 step of the logits, and the
    // weights' own small differences); the norm within 5e-3 (measured up to 1.7e-3: the
    // gradients' float16 noise, see f16_model_test.ts)
    assert.ok(
      Math.abs(loss - get("loss").data[k]) < 2e-3 * get("loss").data[k],
      `step ${k}: loss ${loss}`,
    );
    const wantNorm = get("grad_norm").data[k];
    if (Number.isFinite(wantNorm)) {
      assert.ok(
        Math.abs(norm - wantNorm) < 5e-3 * wantNorm,
        `step ${k}: grad_norm ${norm} vs ${wantNorm}`,
      );
    } else {
      assert.ok(!Number.isFinite(norm), `step ${k}: grad_norm ${norm} not finite`);
    }
    assert.ok(Math.abs(lrs[k] - get("lr").data[k]) < 1e-9, `step ${k}: lr ${lrs[k]}`);
  }
  assert.equal(scaler.skipped, Array.from(get("skipped").data).filter((s) => s === 1).length);
  assert.equal(adam.steps, STEPS - scaler.skipped, "AdamW counts the applied steps only");
  assert.deepEqual(scaler.state().scale, get("final_scale").data[0]);
  scaler.dispose();
  adam.dispose();
  clf.dispose();
});

/** Grayscale pattern images (stripes of two orientations, checks, diagonals: no colour cue). */
function patterns(n: number, seed: number, size: number, classes: number) {
  const plane = size * size;
  const pixels = new Float32Array(n * 3 * plane), labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % classes;
    const rgba = syntheticPattern(labels[i], classes, size, size, Random.derive(seed, i));
    for (let p = 0; p < plane; p++) {
      const gray = (rgba[p * 4] + rgba[p * 4 + 1] + rgba[p * 4 + 2]) / 3 / 127.5 - 1;
      for (let c = 0; c < 3; c++) pixels[(i * 3 + c) * plane + p] = gray;
    }
  }
  return { pixels, labels, size: n };
}

Deno.test("on webgpu: a demo-size run in fp16 (loss-scaled) learns as the fp32 one does: validation accuracy within 5 points, same seed", async () => {
  await useBackend("webgpu");
  const [size, classes, batch, epochs] = [16, 4, 16, 12];
  const config = parseViTConfig({
    hidden_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    intermediate_size: 64,
    image_size: size,
    patch_size: 4,
    hidden_dropout_prob: 0.1,
  });
  const train = patterns(128, 1, size, classes), validation = patterns(256, 2, size, classes);
  const plane = 3 * size * size;
  const accuracy: Record<string, number> = {};
  const before = tf.memory().numTensors;
  for (const precision of ["fp32", "fp16"] as const) {
    const clf = await createClassifier(config, {
      labels: ["h", "v", "checks", "diagonal"],
      lora: { r: 8, alpha: 16, dropout: 0.1 },
      seed: 5,
      precision,
    });
    assert.equal(clf.precision, precision);
    const adam = new AdamW(clf.trainableVariables(), { noDecay: trainerNoDecay });
    const scaler = precision === "fp16" ? new GradScaler() : undefined;
    const steps = new StepPipeline(clf, adam, { scaler });
    const perEpoch = train.size / batch;
    const rate = linearSchedule({ lr: 1e-2, totalSteps: perEpoch * epochs });
    for (let k = 0; k < perEpoch * epochs; k++) {
      const group = {
        pixels: new Float32Array(batch * plane),
        labels: new Int32Array(batch),
        size: batch,
      };
      for (let i = 0; i < batch; i++) {
        const j = (k * batch + i * 7 + Math.floor(k / perEpoch) * 3) % train.size;
        group.pixels.set(train.pixels.subarray(j * plane, (j + 1) * plane), i * plane);
        group.labels[i] = train.labels[j];
      }
      await steps.step([group], {
        lr: (applied) => rate(applied),
        maxGradNorm: 1,
        chunkSize: 8,
        dropoutSeed: (m) => k * 10 + m,
      });
    }
    await steps.finish();
    const x = tf.tensor4d(validation.pixels, [validation.size, 3, size, size]);
    const predicted = tf.tidy(() => clf.logits(x).argMax(1));
    const p = await predicted.data();
    accuracy[precision] = p.filter((c, i) => c === validation.labels[i]).length / validation.size;
    tf.dispose([x, predicted]);
    steps.dispose();
    adam.dispose();
    scaler?.dispose();
    clf.dispose();
  }
  assert.equal(tf.memory().numTensors, before, "no tensor left behind");
  // measured: fp32 0.879, fp16 0.898 (4 classes: chance 0.25)
  assert.ok(accuracy.fp32 > 0.7 && accuracy.fp16 > 0.7, JSON.stringify(accuracy));
  assert.ok(Math.abs(accuracy.fp16 - accuracy.fp32) <= 0.05, JSON.stringify(accuracy));
});
