/**
 * The decoded image every decoder returns (8-bit RGB, as PIL's `convert("RGB")`), and the
 * conversions to it that several formats share.
 *
 * @module
 */

/** An 8-bit RGB image, row-major, 3 bytes a pixel. */
export interface RgbImage {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** `height × width × 3` bytes. */
  data: Uint8Array;
}

/**
 * Drops the alpha of `width × height` RGBA pixels, as PIL's `convert("RGB")` does (the colour
 * of a transparent pixel is kept as stored).
 *
 * @example
 * ```ts
 * import { rgbaToRgb } from "./rgb.ts";
 * const image = rgbaToRgb(Uint8Array.of(1, 2, 3, 0, 4, 5, 6, 255), 2, 1);
 * console.log([...image.data]); // [1, 2, 3, 4, 5, 6]
 * ```
 */
export function rgbaToRgb(
  rgba: ArrayLike<number>,
  width: number,
  height: number,
): RgbImage {
  const n = width * height;
  const data = new Uint8Array(n * 3);
  for (let p = 0, q = 0; q < n * 3; p += 4, q += 3) {
    data[q] = rgba[p];
    data[q + 1] = rgba[p + 1];
    data[q + 2] = rgba[p + 2];
  }
  return { width, height, data };
}

/**
 * Looks up palette indices as PIL's `P` → `RGB` conversion does: `palette` holds 3 bytes an
 * entry, and an index past its end is black (PIL's palette is 256 entries, zero past the
 * ones the file gives).
 *
 * @example
 * ```ts
 * import { paletteToRgb } from "./rgb.ts";
 * const image = paletteToRgb(Uint8Array.of(0, 1, 7), 3, 1, Uint8Array.of(10, 20, 30, 40, 50, 60));
 * console.log([...image.data]); // [10, 20, 30, 40, 50, 60, 0, 0, 0]
 * ```
 */
export function paletteToRgb(
  indices: ArrayLike<number>,
  width: number,
  height: number,
  palette: Uint8Array,
): RgbImage {
  const table = new Uint8Array(256 * 3);
  table.set(palette.subarray(0, 256 * 3));
  const n = width * height;
  const data = new Uint8Array(n * 3);
  for (let p = 0, q = 0; p < n; p++, q += 3) {
    const i = indices[p] * 3;
    data[q] = table[i];
    data[q + 1] = table[i + 1];
    data[q + 2] = table[i + 2];
  }
  return { width, height, data };
}

/**
 * Gray levels to RGB, three equal channels (PIL's `L` → `RGB`).
 *
 * @example
 * ```ts
 * import { grayToRgb } from "./rgb.ts";
 * console.log([...grayToRgb(Uint8Array.of(9, 200), 2, 1).data]); // [9, 9, 9, 200, 200, 200]
 * ```
 */
export function grayToRgb(gray: ArrayLike<number>, width: number, height: number): RgbImage {
  const n = width * height;
  const data = new Uint8Array(n * 3);
  for (let p = 0, q = 0; p < n; p++, q += 3) data[q] = data[q + 1] = data[q + 2] = gray[p];
  return { width, height, data };
}
