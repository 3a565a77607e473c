/**
 * The page `deno task web` serves: pick a base model (the demo model generated locally, or a
 * Hub id), bring images (the demo dataset, or folders of class folders), fine-tune LoRA with a
 * live chart, classify new images, and download the adapter. Everything runs in the tab,
 * through `@lora/vit/web`.
 *
 * The page also exposes itself as `globalThis.vitLoraPage` (its state and actions, and the
 * module's API), which the browser tests drive.
 *
 * @module
 */

/// <reference lib="dom" />

import * as api from "../mod.ts";
import type { EvalSummary, Example, StepEvent, ViTClassifier } from "../mod.ts";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** What the page holds. */
const state = {
  backend: undefined as api.BackendInfo | undefined,
  clf: undefined as ViTClassifier | undefined,
  /** The base model and labels `clf` was loaded for. */
  loadedFor: "",
  labels: [] as string[],
  train: [] as Example[],
  validation: [] as Example[],
  steps: [] as StepEvent[],
  epochs: [] as { epoch: number; validation: EvalSummary }[],
  result: undefined as api.WebTrainResult | undefined,
  errors: [] as string[],
  stop: undefined as AbortController | undefined,
};

function status(text: string, kind: "" | "error" | "good" = ""): void {
  const el = $("status");
  el.textContent = text;
  el.className = kind;
  if (kind === "error") state.errors.push(text);
}

function fail(e: unknown): void {
  status(e instanceof Error ? e.message : String(e), "error");
  refresh();
}

function refresh(): void {
  const busy = state.stop !== undefined;
  ($("train") as HTMLButtonElement).disabled = busy || state.train.length === 0;
  ($("stop") as HTMLButtonElement).disabled = !busy;
  ($("classify") as HTMLInputElement).disabled = busy || !state.clf;
  ($("download") as HTMLButtonElement).disabled = busy || !state.clf;
}

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

async function decodeAll(
  items: { blob: Blob; name: string; label: number }[],
): Promise<Example[]> {
  const out: Example[] = [];
  for (const item of items) {
    out.push({ image: await api.decodeImageInBrowser(item.blob, item.name), label: item.label });
  }
  return out;
}

/** Splits labelled images 80/20 by a fixed seed (every class in both when it has ≥ 2). */
function split(examples: Example[]): void {
  const byClass = new Map<number, Example[]>();
  for (const e of examples) byClass.set(e.label, [...(byClass.get(e.label) ?? []), e]);
  state.train = [];
  state.validation = [];
  for (const list of byClass.values()) {
    const cut = list.length < 2 ? list.length : Math.max(1, Math.round(list.length * 0.8));
    state.train.push(...list.slice(0, cut));
    state.validation.push(...list.slice(cut));
  }
  const counts = state.labels.map((l, i) =>
    `${l}: ${examples.filter((e) => e.label === i).length}`
  );
  $("data-info").textContent = `${examples.length} images in ${state.labels.length} classes (${
    counts.join(", ")
  }): ${state.train.length} to train on, ${state.validation.length} to validate.`;
  refresh();
}

/** The demo dataset `deno task web` generated: `demo/images/index.json` and its JPEGs. */
async function useDemo(): Promise<void> {
  status("loading the demo dataset…");
  const index = await (await fetch("demo/images/index.json")).json() as {
    classes: string[];
    images: { path: string; label: number }[];
  };
  state.labels = index.classes;
  const items = [];
  for (const image of index.images) {
    const res = await fetch(`demo/images/${image.path}`);
    items.push({ blob: await res.blob(), name: image.path, label: image.label });
  }
  split(await decodeAll(items));
  status(`the demo dataset: ${index.images.length} generated images`, "good");
}

/** Folders of images, one per class: the class is each file's parent folder. */
async function useFiles(files: { file: File; path: string }[]): Promise<void> {
  const images = files.filter((f) => /\.(jpe?g|png|webp|gif|bmp)$/i.test(f.path));
  const classOf = (path: string) => path.split("/").slice(-2, -1)[0] ?? "images";
  const labels = [...new Set(images.map((f) => classOf(f.path)))].sort();
  if (labels.length < 2) {
    throw new api.VitLoraError(
      `${images.length} images in ${labels.length} folder: give at least two class folders`,
    );
  }
  state.labels = labels;
  status(`decoding ${images.length} images…`);
  split(
    await decodeAll(images.map((f) => ({
      blob: f.file,
      name: f.path,
      label: labels.indexOf(classOf(f.path)),
    }))),
  );
  status(`${images.length} images in ${labels.length} classes`, "good");
}

async function filesOfDrop(items: DataTransferItemList): Promise<{ file: File; path: string }[]> {
  const out: { file: File; path: string }[] = [];
  const walk = async (entry: FileSystemEntry, path: string): Promise<void> => {
    if (entry.isFile) {
      const file = await new Promise<File>((resolve, reject) =>
        (entry as FileSystemFileEntry).file(resolve, reject)
      );
      out.push({ file, path: `${path}${entry.name}` });
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((resolve, reject) =>
          reader.readEntries(resolve, reject)
        );
        if (batch.length === 0) break;
        for (const child of batch) await walk(child, `${path}${entry.name}/`);
      }
    }
  };
  const entries = [...items].map((i) => i.webkitGetAsEntry()).filter((e) => e !== null);
  for (const entry of entries) await walk(entry!, "");
  return out;
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
  });
  state.clf = clf;
  state.loadedFor = key;
  const { trainable, total } = clf.parameterCount();
  $("model-info").textContent =
    `${source}: ${clf.config.num_hidden_layers} layers, hidden ${clf.config.hidden_size}, image ${clf.config.image_size}; ${
      trainable.toLocaleString("en-US")
    } trainable of ${total.toLocaleString("en-US")} parameters`;
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
  state.stop = new AbortController();
  refresh();
  try {
    const clf = await model(rank);
    state.steps = [];
    state.epochs = [];
    const total = epochs * Math.ceil(state.train.length / batchSize);
    const bar = $("progress") as HTMLProgressElement;
    bar.max = total;
    bar.value = 0;
    const before = await api.evaluate(clf, state.validation, { batchSize });
    state.epochs.push({ epoch: 0, validation: before });
    draw();
    const result = await api.train(clf, state.train, {
      epochs,
      lr,
      batchSize,
      validation: state.validation,
      signal: state.stop.signal,
      onStep: (e) => {
        state.steps.push(e);
        bar.value = e.step;
        status(
          `epoch ${e.epoch}/${epochs}, step ${e.step}/${total}: loss ${e.loss.toFixed(4)}, ` +
            `${e.images_per_s.toFixed(1)} images/s`,
        );
        draw();
      },
      onEpoch: (epoch, validation) => {
        state.epochs.push({ epoch, validation });
        draw();
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

/** Loss by step (left axis) and validation accuracy by epoch (right axis, 0–100%). */
function draw(): void {
  const canvas = $("chart") as HTMLCanvasElement;
  const ctx = canvas.getContext("2d")!;
  const w = canvas.width, h = canvas.height, pad = 36;
  ctx.clearRect(0, 0, w, h);
  ctx.font = "13px system-ui, sans-serif";
  ctx.strokeStyle = "#d9dee7";
  ctx.strokeRect(pad, 10, w - 2 * pad, h - pad - 10);
  const steps = state.steps;
  const lastStep = Math.max(1, steps.length);
  const maxLoss = Math.max(1e-6, ...steps.map((s) => s.loss));
  const x = (step: number) => pad + (w - 2 * pad) * step / lastStep;
  const y = (v: number, max: number) => 10 + (h - pad - 10) * (1 - v / max);
  ctx.strokeStyle = "#2f6fde";
  ctx.lineWidth = 2;
  ctx.beginPath();
  steps.forEach((s, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, x(s.step), y(s.loss, maxLoss)));
  ctx.stroke();
  const perEpoch = lastStep / Math.max(1, state.epochs.length - 1);
  ctx.strokeStyle = "#1f8a4c";
  ctx.fillStyle = "#1f8a4c";
  ctx.beginPath();
  state.epochs.forEach((e, i) => {
    const px = x(e.epoch * perEpoch), py = y(e.validation.accuracy, 1);
    (i ? ctx.lineTo : ctx.moveTo).call(ctx, px, py);
    ctx.fillRect(px - 3, py - 3, 6, 6);
  });
  ctx.stroke();
  ctx.fillStyle = "#2f6fde";
  ctx.fillText(`loss (max ${maxLoss.toFixed(2)})`, pad + 6, h - 12);
  ctx.fillStyle = "#1f8a4c";
  const last = state.epochs.at(-1)?.validation.accuracy;
  ctx.fillText(
    `validation accuracy${last === undefined ? "" : ` ${(100 * last).toFixed(1)}%`}`,
    pad + 200,
    h - 12,
  );
  ctx.fillStyle = "#5f6b7d";
  ctx.fillText(`step ${steps.length}`, w - pad - 70, h - 12);
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

// ---- wiring ----

$("use-demo").addEventListener("click", () => useDemo().catch(fail));
$("folder").addEventListener("change", (e) => {
  const files = [...((e.target as HTMLInputElement).files ?? [])];
  useFiles(files.map((file) => ({ file, path: file.webkitRelativePath || file.name }))).catch(
    fail,
  );
});
const drop = $("drop");
drop.addEventListener("dragover", (e) => {
  e.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  filesOfDrop(e.dataTransfer!.items).then(useFiles).catch(fail);
});
$("train").addEventListener("click", () => train().catch(fail));
$("stop").addEventListener("click", () => state.stop?.abort());
$("classify").addEventListener("change", (e) => {
  classifyFiles([...((e.target as HTMLInputElement).files ?? [])]).catch(fail);
});
$("download").addEventListener("click", () => download().catch(fail));
draw();

const ready = startBackend().then(() => refresh(), fail);

/** The page's state and actions, for the browser tests and the curious. */
(globalThis as unknown as Record<string, unknown>).vitLoraPage = {
  api,
  state,
  ready,
  useDemo,
  train,
  classifyFiles,
  adapterFiles,
};
