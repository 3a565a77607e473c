/**
 * Which image format bytes are in, from their first bytes (their "magic number"), as PIL's
 * plugins recognise them.
 *
 * @module
 */

/** The image formats {@link imageFormat} recognises. */
export type ImageFormat = "jpeg" | "png" | "webp" | "gif" | "bmp" | "tiff";

/** Whether `bytes` hold the ASCII `text` at `at` (false when they end before it does). */
export function asciiAt(bytes: Uint8Array, at: number, text: string): boolean {
  if (at + text.length > bytes.length) return false;
  for (let i = 0; i < text.length; i++) if (bytes[at + i] !== text.charCodeAt(i)) return false;
  return true;
}

/** The header sizes of the BMP versions (what PIL's BMP plugin reads). */
export const BMP_HEADERS: ReadonlySet<number> = new Set([12, 40, 52, 56, 64, 108, 124]);

/**
 * The format of image bytes from their first bytes (JPEG, PNG, WebP, GIF, BMP, TIFF), or
 * `undefined` for anything else: cheap, it reads at most 18 bytes, so a folder's files can be
 * sorted into images and others before any is decoded. A BMP also needs a known header size,
 * so that a text file that starts with "BM" is not taken for one.
 *
 * @example
 * ```ts
 * import { imageFormat } from "./format.ts";
 * console.log(imageFormat(Uint8Array.of(0xff, 0xd8, 0xff, 0xe0))); // "jpeg"
 * console.log(imageFormat(new TextEncoder().encode("just some text"))); // undefined
 * ```
 */
export function imageFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    return "jpeg";
  }
  if (bytes.length >= 8 && asciiAt(bytes, 0, "\x89PNG\r\n\x1a\n")) return "png";
  if (bytes.length >= 12 && asciiAt(bytes, 0, "RIFF") && asciiAt(bytes, 8, "WEBP")) return "webp";
  if (bytes.length >= 6 && (asciiAt(bytes, 0, "GIF87a") || asciiAt(bytes, 0, "GIF89a"))) {
    return "gif";
  }
  if (bytes.length >= 18 && asciiAt(bytes, 0, "BM")) {
    const header = bytes[14] | (bytes[15] << 8) | (bytes[16] << 16) | (bytes[17] << 24);
    if (BMP_HEADERS.has(header)) return "bmp";
  }
  if (bytes.length >= 4 && (asciiAt(bytes, 0, "II*\0") || asciiAt(bytes, 0, "MM\0*"))) {
    return "tiff";
  }
  return undefined;
}
