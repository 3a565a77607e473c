/**
 * A classifier as plain data (configs, labels, every tensor's values), and an equal copy built
 * from it: what a worker receives to run a replica of the model (see `replicas.ts`).
 *
 * @module
 */

import { type Tensor, type Tensor1D, type Tensor2D, tf } from "../core/tf.ts";
import { linearModules, type PreprocessorConfig, type ViTConfig } from "../model/config.ts";
import type { ViTClassifier } from "../model/classifier.ts";
import { type Adapter, assemble, type Parts } from "../model/assembly.ts";
import { type LoraConfig, loraTargets } from "../model/lora.ts";
import { parsePeftKey, PEFT_CLASSIFIER_KEYS, type PeftFormat } from "../model/peft_format.ts";
import { type Float32TensorData, tensorData } from "../model/safetensors.ts";

/**
 * A classifier as plain data, from which {@link classifierFromSnapshot} builds an equal copy.
 */
export interface ClassifierSnapshot {
  /** {@link ViTClassifier.config}. */
  config: ViTConfig;
  /** {@link ViTClassifier.preprocessor}. */
  preprocessor: PreprocessorConfig;
  /** {@link ViTClassifier.labels}. */
  labels: string[];
  /** {@link ViTClassifier.lora}. */
  lora: LoraConfig | undefined;
  /** {@link ViTClassifier.peftFormat}. */
  peftFormat: PeftFormat;
  /** {@link ViTClassifier.baseModel}. */
  baseModel: string;
  /** The frozen encoder tensors, by `ViTModel` name (linear weights `[in, out]`). */
  encoder: Record<string, Float32TensorData>;
  /** The trainable tensors, by PEFT name (see {@link ViTClassifier.trainableVariables}). */
  trainable: Record<string, Float32TensorData>;
}

/**
 * Reads every tensor of `clf` into a {@link ClassifierSnapshot}.
 *
 * @example
 * ```ts ignore
 * import type { ViTClassifier } from "@lora/vit";
 * import { classifierFromSnapshot, snapshotClassifier } from "./snapshot.ts";
 * declare const clf: ViTClassifier;
 *
 * const snapshot = await snapshotClassifier(clf); // plain data: post it to a worker
 * const copy = classifierFromSnapshot(snapshot); // there (or here): an equal model
 * ```
 */
export async function snapshotClassifier(clf: ViTClassifier): Promise<ClassifierSnapshot> {
  const read = async (entries: Iterable<[string, Tensor]>) => {
    const out: Record<string, Float32TensorData> = {};
    for (const [name, t] of entries) {
      out[name] = await tensorData(t);
    }
    return out;
  };
  return {
    config: clf.config,
    preprocessor: clf.preprocessor,
    labels: clf.labels,
    lora: clf.lora,
    peftFormat: clf.peftFormat,
    baseModel: clf.baseModel,
    encoder: await read(clf.vit.tensors()),
    trainable: await read(Object.entries(clf.trainableVariables())),
  };
}

/**
 * Builds a classifier equal to the one `snapshot` was read from, on the current backend.
 *
 * @example
 * ```ts ignore
 * import { parentPort } from "node:worker_threads";
 * import { classifierFromSnapshot, type ClassifierSnapshot } from "./snapshot.ts";
 *
 * // in a worker, to which the host posted `await snapshotClassifier(clf)`:
 * parentPort!.once("message", (snapshot: ClassifierSnapshot) => {
 *   const clf = classifierFromSnapshot(snapshot);
 *   console.log(clf.labels);
 * });
 * ```
 */
export function classifierFromSnapshot(snapshot: ClassifierSnapshot): ViTClassifier {
  const tensor = ({ shape, data }: Float32TensorData) => tf.tensor(data, [...shape], "float32");
  const trainable = new Map(
    Object.entries(snapshot.trainable).map(([k, v]) => [k, tensor(v)] as [string, Tensor]),
  );
  const parts: Parts = {
    config: snapshot.config,
    preprocessor: snapshot.preprocessor,
    baseModel: snapshot.baseModel,
    encoder: (name) => tensor(snapshot.encoder[name]),
  };
  const options = {
    labels: snapshot.labels,
    peftFormat: snapshot.peftFormat,
    replicas: 0, // a replica starts none of its own
  };
  const head = {
    weight: trainable.get(PEFT_CLASSIFIER_KEYS.weight) as Tensor2D,
    bias: trainable.get(PEFT_CLASSIFIER_KEYS.bias) as Tensor1D,
  };
  if (!snapshot.lora) {
    parts.head = { ...head, source: "(snapshot)" };
    return assemble(parts, undefined, options);
  }
  const lora = new Map<string, { A: Tensor2D; B: Tensor2D }>();
  for (const [key, t] of trainable) {
    const k = parsePeftKey(key);
    if (k.kind !== "lora") continue;
    const entry = lora.get(k.module) ?? {} as { A: Tensor2D; B: Tensor2D };
    entry[k.which === "lora_A" ? "A" : "B"] = t as Tensor2D;
    lora.set(k.module, entry);
  }
  const adapter: Adapter = {
    config: snapshot.lora,
    format: snapshot.peftFormat,
    targets: loraTargets(snapshot.lora, linearModules(snapshot.config), snapshot.peftFormat),
    lora,
    head,
    source: "(snapshot)",
  };
  try {
    return assemble(parts, adapter, options);
  } finally {
    tf.dispose([...trainable.values()]);
  }
}
