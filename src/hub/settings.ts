/**
 * Where the Hub is and who asks: settings from the environment as Python's
 * `huggingface_hub` reads them (`HF_ENDPOINT`, `HF_TOKEN` or the token file,
 * `HF_HUB_OFFLINE`, `HF_HOME`, `HF_HUB_CACHE`), and repository ids.
 *
 * @module
 */

import { join } from "node:path";
import { readEnv } from "../core/env.ts";

/** The two kinds of repository this module reads. */
export type RepoType = "model" | "dataset";

/** A repository on the Hub. */
export interface HubRepo {
  /** `model` or `dataset`. */
  type: RepoType;
  /** `owner/name`. */
  id: string;
}

/** Where the Hub is and how to reach it: from the environment by {@link hubSettings}. */
export interface HubSettings {
  /** The Hub's URL (`HF_ENDPOINT`, default `https://huggingface.co`). */
  endpoint: string;
  /** The access token (`HF_TOKEN`, else the token file), if any. */
  token?: string;
  /** Where the token came from, for error messages. */
  tokenSource?: string;
  /** The cache folder (`HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`). */
  cacheDir: string;
  /** Use the cache only, never the network (`HF_HUB_OFFLINE=1`). */
  offline: boolean;
}

/** Options of the download functions. */
export interface HubDownloadOptions {
  /** A branch, tag or commit (default `main`). */
  revision?: string;
  /** Settings (default: {@link hubSettings} from the environment). */
  settings?: HubSettings;
  /** A progress bar per file on stderr (default true; a bar on a terminal, lines otherwise). */
  progress?: boolean;
}

/** A full commit id. */
export const COMMIT = /^[0-9a-f]{40}$/;

/**
 * The Hub settings from the environment, as `huggingface_hub` reads them.
 *
 * @example
 * ```ts ignore
 * import { hubSettings } from "@lora/vit/hub";
 * const { endpoint, cacheDir, offline } = hubSettings();
 * console.log(endpoint, cacheDir, offline); // https://huggingface.co ~/.cache/huggingface/hub false
 * ```
 */
export function hubSettings(): HubSettings {
  const home = readEnv("HF_HOME") ??
    join(readEnv("HOME") ?? readEnv("USERPROFILE") ?? ".", ".cache", "huggingface");
  const cacheDir = readEnv("HF_HUB_CACHE") ?? join(home, "hub");
  let token = readEnv("HF_TOKEN"), tokenSource = token ? "HF_TOKEN" : undefined;
  if (!token) {
    const file = readEnv("HF_TOKEN_PATH") ?? join(home, "token");
    try {
      token = Deno.readTextFileSync(file).trim() || undefined;
      tokenSource = token ? file : undefined;
    } catch {
      // no token file
    }
  }
  const offline = ["1", "on", "yes", "true"].includes(
    (readEnv("HF_HUB_OFFLINE") ?? "").toLowerCase(),
  );
  return {
    endpoint: (readEnv("HF_ENDPOINT") ?? "https://huggingface.co").replace(/\/+$/, ""),
    token,
    tokenSource,
    cacheDir,
    offline,
  };
}

/** The repository's page on the Hub. */
export function repoUrl(settings: HubSettings, repo: HubRepo): string {
  return `${settings.endpoint}/${repo.type === "dataset" ? "datasets/" : ""}${repo.id}`;
}

/** A repository as messages name it. */
export function describe(repo: HubRepo): string {
  return `${repo.type === "dataset" ? "dataset " : ""}${repo.id}`;
}
