/**
 * Image datasets as the Hugging Face Hub stores them (parquet shards), read one row group at
 * a time; the seeded validation/test split and each epoch's order; decoding (mozjpeg,
 * imagescript); torchvision's transforms with Pillow's resize; and batches decoded ahead by a
 * pool of workers. The pieces `train()` and `evaluate()` are made of.
 *
 * @example
 * ```ts
 * import { splitIndices } from "@lora/vit/data";
 * const { validation, test } = splitIndices(10, { testFraction: 0.3, seed: 42 });
 * console.log(validation.length, test.length); // 7 3
 * ```
 *
 * @module
 */

export {
  type ImageRow,
  openParquetDataset,
  type ParquetDataset,
  type ParquetDatasetOptions,
  type ParquetShard,
  type RowGroup,
} from "./parquet.ts";
export { Random } from "../core/random.ts";
export { type EpochOptions, epochRows, type SplitIndices, splitIndices } from "./sampler.ts";
export { decodeImage, type DecodeOptions, type RgbImage } from "./image.ts";
export { type CropBox, cropImage, resizeImage } from "./resize.ts";
export {
  augmentImage,
  evalImage,
  normalize,
  transformImage,
  type TransformSpec,
} from "./transforms.ts";
export { type Batch, batches, type BatchOptions, DecodePool, type SkippedImage } from "./loader.ts";
export {
  SYNTHETIC_CLASSES,
  type SyntheticDatasetOptions,
  syntheticPattern,
  writeSyntheticDataset,
} from "./synthetic.ts";
export { FOOD101_LABELS } from "./food101.ts";
