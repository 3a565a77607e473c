/**
 * The Hugging Face Hub as a source, as Python's `huggingface_hub` does it: settings from the
 * environment (`HF_ENDPOINT`, `HF_TOKEN`, `HF_HOME`, `HF_HUB_OFFLINE`, …), the standard cache
 * layout, and resumable, checked downloads of models, adapters and parquet datasets.
 *
 * @example
 * ```ts
 * import { parseRepoId } from "@lora/vit/hub";
 * console.log(parseRepoId("google/vit-base-patch16-224-in21k@main"));
 * // { id: "google/vit-base-patch16-224-in21k", revision: "main" }
 * ```
 *
 * @module
 */

import "../backend/deno_platform.ts"; // Deno's environment, files and BLAS (core/platform.ts)
export { datasetFolder, downloadAdapter, downloadDataset, downloadModel, hubFile } from "./hub.ts";
export { isRepoId, parseRepoId, resolveUrl } from "./ids.ts";
export {
  type HubDownloadOptions,
  type HubRepo,
  type HubSettings,
  hubSettings,
  type RepoType,
} from "./settings.ts";
export { repoCacheDir } from "./cache.ts";
export { openDataset, type OpenDatasetOptions } from "./dataset.ts";
