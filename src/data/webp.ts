/**
 * WebP decoding, bit-exact with Pillow (both run libwebp): lossy and lossless, with or without
 * alpha, through libwebp compiled to wasm (`@jsquash/webp`). An animated WebP gives its first
 * frame as Pillow's `WebPAnimDecoder` draws it: on a transparent black canvas of the animation's
 * size, at the frame's offset. Alpha is then dropped, as PIL's `convert("RGB")` drops it.
 *
 * @module
 */

import decodeWebpWasm from "@jsquash/webp/decode.js";
import { VitLoraError } from "../core/errors.ts";
import { rgbaToRgb, type RgbImage } from "./rgb.ts";

/** One chunk of a RIFF container: its id and payload. */
interface Chunk {
  id: string;
  body: Uint8Array;
}

const u24 = (b: Uint8Array, i: number) => b[i] | (b[i + 1] << 8) | (b[i + 2] << 16);

/** The chunks in `bytes` from `at` on (a chunk cut short by the end is an error). */
function chunks(bytes: Uint8Array, at: number): Chunk[] {
  const out: Chunk[] = [];
  while (at + 8 <= bytes.length) {
    const id = String.fromCharCode(...bytes.subarray(at, at + 4));
    const size = (u24(bytes, at + 4) | (bytes[at + 7] << 24)) >>> 0;
    if (at + 8 + size > bytes.length) throw new Error(`${id.trim()} chunk cut short`);
    out.push({ id, body: bytes.subarray(at + 8, at + 8 + size) });
    at += 8 + size + (size & 1);
  }
  return out;
}

/** A RIFF WebP file holding `parts`. */
function riff(parts: Chunk[]): Uint8Array {
  const size = parts.reduce((n, c) => n + 8 + c.body.length + (c.body.length & 1), 4);
  const out = new Uint8Array(8 + size);
  const view = new DataView(out.buffer);
  out.set([0x52, 0x49, 0x46, 0x46]);
  view.setUint32(4, size, true);
  out.set([0x57, 0x45, 0x42, 0x50], 8);
  let at = 12;
  for (const c of parts) {
    for (let i = 0; i < 4; i++) out[at + i] = c.id.charCodeAt(i);
    view.setUint32(at + 4, c.body.length, true);
    out.set(c.body, at + 8);
    at += 8 + c.body.length + (c.body.length & 1);
  }
  return out;
}

/** libwebp's RGBA for a still WebP. */
async function decodeStill(
  bytes: Uint8Array,
): Promise<{ width: number; height: number; data: Uint8ClampedArray }> {
  const { width, height, data } = await decodeWebpWasm(bytes.slice().buffer);
  return { width, height, data: data as Uint8ClampedArray };
}

/** The first frame of an animation, drawn on its transparent canvas. */
async function firstFrame(vp8x: Uint8Array, list: Chunk[]): Promise<RgbImage> {
  const width = u24(vp8x, 4) + 1, height = u24(vp8x, 7) + 1;
  const anmf = list.find((c) => c.id === "ANMF");
  if (!anmf || anmf.body.length < 16) throw new Error("animation without frames");
  const x = 2 * u24(anmf.body, 0), y = 2 * u24(anmf.body, 3);
  const fw = u24(anmf.body, 6) + 1, fh = u24(anmf.body, 9) + 1;
  const parts = chunks(anmf.body, 16);
  const alph = parts.find((c) => c.id === "ALPH");
  const lossless = parts.find((c) => c.id === "VP8L");
  const lossy = parts.find((c) => c.id === "VP8 ");
  let still: Uint8Array;
  if (lossless) still = riff([lossless]);
  else if (lossy && alph) {
    const header = new Uint8Array(10);
    header[0] = 0x10; // alpha
    header.set([(fw - 1) & 255, ((fw - 1) >> 8) & 255, (fw - 1) >> 16], 4);
    header.set([(fh - 1) & 255, ((fh - 1) >> 8) & 255, (fh - 1) >> 16], 7);
    still = riff([{ id: "VP8X", body: header }, alph, lossy]);
  } else if (lossy) still = riff([lossy]);
  else throw new Error("frame without image data");
  const frame = await decodeStill(still);
  const canvas = new Uint8Array(width * height * 4);
  for (let row = 0; row < frame.height && y + row < height; row++) {
    const w = Math.min(frame.width, width - x) * 4;
    if (w <= 0) break;
    const from = row * frame.width * 4;
    canvas.set(frame.data.subarray(from, from + w), ((y + row) * width + x) * 4);
  }
  return rgbaToRgb(canvas, width, height);
}

/**
 * Decodes WebP bytes to RGB as PIL's `Image.open(f).convert("RGB")` (an animation: its first
 * frame); the EXIF orientation is not applied here. Throws `corrupt WebP: …` when the bytes
 * cannot be read.
 *
 * @example
 * ```ts
 * import { decodeWebp } from "./webp.ts";
 * const header = new TextEncoder().encode("RIFF\x40\0\0\0WEBPVP8 ");
 * await decodeWebp(header).catch((e) => console.log(e.message)); // corrupt WebP: truncated
 * ```
 */
export async function decodeWebp(bytes: Uint8Array): Promise<RgbImage> {
  try {
    // Pillow's demuxer wants the whole RIFF payload the header announces
    const size = (u24(bytes, 4) | (bytes[7] << 24)) >>> 0;
    if (size + 8 > bytes.length) throw new Error("truncated");
    const list = chunks(bytes.subarray(0, size + 8), 12);
    const vp8x = list.find((c) => c.id === "VP8X");
    if (vp8x && vp8x.body.length >= 10 && vp8x.body[0] & 0x02) {
      return await firstFrame(vp8x.body, list);
    }
    const decoded = await decodeStill(bytes);
    return rgbaToRgb(decoded.data, decoded.width, decoded.height);
  } catch (e) {
    throw new VitLoraError(
      `corrupt WebP: ${e instanceof Error ? e.message : "libwebp rejected it"}`,
    );
  }
}
