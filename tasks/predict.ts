/**
 * `deno task predict --run RUN IMAGE…` (files, folders, `-` for standard input): the top
 * classes of each image with probabilities, as a table or `--json`. A file that is missing or
 * not an image gets one line; the others are still classified, and the exit status is 1.
 * `--shard i/n --out FILE` classifies one shard of the files into a JSON lines file;
 * `--merge FILE|DIR…` gives what one process would have printed, from all shards' files.
 *
 * @module
 */

import { parseBackendName, predict, type PredictResult, VitLoraError } from "../mod.ts";
import { formatPredictions, writePredictionLines } from "../src/eval/predict.ts";
import { mergePredictShards } from "../src/eval/merge.ts";
import { countFlag, parseFlags, runTask, shardFlag } from "./cli.ts";

const HELP = `Classify images with a fine-tuned model.

usage: deno task predict --run RUN IMAGE… [--top-k K] [--json]
       deno task predict --model ID|DIR --adapter ID|DIR IMAGE…
       deno task predict --run RUN --shard i/n --out FILE IMAGE…   one shard of the files
       deno task predict --merge FILE|DIR… [--json] [--out FILE]    all shards' results

  IMAGE          a JPEG, PNG or TIFF file, a folder of them, or - for standard input
  --run RUN      a training run: its base model and best adapter
  --model, --adapter   without a run
  --top-k K      classes per image (default 5)
  --json         print JSON
  --shard i/n    classify shard i (0 … n-1) of n only: a contiguous block of the expanded,
                 sorted list of files; auto/n takes i from JOB_COMPLETION_INDEX (Kubernetes
                 Indexed Job) or SLURM_ARRAY_TASK_ID (Slurm array --array=0-<n-1>)
  --out FILE     write the results to FILE as JSON lines (a header line, then one result a
                 line, as they come) instead of printing them; bad files are warnings on
                 stderr and the exit status is 0 (the file holds their errors)
  --merge        the arguments are shard files (or folders of *.jsonl): check them (all
                 there, once each, same n, inputs and adapter) and print the results as one
                 process would (table or --json, errors on stderr, exit status 1 if any);
                 with --out, write them as one JSON lines file instead
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
        shard: { type: "string" },
        out: { type: "string" },
        merge: { type: "boolean" },
        backend: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }, HELP);
    const report = (results: PredictResult[]): never => {
      console.log(values.json ? JSON.stringify(results, null, 2) : formatPredictions(results));
      const failed = results.filter((r) => r.error);
      for (const r of failed) console.error(`error: ${r.source}: ${r.error}`);
      Deno.exit(failed.length > 0 ? 1 : 0);
    };
    if (values.merge) {
      const others = ["run", "model", "adapter", "top-k", "shard", "backend"] as const;
      const given = others.filter((k) => values[k] !== undefined);
      if (given.length > 0) {
        throw new VitLoraError(
          `--merge takes shard files and --json or --out only, not --${given[0]}`,
        );
      }
      const { results, header, files } = await mergePredictShards({ paths: positionals });
      if (values.out === undefined) return report(results);
      await writePredictionLines(values.out, header, results);
      console.error(
        `written: ${values.out} (${results.length} results from ${files.length} shards)`,
      );
      return;
    }
    const shard = shardFlag(values.shard);
    if (shard && values.out === undefined) {
      throw new VitLoraError("--shard needs --out FILE: the shard's results file, for --merge");
    }
    const results = await predict({
      inputs: positionals,
      run: values.run,
      model: values.model,
      adapter: values.adapter,
      topK: countFlag("top-k", values["top-k"], 1),
      backend: values.backend ? parseBackendName(values.backend) : undefined,
      shard,
      out: values.out,
    });
    if (values.out === undefined) return report(results);
    const failed = results.filter((r) => r.error);
    for (const r of failed) console.error(`warning: ${r.source}: ${r.error}`);
    console.error(
      `written: ${values.out} (${results.length} results${
        shard ? `, shard ${shard.index} of ${shard.count}` : ""
      }${failed.length ? `, ${failed.length} with errors` : ""})`,
    );
  });
}
