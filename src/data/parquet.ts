/**
 * Parquet datasets: an image-classification dataset stored as the Hugging Face Hub stores
 * it, parquet shards per split (`data/train-00000-of-00008.parquet`, …) with an image column
 * (`image` or `img`: a struct of `bytes` and `path`, or bytes) and a label column (`label` or
 * `labels`: class ids, or class names as strings). Shards are read with hyparquet one row
 * group at a time, so a split never sits in memory whole.
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
import type { ImageDataset, ImageRow, LabelSource, RowGroup } from "./dataset.ts";

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
  /** The image column (default `image`, else `img`, as run_image_classification.py). */
  imageColumn?: string;
  /** The label column (default `label`, else `labels`). */
  labelColumn?: string;
  /**
   * Class names by label id, for shards whose metadata has none (else the dataset's
   * `labels.txt`, one name a line; else `fallbackLabels`; else `class_0 …`).
   */
  labels?: readonly string[];
  /** Class names to use when nothing else names the classes (Food-101's, for Food-101). */
  fallbackLabels?: readonly string[];
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
export class ParquetDataset implements ImageDataset {
  /** The dataset's folder. */
  readonly root: string;
  /** Always `parquet`. */
  readonly kind = "parquet" as const;
  /** Class names, by label index. */
  readonly labels: string[];
  /** Where the class names came from. */
  readonly labelsFrom: LabelSource;
  /** Shards of each split found, in file order. */
  readonly splits: ReadonlyMap<string, ParquetShard[]>;
  /** Rows in each split. */
  readonly sizes: Readonly<Record<string, number>>;
  /** Always 0: every row of a shard is a row of the dataset. */
  readonly ignored = 0;
  /** The image column read. */
  readonly imageColumn: string;
  /** The label column read. */
  readonly labelColumn: string;
  /** Class ids by name, when the label column holds names. */
  readonly #byName?: ReadonlyMap<string, number>;

  /** Use {@link openParquetDataset}. */
  constructor(init: {
    root: string;
    labels: string[];
    labelsFrom: LabelSource;
    splits: Map<string, ParquetShard[]>;
    imageColumn: string;
    labelColumn: string;
    byName?: ReadonlyMap<string, number>;
  }) {
    this.root = init.root;
    this.labels = init.labels;
    this.labelsFrom = init.labelsFrom;
    this.splits = init.splits;
    this.sizes = Object.fromEntries(
      [...init.splits].map(([split, shards]) => [split, shards.reduce((n, s) => n + s.rows, 0)]),
    );
    this.imageColumn = init.imageColumn;
    this.labelColumn = init.labelColumn;
    this.#byName = init.byName;
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
          columns: [this.imageColumn, this.labelColumn],
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
        const image = record[this.imageColumn] as { bytes?: unknown } | Uint8Array | null;
        const bytes = image instanceof Uint8Array ? image : image?.bytes;
        if (!(bytes instanceof Uint8Array)) {
          throw new VitLoraError(`${where}: "${this.imageColumn}" holds no image bytes`);
        }
        const label = this.#labelOf(record[this.labelColumn], where);
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

  /** A label cell as a class id; anything not a class of the dataset is an error at `where`. */
  #labelOf(raw: unknown, where: string): number {
    if (this.#byName) {
      const text = raw instanceof Uint8Array ? new TextDecoder().decode(raw) : raw;
      const id = typeof text === "string" ? this.#byName.get(text) : undefined;
      if (id === undefined) {
        throw new VitLoraError(`${where}: label ${JSON.stringify(text)} is not a known class`);
      }
      return id;
    }
    const label = typeof raw === "bigint" ? Number(raw) : raw;
    if (typeof label !== "number" || !Number.isInteger(label)) {
      throw new VitLoraError(`${where}: label ${String(raw)} is not an integer`);
    }
    if (label < 0 || label >= this.labels.length) {
      throw new VitLoraError(
        `${where}: label ${label} is out of range (the dataset has ${this.labels.length} classes${
          this.labelsFrom === "metadata" ? "" : `, from ${this.labelsFrom}`
        })`,
      );
    }
    return label;
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
  let imageColumn: string | undefined, labelColumn: string | undefined;
  let stringLabels = false;
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
    imageColumn ??= pickColumn(
      path,
      columns,
      options.imageColumn,
      ["image", "img"],
      "--image-column",
    );
    labelColumn ??= pickColumn(
      path,
      columns,
      options.labelColumn,
      ["label", "labels"],
      "--label-column",
    );
    for (const column of [imageColumn, labelColumn]) {
      if (!columns.includes(column)) {
        throw new VitLoraError(`${path}: no "${column}" column (columns: ${columns.join(", ")})`);
      }
    }
    labels ??= labelNames(metadata, labelColumn);
    stringLabels ||= isStringColumn(metadata, labelColumn);
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
  if (splits.size === 0 || !imageColumn || !labelColumn) {
    throw new VitLoraError(
      `${dir}: no parquet shard is named for a split (train-*.parquet, validation-*.parquet)`,
    );
  }
  const init = { root: dir, splits, imageColumn, labelColumn };
  if (stringLabels) {
    // class names as strings in the label column: sorted, as datasets' class_encode_column
    const names = [...await distinctLabels(splits, labelColumn)].sort();
    const byName = new Map(names.map((n, i) => [n, i]));
    return new ParquetDataset({ ...init, labels: names, labelsFrom: "strings", byName });
  }
  if (labels) return new ParquetDataset({ ...init, labels, labelsFrom: "metadata" });
  if (options.labels) {
    return new ParquetDataset({ ...init, labels: [...options.labels], labelsFrom: "option" });
  }
  const fromFile = await readLabelsFile(join(dir, "labels.txt"));
  if (fromFile) return new ParquetDataset({ ...init, labels: fromFile, labelsFrom: "labels.txt" });
  if (options.fallbackLabels) {
    return new ParquetDataset({
      ...init,
      labels: [...options.fallbackLabels],
      labelsFrom: "food101",
    });
  }
  const count = (await maxLabel(splits, labelColumn)) + 1;
  const generated = Array.from({ length: count }, (_, i) => `class_${i}`);
  return new ParquetDataset({ ...init, labels: generated, labelsFrom: "generated" });
}

/** The column to read: the one asked for, else the first of `defaults` the shard has. */
function pickColumn(
  path: string,
  columns: string[],
  asked: string | undefined,
  defaults: string[],
  flag: string,
): string {
  if (asked !== undefined) return asked;
  const found = defaults.find((c) => columns.includes(c));
  if (found) return found;
  throw new VitLoraError(
    `${path}: no ${defaults.map((d) => `"${d}"`).join(" or ")} column (columns: ${
      columns.join(", ")
    }; choose one with ${flag})`,
  );
}

function isStringColumn(metadata: FileMetaData, column: string): boolean {
  const element = parquetSchema(metadata).children.find((c) => c.element.name === column)?.element;
  return element?.type === "BYTE_ARRAY";
}

/** Every value of a label column, over every shard. */
async function columnValues(
  splits: Map<string, ParquetShard[]>,
  column: string,
): Promise<unknown[]> {
  const values: unknown[] = [];
  for (const shards of splits.values()) {
    for (const shard of shards) {
      const buffer = await fileBuffer(shard.path);
      try {
        const records = await parquetReadObjects({ file: buffer, columns: [column] });
        for (const r of records) values.push(r[column]);
      } catch (e) {
        throw new VitLoraError(`${shard.path}: cannot read "${column}": ${(e as Error).message}`);
      } finally {
        buffer.close();
      }
    }
  }
  return values;
}

async function distinctLabels(
  splits: Map<string, ParquetShard[]>,
  column: string,
): Promise<Set<string>> {
  return new Set((await columnValues(splits, column)).map((v) => String(v)));
}

async function maxLabel(splits: Map<string, ParquetShard[]>, column: string): Promise<number> {
  let max = -1;
  for (const v of await columnValues(splits, column)) {
    const n = typeof v === "bigint" ? Number(v) : v;
    if (typeof n === "number" && Number.isInteger(n) && n > max) max = n;
  }
  return max;
}

/** A `labels.txt`: one class name a line (blank lines left out); undefined when absent. */
export async function readLabelsFile(path: string): Promise<string[] | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new VitLoraError(`${path}: cannot read: ${(e as Error).message}`);
  }
  const names = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  if (names.length === 0) throw new VitLoraError(`${path}: no class names in it`);
  return names;
}
