/**
 * GIF decoding as PIL's `Image.open(f).convert("RGB")`: the first frame, its LZW data decoded by
 * `gifuct-js`, drawn as PIL 12's GIF plugin draws frame 0: on a screen of the logical screen's
 * size (grown if the frame is larger), filled with the frame's transparent index if it has one,
 * else index 0; then each index through the frame's colour table (the local one, else the
 * global one). A colour table that is the identity gray ramp is dropped, as PIL drops it (the
 * image is then mode `L`: the index is the gray level); with a table, an index past its end is
 * black. Transparency does not change colours: PIL's `convert("RGB")` ignores it.
 *
 * @module
 */

import { decompressFrame, parseGIF } from "gifuct-js";
import { VitLoraError } from "../core/errors.ts";
import { grayToRgb, paletteToRgb, type RgbImage } from "./rgb.ts";

/**
 * Where the first image's data ends: `complete` when its chain of sub-blocks is whole (or only
 * its terminator is missing after whole sub-blocks, which PIL reads); `false` when the data
 * stops inside a sub-block (PIL: "image file is truncated"); undefined when there is no image.
 */
function firstImageComplete(bytes: Uint8Array): boolean | undefined {
  let i = 13;
  if (bytes[10] & 0x80) i += 3 << ((bytes[10] & 7) + 1);
  const blocks = (): boolean => {
    while (i < bytes.length) {
      const size = bytes[i];
      if (size === 0) {
        i++;
        return true;
      }
      if (i + 1 + size > bytes.length) return false;
      i += 1 + size;
    }
    return true; // whole sub-blocks up to the end of the file
  };
  while (i < bytes.length) {
    const b = bytes[i++];
    if (b === 0x3b) return undefined;
    if (b === 0x21) {
      i++; // label
      if (!blocks()) return false;
    } else if (b === 0x2c) {
      if (i + 9 > bytes.length) return false;
      const flags = bytes[i + 8];
      i += 9;
      if (flags & 0x80) i += 3 << ((flags & 7) + 1);
      i++; // LZW minimum code size
      if (i > bytes.length) return false;
      return blocks();
    } // anything else: skipped, as PIL skips it
  }
  return undefined;
}

/** Whether a colour table is the gray ramp PIL drops (`i, i, i` for every entry). */
function isRamp(table: readonly ArrayLike<number>[]): boolean {
  return table.every((rgb, i) => rgb[0] === i && rgb[1] === i && rgb[2] === i);
}

/** gifuct-js's frame, with the local colour table it reads but does not type. */
interface GifFrame {
  gce?: { transparentColorIndex: number; extras: { transparentColorGiven: boolean } };
  image?: {
    descriptor: {
      top: number;
      left: number;
      width: number;
      height: number;
      lct: { exists: boolean };
    };
    lct?: [number, number, number][];
  };
}

/**
 * Decodes GIF bytes to RGB as PIL's `Image.open(f).convert("RGB")` (the first frame). Throws
 * `corrupt GIF: …` when the bytes cannot be read.
 *
 * @example
 * ```ts
 * import { decodeGif } from "./gif.ts";
 * // 1 × 1, a two-colour global table (red, black), index 0
 * const gif = Uint8Array.of(
 *   ...new TextEncoder().encode("GIF89a"), 1, 0, 1, 0, 0x80, 0, 0, 255, 0, 0, 0, 0, 0,
 *   0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 0x01, 0, 0x3b,
 * );
 * console.log([...decodeGif(gif).data]); // [255, 0, 0]
 * ```
 */
export function decodeGif(bytes: Uint8Array): RgbImage {
  if (bytes.length < 13) throw new VitLoraError("corrupt GIF: truncated header");
  const complete = firstImageComplete(bytes);
  if (complete === undefined) throw new VitLoraError("corrupt GIF: no image in it (truncated?)");
  if (!complete) throw new VitLoraError("corrupt GIF: truncated image data");
  let parsed;
  try {
    parsed = parseGIF(bytes.slice().buffer);
  } catch (e) {
    throw new VitLoraError(`corrupt GIF: ${e instanceof Error ? e.message : String(e)}`);
  }
  const frame = (parsed.frames as GifFrame[]).find((f) => f.image);
  if (!frame?.image) throw new VitLoraError("corrupt GIF: no image in it");
  const { top, left, width: fw, height: fh } = frame.image.descriptor;
  const decoded = decompressFrame(
    frame as Parameters<typeof decompressFrame>[0],
    parsed.gct,
    false,
  );
  const width = Math.max(parsed.lsd.width, left + fw);
  const height = Math.max(parsed.lsd.height, top + fh);
  const transparent = frame.gce?.extras.transparentColorGiven ? frame.gce.transparentColorIndex : 0;
  const indices = new Uint8Array(width * height).fill(transparent);
  for (let y = 0; y < fh; y++) {
    for (let x = 0; x < fw; x++) indices[(top + y) * width + left + x] = decoded.pixels[y * fw + x];
  }
  const table = frame.image.descriptor.lct.exists
    ? frame.image.lct ?? []
    : parsed.lsd.gct.exists
    ? parsed.gct
    : undefined;
  if (!table || isRamp(table)) return grayToRgb(indices, width, height);
  // gifuct-js gives the entries as small typed arrays, which Array#flat leaves whole
  const palette = new Uint8Array(table.length * 3);
  table.forEach((rgb, i) => palette.set(rgb, 3 * i));
  return paletteToRgb(indices, width, height, palette);
}
