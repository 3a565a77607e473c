/**
 * BMP decoding as PIL 12's BMP plugin and `convert("RGB")`: 1-, 4- and 8-bit palettes (RLE8 and
 * RLE4 too), 16-bit 5-5-5 and 5-6-5, 24-bit, 32-bit (alpha ignored unless bitfields name it, and
 * dropped by `convert("RGB")` anyway), bottom-up and top-down, the OS/2 and Windows headers.
 * A palette that is the gray ramp is dropped, as PIL drops it (the index is then the gray
 * level); otherwise an index past the palette is black.
 *
 * Written here rather than taken from a library: the npm BMP decoders (`bmp-js`, `bmp-ts`)
 * need Node's `Buffer`, scale 5-bit channels differently from PIL and paint indices past the
 * palette white, and the format is a header and rows.
 *
 * @module
 */

import { VitLoraError } from "../core/errors.ts";
import { BMP_HEADERS } from "./format.ts";
import { grayToRgb, paletteToRgb, type RgbImage } from "./rgb.ts";

const fail = (what: string): never => {
  throw new VitLoraError(`corrupt BMP: ${what}`);
};

/** PIL's bitfield layouts for 32-bit pixels: [r, g, b, a] masks → byte of R, G, B. */
const MASKS_32: [number[], number[]][] = [
  [[0xff0000, 0xff00, 0xff, 0], [2, 1, 0]], // BGRX
  [[0xff000000, 0xff0000, 0xff00, 0], [3, 2, 1]], // XBGR
  [[0xff000000, 0xff00, 0xff, 0], [3, 1, 0]], // BGXR
  [[0xff000000, 0xff0000, 0xff00, 0xff], [3, 2, 1]], // ABGR
  [[0xff, 0xff00, 0xff0000, 0xff000000], [0, 1, 2]], // RGBA
  [[0xff0000, 0xff00, 0xff, 0xff000000], [2, 1, 0]], // BGRA
  [[0xff000000, 0xff00, 0xff, 0xff0000], [3, 1, 0]], // BGAR
  [[0, 0, 0, 0], [2, 1, 0]], // BGRA
];

/** PIL's RLE8/RLE4 decoder: the indices, row after row from the first stored row. */
function rleIndices(bytes: Uint8Array, at: number, width: number, height: number, rle4: boolean) {
  const total = width * height;
  const data: number[] = [];
  let x = 0;
  while (data.length < total && at + 2 <= bytes.length) {
    let count = bytes[at];
    const value = bytes[at + 1];
    at += 2;
    if (count) {
      if (x + count > width) count = Math.max(0, width - x);
      for (let i = 0; i < count; i++) data.push(rle4 ? (i % 2 ? value & 15 : value >> 4) : value);
      x += count;
    } else if (value === 0) {
      while (data.length % width !== 0) data.push(0); // end of line
      x = 0;
    } else if (value === 1) break; // end of bitmap
    else if (value === 2) {
      if (at + 2 > bytes.length) break;
      const right = bytes[at], up = bytes[at + 1];
      at += 2;
      for (let i = right + up * width; i > 0; i--) data.push(0);
      x = data.length % width;
    } else {
      const n = rle4 ? value >> 1 : value;
      const run = bytes.subarray(at, at + n);
      at += run.length;
      for (const b of run) {
        if (rle4) data.push(b >> 4, b & 15);
        else data.push(b);
      }
      if (run.length < n) break;
      x += value;
      if (at % 2) at++; // to a 16-bit word (of the file, as PIL counts)
    }
  }
  if (data.length < total) fail("not enough image data in its RLE stream");
  return data;
}

/**
 * Decodes BMP bytes to RGB as PIL's `Image.open(f).convert("RGB")`. Throws `corrupt BMP: …`
 * for a file PIL cannot read either.
 *
 * @example
 * ```ts
 * import { decodeBmp } from "./bmp.ts";
 * const bmp = new Uint8Array(58);
 * bmp.set([0x42, 0x4d]);
 * const view = new DataView(bmp.buffer);
 * view.setUint32(10, 54, true); // pixels at
 * view.setUint32(14, 40, true); // BITMAPINFOHEADER
 * view.setInt32(18, 1, true); // width
 * view.setInt32(22, 1, true); // height
 * view.setUint16(28, 24, true); // bits a pixel
 * bmp.set([30, 20, 10], 54); // one pixel, blue-green-red
 * console.log([...decodeBmp(bmp).data]); // [10, 20, 30]
 * ```
 */
export function decodeBmp(bytes: Uint8Array): RgbImage {
  if (bytes.length < 18) fail("truncated header");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u16 = (i: number) => view.getUint16(i, true);
  const u32 = (i: number) => view.getUint32(i, true);
  let offset = u32(10);
  const headerSize = u32(14);
  if (14 + headerSize > bytes.length) fail("truncated header");
  let width: number, height: number, bits: number, compression = 0, colors = 0, padding: number;
  let topDown = false;
  let at = 14 + headerSize; // what follows the header: masks or the palette
  let masks: number[] | undefined;
  if (headerSize === 12) {
    width = u16(18), height = u16(20), bits = u16(24), padding = 3;
  } else if (BMP_HEADERS.has(headerSize)) { // 12 is the branch above
    topDown = bytes[25] === 0xff;
    width = u32(18), height = topDown ? 2 ** 32 - u32(22) : u32(22);
    bits = u16(28), compression = u32(30), colors = u32(46), padding = 4;
    if (compression === 3) {
      if (headerSize - 4 >= 48) {
        masks = [u32(54), u32(58), u32(62), headerSize - 4 >= 52 ? u32(66) : 0];
      } else {
        if (at + 12 > bytes.length) fail("truncated bitfields");
        masks = [u32(at), u32(at + 4), u32(at + 8), 0];
        at += 12;
      }
    }
  } else return fail(`unsupported header size ${headerSize}`);
  if (!colors) colors = 2 ** bits;
  if (offset === 14 + headerSize && bits <= 8) offset += padding * colors;
  if (![1, 4, 8, 16, 24, 32].includes(bits)) fail(`unsupported pixel depth ${bits}`);
  if (width <= 0 || height <= 0 || width * height > 2 ** 28) fail(`bad size ${width}×${height}`);

  // where R, G and B are in a pixel, per PIL's raw modes (BGR;15 and BGR;16 decoded apart)
  let channels = [2, 1, 0];
  let five6five = false;
  if (compression === 3) {
    const [r, g, b, a] = masks!;
    const known = bits === 32
      ? MASKS_32.find(([m]) => m[0] === r && m[1] === g && m[2] === b && m[3] === a)
      : undefined;
    if (known) channels = known[1];
    else if (bits === 24 && r === 0xff0000 && g === 0xff00 && b === 0xff) channels = [2, 1, 0];
    else if (bits === 16 && r === 0xf800 && g === 0x7e0 && b === 0x1f) five6five = true;
    else if (!(bits === 16 && r === 0x7c00 && g === 0x3e0 && b === 0x1f)) {
      fail("unsupported bitfields layout");
    }
  } else if (compression === 1 || compression === 2) {
    if (bits > 8) fail("RLE with more than 8 bits a pixel");
  } else if (compression !== 0) fail(`unsupported compression ${compression}`);

  // the palette, or the gray ramp PIL puts in its place
  let palette: Uint8Array | undefined;
  let bilevel = false;
  if (bits <= 8) {
    if (!(colors > 0 && colors <= 65536)) fail(`unsupported palette size ${colors}`);
    const raw = bytes.subarray(at, at + padding * colors);
    const n = Math.floor(raw.length / padding);
    palette = new Uint8Array(3 * n);
    for (let i = 0; i < n; i++) {
      palette.set([raw[i * padding + 2], raw[i * padding + 1], raw[i * padding]], 3 * i);
    }
    const ramp = colors === 2 ? [0, 255] : Array.from({ length: colors }, (_, i) => i);
    const gray = raw.length >= padding * (ramp.length - 1) + 3 &&
      ramp.every((v, i) =>
        palette![3 * i] === v && palette![3 * i + 1] === v && palette![3 * i + 2] === v
      );
    if (gray) {
      bilevel = colors === 2;
      palette = undefined;
    }
  }

  const toRgb = (indices: ArrayLike<number>): RgbImage => {
    if (palette) return paletteToRgb(indices, width, height, palette);
    if (!bilevel) return grayToRgb(indices, width, height);
    return grayToRgb(Array.from(indices, (i) => (i ? 255 : 0)), width, height);
  };
  const flip = (rows: number) => (topDown ? rows : height - 1 - rows);

  if (compression === 1 || compression === 2) {
    const stored = rleIndices(bytes, offset, width, height, compression === 2);
    const indices = new Uint8Array(width * height);
    for (let r = 0; r < height; r++) {
      indices.set(stored.slice(r * width, (r + 1) * width), flip(r) * width);
    }
    return toRgb(indices);
  }

  const stride = ((width * bits + 31) >> 3) & ~3;
  const rowBytes = Math.ceil((width * bits) / 8);
  if (offset + (height - 1) * stride + rowBytes > bytes.length) fail("truncated pixel data");
  if (bits <= 8) {
    const indices = new Uint8Array(width * height);
    const perByte = 8 / bits, mask = (1 << bits) - 1;
    for (let r = 0; r < height; r++) {
      const row = offset + r * stride, out = flip(r) * width;
      for (let x = 0; x < width; x++) {
        const byte = bytes[row + Math.floor(x / perByte)];
        indices[out + x] = (byte >> (8 - bits * (1 + (x % perByte)))) & mask;
      }
    }
    return toRgb(indices);
  }
  const data = new Uint8Array(width * height * 3);
  const size = bits / 8;
  for (let r = 0; r < height; r++) {
    const row = offset + r * stride;
    for (let x = 0, q = flip(r) * width * 3; x < width; x++, q += 3) {
      const p = row + x * size;
      if (bits === 16) {
        const v = u16(p);
        data[q + 2] = Math.floor(((v & 31) * 255) / 31);
        if (five6five) {
          data[q + 1] = Math.floor((((v >> 5) & 63) * 255) / 63);
          data[q] = Math.floor((((v >> 11) & 31) * 255) / 31);
        } else {
          data[q + 1] = Math.floor((((v >> 5) & 31) * 255) / 31);
          data[q] = Math.floor((((v >> 10) & 31) * 255) / 31);
        }
      } else {
        data[q] = bytes[p + channels[0]];
        data[q + 1] = bytes[p + channels[1]];
        data[q + 2] = bytes[p + channels[2]];
      }
    }
  }
  return { width, height, data };
}
