/**
 * TIFF decoding as PIL's `Image.open(f).convert("RGB")` for the TIFFs people have (the first
 * page; uncompressed, LZW or Deflate, as the `tiff` package reads them): 8-bit RGB and RGBA
 * (alpha dropped), 16-bit RGB (the high byte), 8-bit gray, 16-bit gray (clipped at 255, as PIL
 * converts its mode `I;16`), 8-bit palettes (PIL keeps the high byte of the 16-bit colour map).
 * What that package does not read (PackBits, CCITT and JPEG compression, CMYK, YCbCr, floats,
 * a bilevel TIFF without its BitsPerSample tag as PIL writes one) is refused with one line.
 *
 * @module
 */

import { decode as decodeTiffPages } from "tiff";
import { VitLoraError } from "../core/errors.ts";
import { grayToRgb, paletteToRgb, type RgbImage } from "./rgb.ts";

/**
 * The bytes with the first IFD's Orientation tag set to 1 (on a copy, if there is one): the
 * `tiff` package refuses any other value, and the orientation is applied apart (exif.ts).
 */
function withoutOrientation(bytes: Uint8Array): Uint8Array {
  if (bytes.length < 8) return bytes;
  const little = bytes[0] === 0x49;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ifd = view.getUint32(4, little);
  if (ifd + 2 > bytes.length) return bytes;
  const count = view.getUint16(ifd, little);
  for (let i = 0, at = ifd + 2; i < count && at + 12 <= bytes.length; i++, at += 12) {
    if (view.getUint16(at, little) !== 274 || view.getUint16(at + 2, little) !== 3) continue;
    const copy = bytes.slice();
    new DataView(copy.buffer).setUint16(at + 8, 1, little);
    return copy;
  }
  return bytes;
}

/**
 * Decodes TIFF bytes (the first page) to RGB as PIL's `Image.open(f).convert("RGB")`; the
 * orientation tag is not applied here. Throws `corrupt TIFF: …` or `unsupported TIFF: …`.
 *
 * @example
 * ```ts
 * import { decodeTiff } from "./tiff.ts";
 * try {
 *   decodeTiff(Uint8Array.of(0x49, 0x49, 42, 0, 8, 0, 0, 0));
 * } catch (e) {
 *   console.log((e as Error).message); // corrupt TIFF: …
 * }
 * ```
 */
export function decodeTiff(bytes: Uint8Array): RgbImage {
  let page;
  try {
    [page] = decodeTiffPages(withoutOrientation(bytes), { pages: [0] });
  } catch (e) {
    const what = e instanceof Error ? e.message : String(e);
    if (/^Unsupported/i.test(what)) throw new VitLoraError(`unsupported TIFF: ${what}`);
    if (e instanceof RangeError) {
      throw new VitLoraError("corrupt TIFF: truncated or damaged (it points past its end)");
    }
    throw new VitLoraError(`corrupt TIFF: ${what}`);
  }
  const { width, height, bitsPerSample: bits, samplesPerPixel: spp, type, data } = page;
  const n = width * height;
  if (data.length < n * spp) throw new VitLoraError("corrupt TIFF: not enough image data");
  const unsupported = (what: string): never => {
    throw new VitLoraError(`unsupported TIFF: ${what}`);
  };
  const sample = (v: number) => (bits === 16 ? v >> 8 : v);
  if (type === 0 || type === 1) { // gray (WhiteIsZero is inverted by the decoder)
    if (![1, 8, 16].includes(bits)) unsupported(`${bits}-bit gray`);
    const gray = new Uint8Array(n);
    for (let p = 0; p < n; p++) {
      const v = data[p * spp];
      gray[p] = bits === 1 ? (v ? 255 : 0) : bits === 16 ? Math.min(v, 255) : v;
    }
    return grayToRgb(gray, width, height);
  }
  if (type === 2) {
    if (bits !== 8 && bits !== 16) unsupported(`${bits}-bit colour`);
    if (spp < 3) unsupported(`RGB with ${spp} samples a pixel`);
    if (page.alpha && page.associatedAlpha) unsupported("premultiplied alpha");
    const out = new Uint8Array(n * 3);
    for (let p = 0, q = 0; p < n; p++, q += 3) {
      out[q] = sample(data[p * spp]);
      out[q + 1] = sample(data[p * spp + 1]);
      out[q + 2] = sample(data[p * spp + 2]);
    }
    return { width, height, data: out };
  }
  if (type === 3) {
    if (bits !== 8) unsupported(`${bits}-bit palette`);
    const map = page.palette ?? unsupported("palette without a colour map");
    const palette = new Uint8Array(map.length * 3);
    map.forEach((rgb, i) => palette.set(rgb.map((v) => v >> 8), 3 * i));
    return paletteToRgb(data, width, height, palette);
  }
  return unsupported(`photometric interpretation ${type}`);
}
