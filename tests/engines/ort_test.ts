/**
 * ONNX Runtime as the CPU inference engine (`src/onnx/graph.ts`, `src/engines/ort.ts`):
 * the exported model (LoRA merged in, either layout) gives PyTorch's logits on the fixtures
 * (within 1e-4 relative, as the tfjs path must); `ortLogits` follows the trainable tensors
 * (a new session after an optimizer step) and leaves nothing behind; without `--allow-ffi`
 * one line says why and the caller's tfjs path runs. Skipped (with a line saying why) where
 * ONNX Runtime does not load.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type Tensor4D, tf } from "../../src/core/tf.ts";
import { loadClassifier } from "../../src/model/loading.ts";
import { encodeViTOnnx, exportOnnxModel } from "../../src/onnx/export.ts";
import {
  adapterFeeds,
  adapterSession,
  OrtClassifier,
  ortLogits,
  ortSessions,
  ortStatus,
  setOnnxDtype,
} from "../../src/engines/ort.ts";
import { forwardFlops } from "../../src/model/config.ts";
import { VIT_BASE_CONFIG } from "../../src/model/config.ts";
import { AdamW } from "../../src/training/optimizer.ts";
import { expected, fixture, FIXTURE_SETS, relError, useBackend } from "../helpers.ts";

const status = await ortStatus();
const ignore = !status.ort;

// Without ONNX Runtime the tests below cannot run: this one fails and says why, so that a
// local run is as loud about it as CI (which counts the ignored ones as failed too).
Deno.test("ONNX Runtime loads here (the CPU path's forward passes and the ONNX export's checks)", () => {
  if (!status.ort) assert.fail(`ONNX Runtime is not usable here: ${status.reason}`);
});

for (const set of FIXTURE_SETS) {
  Deno.test({
    name: `ONNX Runtime: ${set} exported (LoRA merged, both layouts) gives PyTorch's logits`,
    ignore,
    async fn() {
      await useBackend("wasm");
      const e = await expected(set);
      const px = e.tensors.get("pixel_values")!;
      const dir = fixture(set);
      const clf = await loadClassifier(`${dir}/model`, { adapter: `${dir}/adapter` });
      try {
        for (const layout of ["fused", "torch"] as const) {
          const session = await OrtClassifier.fromBytes(
            status.ort!,
            await exportOnnxModel(clf, { layout }),
            clf,
          );
          const got = await session.run(px.data as Float32Array, px.shape[0]);
          await session.release();
          const err = relError(got, e.tensors.get("logits")!.data);
          assert.ok(err < 1e-4, `${layout}: relative error ${err.toExponential(2)}`);
        }
      } finally {
        clf.dispose();
      }
    },
  });
}

Deno.test({
  name: "ONNX Runtime: an adapter PEFT 0.21 trained on transformers 5 gives PyTorch's logits",
  ignore,
  async fn() {
    await useBackend("wasm");
    const hf5 = fixture("hf5");
    const run = JSON.parse(await Deno.readTextFile(join(hf5, "trainer_run.json")));
    const t = (await import("../../src/model/safetensors_file.ts")).readSafetensors;
    const raw = (await t(join(hf5, "data", "pixels.safetensors"))).get("validation.pixels")!;
    const mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225];
    const x = tf.tidy(() =>
      tf.tensor4d(Float32Array.from(raw.data), raw.shape as [number, number, number, number])
        .div(255).sub(mean).div(std).transpose([0, 3, 1, 2])
    ) as Tensor4D;
    const clf = await loadClassifier(join(hf5, "model"), {
      adapter: join(hf5, "trained-adapter-transformers5"),
    });
    try {
      const logits = (await ortLogits(clf, x, { always: true }))!;
      const err = relError(await logits.data(), run.validation_logits.flat());
      logits.dispose();
      assert.ok(err < 1e-4, `validation logits: relative error ${err.toExponential(2)}`);
    } finally {
      x.dispose();
      clf.dispose();
    }
  },
});

Deno.test({
  name:
    "ortLogits: equals logits(), follows optimizer steps with one adapter-input session (no export per step), leaves no tensor; small models stay on tfjs by default",
  ignore,
  async fn() {
    await useBackend("wasm");
    const dir = fixture("vit-tiny-b");
    const clf = await loadClassifier(`${dir}/model`, { adapter: `${dir}/adapter` });
    const x = tf.tidy(() => tf.randomNormal([5, 3, 48, 48], 0, 1, "float32", 7)) as Tensor4D;
    try {
      assert.ok(forwardFlops(clf.config) < 1e9 && forwardFlops(VIT_BASE_CONFIG) > 1e9);
      assert.equal(await ortLogits(clf, x), undefined, "a tiny model stays on tfjs");
      const compare = async () => {
        const before = tf.memory().numTensors;
        const fast = (await ortLogits(clf, x, { always: true }))!;
        const ref = clf.logits(x);
        assert.deepEqual(fast.shape, ref.shape);
        const err = relError(await fast.data(), await ref.data());
        assert.ok(err < 1e-5, `relative error ${err.toExponential(2)}`);
        tf.dispose([fast, ref]);
        assert.equal(tf.memory().numTensors, before, "no tensor left behind");
      };
      await compare();
      assert.deepEqual(ortSessions(clf), { merged: ["fp32"], adapter: false, exports: 1 });
      const vars = clf.trainableVariables();
      const adam = new AdamW(vars);
      for (let step = 0; step < 2; step++) {
        const grads = tf.tidy(() =>
          Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, tf.onesLike(v)]))
        );
        adam.step(grads, 0.05);
        tf.dispose(Object.values(grads));
        await compare(); // stale weights would give the old logits
        // the merged session gave way to one fed the adapter: one export, whatever the steps
        assert.deepEqual(ortSessions(clf), { merged: [], adapter: true, exports: 2 });
      }
      adam.dispose();
    } finally {
      x.dispose();
      clf.dispose();
    }
  },
});

Deno.test({
  name:
    "the adapter-input graph (LoRA on every linear layer, ranks and alphas by pattern; or no LoRA, the head alone) gives tfjs's logits, fed new tensors",
  ignore,
  async fn() {
    await useBackend("wasm");
    const dir = fixture("hf5-more");
    const clf = await loadClassifier(join(dir, "model"), { adapter: join(dir, "adapter-all") });
    const size = clf.config.image_size;
    const x = tf.tidy(() => tf.randomNormal([4, 3, size, size], 0, 1, "float32", 5)) as Tensor4D;
    const session = await adapterSession(clf);
    try {
      const pixels = (await x.data()) as Float32Array;
      for (let round = 0; round < 2; round++) {
        const got = await session.run(pixels, 4, await adapterFeeds(clf));
        const ref = clf.logits(x);
        const err = relError(got, await ref.data());
        ref.dispose();
        assert.ok(err < 1e-5, `round ${round}: relative error ${err.toExponential(2)}`);
        // new values in every trainable tensor, as after an optimizer step
        for (const [i, v] of Object.values(clf.trainableVariables()).entries()) {
          const next = tf.tidy(() => v.add(tf.randomNormal(v.shape, 0, 0.05, "float32", 100 + i)));
          v.assign(next);
          next.dispose();
        }
      }
    } finally {
      await session.release();
      x.dispose();
      clf.dispose();
    }
    // no LoRA at all (the head alone trained): the graph takes the classifier alone
    const head = await loadClassifier(join(fixture("vit-tiny-a"), "model"), { labels: ["a", "b"] });
    const y = tf.tidy(() => tf.randomNormal([2, 3, 32, 32], 0, 1, "float32", 6)) as Tensor4D;
    const headSession = await adapterSession(head);
    try {
      const feeds = await adapterFeeds(head);
      assert.deepEqual(Object.keys(feeds), ["classifier.weight", "classifier.bias"]);
      const got = await headSession.run((await y.data()) as Float32Array, 2, feeds);
      const ref = head.logits(y);
      const err = relError(got, await ref.data());
      ref.dispose();
      assert.ok(err < 1e-5, `head only: relative error ${err.toExponential(2)}`);
    } finally {
      await headSession.release();
      y.dispose();
      head.dispose();
    }
  },
});

Deno.test({
  name:
    "ortLogits in fp16 and q8: the exported graphs' logits, on any backend and size; setOnnxDtype sets a classifier's",
  ignore,
  async fn() {
    await useBackend("cpu"); // not wasm: an asked-for dtype runs on ONNX Runtime all the same
    const dir = fixture("vit-tiny-b");
    const clf = await loadClassifier(`${dir}/model`, { adapter: `${dir}/adapter` });
    const x = tf.tidy(() => tf.randomNormal([6, 3, 48, 48], 0, 1, "float32", 9)) as Tensor4D;
    try {
      const ref = clf.logits(x);
      const refData = await ref.data();
      ref.dispose();
      const pixels = (await x.data()) as Float32Array;
      for (const [dtype, limit] of [["fp16", 1e-2], ["q8", 0.1]] as const) {
        const got = (await ortLogits(clf, x, { dtype }))!;
        const data = await got.data();
        got.dispose();
        const direct = await OrtClassifier.fromBytes(
          status.ort!,
          await exportOnnxModel(clf, { dtype }),
          clf,
        );
        assert.deepEqual(data, await direct.run(pixels, 6), `${dtype}: the exported graph's`);
        await direct.release();
        const err = relError(data, refData);
        assert.ok(err > 0 && err < limit, `${dtype} against float32: ${err.toExponential(2)}`);
      }
      assert.equal(await ortLogits(clf, x), undefined, "fp32 by default: tfjs's");
      setOnnxDtype(clf, "q8");
      const q8 = (await ortLogits(clf, x))!;
      assert.deepEqual(q8.shape, [6, 5]);
      q8.dispose();
      assert.deepEqual(ortSessions(clf).merged.sort(), ["fp16", "q8"]);
    } finally {
      x.dispose();
      clf.dispose();
      await useBackend("wasm");
    }
  },
});

Deno.test("ONNX export: a missing tensor is one clear error", () => {
  assert.throws(
    () => encodeViTOnnx(VIT_BASE_CONFIG, {}),
    /exportOnnx: the checkpoint has no classifier.bias/,
  );
});

Deno.test("without --allow-ffi: one line says why, inference and products stay on tfjs's wasm backend", async () => {
  const script = new URL("./ort_fallback.ts", import.meta.url);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", script.pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, stderr);
  assert.match(stdout, /^ortLogits: undefined, logits ok$/m);
  assert.match(
    stdout,
    /^q8: ViTLoraError: dtype q8: ONNX Runtime needs --allow-ffi \(it is a Node-API addon\)/m,
  );
  const lines = stderr.split("\n").filter((l) => l.startsWith("vit-lora: "));
  assert.ok(
    lines.some((l) => /ONNX Runtime needs --allow-ffi/.test(l)),
    `the ONNX Runtime line:\n${stderr}`,
  );
  assert.equal(lines.filter((l) => /ONNX Runtime/.test(l)).length, 1, "said once");
  if ((await ortStatus()).ort) {
    // where a BLAS is installed, its line too
    const blas = lines.filter((l) => /OpenBLAS/.test(l));
    assert.ok(blas.length <= 1, "the BLAS line at most once");
  }
});
