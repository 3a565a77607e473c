/**
 * Small file helpers shared by the loaders and writers: JSON read with errors that name the
 * file, and atomic writes (temporary file + rename).
 *
 * @module
 */

import { VitLoraError } from "./errors.ts";

/**
 * Writes bytes or text to `path` through a temporary file in the same folder and a rename,
 * so readers see the old file or the new one, never a partial one.
 */
export async function writeFileAtomic(path: string, content: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    if (typeof content === "string") await Deno.writeTextFile(tmp, content);
    else await Deno.writeFile(tmp, content);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new VitLoraError(`${path}: cannot write: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Writes files by name into `dir` (created if needed), each atomically (see
 * {@link writeFileAtomic}), in the map's order.
 */
export async function writeFiles(dir: string, files: Map<string, Uint8Array>): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, bytes] of files) await writeFileAtomic(`${dir}/${name}`, bytes);
}

/**
 * Reads and parses a JSON file; a missing file or bad JSON is a {@link VitLoraError} naming it.
 */
export async function readJsonFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new VitLoraError(`${path}: file not found`);
    throw new VitLoraError(`${path}: cannot read: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new VitLoraError(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** True when `path` exists (file or folder). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
