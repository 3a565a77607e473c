/**
 * `deno task predict --run RUN IMAGE…` (files, folders, `-` for standard input): the top
 * classes of each image with probabilities, as a table or `--json`. A file that is missing or
 * not an image gets one line; the others are still classified, and the exit status is 1.
 * `--shard i/n --out FILE` classifies one shard of the files into a JSON lines file;
 * `--merge FILE|DIR…` gives what one process would have printed, from all shards' files.
 *
 * @module
 */

import { predict, type PredictResult, VitLoraError } from "../mod.ts";
import type { OptionSchema } from "../src/core/options.ts";
import { formatPredictions, writePredictionLines } from "../src/eval/predict.ts";
import { mergePredictShards } from "../src/eval/merge.ts";
import { PREDICT_OPTIONS } from "../src/eval/options.ts";
import { parseShard } from "../src/eval/shard.ts";
import { type Command, parseCommand, runTask } from "./cli.ts";

/** `deno task predict`'s own options. */
export const PREDICT_TASK_OPTIONS = {
  /** Print JSON. */
  json: { kind: "boolean", flag: "json", help: "print JSON", section: "run" },
  /** The arguments are shard files to merge. */
  merge: {
    kind: "boolean",
    flag: "merge",
    help: "the arguments are shard files (or folders of *.jsonl): check them\n" +
      "(all there, once each, same n, inputs and adapter) and print the\n" +
      "results as one process would; with --out, write one JSON lines file",
    section: "run",
  },
} as const satisfies OptionSchema;

/** `deno task predict`: its help and flags, from the option tables. */
export const PREDICT_COMMAND: Command<typeof PREDICT_OPTIONS & typeof PREDICT_TASK_OPTIONS> = {
  summary: "Classify images with a fine-tuned model.",
  usage: [
    "deno task predict --run RUN IMAGE… [--top-k K] [--json]",
    "deno task predict --model ID|DIR --adapter ID|DIR IMAGE…",
    "deno task predict --run RUN --shard i/n --out FILE IMAGE…   one shard of the files",
    "deno task predict --merge FILE|DIR… [--json] [--out FILE]    all shards' results",
  ],
  schema: { ...PREDICT_OPTIONS, ...PREDICT_TASK_OPTIONS },
  notes: "IMAGE: an image file (JPEG, PNG, WebP, GIF, BMP, TIFF), a folder of them, or - for\n" +
    "standard input. A file that cannot be classified gets an error line; the others are\n" +
    "classified, and the exit status is 1 (0 with --out: the file holds the errors).",
  positionals: true,
};

if (import.meta.main) {
  await runTask(async () => {
    const { values, positionals } = parseCommand(PREDICT_COMMAND, Deno.args);
    const { json, merge, ...options } = values;
    const report = (results: PredictResult[]): never => {
      console.log(json ? JSON.stringify(results, null, 2) : formatPredictions(results));
      const failed = results.filter((r) => r.error);
      for (const r of failed) console.error(`error: ${r.source}: ${r.error}`);
      Deno.exit(failed.length > 0 ? 1 : 0);
    };
    if (merge) {
      const others = ["run", "model", "adapter", "topK", "shard", "backend"] as const;
      const given = others.filter((k) => options[k] !== undefined);
      if (given.length > 0) {
        throw new VitLoraError(
          `--merge takes shard files and --json or --out only, not --${
            PREDICT_OPTIONS[given[0]].flag
          }`,
        );
      }
      const { results, header, files } = await mergePredictShards({ paths: positionals });
      if (options.out === undefined) return report(results);
      await writePredictionLines(options.out, header, results);
      console.error(
        `written: ${options.out} (${results.length} results from ${files.length} shards)`,
      );
      return;
    }
    const shard = options.shard === undefined ? undefined : parseShard(options.shard);
    if (shard && options.out === undefined) {
      throw new VitLoraError("--shard needs --out FILE: the shard's results file, for --merge");
    }
    const results = await predict({ ...options, shard, inputs: positionals });
    if (options.out === undefined) return report(results);
    const failed = results.filter((r) => r.error);
    for (const r of failed) console.error(`warning: ${r.source}: ${r.error}`);
    console.error(
      `written: ${options.out} (${results.length} results${
        shard ? `, shard ${shard.index} of ${shard.count}` : ""
      }${failed.length ? `, ${failed.length} with errors` : ""})`,
    );
  });
}
