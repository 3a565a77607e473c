/**
 * `deno task demo`: the whole mission on an offline default, in about a minute.
 *
 * Generates a small labelled image dataset in the Hub's parquet layout (JPEGs of four
 * patterns), builds a small ViT with random weights in memory and saves it as a base model
 * in Hugging Face layout (no download), fine-tunes LoRA on query/value and the classifier with
 * the same `train()` as the real Food-101 run (the same data pipeline, AdamW, schedule,
 * checkpoints, evaluation on the test split, the run report), then loads the best adapter
 * back, classifies a few images and saves a merged transformers checkpoint that reads back to
 * the same predictions.
 *
 * @module
 */

import { join } from "node:path";
import {
  createClassifier,
  loadClassifier,
  parseViTConfig,
  reportCallback,
  tf,
  train,
} from "../mod.ts";
import { openParquetDataset } from "../src/data/parquet.ts";
import { prepareImage } from "../src/data/prepare.ts";
import { epochRows } from "../src/data/sampler.ts";
import { writeSyntheticDataset } from "../src/data/synthetic.ts";
import type { Tensor4D } from "../src/core/tf.ts";
import { type OptionSchema, withDefaults } from "../src/core/options.ts";
import { SHARED_OPTIONS, TRAIN_CONFIG_OPTIONS } from "../src/runs/config.ts";
import { type Command, parseCommand, runTask } from "./cli.ts";

/** The demo's base model: a small ViT (the web page's demo model too). */
export const DEMO_CONFIG = {
  hidden_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  intermediate_size: 128,
  image_size: 32,
  patch_size: 8,
};

/** The options of `deno task demo`. */
export const DEMO_OPTIONS = {
  /** The tfjs backend. */
  backend: SHARED_OPTIONS.backend,
  /** Where everything goes. */
  out: {
    kind: "string",
    flag: "out",
    arg: "DIR",
    default: "demo-output",
    help: "where the data, model, run and report go (emptied first)",
  },
  /** Passes over the demo data. */
  epochs: { ...TRAIN_CONFIG_OPTIONS.epochs, default: 4 },
} as const satisfies OptionSchema;

/** `deno task demo`: its help and flags. */
export const DEMO_COMMAND: Command<typeof DEMO_OPTIONS> = {
  summary: "The whole job offline: generated data, a small ViT, LoRA training, the report.",
  usage: ["deno task demo [--backend webgpu|wasm|cpu] [--out DIR] [--epochs N]"],
  schema: DEMO_OPTIONS,
};

async function main(): Promise<void> {
  const { values } = parseCommand(DEMO_COMMAND, Deno.args);
  const { backend, epochs, out } = withDefaults(DEMO_OPTIONS, values);
  const started = performance.now();
  await Deno.remove(out, { recursive: true }).catch(() => {});

  // 1. data: a generated dataset in the Hub's parquet layout
  const dataDir = join(out, "data");
  const data = await writeSyntheticDataset(dataDir, {
    classes: 4,
    trainPerClass: 32,
    validationPerClass: 12,
  });
  console.log(
    `data: ${data.train} training and ${data.validation} validation JPEGs (48×40) of ` +
      `${data.labels.join(", ")} in ${dataDir}/data/*.parquet`,
  );

  // 2. a base model: a small ViT with random weights, saved in Hugging Face layout
  const modelDir = join(out, "base-model");
  const config = parseViTConfig(DEMO_CONFIG);
  const base = await createClassifier(config, { labels: data.labels, backend, seed: 42 });
  await base.saveMerged(modelDir);
  base.dispose();

  // 3. fine-tuning, through the same train() as the real run
  const runDir = join(out, "run");
  const result = await train({
    model: modelDir,
    data: dataDir,
    out: runDir,
    epochs,
    batchSize: 16,
    gradAccum: 1,
    lr: 5e-3,
    loraR: 8,
    loraAlpha: 16,
    backend,
    callbacks: [reportCallback({ screenshot: true })],
  });

  // 4. the best adapter back, on a few validation images
  const clf = await loadClassifier(modelDir, { adapter: join(runDir, "best"), backend });
  const dataset = await openParquetDataset(dataDir);
  const spec = clf.transformSpec();
  const rows = [];
  for await (const row of epochRows(dataset, "validation")) {
    rows.push(row);
    if (rows.length === 4) break;
  }
  const pixels = new Float32Array(rows.length * 3 * 32 * 32);
  for (const [i, row] of rows.entries()) {
    pixels.set(await prepareImage(row.bytes, spec), i * 3 * 32 * 32);
  }
  const x = tf.tensor4d(pixels, [rows.length, 3, 32, 32]) as Tensor4D;
  const probs = tf.tidy(() => tf.softmax(clf.logits(x)));
  const p = await probs.data();
  const k = clf.labels.length;
  for (const [i, row] of rows.entries()) {
    const scores = Array.from(p.slice(i * k, (i + 1) * k));
    const best = scores.indexOf(Math.max(...scores));
    console.log(
      `  ${row.file.split("/").at(-1)} row ${row.row} (a ${clf.labels[row.label]}): ` +
        `${clf.labels[best]} ${(100 * scores[best]).toFixed(1)}%`,
    );
  }

  // 5. a merged transformers checkpoint, which must predict the same
  const mergedDir = join(out, "merged");
  await clf.saveMerged(mergedDir);
  const merged = await loadClassifier(mergedDir, { backend });
  const same = tf.tidy(() => merged.logits(x).argMax(1).equal(clf.logits(x).argMax(1)).all());
  if (!(await same.data())[0]) throw new Error("the merged checkpoint predicts differently");
  tf.dispose([x, probs, same]);
  merged.dispose();
  clf.dispose();

  console.log(
    `\nadapter (PEFT): ${join(runDir, "best")}/  merged (transformers): ${mergedDir}/  ` +
      `run: ${runDir}/ (metrics.jsonl, checkpoints/)`,
  );
  console.log(`report: ${join(result.runDir, "report.html")}`);
  console.log(`demo done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  console.log(
    "the real run (ViT-B/16 and Food-101 from the Hugging Face Hub, the reference recipe; a GPU helps):\n" +
      "  deno task train",
  );
}

if (import.meta.main) await runTask(main);
