/**
 * Hugging Face Hub repository ids (`owner/name[@revision]`) and the URLs of their files: no
 * imports, so a web page can use them too.
 *
 * @module
 */

/**
 * Whether `source` reads as a Hub repository id (`owner/name`, optionally `@revision`) rather
 * than a path. A folder of that name, when there is one, wins.
 */
export function isRepoId(source: string): boolean {
  return /^[A-Za-z0-9][\w.-]*\/[\w.-]+(@[\w./-]+)?$/.test(source) && !source.includes("..");
}

/** Splits `owner/name@revision` into the id and the revision. */
export function parseRepoId(source: string): { id: string; revision?: string } {
  const at = source.indexOf("@");
  return at < 0 ? { id: source } : { id: source.slice(0, at), revision: source.slice(at + 1) };
}

/**
 * The URL a file of a Hub repository downloads from (`resolve/`), which the Hub serves with
 * cross-origin reads allowed: what a web page fetches a model or adapter through.
 *
 * @example
 * ```ts
 * import { resolveUrl } from "@lora/vit/hub";
 * console.log(resolveUrl("google/vit-base-patch16-224-in21k", "config.json"));
 * // https://huggingface.co/google/vit-base-patch16-224-in21k/resolve/main/config.json
 * ```
 */
export function resolveUrl(
  repo: string,
  file: string,
  endpoint = "https://huggingface.co",
): string {
  const { id, revision } = parseRepoId(repo);
  return `${endpoint}/${id}/resolve/${encodeURIComponent(revision ?? "main")}/${file}`;
}
