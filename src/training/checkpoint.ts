/**
 * Training checkpoints: a folder with the PEFT adapter (`adapter_config.json`,
 * `adapter_model.safetensors`), the optimizer's moments (`optimizer.safetensors`) and the
 * trainer's state (`trainer_state.json`: step, epoch, position in the epoch, best so far).
 * A folder is written under a temporary name and renamed when complete, so a crash never
 * leaves a half-written checkpoint where a resume would find it.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import type { ViTClassifier } from "../model/classifier.ts";
import { VitLoraError } from "../core/errors.ts";
import { exists, readJsonFile, writeFileAtomic } from "../core/files.ts";
import type { AdamW } from "./optimizer.ts";
import { parsePeftKey } from "../model/peft_format.ts";
import { readSafetensors, writeSafetensors } from "../model/safetensors_file.ts";
import { tf } from "../core/tf.ts";

/** Where training stands, saved with each checkpoint. */
export interface TrainerState {
  /** Optimizer steps done. */
  global_step: number;
  /** Epochs completed (0-based index of the epoch in progress when `rows_done` > 0). */
  epoch: number;
  /** Rows of the current epoch already used (0 at an epoch's end). */
  rows_done: number;
  /** The best validation accuracy so far and its epoch (1-based), if any. */
  best?: { epoch: number; accuracy: number };
  /**
   * Early stopping: evaluations in a row without an improvement (transformers'
   * `early_stopping_patience_counter`).
   */
  patience?: number;
  /** True once early stopping ended the run. */
  stopped_early?: boolean;
  /** Optimizer steps applied (fewer than `global_step` when the loss scaler skipped some). */
  optimizer_steps?: number;
  /** The loss scaler's state (fp16). */
  scaler?: { scale: number; growth_tracker: number };
  /** Images left out so far because they could not be decoded. */
  skipped: number;
  /** Seconds of training so far. */
  seconds: number;
  /**
   * The random state. Every draw is derived from the seed and a position (see `STREAMS` in
   * `random.ts`), so the position above is the whole state: the splits, epoch e's order, a
   * row's augmentation in epoch e, the dropout masks of optimizer step s's micro-batch m.
   */
  rng?: { generator: "mulberry32"; seed: number };
}

/**
 * Replaces `dir` by a folder `write` fills under a temporary name: the old one (if any) is
 * removed only once the new one is complete.
 */
export async function writeFolderAtomic(
  dir: string,
  write: (tmp: string) => Promise<void>,
): Promise<void> {
  const tag = `${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const tmp = join(dirname(dir), `.${basename(dir)}.tmp-${tag}`);
  const old = join(dirname(dir), `.${basename(dir)}.old-${tag}`);
  await Deno.mkdir(tmp, { recursive: true });
  try {
    await write(tmp);
    if (await exists(dir)) await Deno.rename(dir, old);
    await Deno.rename(tmp, dir);
    await Deno.remove(old, { recursive: true }).catch(() => {});
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    if (e instanceof VitLoraError) throw e;
    throw new VitLoraError(`${dir}: cannot write: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Saves adapter, optimizer and state to `dir` (atomically, see {@link writeFolderAtomic}).
 *
 * @example
 * ```ts ignore
 * import type { ViTClassifier } from "@lora/vit";
 * import { AdamW, saveCheckpoint, trainerNoDecay } from "@lora/vit/training";
 * declare const clf: ViTClassifier;
 *
 * const optimizer = new AdamW(clf.trainableVariables(), { noDecay: trainerNoDecay });
 * // … an epoch of optimizer steps …
 * await saveCheckpoint("runs/photos/checkpoints/epoch-1", {
 *   classifier: clf,
 *   optimizer,
 *   state: { global_step: 120, epoch: 1, rows_done: 0, skipped: 0, seconds: 95 },
 * });
 * ```
 */
export async function saveCheckpoint(
  dir: string,
  parts: { classifier: ViTClassifier; optimizer: AdamW; state: TrainerState },
): Promise<void> {
  await writeFolderAtomic(dir, async (tmp) => {
    await parts.classifier.saveAdapter(tmp);
    await writeSafetensors(join(tmp, "optimizer.safetensors"), await parts.optimizer.state());
    await writeFileAtomic(
      join(tmp, "trainer_state.json"),
      JSON.stringify(parts.state, null, 2) + "\n",
    );
  });
}

/** Reads a checkpoint's `trainer_state.json`. */
export async function readTrainerState(dir: string): Promise<TrainerState> {
  const state = await readJsonFile(join(dir, "trainer_state.json")) as TrainerState;
  if (typeof state?.global_step !== "number" || typeof state?.epoch !== "number") {
    throw new VitLoraError(`${dir}/trainer_state.json: not a trainer state`);
  }
  return state;
}

/**
 * The complete checkpoint with the most steps under `run/checkpoints`, or undefined if none.
 */
export async function latestCheckpoint(
  runDir: string,
): Promise<{ dir: string; state: TrainerState } | undefined> {
  const root = join(runDir, "checkpoints");
  let best: { dir: string; state: TrainerState } | undefined;
  if (!await exists(root)) return undefined;
  for await (const entry of Deno.readDir(root)) {
    if (!entry.isDirectory || entry.name.startsWith(".")) continue;
    const dir = join(root, entry.name);
    if (!await exists(join(dir, "trainer_state.json"))) continue;
    const state = await readTrainerState(dir);
    const ahead = !best || state.global_step > best.state.global_step ||
      (state.global_step === best.state.global_step && state.rows_done < best.state.rows_done);
    if (ahead) best = { dir, state };
  }
  return best;
}

/**
 * Sets a classifier's trainable tensors (LoRA A/B, classifier) from the
 * `adapter_model.safetensors` in `dir`, which must hold every one of them, in either
 * generation's names (see `peft_format.ts`).
 */
export async function loadAdapterWeights(classifier: ViTClassifier, dir: string): Promise<void> {
  const path = join(dir, "adapter_model.safetensors");
  const tensors = await readSafetensors(path);
  /** A key's meaning, the same in either naming. */
  const id = (key: string) => {
    const k = parsePeftKey(key);
    return k.kind === "lora" ? `${k.module}/${k.which}` : k.kind === "classifier" ? k.part : key;
  };
  const byId = new Map([...tensors].map(([key, t]) => [id(key), t]));
  for (const [key, v] of Object.entries(classifier.trainableVariables())) {
    const t = byId.get(id(key));
    if (!t || t.data.length !== v.size) {
      throw new VitLoraError(`${path}: ${key} is missing or of the wrong size for this model`);
    }
    const value = tf.tensor(Float32Array.from(t.data), v.shape);
    v.assign(value);
    value.dispose();
  }
}

/** Reads a checkpoint's optimizer state into `optimizer`. */
export async function loadOptimizer(
  optimizer: AdamW,
  dir: string,
  steps: number,
): Promise<void> {
  optimizer.load(await readSafetensors(join(dir, "optimizer.safetensors")), steps);
}
