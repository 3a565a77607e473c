/**
 * torchvision's `TrivialAugmentWide()` (31 magnitude bins, `InterpolationMode.NEAREST`, fill
 * `None`) on PIL images: one of 14 operations drawn uniformly, one of its magnitude bins
 * uniformly, and for a signed operation a sign, then the operation exactly as
 * `torchvision.transforms.autoaugment._apply_op` runs it through Pillow (see
 * `pil_geometry.ts` and `pil_color.ts`). The draws come from our seeded {@link Random}, not
 * torch's generator; each operation's result at a given operation, bin and sign is torch's.
 *
 * The magnitude tables are `torch.linspace` in float32 as x86 CPUs with AVX2 or AVX-512 run it
 * (one fused multiply-add per element, from the start for the first half and from the end for
 * the second). torch's scalar build (`ATEN_CPU_CAPABILITY=default`) rounds five of them one
 * float32 step apart (bins 19 and 25 of the 0.99 tables, bins 15, 17 and 24 of
 * TranslateX/Y's, where bin 15 is 15.999999 here and translates 15 pixels, 16 there).
 *
 * @module
 */

import type { RgbImage } from "./image.ts";
import type { Random } from "../core/random.ts";
import { affineNearest, degrees, inverseAffineMatrix, rotateNearest } from "./pil_geometry.ts";
import {
  adjustBrightness,
  adjustContrast,
  adjustSaturation,
  adjustSharpness,
  autocontrast,
  equalize,
  posterize,
  solarize,
} from "./pil_color.ts";

/** The operations of `TrivialAugmentWide._augmentation_space`, in its order. */
export const TRIVIAL_AUGMENT_OPS = [
  "Identity",
  "ShearX",
  "ShearY",
  "TranslateX",
  "TranslateY",
  "Rotate",
  "Brightness",
  "Color",
  "Contrast",
  "Sharpness",
  "Posterize",
  "Solarize",
  "AutoContrast",
  "Equalize",
] as const;

/** One of TrivialAugmentWide's operations. */
export type TrivialAugmentOp = typeof TRIVIAL_AUGMENT_OPS[number];

/** The signed operations: their magnitude is negated with probability ½. */
const SIGNED: ReadonlySet<TrivialAugmentOp> = new Set([
  "ShearX",
  "ShearY",
  "TranslateX",
  "TranslateY",
  "Rotate",
  "Brightness",
  "Color",
  "Contrast",
  "Sharpness",
]);

/** Whether `op`'s magnitude takes a random sign. */
export function isSignedOp(op: TrivialAugmentOp): boolean {
  return SIGNED.has(op);
}

/**
 * `torch.linspace(start, end, steps)` in float32 as torch's vectorised (AVX2, AVX-512) kernel
 * computes it: `step = (end − start) / (steps − 1)` in float32, then element `i` is
 * `fma(step, i, start)` below `steps / 2` and `fma(−step, steps − 1 − i, end)` from there.
 */
export function linspaceFloat32(start: number, end: number, steps: number): number[] {
  const f = Math.fround;
  const s = f(start), e = f(end);
  if (steps === 1) return [s];
  const step = f(f(e - s) / (steps - 1));
  const half = Math.trunc(steps / 2);
  // step · n and the sum are exact in doubles here, so one fround is the fused result
  return Array.from(
    { length: steps },
    (_, i) => i < half ? f(s + step * i) : f(e - step * (steps - 1 - i)),
  );
}

/**
 * The magnitude of each bin of `op` (float32 values, as `magnitudes[i].item()` gives them),
 * or `undefined` for the operations without one (Identity, AutoContrast, Equalize).
 *
 * @example
 * ```ts
 * import { trivialAugmentMagnitudes } from "./trivial_augment.ts";
 * console.log(trivialAugmentMagnitudes("Posterize")!.slice(0, 4)); // [8, 8, 8, 7]
 * ```
 */
export function trivialAugmentMagnitudes(
  op: TrivialAugmentOp,
  bins = 31,
): number[] | undefined {
  switch (op) {
    case "Identity":
    case "AutoContrast":
    case "Equalize":
      return undefined;
    case "ShearX":
    case "ShearY":
    case "Brightness":
    case "Color":
    case "Contrast":
    case "Sharpness":
      return linspaceFloat32(0, 0.99, bins);
    case "TranslateX":
    case "TranslateY":
      return linspaceFloat32(0, 32, bins);
    case "Rotate":
      return linspaceFloat32(0, 135, bins);
    case "Solarize":
      return linspaceFloat32(255, 0, bins);
    case "Posterize": {
      // 8 - (arange(bins) / ((bins - 1) / 6)).round().int(), in float32, rounding half to even
      const f = Math.fround;
      const d = f((bins - 1) / 6);
      return Array.from({ length: bins }, (_, i) => {
        const q = f(i / d);
        const r = Math.round(q);
        return 8 - (Math.abs(q % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r);
      });
    }
  }
}

/** One draw of TrivialAugmentWide: the operation, its bin and sign, and the magnitude. */
export interface TrivialAugmentDraw {
  /** The operation. */
  op: TrivialAugmentOp;
  /** The magnitude bin, for the operations that have magnitudes. */
  bin?: number;
  /** Whether the magnitude was negated (signed operations only). */
  negative: boolean;
  /** The signed magnitude handed to the operation (0 when it has none). */
  magnitude: number;
}

/**
 * TrivialAugmentWide's draws, in its order and from `rng`: the operation (uniform over 14),
 * then the bin (uniform over `bins`) if it has magnitudes, then the sign if it is signed.
 *
 * @example
 * ```ts
 * import { Random } from "../core/random.ts";
 * import { drawTrivialAugment } from "./trivial_augment.ts";
 * const draw = drawTrivialAugment(Random.derive(42, 0, 7));
 * console.log(draw.op.length > 0); // true
 * ```
 */
export function drawTrivialAugment(rng: Random, bins = 31): TrivialAugmentDraw {
  const op = TRIVIAL_AUGMENT_OPS[rng.int(TRIVIAL_AUGMENT_OPS.length)];
  const magnitudes = trivialAugmentMagnitudes(op, bins);
  let bin: number | undefined;
  let magnitude = 0;
  if (magnitudes) {
    bin = rng.int(magnitudes.length);
    magnitude = magnitudes[bin];
  }
  const negative = isSignedOp(op) && rng.int(2) === 1;
  if (negative) magnitude *= -1;
  return { op, bin, negative, magnitude };
}

/**
 * `_apply_op(image, op, magnitude, NEAREST, fill=None)` on a PIL image: a new image (the input
 * is left as is). Shears are about the top-left corner, translations take `int(magnitude)`
 * pixels, rotations are about the center, the colour factors are `1 + magnitude`.
 *
 * @example
 * ```ts
 * import { applyTrivialAugmentOp } from "./trivial_augment.ts";
 * const image = { width: 4, height: 4, data: new Uint8Array(48).fill(100) };
 * console.log(applyTrivialAugmentOp(image, "Solarize", 50).data[0]); // 155
 * ```
 */
export function applyTrivialAugmentOp(
  image: RgbImage,
  op: TrivialAugmentOp,
  magnitude: number,
): RgbImage {
  const { width: w, height: h } = image;
  switch (op) {
    case "Identity":
      return { width: w, height: h, data: image.data.slice() };
    case "ShearX":
      return affineNearest(
        image,
        inverseAffineMatrix(w, h, { shear: [degrees(Math.atan(magnitude)), 0], center: [0, 0] }),
      );
    case "ShearY":
      return affineNearest(
        image,
        inverseAffineMatrix(w, h, { shear: [0, degrees(Math.atan(magnitude))], center: [0, 0] }),
      );
    case "TranslateX":
      return affineNearest(
        image,
        inverseAffineMatrix(w, h, { translate: [Math.trunc(magnitude), 0] }),
      );
    case "TranslateY":
      return affineNearest(
        image,
        inverseAffineMatrix(w, h, { translate: [0, Math.trunc(magnitude)] }),
      );
    case "Rotate":
      return rotateNearest(image, magnitude);
    case "Brightness":
      return adjustBrightness(image, 1.0 + magnitude);
    case "Color":
      return adjustSaturation(image, 1.0 + magnitude);
    case "Contrast":
      return adjustContrast(image, 1.0 + magnitude);
    case "Sharpness":
      return adjustSharpness(image, 1.0 + magnitude);
    case "Posterize":
      return posterize(image, Math.trunc(magnitude));
    case "Solarize":
      return solarize(image, magnitude);
    case "AutoContrast":
      return autocontrast(image);
    case "Equalize":
      return equalize(image);
  }
}

/**
 * `TrivialAugmentWide()(image)`: one drawn operation applied (a new image).
 *
 * @example
 * ```ts
 * import { Random } from "../core/random.ts";
 * import { trivialAugmentWide } from "./trivial_augment.ts";
 * const image = { width: 8, height: 8, data: new Uint8Array(192).fill(90) };
 * console.log(trivialAugmentWide(image, Random.derive(1)).width); // 8
 * ```
 */
export function trivialAugmentWide(image: RgbImage, rng: Random, bins = 31): RgbImage {
  const { op, magnitude } = drawTrivialAugment(rng, bins);
  return applyTrivialAugmentOp(image, op, magnitude);
}
