/**
 * `deno task predict --run RUN IMAGE…` (files, folders, `-` for standard input): the top
 * classes of each image with probabilities, as a table or `--json`. A file that is missing or
 * not an image gets one line; the others are still classified, and the exit status is 1.
 *
 * @module
 */

import { parseBackendName, predict } from "../mod.ts";
import { formatPredictions } from "../src/eval/predict.ts";
import { countFlag, parseFlags, runTask } from "./cli.ts";

const HELP = `Classify images with a fine-tuned model.

usage: deno task predict --run RUN IMAGE… [--top-k K] [--json]
       deno task predict --model ID|DIR --adapter ID|DIR IMAGE…

  IMAGE          a JPEG, PNG or TIFF file, a folder of them, or - for standard input
  --run RUN      a training run: its base model and best adapter
  --model, --adapter   without a run
  --top-k K      classes per image (default 5)
  --json         print JSON
  --backend B    webgpu, wasm or cpu (default: webgpu on a GPU, else wasm)
  -h, --help     this text`;

if (import.meta.main) {
  await runTask(async () => {
    const { values, positionals } = parseFlags({
      args: Deno.args,
      allowPositionals: true,
      options: {
        run: { type: "string" },
        model: { type: "string" },
        adapter: { type: "string" },
        "top-k": { type: "string" },
        json: { type: "boolean" },
        backend: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }, HELP);
    const results = await predict({
      inputs: positionals,
      run: values.run,
      model: values.model,
      adapter: values.adapter,
      topK: countFlag("top-k", values["top-k"], 1),
      backend: values.backend ? parseBackendName(values.backend) : undefined,
    });
    console.log(values.json ? JSON.stringify(results, null, 2) : formatPredictions(results));
    const failed = results.filter((r) => r.error);
    for (const r of failed) console.error(`error: ${r.source}: ${r.error}`);
    Deno.exit(failed.length > 0 ? 1 : 0);
  });
}
