/**
 * tfjs-wasm's `BatchMatMul`, made to reach XNNPACK for every product the ViT asks for.
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
 *   view is a tensor id registered over a slice of the wasm heap, so nothing is copied.
 *
 * The result is the same arithmetic as the plain product, per matrix; a test holds it
 * against the cpu backend.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";

/** The parts of tfjs-wasm's backend object this kernel uses (not in its public types). */
interface WasmBackend {
  wasm: {
    cwrap(name: string, ret: null, args: string[]): (...args: unknown[]) => void;
    tfjs: {
      registerTensor(id: number, size: number, offset: number): void;
      disposeData(id: number): void;
    };
  };
  dataIdMap: { get(dataId: unknown): { id: number; memoryOffset: number } };
  dataIdNextNumber: number;
  makeOutput(shape: number[], dtype: "float32"): tf.TensorInfo;
  disposeData(dataId: unknown): void;
}

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

/** Replaces tfjs-wasm's `BatchMatMul` kernel (once, at import of the backend module). */
export function registerWasmMatMul(): void {
  const original = tf.getKernel(tf.BatchMatMul, "wasm");
  const transpose = tf.getKernel(tf.Transpose, "wasm");
  if (!original || !transpose) return;
  tf.unregisterKernel(tf.BatchMatMul, "wasm");
  tf.registerKernel({
    ...original,
    setupFunc: (backend) => {
      original.setupFunc?.(backend); // binds the wasm function the original kernel calls
      product = (backend as unknown as WasmBackend).wasm.cwrap(
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
      const bt = transposeB ? swapLast(b) : b; // [...batchB, k, n]
      const [m, k] = at.shape.slice(-2);
      const n = bt.shape[bt.shape.length - 1];
      const outBatch = tf.broadcast_util.assertAndGetBroadcastShape(batchA, batchB);
      const out = backend.makeOutput([...outBatch, m, n], "float32");
      const offset = (t: tf.TensorInfo) => backend.dataIdMap.get(t.dataId).memoryOffset;
      const [aBase, bBase, outBase] = [offset(at), offset(bt), offset(out)];
      if (sizeB <= 1) {
        // one right-hand matrix: the whole batch is one tall product
        multiply(backend, [aBase, sizeA * m, k], [bBase, n], outBase);
      } else {
        for (let i = 0; i < sizeB; i++) {
          const aOffset = aBase + (sizeA === 1 ? 0 : i * m * k * 4);
          multiply(backend, [aOffset, m, k], [bBase + i * k * n * 4, n], outBase + i * m * n * 4);
        }
      }
      if (at !== a) backend.disposeData(at.dataId);
      if (bt !== b) backend.disposeData(bt.dataId);
      return out;
    },
  });
}

/**
 * One plain product `[m, k]·[k, n]` by XNNPACK, on operands at heap offsets: each is
 * registered as a tensor id of its own for the call and released after (which also frees
 * the XNNPACK operator tfjs caches on the right-hand id).
 */
function multiply(
  backend: WasmBackend,
  [aOffset, m, k]: [number, number, number],
  [bOffset, n]: [number, number],
  outOffset: number,
): void {
  const { registerTensor, disposeData } = backend.wasm.tfjs;
  const aId = backend.dataIdNextNumber++;
  const bId = backend.dataIdNextNumber++;
  const outId = backend.dataIdNextNumber++;
  registerTensor(aId, m * k, aOffset);
  registerTensor(bId, k * n, bOffset);
  registerTensor(outId, m * n, outOffset);
  try {
    product!(aId, shapeBytes([1, m, k]), 3, bId, shapeBytes([1, k, n]), 3, false, false, outId);
  } finally {
    disposeData(aId);
    disposeData(bId);
    disposeData(outId);
  }
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
