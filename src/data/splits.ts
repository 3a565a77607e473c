/**
 * Which rows are train, validation and test: a dataset's own splits where it has them, else
 * parts carved out by a seeded permutation. A dataset with only a train split gets a
 * validation split carved out of train (`validationFraction`, as run_image_classification.py's
 * `train_val_split`); without a test split, the test split is carved out of validation
 * (`testFraction`: Food-101's 25,250 validation images become 17,675 and 7,575). A run records
 * the result in `split.json`, which evaluation, prediction, shards and `--resume` read back.
 *
 * @module
 */

import { VitLoraError } from "../core/errors.ts";
import { Random, STREAMS } from "../core/random.ts";

/** Rows of one of a dataset's own splits: all of them, or only `indices` (ascending). */
export interface SplitPart {
  /** The dataset's split the rows come from (`train`, `validation`, `test`). */
  source: string;
  /** The rows of `source` in the part, ascending; all of them when absent. */
  indices?: number[];
}

/** The three parts a run uses. */
export interface DatasetSplits {
  /** The rows trained on. */
  train: SplitPart;
  /** The rows evaluated every epoch (the best epoch is chosen on them). */
  validation: SplitPart;
  /** The rows the best epoch is tested on at the end. */
  test: SplitPart;
}

/** How parts are carved out where a dataset lacks a split. */
export interface SplitOptions {
  /** The run's seed. */
  seed: number;
  /** Part of train held out as validation when there is no validation split. */
  validationFraction: number;
  /** Part of validation held out as test when there is no test split. */
  testFraction: number;
}

/** The validation and test indices of a split divided by {@link splitIndices}. */
export interface SplitIndices {
  /** Indices (into the original split) kept for validation, ascending. */
  validation: number[];
  /** Indices held out for the final test, ascending. */
  test: number[];
}

/**
 * Divides `n` rows into two by a seeded permutation: `round(n × fraction)` rows are held out.
 * Returns `[kept, held]`, each ascending.
 */
export function carve(n: number, fraction: number, seed: number, stream: number): [
  number[],
  number[],
] {
  if (!(fraction >= 0 && fraction < 1)) {
    throw new RangeError(`a fraction must be in [0, 1), not ${fraction}`);
  }
  const order = Random.stream(seed, stream).permutation(n);
  const held = Math.round(n * fraction);
  const ascending = (a: number, b: number) => a - b;
  return [order.slice(held).sort(ascending), order.slice(0, held).sort(ascending)];
}

/**
 * Divides `n` rows into validation and test by a seeded permutation: `round(n × testFraction)`
 * rows go to test.
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
  const [validation, test] = carve(n, options.testFraction, options.seed, STREAMS.testSplit);
  return { validation, test };
}

/**
 * The parts of a dataset whose splits have `sizes` rows: its own train, validation and test
 * where it has them, else carved (see the module's doc). A dataset without a train split is a
 * {@link VitLoraError} naming `where`.
 *
 * @example
 * ```ts
 * import { planSplits } from "@lora/vit/data";
 * const food = planSplits({ train: 75750, validation: 25250 }, {
 *   seed: 42,
 *   validationFraction: 0.15,
 *   testFraction: 0.3,
 * });
 * console.log(food.validation.indices?.length, food.test.indices?.length); // 17675 7575
 * const mine = planSplits({ train: 100 }, { seed: 42, validationFraction: 0.15, testFraction: 0.3 });
 * console.log(mine.train.indices?.length, mine.validation.indices?.length); // 85 10
 * ```
 */
export function planSplits(
  sizes: Readonly<Record<string, number>>,
  options: SplitOptions,
  where = "the dataset",
): DatasetSplits {
  if (sizes.train === undefined) {
    const have = Object.keys(sizes).join(", ") || "none";
    throw new VitLoraError(`${where}: no train split (splits found: ${have})`);
  }
  const { seed } = options;
  let train: SplitPart = { source: "train" };
  let validation: SplitPart;
  if (sizes.validation !== undefined) validation = { source: "validation" };
  else {
    const [kept, held] = carve(
      sizes.train,
      options.validationFraction,
      seed,
      STREAMS.validationSplit,
    );
    train = { source: "train", indices: kept };
    validation = { source: "train", indices: held };
  }
  let test: SplitPart;
  if (sizes.test !== undefined) test = { source: "test" };
  else {
    const rows = validation.indices ?? range(sizes.validation);
    const [kept, held] = carve(rows.length, options.testFraction, seed, STREAMS.testSplit);
    validation = { source: validation.source, indices: kept.map((i) => rows[i]) };
    test = { source: validation.source, indices: held.map((i) => rows[i]) };
  }
  return { train, validation, test };
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** Rows in a part of a dataset whose splits have `sizes` rows. */
export function partSize(part: SplitPart, sizes: Readonly<Record<string, number>>): number {
  return part.indices?.length ?? sizes[part.source] ?? 0;
}

/** What `split.json` holds (format 2). */
export interface SplitFile extends DatasetSplits {
  /** `vit-lora/split@2`. */
  format: "vit-lora/split@2";
  /** The run's seed. */
  seed: number;
  /** The fractions the parts were carved with. */
  validation_fraction: number;
  /** The fractions the parts were carved with. */
  test_fraction: number;
}

/** The `split.json` of a run's parts. */
export function splitFile(splits: DatasetSplits, options: SplitOptions): SplitFile {
  return {
    format: "vit-lora/split@2",
    seed: options.seed,
    validation_fraction: options.validationFraction,
    test_fraction: options.testFraction,
    ...splits,
  };
}

/**
 * The parts a `split.json` records: format 2, or the first format (`{ source, validation,
 * test }`: the held-out split divided, train whole). Anything else is a {@link VitLoraError}
 * naming `path`.
 */
export function parseSplitFile(json: unknown, path: string): DatasetSplits {
  const bad = (what: string) => new VitLoraError(`${path}: ${what}`);
  const o = json as Record<string, unknown>;
  const part = (name: string, value: unknown): SplitPart => {
    const p = value as SplitPart;
    if (typeof p?.source !== "string") throw bad(`no "${name}" part`);
    if (p.indices !== undefined && !isIndexList(p.indices)) throw bad(`"${name}" indices`);
    return p.indices ? { source: p.source, indices: p.indices } : { source: p.source };
  };
  if (o?.format === "vit-lora/split@2") {
    return {
      train: part("train", o.train),
      validation: part("validation", o.validation),
      test: part("test", o.test),
    };
  }
  if (isIndexList(o?.validation) && isIndexList(o?.test)) {
    const source = typeof o.source === "string" ? o.source : "validation";
    return {
      train: { source: "train" },
      validation: { source, indices: o.validation },
      test: { source, indices: o.test },
    };
  }
  throw bad("not a split file (format vit-lora/split@2, or validation and test indices)");
}

function isIndexList(x: unknown): x is number[] {
  return Array.isArray(x) && x.every((i) => Number.isInteger(i) && i >= 0);
}

/** Where a run's parts came from, in words (for `config.json` and the model card). */
export function describeSplits(
  splits: DatasetSplits,
  options: SplitOptions,
): { train: string; validation: string; test: string } {
  const pct = (x: number) => `${Math.round(1000 * x) / 10}%`;
  const own = (p: SplitPart) => `the "${p.source}" split`;
  const validationCarved = splits.validation.source === "train";
  return {
    train: splits.train.indices
      ? `the "train" split less ${pct(options.validationFraction)} held out for validation`
      : own(splits.train),
    validation: !splits.validation.indices
      ? own(splits.validation)
      : validationCarved
      ? `${pct(options.validationFraction)} of the "train" split, by the seed${
        splits.test.source === "train" ? `, less ${pct(options.testFraction)} of it for test` : ""
      }`
      : `the "${splits.validation.source}" split less ${
        pct(options.testFraction)
      } held out for test`,
    test: !splits.test.indices
      ? own(splits.test)
      : `${pct(options.testFraction)} of the validation rows, by the seed`,
  };
}
