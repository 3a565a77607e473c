/**
 * Which rows, in which order: each epoch's order of a split's rows (see `splits.ts` for which
 * rows are train, validation and test). Orders are drawn from the seed and the epoch alone, so the same
 * seed gives the same split and the same epochs on every machine, and a resumed run can
 * skip to where it stopped.
 *
 * Shuffling is by blocks, as streaming loaders do, since a split may not fit in memory: the
 * row groups are put in a random order, then the rows of each window of consecutive groups
 * (at least `window` rows) are shuffled together.
 *
 * @module
 */

import type { ImageDataset, ImageRow } from "./dataset.ts";
import type { SplitPart } from "./splits.ts";
import { Random, STREAMS } from "../core/random.ts";

/** Options of {@link epochRows}. */
export interface EpochOptions {
  /** Shuffle (default false: file order). */
  shuffle?: boolean;
  /** The run's seed. */
  seed?: number;
  /** The epoch (from 0); each has its own order. */
  epoch?: number;
  /** Rows shuffled together, at least (default 4096). */
  window?: number;
  /** Keep only these row indices (a validation or test subset). */
  subset?: ReadonlySet<number>;
  /** Leave out the first `skip` rows of the order (to resume within an epoch). */
  skip?: number;
}

/**
 * The rows of a split for one pass, in file order or shuffled by blocks.
 *
 * @example
 * ```ts ignore
 * import { epochRows, openParquetDataset } from "@lora/vit/data";
 * const data = await openParquetDataset("food101");
 * for await (const row of epochRows(data, "train", { shuffle: true, seed: 42, epoch: 0 })) {
 *   console.log(row.index, row.label);
 * }
 * ```
 */
export async function* epochRows(
  dataset: ImageDataset,
  split: string,
  options: EpochOptions = {},
): AsyncGenerator<ImageRow> {
  const { shuffle = false, seed = 0, epoch = 0, window = 4096, subset } = options;
  let skip = options.skip ?? 0;
  const groups = dataset.rowGroups(split);
  const rng = Random.stream(seed, STREAMS.epochOrder, epoch);
  if (shuffle) rng.shuffle(groups);
  let buffer: ImageRow[] = [];
  const flush = function* () {
    if (shuffle) rng.shuffle(buffer);
    for (const row of buffer) {
      if (skip > 0) skip--;
      else yield row;
    }
    buffer = [];
  };
  for (const group of groups) {
    if (subset && !anyIn(subset, group.index, group.rows)) continue;
    const keep = subset && ((i: number) => subset.has(i));
    let rows = await dataset.readRowGroup(group, 0, group.rows, keep);
    if (subset) rows = rows.filter((r) => subset.has(r.index));
    buffer.push(...rows);
    if (!shuffle || buffer.length >= window) yield* flush();
  }
  yield* flush();
}

function anyIn(subset: ReadonlySet<number>, start: number, count: number): boolean {
  for (let i = start; i < start + count; i++) if (subset.has(i)) return true;
  return false;
}

/**
 * The rows of a part (see `splits.ts`) for one pass: {@link epochRows} of its source split,
 * kept to its indices.
 */
export function partRows(
  dataset: ImageDataset,
  part: SplitPart,
  options: Omit<EpochOptions, "subset"> = {},
): AsyncGenerator<ImageRow> {
  const subset = part.indices ? new Set(part.indices) : undefined;
  return epochRows(dataset, part.source, { ...options, subset });
}
