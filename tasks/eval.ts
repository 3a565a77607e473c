/**
 * `deno task eval --run RUN [--split test|validation] [--checkpoint best|epoch-N]`, or
 * `deno task eval --model M --adapter A --data D`: accuracy, top-5, macro F1, per-class
 * accuracy and the confusion matrix on the held-out split; with a run, also written to
 * `RUN/eval-<split>.json`. `--shard i/n` evaluates one shard of the split (to
 * `RUN/eval-<split>.shard-<i>-of-<n>.json`); `--merge RUN` makes `RUN/eval-<split>.json` from
 * all shards.
 *
 * @module
 */

import { evaluate, VitLoraError } from "../mod.ts";
import type { OptionSchema } from "../src/core/options.ts";
import { formatEvalReport } from "../src/eval/evaluate.ts";
import { mergeEvalShards } from "../src/eval/merge.ts";
import { EVAL_OPTIONS } from "../src/eval/options.ts";
import { evalShardPath, parseShard, shardLabel } from "../src/eval/shard.ts";
import { type Command, parseCommand, runTask } from "./cli.ts";

/** `deno task eval`'s own options. */
export const EVAL_TASK_OPTIONS = {
  /** Merge a run's shard files into `RUN/eval-<split>.json`. */
  merge: {
    kind: "string",
    flag: "merge",
    arg: "RUN",
    help: "check RUN's shard files (all there, once each, same n, same adapter)\n" +
      "and write RUN/eval-<split>.json from them, the same report as one\n" +
      "process gives (only images/s, a timing, differs)",
    section: "run",
  },
  /** Print the whole report as JSON. */
  json: { kind: "boolean", flag: "json", help: "print the whole report as JSON", section: "run" },
} as const satisfies OptionSchema;

/** `deno task eval`: its help and flags, from the option tables. */
export const EVAL_COMMAND: Command<typeof EVAL_OPTIONS & typeof EVAL_TASK_OPTIONS> = {
  summary: "Evaluate a fine-tuned classifier on the held-out split.",
  usage: [
    "deno task eval --run RUN [--split test|validation] [--checkpoint best|epoch-N]",
    "deno task eval --model ID|DIR --adapter ID|DIR --data ID|DIR [--split …]",
    "deno task eval --run RUN --shard i/n [...]     one shard of the split",
    "deno task eval --merge RUN [--split S]         all shards into RUN/eval-<split>.json",
  ],
  schema: { ...EVAL_OPTIONS, ...EVAL_TASK_OPTIONS },
};

if (import.meta.main) {
  await runTask(async () => {
    const { values } = parseCommand(EVAL_COMMAND, Deno.args);
    const { merge, json, ...options } = values;
    const print = (report: Parameters<typeof formatEvalReport>[0]) =>
      console.log(json ? JSON.stringify(report, null, 2) : formatEvalReport(report));
    if (merge !== undefined) {
      const others = ["run", "shard", "checkpoint", "model", "adapter", "data"] as const;
      const given = others.filter((k) => options[k] !== undefined);
      if (given.length > 0) {
        throw new VitLoraError(
          `--merge takes a run folder and --split only, not --${EVAL_OPTIONS[given[0]].flag}`,
        );
      }
      const { files, ...report } = await mergeEvalShards({ run: merge, split: options.split });
      print(report);
      console.error(
        `written: ${merge}/eval-${report.split}.json (merged from ${files.length} shards)`,
      );
      return;
    }
    const shard = options.shard === undefined ? undefined : parseShard(options.shard);
    const report = await evaluate({ ...options, shard });
    if (shard && report.count === 0 && !json) {
      console.log(
        `${shardLabel(shard)}: no images (more shards than batches, or none could be decoded)`,
      );
    } else {
      if (shard && !json) console.log(`${shardLabel(shard)}:`);
      print(report);
    }
    if (options.run) {
      const written = shard
        ? evalShardPath(options.run, report.split, shard)
        : `${options.run}/eval-${report.split}.json`;
      console.error(`written: ${written}`);
    }
  });
}
