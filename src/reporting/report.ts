/**
 * The run report, `RUN/report.html`: one self-contained page (no network needed) with the
 * training loss and learning rate by step, validation accuracy by epoch, the test split's
 * confusion matrix as a heat map, per-class accuracy worst first, a grid of misclassified test
 * images and the run's configuration. Charts are Vega-Lite specifications rendered to SVG
 * here, on the server side, with npm:vega; images are embedded as small JPEG thumbnails.
 *
 * @module
 */

import { join } from "node:path";
import encodeJpeg from "@jsquash/jpeg/encode.js";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { EvalReport } from "../eval/evaluate.ts";
import { exists, readJsonFile, writeFileAtomic } from "../core/files.ts";
import { openDataset } from "../hub/dataset.ts";
import { decodeImage } from "../data/image.ts";
import { resizeImage } from "../data/resize.ts";
import { readMetrics, readRunConfig, type RunConfig, runPaths } from "../runs/folder.ts";
import { partRows } from "../data/sampler.ts";
import { parseSplitFile } from "../data/splits.ts";
import type { EvalEvent, StepEvent } from "../runs/events.ts";

/** Options of {@link writeReport}. */
export interface ReportOptions {
  /** The run folder. */
  run: string;
  /** Misclassified images shown at most (default 48). */
  maxImages?: number;
  /**
   * Also save `report.png`, a screenshot by headless Chromium (default: when a Chromium is
   * found and may be run).
   */
  screenshot?: boolean;
}

/** What {@link writeReport} wrote. */
export interface ReportFiles {
  /** `RUN/report.html`. */
  html: string;
  /** `RUN/report.png`, when a screenshot was taken. */
  png?: string;
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Renders a Vega-Lite specification to an SVG string. */
async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const FONT = { font: "system-ui, sans-serif", labelFontSize: 11, titleFontSize: 12 };

function trainingCharts(steps: StepEvent[]): TopLevelSpec {
  const line = (field: string, title: string, color: string) => ({
    width: 460,
    height: 200,
    mark: { type: "line" as const, color, point: steps.length < 40 },
    encoding: {
      x: { field: "step", type: "quantitative" as const, title: "optimizer step" },
      y: { field, type: "quantitative" as const, title, scale: { zero: false } },
    },
  });
  return {
    data: { values: steps.map(({ step, loss, lr }) => ({ step, loss, lr })) },
    hconcat: [line("loss", "training loss", "#d62728"), line("lr", "learning rate", "#1f77b4")],
    config: { axis: FONT },
  } as TopLevelSpec;
}

function validationChart(evals: EvalEvent[]): TopLevelSpec {
  const values = evals.flatMap((e) => [
    { epoch: e.epoch, metric: "top-1", value: e.accuracy },
    { epoch: e.epoch, metric: "top-5", value: e.top5 },
  ]);
  return {
    data: { values },
    width: 460,
    height: 200,
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "epoch", type: "ordinal", title: "epoch", axis: { labelAngle: 0 } },
      y: {
        field: "value",
        type: "quantitative",
        title: "validation accuracy",
        axis: { format: ".0%" },
        scale: { domain: [0, 1] },
      },
      color: { field: "metric", type: "nominal", title: null },
    },
    config: { axis: FONT, legend: { labelFontSize: 11 } },
  } as TopLevelSpec;
}

function confusionChart(report: EvalReport): TopLevelSpec {
  const k = report.labels.length;
  const cell = k > 60 ? 9 : k > 20 ? 14 : 28;
  const values: { truth: string; predicted: string; count: number; rate: number }[] = [];
  report.confusion.forEach((row, t) => {
    const total = row.reduce((a, b) => a + b, 0);
    row.forEach((count, p) => {
      if (count > 0) {
        values.push({
          truth: report.labels[t],
          predicted: report.labels[p],
          count,
          rate: count / total,
        });
      }
    });
  });
  const axis = { labelFontSize: k > 60 ? 7 : 10, labelLimit: 170, ticks: false, domain: false };
  return {
    data: { values },
    width: Math.max(240, cell * k),
    height: Math.max(240, cell * k),
    mark: { type: "rect" },
    encoding: {
      x: {
        field: "predicted",
        type: "nominal",
        sort: report.labels,
        title: "predicted",
        axis: { ...axis, labelAngle: -90 },
        scale: { domain: report.labels },
      },
      y: {
        field: "truth",
        type: "nominal",
        sort: report.labels,
        title: "true class",
        axis,
        scale: { domain: report.labels },
      },
      color: {
        field: "rate",
        type: "quantitative",
        title: "share of the class",
        scale: { scheme: "blues", type: "sqrt", domain: [0, 1] },
        legend: { format: ".0%" },
      },
    },
    config: { axis: { titleFontSize: 12 }, view: { stroke: "#ccc" } },
  } as TopLevelSpec;
}

function perClassChart(report: EvalReport): TopLevelSpec {
  const values = report.perClass
    .filter((c) => c.support > 0)
    .map((c) => ({ label: c.label, accuracy: c.accuracy, support: c.support }))
    .sort((a, b) => a.accuracy - b.accuracy || a.label.localeCompare(b.label));
  return {
    data: { values },
    width: 460,
    height: Math.max(60, 13 * values.length),
    mark: { type: "bar", color: "#4c78a8" },
    encoding: {
      y: {
        field: "label",
        type: "nominal",
        sort: values.map((v) => v.label),
        title: null,
        axis: { labelFontSize: 10, labelLimit: 180 },
      },
      x: {
        field: "accuracy",
        type: "quantitative",
        title: "accuracy (worst first)",
        axis: { format: ".0%" },
        scale: { domain: [0, 1] },
      },
    },
    config: { axis: FONT },
  } as TopLevelSpec;
}

/** A JPEG thumbnail (longer side at most 160 px) as a data: URL. */
async function thumbnail(bytes: Uint8Array): Promise<string> {
  const image = await decodeImage(bytes);
  const scale = Math.min(1, 160 / Math.max(image.width, image.height));
  const w = Math.max(1, Math.round(image.width * scale));
  const h = Math.max(1, Math.round(image.height * scale));
  const small = resizeImage(image, w, h);
  const rgba = new Uint8ClampedArray(w * h * 4);
  for (let i = 0; i < w * h; i++) {
    rgba.set(small.data.subarray(3 * i, 3 * i + 3), 4 * i);
    rgba[4 * i + 3] = 255;
  }
  const jpeg = new Uint8Array(
    await encodeJpeg({ data: rgba, width: w, height: h, colorSpace: "srgb" } as ImageData, {
      quality: 80,
    }),
  );
  let binary = "";
  for (let i = 0; i < jpeg.length; i += 0x8000) {
    binary += String.fromCharCode(...jpeg.subarray(i, i + 0x8000));
  }
  return `data:image/jpeg;base64,${btoa(binary)}`;
}

async function misclassifiedGrid(
  report: EvalReport,
  run: string,
  config: RunConfig["train"],
  limit: number,
): Promise<string> {
  const wrong = report.predictions.filter((p) => p.predicted !== p.label)
    .sort((a, b) => b.probability - a.probability).slice(0, limit);
  if (wrong.length === 0) return "<p>No test image was misclassified.</p>";
  const dataset = await openDataset(config.data, {
    progress: false,
    imageColumn: config.imageColumn,
    labelColumn: config.labelColumn,
    labels: config.labels,
  });
  const splitPath = runPaths(run).split;
  const { test } = parseSplitFile(await readJsonFile(splitPath), splitPath);
  const byIndex = new Map(wrong.map((w) => [w.index, w]));
  const figures = new Map<number, string>();
  const rows = partRows(dataset, { source: test.source, indices: [...byIndex.keys()] });
  for await (const row of rows) {
    const w = byIndex.get(row.index)!;
    let img: string;
    try {
      img = `<img src="${await thumbnail(row.bytes)}" alt="test image ${row.index}">`;
    } catch {
      img = `<div class="noimg">cannot decode</div>`;
    }
    figures.set(
      row.index,
      `<figure>${img}<figcaption><span class="true">${escape(report.labels[w.label])}</span>` +
        `<span class="pred">→ ${escape(report.labels[w.predicted])} (${
          (100 * w.probability).toFixed(0)
        }%)</span></figcaption></figure>`,
    );
  }
  return `<div class="grid">${wrong.map((w) => figures.get(w.index) ?? "").join("\n")}</div>`;
}

function configTable(config: Record<string, unknown>): string {
  const rows = Object.entries(config).map(([k, v]) =>
    `<tr><th>${escape(k)}</th><td>${
      escape(typeof v === "object" ? JSON.stringify(v) : String(v))
    }</td></tr>`
  );
  return `<table class="config">${rows.join("")}</table>`;
}

/**
 * A headless-capable Chromium's command, if one is installed and this process may run it (the
 * report's screenshot and the browser tests use it).
 */
export async function findChromium(): Promise<string | undefined> {
  for (const name of ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]) {
    const allowed = await Deno.permissions.query({ name: "run", command: name });
    if (allowed.state !== "granted") continue;
    try {
      const out = await new Deno.Command(name, {
        args: ["--version"],
        stdout: "null",
        stderr: "null",
      })
        .output();
      if (out.success) return name;
    } catch {
      // not installed
    }
  }
  return undefined;
}

/**
 * Runs a page in headless Chromium: its DOM after scripts ran, and the console's errors
 * (`screenshot`: a PNG of the page saved there too).
 */
export async function openInChromium(
  html: string,
  options: { screenshot?: string; width?: number; height?: number } = {},
): Promise<{ dom: string; consoleErrors: string[] } | undefined> {
  const browser = await findChromium();
  if (!browser) return undefined;
  const url = new URL(`file://${html.startsWith("/") ? "" : Deno.cwd() + "/"}${html}`).href;
  const common = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-dev-shm-usage",
  ];
  const out = await new Deno.Command(browser, {
    args: [
      ...common,
      "--enable-logging=stderr",
      "--v=0",
      "--virtual-time-budget=5000",
      "--dump-dom",
      url,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  const consoleErrors = stderr.split("\n").filter((l) =>
    /CONSOLE/.test(l) && /(ERROR|Uncaught|error)/.test(l)
  );
  if (options.screenshot) {
    await new Deno.Command(browser, {
      args: [
        ...common,
        `--screenshot=${options.screenshot}`,
        `--window-size=${options.width ?? 1280},${options.height ?? 3000}`,
        url,
      ],
      stdout: "null",
      stderr: "null",
    }).output();
  }
  return { dom: new TextDecoder().decode(out.stdout), consoleErrors };
}

/**
 * Writes `RUN/report.html` from the run's `config.json`, `metrics.jsonl` and `eval-test.json`
 * (written by `train` at its end, or by `evaluate`), and `RUN/report.png` when Chromium is
 * available.
 *
 * @example
 * ```ts ignore
 * import { writeReport } from "@lora/vit";
 * const { html } = await writeReport({ run: "runs/food101" });
 * console.log(`open ${html}`);
 * ```
 */
export async function writeReport(options: ReportOptions): Promise<ReportFiles> {
  const run = options.run;
  const config = await readRunConfig(run);
  const lines = await readMetrics(run);
  const steps = lines.filter((l): l is StepEvent => l.event === "step");
  const evals = lines.filter((l): l is EvalEvent => l.event === "eval" && l.split === "validation");
  const testPath = join(run, "eval-test.json");
  const test = await exists(testPath) ? await readJsonFile(testPath) as EvalReport : undefined;

  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  const best = evals.reduce<EvalEvent | undefined>(
    (b, e) => !b || e.accuracy > b.accuracy ? e : b,
    undefined,
  );
  const sections: string[] = [];
  if (steps.length > 0) {
    sections.push(`<h2>Training</h2>${await renderSvg(trainingCharts(steps))}`);
  }
  if (evals.length > 0) {
    sections.push(
      `<h2>Validation accuracy by epoch</h2>${await renderSvg(validationChart(evals))}`,
    );
  }
  if (test) {
    sections.push(
      `<h2>Confusion matrix (test split)</h2><p class="note">Rows are true classes, columns predicted; the colour is the share of the row.</p>${await renderSvg(
        confusionChart(test),
      )}`,
      `<h2>Per-class accuracy (test split, worst first)</h2>${await renderSvg(
        perClassChart(test),
      )}`,
      `<h2>Misclassified test images</h2><p class="note">The most confident mistakes first: true class, then the prediction.</p>${await misclassifiedGrid(
        test,
        run,
        config.train,
        options.maxImages ?? 48,
      )}`,
    );
  } else {
    sections.push(
      `<p class="note">No test evaluation yet (run <code>deno task eval --run ${
        escape(run)
      }</code>).</p>`,
    );
  }
  sections.push(`<h2>Configuration</h2>${
    configTable({
      ...config.train,
      backend: config.backend
        ? `${config.backend.name}${config.backend.adapter ? ` (${config.backend.adapter})` : ""}`
        : "?",
      parameters: config.parameters
        ? `${config.parameters.trainable.toLocaleString("en-US")} trainable of ${
          config.parameters.total.toLocaleString("en-US")
        }`
        : "?",
    })
  }`);

  const headline = [
    test ? `<div><b>${pct(test.accuracy)}</b>test accuracy</div>` : "",
    test ? `<div><b>${pct(test.top5)}</b>test top-5</div>` : "",
    test ? `<div><b>${test.macroF1.toFixed(3)}</b>macro F1</div>` : "",
    best ? `<div><b>${pct(best.accuracy)}</b>best validation (epoch ${best.epoch})</div>` : "",
    `<div><b>${steps.length}</b>optimizer steps</div>`,
  ].join("");
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>vit-lora run ${escape(run)}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 32px; border-bottom: 1px solid #ddd; }
.sub { color: #666; } .note { color: #666; font-size: 13px; }
.headline { display: flex; gap: 24px; flex-wrap: wrap; margin: 16px 0; }
.headline div { background: #f4f6fa; border-radius: 8px; padding: 10px 16px; color: #555; }
.headline b { display: block; font-size: 22px; color: #111; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 12px; }
figure { margin: 0; background: #fafafa; border: 1px solid #eee; border-radius: 6px; padding: 6px; }
figure img { display: block; margin: 0 auto; max-width: 100%; }
figcaption { font-size: 12px; margin-top: 4px; } .true { display: block; color: #2a7; } .pred { display: block; color: #c33; }
table.config { border-collapse: collapse; } .config th, .config td { text-align: left; padding: 3px 10px; border-bottom: 1px solid #eee; font-weight: normal; }
.config th { color: #666; } svg { max-width: 100%; height: auto; }
</style></head>
<body>
<h1>vit-lora: ${escape(config.train.model)} on ${escape(config.train.data)}</h1>
<div class="sub">run <code>${
    escape(run)
  }</code> · LoRA r ${config.train.loraR}, alpha ${config.train.loraAlpha} on ${
    escape(config.train.targetModules.join(", "))
  }</div>
<div class="headline">${headline}</div>
${sections.join("\n")}
<script>document.body.dataset.ready = String(document.querySelectorAll("svg").length);</script>
</body></html>
`;
  const htmlPath = join(run, "report.html");
  await writeFileAtomic(htmlPath, html);
  let png: string | undefined;
  if (options.screenshot !== false) {
    const k = test?.labels.length ?? 0;
    const height = 900 + (evals.length ? 300 : 0) +
      (test
        ? 600 + 22 * k + 13 * k + 220 * Math.ceil(Math.min(test.count, options.maxImages ?? 48) / 6)
        : 0);
    const shot = join(run, "report.png");
    const opened = await openInChromium(htmlPath, {
      screenshot: shot,
      height: Math.min(height, 16000),
    });
    if (opened && await exists(shot)) png = shot;
  }
  return { html: htmlPath, png };
}
