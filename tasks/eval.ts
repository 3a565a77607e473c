/**
 * `deno task eval --run RUN [--split test|validation] [--checkpoint best|epoch-N]`, or
 * `deno task eval --model M --adapter A --data D`: accuracy, top-5, macro F1, per-class
 * accuracy and the confusion matrix on the held-out split; with a run, also written to
 * `RUN/eval-<split>.json`.
 *
 * @module
 */

import { evaluate, parseBackendName } from "../mod.ts";
import { formatEvalReport } from "../src/eval/evaluate.ts";
import { countFlag, parseFlags, runTask } from "./cli.ts";

const HELP = `Evaluate a fine-tuned classifier on the held-out split.

usage: deno task eval --run RUN [--split test|validation] [--checkpoint best|epoch-N]
       deno task eval --model ID|DIR --adapter ID|DIR --data ID|DIR [--split …]

  --run RUN           a training run: its model, data, split and checkpoints
  --split S           test (default) or validation
  --checkpoint C      best (default), epoch-N, step-N or an adapter folder
  --model, --adapter, --data   without a run (the split is train's: seed 42, 30% test)
  --batch-size N      images a batch (default: the run's, else 64)
  --backend B         webgpu, wasm or cpu (default: webgpu on a GPU, else wasm)
  --workers N         decoding workers (default: cores - 1)
  --replicas N        model copies in workers on wasm (default: one per further core, up
                      to 3, for models of ViT-B's size)
  --json              print the whole report as JSON
  -h, --help          this text`;

if (import.meta.main) {
  await runTask(async () => {
    const { values } = parseFlags({
      args: Deno.args,
      options: {
        run: { type: "string" },
        split: { type: "string" },
        checkpoint: { type: "string" },
        model: { type: "string" },
        adapter: { type: "string" },
        data: { type: "string" },
        "batch-size": { type: "string" },
        backend: { type: "string" },
        workers: { type: "string" },
        replicas: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }, HELP);
    const report = await evaluate({
      run: values.run,
      split: values.split as "test" | "validation" | undefined,
      checkpoint: values.checkpoint,
      model: values.model,
      adapter: values.adapter,
      data: values.data,
      batchSize: countFlag("batch-size", values["batch-size"]),
      backend: values.backend ? parseBackendName(values.backend) : undefined,
      workers: countFlag("workers", values.workers),
      replicas: countFlag("replicas", values.replicas),
    });
    console.log(values.json ? JSON.stringify(report, null, 2) : formatEvalReport(report));
    if (values.run) console.error(`written: ${values.run}/eval-${report.split}.json`);
  });
}
