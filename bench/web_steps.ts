/**
 * Time per training step in the browser against Deno on the same machine: the web page's
 * `train` on the demo model and images (hidden 64, 2 layers, batch 8, 2 epochs) in headless
 * Chromium (WebGPU, then wasm) and the same `train` in Deno (WebGPU, then wasm). Prints the
 * mean seconds a step (the first step, a warm-up, left out) and the browser/Deno ratios.
 *
 * Usage: deno run -A bench/web_steps.ts (needs Debian's chromium; on a machine without a GPU
 * both WebGPUs are software adapters: SwiftShader in Chromium, llvmpipe in Deno)
 */

import { join } from "node:path";
import { initBackend } from "../src/backend/backend.ts";
import { decodeImage } from "../src/data/image.ts";
import { loadClassifier } from "../src/model/loading.ts";
import { type Example, train as trainExamples } from "../src/web/train.ts";
import { Chromium, findChromium } from "../tests/web/chromium.ts";
import { buildWeb, serveWeb } from "../tasks/web.ts";

const dir = await Deno.makeTempDir({ prefix: "vit-lora-web-bench-" });
await buildWeb(dir);
const index = JSON.parse(await Deno.readTextFile(join(dir, "demo/images/index.json")));
const all: Example[] = [];
for (const image of index.images) {
  const bytes = await Deno.readFile(join(dir, "demo/images", image.path));
  all.push({ image: await decodeImage(bytes), label: image.label });
}
// the page's split: per class, the first 80% to train on
const train: Example[] = [];
for (let c = 0; c < index.classes.length; c++) {
  const ofClass = all.filter((e) => e.label === c);
  train.push(...ofClass.slice(0, Math.round(ofClass.length * 0.8)));
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const perStep = (steps: { images_per_s: number }[]) =>
  mean(steps.slice(1).map((s) => 8 / s.images_per_s));

const seconds: Record<string, number> = {};
for (const backend of ["webgpu", "wasm"] as const) {
  await initBackend(backend, { quiet: true });
  const clf = await loadClassifier(join(dir, "demo/model"), {
    labels: index.classes,
    lora: { r: 8, alpha: 16, dropout: 0.1 },
    seed: 42,
    backend,
    replicas: 0,
  });
  const steps: { images_per_s: number }[] = [];
  await trainExamples(clf, train, { epochs: 2, batchSize: 8, onStep: (e) => steps.push(e) });
  clf.dispose();
  seconds[`deno ${backend}`] = perStep(steps);
}
const binary = await findChromium();
if (!binary) throw new Error("web_steps: Chromium is needed (Debian: apt-get install chromium)");
const browser = await Chromium.launch(binary);
const { server, url } = serveWeb(dir);
try {
  for (const backend of ["webgpu", "wasm"]) {
    const page = await browser.open(url);
    await page.evaluate(`vitLoraPage.ready`);
    if (backend === "wasm") {
      await page.evaluate(`vitLoraPage.api.initBackend("wasm", { quiet: true })`);
    }
    await page.evaluate(`vitLoraPage.useDemo()`);
    const steps = await page.evaluate<{ images_per_s: number }[]>(`(async () => {
      await vitLoraPage.train({ epochs: 2, batchSize: 8, rank: 8 });
      return vitLoraPage.state.steps;
    })()`);
    seconds[`chromium ${backend}`] = perStep(steps);
  }
} finally {
  await browser.close();
  await server.shutdown();
  await Deno.remove(dir, { recursive: true });
}
for (const [name, s] of Object.entries(seconds)) console.log(`${name}: ${s.toFixed(3)} s a step`);
for (const backend of ["webgpu", "wasm"]) {
  const ratio = seconds[`chromium ${backend}`] / seconds[`deno ${backend}`];
  console.log(`${backend}: the browser takes ${ratio.toFixed(1)}× Deno's time a step`);
}
