/**
 * Reading and writing the safetensors format
 * (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length, a JSON
 * header `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?}`, then the raw
 * little-endian tensor bytes.
 *
 * Floating-point tensors (F32, F16, BF16, F64) are read as float32; integer and boolean
 * tensors as int32 (an I64 value outside int32's range is an error). Every offset and size is
 * checked against the header and the file before anything is read, and each tensor is read
 * into its own buffer, so a 346 MB checkpoint costs 346 MB, not several copies of it.
 *
 * @module
 */

import { VitLoraError } from "../core/errors.ts";
import { formatShape } from "../core/shapes.ts";
import { float16Value } from "../core/float16.ts";

/** The element types of the safetensors format that this module reads. */
export type SafetensorsDtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U8"
  | "BOOL";

const ITEM_SIZE: Record<SafetensorsDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

const FLOAT_DTYPES = new Set<SafetensorsDtype>(["F64", "F32", "F16", "BF16"]);

/** Largest header this reader accepts (the format's own limit is 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

/** One tensor's entry in a safetensors header. */
export interface SafetensorsEntry {
  /** Element type as stored in the file. */
  dtype: SafetensorsDtype;
  /** Dimensions, outermost first. */
  shape: number[];
  /** Byte range `[begin, end)` relative to the end of the header. */
  data_offsets: [number, number];
}

/** A tensor read from a safetensors file: float types as float32, integer types as int32. */
export interface TensorData {
  /** Element type as stored in the file. */
  dtype: SafetensorsDtype;
  /** Dimensions, outermost first. */
  shape: number[];
  /** Values in row-major order. */
  data: Float32Array | Int32Array;
}

/** A float32 tensor to write. */
export interface Float32TensorData {
  /** Dimensions, outermost first. */
  shape: readonly number[];
  /** Values in row-major order; its length must be the product of `shape`. */
  data: Float32Array;
}

/**
 * A float32 tensor's shape and values, read back from its backend: what
 * {@link writeSafetensors} writes and what workers receive.
 */
export async function tensorData(
  t: { shape: readonly number[]; data(): Promise<unknown> },
): Promise<Float32TensorData> {
  return { shape: t.shape, data: (await t.data()) as Float32Array };
}

/** A parsed and validated header. */
export interface SafetensorsHeader {
  /** The `__metadata__` map, empty when the file has none. */
  metadata: Record<string, string>;
  /** Tensor entries by name, in the order the header lists them. */
  entries: Map<string, SafetensorsEntry>;
  /** Byte offset of the tensor data in the file (8 + header length). */
  dataStart: number;
}

/** Throws a `VitLoraError` naming `source`. */
export function fail(source: string, what: string): never {
  throw new VitLoraError(`${source}: ${what}`);
}

/**
 * Parses and validates a header. `readHead(n)` gives the file's first `n` bytes; `fileSize`
 * is the whole file's size, against which every offset is checked.
 */
export function parseHeader(
  source: string,
  readHead: (n: number) => Uint8Array,
  fileSize: number,
): SafetensorsHeader {
  if (fileSize < 8) {
    fail(source, `not a safetensors file: ${fileSize} bytes, too short for a header`);
  }
  const lenBytes = readHead(8);
  const headerLen64 = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLen64 > BigInt(Math.min(MAX_HEADER_BYTES, fileSize - 8))) {
    fail(
      source,
      `header length ${headerLen64} runs past the end of the file (${fileSize} bytes): truncated or not a safetensors file`,
    );
  }
  const headerLen = Number(headerLen64);
  const headerBytes = readHead(8 + headerLen).subarray(8);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (e) {
    fail(source, `header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    fail(source, "header is not a JSON object");
  }
  const dataStart = 8 + headerLen;
  const dataSize = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const entries = new Map<string, SafetensorsEntry>();
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        fail(source, "__metadata__ is not an object");
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") fail(source, `__metadata__.${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    entries.set(name, checkEntry(source, name, value, dataSize));
  }
  // Tensors may not overlap (the format requires them to be contiguous; overlapping ones lie).
  const sorted = [...entries].sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
  for (let i = 1; i < sorted.length; i++) {
    const [prevName, prev] = sorted[i - 1];
    const [name, entry] = sorted[i];
    if (entry.data_offsets[0] < prev.data_offsets[1]) {
      fail(source, `tensor '${name}' overlaps tensor '${prevName}' in the data section`);
    }
  }
  return { metadata, entries, dataStart };
}

function checkEntry(
  source: string,
  name: string,
  value: unknown,
  dataSize: number,
): SafetensorsEntry {
  const where = `tensor '${name}'`;
  if (typeof value !== "object" || value === null) fail(source, `${where}: entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== "string" || !(dtype in ITEM_SIZE)) {
    fail(source, `${where}: unsupported dtype ${JSON.stringify(dtype)}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(source, `${where}: shape ${JSON.stringify(shape)} is not a list of sizes`);
  }
  if (
    !Array.isArray(offsets) || offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[1] < offsets[0]
  ) {
    fail(source, `${where}: data_offsets ${JSON.stringify(offsets)} is not a range [begin, end]`);
  }
  const [begin, end] = offsets as [number, number];
  const expected = (shape as number[]).reduce((a, b) => a * b, 1) *
    ITEM_SIZE[dtype as SafetensorsDtype];
  if (end - begin !== expected) {
    fail(
      source,
      `${where}: ${dtype} ${
        formatShape(shape as number[])
      } needs ${expected} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`,
    );
  }
  if (end > dataSize) {
    fail(
      source,
      `${where}: data_offsets [${begin}, ${end}] run past the end of the data (${dataSize} bytes): the file is truncated or its header lies`,
    );
  }
  return {
    dtype: dtype as SafetensorsDtype,
    shape: shape as number[],
    data_offsets: [begin, end],
  };
}

let halfTable: Float32Array | undefined;

/** Decodes one tensor's raw little-endian bytes (a fresh, exactly-sized buffer). */
export function decodeTensor(
  source: string,
  name: string,
  entry: SafetensorsEntry,
  bytes: Uint8Array,
): TensorData {
  const { dtype, shape } = entry;
  const n = bytes.byteLength / ITEM_SIZE[dtype];
  // Copy only when the bytes are not already an aligned buffer of their own.
  const own = bytes.byteOffset % 8 === 0 ? bytes : bytes.slice();
  const buf = own.buffer as ArrayBuffer;
  const off = own.byteOffset;
  let data: Float32Array | Int32Array;
  switch (dtype) {
    case "F32":
      data = new Float32Array(buf, off, n);
      break;
    case "F64":
      data = Float32Array.from(new Float64Array(buf, off, n));
      break;
    case "F16": {
      if (!halfTable) {
        halfTable = new Float32Array(65536);
        for (let i = 0; i < 65536; i++) halfTable[i] = float16Value(i);
      }
      const src = new Uint16Array(buf, off, n);
      data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = halfTable[src[i]];
      break;
    }
    case "BF16": {
      const src = new Uint16Array(buf, off, n);
      const bits = new Uint32Array(n);
      for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
      data = new Float32Array(bits.buffer);
      break;
    }
    case "I64": {
      const src = new BigInt64Array(buf, off, n);
      data = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = src[i];
        if (v > 2147483647n || v < -2147483648n) {
          fail(source, `tensor '${name}': I64 value ${v} at index ${i} does not fit in int32`);
        }
        data[i] = Number(v);
      }
      break;
    }
    case "I32":
      data = new Int32Array(buf, off, n);
      break;
    case "I16":
      data = Int32Array.from(new Int16Array(buf, off, n));
      break;
    case "I8":
      data = Int32Array.from(new Int8Array(buf, off, n));
      break;
    case "U8":
    case "BOOL":
      data = Int32Array.from(new Uint8Array(buf, off, n));
      break;
  }
  return { dtype, shape: [...shape], data };
}

/**
 * Tensors read one at a time, by name, from a safetensors file or bytes: what loading checks
 * and reads a checkpoint through.
 */
export interface TensorStore {
  /** Where the tensors come from, for messages (a path or a URL). */
  readonly path: string;
  /** Tensor entries by name. */
  readonly entries: Map<string, SafetensorsEntry>;
  /** Reads one tensor (float types as float32, integer types as int32). */
  read(name: string): Promise<TensorData>;
}

/**
 * Safetensors bytes in memory (e.g. fetched in a web page) as a {@link TensorStore}: the
 * header is checked against the bytes' length now, each tensor decoded when read.
 *
 * @example
 * ```ts
 * import { encodeSafetensors, safetensorsFromBytes } from "@lora/vit/model";
 * const bytes = encodeSafetensors({ w: { shape: [2], data: new Float32Array([1, 2]) } });
 * const store = safetensorsFromBytes(bytes, "w.safetensors");
 * console.log((await store.read("w")).data); // Float32Array [1, 2]
 * ```
 */
export function safetensorsFromBytes(bytes: Uint8Array, source: string): TensorStore {
  const header = parseHeader(source, (n) => bytes.subarray(0, n), bytes.byteLength);
  return {
    path: source,
    entries: header.entries,
    read(name: string): Promise<TensorData> {
      const entry = header.entries.get(name);
      if (!entry) fail(source, `no tensor named '${name}'`);
      const [begin, end] = entry.data_offsets;
      const raw = bytes.slice(header.dataStart + begin, header.dataStart + end);
      return Promise.resolve(decodeTensor(source, name, entry, raw));
    },
  };
}

/**
 * Parses safetensors bytes already in memory (`source` names them in errors). The returned
 * tensors do not share memory with `bytes`.
 *
 * @example
 * ```ts
 * import { decodeSafetensors, encodeSafetensors } from "@lora/vit/model";
 * const bytes = encodeSafetensors({ w: { shape: [2], data: new Float32Array([1, 2]) } });
 * console.log(decodeSafetensors(bytes).get("w")?.data); // Float32Array [1, 2]
 * ```
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  source = "<safetensors bytes>",
): Map<string, TensorData> {
  const header = parseHeader(source, (n) => bytes.subarray(0, n), bytes.byteLength);
  const out = new Map<string, TensorData>();
  for (const [name, entry] of header.entries) {
    const [begin, end] = entry.data_offsets;
    const raw = bytes.slice(header.dataStart + begin, header.dataStart + end);
    out.set(name, decodeTensor(source, name, entry, raw));
  }
  return out;
}

/**
 * Encodes float32 tensors as safetensors bytes: the header lists tensors in the order given,
 * carries `__metadata__` (`{"format": "pt"}` unless `metadata` says otherwise) and is padded
 * with spaces to a multiple of 8 bytes, as the Rust and Python writers do.
 *
 * @example
 * ```ts
 * import { encodeSafetensors } from "@lora/vit/model";
 * const bytes = encodeSafetensors({
 *   "classifier.bias": { shape: [3], data: new Float32Array([0.1, 0.2, 0.3]) },
 * });
 * console.log(bytes.length % 8); // 4: 8-byte length + padded header + 12 data bytes
 * ```
 */
export function encodeSafetensors(
  tensors: Record<string, Float32TensorData>,
  metadata: Record<string, string> = { format: "pt" },
): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== n) {
      throw new VitLoraError(
        `tensor '${name}': ${t.data.length} values do not fill shape ${formatShape(t.shape)}`,
      );
    }
    header[name] = { dtype: "F32", shape: [...t.shape], data_offsets: [offset, offset + 4 * n] };
    offset += 4 * n;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const t of Object.values(tensors)) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

/** True for the float dtypes (read as float32). */
export function isFloatDtype(dtype: SafetensorsDtype): boolean {
  return FLOAT_DTYPES.has(dtype);
}
