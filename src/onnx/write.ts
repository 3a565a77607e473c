/**
 * Writing an exported model folder (`export.ts`'s files) from Deno, whole or not at all: the
 * files go into a temporary folder beside the target, which is renamed into place once every
 * file is written. A folder that is left half-written (a crash, a full disk) keeps its temporary
 * name, so it never looks like a complete export.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { VitLoraError } from "../core/errors.ts";
import { exists } from "../core/files.ts";

/** Whether `dir` looks like a folder this module exported (config.json and onnx/). */
async function isExportFolder(dir: string): Promise<boolean> {
  const entries: string[] = [];
  for await (const e of Deno.readDir(dir)) entries.push(e.name);
  if (entries.length === 0) return true;
  return entries.includes("config.json") && entries.includes("onnx");
}

/**
 * Whether `target` exists; it may only when it is an earlier export (or empty), else a
 * {@link VitLoraError} says so.
 */
async function replaceable(target: string): Promise<boolean> {
  if (!(await exists(target))) return false;
  const info = await Deno.stat(target);
  if (!info.isDirectory || !(await isExportFolder(target))) {
    throw new VitLoraError(
      `${target}: exists and is not an exported model folder; give another --out`,
    );
  }
  return true;
}

/** `e` as one line naming `target`: a {@link VitLoraError} as it is, else "cannot write". */
function writeError(target: string, e: unknown): VitLoraError {
  if (e instanceof VitLoraError) return e;
  return new VitLoraError(`${target}: cannot write: ${(e as Error).message.split("\n")[0]}`, {
    cause: e,
  });
}

/**
 * Checks, before anything is exported, that {@link writeOnnxFolder} may write `dir`: it is not
 * something else than an earlier export, and its parent folder can be made and written to. A
 * {@link VitLoraError} names the folder and says what is wrong.
 */
export async function checkOnnxFolder(dir: string): Promise<void> {
  const target = dir.replace(/\/+$/, "") || dir;
  const probe = join(
    dirname(target),
    `.${basename(target)}.probe-${crypto.randomUUID().slice(0, 8)}`,
  );
  try {
    await replaceable(target);
    await Deno.mkdir(dirname(target), { recursive: true });
    await Deno.mkdir(probe);
    await Deno.remove(probe);
  } catch (e) {
    throw writeError(target, e);
  }
}

/**
 * Writes `files` (paths relative to the folder, `/`-separated) into `dir`: into a temporary
 * sibling folder first, renamed to `dir` when complete. An existing `dir` is replaced only when
 * it is empty or an earlier export (it holds `config.json` and `onnx/`); anything else there is
 * an error, as is a folder that cannot be written (one {@link VitLoraError} line naming it).
 *
 * @example
 * ```ts
 * import { writeOnnxFolder } from "./write.ts";
 * const dir = await Deno.makeTempDir();
 * // the files of exportOnnx(clf) (export.ts), here two small ones
 * const files = new Map([["config.json", new TextEncoder().encode("{}")], [
 *   "onnx/model.onnx",
 *   new Uint8Array(4),
 * ]]);
 * await writeOnnxFolder(`${dir}/exported`, files);
 * console.log((await Deno.stat(`${dir}/exported/onnx/model.onnx`)).size); // 4
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeOnnxFolder(dir: string, files: Map<string, Uint8Array>): Promise<void> {
  const target = dir.replace(/\/+$/, "") || dir;
  const parent = dirname(target);
  const tmp = join(
    parent,
    `.${basename(target)}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`,
  );
  let old: string | undefined;
  try {
    if (await replaceable(target)) old = `${tmp}-old`;
    await Deno.mkdir(parent, { recursive: true });
    await Deno.mkdir(tmp);
    for (const [path, bytes] of files) {
      const file = join(tmp, ...path.split("/"));
      await Deno.mkdir(dirname(file), { recursive: true });
      await Deno.writeFile(file, bytes);
    }
    if (old) await Deno.rename(target, old);
    try {
      await Deno.rename(tmp, target);
    } catch (e) {
      if (old) await Deno.rename(old, target).catch(() => {}); // the earlier export back
      old = undefined;
      throw e;
    }
    if (old) await Deno.remove(old, { recursive: true });
  } catch (e) {
    throw writeError(target, e);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}
