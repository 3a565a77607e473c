/**
 * `deno task train`: fine-tunes a ViT with LoRA on a parquet image dataset, with the
 * reference recipe's defaults (ViT-B/16 in21k, Food-101, r 32, alpha 16, lr 5e-3, batch 64 ×
 * 4, 5 epochs). Run `deno task train --help` for the flags, which come from the option tables
 * (`TRAIN_CONFIG_OPTIONS`, `TRAIN_RUN_OPTIONS`) as `train()`'s defaults and checks do.
 *
 * Ctrl-C finishes the optimizer step in progress, saves a checkpoint and exits; `--resume RUN`
 * continues from it. A second Ctrl-C exits at once.
 *
 * @module
 */

import {
  pushCallback,
  reportCallback,
  trackingCallback,
  train,
  type TrainerCallback,
  VitLoraError,
} from "../mod.ts";
import type { OptionSchema } from "../src/core/options.ts";
import { hubSettings } from "../src/hub/settings.ts";
import { TRAIN_CONFIG_OPTIONS, TRAIN_RUN_OPTIONS } from "../src/runs/config.ts";
import { type Command, parseCommand, runTask } from "./cli.ts";

/** The options of `deno task train` that are the task's own, not `train()`'s. */
export const TRAIN_TASK_OPTIONS = {
  /** Trackers to stream metrics to. */
  reportTo: {
    kind: "list",
    choices: ["wandb"],
    flag: "report-to",
    arg: "wandb",
    help: "also stream metrics to Weights & Biases (needs WANDB_API_KEY)",
    section: "run",
  },
  /** Upload the best adapter to the Hub at the end. */
  pushToHub: {
    kind: "boolean",
    flag: "push-to-hub",
    help: "upload the best adapter to the Hub at the end (deno task push)",
    section: "run",
  },
  /** The repository of `pushToHub`. */
  hubRepo: {
    kind: "string",
    flag: "hub-repo",
    arg: "owner/name",
    defaultText: "see deno task push --help",
    help: "the repository for --push-to-hub",
    section: "run",
  },
} as const satisfies OptionSchema;

/** `deno task train`: its help and flags, from the option tables. */
export const TRAIN_COMMAND: Command<
  typeof TRAIN_CONFIG_OPTIONS & typeof TRAIN_RUN_OPTIONS & typeof TRAIN_TASK_OPTIONS
> = {
  summary: "Fine-tune a ViT with LoRA on your images: an image folder, parquet shards or a " +
    "Hub dataset.",
  usage: ["deno task train [flags]"],
  schema: { ...TRAIN_CONFIG_OPTIONS, ...TRAIN_RUN_OPTIONS, ...TRAIN_TASK_OPTIONS },
};

/** Parses the command line into `train()`'s options and the task's own. */
export function parseTrainArgs(args: string[]): ReturnType<
  typeof parseCommand<
    typeof TRAIN_COMMAND.schema
  >
>["values"] {
  return parseCommand(TRAIN_COMMAND, args).values;
}

if (import.meta.main) {
  await runTask(async () => {
    const { pushToHub, hubRepo, reportTo, ...options } = parseTrainArgs(Deno.args);
    if (pushToHub) {
      // fail now, not after hours of training
      const hub = hubSettings();
      if (hub.offline) throw new VitLoraError("--push-to-hub: HF_HUB_OFFLINE=1 forbids uploading");
      if (!hub.token) {
        throw new VitLoraError(
          "--push-to-hub needs a token with write access: set HF_TOKEN (https://huggingface.co/settings/tokens)",
        );
      }
    }
    const callbacks: TrainerCallback[] = [reportCallback({ screenshot: true })];
    if (reportTo?.length) callbacks.push(trackingCallback(reportTo));
    if (pushToHub) callbacks.push(pushCallback({ repo: hubRepo }));
    const stop = new AbortController();
    const onInterrupt = () => {
      if (stop.signal.aborted) Deno.exit(130);
      console.error("\nstopping after this step to save a checkpoint (Ctrl-C again to quit now)");
      stop.abort();
    };
    Deno.addSignalListener("SIGINT", onInterrupt);
    const result = await train({ ...options, signal: stop.signal, callbacks });
    Deno.removeSignalListener("SIGINT", onInterrupt);
    Deno.exit(result.interrupted ? 130 : 0);
  });
}
