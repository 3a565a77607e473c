/**
 * The reporters of a training run, as callbacks of `train({ callbacks })`: the run report at
 * the end ({@link reportCallback}), metrics streamed to Weights & Biases
 * ({@link trackingCallback}), and the best adapter pushed to the Hub ({@link pushCallback}).
 * `deno task train` uses all three as its flags ask.
 *
 * @module
 */

import type { TrainerCallback } from "../training/callbacks.ts";
import { type PushOptions, pushRun } from "./push.ts";
import { writeReport } from "./report.ts";
import { startTrackers, type Tracker } from "./tracking.ts";

/**
 * Writes the run report (`RUN/report.html`, and `report.png` with `screenshot` when Chromium
 * is installed) when a run ends (not when it is interrupted), and logs where it is.
 *
 * @example
 * ```ts ignore
 * import { reportCallback, train } from "@lora/vit";
 *
 * await train({
 *   model: "google/vit-base-patch16-224-in21k",
 *   data: "photos", // photos/cat/*.jpg, photos/dog/*.jpg
 *   out: "runs/photos",
 *   callbacks: [reportCallback({ screenshot: true })], // runs/photos/report.html and .png
 * });
 * ```
 */
export function reportCallback(options: { screenshot?: boolean } = {}): TrainerCallback {
  return {
    async onTrainEnd(result, context) {
      if (result.interrupted) return;
      const report = await writeReport({
        run: result.runDir,
        screenshot: options.screenshot ?? false,
      });
      context.log(`  report: ${report.html}${report.png ? ` (and ${report.png})` : ""}`);
    },
  };
}

/**
 * Streams the configuration, every step and every evaluation to the trackers `reportTo`
 * names (`wandb`; see `tracking.ts`), and finishes them when the run ends.
 *
 * @example
 * ```ts ignore
 * import { trackingCallback, train } from "@lora/vit";
 *
 * await train({
 *   model: "google/vit-base-patch16-224-in21k",
 *   data: "photos",
 *   out: "runs/photos",
 *   callbacks: [trackingCallback(["wandb"])], // needs WANDB_API_KEY
 * });
 * ```
 */
export function trackingCallback(reportTo: readonly string[]): TrainerCallback {
  let trackers: Tracker[] = [];
  return {
    async onTrainBegin(run, context) {
      trackers = await startTrackers(reportTo, {
        name: run.name,
        config: {
          ...run.config,
          backend: run.backend,
          parameters: run.parameters,
          chunk_size: run.chunkSize,
          replicas: run.replicas,
        },
        warn: (line) => context.log(line),
      });
    },
    onStep(event) {
      for (const t of trackers) t.step(event);
    },
    onEvaluate(event) {
      for (const t of trackers) t.eval(event);
    },
    async onClose() {
      for (const t of trackers) await t.finish().catch(() => {});
      trackers = [];
    },
  };
}

/**
 * Pushes the run's best adapter, metrics, configuration and model card to the Hub when the
 * run ends (not when it is interrupted; see `pushRun`), and logs where it went.
 *
 * @example
 * ```ts ignore
 * import { pushCallback, train } from "@lora/vit";
 *
 * await train({
 *   model: "google/vit-base-patch16-224-in21k",
 *   data: "photos",
 *   out: "runs/photos",
 *   callbacks: [pushCallback({ repo: "me/photos-lora" })], // needs HF_TOKEN
 * });
 * ```
 */
export function pushCallback(options: Omit<PushOptions, "run"> = {}): TrainerCallback {
  return {
    async onTrainEnd(result, context) {
      if (result.interrupted) return;
      const pushed = await pushRun({ ...options, run: result.runDir });
      context.log(`pushed ${pushed.files.join(", ")} to ${pushed.url} (commit ${pushed.commit})`);
    },
  };
}
