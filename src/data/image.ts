/**
 * Image decoding to 8-bit RGB: JPEG through mozjpeg compiled to wasm (npm:@jsquash/jpeg,
 * about 3× faster than imagescript on Food101-sized photos), everything else (PNG, TIFF, CMYK
 * JPEGs, which mozjpeg cannot turn into RGB) through imagescript's decoders. Grayscale becomes
 * three equal channels and alpha is dropped, as PIL's `convert("RGB")` does.
 *
 * imagescript's decoders are imported one by one: its main module also loads a native
 * encoder addon at import, which Deno allows only with `--allow-ffi`, and decoding never
 * uses it.
 *
 * @module
 */

import decodeJpegWasm, { init as initJpegWasm } from "@jsquash/jpeg/decode.js";
// @ts-types="./imagescript.d.ts"
import imagescriptJpeg from "imagescript/wasm/node/jpeg.js";
// @ts-types="./imagescript.d.ts"
import imagescriptPng from "imagescript/wasm/node/png.js";
// @ts-types="./imagescript.d.ts"
import imagescriptTiff from "imagescript/wasm/node/tiff.js";

/** An 8-bit RGB image, row-major, 3 bytes a pixel. */
export interface RgbImage {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** `height × width × 3` bytes. */
  data: Uint8Array;
}

let jpegWasmReady = false;

/** Options of {@link decodeImage}. */
export interface DecodeOptions {
  /**
   * `auto` (default): mozjpeg for RGB and grayscale JPEGs, imagescript for the rest;
   * `imagescript`: imagescript for everything.
   */
  decoder?: "auto" | "imagescript";
}

/** The number of colour components of a baseline or progressive JPEG, or 0 if not found. */
function jpegComponents(bytes: Uint8Array): number {
  let i = 2;
  while (i + 9 < bytes.length) {
    if (bytes[i] !== 0xff) return 0;
    const marker = bytes[i + 1];
    if (marker === 0xff) {
      i++;
      continue;
    }
    const length = (bytes[i + 2] << 8) | bytes[i + 3];
    // SOF0…SOF15, except DHT (C4), JPG (C8) and DAC (CC)
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return bytes[i + 9];
    }
    i += 2 + length;
  }
  return 0;
}

function rgbaToRgb(rgba: Uint8Array | Uint8ClampedArray, width: number, height: number): RgbImage {
  const n = width * height;
  const data = new Uint8Array(n * 3);
  for (let p = 0, q = 0; p < n * 4; p += 4, q += 3) {
    data[q] = rgba[p];
    data[q + 1] = rgba[p + 1];
    data[q + 2] = rgba[p + 2];
  }
  return { width, height, data };
}

/**
 * Decodes JPEG, PNG, GIF or TIFF bytes to RGB. Throws an `Error` saying what is wrong when the
 * bytes are not an image it can read (the caller names the file).
 *
 * @example
 * ```ts ignore
 * import { decodeImage } from "@lora/vit/data";
 * const image = await decodeImage(await Deno.readFile("dish.jpg"));
 * console.log(image.width, image.height); // data: height × width × 3 bytes
 * ```
 */
export async function decodeImage(
  bytes: Uint8Array,
  options: DecodeOptions = {},
): Promise<RgbImage> {
  if (bytes.length < 8) throw new Error(`not an image (${bytes.length} bytes)`);
  const isJpeg = bytes[0] === 0xff && bytes[1] === 0xd8;
  if (isJpeg && options.decoder !== "imagescript") {
    const components = jpegComponents(bytes);
    if (components === 1 || components === 3) {
      try {
        if (!jpegWasmReady) {
          // mozjpeg's own warnings ("Premature end of JPEG file") would go to the console;
          // the error thrown says what is wrong instead
          initJpegWasm({ print: () => {}, printErr: () => {} });
          jpegWasmReady = true;
        }
        const copy = bytes.slice().buffer;
        const decoded = await decodeJpegWasm(copy);
        return rgbaToRgb(decoded.data as Uint8ClampedArray, decoded.width, decoded.height);
      } catch {
        // fall through to imagescript, which reads some JPEGs mozjpeg rejects
      }
    }
  }
  try {
    return await decodeWithImagescript(bytes);
  } catch (e) {
    const kind = isJpeg ? "corrupt JPEG" : "not a readable image";
    throw new Error(`${kind}: ${(e as Error)?.message ?? e}`);
  }
}

/** imagescript's `Image.decode` for JPEG, PNG and TIFF, to RGB. */
async function decodeWithImagescript(bytes: Uint8Array): Promise<RgbImage> {
  const magic = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0);
  if (magic === 0x89504e47) {
    const { width, height, framebuffer } = (await imagescriptPng.init()).decode(bytes);
    return rgbaToRgb(framebuffer, width, height);
  }
  if (magic >>> 8 === 0xffd8ff) {
    const { width, height, format, buffer } = (await imagescriptJpeg.init()).decode(bytes);
    const n = width * height;
    const data = new Uint8Array(n * 3);
    if (format === 0) { // grayscale
      for (let i = 0; i < n; i++) data[3 * i] = data[3 * i + 1] = data[3 * i + 2] = buffer[i];
    } else if (format === 1) { // RGB
      data.set(buffer.subarray(0, n * 3));
    } else if (format === 2) { // CMYK, as imagescript converts it (PIL's result within a level)
      for (let i = 0; i < n; i++) {
        const k = 1 - buffer[4 * i + 3] / 255;
        for (let c = 0; c < 3; c++) data[3 * i + c] = 255 * (1 - buffer[4 * i + c] / 255) * k;
      }
    } else throw new Error(`unsupported JPEG pixel format ${format}`);
    return { width, height, data };
  }
  if (magic === 0x49492a00 || magic === 0x4d4d002a) {
    const { width, height, buffer } = (await imagescriptTiff.init()).decode(bytes);
    return rgbaToRgb(buffer, width, height);
  }
  throw new Error("unsupported image type (JPEG, PNG and TIFF are read)");
}
