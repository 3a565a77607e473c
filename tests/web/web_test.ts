/**
 * The package in a web page, in a real browser (Debian's headless Chromium over the DevTools
 * protocol, WebGPU on SwiftShader): the page `deno task web` builds, PyTorch's numbers from the
 * fixtures on WebGPU and wasm in the page, fine-tuning the demo data there, and the adapter it
 * downloads loaded back in Deno; the page's class editor, its camera (Chromium's fake camera, a
 * moving test pattern) and live classification, and the page without a camera. Screenshots
 * after training and in the camera state are kept in `test-artifacts/`.
 */

import assert from "node:assert/strict";
import { unzipSync } from "fflate";
import { OrtClassifier, ortStatus } from "../../src/engines/ort.ts";
import { join } from "node:path";
import { type Tensor4D, tf } from "../../src/core/tf.ts";
import { loadClassifier } from "../../src/model/loading.ts";
import { readSafetensors } from "../../src/model/safetensors_file.ts";
import { buildWeb, serveWeb } from "../../tasks/web.ts";
import { ClassList, type Sample } from "../../src/web/page/classes.ts";
import { cameraProblem, noCameraLine } from "../../src/web/page/camera.ts";
import { describe as describeAdded } from "../../src/web/page/sources.ts";
import { expected, fixture, relError, useBackend } from "../helpers.ts";
import { Chromium, findChromium, type Page } from "./chromium.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const ARTIFACTS = join(ROOT, "test-artifacts");

/** The built page, its server (with the fixtures under /fixtures/) and a browser, once. */
let setup: Promise<{ dir: string; url: string; browser: Chromium; close: () => Promise<void> }>;
function web() {
  return setup ??= (async () => {
    const binary = await findChromium();
    if (!binary) throw new Error("Chromium is not installed (Debian: apt-get install chromium)");
    const dir = await Deno.makeTempDir({ prefix: "vit-lora-web-" });
    await buildWeb(dir);
    const fixtures = fixture("");
    const { server, url } = serveWeb(dir, {
      extra: async (req) => {
        const path = decodeURIComponent(new URL(req.url).pathname);
        if (!path.startsWith("/fixtures/") || path.includes("..")) return undefined;
        try {
          return new Response(await Deno.readFile(join(fixtures, path.slice(10))));
        } catch {
          return new Response("not found", { status: 404 });
        }
      },
    });
    const browser = await Chromium.launch(binary);
    return {
      dir,
      url,
      browser,
      close: async () => {
        await browser.close();
        await server.shutdown();
        await Deno.remove(dir, { recursive: true });
      },
    };
  })();
}

/** Chromium's fake camera (a moving test pattern), the permission granted without asking. */
const FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"];

/**
 * More browsers, without WebGPU (the page then trains on wasm, much faster than SwiftShader's
 * WebGPU), launched once when first asked for: `camera` with the fake camera, `plain` with no
 * camera at all.
 */
const others = new Map<"camera" | "plain", Promise<Chromium>>();
function otherBrowser(kind: "camera" | "plain"): Promise<Chromium> {
  let found = others.get(kind);
  if (!found) {
    found = findChromium().then((binary) =>
      Chromium.launch(binary!, { webgpu: false, args: kind === "camera" ? FAKE_CAMERA : [] })
    );
    others.set(kind, found);
  }
  return found;
}

/** A fresh page of the app, its backend started (in the main browser unless `kind` is given). */
async function openApp(kind?: "camera" | "plain"): Promise<Page> {
  const { browser, url } = await web();
  const page = await (kind ? await otherBrowser(kind) : browser).open(url);
  await page.evaluate(`vitLoraPage.ready`);
  return page;
}

/**
 * Helpers the camera steps evaluate in the page: `wait(ms)`, `until(test, what)` (polls, and
 * fails after 60 s), `$(id)`, `cards()` (the class cards), `demoFiles(label, n)` (demo images
 * as `File`s) and `pick(input, files)` (gives files to a file input, as picking them does).
 */
const IN_PAGE = `
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  const until = async (test, what) => {
    for (let i = 0; i < 1200; i++) {
      if (await test()) return;
      await wait(50);
    }
    throw new Error("timed out waiting for " + what);
  };
  const $ = (id) => document.getElementById(id);
  const cards = () => [...document.querySelectorAll(".class-card")];
  const demoFiles = async (label, n) => {
    const index = await (await fetch("demo/images/index.json")).json();
    const picks = index.images.filter((i) => i.label === label).slice(0, n);
    return await Promise.all(picks.map(async (p) =>
      new File([await (await fetch("demo/images/" + p.path)).blob()], p.path.split("/")[1],
        { type: "image/jpeg" })
    ));
  };
  const pick = (input, files) => {
    const dt = new DataTransfer();
    for (const f of files) dt.items.add(f);
    input.files = dt.files;
    input.dispatchEvent(new Event("change"));
  };
`;

/** Evaluates `body` (statements ending in a `return`) in an async function with {@link IN_PAGE}. */
function inPage<T>(page: Page, body: string): Promise<T> {
  return page.evaluate<T>(`(async () => {${IN_PAGE}\n${body}\n})()`);
}

/** The steps below, each a check of its own, sharing one page build, server and browser. */
const steps: [string, () => Promise<void>][] = [];
const step = (name: string, fn: () => Promise<void>) => steps.push([name, fn]);

step("the browser entry's bundle imports nothing of Node or Deno and loads in a page", async () => {
  const { dir } = await web();
  const bundle = await Deno.readTextFile(join(dir, "app.js"));
  assert.ok(bundle.length > 100_000, "the bundle holds the package");
  for (const pattern of [/\bfrom\s*["']node:/, /\bimport\(\s*["']node:/, /require\(\s*["']node:/]) {
    assert.doesNotMatch(bundle, pattern);
  }
  // the module graph of src/web/ imports no Deno-only module (the layering check covers the rest)
  const page = await openApp();
  const backend = await page.evaluate<string>(`document.getElementById("backend").textContent`);
  assert.match(backend, /WebGPU on .*swiftshader|wasm/i);
  assert.deepEqual(page.errors, [], "no console error");
});

step("without WebGPU, the page says so and runs on wasm", async () => {
  const page = await openApp("plain");
  const text = await page.evaluate<string>(`document.getElementById("backend").textContent`);
  assert.match(text, /Backend: wasm \(CPU\): this browser offers no WebGPU/);
  assert.equal(await page.evaluate<string>(`vitLoraPage.api.tf.getBackend()`), "wasm");
  assert.deepEqual(page.errors, [], "no console error");
});

for (const backend of ["webgpu", "wasm"] as const) {
  step(
    `on ${backend} in the page, logits and gradients match PyTorch (vit-tiny-a, hf5-more)`,
    async () => {
      const page = await openApp();
      for (
        const [set, model, adapter] of [
          ["vit-tiny-a", "vit-tiny-a/model", "vit-tiny-a/adapter"],
          ["hf5-more/adapter-all", "hf5-more/model", "hf5-more/adapter-all"],
        ]
      ) {
        const e = await expected(set);
        const result = await page.evaluate<
          { logits: number[]; loss: number; grads: Record<string, number[]>; backend: string }
        >(`(async () => {
        const api = vitLoraPage.api;
        const info = await api.initBackend(${JSON.stringify(backend)}, { quiet: true });
        const clf = await api.loadClassifierFromUrl("/fixtures/${model}/", {
          adapter: "/fixtures/${adapter}/",
          backend: ${JSON.stringify(backend)},
        });
        const x = api.tf.tensor4d(${JSON.stringify([...e.pixelValues.data])}, ${
          JSON.stringify(e.pixelValues.shape)
        });
        const y = api.tf.tensor1d(${JSON.stringify([...e.labels.data].map(Number))}, "int32");
        const logits = clf.logits(x);
        const { loss, grads } = clf.lossAndGradients(x, y);
        const out = {
          backend: api.tf.getBackend() + " " + (info.adapter ?? ""),
          logits: Array.from(await logits.data()),
          loss: (await loss.data())[0],
          grads: Object.fromEntries(await Promise.all(
            Object.entries(grads).map(async ([k, g]) => [k, Array.from(await g.data())]),
          )),
        };
        api.tf.dispose([x, y, logits, loss, ...Object.values(grads)]);
        clf.dispose();
        return out;
      })()`);
        assert.ok(result.backend.startsWith(backend), result.backend);
        const logitsErr = relError(result.logits, e.tensors.get("logits")!.data);
        assert.ok(logitsErr < 1e-4, `${set} logits: ${logitsErr.toExponential(2)}`);
        const lossErr = Math.abs(result.loss - e.tensors.get("loss")!.data[0]) /
          Math.abs(e.tensors.get("loss")!.data[0]);
        assert.ok(lossErr < 1e-4, `${set} loss: ${lossErr.toExponential(2)}`);
        const gradKeys = [...e.tensors.keys()].filter((k) => k.startsWith("grad."));
        assert.equal(Object.keys(result.grads).length, gradKeys.length);
        let worst = 0;
        for (const key of gradKeys) {
          const err = relError(result.grads[key.slice(5)], e.tensors.get(key)!.data);
          worst = Math.max(worst, err);
          assert.ok(err < 1e-4, `${set} ${key}: ${err.toExponential(2)}`);
        }
        console.log(
          `  ${set} on ${result.backend}: logits ${logitsErr.toExponential(2)}, loss ${
            lossErr.toExponential(2)
          }, gradients ${worst.toExponential(2)}`,
        );
      }
      assert.deepEqual(page.errors, [], "no console error");
    },
  );
}

step(
  "the page fine-tunes the demo data well above chance; its adapter loads in Deno with the page's logits",
  async () => {
    const { dir } = await web();
    const page = await openApp();
    await page.evaluate(`vitLoraPage.useDemo()`);
    const run = await page.evaluate<{
      steps: number;
      accuracy: number;
      before: number;
      classes: number;
      seconds: number;
    }>(`(async () => {
    const r = await vitLoraPage.train({ epochs: 3, batchSize: 8, lr: 0.005, rank: 8 });
    const s = vitLoraPage.state;
    return {
      steps: r.steps,
      accuracy: r.validation.accuracy,
      before: s.epochs[0].validation.accuracy,
      classes: s.labels.length,
      seconds: r.seconds,
    };
  })()`);
    console.log(
      `  ${run.steps} steps in ${run.seconds.toFixed(1)} s: validation accuracy ${
        run.before.toFixed(2)
      } → ${run.accuracy.toFixed(2)} (chance ${(1 / run.classes).toFixed(2)})`,
    );
    assert.ok(run.steps > 0);
    assert.ok(run.accuracy >= 0.8, `validation accuracy ${run.accuracy}`);
    assert.ok(run.accuracy > 2 / run.classes, "well above chance");

    // classify a few demo images from the page's own file input path
    const top = await page.evaluate<{ label: string; expected: string }[]>(`(async () => {
    const index = await (await fetch("demo/images/index.json")).json();
    const picks = [0, 40, 70, 100].map((i) => index.images[i]);
    const files = await Promise.all(picks.map(async (p) =>
      new File([await (await fetch("demo/images/" + p.path)).blob()], p.path)
    ));
    const top = await vitLoraPage.classifyFiles(files);
    return top.map((t, i) => ({ label: t[0].label, expected: index.classes[picks[i].label] }));
  })()`);
    assert.equal(top.length, 4);
    assert.ok(top.filter((t) => t.label === t.expected).length >= 3, JSON.stringify(top));
    // the page after training and classifying, kept to look at
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    await Deno.writeFile(join(ARTIFACTS, "web-after-training.png"), await page.screenshot());

    // the adapter as the download gives it, and the page's logits on fixed inputs
    const pixels = Array.from({ length: 2 * 3 * 32 * 32 }, (_, i) => Math.sin(i * 0.37) * 1.5);
    for (const peftFormat of ["transformers-5", "transformers-4"]) {
      const out = await page.evaluate<{ files: Record<string, string>; logits: number[] }>(
        `(async () => {
      const api = vitLoraPage.api;
      const files = await vitLoraPage.adapterFiles(${JSON.stringify(peftFormat)});
      const x = api.tf.tensor4d(${JSON.stringify(pixels)}, [2, 3, 32, 32]);
      const logits = vitLoraPage.state.clf.logits(x);
      const result = {
        files: Object.fromEntries([...files].map(([name, bytes]) =>
          [name, btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""))]
        )),
        logits: Array.from(await logits.data()),
      };
      api.tf.dispose([x, logits]);
      return result;
    })()`,
      );
      const adapterDir = await Deno.makeTempDir({ prefix: "vit-lora-web-adapter-" });
      try {
        for (const [name, b64] of Object.entries(out.files)) {
          await Deno.writeFile(
            join(adapterDir, name),
            Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)),
          );
        }
        const keys = [...(await readSafetensors(join(adapterDir, "adapter_model.safetensors")))
          .keys()];
        assert.ok(
          keys.some((k) =>
            peftFormat === "transformers-5"
              ? k.includes(".layers.0.attention.q_proj.")
              : k.includes(
                ".encoder.layer.0.attention.attention.query.",
              )
          ),
          keys.join(", "),
        );
        for (const backend of ["webgpu", "cpu"] as const) {
          await useBackend(backend);
          const clf = await loadClassifier(join(dir, "demo", "model"), {
            adapter: adapterDir,
            backend,
          });
          const x = tf.tensor4d(pixels, [2, 3, 32, 32]) as Tensor4D;
          const logits = clf.logits(x);
          const err = relError(await logits.data(), out.logits);
          tf.dispose([x, logits]);
          clf.dispose();
          console.log(
            `  ${peftFormat} adapter in Deno on ${backend}: logits ${err.toExponential(2)}`,
          );
          assert.ok(err < 1e-5, `${peftFormat} on ${backend}: ${err.toExponential(2)}`);
        }
      } finally {
        await Deno.remove(adapterDir, { recursive: true });
      }
    }
    // "Download for transformers.js": the zip's folder, its fp32 graph run by ONNX Runtime in
    // Deno gives the page's logits
    const zip64 = await page.evaluate<string>(`(async () => {
      const zip = await vitLoraPage.onnxZip(["fp32", "q8"]);
      return btoa(Array.from(zip, (b) => String.fromCharCode(b)).join(""));
    })()`);
    const unzipped = unzipSync(Uint8Array.from(atob(zip64), (c) => c.charCodeAt(0)));
    assert.deepEqual(Object.keys(unzipped).sort(), [
      "vit-lora-onnx/README.md",
      "vit-lora-onnx/config.json",
      "vit-lora-onnx/onnx/model.onnx",
      "vit-lora-onnx/onnx/model_quantized.onnx",
      "vit-lora-onnx/preprocessor_config.json",
    ]);
    const config = JSON.parse(new TextDecoder().decode(unzipped["vit-lora-onnx/config.json"]));
    assert.equal(config.architectures[0], "ViTForImageClassification");
    const status = await ortStatus();
    assert.ok(status.ort, `ONNX Runtime: ${status.reason}`);
    const shape = await page.evaluate<Parameters<typeof OrtClassifier.fromBytes>[2]>(
      `({ config: vitLoraPage.state.clf.config, labels: vitLoraPage.state.clf.labels })`,
    );
    const session = await OrtClassifier.fromBytes(
      status.ort,
      unzipped["vit-lora-onnx/onnx/model.onnx"],
      shape,
    );
    try {
      const logits = await session.run(Float32Array.from(pixels), 2);
      const pageLogits = await page.evaluate<number[]>(`(async () => {
        const api = vitLoraPage.api;
        const x = api.tf.tensor4d(${JSON.stringify(pixels)}, [2, 3, 32, 32]);
        const logits = vitLoraPage.state.clf.logits(x);
        const out = Array.from(await logits.data());
        api.tf.dispose([x, logits]);
        return out;
      })()`);
      const err = relError(logits, pageLogits);
      console.log(
        `  the page's ONNX download (fp32) in ONNX Runtime: logits ${err.toExponential(2)}`,
      );
      assert.ok(err < 1e-4, `ONNX download: ${err}`);
    } finally {
      await session.release();
    }
    assert.deepEqual(page.errors, [], "no console error");
  },
);

step("the class editor adds, renames and removes classes; its cards take files", async () => {
  const page = await openApp("camera");
  const out = await inPage<Record<string, unknown>>(
    page,
    `
    const pg = vitLoraPage, out = {};
    const names = () => cards().map((c) => c.querySelector(".class-name").value);
    const rename = (i, name) => {
      const input = cards()[i].querySelector(".class-name");
      input.value = name;
      input.dispatchEvent(new Event("change"));
    };
    out.start = names();
    out.trainDisabled = $("train").disabled;
    $("add-class").click();
    out.added = names();
    rename(2, "  cats ");
    out.renamed = [names(), pg.classes.labels];
    rename(0, "cats");
    out.taken = [names(), pg.classes.labels, $("classes-status").textContent];
    rename(0, "   ");
    out.empty = [names(), $("classes-status").textContent];
    cards()[1].querySelector(".remove").click();
    out.removed = [names(), pg.classes.labels];
    // picked files: three images, a text file, and a "JPEG" that is not one
    const files = [...await demoFiles(0, 3), new File(["notes"], "notes.txt"),
      new File(["not a jpeg"], "broken.jpg", { type: "image/jpeg" })];
    pick(cards()[1].querySelector("input[type=file]"), files);
    await until(() => pg.classes.classes[1].samples.length === 3, "the picked images");
    await until(() => /added/.test($("classes-status").textContent), "the note");
    out.picked = [
      cards()[1].querySelector(".count").textContent,
      cards()[1].querySelectorAll(".thumbs img").length,
      $("classes-status").textContent,
    ];
    // dropped files on the first card
    const dt = new DataTransfer();
    for (const f of await demoFiles(1, 2)) dt.items.add(f);
    cards()[0].dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    await until(() => pg.classes.classes[0].samples.length === 2, "the dropped images");
    out.dropped = cards()[0].querySelector(".count").textContent;
    // an empty class stops training with one line
    $("add-class").click();
    out.trainEnabled = !$("train").disabled;
    $("train").click();
    await until(() => $("status").textContent !== "", "the status line");
    out.emptyClass = $("status").textContent;
    cards()[2].querySelector(".remove").click();
    // a folder of class folders: "cats" gets more, "dogs" is new, empty classes are removed
    const folder = [
      ...(await demoFiles(2, 2)).map((file) => ({ file, path: "photos/dogs/" + file.name })),
      ...(await demoFiles(0, 1)).map((file) => ({ file, path: "photos/cats/" + file.name })),
    ];
    $("add-class").click();
    await pg.useFiles(folder);
    out.folder = [names(), pg.classes.classes.map((c) => c.samples.length), $("data-info").textContent];
    return out;
  `,
  );
  assert.deepEqual(out.start, ["class 1", "class 2"]);
  assert.equal(out.trainDisabled, true, "nothing to train on yet");
  assert.deepEqual(out.added, ["class 1", "class 2", "class 3"]);
  assert.deepEqual(out.renamed, [["class 1", "class 2", "cats"], ["class 1", "class 2", "cats"]]);
  assert.deepEqual(out.taken, [
    ["class 1", "class 2", "cats"],
    ["class 1", "class 2", "cats"],
    "there is already a class named “cats”",
  ]);
  assert.deepEqual(out.empty, [["class 1", "class 2", "cats"], "a class needs a name"]);
  assert.deepEqual(out.removed, [["class 1", "cats"], ["class 1", "cats"]]);
  assert.deepEqual(out.picked, [
    "3 images",
    3,
    "3 images added to 1 class; 1 file that is not an image ignored; " +
    "1 left out (not an image the browser decodes): broken.jpg",
  ]);
  assert.equal(out.dropped, "2 images");
  assert.equal(out.trainEnabled, true);
  assert.equal(
    out.emptyClass,
    "class “class 3” has no images: capture or add some, or remove the class",
  );
  assert.deepEqual(out.folder, [
    ["class 1", "cats", "dogs"],
    [2, 4, 2],
    "8 images in 3 classes (class 1: 2, cats: 4, dogs: 2): 7 to train on, 1 to validate.",
  ]);
  assert.deepEqual(page.errors, [], "no console error");
});

step(
  "the fake camera: frames captured (click and hold) and images picked train together; live classes update",
  async () => {
    const page = await openApp("camera");
    const run = await inPage<{
      status: string;
      captureOff: boolean;
      clicked: number;
      burst: number;
      differ: boolean;
      counts: string[];
      steps: number;
      expectedSteps: number;
      stopped: boolean;
      accuracy: number;
      labels: string[];
    }>(
      page,
      `
      const pg = vitLoraPage;
      const captureOff = cards()[0].querySelector(".capture").disabled;
      $("camera-start").click();
      await until(() => /^Camera on/.test($("camera-status").textContent), "the camera");
      const status = $("camera-status").textContent;
      const capture = cards()[0].querySelector(".capture");
      // clicks: one frame each
      for (let i = 0; i < 6; i++) {
        capture.click();
        await wait(60);
      }
      const clicked = pg.classes.classes[0].samples.length;
      // held: one frame at once, then a burst until let go
      capture.dispatchEvent(new PointerEvent("pointerdown", { bubbles: true, button: 0 }));
      await wait(1000);
      window.dispatchEvent(new PointerEvent("pointerup"));
      const burst = pg.classes.classes[0].samples.length - clicked;
      await wait(400);
      const a = pg.classes.classes[0].samples[0].image, b = pg.classes.classes[0].samples.at(-1).image;
      const differ = a.data.some((v, i) => v !== b.data[i]);
      pick(cards()[1].querySelector("input[type=file]"), await demoFiles(1, 10));
      await until(() => pg.classes.classes[1].samples.length === 10, "the picked images");
      const counts = cards().map((c) => c.querySelector(".count").textContent);
      const r = await pg.train({ epochs: 8, batchSize: 4, lr: 0.005, rank: 8 });
      return {
        status, captureOff, clicked, burst, differ, counts,
        steps: r.steps,
        expectedSteps: 8 * Math.ceil(pg.state.train.length / 4),
        stopped: r.stopped,
        accuracy: r.validation.accuracy,
        labels: pg.state.clf.labels,
      };
    `,
    );
    assert.equal(run.captureOff, true, "Capture is off until the camera is");
    assert.equal(
      run.status,
      "Camera on (640 × 480): capture examples with a class's Capture button (hold it for a burst).",
    );
    assert.equal(run.clicked, 6, "a click captures one frame");
    assert.ok(run.burst >= 2, `holding Capture for 1 s captured ${run.burst} frames`);
    assert.ok(run.differ, "the fake camera's frames differ over time");
    assert.deepEqual(run.counts, [
      `${6 + run.burst} images (${6 + run.burst} from the camera)`,
      "10 images",
    ]);
    assert.equal(run.steps, run.expectedSteps);
    assert.equal(run.stopped, false);
    assert.deepEqual(run.labels, ["class 1", "class 2"]);
    console.log(
      `  ${6 + run.burst} camera frames and 10 images: ${run.steps} steps, validation accuracy ${
        run.accuracy.toFixed(2)
      }`,
    );

    // live classification: the shown classes and probabilities as frames come
    const live = await inPage<{
      tensorsBefore: number;
      tensorsAfter: number;
      shown: { text: string; top: { label: string; probability: number }[] }[];
      running: boolean;
    }>(
      page,
      `
      const pg = vitLoraPage;
      const tensorsBefore = pg.api.tf.memory().numTensors;
      $("live-start").click();
      const shown = [];
      let seen = 0;
      await until(() => {
        if (pg.live.frames > seen) {
          seen = pg.live.frames;
          shown.push({ text: $("live").innerText, top: pg.state.live });
        }
        return shown.length >= 6;
      }, "six live frames");
      return { tensorsBefore, shown, running: pg.live.running, tensorsAfter: 0 };
    `,
    );
    assert.equal(live.running, true);
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    await Deno.writeFile(join(ARTIFACTS, "web-camera.png"), await page.screenshot());
    const after = await inPage<{ tensors: number; running: boolean; stopDisabled: boolean }>(
      page,
      `
      $("live-stop").click();
      await vitLoraPage.live.stop();
      await wait(50);
      return {
        tensors: vitLoraPage.api.tf.memory().numTensors,
        running: vitLoraPage.live.running,
        stopDisabled: $("live-stop").disabled,
      };
    `,
    );
    assert.equal(after.running, false);
    assert.equal(after.stopDisabled, true);
    assert.equal(after.tensors, live.tensorsBefore, "live classification keeps no tensor");
    const frames: number[] = [];
    for (const { text, top } of live.shown) {
      const lines = text.trim().split("\n").map((l) => l.trim()).filter((l) => l);
      // per class: its name and its percentage, then "frame N · F frames/s"
      assert.equal(top.length, 2, text);
      assert.equal(lines.length, 2 * top.length + 1, text);
      const sum = top.reduce((a, p) => a + p.probability, 0);
      assert.ok(sum <= 1 + 1e-5 && sum > 0.999, `probabilities sum to ${sum}`);
      top.forEach((p, i) => {
        assert.ok(["class 1", "class 2"].includes(p.label));
        assert.equal(lines[2 * i], p.label);
        assert.equal(lines[2 * i + 1], `${(100 * p.probability).toFixed(1)}%`);
        if (i > 0) assert.ok(p.probability <= top[i - 1].probability, "most probable first");
      });
      const frame = lines.at(-1)!.match(/^frame (\d+) · [\d.]+ frames\/s$/);
      assert.ok(frame, lines.at(-1) ?? "no lines");
      frames.push(Number(frame[1]));
    }
    assert.ok(frames.every((f, i) => i === 0 || f > frames[i - 1]), `frames ${frames}`);
    const texts = new Set(live.shown.map((s) => s.top.map((p) => p.probability.toFixed(3)).join()));
    const cameraTop = live.shown.filter((s) => s.top[0].label === "class 1").length;
    console.log(
      `  live: frames ${
        frames.join(", ")
      }; ${texts.size} different probabilities in ${live.shown.length} frames; ` +
        `the camera's class on top in ${cameraTop}; e.g. ${JSON.stringify(live.shown.at(-1)!.top)}`,
    );
    assert.ok(texts.size > 1, "the probabilities change with the frames");
    assert.equal(cameraTop, live.shown.length, "the camera's frames are its class");

    // the camera off: Capture off again, the preview hidden
    const off = await inPage<[boolean, boolean, boolean, string]>(
      page,
      `
      $("camera-stop").click();
      await until(() => !vitLoraPage.camera.on, "the camera off");
      return [cards()[0].querySelector(".capture").disabled, $("camera-video").hidden,
        $("camera-start").disabled, $("camera-status").textContent];
    `,
    );
    assert.deepEqual(off, [true, true, false, "The camera is off."]);
    assert.deepEqual(page.errors, [], "no console error");
  },
);

step(
  "without a camera or its permission, the page says so in one line and trains from files",
  async () => {
    const page = await openApp("plain");
    const out = await inPage<Record<string, unknown>>(
      page,
      `
      const pg = vitLoraPage, out = {};
      const line = () => [$("camera-status").textContent, $("camera-status").className];
      $("camera-start").click();
      await until(() => /^No camera/.test($("camera-status").textContent), "the line");
      out.none = line();
      out.buttons = [pg.camera.on, $("camera-stop").disabled, cards()[0].querySelector(".capture").disabled];
      // a browser that refuses the permission
      navigator.mediaDevices.getUserMedia = () =>
        Promise.reject(new DOMException("Permission denied", "NotAllowedError"));
      $("camera-start").click();
      await until(() => /permission/.test($("camera-status").textContent), "the line");
      out.denied = line();
      // files still train, and Classify camera says there is no camera
      await pg.useDemo();
      const r = await pg.train({ epochs: 1, batchSize: 16, lr: 0.005, rank: 4 });
      out.steps = r.steps;
      $("camera-status").textContent = "";
      await pg.startLive();
      out.live = [pg.live.running, $("camera-status").textContent];
      return out;
    `,
    );
    const tail = "; you can still add images from files.";
    assert.deepEqual(out.none, [`No camera: no camera was found${tail}`, "note error"]);
    assert.deepEqual(out.buttons, [false, true, true]);
    assert.deepEqual(out.denied, [
      "No camera: permission to use it was denied (allow the camera in the browser's site settings)" +
      tail,
      "note error",
    ]);
    assert.ok((out.steps as number) > 0);
    assert.deepEqual(out.live, [
      false,
      `No camera: permission to use it was denied (allow the camera in the browser's site settings)${tail}`,
    ]);
    assert.deepEqual(page.errors, [], "no console error");
  },
);

Deno.test("web: the page and the browser entry in headless Chromium (WebGPU on SwiftShader, and wasm)", async (t) => {
  try {
    for (const [name, fn] of steps) await t.step(name, fn);
  } finally {
    for (const other of others.values()) await (await other.catch(() => undefined))?.close();
    if (setup) await (await setup).close();
  }
});

Deno.test("web page: the class list's edits, split and lines; the no-camera lines", () => {
  const list = new ClassList();
  let changes = 0;
  list.onChange(() => changes++);
  const sample = (n: number): Sample => ({
    image: { width: 1, height: 1, data: Uint8Array.of(n, n, n) },
    thumb: "",
    source: "camera",
    name: `camera ${n}`,
  });
  list.add();
  list.add("dog");
  list.add();
  assert.deepEqual(list.labels, ["class 1", "dog", "class 3"]);
  assert.throws(() => list.add("dog"), /^ViTLoraError: there is already a class named “dog”$/);
  assert.throws(() => list.rename(0, " "), /a class needs a name/);
  assert.throws(() => list.rename(0, "a,b"), /no commas or line breaks/);
  list.rename(0, " cat ");
  list.rename(1, "dog"); // its own name
  assert.equal(list.named("dog"), list.classes[1]);
  assert.throws(() => list.checkTrainable(), /class “cat” has no images/);
  list.addSamples(0, [1, 2, 3, 4, 5].map(sample));
  list.addSamples(list.classes[1], [sample(6)]);
  assert.throws(() => list.checkTrainable(), /class “class 3” has no images/);
  list.removeEmpty();
  assert.deepEqual(list.labels, ["cat", "dog"]);
  list.checkTrainable();
  const { labels, train, validation } = list.split();
  assert.deepEqual(labels, ["cat", "dog"]);
  // 80% of 5 is 4; a class of one only trains
  assert.deepEqual(train.map((e) => [e.label, e.image.data[0]]), [[0, 1], [0, 2], [0, 3], [0, 4], [
    1,
    6,
  ]]);
  assert.deepEqual(validation.map((e) => [e.label, e.image.data[0]]), [[0, 5]]);
  assert.equal(
    list.summary(),
    "6 images in 2 classes (cat: 5, dog: 1): 5 to train on, 1 to validate.",
  );
  const removed = list.remove(list.classes[1]);
  assert.deepEqual(removed.map((s) => s.name), ["camera 6"]);
  assert.throws(() => list.checkTrainable(), /^ViTLoraError: 1 class: training needs at least two/);
  assert.throws(() => list.addSamples(removed.length + 5, []), /there is no class 7/);
  assert.equal(list.clear().length, 5);
  assert.equal(list.summary(), "No images yet (0 classes).");
  assert.equal(changes, 10, "one change event an edit");

  assert.equal(cameraProblem(new DOMException("x", "NotFoundError")), "no camera was found");
  assert.equal(
    noCameraLine(new DOMException("Could not start video source", "NotReadableError")),
    "No camera: the camera is in use by another program or could not start; you can still add images from files.",
  );
  assert.equal(
    noCameraLine(new TypeError("odd\nthing")),
    "No camera: TypeError: odd thing; you can still add images from files.",
  );
  assert.equal(
    describeAdded({ added: 1, classes: 2, bad: ["a.jpg"], ignored: 2 }),
    "1 image added to 2 classes; 2 files that are not images ignored; 1 left out (not an image the browser decodes): a.jpg",
  );
});
