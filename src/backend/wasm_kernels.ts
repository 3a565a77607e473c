/**
 * Three of tfjs-wasm's kernels, replaced for speed: `BatchMatMul` and `_FusedMatMul` (every
 * product of the ViT on a native BLAS when there is one, else on XNNPACK) and `Identity` (to
 * share data instead of copying it).
 *
 * **Products on OpenBLAS** (`blas.ts`): XNNPACK's 128-bit SIMD reaches ~20 GFLOP/s a core
 * here, OpenBLAS's AVX-512 kernels ~90. When OpenBLAS is installed and the process may load
 * it (`--allow-ffi`), every float32 product, transposed, batched or fused with a bias, is one
 * `cblas_sgemm` call (or one per matrix of a batch) on zero-copy views of the wasm heap: the
 * BLAS transposes as it multiplies, and a linear layer's bias is copied into the output's rows
 * before `C = A·B + C`. OpenBLAS runs one thread an isolate: the other cores run the model's
 * replicas (`src/engines/replicas.ts`). Without it, the reason is printed once and the
 * products run on XNNPACK as below.
 *
 * `Identity` is what tfjs's engine runs to keep an op's inputs for its gradient, and
 * tfjs-wasm's copies the tensor: every frozen weight and every saved activation was copied
 * at each training forward pass (0.6 s of a ViT-B/16 step here), and the copy defeated
 * XNNPACK's cache of packed weights in the backward pass. Tensors are immutable, so the
 * replacement shares the data and counts a reference, as tfjs's cpu backend does.
 *
 * `BatchMatMul` without a BLAS:
 *
 * tfjs 4.22's wasm kernel hands a product to XNNPACK (~17–20 GFLOP/s here) only when it is
 * plain 2-D: no `transposeA`/`transposeB` and a batch of one. Everything else runs in a
 * naive blocked loop at ~1 GFLOP/s: the transposed products every linear layer's backward
 * pass needs, and all of attention's per-head products (`QKᵀ` and `PV`, batch × heads of
 * them), which made attention a third of a ViT-B/16 forward pass. This kernel:
 *
 * - transposes a transposed operand first (a copy, cheap next to the product);
 * - folds a batch against a single right-hand matrix into one tall product
 *   (`[b, m, k]·[k, n]` is `[b·m, k]·[k, n]`);
 * - runs a true batch as one XNNPACK product per matrix, on views of the operands: each
 *   view is a tensor id registered over a slice of the wasm heap, so nothing is copied;
 * - keeps the transpose of a right-hand matrix transposed a second time (a frozen weight in
 *   the backward pass, `dY·Wᵀ`), until that matrix is disposed: XNNPACK then reuses the
 *   operator it packed for it instead of packing a fresh copy at every step.
 *
 * The result is the same arithmetic as the plain product, per matrix; a test holds both
 * paths against the cpu backend.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { Blas } from "./blas.ts";
import { platform } from "../core/platform.ts";

/** The BLAS the platform offers (Deno: OpenBLAS through the FFI; a web page: none). */
function blasStatus(): { blas?: Blas; reason?: string; quiet?: boolean } {
  return (platform().blas?.() ?? {
    reason: "no FFI in this runtime (a browser): products on XNNPACK",
    quiet: true,
  }) as { blas?: Blas; reason?: string; quiet?: boolean };
}

function blas(): Blas | undefined {
  return blasStatus().blas;
}

/** The parts of tfjs-wasm's backend object this kernel uses (not in its public types). */
interface WasmBackend {
  wasm: {
    HEAPU8: Uint8Array;
    cwrap(name: string, ret: null, args: string[]): (...args: unknown[]) => void;
    tfjs: {
      registerTensor(id: number, size: number, offset: number): void;
      disposeData(id: number): void;
    };
  };
  dataIdMap: {
    get(dataId: unknown): { id: number; memoryOffset: number; refCount: number };
    has(dataId: unknown): boolean;
  };
  dataIdNextNumber: number;
  makeOutput(shape: number[], dtype: "float32"): tf.TensorInfo;
  disposeData(dataId: unknown, force?: boolean): boolean;
}

/** Right-hand matrices transposed once already (by data id): the next time, keep the copy. */
const transposedOnce = new WeakSet<object>();
/** Kept transposes, by the data id of their source; freed when the source is. */
const keptTransposes = new Map<object, tf.TensorInfo>();

type WasmProduct = (
  aId: number,
  aShape: Uint8Array,
  aRank: number,
  bId: number,
  bShape: Uint8Array,
  bRank: number,
  transposeA: boolean,
  transposeB: boolean,
  outId: number,
) => void;

let product: WasmProduct | undefined;

let announced = false;

/**
 * Says once, on the main thread, why the products are not on a BLAS (when they are not and
 * that was not asked for), as the wasm backend starts.
 */
function announceBlas(): void {
  if (announced) return;
  announced = true;
  const { reason, quiet } = blasStatus();
  // a worker (the model's replicas, web or node:worker_threads) has postMessage; Deno's main
  // thread has not
  const worker = typeof (globalThis as { postMessage?: unknown }).postMessage === "function";
  if (reason && !quiet && !worker) console.error(`vit-lora: ${reason}`);
}

/**
 * Replaces tfjs-wasm's `BatchMatMul`, `_FusedMatMul` and `Identity` kernels (once, at import
 * of the backend).
 */
export function registerWasmKernels(): void {
  registerIdentity();
  registerMatMul();
  registerFusedMatMul();
}

/**
 * Products whose right-hand matrix has fewer elements than this (`n·k`) stay on XNNPACK: a
 * tiny model's, where a BLAS call's fixed costs (and `sgemmRows`' padding of small products)
 * outweigh its speed. The choice depends on the matrix alone, never on the rows of the
 * left-hand side, so a row's value does not depend on the batch it came in. ViT-B's smallest
 * products (attention's, per head: 197·64) go to the BLAS.
 */
export const BLAS_MIN_MATRIX = 8192;

let blasCalls = 0;

/** Products the wasm kernels have run on the BLAS in this isolate (for tests and benchmarks). */
export function blasProductCount(): number {
  return blasCalls;
}

/** Whether a product with right-hand side `b` goes to the BLAS. */
function onBlas(b: tf.TensorInfo): boolean {
  if (!blas()) return false;
  const [rb, cb] = b.shape.slice(-2);
  return rb * cb >= BLAS_MIN_MATRIX;
}

/**
 * `out = op(a)·op(b)` (`+ out` when `accumulate`) by the BLAS, on views of the wasm heap (no
 * copy): one product for a batch against one right-hand matrix, else one per matrix.
 */
function blasProduct(
  backend: WasmBackend,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  out: tf.TensorInfo,
  accumulate = false,
): void {
  const sgemm = blas()!.sgemmRows;
  blasCalls++;
  const sizeA = size(a.shape.slice(0, -2)), sizeB = size(b.shape.slice(0, -2));
  const [ra, ca] = a.shape.slice(-2), [rb, cb] = b.shape.slice(-2);
  const [m, k] = transposeA ? [ca, ra] : [ra, ca];
  const n = transposeB ? rb : cb;
  const count = Math.max(sizeA, sizeB);
  if (m === 0 || n === 0 || count === 0) return;
  const buffer = backend.wasm.HEAPU8.buffer as ArrayBuffer; // after makeOutput: the heap as it is now
  const offset = (t: tf.TensorInfo) => backend.dataIdMap.get(t.dataId).memoryOffset;
  const [oa, ob, oc] = [offset(a), offset(b), offset(out)];
  const view = (at: number, length: number) => new Float32Array(buffer, at, length);
  if (k === 0) {
    if (!accumulate) view(oc, count * m * n).fill(0);
    return;
  }
  const beta = accumulate ? 1 : 0;
  if (sizeB <= 1 && !transposeA) {
    // a batch against one matrix: one tall product
    const rows = sizeA * m;
    sgemm(
      false,
      transposeB,
      rows,
      n,
      k,
      1,
      view(oa, rows * k),
      ca,
      view(ob, k * n),
      cb,
      beta,
      view(oc, rows * n),
      n,
    );
    return;
  }
  for (let i = 0; i < count; i++) {
    sgemm(
      transposeA,
      transposeB,
      m,
      n,
      k,
      1,
      view(oa + (sizeA === 1 ? 0 : i * m * k * 4), m * k),
      ca,
      view(ob + (sizeB === 1 ? 0 : i * k * n * 4), k * n),
      cb,
      beta,
      view(oc + i * m * n * 4, m * n),
      n,
    );
  }
}

/**
 * `_FusedMatMul` (a linear layer's `x Wᵀ + b`, tfjs's fused matMul) by the BLAS: the bias
 * copied into every row of the output, then `C = A·B + C`. Activations, PReLU weights and
 * batched right-hand sides go to tfjs-wasm's own kernel.
 */
function registerFusedMatMul(): void {
  const original = tf.getKernel(tf._FusedMatMul, "wasm");
  if (!original) return;
  tf.unregisterKernel(tf._FusedMatMul, "wasm");
  tf.registerKernel({
    ...original,
    kernelFunc: (args) => {
      const { a, b, bias, preluActivationWeights } = args.inputs as Record<
        string,
        tf.TensorInfo | undefined
      >;
      const { transposeA, transposeB, activation } = args.attrs as {
        transposeA: boolean;
        transposeB: boolean;
        activation?: string;
      };
      const backend = args.backend as unknown as WasmBackend;
      const sizeA = size(a!.shape.slice(0, -2)), sizeB = size(b!.shape.slice(0, -2));
      const m = a!.shape[a!.shape.length - (transposeA ? 1 : 2)];
      const n = b!.shape[b!.shape.length - (transposeB ? 2 : 1)];
      if (
        !onBlas(b!) || a!.dtype !== "float32" || b!.dtype !== "float32" ||
        preluActivationWeights ||
        (activation && activation !== "linear") || sizeB > 1 ||
        (bias && (bias.shape.length !== 1 || bias.shape[0] !== n))
      ) {
        return original.kernelFunc(args);
      }
      const out = backend.makeOutput([...a!.shape.slice(0, -2), m, n], "float32");
      if (bias) {
        const buffer = backend.wasm.HEAPU8.buffer as ArrayBuffer;
        const rows = sizeA * m;
        const row = new Float32Array(buffer, backend.dataIdMap.get(bias.dataId).memoryOffset, n);
        const target = new Float32Array(
          buffer,
          backend.dataIdMap.get(out.dataId).memoryOffset,
          rows * n,
        );
        for (let r = 0; r < rows; r++) target.set(row, r * n);
      }
      blasProduct(backend, a!, b!, transposeA, transposeB, out, !!bias);
      return out;
    },
  });
}

function registerIdentity(): void {
  const original = tf.getKernel(tf.Identity, "wasm");
  if (!original) return;
  tf.unregisterKernel(tf.Identity, "wasm");
  tf.registerKernel({
    ...original,
    kernelFunc: (args) => {
      const { x } = args.inputs as { x: tf.TensorInfo };
      if (x.dtype === "string") return original.kernelFunc(args);
      (args.backend as unknown as WasmBackend).dataIdMap.get(x.dataId).refCount++;
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    },
  });
}

function registerMatMul(): void {
  const original = tf.getKernel(tf.BatchMatMul, "wasm");
  const transpose = tf.getKernel(tf.Transpose, "wasm");
  if (!original || !transpose) return;
  tf.unregisterKernel(tf.BatchMatMul, "wasm");
  tf.registerKernel({
    ...original,
    setupFunc: (backend) => {
      original.setupFunc?.(backend); // binds the wasm function the original kernel calls
      announceBlas();
      const wasm = backend as unknown as WasmBackend;
      const dispose = wasm.disposeData.bind(wasm);
      wasm.disposeData = (dataId, force) => {
        const released = dispose(dataId, force);
        const kept = keptTransposes.get(dataId as object);
        if (kept && !wasm.dataIdMap.has(dataId)) {
          keptTransposes.delete(dataId as object);
          dispose(kept.dataId, true);
        }
        return released;
      };
      product = wasm.wasm.cwrap(
        tf.BatchMatMul,
        null,
        ["number", "array", "number", "number", "array", "number", "number", "number", "number"],
      ) as WasmProduct;
    },
    kernelFunc: (args) => {
      const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
      const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
      const backend = args.backend as unknown as WasmBackend;
      const batchA = a.shape.slice(0, -2);
      const batchB = b.shape.slice(0, -2);
      const sizeA = size(batchA);
      const sizeB = size(batchB);
      const plain = sizeA <= 1 && sizeB <= 1;
      const simpleBatch = sizeB === 1 || sizeA === 1 || sameShape(batchA, batchB);
      if (
        onBlas(b) && simpleBatch && a.dtype === "float32" && b.dtype === "float32"
      ) {
        // the BLAS transposes as it multiplies: no copies
        const [ra, ca] = a.shape.slice(-2), [rb, cb] = b.shape.slice(-2);
        const outBatch = tf.broadcast_util.assertAndGetBroadcastShape(batchA, batchB);
        const out = backend.makeOutput(
          [...outBatch, transposeA ? ca : ra, transposeB ? rb : cb],
          "float32",
        );
        blasProduct(backend, a, b, transposeA, transposeB, out);
        return out;
      }
      if ((plain && !transposeA && !transposeB) || !simpleBatch || a.dtype !== "float32") {
        return original.kernelFunc(args); // plain already, or a broadcast this does not handle
      }
      const swapLast = (t: tf.TensorInfo): tf.TensorInfo => {
        const perm = t.shape.map((_, i) => i);
        perm.splice(-2, 2, perm.length - 1, perm.length - 2);
        return transpose.kernelFunc({
          inputs: { x: t },
          backend: args.backend,
          attrs: { perm },
        }) as tf.TensorInfo;
      };
      const at = transposeA ? swapLast(a) : a; // [...batchA, m, k]
      const bt = transposeB ? keptTranspose(b, sizeB, swapLast) : b; // [...batchB, k, n]
      const [m, k] = at.shape.slice(-2);
      const n = bt.shape[bt.shape.length - 1];
      const outBatch = tf.broadcast_util.assertAndGetBroadcastShape(batchA, batchB);
      const out = backend.makeOutput([...outBatch, m, n], "float32");
      const entry = (t: tf.TensorInfo) => backend.dataIdMap.get(t.dataId);
      if (sizeB <= 1) {
        // one right-hand matrix: the whole batch is one tall product, on the tensors' own
        // ids (XNNPACK's operator for a kept transpose is cached on its id)
        multiply([entry(at).id, sizeA * m, k], [entry(bt).id, n], entry(out).id);
      } else {
        const [aBase, bBase, outBase] = [at, bt, out].map((t) => entry(t).memoryOffset);
        for (let i = 0; i < sizeB; i++) {
          const aOffset = aBase + (sizeA === 1 ? 0 : i * m * k * 4);
          const views = [
            view(backend, aOffset, m * k),
            view(backend, bBase + i * k * n * 4, k * n),
            view(backend, outBase + i * m * n * 4, m * n),
          ];
          try {
            multiply([views[0], m, k], [views[1], n], views[2]);
          } finally {
            for (const id of views) backend.wasm.tfjs.disposeData(id);
          }
        }
      }
      if (at !== a) backend.disposeData(at.dataId);
      if (bt !== b && keptTransposes.get(b.dataId as object) !== bt) {
        backend.disposeData(bt.dataId);
      }
      return out;
    },
  });
}

/** `b` with its last two axes swapped: a kept copy when `b` is a single matrix seen before. */
function keptTranspose(
  b: tf.TensorInfo,
  batch: number,
  swapLast: (t: tf.TensorInfo) => tf.TensorInfo,
): tf.TensorInfo {
  const id = b.dataId as object;
  const kept = keptTransposes.get(id);
  if (kept) return kept;
  const t = swapLast(b);
  if (batch <= 1) {
    if (transposedOnce.has(id)) keptTransposes.set(id, t);
    else transposedOnce.add(id);
  }
  return t;
}

/** One plain product `[m, k]·[k, n]` by XNNPACK, on registered tensor ids. */
function multiply(
  [aId, m, k]: [number, number, number],
  [bId, n]: [number, number],
  outId: number,
): void {
  product!(aId, shapeBytes([1, m, k]), 3, bId, shapeBytes([1, k, n]), 3, false, false, outId);
}

/**
 * A tensor id over `size` floats of the wasm heap at `offset`, for one call; releasing it
 * (`disposeData`) also frees the XNNPACK operator tfjs caches on a right-hand id.
 */
function view(backend: WasmBackend, offset: number, size: number): number {
  const id = backend.dataIdNextNumber++;
  backend.wasm.tfjs.registerTensor(id, size, offset);
  return id;
}

function shapeBytes(shape: number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}

function size(shape: number[]): number {
  return shape.reduce((x, y) => x * y, 1);
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
