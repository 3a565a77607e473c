/**
 * PNG decoding, bit-exact with PIL's `Image.open(f).convert("RGB")`, through the Rust `png`
 * crate compiled to wasm (`@jsquash/png`): every colour type and bit depth, palettes (an index
 * past the palette is black, as in PIL), interlaced (Adam7) files. Alpha is dropped and a
 * transparent pixel keeps its stored colour, as PIL's `convert("RGB")` keeps it.
 *
 * 16-bit samples follow PIL's modes: RGB, RGBA and gray+alpha keep their high byte; plain
 * 16-bit gray (PIL's mode `I;16`) is clipped at 255, since PIL converts it to RGB by clipping,
 * not by scaling.
 *
 * @module
 */

import decodePngWasm from "@jsquash/png/decode.js";
import { VitLoraError } from "../core/errors.ts";
import { rgbaToRgb, type RgbImage } from "./rgb.ts";

const chunkType = (bytes: Uint8Array, at: number) =>
  String.fromCharCode(...bytes.subarray(at, at + 4));

/**
 * The type of the chunk the data ends inside, if it ends inside one before IEND (PIL: "image
 * file is truncated"; a cut IEND is read).
 */
function cutChunk(bytes: Uint8Array): string | undefined {
  let at = 8;
  while (at + 8 <= bytes.length) {
    const type = chunkType(bytes, at + 4);
    if (type === "IEND") return undefined;
    const end = at + 12 + new DataView(bytes.buffer, bytes.byteOffset + at, 4).getUint32(0);
    if (end > bytes.length) return type.replace(/[^\x20-\x7e]/g, "?");
    at = end;
  }
  return at < bytes.length ? "next" : undefined;
}

/**
 * Decodes PNG bytes to RGB as PIL's `Image.open(f).convert("RGB")`; the EXIF orientation is
 * not applied here. Throws `corrupt PNG: …` when the bytes cannot be read.
 *
 * @example
 * ```ts
 * import { decodePng } from "./png.ts";
 * const signature = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
 * await decodePng(signature).catch((e) => console.log(e.message)); // corrupt PNG: no IHDR header
 * ```
 */
export async function decodePng(bytes: Uint8Array): Promise<RgbImage> {
  if (bytes.length < 33 || chunkType(bytes, 12) !== "IHDR") {
    throw new VitLoraError("corrupt PNG: no IHDR header");
  }
  const cut = cutChunk(bytes);
  if (cut) throw new VitLoraError(`corrupt PNG: truncated (the file ends inside its ${cut} chunk)`);
  const depth = bytes[24], colorType = bytes[25];
  try {
    if (depth !== 16) {
      const decoded = await decodePngWasm(bytes.slice().buffer);
      return rgbaToRgb(decoded.data, decoded.width, decoded.height);
    }
    const { width, height, data } = await decodePngWasm(bytes.slice().buffer, { bitDepth: 16 });
    const out = new Uint8Array(width * height * 3);
    const gray = colorType === 0;
    for (let p = 0, q = 0; q < out.length; p += 4, q += 3) {
      for (let c = 0; c < 3; c++) {
        const v = data[p + c];
        out[q + c] = gray ? Math.min(v, 255) : v >> 8;
      }
    }
    return { width, height, data: out };
  } catch {
    // the png crate's errors reach JS as "`unwrap_throw` failed", which says nothing
    throw new VitLoraError("corrupt PNG: its image data does not decode");
  }
}
