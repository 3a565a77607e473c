/**
 * Experiment tracking. `metrics.jsonl` in the run folder is the source of truth; with
 * `trackingCallback(["wandb"])` (`--report-to wandb`) the configuration, every optimizer step and every
 * evaluation are also streamed to Weights & Biases through its official JS SDK
 * (npm:@wandb/sdk, which runs on Deno), when `WANDB_API_KEY` is set. `WANDB_BASE_URL` points
 * it at another server, `WANDB_PROJECT` and `WANDB_ENTITY` name the project (default
 * `vit-lora`) and its owner.
 *
 * @module
 */

import process from "node:process";
import type { EvalEvent, StepEvent } from "../runs/events.ts";
import { readEnv } from "../core/env.ts";
import { VitLoraError } from "../core/errors.ts";

/** Where a run's metrics go besides `metrics.jsonl`. */
export interface Tracker {
  /** Records an optimizer step. */
  step(event: StepEvent): void;
  /** Records an evaluation. */
  eval(event: EvalEvent): void;
  /** Sends what is left and closes the run. */
  finish(): Promise<void>;
  /** The run's page, if the service has one. */
  url?: string;
}

/** The trackers `reportTo` may name. */
export const TRACKERS: readonly string[] = ["wandb", "none"];

/** A Weights & Biases run through @wandb/sdk. */
async function wandbTracker(init: { name: string; config: unknown }): Promise<Tracker> {
  // the SDK's dependencies use Node's deprecated punycode module: keep its warning quiet
  (process as unknown as { noDeprecation: boolean }).noDeprecation = true;
  // graphql 16, the peer @wandb/sdk and graphql-request ask for (deno.json pins it: left to
  // itself, Deno's resolver can pick 17 and warn, depending on what it resolves first)
  await import("graphql");
  const { default: wandb } = await import("@wandb/sdk");
  const run = await wandb.init({
    project: readEnv("WANDB_PROJECT") ?? "vit-lora",
    entity: readEnv("WANDB_ENTITY"),
    name: init.name,
    config: init.config,
  });
  // The SDK ends the process on Ctrl-C; the trainer saves a checkpoint first, then finishes
  // the W&B run itself.
  process.removeAllListeners("SIGINT");
  let step = 0;
  return {
    url: (run as unknown as { url?: string }).url,
    step(e) {
      step = e.step;
      wandb.log({
        "train/loss": e.loss,
        "train/learning_rate": e.lr,
        "train/grad_norm": e.grad_norm,
        "train/images_per_s": e.images_per_s,
        "train/epoch": e.epoch,
      }, e.step);
    },
    eval(e) {
      wandb.log({
        [`${e.split}/loss`]: e.loss,
        [`${e.split}/accuracy`]: e.accuracy,
        [`${e.split}/top5`]: e.top5,
        "train/epoch": e.epoch,
      }, step);
    },
    finish: () => wandb.finish(),
  };
}

/**
 * Starts the trackers `reportTo` names (`wandb`; `none` or nothing: none). W&B without
 * `WANDB_API_KEY` is skipped with a warning through `warn`.
 */
export async function startTrackers(
  reportTo: readonly string[],
  init: { name: string; config: unknown; warn: (line: string) => void },
): Promise<Tracker[]> {
  const trackers: Tracker[] = [];
  for (const name of reportTo) {
    if (name === "none") continue;
    if (name !== "wandb") {
      throw new VitLoraError(
        `--report-to: unknown tracker "${name}" (known: ${TRACKERS.join(", ")})`,
      );
    }
    if (!readEnv("WANDB_API_KEY")) {
      init.warn("warning: --report-to wandb: WANDB_API_KEY is not set, so nothing goes to W&B");
      continue;
    }
    const tracker = await wandbTracker(init);
    if (tracker.url) init.warn(`W&B run: ${tracker.url}`);
    trackers.push(tracker);
  }
  return trackers;
}
