/**
 * What training and evaluation read: a labelled image dataset in splits, its rows read a block
 * (a parquet row group, or a run of image files) at a time, so that a split never sits in
 * memory whole. Parquet shards (`parquet.ts`) and image folders (`imagefolder.ts`) are both
 * {@link ImageDataset}s.
 *
 * @module
 */

/** One row of a split: the encoded image and its label. */
export interface ImageRow {
  /** The encoded image (JPEG, PNG, …). */
  bytes: Uint8Array;
  /** The class index. */
  label: number;
  /** The index of the row in its split (all shards or files, in order). */
  index: number;
  /** The file it came from: a parquet shard, or the image file itself. */
  file: string;
  /** The row's index within that file (0 for an image file). */
  row: number;
}

/** A contiguous block of rows: a parquet row group, or a run of image files. */
export interface RowGroup {
  /** The shard's path (for an image folder, the split's folder). */
  file: string;
  /** The first row within the shard (within the split, for an image folder). */
  rowStart: number;
  /** Rows in the group. */
  rows: number;
  /** The first row's index in the split. */
  index: number;
}

/**
 * Where a dataset's class names came from: the parquet metadata's `ClassLabel`, the folder
 * names of an image folder, the strings of a label column, a `labels.txt`, the `labels`
 * option, Food-101's own list, or generated (`class_0 …`).
 */
export type LabelSource =
  | "metadata"
  | "folders"
  | "strings"
  | "labels.txt"
  | "option"
  | "food101"
  | "generated";

/** A labelled image dataset in splits. */
export interface ImageDataset {
  /** The dataset's folder. */
  readonly root: string;
  /** What it is: parquet shards or an image folder. */
  readonly kind: "parquet" | "imagefolder";
  /** Class names, by label index. */
  readonly labels: string[];
  /** Where the class names came from. */
  readonly labelsFrom: LabelSource;
  /** Rows in each split it has (`train`, `validation`, `test`). */
  readonly sizes: Readonly<Record<string, number>>;
  /** Files left out because they are not images (an image folder's). */
  readonly ignored: number;
  /** The row groups of a split, in order; a split the dataset lacks is an error. */
  rowGroups(split: string): RowGroup[];
  /**
   * Reads the rows of one row group (or the part `[from, to)` of it, counted within the
   * group), those `keep` accepts (by index in the split) when given: the others may be read
   * and left out, or not read at all. A missing image or an unknown label is an error naming
   * the file and row.
   */
  readRowGroup(
    group: RowGroup,
    from?: number,
    to?: number,
    keep?: (index: number) => boolean,
  ): Promise<ImageRow[]>;
}
