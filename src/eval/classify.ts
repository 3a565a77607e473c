/**
 * Images to classes: encoded images (JPEG, PNG, TIFF) or decoded RGB through the model's
 * evaluation transform (shorter side to the model's size, center crop, normalised by
 * `preprocessor_config.json`), then the model on every core, then the top classes.
 *
 * @module
 */

import { VitLoraError } from "../core/errors.ts";
import { type Tensor4D, tf } from "../core/tf.ts";
import { decodeImage, type RgbImage } from "../data/image.ts";
import { transformImage } from "../data/transforms.ts";
import type { ViTClassifier } from "../model/classifier.ts";
import { predictLogits } from "../engines/parallel.ts";
import { type Prediction, topClasses } from "./top.ts";

/** Options of {@link classify}. */
export interface ClassifyOptions {
  /** Classes an image (default 5). */
  topK?: number;
  /** Images a forward pass (default 32). */
  batchSize?: number;
}

/**
 * Classifies images (encoded JPEG/PNG/TIFF bytes, or decoded RGB) with the evaluation
 * transform the model was trained with: the `topK` classes of each, most probable first. An
 * image that cannot be decoded is an error naming its position.
 *
 * @example
 * ```ts ignore
 * import { classify, loadClassifier } from "@lora/vit";
 *
 * const clf = await loadClassifier("food101-merged"); // a checkpoint that clf.saveMerged() wrote
 * const [top] = await classify(clf, [await Deno.readFile("dish.jpg")], { topK: 3 });
 * console.log(top); // [{ label: "ramen", index: 7, probability: 0.91 }, …]
 * ```
 */
export async function classify(
  clf: ViTClassifier,
  images: readonly (Uint8Array | RgbImage)[],
  options: ClassifyOptions = {},
): Promise<Prediction[][]> {
  clf.check();
  const size = clf.config.image_size, plane = 3 * size * size;
  const spec = clf.transformSpec();
  const batchSize = options.batchSize ?? 32;
  const out: Prediction[][] = [];
  for (let start = 0; start < images.length; start += batchSize) {
    const chunk = images.slice(start, start + batchSize);
    const pixels = new Float32Array(chunk.length * plane);
    for (const [i, image] of chunk.entries()) {
      try {
        const rgb = image instanceof Uint8Array ? await decodeImage(image) : image;
        pixels.set(transformImage(rgb, spec), i * plane);
      } catch (e) {
        throw new VitLoraError(`image ${start + i}: ${(e as Error).message}`);
      }
    }
    const x = tf.tensor4d(pixels, [chunk.length, 3, size, size]) as Tensor4D;
    const logits = await predictLogits(clf, x);
    x.dispose();
    out.push(...await topClasses(logits, clf.labels, options.topK ?? 5));
    logits.dispose();
  }
  return out;
}
