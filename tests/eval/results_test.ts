/**
 * What a person sees: evaluation metrics, predictions on files, the run report (rendered in
 * headless Chromium), Weights & Biases tracking (against an imitation) and the demo.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type EvalReport, evaluate, formatEvalReport } from "../../src/eval/evaluate.ts";
import { classificationMetrics } from "../../src/eval/metrics.ts";
import { predict } from "../../src/eval/predict.ts";
import { reportCallback } from "../../src/reporting/callbacks.ts";
import { fixture, tempDir, trainedRun, useBackend } from "../helpers.ts";

Deno.test("metrics: a known confusion, by hand", () => {
  // true   0 0 0 1 1 2, predicted 0 1 0 1 2 2; class 3 has no image and no prediction
  const m = classificationMetrics([0, 0, 0, 1, 1, 2], [0, 1, 0, 1, 2, 2], ["a", "b", "c", "d"]);
  assert.deepEqual(m.confusion, [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]);
  assert.equal(m.accuracy, 4 / 6);
  const [a, b, c, d] = m.perClass;
  assert.deepEqual([a.support, b.support, c.support, d.support], [3, 2, 1, 0]);
  assert.deepEqual([a.accuracy, b.accuracy, c.accuracy], [2 / 3, 1 / 2, 1]);
  assert.ok(Number.isNaN(d.accuracy));
  assert.deepEqual([a.precision, b.precision, c.precision, d.precision], [1, 1 / 2, 1 / 2, 0]);
  const f1 = [0.8, 0.5, 2 / 3];
  [a, b, c].forEach((x, i) => assert.ok(Math.abs(x.f1 - f1[i]) < 1e-12, `${x.label} f1 ${x.f1}`));
  assert.ok(Math.abs(m.macroF1 - (0.8 + 0.5 + 2 / 3) / 3) < 1e-12, "macro F1 over classes seen");
});

Deno.test("evaluate a run: the trainer's test figures, eval-<split>.json, consistent counts", async () => {
  await useBackend("cpu");
  await using dir = await tempDir();
  const { run } = await trainedRun(dir.path, [reportCallback()]);
  const fromTrain = JSON.parse(await Deno.readTextFile(join(run, "eval-test.json"))) as EvalReport;
  const report = await evaluate({
    run,
    split: "test",
    backend: "cpu",
    workers: 0,
    progress: false,
  });
  const split = JSON.parse(await Deno.readTextFile(join(run, "split.json")));
  assert.equal(report.count, split.test.indices.length);
  assert.equal(report.accuracy, fromTrain.accuracy);
  assert.deepEqual(report.confusion, fromTrain.confusion);
  assert.equal(report.confusion.flat().reduce((a, b) => a + b, 0), report.count);
  assert.ok(report.top5 >= report.accuracy);
  assert.deepEqual(report.predictions.map((p) => p.index), split.test.indices);
  const written = JSON.parse(await Deno.readTextFile(join(run, "eval-test.json")));
  assert.equal(written.count, report.count);
  const val = await evaluate({
    run,
    split: "validation",
    backend: "cpu",
    workers: 0,
    progress: false,
  });
  assert.equal(val.count, split.validation.indices.length);
  assert.ok((await Deno.stat(join(run, "eval-validation.json"))).isFile);
  await assert.rejects(
    () => evaluate({ run, checkpoint: "epoch-9", progress: false }),
    /checkpoints\/epoch-9: no adapter there/,
  );
});

Deno.test("evaluate --dtype q8 and fp16: the exported graphs on ONNX Runtime, with fp32's accuracy beside", async () => {
  await useBackend("cpu");
  await using dir = await tempDir();
  const { run } = await trainedRun(dir.path);
  const fp32 = await evaluate({ run, backend: "cpu", workers: 0, progress: false });
  for (const dtype of ["q8", "fp16"] as const) {
    const report = await evaluate({ run, backend: "cpu", workers: 0, progress: false, dtype });
    assert.equal(report.dtype, dtype);
    assert.equal(report.count, fp32.count);
    assert.ok(report.againstFp32, `${dtype}: compared with fp32`);
    assert.ok(Math.abs(report.againstFp32.accuracy - fp32.accuracy) < 1e-9, "fp32's own accuracy");
    assert.ok(report.againstFp32.top1Agreement >= 0.9, `${dtype} agreement`);
    assert.match(
      formatEvalReport(report),
      new RegExp(`${dtype} against fp32: accuracy .* points\\), top-1 the same on `),
    );
  }
  const q8 = await predict({ run, inputs: [fixture("images/rgb.jpg")], dtype: "q8" });
  assert.equal(q8[0].top?.length, 4);
});

Deno.test("predict: files, folders and bad inputs; each bad one is its own error", async () => {
  await useBackend("cpu");
  await using dir = await tempDir();
  const { run } = await trainedRun(dir.path, [reportCallback()]);
  const images = join(dir.path, "images");
  await Deno.mkdir(join(images, "sub"), { recursive: true });
  await Deno.copyFile(fixture("images/rgb.jpg"), join(images, "a.jpg"));
  await Deno.copyFile(fixture("images/palette.png"), join(images, "sub", "b.png"));
  await Deno.writeTextFile(join(images, "notes.txt"), "not an image"); // skipped in folders
  await Deno.writeTextFile(join(dir.path, "fake.jpg"), "not an image either");
  const results = await predict({
    run,
    inputs: [images, join(dir.path, "missing.png"), join(dir.path, "fake.jpg")],
    topK: 3,
    backend: "cpu",
    progress: false,
  });
  assert.deepEqual(results.map((r) => r.source), [
    join(images, "a.jpg"),
    join(images, "sub", "b.png"),
    join(dir.path, "missing.png"),
    join(dir.path, "fake.jpg"),
  ]);
  const names = ["horizontal_stripes", "vertical_stripes", "checkerboard", "diagonal_stripes"];
  for (const r of results.slice(0, 2)) {
    assert.equal(r.top!.length, 3);
    assert.ok(r.top!.every((t) => names.includes(t.label)), "the run's class names");
    const p = r.top!.map((t) => t.probability);
    assert.ok(p[0] >= p[1] && p[1] >= p[2] && p[0] + p[1] + p[2] <= 1 + 1e-6);
  }
  assert.equal(results[2].error, "no such file");
  assert.match(results[3].error!, /not a readable image/);

  // the task: a table, the errors on stderr, exit status 1
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "tasks/predict.ts",
      "--run",
      run,
      "--backend",
      "cpu",
      join(images, "a.jpg"),
      join(dir.path, "missing.png"),
    ],
    cwd: new URL("../..", import.meta.url).pathname,
    env: { NO_COLOR: "1" },
  }).output();
  assert.equal(out.code, 1);
  assert.match(new TextDecoder().decode(out.stdout), /a\.jpg\n {2}\S+ +\d+\.\d%/);
  assert.match(new TextDecoder().decode(out.stderr), /error: .*missing\.png: no such file/);
});
