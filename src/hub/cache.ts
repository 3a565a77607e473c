/**
 * The standard Hugging Face cache, laid out as Python's `huggingface_hub` lays it out, so
 * either side reuses the other's files:
 *
 * ```
 * $HF_HUB_CACHE (else $HF_HOME/hub, else ~/.cache/huggingface/hub)
 *   models--google--vit-base-patch16-224-in21k/
 *     blobs/<etag>                     the file's bytes, named by its sha256 (or git oid)
 *     refs/main                        the commit "main" resolved to
 *     snapshots/<commit>/config.json   → ../../blobs/<etag>
 *   datasets--ethz--food101/…
 * ```
 *
 * @module
 */

import { dirname, join, relative } from "node:path";
import { exists } from "../core/files.ts";
import { COMMIT, type HubRepo, type HubSettings } from "./settings.ts";

/** The repository's folder in the cache: `models--owner--name`. */
export function repoCacheDir(settings: HubSettings, repo: HubRepo): string {
  return join(settings.cacheDir, `${repo.type}s--${repo.id.replaceAll("/", "--")}`);
}

/** The commit `revision` resolved to last time, from `refs/`. */
export async function readRef(storage: string, revision: string): Promise<string | undefined> {
  if (COMMIT.test(revision)) return revision;
  try {
    return (await Deno.readTextFile(join(storage, "refs", revision))).trim();
  } catch {
    return undefined;
  }
}

/** The cached copy of a file at `revision`, `null` if the Hub said it has none, else undefined. */
export async function fromCache(
  storage: string,
  revision: string,
  path: string,
): Promise<string | null | undefined> {
  const commit = await readRef(storage, revision);
  if (!commit) return undefined;
  const pointer = join(storage, "snapshots", commit, path);
  if (await exists(pointer)) return pointer;
  if (await exists(join(storage, ".no_exist", commit, path))) return null;
  return undefined;
}

/** Points `snapshots/<commit>/<path>` at the blob (a relative symlink, as Python makes it). */
export async function link(blob: string, pointer: string): Promise<void> {
  await Deno.mkdir(dirname(pointer), { recursive: true });
  await Deno.remove(pointer).catch(() => {});
  try {
    await Deno.symlink(relative(dirname(pointer), blob), pointer);
  } catch {
    await Deno.copyFile(blob, pointer); // no symlinks here (some Windows setups): a copy
  }
}

/** Every file under a snapshot folder (relative paths). */
export async function listCached(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(join(dir, prefix))) {
      const rel = prefix ? `${prefix}/${e.name}` : e.name;
      if (e.isDirectory) out.push(...await listCached(dir, rel));
      else out.push(rel);
    }
  } catch {
    // no such snapshot
  }
  return out;
}

/** The snapshot folder that a file pointer `snapshots/<commit>/<path>` lies in. */
export function snapshotOf(pointer: string, path: string): string {
  return pointer.slice(0, pointer.length - path.length - 1);
}
