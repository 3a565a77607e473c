/**
 * `deno task train`: fine-tunes a ViT with LoRA on a parquet image dataset, with the
 * reference recipe's defaults (ViT-B/16 in21k, Food-101, r 32, alpha 16, lr 5e-3, batch 64 ×
 * 4, 5 epochs). Run `deno task train --help` for the flags, which come from the option table
 * (`TRAIN_OPTIONS`) as `train()`'s defaults and checks do.
 *
 * Ctrl-C finishes the optimizer step in progress, saves a checkpoint and exits; `--resume RUN`
 * continues from it. A second Ctrl-C exits at once.
 *
 * @module
 */

import type { ParseArgsConfig } from "node:util";
import {
  hubSettings,
  parseBackendName,
  pushCallback,
  reportCallback,
  trackingCallback,
  train,
  type TrainerCallback,
  type TrainOptions,
  VitLoraError,
} from "../mod.ts";
import { optionFromFlag, optionsHelp, TRAIN_OPTIONS } from "../src/runs/config.ts";
import { parseFlags, runTask } from "./cli.ts";

const HELP =
  `Fine-tune a ViT with LoRA on an image-classification dataset in the Hub's parquet layout.

usage: deno task train [flags]

data and model
${optionsHelp("data and model")}

recipe (defaults: the reference run)
${optionsHelp("recipe")}

run
${optionsHelp("run")}
  --report-to wandb     also stream metrics to Weights & Biases (needs WANDB_API_KEY)
  --push-to-hub         upload the best adapter to the Hub at the end (deno task push)
  --hub-repo owner/name the repository for --push-to-hub (default: see deno task push --help)
  -h, --help            this text
`;

/** What the command line asks for: `train()`'s options and the task's own. */
export interface TrainArgs extends TrainOptions {
  /** `-h`/`--help`. */
  help?: boolean;
  /** `--push-to-hub`. */
  pushToHub?: boolean;
  /** `--hub-repo`. */
  hubRepo?: string;
  /** `--report-to`: trackers to stream metrics to. */
  reportTo?: string[];
}

/** Parses the command line into `train()`'s options (see {@link TRAIN_OPTIONS}). */
export function parseTrainArgs(args: string[]): TrainArgs {
  const options: NonNullable<ParseArgsConfig["options"]> = {
    "push-to-hub": { type: "boolean" },
    "report-to": { type: "string" },
    "hub-repo": { type: "string" },
    help: { type: "boolean", short: "h" },
  };
  for (const spec of TRAIN_OPTIONS) {
    options[spec.flag] = { type: spec.kind === "boolean" ? "boolean" : "string" };
  }
  const { values } = parseFlags({ args, allowNegative: true, options });
  const v = values as Record<string, string | boolean | undefined>;
  const out: Record<string, unknown> = {};
  for (const spec of TRAIN_OPTIONS) out[spec.key] = optionFromFlag(spec, v[spec.flag]);
  if (typeof out.backend === "string") out.backend = parseBackendName(out.backend);
  return {
    ...out as TrainOptions,
    help: v.help as boolean | undefined,
    pushToHub: v["push-to-hub"] as boolean | undefined,
    hubRepo: v["hub-repo"] as string | undefined,
    reportTo: (v["report-to"] as string | undefined)?.split(",").map((s) => s.trim())
      .filter(Boolean),
  };
}

if (import.meta.main) {
  await runTask(async () => {
    const { help, pushToHub, hubRepo, reportTo, ...options } = parseTrainArgs(Deno.args);
    if (help) {
      console.log(HELP);
      Deno.exit(0);
    }
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
