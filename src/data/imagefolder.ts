/**
 * Image folders, in the layout of Hugging Face `datasets`' `imagefolder`: class folders
 * (`photos/cat/1.jpg`, `photos/dog/2.png`), optionally under split folders
 * (`photos/train/cat/1.jpg`, `photos/validation/…`), or a `metadata.csv` / `metadata.jsonl`
 * naming each file (`file_name`) and its label. Splits, class names and ids are those that
 * `datasets.load_dataset("imagefolder", data_dir=…)` gives for the same folder, so an adapter
 * trained here has the same `id2label` as one trained in Python on it:
 *
 * - a file's split is named by a folder on its path (`train`/`training`,
 *   `validation`/`valid`/`val`/`dev`, `test`/`testing`/`eval`/`evaluation`, alone or joined
 *   to other words by `-`, `_`, `.`, a space or a digit); without such folders, by its file
 *   name in the same way; else every file is train's;
 * - a file's class is its folder's name, the class names sorted; with a metadata file, the
 *   label column's values (names sorted, or ids named by `labels`/`labels.txt`).
 *
 * Files that are not images (by extension, as `imagefolder`) are left out and counted; a class
 * folder without images, a metadata line naming a missing file, or a label that is not a class
 * is an error naming the file.
 *
 * @module
 */

import { basename, dirname, join, sep } from "node:path";
import { VitLoraError } from "../core/errors.ts";
import type { ImageDataset, ImageRow, LabelSource, RowGroup } from "./dataset.ts";
import { readLabelsFile } from "./parquet.ts";

/** The file extensions `imagefolder` takes as images (lower case). */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set([
  ".bmp",
  ".dib",
  ".gif",
  ".png",
  ".apng",
  ".jpg",
  ".jpeg",
  ".jpe",
  ".jfif",
  ".webp",
  ".tif",
  ".tiff",
  ".ico",
  ".pbm",
  ".pgm",
  ".ppm",
  ".pnm",
  ".tga",
]);

/** The words that name a split in a folder or file name, as `datasets` has them. */
export const SPLIT_KEYWORDS: Readonly<Record<string, readonly string[]>> = {
  train: ["train", "training"],
  validation: ["validation", "valid", "dev", "val"],
  test: ["test", "testing", "eval", "evaluation"],
};

/** Options of {@link openImageFolder}. */
export interface ImageFolderOptions {
  /** The label column of a metadata file (default `label`, else `labels`). */
  labelColumn?: string;
  /** Class names by id, when a metadata file's labels are ids. */
  labels?: readonly string[];
  /** Files in a row group (default 256). */
  groupSize?: number;
}

/** One image of a split. */
interface Entry {
  path: string;
  label: number;
}

const SEP = "[-._ 0-9]";

function splitOfName(name: string): string | undefined {
  for (const [split, words] of Object.entries(SPLIT_KEYWORDS)) {
    for (const word of words) {
      if (new RegExp(`^(.*${SEP})?${word}(${SEP}.*)?$`, "i").test(name)) return split;
    }
  }
  return undefined;
}

/** An image folder read as a dataset. Make one with {@link openImageFolder}. */
export class ImageFolderDataset implements ImageDataset {
  /** The folder. */
  readonly root: string;
  /** Always `imagefolder`. */
  readonly kind = "imagefolder" as const;
  /** Class names, by label index. */
  readonly labels: string[];
  /** Where the class names came from. */
  readonly labelsFrom: LabelSource;
  /** Rows in each split. */
  readonly sizes: Readonly<Record<string, number>>;
  /** Files left out because they are not images. */
  readonly ignored: number;
  readonly #entries: ReadonlyMap<string, Entry[]>;
  readonly #groupSize: number;

  /** Use {@link openImageFolder}. */
  constructor(init: {
    root: string;
    labels: string[];
    labelsFrom: LabelSource;
    entries: Map<string, Entry[]>;
    ignored: number;
    groupSize?: number;
  }) {
    this.root = init.root;
    this.labels = init.labels;
    this.labelsFrom = init.labelsFrom;
    this.#entries = init.entries;
    this.ignored = init.ignored;
    this.#groupSize = init.groupSize ?? 256;
    this.sizes = Object.fromEntries([...init.entries].map(([s, e]) => [s, e.length]));
  }

  /** The image files of a split, in row order. */
  files(split: string): string[] {
    return this.#split(split).map((e) => e.path);
  }

  #split(split: string): Entry[] {
    const entries = this.#entries.get(split);
    if (!entries) {
      const have = [...this.#entries.keys()].join(", ") || "none";
      throw new VitLoraError(`${this.root}: no "${split}" split (splits found: ${have})`);
    }
    return entries;
  }

  /** Runs of {@link ImageFolderOptions.groupSize} files. */
  rowGroups(split: string): RowGroup[] {
    const n = this.#split(split).length;
    const groups: RowGroup[] = [];
    for (let start = 0; start < n; start += this.#groupSize) {
      groups.push({
        file: join(this.root, split),
        rowStart: start,
        rows: Math.min(this.#groupSize, n - start),
        index: start,
      });
    }
    return groups;
  }

  /** Reads the files of a group (those `keep` accepts, when given). */
  async readRowGroup(
    group: RowGroup,
    from = 0,
    to: number = group.rows,
    keep?: (index: number) => boolean,
  ): Promise<ImageRow[]> {
    const split = [...this.#entries].find(([s]) => join(this.root, s) === group.file)?.[1];
    if (!split) throw new VitLoraError(`${group.file}: not a split of ${this.root}`);
    const rows: ImageRow[] = [];
    for (let i = group.rowStart + from; i < group.rowStart + to; i++) {
      if (keep && !keep(i)) continue;
      const { path, label } = split[i];
      let bytes: Uint8Array;
      try {
        bytes = await Deno.readFile(path);
      } catch (e) {
        throw new VitLoraError(`${path}: cannot read: ${(e as Error).message}`);
      }
      rows.push({ bytes, label, index: i, file: path, row: 0 });
    }
    return rows;
  }
}

/** Every file below `dir` (symbolic links followed), relative paths, hidden ones left out. */
async function* walkFiles(dir: string, prefix = ""): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(join(dir, prefix))) {
    if (entry.name.startsWith(".") || entry.name.startsWith("__")) continue;
    const rel = prefix ? join(prefix, entry.name) : entry.name;
    const kind = entry.isSymlink ? await Deno.stat(join(dir, rel)).catch(() => undefined) : entry;
    if (kind?.isDirectory) yield* walkFiles(dir, rel);
    else if (kind?.isFile) yield rel;
  }
}

/** Whether `dir` holds image files (below it, at any depth): the walk stops at the first. */
export async function holdsImages(dir: string): Promise<boolean> {
  try {
    for await (const file of walkFiles(dir)) if (isImageFile(file)) return true;
    return false;
  } catch {
    return false;
  }
}

function isImageFile(path: string): boolean {
  const dot = path.lastIndexOf(".");
  return dot >= 0 && IMAGE_EXTENSIONS.has(path.slice(dot).toLowerCase());
}

const METADATA_FILES = ["metadata.csv", "metadata.jsonl"];

/**
 * Opens an image folder (see the module's doc). A folder without images is a
 * {@link VitLoraError}.
 *
 * @example
 * ```ts ignore
 * import { openImageFolder } from "@lora/vit/data";
 * const photos = await openImageFolder("photos"); // photos/cat/*.jpg, photos/dog/*.jpg
 * console.log(photos.labels, photos.sizes); // [ "cat", "dog" ] { train: 40 }
 * ```
 */
export async function openImageFolder(
  root: string,
  options: ImageFolderOptions = {},
): Promise<ImageFolderDataset> {
  let files: string[];
  try {
    files = (await Array.fromAsync(walkFiles(root))).sort();
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such folder" : (e as Error).message;
    throw new VitLoraError(`${root}: cannot read the folder: ${why}`);
  }
  const metadata = files.filter((f) => METADATA_FILES.includes(basename(f)));
  const images = files.filter(isImageFile);
  const ignored =
    files.filter((f) =>
      !isImageFile(f) && !METADATA_FILES.includes(basename(f)) && f !== "labels.txt"
    ).length;
  if (images.length === 0) {
    throw new VitLoraError(
      `${root}: no images found (class folders of .jpg, .png, .webp, … files, as imagefolder)`,
    );
  }
  const splitOf = splitAssigner(images);
  const bySplit = new Map<string, string[]>();
  for (const file of images) {
    const split = splitOf(file);
    if (!split) continue;
    const list = bySplit.get(split);
    if (list) list.push(file);
    else bySplit.set(split, [file]);
  }
  if (metadata.length > 0) {
    return await fromMetadata(root, bySplit, metadata, ignored, options);
  }
  // classes: the folders the images are in
  const classOf = (file: string) => basename(dirname(file));
  const names = [...new Set(images.filter((f) => splitOf(f)).map(classOf))].sort();
  if (names.length === 1 && names[0] === ".") {
    throw new VitLoraError(`${root}: the images are not in class folders (e.g. ${root}/cat/1.jpg)`);
  }
  await checkClassFolders(root, images.filter((f) => splitOf(f)));
  const ids = new Map(names.map((n, i) => [n, i]));
  const entries = new Map<string, Entry[]>();
  for (const [split, list] of bySplit) {
    entries.set(split, list.map((f) => ({ path: join(root, f), label: ids.get(classOf(f))! })));
  }
  return new ImageFolderDataset({
    root,
    labels: names,
    labelsFrom: "folders",
    entries: ordered(entries),
    ignored,
    groupSize: options.groupSize,
  });
}

/** Splits in the order train, validation, test. */
function ordered(entries: Map<string, Entry[]>): Map<string, Entry[]> {
  return new Map(
    Object.keys(SPLIT_KEYWORDS).filter((s) => entries.has(s)).map((s) => [s, entries.get(s)!]),
  );
}

/**
 * How files are given splits: by a folder on their path when any file has one, else by their
 * name when any file has one, else all train.
 */
function splitAssigner(files: string[]): (file: string) => string | undefined {
  const byFolder = (f: string) => {
    for (const part of dirname(f).split(sep)) {
      const split = part === "." ? undefined : splitOfName(part);
      if (split) return split;
    }
    return undefined;
  };
  if (files.some(byFolder)) return byFolder;
  const byName = (f: string) => splitOfName(basename(f).replace(/\.[^.]*$/, ""));
  if (files.some(byName)) return byName;
  return () => "train";
}

/**
 * Every class folder holds images: a folder beside the class folders (under the same split
 * folder, or the root) with none is an error naming it.
 */
async function checkClassFolders(root: string, images: string[]): Promise<void> {
  const classDirs = new Set(images.map((f) => dirname(f)));
  const bases = new Set([...classDirs].map((d) => dirname(d)));
  for (const base of bases) {
    for await (const entry of Deno.readDir(join(root, base))) {
      if (!entry.isDirectory || entry.name.startsWith(".")) continue;
      const dir = base === "." ? entry.name : join(base, entry.name);
      if (classDirs.has(dir) || images.some((f) => f.startsWith(dir + sep))) continue;
      throw new VitLoraError(`${join(root, dir)}: no images in this class folder`);
    }
  }
}

/** One metadata record: its file and label. */
interface MetadataRecord {
  file: string;
  label: unknown;
  where: string;
}

async function fromMetadata(
  root: string,
  bySplit: Map<string, string[]>,
  metadataFiles: string[],
  ignored: number,
  options: ImageFolderOptions,
): Promise<ImageFolderDataset> {
  const records = new Map<string, MetadataRecord>();
  for (const meta of metadataFiles) {
    const path = join(root, meta);
    for (const record of await readMetadata(path, options.labelColumn)) {
      const file = join(dirname(meta), record.file);
      if (!(await Deno.stat(join(root, file)).catch(() => undefined))?.isFile) {
        throw new VitLoraError(`${record.where}: no such file: ${join(root, file)}`);
      }
      records.set(file, record);
    }
  }
  const values = [...records.values()];
  const strings = values.every((r) => typeof r.label === "string");
  let labels: string[];
  let labelsFrom: LabelSource;
  let idOf: (r: MetadataRecord) => number;
  if (strings) {
    labels = [...new Set(values.map((r) => r.label as string))].sort();
    labelsFrom = "strings";
    const ids = new Map(labels.map((n, i) => [n, i]));
    idOf = (r) => ids.get(r.label as string)!;
  } else {
    const bad = values.find((r) => !Number.isInteger(r.label) || (r.label as number) < 0);
    if (bad) {
      throw new VitLoraError(`${bad.where}: label ${JSON.stringify(bad.label)} is not a class`);
    }
    const fromFile = await readLabelsFile(join(root, "labels.txt"));
    labels = options.labels ? [...options.labels] : fromFile ?? [];
    labelsFrom = options.labels ? "option" : fromFile ? "labels.txt" : "generated";
    const max = values.reduce((m, r) => Math.max(m, r.label as number), -1); // no spread: a long list
    if (labels.length === 0) labels = Array.from({ length: max + 1 }, (_, i) => `class_${i}`);
    const out = values.find((r) => (r.label as number) >= labels.length);
    if (out) {
      throw new VitLoraError(
        `${out.where}: label ${out.label} is out of range (${labels.length} classes)`,
      );
    }
    idOf = (r) => r.label as number;
  }
  // rows in the metadata's order, as datasets reads them
  const splitOf = new Map<string, string>();
  for (const [split, list] of bySplit) for (const f of list) splitOf.set(f, split);
  const entries = new Map<string, Entry[]>();
  for (const [file, record] of records) {
    const split = splitOf.get(file);
    if (!split) continue;
    const rows = entries.get(split) ?? [];
    rows.push({ path: join(root, file), label: idOf(record) });
    entries.set(split, rows);
  }
  return new ImageFolderDataset({
    root,
    labels,
    labelsFrom,
    entries: ordered(entries),
    ignored,
    groupSize: options.groupSize,
  });
}

/** The records of a `metadata.csv` or `metadata.jsonl`: `file_name` and the label column. */
async function readMetadata(path: string, labelColumn?: string): Promise<MetadataRecord[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new VitLoraError(`${path}: cannot read: ${(e as Error).message}`);
  }
  const rows: { line: number; fields: Record<string, unknown> }[] = [];
  const lines = text.split(/\r?\n/);
  if (path.endsWith(".jsonl")) {
    lines.forEach((line, i) => {
      if (!line.trim()) return;
      try {
        rows.push({ line: i + 1, fields: JSON.parse(line) });
      } catch (e) {
        throw new VitLoraError(`${path}:${i + 1}: not JSON (${(e as Error).message})`);
      }
    });
  } else {
    const header = parseCsvLine(lines[0] ?? "");
    lines.slice(1).forEach((line, i) => {
      if (!line.trim()) return;
      const cells = parseCsvLine(line);
      const fields: Record<string, unknown> = {};
      header.forEach((h, j) => fields[h] = csvValue(cells[j] ?? ""));
      rows.push({ line: i + 2, fields });
    });
  }
  const columns = new Set(rows.flatMap((r) => Object.keys(r.fields)));
  if (!columns.has("file_name")) {
    throw new VitLoraError(`${path}: no "file_name" column (columns: ${[...columns].join(", ")})`);
  }
  const label = labelColumn ?? ["label", "labels"].find((c) => columns.has(c));
  if (!label || !columns.has(label)) {
    throw new VitLoraError(
      `${path}: no ${label ? `"${label}"` : `"label" or "labels"`} column (columns: ${
        [...columns].join(", ")
      }; choose one with --label-column)`,
    );
  }
  return rows.map(({ line, fields }) => {
    const where = `${path}:${line}`;
    if (typeof fields.file_name !== "string" || !fields.file_name) {
      throw new VitLoraError(`${where}: no file_name`);
    }
    return { file: fields.file_name, label: fields[label], where };
  });
}

/** A CSV cell as `datasets`' CSV reader types it: an integer, else the text. */
function csvValue(cell: string): unknown {
  return /^-?\d+$/.test(cell.trim()) ? Number(cell) : cell;
}

/** One CSV line's cells (RFC 4180 quotes). */
function parseCsvLine(line: string): string[] {
  const cells: string[] = [];
  let cell = "", quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      cells.push(cell);
      cell = "";
    } else cell += c;
  }
  cells.push(cell);
  return cells;
}
