/**
 * The EXIF orientation, read and applied as transformers' `load_image` does through
 * `PIL.ImageOps.exif_transpose`: the Orientation tag (274) of the EXIF block's first IFD, or,
 * when that block has no such tag, `tiff:Orientation` in the XMP packet; then the one of PIL's
 * seven transpositions that the value names (1 and anything else: none).
 *
 * Where each container keeps them follows PIL 12's plugins: JPEG APP1 segments before the scan
 * (`Exif\0\0` ones concatenated, the last XMP one); PNG `eXIf` chunks, a `tEXt` keyed `exif`,
 * the ImageMagick-style "Raw profile type exif" text, and `XML:com.adobe.xmp` (any chunk
 * order, the last of each wins); WebP `EXIF` and `XMP ` chunks (the first of each); a TIFF's
 * own first IFD. GIF and BMP carry none.
 *
 * A small reader of its own rather than an EXIF library: which segment, which tag type and
 * which fallback count is PIL's behaviour, not the EXIF standard's, and only one tag is read.
 *
 * @module
 */

import { asciiAt, type ImageFormat } from "./format.ts";
import type { RgbImage } from "./rgb.ts";

/** Where a container keeps its EXIF block and XMP packet, as PIL finds them. */
interface Metadata {
  exif?: Uint8Array;
  xmp?: string;
}

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder();

const u16be = (b: Uint8Array, i: number) => (b[i] << 8) | b[i + 1];
const u32be = (b: Uint8Array, i: number) =>
  ((b[i] << 24) | (b[i + 1] << 16) | u16be(b, i + 2)) >>> 0;
const u32le = (b: Uint8Array, i: number) =>
  (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;

/** JPEG: the APP1 segments before the first scan. */
function jpegMetadata(bytes: Uint8Array): Metadata {
  const meta: Metadata = {};
  let i = 2;
  while (i + 4 <= bytes.length) {
    if (bytes[i] !== 0xff) {
      i++; // junk between segments, as PIL skips it
      continue;
    }
    const marker = bytes[i + 1];
    if (marker === 0xff || marker === 0x00) {
      i++;
      continue;
    }
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      i += 2;
      continue;
    }
    if (marker === 0xda || marker === 0xd9) break;
    const length = u16be(bytes, i + 2);
    const payload = bytes.subarray(i + 4, Math.min(bytes.length, i + 2 + length));
    if (marker === 0xe1 && asciiAt(payload, 0, "Exif\0\0")) {
      if (!meta.exif) meta.exif = payload;
      else {
        const joined = new Uint8Array(meta.exif.length + payload.length - 6);
        joined.set(meta.exif);
        joined.set(payload.subarray(6), meta.exif.length);
        meta.exif = joined;
      }
    } else if (marker === 0xe1 && asciiAt(payload, 0, "http://ns.adobe.com/xap/1.0/\0")) {
      meta.xmp = latin1.decode(payload.subarray(29));
    }
    i += 2 + length;
  }
  return meta;
}

/** The text of a zlib stream, or undefined when it does not inflate. */
async function inflate(bytes: Uint8Array): Promise<Uint8Array | undefined> {
  try {
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
      .pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch {
    return undefined;
  }
}

/** PNG: `eXIf`, and the text chunks PIL turns into `info` entries. */
async function pngMetadata(bytes: Uint8Array): Promise<Metadata> {
  const meta: Metadata = {};
  const text = new Map<string, string>();
  let i = 8;
  while (i + 8 <= bytes.length) {
    const length = u32be(bytes, i);
    const type = latin1.decode(bytes.subarray(i + 4, i + 8));
    const body = bytes.subarray(i + 8, Math.min(bytes.length, i + 8 + length));
    i += 12 + length;
    if (type === "IEND") break;
    if (type === "eXIf") {
      meta.exif = new Uint8Array(6 + body.length);
      meta.exif.set([0x45, 0x78, 0x69, 0x66, 0, 0]);
      meta.exif.set(body, 6);
      continue;
    }
    if (type !== "tEXt" && type !== "zTXt" && type !== "iTXt") continue;
    const nul = body.indexOf(0);
    const key = latin1.decode(nul < 0 ? body : body.subarray(0, nul));
    const rest = nul < 0 ? new Uint8Array(0) : body.subarray(nul + 1);
    if (!key) continue;
    if (type === "tEXt") {
      if (key === "exif") meta.exif = rest;
      else text.set(key, latin1.decode(rest));
    } else if (type === "zTXt") {
      const value = rest.length > 0 && rest[0] === 0 ? await inflate(rest.subarray(1)) : undefined;
      if (value) text.set(key, latin1.decode(value));
    } else if (rest.length >= 2) {
      const [compressed, method] = rest;
      const lang = rest.indexOf(0, 2);
      const translated = lang < 0 ? -1 : rest.indexOf(0, lang + 1);
      if (translated < 0) continue;
      let value: Uint8Array | undefined = rest.subarray(translated + 1);
      if (compressed) value = method === 0 ? await inflate(value) : undefined;
      if (value) text.set(key, utf8.decode(value));
    }
  }
  const raw = text.get("Raw profile type exif");
  if (!meta.exif && raw !== undefined) {
    // PIL: bytes.fromhex("".join(value.split("\n")[3:])), which skips spaces
    const hex = raw.split("\n").slice(3).join("").replace(/[ \t\r\f\v]/g, "");
    if (/^([0-9a-fA-F]{2})*$/.test(hex)) {
      meta.exif = Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
    }
  }
  meta.xmp = text.get("XML:com.adobe.xmp");
  return meta;
}

/** WebP: the first `EXIF` and `XMP ` chunks of the RIFF container. */
function webpMetadata(bytes: Uint8Array): Metadata {
  const meta: Metadata = {};
  let i = 12;
  while (i + 8 <= bytes.length) {
    const id = latin1.decode(bytes.subarray(i, i + 4));
    const size = u32le(bytes, i + 4);
    const body = bytes.subarray(i + 8, Math.min(bytes.length, i + 8 + size));
    if (id === "EXIF" && !meta.exif) meta.exif = body;
    if (id === "XMP " && meta.xmp === undefined) meta.xmp = latin1.decode(body);
    i += 8 + size + (size & 1);
  }
  return meta;
}

/** The value types whose first value PIL hands back as an integer, and their sizes. */
const INTEGER_TYPES: Record<number, number> = { 3: 2, 4: 4, 6: 1, 8: 2, 9: 4 };
/** The sizes of the other TIFF types PIL reads (a tag of an unknown type is skipped). */
const OTHER_TYPES: Record<number, number> = {
  1: 1,
  2: 1,
  5: 8,
  7: 1,
  10: 8,
  11: 4,
  12: 8,
  13: 4,
  16: 8,
};

/**
 * The Orientation tag of an EXIF block (a TIFF header and its first IFD, optionally after
 * `Exif\0\0`) as PIL's `Exif.load` reads it: `present` when the tag was read at all (then the
 * XMP is not consulted), `value` when it holds an integer (its first value).
 *
 * @example
 * ```ts
 * import { exifOrientation } from "./exif.ts";
 * // little-endian TIFF header, IFD at 8 with one entry: tag 274, SHORT, 1 value: 6
 * const block = Uint8Array.of(
 *   0x49, 0x49, 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0,
 * );
 * console.log(exifOrientation(block)); // { present: true, value: 6 }
 * ```
 */
export function exifOrientation(block: Uint8Array): { present: boolean; value?: number } {
  let data = block;
  while (asciiAt(data, 0, "Exif\0\0")) data = data.subarray(6);
  const none = { present: false };
  if (data.length < 8) return none;
  const little = asciiAt(data, 0, "II");
  if (!little && !asciiAt(data, 0, "MM")) return none;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const u16 = (at: number) => view.getUint16(at, little);
  const u32 = (at: number) => view.getUint32(at, little);
  if (u16(2) !== 42) return none; // BigTIFF (43) blocks are not read here
  let at = u32(4);
  if (at + 2 > data.length) return none;
  const count = u16(at);
  at += 2;
  let found: { present: boolean; value?: number } = none;
  for (let n = 0; n < count; n++, at += 12) {
    if (at + 12 > data.length) break; // PIL stops at a truncated entry, keeping the tags before
    const tag = u16(at), type = u16(at + 2), values = u32(at + 4);
    const unit = INTEGER_TYPES[type] ?? OTHER_TYPES[type];
    if (unit === undefined) continue;
    const size = unit * values;
    let offset = at + 8;
    if (size > 4) {
      offset = u32(at + 8);
      if (offset + size > data.length) break; // PIL's read fails and ends the IFD there
    }
    if (size === 0 || tag !== 274) continue;
    if (!(type in INTEGER_TYPES)) found = { present: true };
    else {
      const value = type === 3
        ? u16(offset)
        : type === 4
        ? u32(offset)
        : type === 6
        ? view.getInt8(offset)
        : type === 8
        ? view.getInt16(offset, little)
        : view.getInt32(offset, little);
      found = { present: true, value };
    }
  }
  return found;
}

/**
 * The orientation PIL's `exif_transpose` applies to `bytes` (1 to 8; 1 when there is none or
 * the value is not one of PIL's).
 *
 * @example
 * ```ts
 * import { readOrientation } from "./exif.ts";
 * console.log(await readOrientation(new Uint8Array(16), "bmp")); // 1
 * ```
 */
export async function readOrientation(bytes: Uint8Array, format: ImageFormat): Promise<number> {
  let meta: Metadata;
  if (format === "jpeg") meta = jpegMetadata(bytes);
  else if (format === "png") meta = await pngMetadata(bytes);
  else if (format === "webp") meta = webpMetadata(bytes);
  else if (format === "tiff") meta = { exif: bytes };
  else return 1;
  const tag = meta.exif ? exifOrientation(meta.exif) : { present: false };
  let value = tag.value;
  if (!tag.present && meta.xmp) {
    const match = /tiff:Orientation(="|>)([0-9])/.exec(meta.xmp);
    if (match) value = Number(match[2]);
  }
  return value !== undefined && value >= 2 && value <= 8 ? value : 1;
}

/**
 * Applies an EXIF orientation as PIL's `Image.transpose` does: 2 flips left-right, 3 rotates
 * 180°, 4 flips top-bottom, 5 transposes, 6 rotates 90° clockwise (PIL's ROTATE_270), 7
 * transverses, 8 rotates 90° counter-clockwise (ROTATE_90); anything else returns `image`.
 *
 * @example
 * ```ts
 * import { orient } from "./exif.ts";
 * const image = { width: 2, height: 1, data: Uint8Array.of(1, 1, 1, 2, 2, 2) };
 * const turned = orient(image, 6);
 * console.log(turned.width, turned.height, [...turned.data]); // 1 2 [1, 1, 1, 2, 2, 2]
 * ```
 */
export function orient(image: RgbImage, orientation: number): RgbImage {
  if (!(orientation >= 2 && orientation <= 8)) return image;
  const { width: w, height: h, data } = image;
  const swap = orientation >= 5;
  const width = swap ? h : w, height = swap ? w : h;
  const out = new Uint8Array(data.length);
  for (let y = 0, q = 0; y < height; y++) {
    for (let x = 0; x < width; x++, q += 3) {
      let sx: number, sy: number;
      switch (orientation) {
        case 2:
          sx = w - 1 - x, sy = y;
          break;
        case 3:
          sx = w - 1 - x, sy = h - 1 - y;
          break;
        case 4:
          sx = x, sy = h - 1 - y;
          break;
        case 5:
          sx = y, sy = x;
          break;
        case 6:
          sx = y, sy = h - 1 - x;
          break;
        case 7:
          sx = w - 1 - y, sy = h - 1 - x;
          break;
        default:
          sx = w - 1 - y, sy = x;
      }
      const p = (sy * w + sx) * 3;
      out[q] = data[p];
      out[q + 1] = data[p + 1];
      out[q + 2] = data[p + 2];
    }
  }
  return { width, height, data: out };
}
