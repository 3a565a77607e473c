/**
 * Images in a web page: decoded by the browser itself (`createImageBitmap`, an
 * `OffscreenCanvas`) into the RGB pixels the model's transforms take.
 *
 * @module
 */

import type { RgbImage } from "../data/image.ts";
import { VitLoraError } from "../core/errors.ts";

/** The part of a 2-D canvas context this module uses. */
interface Canvas2D {
  drawImage(image: ImageBitmap, x: number, y: number): void;
  getImageData(x: number, y: number, width: number, height: number): { data: Uint8ClampedArray };
}

/** RGB pixels from RGBA ones (alpha dropped, as Pillow's `convert("RGB")` does). */
export function rgbFromRgba(rgba: ArrayLike<number>, width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < data.length; i += 4, j += 3) {
    data[j] = rgba[i];
    data[j + 1] = rgba[i + 1];
    data[j + 2] = rgba[i + 2];
  }
  return { width, height, data };
}

/**
 * Decodes an image (a `Blob` or `File` of JPEG, PNG, WebP, …) with the browser's decoder.
 *
 * @example
 * ```ts ignore
 * import { decodeImageInBrowser } from "@lora/vit/web";
 *
 * const image = await decodeImageInBrowser(await (await fetch("dish.jpg")).blob());
 * console.log(image.width, image.height);
 * ```
 */
export async function decodeImageInBrowser(source: Blob, name = "image"): Promise<RgbImage> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(source, {
      colorSpaceConversion: "none",
      premultiplyAlpha: "none",
    });
  } catch (e) {
    throw new VitLoraError(
      `${name}: not an image the browser can decode (${(e as Error).message})`,
    );
  }
  const { width, height } = bitmap;
  const canvas = new OffscreenCanvas(width, height);
  // Deno's types have no 2-D canvas context; a page's does
  const ctx = canvas.getContext("2d", { willReadFrequently: true }) as unknown as Canvas2D;
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return rgbFromRgba(ctx.getImageData(0, 0, width, height).data, width, height);
}
