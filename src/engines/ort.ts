/**
 * ONNX Runtime as the CPU inference engine: a classifier's forward pass exported to ONNX
 * (`onnx_export.ts`, LoRA merged in) and run by ONNX Runtime's native CPU engine through
 * `npm:onnxruntime-node` (MLAS: AVX2/AVX-512 kernels, every core in one pool), what
 * transformers.js runs on in Node and Deno. On the CPU path (tfjs's wasm backend)
 * `predictLogits` (and so `classify`, `evaluate`, the trainer's evaluation) goes through it.
 *
 * It needs the process to load Node-API addons, `--allow-ffi`. When that is not granted, or
 * the package does not load, or `VIT_LORA_ORT=off`, inference stays on tfjs's wasm backend
 * and the reason is printed once (one line). Logits equal the tfjs path's within float32
 * rounding (the parity tests hold both to PyTorch's).
 *
 * The exported model is the classifier as it is when exported: a session is made on first
 * use and again whenever the trainable tensors have changed (after an optimizer step; 2–4 s
 * for ViT-B/16: the export and ONNX Runtime's graph optimisation), and freed with the
 * classifier. Models of less than a GFLOP a forward pass (the tiny test ViTs) stay on tfjs,
 * where a batch costs less than an export, unless asked (`{ always: true }`).
 *
 * @module
 */

import type * as Ort from "onnxruntime-node";
import { readEnv } from "../core/env.ts";
import { VitLoraError } from "../core/errors.ts";
import { type Tensor2D, type Tensor4D, tf } from "../core/tf.ts";
import type { ViTClassifier } from "../model/classifier.ts";
import { forwardFlops } from "../model/config.ts";
import { exportOnnx, type OnnxLayout } from "../onnx/graph.ts";

/** The `onnxruntime-node` package, as loaded. */
export type OrtModule = typeof Ort;

/** Whether ONNX Runtime is in use, and why not when it is not. */
export interface OrtStatus {
  /** The loaded package, when it loaded. */
  ort?: OrtModule;
  /** onnxruntime-node's version. */
  version?: string;
  /** One line saying why it is not used (absent when it is). */
  reason?: string;
}

let loading: Promise<OrtStatus> | undefined;
let announced = false;

/**
 * ONNX Runtime, loaded on the first call: `{ ort }`, or `{ reason }` when the process may not
 * load addons (`--allow-ffi`), the package does not load, or `VIT_LORA_ORT=off`.
 */
export function ortStatus(): Promise<OrtStatus> {
  return loading ??= loadOrt();
}

async function loadOrt(): Promise<OrtStatus> {
  const setting = readEnv("VIT_LORA_ORT");
  if (setting === "off" || setting === "0") {
    return { reason: "VIT_LORA_ORT=off: inference runs on tfjs's wasm backend" };
  }
  let granted = false;
  try {
    granted = Deno.permissions.querySync({ name: "ffi" }).state === "granted";
  } catch {
    granted = false;
  }
  if (!granted) {
    return {
      reason:
        "ONNX Runtime needs --allow-ffi (it is a Node-API addon): inference runs on tfjs's wasm backend, 3–5× slower",
    };
  }
  try {
    const ort = await import("onnxruntime-node");
    const mod = ort as unknown as OrtModule;
    return { ort: mod, version: mod.env.versions?.node ?? mod.env.versions?.common };
  } catch (e) {
    return {
      reason: `ONNX Runtime (npm:onnxruntime-node) did not load (${
        firstLine(e)
      }): inference runs on tfjs's wasm backend`,
    };
  }
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split("\n")[0];
}

/** Options of {@link OrtClassifier.create}. */
export interface OrtSessionOptions {
  /** Threads of ONNX Runtime's pool (default: every core). */
  threads?: number;
  /** The exported graph's layout (default `"fused"`). */
  layout?: OnnxLayout;
}

/** An ONNX Runtime session running a classifier's exported forward pass. */
export class OrtClassifier {
  readonly #session: Ort.InferenceSession;
  readonly #ort: OrtModule;
  /** The classifier's `[channels, size, size]`. */
  readonly inputShape: readonly [number, number, number];
  /** Classes. */
  readonly labels: number;

  private constructor(
    ort: OrtModule,
    session: Ort.InferenceSession,
    inputShape: [number, number, number],
    labels: number,
  ) {
    this.#ort = ort;
    this.#session = session;
    this.inputShape = inputShape;
    this.labels = labels;
  }

  /**
   * A session for `clf` as it is now (its weights exported, LoRA merged in). Throws when ONNX
   * Runtime is not available (see {@link ortStatus}).
   */
  static async create(clf: ViTClassifier, options: OrtSessionOptions = {}): Promise<OrtClassifier> {
    const { ort, reason } = await ortStatus();
    if (!ort) throw new VitLoraError(reason!);
    const model = await exportOnnx(clf, { layout: options.layout });
    return await OrtClassifier.fromBytes(ort, model, clf, options.threads);
  }

  /** A session for an exported model of `clf`'s shapes. */
  static async fromBytes(
    ort: OrtModule,
    model: Uint8Array,
    clf: Pick<ViTClassifier, "config" | "labels">,
    threads?: number,
  ): Promise<OrtClassifier> {
    const session = await ort.InferenceSession.create(model, {
      executionProviders: ["cpu"],
      graphOptimizationLevel: "all",
      intraOpNumThreads: threads ?? navigator.hardwareConcurrency ?? 1,
      interOpNumThreads: 1,
      executionMode: "sequential",
    });
    const { num_channels: c, image_size: s } = clf.config;
    return new OrtClassifier(ort, session, [c, s, s], clf.labels.length);
  }

  /** Logits `[rows, labels]` (row-major) for `rows` images of normalised pixels (NCHW). */
  async run(pixels: Float32Array, rows: number): Promise<Float32Array> {
    const input = new this.#ort.Tensor("float32", pixels, [rows, ...this.inputShape]);
    try {
      const out = await this.#session.run({ pixel_values: input });
      const logits = out.logits;
      const data = Float32Array.from(logits.data as Float32Array);
      logits.dispose();
      return data;
    } finally {
      input.dispose();
    }
  }

  /** Frees the session. */
  async release(): Promise<void> {
    await this.#session.release();
  }
}

interface Cached {
  /** The trainable variables' data ids when exported. */
  ids: unknown[];
  session: Promise<OrtClassifier>;
}

const sessions = new WeakMap<ViTClassifier, Cached>();

/** Options of {@link ortLogits}. */
export interface OrtLogitsOptions {
  /**
   * Use ONNX Runtime whatever the model's size (default: only for models of over a GFLOP a
   * forward pass, where a session pays for its export).
   */
  always?: boolean;
}

/**
 * `clf.logits(pixelValues)` by ONNX Runtime, when the CPU path uses it: on tfjs's wasm
 * backend, for a model of over a GFLOP a forward pass (or `always`), with ONNX Runtime loaded
 * (see {@link ortStatus}); undefined otherwise (the caller runs tfjs). The first call that
 * would have used it prints why, once, when ONNX Runtime is not available. The values equal
 * `logits`' within float32 rounding (not bit for bit: the products are summed in another
 * order).
 *
 * @example
 * ```ts ignore
 * const logits = (await ortLogits(clf, pixels)) ?? clf.logits(pixels);
 * ```
 */
export async function ortLogits(
  clf: ViTClassifier,
  pixelValues: Tensor4D,
  options: OrtLogitsOptions = {},
): Promise<Tensor2D | undefined> {
  clf.check();
  if (tf.getBackend() !== "wasm") return undefined;
  if (!options.always && forwardFlops(clf.config) < 1e9) return undefined;
  const { ort, reason } = await ortStatus();
  if (!ort) {
    if (!announced) {
      announced = true;
      console.error(`vit-lora: ${reason}`);
    }
    return undefined;
  }
  clf.vit.checkInput(pixelValues);
  const ids = Object.values(clf.trainableVariables()).map((v) => v.dataId);
  let cached = sessions.get(clf);
  if (!cached || cached.ids.length !== ids.length || cached.ids.some((id, i) => id !== ids[i])) {
    const previous = cached?.session;
    cached = { ids, session: OrtClassifier.create(clf) };
    sessions.set(clf, cached);
    if (previous) previous.then((s) => s.release(), () => {});
    else {
      clf.onDispose(() => {
        sessions.get(clf)?.session.then((s) => s.release(), () => {});
        sessions.delete(clf);
      });
    }
  }
  const session = await cached.session;
  const rows = pixelValues.shape[0];
  const pixels = (await pixelValues.data()) as Float32Array;
  const logits = await session.run(pixels, rows);
  return tf.tensor2d(logits, [rows, session.labels]);
}
