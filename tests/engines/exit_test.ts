/**
 * A program that never disposes its classifier still exits when its work is done: the model
 * replicas' workers (and the decoding workers of `evaluate`) do not keep the process alive,
 * and a request still in flight to a replica is answered before it ends.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type Tensor4D, tf } from "../../src/core/tf.ts";
import { writeSyntheticDataset } from "../../src/data/synthetic.ts";
import { loadClassifier } from "../../src/model/loading.ts";
import { batchGradients, rowAlignment } from "../../src/engines/parallel.ts";
import { fixture, tempDir, useBackend } from "../helpers.ts";

const root = new URL("../..", import.meta.url).pathname;
const src = (path: string) => new URL(`../../src/${path}`, import.meta.url).href;
const dir = fixture("vit-tiny-a");

/** Runs `deno run -A script args…`; kills it and fails after `seconds`. */
async function runWithin(seconds: number, script: string, args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", join(root, "deno.json"), script, ...args],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, seconds * 1000);
  const out = await child.output();
  clearTimeout(timer);
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(!killed, `still running after ${seconds} s (a worker keeps it alive?)\n${stderr}`);
  assert.equal(out.code, 0, stderr);
  assert.doesNotMatch(stderr, /still pending|event loop/);
  return stdout.trim().split("\n").map((line) => JSON.parse(line));
}

/** The pixels and labels of the replica tests, `rows` images of 3×32×32. */
const PIXELS = (rows: number) =>
  Float32Array.from({ length: rows * 3 * 32 * 32 }, (_, i) => Math.sin(i * 0.37));

Deno.test("exit: a program that never disposes a classifier with a replica ends on its own, after the answer still in flight, with the right values", async () => {
  await using tmp = await tempDir();
  const script = join(tmp.path, "forgets_dispose.ts");
  await Deno.writeTextFile(
    script,
    `import { loadClassifier } from "${src("model/loading.ts")}";
import { batchGradients, predictLogits } from "${src("engines/parallel.ts")}";
import { tf } from "${src("core/tf.ts")}";
const dir = Deno.args[0];
const clf = await loadClassifier(dir + "/model", { adapter: dir + "/adapter", backend: "wasm", replicas: 1 });
const rows = Number(Deno.args[1]);
const pixels = Float32Array.from({ length: rows * 3 * 32 * 32 }, (_, i) => Math.sin(i * 0.37));
const labels = Int32Array.from({ length: rows }, (_, i) => i % 3);
const x = tf.tensor4d(pixels, [rows, 3, 32, 32]);
const logits = await predictLogits(clf, x);
console.log(JSON.stringify({ logits: Array.from(await logits.data()) }));
const options = { chunkSize: 2, training: true, dropoutSeed: 7 };
const { loss } = await batchGradients(clf, { pixels, labels, size: rows }, options);
console.log(JSON.stringify({ loss: (await loss.data())[0] }));
// still in flight when the module's code has run: the process must wait for the answer
predictLogits(clf, x.reverse(0)).then(async (late) => {
  console.log(JSON.stringify({ late: Array.from(await late.data()) }));
});
`,
  );
  const started = performance.now();
  // enough images to be cut at the BLAS's row period (12 on OpenBLAS's Haswell kernels)
  await useBackend("wasm");
  const rows = 2 * rowAlignment() + 5;
  const lines = await runWithin(60, script, [dir, String(rows)]);
  const seconds = (performance.now() - started) / 1000;

  // the same values, here without a replica
  await useBackend("wasm");
  const alone = await loadClassifier(`${dir}/model`, {
    adapter: `${dir}/adapter`,
    backend: "wasm",
    replicas: 0,
  });
  try {
    const pixels = PIXELS(rows);
    const labels = Int32Array.from({ length: rows }, (_, i) => i % 3);
    const x = tf.tensor4d(pixels, [rows, 3, 32, 32]) as Tensor4D;
    const reversed = x.reverse(0) as Tensor4D;
    const [logits, late] = [alone.logits(x), alone.logits(reversed)];
    const { loss, grads } = await batchGradients(alone, { pixels, labels, size: rows }, {
      chunkSize: 2,
      training: true,
      dropoutSeed: 7,
    });
    assert.deepEqual(lines, [
      { logits: Array.from(await logits.data()) },
      { loss: (await loss.data())[0] },
      { late: Array.from(await late.data()) },
    ]);
    tf.dispose([x, reversed, logits, late, loss, ...Object.values(grads)]);
  } finally {
    alone.dispose();
  }
  console.log(`    (the program ran and exited in ${seconds.toFixed(1)} s)`);
});

Deno.test("exit: evaluate() and predict() with replicas and decoding workers leave nothing running", async () => {
  await using tmp = await tempDir();
  const data = join(tmp.path, "data");
  await writeSyntheticDataset(data, { classes: 3, trainPerClass: 2, validationPerClass: 6 });
  const script = join(tmp.path, "evaluates.ts");
  await Deno.writeTextFile(
    script,
    `import { evaluate } from "${src("eval/evaluate.ts")}";
import { predict } from "${src("eval/predict.ts")}";
const [dir, data, image] = Deno.args;
const report = await evaluate({ model: dir + "/model", data, backend: "wasm", replicas: 1, workers: 1, batchSize: 4, progress: false });
console.log(JSON.stringify({ count: report.count }));
const [result] = await predict({ model: dir + "/model", adapter: dir + "/adapter", inputs: [image], topK: 2, backend: "wasm", progress: false });
console.log(JSON.stringify({ top: result.top?.length }));
`,
  );
  const lines = await runWithin(60, script, [dir, data, fixture("images/rgb.jpg")]);
  assert.equal(lines.length, 2);
  assert.ok(lines[0].count > 0, "images evaluated");
  assert.deepEqual(lines[1], { top: 2 });
});
