/**
 * Pillow's colour operations on 8-bit RGB images, as torchvision's `F.adjust_brightness`,
 * `adjust_saturation`, `adjust_contrast`, `adjust_sharpness`, `posterize`, `solarize`,
 * `autocontrast` and `equalize` call them on PIL images: `ImageEnhance`'s degenerate images
 * blended by `Image.blend` (libImaging/Blend.c: float32 arithmetic, truncated, clipped when
 * extrapolating), the `L` conversion's 16-bit fixed-point luma, the `SMOOTH` kernel's float32
 * 3×3 filter with its copied border, and `ImageOps`' lookup tables.
 *
 * @module
 */

import type { RgbImage } from "./image.ts";

const f32 = Math.fround;

function like(image: RgbImage, data: Uint8Array): RgbImage {
  return { width: image.width, height: image.height, data };
}

/**
 * `Image.blend(degenerate, image, factor)`: each byte `degenerate + α · (image − degenerate)`
 * with α and the arithmetic in float32, truncated toward zero, clipped to [0, 255] when α is
 * outside [0, 1]. `degenerate` is a whole image's bytes or one value for every byte.
 */
export function blend(degenerate: Uint8Array | number, image: RgbImage, factor: number): RgbImage {
  const alpha = f32(factor);
  const src = image.data;
  const at = typeof degenerate === "number" ? () => degenerate : (i: number) => degenerate[i];
  if (alpha === 0) return like(image, src.map((_, i) => at(i)));
  if (alpha === 1) return like(image, src.slice());
  const out = new Uint8Array(src.length);
  const inside = alpha >= 0 && alpha <= 1;
  for (let i = 0; i < src.length; i++) {
    const d = at(i);
    const t = f32(d + f32(alpha * (src[i] - d)));
    out[i] = inside ? Math.trunc(t) : t <= 0 ? 0 : t >= 255 ? 255 : Math.trunc(t);
  }
  return like(image, out);
}

/** Pillow's RGB → L conversion of one pixel: ITU-R 601-2 luma in 16-bit fixed point. */
export function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

/** `image.convert("L").convert("RGB")`: each pixel's luma in all three channels. */
export function grayscale(image: RgbImage): Uint8Array {
  const src = image.data;
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i += 3) {
    out[i] = out[i + 1] = out[i + 2] = luma(src[i], src[i + 1], src[i + 2]);
  }
  return out;
}

/** `ImageEnhance.Brightness(image).enhance(factor)`: a blend with black. */
export function adjustBrightness(image: RgbImage, factor: number): RgbImage {
  return blend(0, image, factor);
}

/** `ImageEnhance.Color(image).enhance(factor)`: a blend with the image's grayscale. */
export function adjustSaturation(image: RgbImage, factor: number): RgbImage {
  return blend(grayscale(image), image, factor);
}

/**
 * `ImageEnhance.Contrast(image).enhance(factor)`: a blend with the mean luma,
 * `int(mean + 0.5)` of the `L` image's histogram.
 */
export function adjustContrast(image: RgbImage, factor: number): RgbImage {
  const src = image.data;
  let sum = 0;
  for (let i = 0; i < src.length; i += 3) sum += luma(src[i], src[i + 1], src[i + 2]);
  const count = src.length / 3;
  const mean = count ? Math.trunc(sum / count + 0.5) : 0;
  return blend(mean, image, factor);
}

/**
 * `image.filter(ImageFilter.SMOOTH)`: the 3×3 kernel `[1 1 1; 1 5 1; 1 1 1] / 13` in float32
 * (libImaging/Filter.c, `+ 0.5` and truncation); the first and last rows and columns are
 * copied as they are, and an image under 3×3 is returned unchanged.
 */
export function smooth(image: RgbImage): Uint8Array {
  const { width: w, height: h, data: src } = image;
  const out = src.slice();
  if (w < 3 || h < 3) return out;
  const k1 = f32(1 / 13), k5 = f32(5 / 13);
  const row = (p: number, k0: number, k1_: number, k2: number) =>
    f32(f32(f32(src[p - 3] * k0) + f32(src[p] * k1_)) + f32(src[p + 3] * k2));
  const stride = w * 3;
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      for (let c = 0; c < 3; c++) {
        const p = y * stride + x * 3 + c;
        let ss = f32(0.5);
        ss = f32(ss + row(p + stride, k1, k1, k1));
        ss = f32(ss + row(p, k1, k5, k1));
        ss = f32(ss + row(p - stride, k1, k1, k1));
        out[p] = ss < 0 ? 0 : ss > 255 ? 255 : Math.trunc(ss);
      }
    }
  }
  return out;
}

/** `ImageEnhance.Sharpness(image).enhance(factor)`: a blend with the `SMOOTH`ed image. */
export function adjustSharpness(image: RgbImage, factor: number): RgbImage {
  return blend(smooth(image), image, factor);
}

/** Applies one 256-entry lookup table per channel (`Image.point`, values clipped to 8 bits). */
function applyLuts(image: RgbImage, luts: readonly ArrayLike<number>[]): RgbImage {
  const tables = luts.map((lut) =>
    Uint8Array.from({ length: 256 }, (_, i) => Math.min(255, Math.max(0, lut[i])))
  );
  const src = image.data;
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = tables[i % 3][src[i]];
  return like(image, out);
}

/** Per channel, the 256-bin histogram (`Image.histogram()`). */
function histograms(image: RgbImage): Float64Array[] {
  const h = [new Float64Array(256), new Float64Array(256), new Float64Array(256)];
  const src = image.data;
  for (let i = 0; i < src.length; i += 3) {
    h[0][src[i]]++;
    h[1][src[i + 1]]++;
    h[2][src[i + 2]]++;
  }
  return h;
}

/** `ImageOps.posterize(image, bits)`: each value keeps its top `bits` bits. */
export function posterize(image: RgbImage, bits: number): RgbImage {
  const mask = ~(2 ** (8 - bits) - 1);
  const lut = Array.from({ length: 256 }, (_, i) => i & mask);
  return applyLuts(image, [lut, lut, lut]);
}

/** `ImageOps.solarize(image, threshold)`: values at or above `threshold` are inverted. */
export function solarize(image: RgbImage, threshold: number): RgbImage {
  const lut = Array.from({ length: 256 }, (_, i) => i < threshold ? i : 255 - i);
  return applyLuts(image, [lut, lut, lut]);
}

/**
 * `ImageOps.autocontrast(image)` (no cutoff): per channel, the darkest value present becomes 0
 * and the lightest 255, `int(v · 255 / (hi − lo) − lo · scale)` in doubles.
 */
export function autocontrast(image: RgbImage): RgbImage {
  const luts = histograms(image).map((h) => {
    let lo = 0, hi = 255;
    while (lo < 255 && !h[lo]) lo++;
    while (hi > 0 && !h[hi]) hi--;
    if (hi <= lo) return Array.from({ length: 256 }, (_, i) => i);
    const scale = 255.0 / (hi - lo);
    const offset = -lo * scale;
    return Array.from({ length: 256 }, (_, i) => {
      const v = Math.trunc(i * scale + offset);
      return v < 0 ? 0 : v > 255 ? 255 : v;
    });
  });
  return applyLuts(image, luts);
}

/**
 * `ImageOps.equalize(image)`: per channel, the cumulative histogram in steps of
 * `(count − last bin's count) // 255`, integer arithmetic as Python's.
 */
export function equalize(image: RgbImage): RgbImage {
  const luts = histograms(image).map((h) => {
    const nonzero = Array.from(h).filter((v) => v > 0);
    const identity = Array.from({ length: 256 }, (_, i) => i);
    if (nonzero.length <= 1) return identity;
    const total = nonzero.reduce((s, v) => s + v, 0);
    const step = Math.floor((total - nonzero[nonzero.length - 1]) / 255);
    if (!step) return identity;
    let n = Math.floor(step / 2);
    return Array.from({ length: 256 }, (_, i) => {
      const v = Math.floor(n / step);
      n += h[i];
      return v;
    });
  });
  return applyLuts(image, luts);
}
