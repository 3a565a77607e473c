/**
 * A native BLAS (OpenBLAS) through Deno's FFI, for the CPU path's matrix products: tfjs's
 * wasm backend reaches ~20 GFLOP/s a core through XNNPACK's 128-bit SIMD, OpenBLAS's
 * AVX2/AVX-512 kernels 80–100 (measured on this project's 2-core AMD EPYC: 87 GFLOP/s for a
 * `[1576, 768]·[768, 3072]` product on one thread, 177 on two). `wasm_kernels.ts` hands
 * every float32 product of the wasm backend to `cblas_sgemm`, on the wasm heap in place.
 *
 * The library is looked for at `VIT_LORA_BLAS` (when that variable may be read), else at the
 * usual places of Debian's and Fedora's `libopenblas0` packages and Homebrew's `openblas`.
 * It is used only when the process may load it (`--allow-ffi`, or `--allow-ffi=<its path>`);
 * otherwise, or when no library is found, the products stay on XNNPACK, and the reason is
 * printed once when the wasm backend starts (see {@link blasStatus}).
 *
 * @module
 */

import { readEnv } from "../core/env.ts";

/**
 * The row-major `cblas_sgemm`, `C = alpha·op(A)·op(B) + beta·C`, on views of the operands
 * (each starting at its matrix's first element).
 */
export type Sgemm = (
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: Float32Array<ArrayBuffer>,
  lda: number,
  b: Float32Array<ArrayBuffer>,
  ldb: number,
  beta: number,
  c: Float32Array<ArrayBuffer>,
  ldc: number,
) => void;

/** A loaded BLAS. */
export interface Blas {
  /** The library's path. */
  path: string;
  /** What the library says it is (`openblas_get_config`), e.g. `OpenBLAS 0.3.21 … Cooperlake`. */
  config: string;
  /** The product, as the library computes it. */
  sgemm: Sgemm;
  /**
   * The product, each row of `C` the same whatever `m` is (see {@link ROW_STABLE_WORK}): what
   * the model uses, so that a batch split between replicas gives the logits it gives whole.
   */
  sgemmRows: Sgemm;
  /**
   * The period of `sgemmRows`' rows: a row's value depends on its index in the product modulo
   * this, and on nothing else (1 on most builds; 12 for OpenBLAS's Haswell kernels, whose lanes
   * of a 12-row block round differently). A batch split between replicas is cut at multiples of
   * it. Measured when the library loads.
   */
  rowPeriod: number;
  /** Sets the threads a product may use (OpenBLAS's own pool). */
  setThreads(n: number): void;
  /** The threads a product may use. */
  threads(): number;
}

/** Whether a BLAS is in use, and why not when it is not. */
export interface BlasStatus {
  /** The library, when one was loaded. */
  blas?: Blas;
  /** One line saying why none is used (absent when one is). */
  reason?: string;
  /** True when none is used because `VIT_LORA_BLAS=off` asked so (nothing to announce). */
  quiet?: boolean;
}

/** Where OpenBLAS's shared library usually is, in order. */
export const BLAS_CANDIDATES: readonly string[] = [
  "/usr/lib/x86_64-linux-gnu/libopenblas.so.0", // Debian, Ubuntu: libopenblas0(-pthread)
  "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
  "/usr/lib64/libopenblas.so.0", // Fedora: openblas
  "/usr/lib/libopenblas.so.0", // Arch, Alpine
  "/opt/homebrew/opt/openblas/lib/libopenblas.dylib", // Homebrew
  "/usr/local/opt/openblas/lib/libopenblas.dylib",
];

/**
 * OpenBLAS computes some rows of a product with other code than the rest, whose rounding then
 * differs in the last bit from the same row computed as part of another product:
 * - small products (`m·n·k` up to about 100³ on AVX-512 builds) go to kernels of their own
 *   whose rounding depends on `m`, the rows of `C`;
 * - the blocked kernels take rows in blocks of their unroll (12 or 16 rows for the Haswell
 *   kernels, which `OPENBLAS_CORETYPE=Haswell` also picks on newer CPUs) and the last rows
 *   that fill no block go through a tail kernel of their own.
 *
 * So {@link rowStable} computes the rows of a product that fill whole blocks of
 * {@link ROW_BLOCK} in place, and the rest (or a product of fewer multiply-adds than this)
 * padded with zero rows to a product of more work than this and a multiple of
 * {@link ROW_BLOCK} rows. Every row's value is then independent of the batch it came in.
 * `tests/backend/blas_test.ts` checks the property.
 */
export const ROW_STABLE_WORK = 2 ** 21;

/** Rows a product is cut into: a multiple of every kernel's row unroll (4, 6, 8, 12, 16, 24, 32). */
export const ROW_BLOCK = 96;

const ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;

const SYMBOLS = {
  cblas_sgemm: {
    parameters: [
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "f32",
      "buffer",
      "i32",
      "buffer",
      "i32",
      "f32",
      "buffer",
      "i32",
    ],
    result: "void",
  },
  openblas_set_num_threads: { parameters: ["i32"], result: "void" },
  openblas_get_num_threads: { parameters: [], result: "i32" },
  openblas_get_config: { parameters: [], result: "pointer" },
} as const;

let status: BlasStatus | undefined;

/**
 * The BLAS this process uses, loaded on the first call: the first library of `VIT_LORA_BLAS`
 * and {@link BLAS_CANDIDATES} that exists and may be loaded; `{ reason }` when there is none.
 * `VIT_LORA_BLAS=off` turns it off.
 */
export function blasStatus(): BlasStatus {
  return status ??= loadBlas();
}

/** {@link blasStatus}'s library, or undefined. */
export function blas(): Blas | undefined {
  return blasStatus().blas;
}

function loadBlas(): BlasStatus {
  if (typeof Deno === "undefined" || typeof Deno.dlopen !== "function") {
    return { reason: "no FFI in this runtime (a browser): products on XNNPACK", quiet: true };
  }
  const chosen = readEnv("VIT_LORA_BLAS");
  if (chosen === "off" || chosen === "0") {
    return { reason: "VIT_LORA_BLAS=off: matrix products stay on XNNPACK (wasm)", quiet: true };
  }
  const candidates = chosen ? [chosen] : BLAS_CANDIDATES;
  const path = candidates.find(exists);
  if (!path) {
    return {
      reason: chosen
        ? `VIT_LORA_BLAS=${chosen} does not exist: matrix products stay on XNNPACK (wasm)`
        : "no OpenBLAS found (apt-get install libopenblas0-pthread, or set VIT_LORA_BLAS): matrix products stay on XNNPACK (wasm), 4–5× slower",
    };
  }
  if (!mayLoad(path)) {
    return {
      reason:
        `OpenBLAS is at ${path} but the process may not load it (run with --allow-ffi=${path}): matrix products stay on XNNPACK (wasm), 4–5× slower`,
    };
  }
  try {
    const lib = Deno.dlopen(path, SYMBOLS);
    const s = lib.symbols;
    let config = "OpenBLAS";
    try {
      // reading the string needs --allow-ffi without a path; the library itself does not
      const pointer = s.openblas_get_config();
      if (pointer) config = Deno.UnsafePointerView.getCString(pointer);
    } catch {
      // scoped permission: keep the plain name
    }
    const sgemm: Sgemm = (transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) =>
      s.cblas_sgemm(
        ROW_MAJOR,
        transA ? TRANS : NO_TRANS,
        transB ? TRANS : NO_TRANS,
        m,
        n,
        k,
        alpha,
        a,
        lda,
        b,
        ldb,
        beta,
        c,
        ldc,
      );
    s.openblas_set_num_threads(1); // one thread an isolate: replicas use the other cores
    const sgemmRows = rowStable(sgemm);
    return {
      blas: {
        path,
        config,
        sgemm,
        sgemmRows,
        rowPeriod: rowPeriod(sgemmRows),
        setThreads: (count) => s.openblas_set_num_threads(count),
        threads: () => s.openblas_get_num_threads(),
      },
    };
  } catch (e) {
    return {
      reason: `OpenBLAS at ${path} did not load (${
        (e as Error).message
      }): matrix products stay on XNNPACK (wasm)`,
    };
  }
}

let scratch = new Float32Array(0);

/** `sgemm` with every row computed the same way whatever `m` is (see {@link ROW_STABLE_WORK}). */
function rowStable(sgemm: Sgemm): Sgemm {
  return (transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) => {
    if (m === 0 || n === 0 || k === 0) {
      sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
      return;
    }
    // rows in whole blocks, in place, when that product is big enough for the blocked kernels
    let whole = m - m % ROW_BLOCK;
    if (whole * n * k <= ROW_STABLE_WORK) whole = 0;
    if (whole > 0) sgemm(transA, transB, whole, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (whole === m) return;
    // the rest padded with zero rows
    const tail = m - whole;
    const least = Math.max(tail, Math.floor(ROW_STABLE_WORK / (n * k)) + 1);
    const rows = Math.ceil(least / ROW_BLOCK) * ROW_BLOCK;
    if (scratch.length < rows * (k + n)) scratch = new Float32Array(rows * (k + n));
    const pa = scratch.subarray(0, rows * k), pc = scratch.subarray(rows * k, rows * (k + n));
    pa.fill(0);
    if (transA) {
      // A is [k, m] (lda): the padded one is [k, rows]
      for (let i = 0; i < k; i++) pa.set(a.subarray(i * lda + whole, i * lda + m), i * rows);
    } else {
      for (let i = 0; i < tail; i++) {
        pa.set(a.subarray((whole + i) * lda, (whole + i) * lda + k), i * k);
      }
    }
    if (beta !== 0) {
      for (let i = 0; i < tail; i++) {
        pc.set(c.subarray((whole + i) * ldc, (whole + i) * ldc + n), i * n);
      }
    }
    sgemm(transA, transB, rows, n, k, alpha, pa, transA ? rows : k, b, ldb, beta, pc, n);
    for (let i = 0; i < tail; i++) c.set(pc.subarray(i * n, i * n + n), (whole + i) * ldc);
  };
}

/**
 * The smallest shift of a product's rows (a divisor of {@link ROW_BLOCK}) that leaves every
 * row's value as it was, measured on two shapes; `Infinity` when even {@link ROW_BLOCK} does not.
 */
function rowPeriod(sgemm: Sgemm): number {
  const periods = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 96];
  const rows = 2 * ROW_BLOCK;
  let worst = 1;
  for (const [n, k] of [[64, 64], [48, 192]]) {
    const a = Float32Array.from({ length: (rows + ROW_BLOCK) * k }, (_, i) => Math.sin(i * 0.37));
    const b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i * 0.21));
    const product = (first: number) => {
      const c = new Float32Array(rows * n);
      sgemm(false, false, rows, n, k, 1, a.subarray(first * k), k, b, n, 0, c, n);
      return c;
    };
    const base = product(0);
    const shifts = (p: number) => {
      const c = product(p);
      for (let i = 0; i < (rows - p) * n; i++) if (c[i] !== base[p * n + i]) return false;
      return true;
    };
    const period = periods.find(shifts) ?? Infinity;
    worst = period === Infinity || worst === Infinity
      ? Infinity
      : (worst * period) / gcd(worst, period);
  }
  return worst;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function exists(path: string): boolean {
  try {
    if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") return false;
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

function mayLoad(path: string): boolean {
  try {
    return Deno.permissions.querySync({ name: "ffi", path }).state === "granted";
  } catch {
    return false;
  }
}
