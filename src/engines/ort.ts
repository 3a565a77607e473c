/**
 * ONNX Runtime as the CPU inference engine: a classifier's forward pass exported to ONNX
 * (`src/onnx/`, LoRA merged in) and run by ONNX Runtime's native CPU engine through
 * `npm:onnxruntime-node` (MLAS: AVX2/AVX-512 kernels, every core in one pool), what
 * transformers.js runs on in Node and Deno. On the CPU path (tfjs's wasm backend)
 * `predictLogits` (and so `classify`, `evaluate`, the trainer's evaluation) goes through it.
 *
 * It needs the process to load Node-API addons, `--allow-ffi`. When that is not granted, or
 * the package does not load, or `VIT_LORA_ORT=off`, inference stays on tfjs's wasm backend
 * and the reason is printed once (one line). Logits equal the tfjs path's within float32
 * rounding (the parity tests hold both to PyTorch's).
 *
 * A session is made on first use, of the classifier as it is then (the LoRA merged), and freed
 * with the classifier. When the trainable tensors change (an optimizer step: the trainer's
 * evaluation each epoch), the next call makes one more session, once, of a graph that takes
 * the LoRA matrices and the classifier as inputs (`graph.ts`'s `adapterInputs`, the frozen
 * weights still initializers), and from then on only feeds it the current tensors: no export
 * and no graph optimisation per epoch (they cost 2–4 s for ViT-B/16).
 *
 * Precision: float32 by default; `dtype: "fp16"` or `"q8"` (per call, or for a classifier with
 * {@link setOnnxDtype}) runs the float16 or int8 graph `export.ts` writes for transformers.js,
 * whatever the tfjs backend and the model's size (tfjs has neither precision). Models of less
 * than a GFLOP a forward pass (the tiny test ViTs) stay on tfjs in float32, where a batch costs
 * less than an export, unless asked (`{ always: true }`).
 *
 * @module
 */

import type * as Ort from "onnxruntime-node";
import { readEnv } from "../core/env.ts";
import { VitLoraError } from "../core/errors.ts";
import { type Tensor2D, type Tensor4D, tf } from "../core/tf.ts";
import type { ViTClassifier } from "../model/classifier.ts";
import { forwardFlops } from "../model/config.ts";
import { encodeViTOnnx, exportOnnxModel } from "../onnx/export.ts";
import type { OnnxDtype } from "../onnx/folder.ts";
import { adapterGroups, type AdapterInputs, type OnnxLayout } from "../onnx/graph.ts";

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
  /** The graph's precision (default `"fp32"`). */
  dtype?: OnnxDtype;
}

/** Extra float32 inputs of a session (the adapter's, see {@link adapterFeeds}). */
export type OrtFeeds = Record<string, { data: Float32Array; dims: number[] }>;

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
   * A session for `clf` as it is now (its weights exported, LoRA merged in), in `dtype`.
   * Throws when ONNX Runtime is not available (see {@link ortStatus}).
   */
  static async create(clf: ViTClassifier, options: OrtSessionOptions = {}): Promise<OrtClassifier> {
    const { ort, reason } = await ortStatus();
    if (!ort) throw new VitLoraError(reason!);
    const model = await exportOnnxModel(clf, { layout: options.layout, dtype: options.dtype });
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

  /**
   * Logits `[rows, labels]` (row-major) for `rows` images of normalised pixels (NCHW), with
   * `feeds` for a graph that has more inputs than `pixel_values`.
   */
  async run(pixels: Float32Array, rows: number, feeds: OrtFeeds = {}): Promise<Float32Array> {
    const inputs: Record<string, Ort.Tensor> = {
      pixel_values: new this.#ort.Tensor("float32", pixels, [rows, ...this.inputShape]),
    };
    for (const [name, t] of Object.entries(feeds)) {
      inputs[name] = new this.#ort.Tensor("float32", t.data, t.dims);
    }
    try {
      const out = await this.#session.run(inputs);
      const logits = out.logits;
      const data = Float32Array.from(logits.data as Float32Array);
      logits.dispose();
      return data;
    } finally {
      for (const t of Object.values(inputs)) t.dispose();
    }
  }

  /** Frees the session. */
  async release(): Promise<void> {
    await this.#session.release();
  }
}

/** The LoRA ranks of `clf`'s modules (what `adapterInputs` lays its inputs out by). */
export function adapterInputsOf(clf: ViTClassifier): AdapterInputs {
  const ranks = new Map<string, number>();
  for (const [module, linear] of clf.vit.linears()) {
    if (linear.lora) ranks.set(module, linear.lora.A.shape[0]);
  }
  return { ranks };
}

/**
 * A session of `clf`'s graph with the LoRA matrices and the classifier as inputs (the frozen
 * weights as initializers); run it with {@link adapterFeeds}.
 */
export async function adapterSession(
  clf: ViTClassifier,
  threads?: number,
): Promise<OrtClassifier> {
  const { ort, reason } = await ortStatus();
  if (!ort) throw new VitLoraError(reason!);
  const tensors = await clf.checkpointTensors({ lora: false });
  const model = encodeViTOnnx(clf.config, tensors, { adapterInputs: adapterInputsOf(clf) });
  return await OrtClassifier.fromBytes(ort, model, clf, threads);
}

/**
 * The inputs of {@link adapterSession}'s graph for `clf`'s trainable tensors as they are now:
 * each linear group's LoRA A matrices stacked, its B matrices scaled and laid out block by
 * block (`graph.ts`'s `adapterGroups`), and the classifier's weight and bias.
 */
export async function adapterFeeds(clf: ViTClassifier): Promise<OrtFeeds> {
  const linears = clf.vit.linears();
  const feeds: OrtFeeds = {};
  for (const group of adapterGroups(clf.config, adapterInputsOf(clf))) {
    const a = new Float32Array(group.rank * group.inFeatures);
    const b = new Float32Array(group.outFeatures * group.rank);
    for (const part of group.parts) {
      const lora = linears.get(part.module)!.lora!;
      a.set((await lora.A.data()) as Float32Array, part.rankOffset * group.inFeatures);
      const bData = (await lora.B.data()) as Float32Array; // [out, r]
      for (let i = 0; i < part.out; i++) {
        const row = (part.outOffset + i) * group.rank + part.rankOffset;
        for (let j = 0; j < part.r; j++) b[row + j] = bData[i * part.r + j] * lora.scaling;
      }
    }
    feeds[group.inputA] = { data: a, dims: [group.rank, group.inFeatures] };
    feeds[group.inputB] = { data: b, dims: [group.outFeatures, group.rank] };
  }
  const w = clf.classifier.weight, bias = clf.classifier.bias;
  feeds["classifier.weight"] = { data: (await w.data()) as Float32Array, dims: [...w.shape] };
  feeds["classifier.bias"] = { data: (await bias.data()) as Float32Array, dims: [...bias.shape] };
  return feeds;
}

/** A classifier's sessions: by dtype (merged weights), and the adapter-input one. */
interface Sessions {
  /** By dtype: the session and the trainable tensors' data ids it was exported with. */
  merged: Map<OnnxDtype, { ids: unknown[]; session: Promise<OrtClassifier> }>;
  /** The float32 graph with adapter inputs, once the trainable tensors have changed. */
  adapter?: { session: Promise<OrtClassifier>; ids?: unknown[]; feeds?: Promise<OrtFeeds> };
  /** The dtype of calls that name none ({@link setOnnxDtype}). */
  dtype: OnnxDtype;
  /** Graphs exported so far. */
  exports: number;
}

const classifiers = new WeakMap<ViTClassifier, Sessions>();

function sessionsOf(clf: ViTClassifier): Sessions {
  let s = classifiers.get(clf);
  if (!s) {
    s = { merged: new Map(), dtype: "fp32", exports: 0 };
    classifiers.set(clf, s);
    const sessions = s;
    clf.onDispose(() => {
      for (const m of sessions.merged.values()) m.session.then((x) => x.release(), () => {});
      sessions.adapter?.session.then((x) => x.release(), () => {});
      classifiers.delete(clf);
    });
  }
  return s;
}

/**
 * Sets the precision `ortLogits` (and so `predictLogits`, `classify`, `evaluate`) runs `clf` in
 * when a call names none: `"fp32"` (the default), `"fp16"` or `"q8"`, the graphs `exportOnnx`
 * writes for transformers.js. `"fp16"` and `"q8"` need ONNX Runtime.
 *
 * @example
 * ```ts ignore
 * import { classify, type ViTClassifier } from "@lora/vit";
 * import { setOnnxDtype } from "./ort.ts";
 * declare const clf: ViTClassifier;
 *
 * setOnnxDtype(clf, "q8");
 * const [top] = await classify(clf, [await Deno.readFile("dish.jpg")]); // ONNX Runtime, int8
 * ```
 */
export function setOnnxDtype(clf: ViTClassifier, dtype: OnnxDtype): void {
  clf.check();
  sessionsOf(clf).dtype = dtype;
}

/** What {@link ortLogits} holds for a classifier. */
export interface OrtSessionsInfo {
  /** The dtypes of its sessions of merged weights. */
  merged: OnnxDtype[];
  /** Whether it has the session with adapter inputs (after the trainable tensors changed). */
  adapter: boolean;
  /** Graphs exported for it so far (each a session made). */
  exports: number;
}

/** The sessions {@link ortLogits} holds for `clf` (none before its first call). */
export function ortSessions(clf: ViTClassifier): OrtSessionsInfo {
  const s = classifiers.get(clf);
  return { merged: [...(s?.merged.keys() ?? [])], adapter: !!s?.adapter, exports: s?.exports ?? 0 };
}

/** Options of {@link ortLogits}. */
export interface OrtLogitsOptions {
  /**
   * Use ONNX Runtime whatever the model's size (default: only for models of over a GFLOP a
   * forward pass, where a session pays for its export).
   */
  always?: boolean;
  /** The precision (default: {@link setOnnxDtype}'s, else `"fp32"`). */
  dtype?: OnnxDtype;
}

/**
 * `clf.logits(pixelValues)` by ONNX Runtime, when the CPU path uses it: in float32 on tfjs's
 * wasm backend, for a model of over a GFLOP a forward pass (or `always`), with ONNX Runtime
 * loaded (see {@link ortStatus}); undefined otherwise (the caller runs tfjs). The first call
 * that would have used it prints why, once, when ONNX Runtime is not available. The values
 * equal `logits`' within float32 rounding (not bit for bit: the products are summed in another
 * order). In `"fp16"` or `"q8"` it always runs ONNX Runtime, and throws a {@link VitLoraError}
 * when it is not available.
 *
 * @example
 * ```ts ignore
 * import type { ViTClassifier } from "@lora/vit";
 * import type { Tensor4D } from "@lora/vit/model";
 * import { ortLogits } from "./ort.ts";
 * declare const clf: ViTClassifier;
 * declare const pixels: Tensor4D; // [batch, 3, size, size], normalised
 *
 * const logits = (await ortLogits(clf, pixels)) ?? clf.logits(pixels); // float32
 * const q8 = (await ortLogits(clf, pixels, { dtype: "q8" }))!; // ONNX Runtime, int8 products
 * ```
 */
export async function ortLogits(
  clf: ViTClassifier,
  pixelValues: Tensor4D,
  options: OrtLogitsOptions = {},
): Promise<Tensor2D | undefined> {
  clf.check();
  const dtype = options.dtype ?? classifiers.get(clf)?.dtype ?? "fp32";
  if (dtype === "fp32") {
    if (tf.getBackend() !== "wasm") return undefined;
    if (!options.always && forwardFlops(clf.config) < 1e9) return undefined;
  }
  const { ort, reason } = await ortStatus();
  if (!ort) {
    if (dtype !== "fp32") throw new VitLoraError(`dtype ${dtype}: ${reason}`);
    if (!announced) {
      announced = true;
      console.error(`vit-lora: ${reason}`);
    }
    return undefined;
  }
  clf.vit.checkInput(pixelValues);
  const rows = pixelValues.shape[0];
  const pixels = (await pixelValues.data()) as Float32Array;
  const [session, feeds] = await sessionFor(clf, dtype);
  const logits = await session.run(pixels, rows, feeds);
  return tf.tensor2d(logits, [rows, session.labels]);
}

/** The session (and its extra inputs) for `clf`'s trainable tensors as they are now. */
async function sessionFor(
  clf: ViTClassifier,
  dtype: OnnxDtype,
): Promise<[OrtClassifier, OrtFeeds | undefined]> {
  const s = sessionsOf(clf);
  const ids = Object.values(clf.trainableVariables()).map((v) => v.dataId);
  const same = (a?: unknown[]) => a?.length === ids.length && a.every((id, i) => id === ids[i]);
  const merged = s.merged.get(dtype);
  if (merged && same(merged.ids)) return [await merged.session, undefined];
  if (dtype === "fp32" && (merged || s.adapter)) {
    // the tensors changed since the float32 export: from now on one session, fed the tensors
    if (merged) {
      s.merged.delete(dtype);
      merged.session.then((x) => x.release(), () => {});
    }
    if (!s.adapter) {
      s.exports++;
      s.adapter = { session: adapterSession(clf) };
    }
    if (!same(s.adapter.ids)) s.adapter = { ...s.adapter, ids, feeds: adapterFeeds(clf) };
    return [await s.adapter.session, await s.adapter.feeds];
  }
  const session = OrtClassifier.create(clf, { dtype });
  s.exports++;
  s.merged.set(dtype, { ids, session });
  if (merged) merged.session.then((x) => x.release(), () => {});
  return [await session, undefined];
}
