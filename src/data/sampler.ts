/**
 * Which rows, in which order: the fixed-seed division of a split into validation and test,
 * and each epoch's order. Orders are drawn from the seed and the epoch alone, so the same
 * seed gives the same split and the same epochs on every machine, and a resumed run can
 * skip to where it stopped.
 *
 * Shuffling is by blocks, as streaming loaders do, since a split may not fit in memory: the
 * row groups are put in a random order, then the rows of each window of consecutive groups
 * (at least `window` rows) are shuffled together.
 *
 * @module
 */

import type { ImageRow, ParquetDataset } from "./parquet.ts";
import { Random } from "../core/random.ts";

/** Streams of the generator, so that the split and the epochs do not share draws. */
const STREAM = { split: 1, epoch: 2 } as const;

/** The validation and test indices of a split divided by {@link splitIndices}. */
export interface SplitIndices {
  /** Indices (into the original split) kept for validation, ascending. */
  validation: number[];
  /** Indices held out for the final test, ascending. */
  test: number[];
}

/**
 * Divides `n` rows into validation and test by a seeded permutation: `round(n ×
 * testFraction)` rows go to test. Food-101's 25,250 validation images become 17,675 and
 * 7,575 at the default 0.3.
 *
 * @example
 * ```ts
 * import { splitIndices } from "@lora/vit/data";
 * const { validation, test } = splitIndices(25250, { testFraction: 0.3, seed: 42 });
 * console.log(validation.length, test.length); // 17675 7575
 * ```
 */
export function splitIndices(
  n: number,
  options: { testFraction: number; seed: number },
): SplitIndices {
  const { testFraction, seed } = options;
  if (!(testFraction >= 0 && testFraction < 1)) {
    throw new RangeError(`testFraction must be in [0, 1), not ${testFraction}`);
  }
  const order = Random.derive(seed, STREAM.split).permutation(n);
  const nTest = Math.round(n * testFraction);
  const byIndex = (a: number, b: number) => a - b;
  return {
    test: order.slice(0, nTest).sort(byIndex),
    validation: order.slice(nTest).sort(byIndex),
  };
}

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
  dataset: ParquetDataset,
  split: string,
  options: EpochOptions = {},
): AsyncGenerator<ImageRow> {
  const { shuffle = false, seed = 0, epoch = 0, window = 4096, subset } = options;
  let skip = options.skip ?? 0;
  const groups = dataset.rowGroups(split);
  const rng = Random.derive(seed, STREAM.epoch, epoch);
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
    let rows = await dataset.readRowGroup(group);
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
