/** Shared test helpers: fixtures, backends, and float comparison. */

import assert from "node:assert/strict";
import { type BackendName, initBackend } from "../src/backend/backend.ts";
import { type Tensor, type Tensor1D, type Tensor4D, tf } from "../src/core/tf.ts";
import { join } from "node:path";
import { writeSyntheticDataset } from "../src/data/synthetic.ts";
import type { TensorData } from "../src/model/safetensors.ts";
import { readSafetensors } from "../src/model/safetensors_file.ts";
import type { StepEvent } from "../src/runs/events.ts";
import type { TrainerCallback } from "../src/training/callbacks.ts";
import { train } from "../src/training/trainer.ts";

/** The reference sets copied from ../shared/fixtures (PyTorch float32). */
export const FIXTURE_SETS = ["vit-tiny-a", "vit-tiny-b", "vit-tiny-c"] as const;

/** Both backends the tests hold against PyTorch: WebGPU (Mesa's software adapter here) and cpu. */
export const BACKENDS: BackendName[] = ["webgpu", "wasm", "cpu"];

/** The folder of a fixture set. */
export function fixture(set: string): string {
  return new URL(`./fixtures/${set}`, import.meta.url).pathname;
}

/** What PyTorch computed for a fixture set. */
export interface Expected {
  pixelValues: TensorData;
  labels: TensorData;
  tensors: Map<string, TensorData>;
}

/** Reads a set's expected.safetensors. */
export async function expected(set: string): Promise<Expected> {
  const tensors = await readSafetensors(`${fixture(set)}/expected.safetensors`);
  return { pixelValues: tensors.get("pixel_values")!, labels: tensors.get("labels")!, tensors };
}

/** Pixel values and labels as tensors (dispose them). */
export function inputs(e: Expected): { pixels: Tensor4D; labels: Tensor1D } {
  return {
    pixels: tf.tensor4d(
      e.pixelValues.data,
      e.pixelValues.shape as [number, number, number, number],
    ),
    labels: tf.tensor1d(e.labels.data as Int32Array, "int32"),
  };
}

/** max |a - ref| / max |ref|, the fixtures' agreement measure. */
export function relError(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  assert.equal(a.length, ref.length, "lengths differ");
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return diff / scale;
}

/** Asserts `actual` matches `ref` within `tol` relative error (and has the same shape). */
export async function assertClose(
  actual: Tensor,
  ref: TensorData,
  tol: number,
  what: string,
): Promise<void> {
  assert.deepEqual(actual.shape, ref.shape, `${what}: shape`);
  const err = relError(await actual.data() as Float32Array, ref.data);
  assert.ok(err < tol, `${what}: relative error ${err.toExponential(2)} ≥ ${tol}`);
}

/** Switches tfjs to `backend` (quietly). */
export async function useBackend(backend: BackendName): Promise<void> {
  await initBackend(backend, { quiet: true });
}

/** A fresh temporary folder, removed by the returned function. */
export async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "vit-lora-test-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** A folder's files by their path under it (`/`-separated, subfolders included). */
export async function folderFiles(dir: string, prefix = ""): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile) out[prefix + e.name] = await Deno.readFile(join(dir, e.name));
    else if (e.isDirectory) {
      Object.assign(out, await folderFiles(join(dir, e.name), `${prefix}${e.name}/`));
    }
  }
  return out;
}

/** Copies the folder `from`, subfolders included, to `to`. */
export async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isDirectory) await copyTree(join(from, entry.name), join(to, entry.name));
    else await Deno.copyFile(join(from, entry.name), join(to, entry.name));
  }
}

/** A task's `--allow-…` flags in deno.json: the permissions `deno task NAME` runs it with. */
export async function taskPermissions(task: string): Promise<string[]> {
  const tasks = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url))).tasks;
  return tasks[task].split(" ").filter((a: string) => a.startsWith("--allow-"));
}

/** One optimizer step as a Trainer run's `trainer_run.json` (or `expected_run.json`) logs it. */
export interface TrainerStep {
  step: number;
  loss: number;
  lr: number;
  grad_norm: number;
}

/**
 * Holds `train()`'s steps to a reference run's, step by step: loss, lr and grad_norm within
 * `tolerance` relative (absolute where the reference's value is 0, as a warmup's first rate).
 * Returns the worst error.
 */
export function assertTrainerSteps(
  name: string,
  steps: readonly StepEvent[],
  expected: readonly TrainerStep[],
  tolerance = 1e-4,
): number {
  assert.equal(steps.length, expected.length, `${name}: steps`);
  let worst = 0;
  for (const [i, e] of expected.entries()) {
    assert.equal(steps[i].step, e.step);
    for (const key of ["loss", "lr", "grad_norm"] as const) {
      const rel = e[key] === 0
        ? Math.abs(steps[i][key])
        : Math.abs(steps[i][key] - e[key]) / Math.abs(e[key]);
      worst = Math.max(worst, rel);
      assert.ok(
        rel < tolerance,
        `${name} step ${e.step} ${key}: ${steps[i][key]} vs ${e[key]} (${rel.toExponential(2)})`,
      );
    }
  }
  return worst;
}

/** Serves `handler` on 127.0.0.1 (a free port, or `port`), quietly: the server and its URL. */
export function serveLocal(
  handler: (req: Request) => Response | Promise<Response>,
  port = 0,
): { server: Deno.HttpServer<Deno.NetAddr>; url: string } {
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, handler);
  return { server, url: `http://127.0.0.1:${server.addr.port}` };
}

/**
 * A small trained run in `dir` (a tiny ViT, two epochs on a generated dataset of 4 classes,
 * on cpu), for the tests of what reads runs: the run folder and its data.
 */
export async function trainedRun(
  dir: string,
  callbacks: TrainerCallback[] = [],
): Promise<{ run: string; data: string }> {
  const data = join(dir, "data");
  await writeSyntheticDataset(data, { classes: 4, trainPerClass: 16, validationPerClass: 10 });
  const run = join(dir, "run");
  await train({
    model: `${fixture("vit-tiny-a")}/model`,
    data,
    out: run,
    epochs: 2,
    batchSize: 16,
    gradAccum: 1,
    loraR: 4,
    backend: "cpu",
    workers: 0,
    progress: false,
    callbacks,
  });
  return { run, data };
}
