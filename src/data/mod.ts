/**
 * The data pipeline's parts: image datasets (image folders as `imagefolder` reads them,
 * parquet shards as the Hugging Face Hub stores them) read a block of rows at a time; which
 * rows are train, validation and test, and each epoch's order; decoding; torchvision's
 * transforms with Pillow's resize; and batches decoded ahead by a pool of workers. The pieces
 * `train()` and `evaluate()` are made of.
 *
 * @example
 * ```ts
 * import { planSplits } from "@lora/vit/data";
 * const splits = planSplits({ train: 100 }, { seed: 42, validationFraction: 0.15, testFraction: 0.3 });
 * console.log(splits.train.indices?.length, splits.validation.indices?.length); // 85 10
 * ```
 *
 * @module
 */

import "../backend/deno_platform.ts"; // Deno's environment, files and BLAS (core/platform.ts)
export type { ImageDataset, ImageRow, LabelSource, RowGroup } from "./dataset.ts";
export { type ImageFolderOptions, openImageFolder } from "./imagefolder.ts";
export { openParquetDataset, type ParquetDatasetOptions } from "./parquet.ts";
export {
  type DatasetSplits,
  planSplits,
  splitIndices,
  type SplitOptions,
  type SplitPart,
} from "./splits.ts";
export { type EpochOptions, epochRows, partRows } from "./sampler.ts";
export {
  decodeImage,
  type DecodeOptions,
  type ImageFormat,
  imageFormat,
  type RgbImage,
} from "./image.ts";
export { resizeImage } from "./resize.ts";
export {
  AUGMENT_MODES,
  type AugmentMode,
  evalImage,
  normalize,
  transformImage,
  type TransformSpec,
} from "./transforms.ts";
export {
  applyTrivialAugmentOp,
  drawTrivialAugment,
  TRIVIAL_AUGMENT_OPS,
  type TrivialAugmentDraw,
  type TrivialAugmentOp,
  trivialAugmentWide,
} from "./trivial_augment.ts";
export { type Batch, batches, type BatchOptions, DecodePool, type SkippedImage } from "./loader.ts";
export { type SyntheticDatasetOptions, writeSyntheticDataset } from "./synthetic.ts";
export type { ImageFolderDataset } from "./imagefolder.ts";
export type { ParquetDataset, ParquetShard } from "./parquet.ts";
export type { SplitIndices } from "./splits.ts";
export type { CropBox } from "./resize.ts";
export { Random, STREAMS } from "../core/random.ts";
