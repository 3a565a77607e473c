/**
 * The page `deno task web` serves: pick a base model (the demo model generated locally, or a
 * Hub id), make classes and give them images (the demo dataset, folders of class folders,
 * picked or dropped files, frames from the camera), fine-tune LoRA with a live chart,
 * classify new images or the live camera, and download the adapter. Everything runs in the
 * tab, through `@lora/vit/web`. The parts: `classes.ts` and `class_editor.ts` (the classes),
 * `camera.ts`, `live.ts` (live classification), `files.ts` (picks and drops), `chart.ts`.
 *
 * The page also exposes itself as `globalThis.vitLoraPage` (its state and actions, and the
 * module's API), which the browser tests drive.
 *
 * @module
 */

/// <reference lib="dom" />

import { zipSync } from "fflate";
import * as api from "../mod.ts";
import type { ViTClassifier } from "../mod.ts";
import type { EvalSummary, StepEvent } from "../../runs/events.ts";
import { ViTLoraError } from "../../core/errors.ts";
import { Camera, noCameraLine } from "./camera.ts";
import { drawChart } from "./chart.ts";
import { ClassEditor } from "./class_editor.ts";
import { ClassList, type ImageClass } from "./classes.ts";
import { dropZone, filesOfDrop, filesOfInput, type PathFile } from "./files.ts";
import { LiveLoop, showTop } from "./live.ts";
import * as sources from "./sources.ts";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** What the page holds. */
const state = {
  backend: undefined as api.BackendInfo | undefined,
  clf: undefined as ViTClassifier | undefined,
  /** The base model and labels `clf` was loaded for. */
  loadedFor: "",
  /** The classes' names, and their images split to train and validate (kept up to date). */
  labels: [] as string[],
  train: [] as api.Example[],
  validation: [] as api.Example[],
  steps: [] as StepEvent[],
  epochs: [] as { epoch: number; validation: EvalSummary }[],
  result: undefined as api.WebTrainResult | undefined,
  /** The latest live frame's top classes. */
  live: [] as api.Prediction[],
  errors: [] as string[],
  stop: undefined as AbortController | undefined,
};

const classes = new ClassList();
const camera = new Camera($("camera-video"), {
  onEnd: () => {
    stopLive().catch(fail);
    show($("camera-status"), "The camera stopped (unplugged, or its permission withdrawn).");
    refresh();
  },
});
const live = new LiveLoop();
let cameraFrames = 0;

function show(el: HTMLElement, text: string, kind: "" | "error" | "good" = ""): void {
  el.textContent = text;
  el.classList.remove("error", "good");
  if (kind) el.classList.add(kind);
  if (kind === "error") state.errors.push(text);
}
const status = (text: string, kind: "" | "error" | "good" = "") => show($("status"), text, kind);
const message = (e: unknown) => e instanceof Error ? e.message : String(e);

function fail(e: unknown): void {
  status(message(e), "error");
  refresh();
}

/** A failure of the classes or their images, shown under them. */
function classFail(e: unknown): void {
  show($("classes-status"), message(e), "error");
}

function refresh(): void {
  const busy = state.stop !== undefined;
  const set = (id: string, disabled: boolean) => ($(id) as HTMLButtonElement).disabled = disabled;
  set("train", busy || classes.size === 0);
  set("stop", !busy);
  set("classify", busy || !state.clf);
  set("download", busy || !state.clf);
  set("download-onnx", busy || !state.clf);
  set("camera-start", camera.on);
  set("camera-stop", !camera.on);
  set("live-start", busy || !state.clf || live.running);
  set("live-stop", !live.running);
  $("camera-video").hidden = !camera.on;
  $("live-video").hidden = !live.running;
  editor.cameraOn = camera.on;
}

const editor = new ClassEditor($("classes"), classes, {
  capture: (cls) => {
    try {
      capture(cls);
    } catch (e) {
      classFail(e);
    }
  },
  files: (cls, files) => addFiles(cls, files).catch(classFail),
  remove: (cls) => sources.releaseThumbs(classes.remove(cls)),
  error: classFail,
});
classes.onChange(() => {
  const { labels, train, validation } = classes.split();
  Object.assign(state, { labels, train, validation });
  $("data-info").textContent = classes.summary();
  refresh();
});

// ---- the backend ----

async function startBackend(): Promise<api.BackendInfo> {
  api.useWasmFiles(new URL("wasm/", location.href).href);
  let info: api.BackendInfo;
  try {
    info = await api.initBackend("webgpu", { quiet: true });
    $("backend").innerHTML = `Backend: <b>WebGPU</b> on ${info.adapter}${
      info.software ? " (a software adapter: no GPU is used)" : ""
    }`;
  } catch (e) {
    info = await api.initBackend("wasm", { quiet: true });
    $("backend").innerHTML = `Backend: <b>wasm</b> (CPU): this browser offers no WebGPU (${
      (e as Error).message
    })`;
  }
  state.backend = info;
  return info;
}

// ---- images ----

/** Says what adding images did, under the classes (red when some were left out). */
function added(result: sources.Added): void {
  show($("classes-status"), sources.describe(result), result.bad.length ? "error" : "good");
}

/** The demo dataset `deno task web` generated, in place of the classes. */
async function useDemo(): Promise<void> {
  show($("classes-status"), "loading the demo dataset…");
  added(await sources.useDemo(classes));
}

/** A folder of class folders (picked or dropped): its images go to the classes so named. */
async function useFiles(files: PathFile[]): Promise<void> {
  show($("classes-status"), `decoding ${files.length} files…`);
  added(await sources.useFolder(classes, files));
}

/** Picked or dropped files (folders walked) of one class. */
async function addFiles(cls: ImageClass, files: PathFile[]): Promise<void> {
  added(await sources.addToClass(classes, cls, files));
}

/** The camera's current frame as an example of `cls`. */
function capture(cls: ImageClass): void {
  if (!camera.on) throw new ViTLoraError("the camera is off: start it first");
  const { image, thumb } = camera.grab();
  classes.addSamples(cls, [{ image, thumb, source: "camera", name: `camera ${++cameraFrames}` }]);
}

// ---- the camera ----

/** Starts the camera; without one, says why in one line. Returns whether it is on. */
async function startCamera(): Promise<boolean> {
  try {
    show($("camera-status"), "starting the camera…");
    await camera.start();
    const { videoWidth: w, videoHeight: h } = camera.video;
    show(
      $("camera-status"),
      `Camera on (${w} × ${h}): capture examples with a class's Capture button (hold it for a burst).`,
      "good",
    );
  } catch (e) {
    show($("camera-status"), noCameraLine(e), "error");
  }
  refresh();
  return camera.on;
}

async function stopCamera(): Promise<void> {
  await stopLive();
  camera.stop();
  show($("camera-status"), "The camera is off.");
  refresh();
}

/** Classifies the camera's frames as they come (starting the camera when it is off). */
async function startLive(): Promise<void> {
  if (!state.clf) throw new ViTLoraError("fine-tune first: there is no model yet");
  if (!camera.on && !await startCamera()) return;
  const clf = state.clf;
  live.start({
    grab: () => camera.image(),
    classify: async (image) => (await api.classify(clf, [image], { topK: 3 }))[0],
    show: (top, frame, perSecond) => {
      state.live = top;
      showTop($("live"), top, `frame ${frame} · ${perSecond.toFixed(1)} frames/s`);
    },
    onError: (e) => {
      fail(e);
      setTimeout(refresh, 0);
    },
  });
  refresh();
}

async function stopLive(): Promise<void> {
  await live.stop();
  refresh();
}

// ---- the model ----

function modelSource(): string {
  const hub = (document.querySelector("input[name=model]:checked") as HTMLInputElement).value;
  return hub === "hub" ? ($("hub-id") as HTMLInputElement).value.trim() : "demo/model/";
}

/** The base model with a new LoRA adapter for the current labels (reloaded when they change). */
async function model(rank: number): Promise<ViTClassifier> {
  const source = modelSource();
  const key = `${source}|${state.labels.join(",")}|${rank}`;
  if (state.clf && state.loadedFor === key) return state.clf;
  state.clf?.dispose();
  state.clf = undefined;
  status(`loading ${source}…`);
  const clf = await api.loadClassifierFromUrl(source, {
    labels: state.labels,
    lora: { r: rank, alpha: 2 * rank, dropout: 0.1 },
    seed: 42,
    // fp16 mixed precision where the GPU offers shader-f16 (a hardware adapter), else fp32
    precision: "auto",
  });
  state.clf = clf;
  state.loadedFor = key;
  // camera frames no smaller than the model's input
  camera.shortSide = Math.max(256, clf.config.image_size);
  const { trainable, total } = clf.parameterCount();
  $("model-info").textContent =
    `${source}: ${clf.config.num_hidden_layers} layers, hidden ${clf.config.hidden_size}, image ${clf.config.image_size}; ${
      trainable.toLocaleString("en-US")
    } trainable of ${total.toLocaleString("en-US")} parameters; ${
      clf.precision === "fp16" ? "fp16 mixed precision" : "fp32"
    }`;
  return clf;
}

// ---- training ----

async function train(
  options: { epochs?: number; lr?: number; batchSize?: number; rank?: number } = {},
): Promise<api.WebTrainResult> {
  const epochs = options.epochs ?? Number(($("epochs") as HTMLInputElement).value);
  const lr = options.lr ?? Number(($("lr") as HTMLInputElement).value);
  const batchSize = options.batchSize ?? Number(($("batch") as HTMLInputElement).value);
  const rank = options.rank ?? Number(($("rank") as HTMLInputElement).value);
  classes.checkTrainable();
  await stopLive();
  // the classes as they are now: edits during training count for the next one
  const { labels, train: examples, validation } = classes.split();
  Object.assign(state, { labels, train: examples, validation });
  state.stop = new AbortController();
  refresh();
  try {
    const clf = await model(rank);
    state.steps = [];
    state.epochs = [];
    const total = epochs * Math.ceil(examples.length / batchSize);
    const bar = $("progress") as HTMLProgressElement;
    bar.max = total;
    bar.value = 0;
    const chart = () => drawChart($("chart"), state.steps, state.epochs);
    if (validation.length) {
      state.epochs.push({
        epoch: 0,
        validation: await api.evaluate(clf, validation, { batchSize }),
      });
    }
    chart();
    const result = await api.train(clf, examples, {
      epochs,
      lr,
      batchSize,
      validation,
      signal: state.stop.signal,
      onStep: (e) => {
        state.steps.push(e);
        bar.value = e.step;
        status(
          `epoch ${e.epoch}/${epochs}, step ${e.step}/${total}: loss ${e.loss.toFixed(4)}, ` +
            `${e.images_per_s.toFixed(1)} images/s`,
        );
        chart();
      },
      onEpoch: (epoch, summary) => {
        state.epochs.push({ epoch, validation: summary });
        chart();
      },
    });
    state.result = result;
    const acc = result.validation?.accuracy;
    status(
      `${result.stopped ? "stopped" : "done"}: ${result.steps} steps in ${
        result.seconds.toFixed(1)
      } s` + (acc === undefined ? "" : `; validation accuracy ${(100 * acc).toFixed(1)}%`),
      "good",
    );
    return result;
  } finally {
    state.stop = undefined;
    refresh();
  }
}

// ---- classify and download ----

async function classifyFiles(files: File[]): Promise<api.Prediction[][]> {
  const clf = state.clf!;
  const images = [];
  for (const f of files) images.push(await api.decodeImageInBrowser(f, f.name));
  const top = await api.classify(clf, images, { topK: 3 });
  const table = $("predictions") as HTMLTableElement;
  table.innerHTML = "<tr><th></th><th>image</th><th>top classes</th></tr>";
  files.forEach((f, i) => {
    const row = table.insertRow();
    const img = document.createElement("img");
    img.src = URL.createObjectURL(f);
    row.insertCell().append(img);
    row.insertCell().textContent = f.name;
    row.insertCell().textContent = top[i]
      .map((p) => `${p.label} ${(100 * p.probability).toFixed(1)}%`)
      .join(" · ");
  });
  return top;
}

/** The adapter's files (PEFT's format), as the download gives them. */
async function adapterFiles(peftFormat?: api.PeftFormat): Promise<Map<string, Uint8Array>> {
  const t4 = ($("t4") as HTMLInputElement).checked;
  return await state.clf!.adapterFiles({
    peftFormat: peftFormat ?? (t4 ? "transformers-4" : "transformers-5"),
  });
}

async function download(): Promise<void> {
  for (const [name, bytes] of await adapterFiles()) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([bytes as BlobPart]));
    a.download = name;
    a.click();
    URL.revokeObjectURL(a.href);
  }
}

/**
 * The model as the folder transformers.js loads (`exportOnnx`: config, preprocessor config,
 * README and the ONNX files of `dtypes`), zipped under `vit-lora-onnx/`.
 */
async function onnxZip(dtypes?: api.OnnxDtype[]): Promise<Uint8Array> {
  const chosen = dtypes ??
    (($("onnx-dtypes") as HTMLSelectElement).value.split(",") as api.OnnxDtype[]);
  const files = await api.exportOnnx(state.clf!, { dtypes: chosen });
  return zipSync(
    Object.fromEntries([...files].map(([name, bytes]) => [`vit-lora-onnx/${name}`, bytes])),
    { level: 0 }, // ONNX weights hardly compress; storing keeps it quick
  );
}

async function downloadOnnx(): Promise<void> {
  const button = $("download-onnx") as HTMLButtonElement;
  button.disabled = true;
  const note = $("onnx-note");
  note.textContent = "exporting…";
  try {
    const zip = await onnxZip();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([zip as BlobPart], { type: "application/zip" }));
    a.download = "vit-lora-onnx.zip";
    a.click();
    URL.revokeObjectURL(a.href);
    note.textContent = `vit-lora-onnx.zip, ${(zip.length / 2 ** 20).toFixed(1)} MB`;
  } finally {
    button.disabled = !state.clf;
  }
}

// ---- wiring ----

const on = (id: string, event: string, act: (e: Event) => Promise<unknown> | void) =>
  $(id).addEventListener(event, (e) => Promise.resolve(act(e)).catch(fail));
on("use-demo", "click", () => useDemo().catch(classFail));
on("add-class", "click", () => void classes.add());
on(
  "folder",
  "change",
  (e) => useFiles(filesOfInput(e.target as HTMLInputElement)).catch(classFail),
);
dropZone($("drop"), (data) => filesOfDrop(data).then(useFiles).catch(classFail));
on("camera-start", "click", startCamera);
on("camera-stop", "click", stopCamera);
on("train", "click", () => train());
on("stop", "click", () => state.stop?.abort());
on("classify", "change", (e) => classifyFiles([...((e.target as HTMLInputElement).files ?? [])]));
on("live-start", "click", startLive);
on("live-stop", "click", stopLive);
on("download", "click", download);
on("download-onnx", "click", downloadOnnx);
camera.mirrorTo($("live-video"));
classes.add();
classes.add();
drawChart($("chart"), [], []);

const ready = startBackend().then(() => refresh(), fail);

/** The page's state and actions, for the browser tests and the curious. */
(globalThis as unknown as Record<string, unknown>).vitLoraPage = {
  api,
  state,
  ready,
  classes,
  camera,
  live,
  useDemo,
  useFiles,
  addFiles,
  capture,
  startCamera,
  stopCamera,
  startLive,
  stopLive,
  train,
  classifyFiles,
  adapterFiles,
  onnxZip,
};
