/**
 * Pillow's geometric transforms with nearest-neighbour sampling, as torchvision's
 * `F.affine` and `F.rotate` call them on PIL images (`InterpolationMode.NEAREST`, fill 0):
 * `Image.transform(size, AFFINE, matrix, NEAREST)` (libImaging/Geometry.c: a pure
 * translation or scale walks the rows and columns in doubles, any other matrix in 16.16 fixed
 * point), `Image.rotate` (its matrix rounded to 15 decimals, and its exact 90°/180°/270°
 * transposes), and torchvision's `_get_inverse_affine_matrix`, all in the same double
 * arithmetic as the C and Python originals.
 *
 * @module
 */

import { orient } from "./exif.ts";
import type { RgbImage } from "./image.ts";

/** An affine map from output to input pixel coordinates, Pillow's `(a, b, c, d, e, f)`. */
export type AffineMatrix = readonly [number, number, number, number, number, number];

/** Python's `math.radians` and `math.degrees` constants. */
const DEG_TO_RAD = Math.PI / 180;
const RAD_TO_DEG = 180 / Math.PI;

/** Python's `math.radians`. */
export function radians(degrees: number): number {
  return degrees * DEG_TO_RAD;
}

/** Python's `math.degrees`. */
export function degrees(radians: number): number {
  return radians * RAD_TO_DEG;
}

/** Python's float `%`: the result takes the divisor's sign, and a zero result is `+0`. */
export function pythonMod(x: number, y: number): number {
  let m = x % y;
  if (m !== 0) {
    if ((y < 0) !== (m < 0)) m += y;
  } else m = y < 0 ? -0 : 0;
  return m;
}

/** Python's `round(x, digits)` for the magnitudes met here (exact decimal rounding). */
export function pythonRound(x: number, digits: number): number {
  return Number(x.toFixed(digits));
}

/** Options of {@link inverseAffineMatrix}: torchvision's `F.affine` arguments. */
export interface AffineOptions {
  /** Rotation in degrees, counter-clockwise (default 0). */
  angle?: number;
  /** Translation in pixels `[tx, ty]` (default `[0, 0]`). */
  translate?: readonly [number, number];
  /** Overall scale (default 1). */
  scale?: number;
  /** Shear angles in degrees `[x, y]` (default `[0, 0]`). */
  shear?: readonly [number, number];
  /** Center in pixels (default the image's center, `[width / 2, height / 2]`). */
  center?: readonly [number, number];
}

/**
 * torchvision's `_get_inverse_affine_matrix(center, angle, translate, scale, shear)`, the
 * matrix `F.affine` hands Pillow for an image of `width × height`.
 *
 * @example
 * ```ts
 * import { inverseAffineMatrix } from "./pil_geometry.ts";
 * const m = inverseAffineMatrix(96, 64, { translate: [5, 0] });
 * console.log(m[2]); // -5
 * ```
 */
export function inverseAffineMatrix(
  width: number,
  height: number,
  options: AffineOptions = {},
): AffineMatrix {
  const [cx, cy] = options.center ?? [width * 0.5, height * 0.5];
  const [tx, ty] = options.translate ?? [0, 0];
  const scale = options.scale ?? 1;
  const [shearX, shearY] = options.shear ?? [0, 0];
  const rot = radians(options.angle ?? 0);
  const sx = radians(shearX);
  const sy = radians(shearY);
  const a = Math.cos(rot - sy) / Math.cos(sy);
  const b = -Math.cos(rot - sy) * Math.tan(sx) / Math.cos(sy) - Math.sin(rot);
  const c = Math.sin(rot - sy) / Math.cos(sy);
  const d = -Math.sin(rot - sy) * Math.tan(sx) / Math.cos(sy) + Math.cos(rot);
  const m = [d, -b, 0.0, -c, a, 0.0].map((x) => x / scale);
  m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
  m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
  m[2] += cx;
  m[5] += cy;
  return [m[0], m[1], m[2], m[3], m[4], m[5]];
}

/** Geometry.c's `COORD`: `-1` for a negative coordinate, else truncation. */
function coord(v: number): number {
  return v < 0 ? -1 : Math.trunc(v);
}

/** Geometry.c's `FIX`: 16.16 fixed point, `FLOOR(v * 65536 + 0.5)`. */
function fix(v: number): number {
  return Math.floor(v * 65536 + 0.5);
}

function inFixedRange(a: AffineMatrix, x: number, y: number): boolean {
  return Math.abs(x * a[0] + y * a[1] + a[2]) < 32768 &&
    Math.abs(x * a[3] + y * a[4] + a[5]) < 32768;
}

function copyPixel(out: Uint8Array, o: number, src: Uint8Array, i: number): void {
  out[o] = src[i];
  out[o + 1] = src[i + 1];
  out[o + 2] = src[i + 2];
}

/**
 * Pillow's `image.transform(image.size, Image.AFFINE, matrix, Image.NEAREST, fillcolor=0)`:
 * each output pixel `(x, y)` takes the input pixel at `matrix · (x + ½, y + ½)`, black where
 * that falls outside. The three code paths of `ImagingTransformAffine` are kept: scaling
 * (`b = d = 0`) steps doubles, other maps step 16.16 fixed point, and maps too large for it
 * step doubles from the pixel centers.
 *
 * @example
 * ```ts
 * import { affineNearest } from "./pil_geometry.ts";
 * const image = { width: 2, height: 1, data: new Uint8Array([1, 2, 3, 4, 5, 6]) };
 * const shifted = affineNearest(image, [1, 0, -1, 0, 1, 0]); // content moves right by one
 * console.log([...shifted.data]); // [0, 0, 0, 1, 2, 3]
 * ```
 */
export function affineNearest(image: RgbImage, a: AffineMatrix): RgbImage {
  const { width: w, height: h, data } = image;
  const out = new Uint8Array(w * h * 3);
  if (a[1] === 0 && a[3] === 0) {
    // ImagingScaleAffine: columns pretabulated (unset ones read column 0), rows stepped
    const xintab = new Int32Array(w);
    let xmin = w, xmax = 0;
    let xo = a[2] + a[0] * 0.5;
    let yo = a[5] + a[4] * 0.5;
    for (let x = 0; x < w; x++) {
      const xin = coord(xo);
      if (xin >= 0 && xin < w) {
        xmax = x + 1;
        if (x < xmin) xmin = x;
        xintab[x] = xin;
      }
      xo += a[0];
    }
    for (let y = 0; y < h; y++) {
      const yi = coord(yo);
      if (yi >= 0 && yi < h) {
        for (let x = xmin; x < xmax; x++) {
          copyPixel(out, (y * w + x) * 3, data, (yi * w + xintab[x]) * 3);
        }
      }
      yo += a[4];
    }
  } else if (
    inFixedRange(a, 0, 0) && inFixedRange(a, w, h) && inFixedRange(a, 0, h) &&
    inFixedRange(a, w, 0)
  ) {
    // affine_fixed: integers stepped exactly, `>> 16` flooring
    const a0 = fix(a[0]), a1 = fix(a[1]), a3 = fix(a[3]), a4 = fix(a[4]);
    let a2 = fix(a[2] + a[0] * 0.5 + a[1] * 0.5);
    let a5 = fix(a[5] + a[3] * 0.5 + a[4] * 0.5);
    for (let y = 0; y < h; y++) {
      let xx = a2, yy = a5;
      for (let x = 0; x < w; x++) {
        const xin = xx >> 16;
        if (xin >= 0 && xin < w) {
          const yin = yy >> 16;
          if (yin >= 0 && yin < h) copyPixel(out, (y * w + x) * 3, data, (yin * w + xin) * 3);
        }
        xx += a0;
        yy += a3;
      }
      a2 += a1;
      a5 += a4;
    }
  } else {
    let xo = a[2] + a[1] * 0.5 + a[0] * 0.5;
    let yo = a[5] + a[4] * 0.5 + a[3] * 0.5;
    for (let y = 0; y < h; y++) {
      let xx = xo, yy = yo;
      for (let x = 0; x < w; x++) {
        const xin = coord(xx);
        if (xin >= 0 && xin < w) {
          const yin = coord(yy);
          if (yin >= 0 && yin < h) copyPixel(out, (y * w + x) * 3, data, (yin * w + xin) * 3);
        }
        xx += a[0];
        yy += a[3];
      }
      xo += a[1];
      yo += a[4];
    }
  }
  return { width: w, height: h, data: out };
}

/**
 * The matrix Pillow's `Image.rotate(angle)` builds (center the image's, no translation):
 * cosine and sine of `-radians(angle)` rounded to 15 decimals.
 */
export function rotationMatrix(width: number, height: number, angle: number): AffineMatrix {
  const cx = width / 2, cy = height / 2;
  const t = -radians(pythonMod(angle, 360));
  const m = [
    pythonRound(Math.cos(t), 15),
    pythonRound(Math.sin(t), 15),
    0.0,
    pythonRound(-Math.sin(t), 15),
    pythonRound(Math.cos(t), 15),
    0.0,
  ];
  const x = -cx - 0, y = -cy - 0;
  m[2] = m[0] * x + m[1] * y + m[2];
  m[5] = m[3] * x + m[4] * y + m[5];
  m[2] += cx;
  m[5] += cy;
  return [m[0], m[1], m[2], m[3], m[4], m[5]];
}

/**
 * Pillow's `image.rotate(angle, Image.NEAREST, fillcolor=0)`, which torchvision's `F.rotate`
 * calls on PIL images: counter-clockwise by `angle` degrees about the center, same size,
 * black outside. 0° is a copy, 180° (and 90°/270° on a square) an exact transpose.
 *
 * @example
 * ```ts
 * import { rotateNearest } from "./pil_geometry.ts";
 * const image = { width: 2, height: 2, data: new Uint8Array(12).map((_, i) => i) };
 * console.log([...rotateNearest(image, 180).data.subarray(0, 3)]); // [9, 10, 11]
 * ```
 */
export function rotateNearest(image: RgbImage, angle: number): RgbImage {
  const a = pythonMod(angle, 360);
  if (a === 0) return { width: image.width, height: image.height, data: image.data.slice() };
  // Pillow's Transpose.ROTATE_180 / ROTATE_90 / ROTATE_270: EXIF orientations 3, 8 and 6
  if (a === 180) return orient(image, 3);
  if ((a === 90 || a === 270) && image.width === image.height) {
    return orient(image, a === 90 ? 8 : 6);
  }
  return affineNearest(image, rotationMatrix(image.width, image.height, angle));
}
