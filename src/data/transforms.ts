/**
 * The image transforms of the reference recipe, with torchvision's semantics on PIL images:
 * training takes `RandomResizedCrop(size, scale=(0.08, 1), ratio=(3/4, 4/3))` and
 * `RandomHorizontalFlip(0.5)` (augment `standard`), followed by `TrivialAugmentWide()` with
 * augment `trivial`; evaluation (and augment `none`) takes `Resize(size)` (the shorter side)
 * and `CenterCrop(size)`; all then `ToTensor()` (÷255) and `Normalize(mean, std)`, in float32,
 * channels first.
 *
 * @module
 */

import type { RgbImage } from "./image.ts";
import type { Random } from "../core/random.ts";
import { VitLoraError } from "../core/errors.ts";
import { type CropBox, cropImage, resizeImage } from "./resize.ts";
import { trivialAugmentWide } from "./trivial_augment.ts";

/**
 * The training augmentation: `standard` is RandomResizedCrop + RandomHorizontalFlip,
 * `trivial` adds torchvision's `TrivialAugmentWide()` after them, `none` is the evaluation
 * transform (Resize + CenterCrop).
 */
export type AugmentMode = "standard" | "trivial" | "none";

/** The augmentation modes, in the order a CLI lists them. */
export const AUGMENT_MODES: readonly AugmentMode[] = ["standard", "trivial", "none"];

/** What turns a decoded image into model input. */
export interface TransformSpec {
  /** Output side in pixels (`image_size`, `preprocessor_config.json`'s `size`). */
  size: number;
  /** Per-channel mean, after rescaling to [0, 1]. */
  mean: readonly number[];
  /** Per-channel standard deviation. */
  std: readonly number[];
  /**
   * The augmentation: `standard` (RandomResizedCrop + RandomHorizontalFlip), `trivial` (the
   * same, then TrivialAugmentWide) or `none` (the evaluation transform); `true` is `standard`
   * and `false` is `none`, as before the modes existed.
   */
  augment: "standard" | "trivial" | "none" | boolean;
  /** RandomResizedCrop's area range (default [0.08, 1]). */
  scale?: readonly [number, number];
  /** RandomResizedCrop's aspect-ratio range (default [3/4, 4/3]). */
  ratio?: readonly [number, number];
  /** Probability of a horizontal flip when augmenting (default 0.5). */
  flip?: number;
}

/**
 * The {@link AugmentMode} of a spec's `augment` (`true` → `standard`, `false` → `none`);
 * anything else is a {@link VitLoraError} naming the valid modes.
 *
 * @example
 * ```ts
 * import { augmentMode } from "./transforms.ts";
 * console.log(augmentMode(true), augmentMode("trivial")); // standard trivial
 * ```
 */
export function augmentMode(augment: AugmentMode | boolean | undefined): AugmentMode {
  if (augment === true) return "standard";
  if (augment === false || augment === undefined) return "none";
  if (AUGMENT_MODES.includes(augment)) return augment;
  throw new VitLoraError(
    `augment: ${JSON.stringify(augment)} is not one of ${AUGMENT_MODES.join(", ")}`,
  );
}

/** Python's `round`: halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * torchvision's `Resize(size)` with an int: the shorter side becomes `size`, the longer
 * `int(size * long / short)`; an image whose shorter side is already `size` is returned as is.
 */
export function resizeShorter(image: RgbImage, size: number): RgbImage {
  const { width: w, height: h } = image;
  const [short, long] = w <= h ? [w, h] : [h, w];
  if (short === size) return image;
  const newLong = Math.trunc(size * long / short);
  return w <= h ? resizeImage(image, size, newLong) : resizeImage(image, newLong, size);
}

/** torchvision's `CenterCrop(size)` box (Python's rounding of the offsets). */
export function centerCropBox(width: number, height: number, size: number): CropBox {
  return {
    left: roundHalfEven((width - size) / 2),
    top: roundHalfEven((height - size) / 2),
    width: size,
    height: size,
  };
}

/**
 * torchvision's `RandomResizedCrop.get_params`: up to ten draws of an area and a log-uniform
 * aspect ratio, then the central crop clamped to the ratio range as the fallback.
 */
export function randomResizedCropBox(
  width: number,
  height: number,
  rng: Random,
  scale: readonly [number, number] = [0.08, 1],
  ratio: readonly [number, number] = [3 / 4, 4 / 3],
): CropBox {
  const area = width * height;
  const logRatio = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logRatio[0], logRatio[1]));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.int(height - h + 1);
      const left = rng.int(width - w + 1);
      return { left, top, width: w, height: h };
    }
  }
  const inRatio = width / height;
  let w = width, h = height;
  if (inRatio < ratio[0]) h = roundHalfEven(w / ratio[0]);
  else if (inRatio > ratio[1]) w = roundHalfEven(h * ratio[1]);
  return {
    left: Math.trunc((width - w) / 2),
    top: Math.trunc((height - h) / 2),
    width: w,
    height: h,
  };
}

/** Mirrors an image left to right (in place) and returns it. */
export function flipHorizontal(image: RgbImage): RgbImage {
  const { width, height, data } = image;
  for (let y = 0; y < height; y++) {
    for (let a = y * width * 3, b = a + (width - 1) * 3; a < b; a += 3, b -= 3) {
      for (let c = 0; c < 3; c++) {
        const t = data[a + c];
        data[a + c] = data[b + c];
        data[b + c] = t;
      }
    }
  }
  return image;
}

/** The evaluation transform's pixels: shorter side to `size`, then the central `size × size`. */
export function evalImage(image: RgbImage, size: number): RgbImage {
  if (image.width === size && image.height === size) return image;
  const resized = resizeShorter(image, size);
  return cropImage(resized, centerCropBox(resized.width, resized.height, size));
}

/**
 * The training transform's pixels: a random resized crop, flipped with probability `flip`,
 * then with augment `trivial` one TrivialAugmentWide operation, all drawn from `rng` in that
 * order. The crop box is resized as Pillow's `resize(size, box=…)` does, the filter reading
 * across the box's edges.
 */
export function augmentImage(image: RgbImage, spec: TransformSpec, rng: Random): RgbImage {
  const box = randomResizedCropBox(image.width, image.height, rng, spec.scale, spec.ratio);
  const resized = resizeImage(image, spec.size, spec.size, box);
  const flipped = rng.next() < (spec.flip ?? 0.5) ? flipHorizontal(resized) : resized;
  return augmentMode(spec.augment) === "trivial" ? trivialAugmentWide(flipped, rng) : flipped;
}

/**
 * `ToTensor()` + `Normalize(mean, std)`: `[3, height, width]` float32, channels first, each
 * value `(v / 255 - mean) / std` computed in float32 as torchvision does.
 */
export function normalize(
  image: RgbImage,
  mean: readonly number[],
  std: readonly number[],
  out: Float32Array = new Float32Array(3 * image.width * image.height),
): Float32Array {
  const plane = image.width * image.height;
  const f = Math.fround;
  for (let c = 0; c < 3; c++) {
    const m = f(mean[c]), s = f(std[c]);
    // a lookup table: 256 values, each rounded exactly as the float32 ops would
    const table = new Float32Array(256);
    for (let v = 0; v < 256; v++) table[v] = f(f(f(v / 255) - m) / s);
    for (let p = 0; p < plane; p++) out[c * plane + p] = table[image.data[p * 3 + c]];
  }
  return out;
}

/**
 * The whole transform of one decoded image: `[3, size, size]` float32, ready for the model.
 * `rng` drives the augmentation and is needed only when `spec.augment` is `standard`,
 * `trivial` (or `true`).
 *
 * @example
 * ```ts
 * import { Random } from "../core/random.ts";
 * import { transformImage } from "./transforms.ts";
 * const image = { width: 64, height: 48, data: new Uint8Array(64 * 48 * 3).fill(128) };
 * const spec = { size: 32, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], augment: "trivial" as const };
 * const pixels = transformImage(image, spec, Random.derive(42, 0, 0));
 * console.log(pixels.length); // 3072
 * ```
 */
export function transformImage(image: RgbImage, spec: TransformSpec, rng?: Random): Float32Array {
  const mode = augmentMode(spec.augment);
  if (mode !== "none" && !rng) throw new Error("transformImage: augmentation needs a Random");
  const pixels = mode === "none" ? evalImage(image, spec.size) : augmentImage(image, spec, rng!);
  return normalize(pixels, spec.mean, spec.std);
}
