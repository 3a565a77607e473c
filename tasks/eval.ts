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

import { evaluate, parseBackendName, VitLoraError } from "../mod.ts";
import { formatEvalReport } from "../src/eval/evaluate.ts";
import { mergeEvalShards } from "../src/eval/merge.ts";
import { evalShardPath, shardLabel } from "../src/eval/shard.ts";
import { countFlag, parseFlags, runTask, shardFlag } from "./cli.ts";

const HELP = `Evaluate a fine-tuned classifier on the held-out split.

usage: deno task eval --run RUN [--split test|validation] [--checkpoint best|epoch-N]
       deno task eval --model ID|DIR --adapter ID|DIR --data ID|DIR [--split …]
       deno task eval --run RUN --shard i/n [...]     one shard of the split
       deno task eval --merge RUN [--split S]         all shards into RUN/eval-<split>.json

  --run RUN           a training run: its model, data, split and checkpoints
  --split S           test (default) or validation
  --checkpoint C      best (default), epoch-N, step-N or an adapter folder
  --model, --adapter, --data   without a run (the split is train's: seed 42, 30% test)
  --batch-size N      images a batch (default: the run's, else 64)
  --backend B         webgpu, wasm or cpu (default: webgpu on a GPU, else wasm)
  --workers N         decoding workers (default: cores - 1)
  --replicas N        model copies in workers on wasm (default: one per further core, up
                      to 3, for models of ViT-B's size)
  --shard i/n         evaluate shard i (0 … n-1) of n only: a contiguous block of whole
                      batches of the split, written to RUN/eval-<split>.shard-<i>-of-<n>.json;
                      auto/n takes i from JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or
                      SLURM_ARRAY_TASK_ID (Slurm array --array=0-<n-1>)
  --merge RUN         check RUN's shard files (all there, once each, same n, same adapter)
                      and write RUN/eval-<split>.json from them, the same report as one
                      process gives (only images/s, a timing, differs)
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
        shard: { type: "string" },
        merge: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }, HELP);
    const print = (report: Parameters<typeof formatEvalReport>[0]) =>
      console.log(values.json ? JSON.stringify(report, null, 2) : formatEvalReport(report));
    if (values.merge !== undefined) {
      const others = ["run", "shard", "checkpoint", "model", "adapter", "data"] as const;
      const given = others.filter((k) => values[k] !== undefined);
      if (given.length > 0) {
        throw new VitLoraError(`--merge takes a run folder and --split only, not --${given[0]}`);
      }
      const split = values.split as "test" | "validation" | undefined;
      const { files, ...report } = await mergeEvalShards({ run: values.merge, split });
      print(report);
      console.error(
        `written: ${values.merge}/eval-${report.split}.json (merged from ${files.length} shards)`,
      );
      return;
    }
    const shard = shardFlag(values.shard);
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
      shard,
    });
    if (shard && report.count === 0 && !values.json) {
      console.log(
        `${shardLabel(shard)}: no images (more shards than batches, or none could be decoded)`,
      );
    } else {
      if (shard && !values.json) console.log(`${shardLabel(shard)}:`);
      print(report);
    }
    if (values.run) {
      const written = shard
        ? evalShardPath(values.run, report.split, shard)
        : `${values.run}/eval-${report.split}.json`;
      console.error(`written: ${written}`);
    }
  });
}
