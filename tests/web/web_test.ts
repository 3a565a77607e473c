/**
 * The package in a web page, in a real browser (Debian's headless Chromium over the DevTools
 * protocol, WebGPU on SwiftShader): the page `deno task web` builds, PyTorch's numbers from the
 * fixtures on WebGPU and wasm in the page, fine-tuning the demo data there, and the adapter it
 * downloads loaded back in Deno. A screenshot after training is kept in `test-artifacts/`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type Tensor4D, tf } from "../../src/core/tf.ts";
import { loadClassifier } from "../../src/model/loading.ts";
import { readSafetensors } from "../../src/model/safetensors_file.ts";
import { buildWeb, serveWeb } from "../../tasks/web.ts";
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

/** A fresh page of the app, its backend started. */
async function openApp(): Promise<Page> {
  const { browser, url } = await web();
  const page = await browser.open(url);
  await page.evaluate(`vitLoraPage.ready`);
  return page;
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
  const { url } = await web();
  const plain = await Chromium.launch((await findChromium())!, { webgpu: false });
  try {
    const page = await plain.open(url);
    await page.evaluate(`vitLoraPage.ready`);
    const text = await page.evaluate<string>(`document.getElementById("backend").textContent`);
    assert.match(text, /Backend: wasm \(CPU\): this browser offers no WebGPU/);
    assert.equal(await page.evaluate<string>(`vitLoraPage.api.tf.getBackend()`), "wasm");
    assert.deepEqual(page.errors, [], "no console error");
  } finally {
    await plain.close();
  }
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
    assert.deepEqual(page.errors, [], "no console error");
  },
);

Deno.test("web: the page and the browser entry in headless Chromium (WebGPU on SwiftShader, and wasm)", async (t) => {
  try {
    for (const [name, fn] of steps) await t.step(name, fn);
  } finally {
    if (setup) await (await setup).close();
  }
});
