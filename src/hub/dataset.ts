/**
 * A dataset from wherever the user has it: an image folder, a folder of parquet shards, or a
 * Hub dataset id (its parquet shards, downloaded into the cache). What `--data` and
 * `train({ data })`, `evaluate`, `deno task report` take.
 *
 * @module
 */

import { basename } from "node:path";
import { VitLoraError } from "../core/errors.ts";
import type { ImageDataset } from "../data/dataset.ts";
import { FOOD101_LABELS } from "../data/food101.ts";
import { holdsImages, openImageFolder } from "../data/imagefolder.ts";
import { openParquetDataset } from "../data/parquet.ts";
import { datasetFolder } from "./hub.ts";
import type { HubDownloadOptions } from "./settings.ts";

/** Options of {@link openDataset}. */
export interface OpenDatasetOptions extends HubDownloadOptions {
  /** Parquet: the image column (default `image`, else `img`). */
  imageColumn?: string;
  /** The label column (default `label`, else `labels`). */
  labelColumn?: string;
  /** Class names by id, for data that does not name its classes. */
  labels?: readonly string[];
}

/** Whether `source` names Food-101 (whose shards may lack their class names). */
function isFood101(source: string): boolean {
  return /(^|\/)(ethz\/)?food-?101(@.*)?$/i.test(source.replace(/\/+$/, "")) ||
    /^food-?101$/i.test(basename(source));
}

/**
 * Opens `source` as an {@link ImageDataset}: a folder with parquet shards is read as parquet
 * (`openParquetDataset`), a folder of images as an image folder (`openImageFolder`), a Hub id
 * as its parquet shards. A folder with neither is a {@link VitLoraError}.
 *
 * @example
 * ```ts ignore
 * import { openDataset } from "@lora/vit/hub";
 * const photos = await openDataset("photos"); // photos/cat/*.jpg, photos/dog/*.jpg
 * const food = await openDataset("ethz/food101");
 * console.log(photos.labels, food.sizes);
 * ```
 */
export async function openDataset(
  source: string,
  options: OpenDatasetOptions = {},
): Promise<ImageDataset> {
  const dir = await datasetFolder(source, options);
  const stat = await Deno.stat(dir).catch(() => undefined);
  if (!stat) throw new VitLoraError(`${source}: no such folder (nor a Hub dataset id)`);
  if (!stat.isDirectory) {
    throw new VitLoraError(`${source}: not a folder (an image folder or parquet shards)`);
  }
  if (await holdsParquet(dir)) {
    return await openParquetDataset(dir, {
      imageColumn: options.imageColumn,
      labelColumn: options.labelColumn,
      labels: options.labels,
      fallbackLabels: isFood101(source) ? FOOD101_LABELS : undefined,
    });
  }
  if (await holdsImages(dir)) {
    return await openImageFolder(dir, { labelColumn: options.labelColumn, labels: options.labels });
  }
  throw new VitLoraError(
    `${source}: neither an image folder (class folders of images) nor parquet shards`,
  );
}

async function holdsParquet(dir: string): Promise<boolean> {
  const walk = async (d: string): Promise<boolean> => {
    for await (const entry of Deno.readDir(d)) {
      if (entry.name.startsWith(".")) continue;
      const path = `${d}/${entry.name}`;
      const kind = entry.isSymlink ? await Deno.stat(path).catch(() => undefined) : entry;
      if (kind?.isFile && entry.name.endsWith(".parquet")) return true;
      if (kind?.isDirectory && await walk(path)) return true;
    }
    return false;
  };
  return await walk(dir);
}
