/**
 * `deno task demo`: the whole loop on an offline default, in well under a minute.
 *
 * Builds a small ViT in memory (random weights: no download), generates a labelled set of
 * striped images (three visually distinct classes), fine-tunes LoRA on query/value plus the
 * classifier, reports accuracy before and after, saves the adapter in PEFT's format and a
 * merged transformers checkpoint, and checks that both read back to the same predictions.
 *
 * Until the training pipeline lands (Food101 parquet → decode → augment), the optimiser here
 * is tfjs's Adam over the classifier's own gradients.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import {
  type BackendName,
  createClassifier,
  loadClassifier,
  parseBackendName,
  parseViTConfig,
  type Tensor1D,
  type Tensor4D,
  tf,
  type ViTClassifier,
  VitLoraError,
} from "../mod.ts";

const CLASSES = ["horizontal_stripes", "vertical_stripes", "checkerboard"];
const SIZE = 32;

/** Random images of the three classes, normalised NCHW, with their labels. */
function makeImages(count: number, seed: number): { pixels: Tensor4D; labels: Tensor1D } {
  let s = seed >>> 0;
  const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const data = new Float32Array(count * 3 * SIZE * SIZE);
  const labels = new Int32Array(count);
  for (let n = 0; n < count; n++) {
    const label = n % CLASSES.length;
    labels[n] = label;
    const period = 4 + Math.floor(rand() * 5), phase = Math.floor(rand() * period);
    const tint = [rand(), rand(), rand()];
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const h = Math.floor((y + phase) / (period / 2)) % 2;
        const v = Math.floor((x + phase) / (period / 2)) % 2;
        const on = label === 0 ? h : label === 1 ? v : h ^ v;
        for (let c = 0; c < 3; c++) {
          const value = on * (0.5 + 0.5 * tint[c]) + 0.15 * (rand() - 0.5); // [0, 1]
          data[((n * 3 + c) * SIZE + y) * SIZE + x] = (value - 0.5) / 0.5; // mean/std 0.5
        }
      }
    }
  }
  return {
    pixels: tf.tensor4d(data, [count, 3, SIZE, SIZE]),
    labels: tf.tensor1d(labels, "int32"),
  };
}

async function accuracy(clf: ViTClassifier, pixels: Tensor4D, labels: Tensor1D): Promise<number> {
  const predicted = tf.tidy(() => clf.logits(pixels).argMax(1));
  const correct = tf.tidy(() => predicted.equal(labels).sum());
  const value = (await correct.data())[0] / labels.size;
  tf.dispose([predicted, correct]);
  return value;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      backend: { type: "string" },
      out: { type: "string", default: "demo-output" },
      steps: { type: "string", default: "40" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log("usage: deno task demo [--backend webgpu|cpu] [--out DIR] [--steps N]");
    return;
  }
  const backend: BackendName | undefined = values.backend
    ? parseBackendName(values.backend)
    : undefined;
  const steps = Number(values.steps);
  if (!Number.isSafeInteger(steps) || steps < 1) {
    throw new VitLoraError(`--steps: expected a positive integer, not '${values.steps}'`);
  }
  const started = performance.now();

  const config = parseViTConfig({
    hidden_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    intermediate_size: 128,
    image_size: SIZE,
    patch_size: 8,
  });
  const clf = await createClassifier(config, {
    labels: CLASSES,
    lora: { r: 8, alpha: 16, dropout: 0.1, targetModules: ["query", "value"] },
    backend,
    seed: 42,
  });
  const { trainable, total } = clf.parameterCount();
  console.log(
    `model: ViT hidden 64, 2 layers, ${SIZE}×${SIZE} patches of 8, ${CLASSES.length} classes; ` +
      `LoRA r 8 on query/value: ${trainable.toLocaleString("en")} trainable of ` +
      `${total.toLocaleString("en")} (${(100 * trainable / total).toFixed(2)}%)`,
  );

  const train = makeImages(96, 1);
  const test = makeImages(48, 2);
  console.log(
    `accuracy before fine-tuning: ${
      (100 * await accuracy(clf, test.pixels, test.labels)).toFixed(1)
    }%`,
  );

  const optimizer = tf.train.adam(1e-2);
  const batch = 24;
  for (let step = 0; step < steps; step++) {
    const from = (step * batch) % 96;
    const x = train.pixels.slice([from, 0, 0, 0], [batch, 3, SIZE, SIZE]);
    const y = train.labels.slice([from], [batch]);
    const { loss, grads } = clf.lossAndGradients(x, y, { training: true });
    const vars = clf.trainableVariables();
    optimizer.applyGradients(
      Object.keys(grads).map((k) => ({ name: vars[k].name, tensor: grads[k] })),
    );
    if (step % 10 === 0 || step === steps - 1) {
      console.log(
        `step ${String(step + 1).padStart(3)}  loss ${(await loss.data())[0].toFixed(4)}`,
      );
    }
    tf.dispose([x, y, loss, ...Object.values(grads)]);
  }
  optimizer.dispose();
  const after = await accuracy(clf, test.pixels, test.labels);
  console.log(`accuracy after fine-tuning:  ${(100 * after).toFixed(1)}% on 48 held-out images`);

  const adapterDir = join(values.out!, "adapter"), mergedDir = join(values.out!, "merged");
  await clf.saveAdapter(adapterDir);
  await clf.saveMerged(mergedDir);
  const merged = await loadClassifier(mergedDir, { backend });
  const sample = test.pixels.slice([0, 0, 0, 0], [3, 3, SIZE, SIZE]);
  const probs = tf.tidy(() => tf.softmax(merged.logits(sample)));
  const p = await probs.data();
  for (let i = 0; i < 3; i++) {
    const row = Array.from(p.slice(i * 3, i * 3 + 3));
    const best = row.indexOf(Math.max(...row));
    console.log(
      `image ${i} (a ${CLASSES[i]}): ${merged.labels[best]} ${(100 * row[best]).toFixed(1)}%`,
    );
  }
  const mergedAccuracy = await accuracy(merged, test.pixels, test.labels);
  if (mergedAccuracy !== after) {
    throw new Error(`the merged checkpoint disagrees: ${mergedAccuracy} vs ${after}`);
  }
  tf.dispose([sample, probs, train.pixels, train.labels, test.pixels, test.labels]);
  merged.dispose();
  clf.dispose();
  console.log(`saved: ${adapterDir}/ (PEFT adapter), ${mergedDir}/ (transformers checkpoint)`);
  console.log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    if (e instanceof VitLoraError) {
      console.error(`error: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  }
}
