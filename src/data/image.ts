/**
 * Images as people have them, decoded to 8-bit RGB exactly as transformers' `load_image` does
 * (`PIL.ImageOps.exif_transpose(Image.open(f)).convert("RGB")`, Pillow 12): JPEG (baseline,
 * progressive, grayscale, CMYK and YCCK; libjpeg's code in wasm, as Pillow runs it), PNG (every
 * depth and colour type, palettes, alpha, interlacing), WebP (lossy, lossless, alpha, the first
 * frame of an animation), GIF (the first frame), BMP, TIFF (8- and 16-bit gray and RGB,
 * palettes); then the EXIF orientation applied as PIL applies it. Grayscale becomes three equal
 * channels and alpha is dropped, as PIL's `convert("RGB")` does.
 *
 * imagescript (its JPEG decoder only, for `decoder: "imagescript"`) is imported decoder by
 * decoder: its main module also loads a native encoder addon at import, which Deno allows only
 * with `--allow-ffi`, and decoding never uses it.
 *
 * @module
 */

// @ts-types="./imagescript.d.ts"
import imagescriptJpeg from "imagescript/wasm/node/jpeg.js";
import { VitLoraError } from "../core/errors.ts";
import { decodeBmp } from "./bmp.ts";
import { orient, readOrientation } from "./exif.ts";
import { type ImageFormat, imageFormat } from "./format.ts";
import { decodeGif } from "./gif.ts";
import { decodeJpeg } from "./jpeg.ts";
import { decodePng } from "./png.ts";
import type { RgbImage } from "./rgb.ts";
import { decodeTiff } from "./tiff.ts";
import { decodeWebp } from "./webp.ts";

export type { RgbImage } from "./rgb.ts";
export { type ImageFormat, imageFormat } from "./format.ts";

/** Options of {@link decodeImage}. */
export interface DecodeOptions {
  /**
   * `auto` (default): each format's Pillow-exact decoder; `imagescript`: imagescript for
   * JPEGs (another IDCT: within a few levels of PIL; for comparisons only).
   */
  decoder?: "auto" | "imagescript";
  /**
   * Apply the EXIF orientation as `load_image` does (default `true`); `false` gives the
   * pixels as stored.
   */
  orientation?: boolean;
}

/** A JPEG through imagescript: gray, RGB or CMYK planes to RGB (its own CMYK conversion). */
async function imagescriptJpegToRgb(bytes: Uint8Array): Promise<RgbImage> {
  const { width, height, format, buffer } = (await imagescriptJpeg.init()).decode(bytes);
  const n = width * height;
  const data = new Uint8Array(n * 3);
  if (format === 0) {
    for (let i = 0; i < n; i++) data[3 * i] = data[3 * i + 1] = data[3 * i + 2] = buffer[i];
  } else if (format === 1) data.set(buffer.subarray(0, n * 3));
  else if (format === 2) {
    for (let i = 0; i < n; i++) {
      const k = 1 - buffer[4 * i + 3] / 255;
      for (let c = 0; c < 3; c++) data[3 * i + c] = 255 * (1 - buffer[4 * i + c] / 255) * k;
    }
  } else throw new Error(`unsupported JPEG pixel format ${format}`);
  return { width, height, data };
}

/** The pixels as stored, before the orientation. */
async function decodeStored(
  bytes: Uint8Array,
  format: ImageFormat,
  options: DecodeOptions,
): Promise<RgbImage> {
  switch (format) {
    case "jpeg":
      if (options.decoder !== "imagescript") return await decodeJpeg(bytes);
      try {
        return await imagescriptJpegToRgb(bytes);
      } catch (e) {
        throw new VitLoraError(`corrupt JPEG: ${(e as Error)?.message ?? e}`);
      }
    case "png":
      return await decodePng(bytes);
    case "webp":
      return await decodeWebp(bytes);
    case "gif":
      return decodeGif(bytes);
    case "bmp":
      return decodeBmp(bytes);
    case "tiff":
      return decodeTiff(bytes);
  }
}

/**
 * Decodes image bytes (JPEG, PNG, WebP, GIF, BMP, TIFF; the format is told by the bytes, not
 * a name) to RGB as transformers' `load_image` does, EXIF orientation included. Throws a
 * `VitLoraError` of one line when the bytes are not an image it can read: `not an image (N
 * bytes)`, `not a readable image: …` (no known format), `corrupt JPEG: …` / `corrupt PNG: …`
 * and so on (the caller names the file).
 *
 * @example
 * ```ts
 * import { decodeImage } from "@lora/vit/data";
 * // a 1 × 1 GIF: one red pixel
 * const gif = Uint8Array.of(
 *   ...new TextEncoder().encode("GIF89a"), 1, 0, 1, 0, 0x80, 0, 0, 255, 0, 0, 0, 0, 0,
 *   0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 0x01, 0, 0x3b,
 * );
 * const image = await decodeImage(gif); // or: await decodeImage(await Deno.readFile("dish.jpg"))
 * console.log(image.width, image.height, [...image.data]); // 1 1 [255, 0, 0]
 * ```
 */
export async function decodeImage(
  bytes: Uint8Array,
  options: DecodeOptions = {},
): Promise<RgbImage> {
  if (bytes.length < 8) throw new VitLoraError(`not an image (${bytes.length} bytes)`);
  const format = imageFormat(bytes);
  if (!format) {
    throw new VitLoraError(
      "not a readable image: not JPEG, PNG, WebP, GIF, BMP or TIFF (by its first bytes)",
    );
  }
  const image = await decodeStored(bytes, format, options);
  if (options.orientation === false) return image;
  return orient(image, await readOrientation(bytes, format));
}
