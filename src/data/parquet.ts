/**
 * The data source: an image-classification dataset stored as the Hugging Face Hub stores
 * it, parquet shards per split (`data/train-00000-of-00008.parquet`, …) with an `image`
 * column (a struct of `bytes` and `path`) and an integer `label` column. Shards are read
 * with hyparquet one row group at a time, so a split never sits in memory whole.
 *
 * @module
 */

import { join, relative } from "node:path";
import {
  type AsyncBuffer,
  type FileMetaData,
  parquetMetadataAsync,
  parquetReadObjects,
  parquetSchema,
} from "hyparquet";
import { VitLoraError } from "../core/errors.ts";
import { FOOD101_LABELS } from "./food101.ts";

/** One row of a split: the encoded image and its label. */
export interface ImageRow {
  /** The encoded image (JPEG, PNG, …). */
  bytes: Uint8Array;
  /** The class index. */
  label: number;
  /** The index of the row in its split (all shards, in file order). */
  index: number;
  /** The shard it came from. */
  file: string;
  /** The row's index within that shard. */
  row: number;
}

/** A contiguous block of rows: one row group of one shard. */
export interface RowGroup {
  /** The shard's path. */
  file: string;
  /** The first row within the shard. */
  rowStart: number;
  /** Rows in the group. */
  rows: number;
  /** The first row's index in the split. */
  index: number;
}

/** A parquet shard of one split. */
export interface ParquetShard {
  /** The file's path. */
  path: string;
  /** Rows in the shard. */
  rows: number;
  /** Its row groups, in order. */
  rowGroups: RowGroup[];
}

/** Options of {@link openParquetDataset}. */
export interface ParquetDatasetOptions {
  /** The image column (default `image`). */
  imageColumn?: string;
  /** The label column (default `label`). */
  labelColumn?: string;
}

/** A file read on demand, for hyparquet: each slice reads just its bytes. */
async function fileBuffer(path: string): Promise<AsyncBuffer & { close(): void }> {
  const file = await Deno.open(path, { read: true });
  const { size } = await file.stat();
  let queue: Promise<unknown> = Promise.resolve();
  return {
    byteLength: size,
    slice(start: number, end = size): Promise<ArrayBuffer> {
      const read = queue.then(async () => {
        const out = new Uint8Array(end - start);
        await file.seek(start, Deno.SeekMode.Start);
        let done = 0;
        while (done < out.length) {
          const n = await file.read(out.subarray(done));
          if (n === null) throw new Error(`unexpected end of file at byte ${start + done}`);
          done += n;
        }
        return out.buffer;
      });
      queue = read.catch(() => {});
      return read;
    },
    close: () => file.close(),
  };
}

/** Whether a shard's path (relative to the dataset root) belongs to `split`. */
/**
 * Which of `splits` a parquet shard belongs to, by the Hub's naming, from its path within the
 * dataset: `data/train-00000-of-00008.parquet`, `train.parquet` or `plain_text/train/0000.parquet`
 * are train's. Undefined for other files.
 */
export function shardSplit(path: string, splits: readonly string[]): string | undefined {
  if (!path.endsWith(".parquet")) return undefined;
  const parts = path.split(/[\\/]/);
  const base = parts[parts.length - 1];
  return splits.find((s) =>
    base === `${s}.parquet` || base.startsWith(`${s}-`) || parts.slice(0, -1).includes(s)
  );
}

async function listParquet(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    // the Hugging Face cache's snapshots are symlinks to blobs: follow them
    const kind = entry.isSymlink ? await Deno.stat(path).catch(() => undefined) : entry;
    if (kind?.isDirectory && !entry.name.startsWith(".")) out.push(...await listParquet(path));
    else if (kind?.isFile && entry.name.endsWith(".parquet")) out.push(path);
  }
  return out.sort();
}

/**
 * A dataset of parquet shards in the Hub's layout. Make one with {@link openParquetDataset}.
 */
export class ParquetDataset {
  /** The dataset's folder. */
  readonly root: string;
  /** Class names, by label index. */
  readonly labels: string[];
  /** Where the class names came from: the shards' `huggingface` metadata, or the fallback. */
  readonly labelsFrom: "metadata" | "food101";
  /** Shards of each split found, in file order. */
  readonly splits: ReadonlyMap<string, ParquetShard[]>;
  readonly #imageColumn: string;
  readonly #labelColumn: string;

  /** Use {@link openParquetDataset}. */
  constructor(init: {
    root: string;
    labels: string[];
    labelsFrom: "metadata" | "food101";
    splits: Map<string, ParquetShard[]>;
    imageColumn: string;
    labelColumn: string;
  }) {
    this.root = init.root;
    this.labels = init.labels;
    this.labelsFrom = init.labelsFrom;
    this.splits = init.splits;
    this.#imageColumn = init.imageColumn;
    this.#labelColumn = init.labelColumn;
  }

  /** Rows in a split. */
  size(split: string): number {
    return this.shards(split).reduce((n, s) => n + s.rows, 0);
  }

  /** The shards of a split; a split the dataset lacks is a {@link VitLoraError}. */
  shards(split: string): ParquetShard[] {
    const shards = this.splits.get(split);
    if (!shards) {
      const have = [...this.splits.keys()].join(", ") || "none";
      throw new VitLoraError(`${this.root}: no "${split}" split (splits found: ${have})`);
    }
    return shards;
  }

  /** The row groups of a split, in file order. */
  rowGroups(split: string): RowGroup[] {
    return this.shards(split).flatMap((s) => s.rowGroups);
  }

  /**
   * Reads the rows of one row group (or the part `[from, to)` of it, counted within the
   * group). An unknown label or a missing image is a {@link VitLoraError} naming file and row.
   */
  async readRowGroup(group: RowGroup, from = 0, to = group.rows): Promise<ImageRow[]> {
    const buffer = await fileBuffer(group.file).catch((e) => {
      throw new VitLoraError(`${group.file}: cannot read: ${(e as Error).message}`);
    });
    try {
      let records: Record<string, unknown>[];
      try {
        records = await parquetReadObjects({
          file: buffer,
          columns: [this.#imageColumn, this.#labelColumn],
          rowStart: group.rowStart + from,
          rowEnd: group.rowStart + to,
          utf8: false,
        });
      } catch (e) {
        throw new VitLoraError(
          `${group.file}: cannot read rows ${group.rowStart + from}–${group.rowStart + to - 1}: ${
            (e as Error).message
          }`,
        );
      }
      return records.map((record, i) => {
        const row = group.rowStart + from + i;
        const where = `${group.file}: row ${row}`;
        const image = record[this.#imageColumn] as { bytes?: unknown } | Uint8Array | null;
        const bytes = image instanceof Uint8Array ? image : image?.bytes;
        if (!(bytes instanceof Uint8Array)) {
          throw new VitLoraError(`${where}: "${this.#imageColumn}" holds no image bytes`);
        }
        const raw = record[this.#labelColumn];
        const label = typeof raw === "bigint" ? Number(raw) : raw;
        if (typeof label !== "number" || !Number.isInteger(label)) {
          throw new VitLoraError(`${where}: label ${String(raw)} is not an integer`);
        }
        if (label < 0 || label >= this.labels.length) {
          throw new VitLoraError(
            `${where}: unknown label ${label} (the dataset has ${this.labels.length} classes)`,
          );
        }
        return { bytes, label, index: group.index + from + i, file: group.file, row };
      });
    } finally {
      buffer.close();
    }
  }

  /** Every row of a split in file order, one row group at a time. */
  async *rows(split: string): AsyncGenerator<ImageRow> {
    for (const group of this.rowGroups(split)) yield* await this.readRowGroup(group);
  }
}

function columnNames(metadata: FileMetaData): string[] {
  return parquetSchema(metadata).children.map((c) => c.element.name);
}

function labelNames(metadata: FileMetaData, labelColumn: string): string[] | undefined {
  const kv = metadata.key_value_metadata?.find((k) => k.key === "huggingface");
  if (!kv?.value) return undefined;
  try {
    const info = JSON.parse(kv.value);
    const names = info?.info?.features?.[labelColumn]?.names;
    return Array.isArray(names) && names.every((n) => typeof n === "string") ? names : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Opens a dataset folder in the Hub's parquet layout: every `*.parquet` below it whose name
 * starts with `<split>-` (`data/train-00000-of-00008.parquet`) or that lies in a folder named
 * for the split (`plain_text/train/0000.parquet`). Reads each shard's footer only: row
 * counts, row groups, the columns (checked here) and the class names of the `huggingface`
 * metadata (Food-101's names when there are none).
 *
 * @example
 * ```ts ignore
 * import { openParquetDataset } from "@lora/vit/data";
 * const data = await openParquetDataset("food101");
 * console.log(data.size("train"), data.labels.length); // 75750 101
 * for await (const row of data.rows("validation")) console.log(row.label, row.bytes.length);
 * ```
 */
export async function openParquetDataset(
  dir: string,
  options: ParquetDatasetOptions = {},
): Promise<ParquetDataset> {
  const imageColumn = options.imageColumn ?? "image";
  const labelColumn = options.labelColumn ?? "label";
  let files: string[];
  try {
    files = await listParquet(dir);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such folder" : (e as Error).message;
    throw new VitLoraError(`${dir}: cannot read the dataset: ${why}`);
  }
  if (files.length === 0) throw new VitLoraError(`${dir}: no .parquet files found`);
  const splits = new Map<string, ParquetShard[]>();
  let labels: string[] | undefined;
  for (const path of files) {
    const rel = relative(dir, path);
    const split = shardSplit(rel, ["train", "validation", "test"]);
    if (!split) continue;
    let metadata: FileMetaData;
    const buffer = await fileBuffer(path);
    try {
      metadata = await parquetMetadataAsync(buffer);
    } catch (e) {
      throw new VitLoraError(`${path}: not a readable parquet file: ${(e as Error).message}`);
    } finally {
      buffer.close();
    }
    const columns = columnNames(metadata);
    for (const column of [imageColumn, labelColumn]) {
      if (!columns.includes(column)) {
        throw new VitLoraError(
          `${path}: no "${column}" column (columns: ${columns.join(", ")})`,
        );
      }
    }
    labels ??= labelNames(metadata, labelColumn);
    const shards = splits.get(split) ?? [];
    const index = shards.reduce((n, s) => n + s.rows, 0);
    let rowStart = 0;
    const rowGroups = metadata.row_groups.map((g) => {
      const group = { file: path, rowStart, rows: Number(g.num_rows), index: index + rowStart };
      rowStart += group.rows;
      return group;
    });
    shards.push({ path, rows: Number(metadata.num_rows), rowGroups });
    splits.set(split, shards);
  }
  if (splits.size === 0) {
    throw new VitLoraError(
      `${dir}: no parquet shard is named for a split (train-*.parquet, validation-*.parquet)`,
    );
  }
  return new ParquetDataset({
    root: dir,
    labels: labels ?? [...FOOD101_LABELS],
    labelsFrom: labels ? "metadata" : "food101",
    splits,
    imageColumn,
    labelColumn,
  });
}
