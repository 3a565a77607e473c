/**
 * One image from bytes to model input: decode, transform, normalise. The same function runs
 * in the decoding workers and, with no workers, on the main thread.
 *
 * @module
 */

import { decodeImage } from "./image.ts";
import { Random } from "../core/random.ts";
import { augmentMode, transformImage, type TransformSpec } from "./transforms.ts";

/**
 * Decodes `bytes` and applies `spec`; the augmentation draws from the stream
 * `Random.derive(...rng)` (e.g. seed, epoch, row index), so it is the same wherever it runs.
 *
 * @example
 * ```ts
 * import type { TransformSpec } from "@lora/vit/data";
 * import { prepareImage } from "./prepare.ts";
 * const spec: TransformSpec = {
 *   size: 224,
 *   mean: [0.5, 0.5, 0.5],
 *   std: [0.5, 0.5, 0.5],
 *   augment: "none", // the evaluation transform
 * };
 * const jpeg = new URL("../../tests/fixtures/images/rgb.jpg", import.meta.url);
 * const pixels = await prepareImage(await Deno.readFile(jpeg), spec);
 * console.log(pixels.length); // 150528: 3 × 224 × 224, normalised
 * ```
 */
export async function prepareImage(
  bytes: Uint8Array,
  spec: TransformSpec,
  rng?: readonly number[],
): Promise<Float32Array> {
  const image = await decodeImage(bytes);
  const random = augmentMode(spec.augment) !== "none"
    ? Random.derive(rng?.[0] ?? 0, ...(rng?.slice(1) ?? []))
    : undefined;
  return transformImage(image, spec, random);
}
