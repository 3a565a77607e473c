/**
 * The page's training chart: loss by step (left axis) and validation accuracy by epoch
 * (right axis, 0–100%), drawn on a canvas.
 *
 * @module
 */

/// <reference lib="dom" />

import type { EvalSummary, StepEvent } from "../../runs/events.ts";

/**
 * Draws the loss of `steps` and the accuracy of `epochs` (epoch 0: before training).
 *
 * @example
 * ```ts ignore
 * import type { EvalSummary, StepEvent } from "@lora/vit/web";
 * import { drawChart } from "./chart.ts";
 * declare const steps: StepEvent[]; // train()'s onStep events
 * declare const epochs: { epoch: number; validation: EvalSummary }[]; // evaluate() after each
 *
 * drawChart(document.querySelector("canvas")!, steps, epochs);
 * ```
 */
export function drawChart(
  canvas: HTMLCanvasElement,
  steps: StepEvent[],
  epochs: { epoch: number; validation: EvalSummary }[],
): void {
  const ctx = canvas.getContext("2d")!;
  const w = canvas.width, h = canvas.height, pad = 36;
  ctx.clearRect(0, 0, w, h);
  ctx.font = "13px system-ui, sans-serif";
  ctx.strokeStyle = "#d9dee7";
  ctx.strokeRect(pad, 10, w - 2 * pad, h - pad - 10);
  const lastStep = Math.max(1, steps.length);
  const maxLoss = Math.max(1e-6, ...steps.map((s) => s.loss));
  const x = (step: number) => pad + (w - 2 * pad) * step / lastStep;
  const y = (v: number, max: number) => 10 + (h - pad - 10) * (1 - v / max);
  ctx.strokeStyle = "#2f6fde";
  ctx.lineWidth = 2;
  ctx.beginPath();
  steps.forEach((s, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, x(s.step), y(s.loss, maxLoss)));
  ctx.stroke();
  const perEpoch = lastStep / Math.max(1, epochs.length - 1);
  ctx.strokeStyle = "#1f8a4c";
  ctx.fillStyle = "#1f8a4c";
  ctx.beginPath();
  epochs.forEach((e, i) => {
    const px = x(e.epoch * perEpoch), py = y(e.validation.accuracy, 1);
    (i ? ctx.lineTo : ctx.moveTo).call(ctx, px, py);
    ctx.fillRect(px - 3, py - 3, 6, 6);
  });
  ctx.stroke();
  ctx.fillStyle = "#2f6fde";
  ctx.fillText(`loss (max ${maxLoss.toFixed(2)})`, pad + 6, h - 12);
  ctx.fillStyle = "#1f8a4c";
  const last = epochs.at(-1)?.validation.accuracy;
  ctx.fillText(
    `validation accuracy${last === undefined ? "" : ` ${(100 * last).toFixed(1)}%`}`,
    pad + 200,
    h - 12,
  );
  ctx.fillStyle = "#5f6b7d";
  ctx.fillText(`step ${steps.length}`, w - pad - 70, h - 12);
}
