/**
 * A small generated image-classification dataset in the Hugging Face Hub's parquet layout
 * (`data/train-0000N-of-0000M.parquet`, `data/validation-…`, an `image` struct of JPEG
 * `bytes` and `path`, an int64 `label`, class names in the `huggingface` metadata), written
 * with hyparquet-writer: for the offline demo and the tests, no download needed.
 *
 * Each class is a pattern (stripes of several orientations, checks, rings) in a hue family of
 * its own, with random shades, period and phase, and noise, so a small ViT tells them apart in
 * a few epochs.
 *
 * @module
 */

import encodeJpeg from "@jsquash/jpeg/encode.js";
import { join } from "node:path";
import { parquetWriteBuffer } from "hyparquet-writer";
import { writeFileAtomic } from "../core/files.ts";
import { Random } from "../core/random.ts";

/** The patterns, one a class, in order. */
export const SYNTHETIC_CLASSES: readonly string[] = Object.freeze([
  "horizontal_stripes",
  "vertical_stripes",
  "checkerboard",
  "diagonal_stripes",
  "rings",
  "anti_diagonal_stripes",
]);

/** Options of {@link writeSyntheticDataset}. */
export interface SyntheticDatasetOptions {
  /** How many classes (at most 6; default 4). */
  classes?: number;
  /** Training images a class (default 24). */
  trainPerClass?: number;
  /** Validation images a class (default 8). */
  validationPerClass?: number;
  /** Image width (default 48). */
  width?: number;
  /** Image height (default 40). */
  height?: number;
  /** Seed (default 0). */
  seed?: number;
  /** Shards a split (default 2). */
  shards?: number;
  /** Rows a row group (default 16). */
  rowGroupSize?: number;
  /** Training rows whose bytes are replaced by garbage, to exercise error handling (default 0). */
  corrupt?: number;
}

/** An RGB colour (0–255) from hue (degrees), saturation and value (0–1). */
function hsv(h: number, s: number, v: number): number[] {
  const f = (n: number) => {
    const k = (n + h / 60) % 6;
    return 255 * (v - v * s * Math.max(0, Math.min(k, 4 - k, 1)));
  };
  return [f(5), f(3), f(1)];
}

/**
 * The pixels of one pattern image of class `label` (of `classes`), RGBA: what the dataset's
 * JPEGs are encoded from (the web page's demo images too).
 *
 * @example
 * ```ts
 * import { Random } from "../core/random.ts";
 * import { syntheticPattern } from "./synthetic.ts";
 * const rgba = syntheticPattern(2, 4, 48, 40, Random.derive(0, 1));
 * console.log(rgba.length); // 7680
 * ```
 */
export function syntheticPattern(
  label: number,
  classes: number,
  width: number,
  height: number,
  rng: Random,
): Uint8ClampedArray {
  const rgba = new Uint8ClampedArray(width * height * 4);
  const period = 6 + rng.int(6), phase = rng.int(period);
  // each class has its own hue family, so even a small untrained encoder separates them
  const hue = (label * 360 / classes + rng.uniform(-15, 15) + 360) % 360;
  const fg = hsv(hue, rng.uniform(0.6, 1), rng.uniform(0.7, 1));
  const bg = hsv(hue, rng.uniform(0.2, 0.5), rng.uniform(0.15, 0.4));
  const cx = width * rng.uniform(0.3, 0.7), cy = height * rng.uniform(0.3, 0.7);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const band = (v: number) => Math.floor((v + phase) / (period / 2)) % 2;
      const on = [
        band(y),
        band(x),
        band(x) ^ band(y),
        band(x + y),
        band(Math.hypot(x - cx, y - cy)),
        band(x - y + height),
      ][label];
      const noise = rng.uniform(-20, 20);
      for (let c = 0; c < 3; c++) rgba[(y * width + x) * 4 + c] = (on ? fg[c] : bg[c]) + noise;
      rgba[(y * width + x) * 4 + 3] = 255;
    }
  }
  return rgba;
}

/**
 * Writes the dataset to `dir` and returns its class names and split sizes.
 *
 * @example
 * ```ts
 * import { openParquetDataset, writeSyntheticDataset } from "@lora/vit/data";
 * const dir = await Deno.makeTempDir(); // or a folder of yours, e.g. "demo-data"
 * await writeSyntheticDataset(dir, { classes: 4 });
 * const data = await openParquetDataset(dir);
 * console.log(data.labels, data.sizes); // 4 names, { train: 96, validation: 32 }
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeSyntheticDataset(
  dir: string,
  options: SyntheticDatasetOptions = {},
): Promise<{ labels: string[]; train: number; validation: number }> {
  const classes = Math.min(options.classes ?? 4, SYNTHETIC_CLASSES.length);
  const labels = SYNTHETIC_CLASSES.slice(0, classes);
  const width = options.width ?? 48, height = options.height ?? 40;
  const shards = options.shards ?? 2;
  await Deno.mkdir(join(dir, "data"), { recursive: true });
  const sizes = { train: 0, validation: 0 };
  const splits = [
    ["train", options.trainPerClass ?? 24],
    ["validation", options.validationPerClass ?? 8],
  ] as const;
  for (const [s, [split, perClass]] of splits.entries()) {
    const n = perClass * classes;
    sizes[split] = n;
    const rng = Random.derive(options.seed ?? 0, s);
    const rows: ParquetImageRow[] = [];
    for (let i = 0; i < n; i++) {
      const label = rng.int(classes);
      const data = syntheticPattern(label, classes, width, height, rng);
      const jpeg = await encodeJpeg({ data, width, height, colorSpace: "srgb" } as ImageData, {
        quality: 90,
      });
      let bytes = new Uint8Array(jpeg);
      if (split === "train" && i < (options.corrupt ?? 0)) bytes = bytes.slice(0, 40); // truncated
      rows.push({ bytes, path: `${split}_${i}.jpg`, label });
    }
    for (let k = 0; k < shards; k++) {
      const part = rows.slice(Math.floor(k * n / shards), Math.floor((k + 1) * n / shards));
      const buffer = imageParquet(part, labels, options.rowGroupSize ?? 16);
      const name = `${split}-${String(k).padStart(5, "0")}-of-${
        String(shards).padStart(5, "0")
      }.parquet`;
      await writeFileAtomic(join(dir, "data", name), buffer);
    }
  }
  return { labels: [...labels], ...sizes };
}

/** One image of an image-classification parquet file: encoded bytes, a file name, a class. */
export interface ParquetImageRow {
  /** The encoded image (JPEG, PNG, …). */
  bytes: Uint8Array;
  /** The image's file name. */
  path: string;
  /** The class's index in the labels. */
  label: number;
}

/**
 * A parquet file in the Hub's image-classification layout: an `image` struct of `bytes` and
 * `path`, an int64 `label`, the class names in the `huggingface` metadata (`ClassLabel`).
 * `rowGroupSize` is hyparquet-writer's (its default when not given).
 */
export function imageParquet(
  rows: readonly ParquetImageRow[],
  labels: readonly string[],
  rowGroupSize?: number,
): Uint8Array {
  const metadata = JSON.stringify({
    info: {
      features: { image: { _type: "Image" }, label: { names: labels, _type: "ClassLabel" } },
    },
  });
  const buffer = parquetWriteBuffer({
    columnData: [
      { name: "image", data: rows.map((r) => ({ bytes: r.bytes, path: r.path })) },
      { name: "label", data: rows.map((r) => BigInt(r.label)) },
    ],
    schema: [
      { name: "root", num_children: 2 },
      { name: "image", num_children: 2, repetition_type: "OPTIONAL" },
      { name: "bytes", type: "BYTE_ARRAY", repetition_type: "OPTIONAL" },
      { name: "path", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" },
      { name: "label", type: "INT64", repetition_type: "OPTIONAL" },
    ],
    kvMetadata: [{ key: "huggingface", value: metadata }],
    rowGroupSize,
  });
  return new Uint8Array(buffer);
}
