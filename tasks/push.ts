/**
 * `deno task push --run RUN [--repo owner/name] [--private] [--merged]`: uploads a run's best
 * adapter, its metrics and configuration and a model card to the Hugging Face Hub in one
 * commit (see `pushRun`). Needs `HF_TOKEN` with write access; `HF_ENDPOINT` picks another Hub.
 *
 * @module
 */

import { pushRun, VitLoraError } from "../mod.ts";
import type { OptionSchema } from "../src/core/options.ts";
import { SHARED_OPTIONS, TRAIN_CONFIG_OPTIONS } from "../src/runs/config.ts";
import { type Command, parseCommand, runTask } from "./cli.ts";

/** The options of `deno task push` (and of `pushRun`, besides the Hub settings). */
export const PUSH_OPTIONS = {
  /** The run folder. */
  run: { ...SHARED_OPTIONS.run, help: "the run folder (deno task train --out)" },
  /** The repository. */
  repo: {
    kind: "string",
    flag: "repo",
    arg: "owner/name",
    defaultText: "<you>/<model>-l<lr>_b<batch>_e<epochs>_finetuned-lora-<data>-<time>",
    help: "the repository",
  },
  /** Make a new repository private. */
  private: { kind: "boolean", flag: "private", help: "make a new repository private" },
  /** Also upload the merged transformers checkpoint. */
  merged: {
    kind: "boolean",
    flag: "merged",
    help: "also upload the merged transformers checkpoint, under merged/",
  },
  /** The adapter's naming (default: the run's own). */
  peftFormat: {
    ...TRAIN_CONFIG_OPTIONS.peftFormat,
    default: undefined,
    defaultText: "the run's own",
  },
} as const satisfies OptionSchema;

/** `deno task push`: its help and flags. */
export const PUSH_COMMAND: Command<typeof PUSH_OPTIONS> = {
  summary: "Upload a training run's best adapter to the Hugging Face Hub.",
  usage: ["deno task push --run RUN [--repo owner/name] [--private] [--merged] [--peft-format F]"],
  schema: PUSH_OPTIONS,
  notes: "HF_TOKEN must hold a token with write access; HF_ENDPOINT points at another Hub.",
};

if (import.meta.main) {
  await runTask(async () => {
    const { values } = parseCommand(PUSH_COMMAND, Deno.args);
    const run = requireRun(values.run);
    const result = await pushRun({ ...values, run });
    console.log(`pushed ${result.files.join(", ")} to ${result.url} (commit ${result.commit})`);
  });
}

function requireRun(run: string | undefined): string {
  if (!run) throw new VitLoraError("--run RUN is required (see --help)");
  return run;
}
