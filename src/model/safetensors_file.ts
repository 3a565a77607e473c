/**
 * safetensors files on disk (Deno): a file opened for reading, its tensors read one at a time on
 * demand, a whole file read, and float32 tensors written atomically. The format itself (headers,
 * dtypes, bytes) is in `safetensors.ts`, which the browser shares.
 *
 * @module
 */

import { writeFileAtomic } from "../core/files.ts";
import {
  decodeTensor,
  encodeSafetensors,
  fail,
  type Float32TensorData,
  parseHeader,
  type SafetensorsEntry,
  type SafetensorsHeader,
  type TensorData,
  type TensorStore,
} from "./safetensors.ts";

/**
 * A safetensors file opened for reading: the header is parsed and validated, tensors are read
 * one at a time on demand. Close it when done.
 *
 * @example
 * ```ts ignore
 * import { openSafetensors } from "./safetensors_file.ts";
 * using file = await openSafetensors("model/model.safetensors");
 * console.log([...file.entries.keys()]);
 * const cls = await file.read("embeddings.cls_token"); // { dtype, shape, data }
 * ```
 */
export class SafetensorsFile implements Disposable, TensorStore {
  /** The path the file was opened from, used in error messages. */
  readonly path: string;
  /** The `__metadata__` map. */
  readonly metadata: Record<string, string>;
  /** Tensor entries by name. */
  readonly entries: Map<string, SafetensorsEntry>;
  #file: Deno.FsFile;
  #dataStart: number;

  /** Use {@link openSafetensors}. */
  constructor(path: string, file: Deno.FsFile, header: SafetensorsHeader) {
    this.path = path;
    this.#file = file;
    this.metadata = header.metadata;
    this.entries = header.entries;
    this.#dataStart = header.dataStart;
  }

  /** Reads one tensor (float types as float32, integer types as int32). */
  async read(name: string): Promise<TensorData> {
    const entry = this.entries.get(name);
    if (!entry) fail(this.path, `no tensor named '${name}'`);
    const [begin, end] = entry.data_offsets;
    const bytes = new Uint8Array(end - begin);
    await this.#file.seek(this.#dataStart + begin, Deno.SeekMode.Start);
    for (let got = 0; got < bytes.length;) {
      const n = await this.#file.read(bytes.subarray(got));
      if (n === null) fail(this.path, `tensor '${name}': file ended while reading its data`);
      got += n;
    }
    return decodeTensor(this.path, name, entry, bytes);
  }

  /** Closes the file. */
  close(): void {
    this.#file.close();
  }

  /** Closes the file (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Opens a safetensors file and validates its header against its size.
 *
 * @example
 * ```ts ignore
 * import { openSafetensors } from "./safetensors_file.ts";
 * const file = await openSafetensors("adapter/adapter_model.safetensors");
 * for (const [name, e] of file.entries) console.log(name, e.dtype, e.shape);
 * file.close();
 * ```
 */
export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) fail(path, "file not found");
    fail(path, `cannot open: ${(e as Error).message}`);
  }
  try {
    const { size } = await file.stat();
    // Read the 8-byte length, then the header, through the file handle.
    let head = new Uint8Array(0);
    const readHead = (n: number): Uint8Array => {
      if (head.length < n) {
        const more = new Uint8Array(n);
        file.seekSync(0, Deno.SeekMode.Start);
        for (let got = 0; got < n;) {
          const r = file.readSync(more.subarray(got));
          if (r === null) fail(path, "file ended inside its header");
          got += r;
        }
        head = more;
      }
      return head.subarray(0, n);
    };
    return new SafetensorsFile(path, file, parseHeader(path, readHead, size));
  } catch (e) {
    file.close();
    throw e;
  }
}

/**
 * Reads every tensor of a safetensors file.
 *
 * @example
 * ```ts ignore
 * import { readSafetensors } from "./safetensors_file.ts";
 * const tensors = await readSafetensors("adapter/adapter_model.safetensors");
 * console.log(tensors.get("base_model.model.classifier.bias")?.shape);
 * ```
 */
export async function readSafetensors(path: string): Promise<Map<string, TensorData>> {
  using file = await openSafetensors(path);
  const out = new Map<string, TensorData>();
  for (const name of file.entries.keys()) out.set(name, await file.read(name));
  return out;
}

/**
 * Writes float32 tensors to a safetensors file, atomically: the bytes go to a temporary
 * file beside `path`, which is then renamed over it, so a crash never leaves half a file.
 *
 * @example
 * ```ts ignore
 * import { writeSafetensors } from "./safetensors_file.ts";
 * await writeSafetensors("out/weights.safetensors", {
 *   "classifier.weight": { shape: [2, 2], data: new Float32Array([1, 0, 0, 1]) },
 * });
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, Float32TensorData>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}
