/**
 * Resizing exactly as Pillow does it with `Image.BILINEAR`, which torchvision's transforms
 * use on PIL images: separable (a horizontal pass, then a vertical one, each rounded to 8
 * bits), antialiased when shrinking (the triangle filter's support widens with the scale),
 * with Pillow's 22-bit fixed-point coefficients. Nearest-neighbour and plain bilinear sampling
 * alias on photos; this matches Pillow to the level.
 *
 * @module
 */

import type { RgbImage } from "./image.ts";

/** Pillow's fixed-point precision for 8-bit images. */
const PRECISION_BITS = 32 - 8 - 2;

interface Coefficients {
  /** Filter taps per output pixel. */
  ksize: number;
  /** Per output pixel: first input index and tap count. */
  bounds: Int32Array;
  /** Fixed-point weights, `ksize` per output pixel. */
  weights: Int32Array;
}

/** Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear (triangle) filter. */
function coefficients(inSize: number, in0: number, in1: number, outSize: number): Coefficients {
  const scale = (in1 - in0) / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 1 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) * ss);
      const w = t < 1 ? 1 - t : 0;
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < ksize; x++) {
      const w = x < xmax ? (ww !== 0 ? k[x] / ww : k[x]) : 0;
      weights[xx * ksize + x] = Math.trunc(
        w < 0 ? -0.5 + w * (1 << PRECISION_BITS) : 0.5 + w * (1 << PRECISION_BITS),
      );
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, weights };
}

function clip8(v: number): number {
  if (v >= 1 << (PRECISION_BITS + 8)) return 255;
  if (v <= 0) return 0;
  return v >> PRECISION_BITS;
}

/**
 * Resizes an RGB image to `width × height` as Pillow's `image.resize((width, height),
 * Image.BILINEAR, box)` does: with `box`, only that region is scaled (the filter still reads
 * the pixels just outside it, as Pillow's does); the same size returns a copy, untouched.
 *
 * @example
 * ```ts
 * import { resizeImage } from "@lora/vit/data";
 * const image = { width: 4, height: 2, data: new Uint8Array(4 * 2 * 3).fill(200) };
 * const small = resizeImage(image, 2, 1);
 * console.log(small.data); // Uint8Array(6) [200, 200, 200, 200, 200, 200]
 * ```
 */
export function resizeImage(
  image: RgbImage,
  width: number,
  height: number,
  box?: CropBox,
): RgbImage {
  const { width: inW, height: inH } = image;
  const { left, top, width: boxW, height: boxH } = box ??
    { left: 0, top: 0, width: inW, height: inH };
  const needHorizontal = width !== inW || left !== 0 || left + boxW !== width;
  const needVertical = height !== inH || top !== 0 || top + boxH !== height;
  if (!needHorizontal && !needVertical) return { width, height, data: image.data.slice() };
  const horiz = coefficients(inW, left, left + boxW, width);
  const vert = coefficients(inH, top, top + boxH, height);
  if (!needVertical) {
    const out = new Uint8Array(height * width * 3);
    resamplePass(image.data, horiz, horiz.bounds, { lines: height, line: inW * 3, tap: 3 }, out, {
      line: width * 3,
      position: 3,
    });
    return { width, height, data: out };
  }
  let src = image.data, srcW = inW;
  let vBounds = vert.bounds;
  if (needHorizontal) {
    // only the rows the vertical pass reads
    const first = vert.bounds[0];
    const rows = vert.bounds[(height - 1) * 2] + vert.bounds[(height - 1) * 2 + 1] - first;
    const out = new Uint8Array(rows * width * 3);
    const rowsIn = image.data.subarray(first * inW * 3);
    resamplePass(rowsIn, horiz, horiz.bounds, { lines: rows, line: inW * 3, tap: 3 }, out, {
      line: width * 3,
      position: 3,
    });
    src = out;
    srcW = width;
    vBounds = vert.bounds.map((b, i) => i % 2 === 0 ? b - first : b);
  }
  const out = new Uint8Array(height * srcW * 3);
  // columns are the lines of the vertical pass
  resamplePass(src, vert, vBounds, { lines: srcW, line: 3, tap: srcW * 3 }, out, {
    line: 3,
    position: srcW * 3,
  });
  return { width: srcW, height, data: out };
}

/**
 * One pass of Pillow's separable resampling over RGB bytes: for each line (a row, or a column)
 * and each output position, the weighted sum of the taps along the line, rounded to 8 bits.
 * Strides are in bytes: `src.line` between lines, `src.tap` between taps along a line.
 */
function resamplePass(
  src: Uint8Array,
  { ksize, weights }: Coefficients,
  bounds: Int32Array,
  from: { lines: number; line: number; tap: number },
  out: Uint8Array,
  to: { line: number; position: number },
): void {
  const positions = bounds.length / 2;
  for (let line = 0; line < from.lines; line++) {
    for (let pos = 0; pos < positions; pos++) {
      const min = bounds[pos * 2], count = bounds[pos * 2 + 1];
      let s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
      for (let k = 0; k < count; k++) {
        const w = weights[pos * ksize + k];
        const p = line * from.line + (k + min) * from.tap;
        s0 += src[p] * w;
        s1 += src[p + 1] * w;
        s2 += src[p + 2] * w;
      }
      const q = line * to.line + pos * to.position;
      out[q] = clip8(s0);
      out[q + 1] = clip8(s1);
      out[q + 2] = clip8(s2);
    }
  }
}

/** A rectangle in pixels: its top-left corner and size. */
export interface CropBox {
  /** First column. */
  left: number;
  /** First row. */
  top: number;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
}

/**
 * Cuts `box` out of an image, as Pillow's `image.crop((left, top, left + width, top +
 * height))`; parts outside the image are black.
 *
 * @example
 * ```ts
 * import { cropImage } from "./resize.ts";
 * const image = { width: 4, height: 4, data: new Uint8Array(4 * 4 * 3) };
 * console.log(cropImage(image, { left: 1, top: 1, width: 2, height: 2 }).data.length); // 12
 * ```
 */
export function cropImage(image: RgbImage, box: CropBox): RgbImage {
  const { left, top, width, height } = box;
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= image.height) continue;
    const x0 = Math.max(0, -left);
    const x1 = Math.min(width, image.width - left);
    if (x1 <= x0) continue;
    const from = (sy * image.width + left + x0) * 3;
    out.set(image.data.subarray(from, from + (x1 - x0) * 3), (y * width + x0) * 3);
  }
  return { width, height, data: out };
}
