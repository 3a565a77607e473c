/**
 * `deno task push --run RUN [--repo owner/name] [--private] [--merged]`: uploads a run's best
 * adapter, its metrics and configuration and a model card to the Hugging Face Hub in one
 * commit (see `pushRun`). Needs `HF_TOKEN` with write access; `HF_ENDPOINT` picks another Hub.
 *
 * @module
 */

import { parsePeftFormat, pushRun, VitLoraError } from "../mod.ts";
import { parseFlags, runTask } from "./cli.ts";

const HELP = `Upload a training run's best adapter to the Hugging Face Hub.

usage: deno task push --run RUN [--repo owner/name] [--private] [--merged] [--peft-format F]

  --run RUN          the run folder (deno task train --out)
  --repo owner/name  the repository (default: <you>/<model>-l<lr>_b<batch>_e<epochs>_finetuned-lora-<data>-<time>)
  --private          make a new repository private
  --merged           also upload the merged transformers checkpoint, under merged/
  --peft-format F    the adapter's naming: transformers-5 (PEFT on transformers 5) or
                     transformers-4 (PEFT on transformers 4.x); default: the run's own
  -h, --help         this text

HF_TOKEN must hold a token with write access; HF_ENDPOINT points at another Hub.`;

if (import.meta.main) {
  await runTask(async () => {
    const { values } = parseFlags({
      args: Deno.args,
      options: {
        run: { type: "string" },
        repo: { type: "string" },
        private: { type: "boolean" },
        merged: { type: "boolean" },
        "peft-format": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }, HELP);
    if (!values.run) throw new VitLoraError("--run RUN is required (see --help)");
    const result = await pushRun({
      run: values.run,
      repo: values.repo,
      private: values.private,
      merged: values.merged,
      peftFormat: values["peft-format"] === undefined
        ? undefined
        : parsePeftFormat(values["peft-format"]),
    });
    console.log(`pushed ${result.files.join(", ")} to ${result.url} (commit ${result.commit})`);
  });
}
