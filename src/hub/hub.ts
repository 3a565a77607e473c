/**
 * The Hugging Face Hub as a source: models, adapters and parquet datasets downloaded into the
 * standard Hugging Face cache (`cache.ts`), the one Python's `huggingface_hub` uses, with its
 * settings from the environment (`settings.ts`).
 *
 * Listing a repository's files goes through npm:@huggingface/hub (`listFiles`: the tree API
 * with its pagination). Downloading into the cache follows `huggingface_hub`'s protocol here:
 * the library's own `downloadFileToCacheDir` files a blob under the commit that last touched
 * the file rather than under the commit the revision points to, writes no `refs/`, neither
 * resumes a partial download nor checks the result, so neither cache could use the other's
 * files and an interrupted 470 MB shard would start over.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { createHash } from "node:crypto";
import { listFiles } from "@huggingface/hub";
import {
  COMMIT,
  describe,
  type HubDownloadOptions,
  type HubRepo,
  type HubSettings,
  hubSettings,
  repoUrl,
} from "./settings.ts";
import { isRepoId, parseRepoId } from "./ids.ts";
import { fromCache, link, listCached, readRef, repoCacheDir, snapshotOf } from "./cache.ts";
import { VitLoraError } from "../core/errors.ts";
import { exists } from "../core/files.ts";
import { shardSplit } from "../data/parquet.ts";
import { formatBytes, Progress } from "../core/progress.ts";

/** A fetch that turns network and permission failures into one clear line. */
async function hubFetch(url: string, init: RequestInit, settings: HubSettings): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    const host = new URL(url).host;
    if (e instanceof Deno.errors.NotCapable || (e as Error)?.name === "NotCapable") {
      throw new VitLoraError(
        `network access to ${host} is not allowed: run with --allow-net=${host}`,
      );
    }
    throw new VitLoraError(
      `cannot reach ${host} (${
        (e as Error).message
      }); with HF_HUB_OFFLINE=1 only the cache (${settings.cacheDir}) is used`,
    );
  }
}

function authHeaders(settings: HubSettings, url: string): Record<string, string> {
  // the token goes to the Hub itself, never to the file CDN it redirects to
  const sameOrigin = new URL(url).origin === new URL(settings.endpoint).origin;
  return settings.token && sameOrigin ? { Authorization: `Bearer ${settings.token}` } : {};
}

/** One line for a failed answer: what to do about a 401, which repo/revision/file a 404 lacks. */
function statusError(
  res: Response,
  settings: HubSettings,
  repo: HubRepo,
  what: string,
  revision: string,
): VitLoraError {
  const code = res.headers.get("X-Error-Code");
  if (res.status === 401 || res.status === 403) {
    const how = settings.token
      ? `the token from ${settings.tokenSource} is not allowed to read it`
      : "set HF_TOKEN to a token that can read it (https://huggingface.co/settings/tokens)";
    return new VitLoraError(
      `${describe(repo)}: ${res.status} ${
        res.statusText || "Unauthorized"
      }: the repository is private or gated; ${how}`,
    );
  }
  if (res.status === 404) {
    if (code === "RevisionNotFound") {
      return new VitLoraError(
        `${describe(repo)}: no revision "${revision}" on ${settings.endpoint}`,
      );
    }
    if (code === "EntryNotFound") {
      return new VitLoraError(`${describe(repo)}@${revision}: no file ${what} in the repository`);
    }
    const hint = settings.token ? "" : " (if it is private, set HF_TOKEN)";
    return new VitLoraError(
      `${
        describe(repo)
      }: not found on ${settings.endpoint} (looking for ${what} at revision ${revision})${hint}`,
    );
  }
  return new VitLoraError(
    `${
      describe(repo)
    }: ${what} at revision ${revision}: the Hub answered ${res.status} ${res.statusText}`,
  );
}

interface FileMetadata {
  commit: string;
  etag: string;
  size: number;
  url: string;
}

/**
 * `huggingface_hub`'s `get_hf_file_metadata`: a HEAD on the resolve URL, redirects followed by
 * hand until the answer that carries the file's commit, etag and size (the Hub's 302 to its
 * file CDN carries them as `X-Repo-Commit`, `X-Linked-Etag`, `X-Linked-Size`).
 */
async function fileMetadata(
  settings: HubSettings,
  repo: HubRepo,
  path: string,
  revision: string,
): Promise<FileMetadata | null> {
  let url = `${repoUrl(settings, repo)}/resolve/${encodeURIComponent(revision)}/${
    path.split("/").map(encodeURIComponent).join("/")
  }`;
  for (let hop = 0; hop < 10; hop++) {
    const res = await hubFetch(url, {
      method: "HEAD",
      redirect: "manual",
      headers: { ...authHeaders(settings, url), "Accept-Encoding": "identity" },
    }, settings);
    const h = res.headers;
    const commit = h.get("X-Repo-Commit") ?? undefined;
    const isRedirect = res.status >= 300 && res.status < 400;
    if (res.status === 404 && h.get("X-Error-Code") === "EntryNotFound") return null;
    if (!isRedirect && !res.ok) throw statusError(res, settings, repo, path, revision);
    const location = isRedirect ? new URL(h.get("Location") ?? "", url).href : url;
    if (isRedirect && !commit && !h.get("X-Linked-Etag")) {
      url = location; // e.g. a renamed repository: follow, as Python does
      continue;
    }
    const etag = (h.get("X-Linked-Etag") ?? h.get("ETag") ?? "").replace(/^W\//, "").replaceAll(
      '"',
      "",
    );
    const size = Number(h.get("X-Linked-Size") ?? h.get("Content-Length"));
    if (!commit || !etag || !Number.isFinite(size)) {
      throw new VitLoraError(
        `${settings.endpoint}: the answer for ${
          describe(repo)
        }/${path} lacks X-Repo-Commit, ETag or size: is HF_ENDPOINT a Hugging Face Hub?`,
      );
    }
    return { commit, etag, size, url: location };
  }
  throw new VitLoraError(`${describe(repo)}/${path}: too many redirects`);
}

/** The file's sha256, or its git blob oid (sha1 of `blob <size>\0` + bytes), as hex. */
async function digest(path: string, algorithm: "sha256" | "sha1", size: number): Promise<string> {
  const hash = createHash(algorithm);
  if (algorithm === "sha1") hash.update(`blob ${size}\0`);
  using file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/** Downloads `url` to `blob`, resuming `blob.incomplete`, then checks its size and hash. */
async function downloadBlob(
  settings: HubSettings,
  meta: FileMetadata,
  blob: string,
  label: string,
  progress: boolean,
): Promise<void> {
  const partial = `${blob}.incomplete`;
  let have = 0;
  try {
    have = (await Deno.stat(partial)).size;
  } catch {
    // nothing yet
  }
  if (have > meta.size) have = 0;
  const res = have === meta.size && have > 0 ? undefined : await hubFetch(meta.url, {
    headers: {
      ...authHeaders(settings, meta.url),
      ...(have > 0 ? { Range: `bytes=${have}-` } : {}),
    },
  }, settings);
  if (res && !res.ok && res.status !== 416) {
    throw new VitLoraError(
      `${label}: download failed: ${res.status} ${res.statusText} from ${new URL(meta.url).host}`,
    );
  }
  if (res && res.status !== 416) {
    if (res.status !== 206) have = 0; // the server sent the whole file
    const bar = new Progress(progress ? {} : { write: () => {} });
    bar.start(label, meta.size, formatBytes);
    const file = await Deno.open(partial, {
      write: true,
      create: true,
      append: have > 0,
      truncate: have === 0,
    });
    let done = have, last = 0;
    try {
      for await (const chunk of res.body!) {
        await writeAll(file, chunk);
        done += chunk.length;
        if (done - last > meta.size / 200 || done === meta.size) {
          bar.update(done);
          last = done;
        }
      }
    } catch (e) {
      throw new VitLoraError(
        `${label}: the download broke off after ${formatBytes(done)} of ${
          formatBytes(meta.size)
        } (${(e as Error).message}); run again to resume it`,
      );
    } finally {
      file.close();
    }
  }
  const size = (await Deno.stat(partial)).size;
  const algorithm = /^[0-9a-f]{64}$/.test(meta.etag)
    ? "sha256"
    : /^[0-9a-f]{40}$/.test(meta.etag)
    ? "sha1"
    : undefined;
  const actual = algorithm && size === meta.size
    ? await digest(partial, algorithm, size)
    : meta.etag;
  if (size !== meta.size || actual !== meta.etag) {
    await Deno.remove(partial).catch(() => {});
    const what = size !== meta.size
      ? `${size} bytes, not the ${meta.size} the Hub reports`
      : `${algorithm} ${actual}, not the ${meta.etag} the Hub reports`;
    throw new VitLoraError(
      `${label}: the downloaded file is corrupt (${what}); it was deleted: run again`,
    );
  }
  await Deno.rename(partial, blob);
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
}

/**
 * One file of a repository, from the cache or downloaded into it: the path of
 * `snapshots/<commit>/<path>`, or `undefined` for a file the repository does not have when
 * `optional` is set. A file already in the cache at `revision` costs no request at all.
 *
 * @example
 * ```ts ignore
 * import { hubFile } from "@lora/vit/hub";
 * const repo = { type: "model", id: "google/vit-base-patch16-224-in21k" } as const;
 * const path = await hubFile(repo, "config.json"); // undefined only for an `optional` file
 * console.log(await Deno.readTextFile(path!));
 * ```
 */
export async function hubFile(
  repo: HubRepo,
  path: string,
  options: HubDownloadOptions & { optional?: boolean } = {},
): Promise<string | undefined> {
  const settings = options.settings ?? hubSettings();
  const revision = options.revision ?? "main";
  const storage = repoCacheDir(settings, repo);
  const cached = await fromCache(storage, revision, path);
  if (cached) return cached;
  if (cached === null) {
    if (options.optional) return undefined;
    throw new VitLoraError(`${describe(repo)}@${revision}: no file ${path} in the repository`);
  }
  if (settings.offline) {
    throw new VitLoraError(
      `${
        describe(repo)
      }/${path} (revision ${revision}) is not in the cache ${settings.cacheDir} and HF_HUB_OFFLINE=1 forbids downloading it: run once without HF_HUB_OFFLINE (or with huggingface-cli download ${repo.id}${
        repo.type === "dataset" ? " --repo-type dataset" : ""
      })`,
    );
  }
  const meta = await fileMetadata(settings, repo, path, revision);
  if (!meta) {
    // remember the absence, as Python does, so the next load needs no request
    const commit = await readRef(storage, revision);
    if (commit) {
      await Deno.mkdir(dirname(join(storage, ".no_exist", commit, path)), { recursive: true });
      await Deno.writeFile(join(storage, ".no_exist", commit, path), new Uint8Array());
    }
    if (options.optional) return undefined;
    throw new VitLoraError(`${describe(repo)}@${revision}: no file ${path} in the repository`);
  }
  if (!COMMIT.test(revision) && meta.commit !== revision) {
    await Deno.mkdir(dirname(join(storage, "refs", revision)), { recursive: true });
    await Deno.writeTextFile(join(storage, "refs", revision), meta.commit);
  }
  const pointer = join(storage, "snapshots", meta.commit, path);
  if (await exists(pointer)) return pointer;
  const blob = join(storage, "blobs", meta.etag);
  if (!(await exists(blob))) {
    await Deno.mkdir(dirname(blob), { recursive: true });
    await downloadBlob(settings, meta, blob, `${repo.id}/${path}`, options.progress ?? true);
  }
  await link(blob, pointer);
  return pointer;
}

/** Whether a repository has a file at the revision, without downloading it. */
async function hubFileExists(
  repo: HubRepo,
  path: string,
  options: HubDownloadOptions,
): Promise<boolean> {
  const settings = options.settings ?? hubSettings();
  const revision = options.revision ?? "main";
  const cached = await fromCache(repoCacheDir(settings, repo), revision, path);
  if (cached !== undefined || settings.offline) return Boolean(cached);
  return (await fileMetadata(settings, repo, path, revision)) !== null;
}

/**
 * A model from the Hub in Hugging Face layout (`config.json`, `model.safetensors`,
 * `preprocessor_config.json` when it has one): the snapshot folder, ready for
 * `loadClassifier`. A repository with only `pytorch_model.bin` is a clear error.
 */
export async function downloadModel(id: string, options: HubDownloadOptions = {}): Promise<string> {
  const repo: HubRepo = { type: "model", id };
  const config = (await hubFile(repo, "config.json", options))!;
  await hubFile(repo, "preprocessor_config.json", { ...options, optional: true });
  const weights = await hubFile(repo, "model.safetensors", { ...options, optional: true });
  if (!weights) {
    const bin = await hubFileExists(repo, "pytorch_model.bin", options).catch(() => false);
    throw new VitLoraError(
      bin
        ? `${id}: the repository has only pytorch_model.bin (a PyTorch pickle), which this module does not read: it needs model.safetensors (convert it, e.g. with the Hub's "Convert to Safetensors" space)`
        : `${id}: no model.safetensors in the repository`,
    );
  }
  return dirname(config);
}

/** A PEFT adapter from the Hub (`adapter_config.json`, `adapter_model.safetensors`): its folder. */
export async function downloadAdapter(
  id: string,
  options: HubDownloadOptions = {},
): Promise<string> {
  const repo: HubRepo = { type: "model", id };
  const config = (await hubFile(repo, "adapter_config.json", options))!;
  const weights = await hubFile(repo, "adapter_model.safetensors", { ...options, optional: true });
  if (!weights) {
    throw new VitLoraError(
      `${id}: no adapter_model.safetensors in the repository (PEFT's safetensors adapter)`,
    );
  }
  return dirname(config);
}

/**
 * Whether a cached snapshot holds a train split and, of each split it has shards of, every
 * shard (those named `…-0000k-of-0000n.parquet`).
 */
function complete(paths: string[], splits: readonly string[]): boolean {
  if (!paths.some((p) => shardSplit(p, ["train"]))) return false;
  return splits.every((split) => {
    const mine = paths.filter((p) => shardSplit(p, [split]));
    if (mine.length === 0) return true;
    const of = /-of-(\d+)\.parquet$/.exec(mine[0]);
    return !of || mine.length === Number(of[1]);
  });
}

/**
 * A dataset's parquet shards of `splits` (default train, validation and test, those it has)
 * from the Hub: the
 * repository's own parquet files (`data/train-00000-of-00008.parquet`, …) or, when it has
 * none, those of its `refs/convert/parquet` revision. Returns the snapshot folder, ready for
 * `openParquetDataset`. Shards already in the cache cost no request.
 *
 * @example
 * ```ts ignore
 * import { downloadDataset } from "@lora/vit/hub";
 * import { openParquetDataset } from "@lora/vit/data";
 * const dir = await downloadDataset("ethz/food101");
 * const data = await openParquetDataset(dir);
 * ```
 */
export async function downloadDataset(
  id: string,
  options: HubDownloadOptions & { splits?: readonly string[] } = {},
): Promise<string> {
  const settings = options.settings ?? hubSettings();
  const splits = options.splits ?? ["train", "validation", "test"];
  const repo: HubRepo = { type: "dataset", id };
  const storage = repoCacheDir(settings, repo);
  const revisions = options.revision ? [options.revision] : ["main", "refs/convert/parquet"];
  // from the cache, with no request, when every shard is there
  for (const revision of revisions) {
    const commit = await readRef(storage, revision);
    if (!commit) continue;
    const dir = join(storage, "snapshots", commit);
    if (complete(await listCached(dir), splits)) return dir;
  }
  if (settings.offline) {
    throw new VitLoraError(
      `dataset ${id}: its shards are not in the cache ${settings.cacheDir} and HF_HUB_OFFLINE=1 forbids downloading them: run once without HF_HUB_OFFLINE (or with huggingface-cli download ${id} --repo-type dataset)`,
    );
  }
  for (const revision of revisions) {
    const files: string[] = [];
    try {
      for await (
        const entry of listFiles({
          repo: { type: "dataset", name: id },
          revision: encodeURIComponent(revision),
          recursive: true,
          hubUrl: settings.endpoint,
          accessToken: settings.token,
          fetch: (input, init) =>
            hubFetch(String(input instanceof Request ? input.url : input), init ?? {}, settings),
        })
      ) {
        if (entry.type === "file" && shardSplit(entry.path, splits)) files.push(entry.path);
      }
    } catch (e) {
      const status = (e as { statusCode?: number }).statusCode;
      if (status === 404 && revision !== revisions.at(-1)) continue;
      if (e instanceof VitLoraError) throw e;
      if (status) {
        throw statusError(
          new Response(null, { status }),
          settings,
          repo,
          "the file list",
          revision,
        );
      }
      throw new VitLoraError(`dataset ${id}: cannot list its files: ${(e as Error).message}`);
    }
    if (files.length === 0) continue;
    files.sort();
    let dir = "";
    for (const path of files) {
      dir = snapshotOf((await hubFile(repo, path, { ...options, settings, revision }))!, path);
    }
    return dir;
  }
  throw new VitLoraError(
    `dataset ${id}: no parquet shards of ${
      splits.join(", ")
    } (neither in the repository nor in its refs/convert/parquet revision)`,
  );
}

/**
 * A dataset's folder: `source` itself when it is a folder (or not a Hub id), else the Hub
 * snapshot of its parquet shards (see {@link downloadDataset}).
 */
export async function datasetFolder(
  source: string,
  options: HubDownloadOptions = {},
): Promise<string> {
  if ((await exists(source)) || !isRepoId(source)) return source;
  const { id, revision } = parseRepoId(source);
  return await downloadDataset(id, { ...options, revision: revision ?? options.revision });
}
