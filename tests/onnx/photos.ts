/**
 * What the ONNX export tests classify: crops of eight real photographs
 * (tests/fixtures/onnx/photos/, scikit-image's samples), and a small ViT that tells them apart.
 *
 * The crops are deterministic: for each photo, square boxes of 5 sizes (40 to 100 % of its
 * shorter side) at evenly spaced positions, every other one flipped — 32 a photo, 256 in all —
 * each put through the classifier's evaluation transform (`transformImage`).
 *
 * The classifier is random (`createClassifier`, seeded) with LoRA on query and value whose B is
 * made non-zero (so that merging it matters), and a head fitted to the photos: each class's
 * weight is its crops' mean feature minus the mean over all crops, scaled to unit length, so
 * that logits span a few units (±7) with margins near 1 between the first two, as a trained
 * head's do. Random heads give near ties that any rounding flips; this
 * one gives the margins of a real classifier, so the checks on top-1 agreement test the export,
 * not coin flips.
 *
 * @module
 */

import { join } from "node:path";
import { type Tensor2D, type Tensor4D, tf } from "../../src/core/tf.ts";
import { decodeImage, type RgbImage } from "../../src/data/image.ts";
import { cropImage } from "../../src/data/resize.ts";
import { flipHorizontal, transformImage } from "../../src/data/transforms.ts";
import type { ViTClassifier } from "../../src/model/classifier.ts";
import { parseViTConfig } from "../../src/model/config.ts";
import { createClassifier } from "../../src/model/loading.ts";

/** The photos, by name (file order). */
export const PHOTOS = [
  "astronaut",
  "camera",
  "chelsea",
  "coffee",
  "hubble_deep_field",
  "immunohistochemistry",
  "retina",
  "rocket",
] as const;

const DIR = new URL("../fixtures/onnx/photos/", import.meta.url).pathname;

/** Crops of every photo, with the photo's index as label. */
export async function photoCrops(perPhoto = 32): Promise<{ image: RgbImage; label: number }[]> {
  const out: { image: RgbImage; label: number }[] = [];
  for (const [label, name] of PHOTOS.entries()) {
    const photo = await decodeImage(await Deno.readFile(join(DIR, `${name}.jpg`)));
    const short = Math.min(photo.width, photo.height);
    for (let i = 0; i < perPhoto; i++) {
      const size = Math.round(short * (0.4 + 0.15 * (i % 5)));
      const fx = ((i * 7) % perPhoto) / (perPhoto - 1), fy = ((i * 13) % perPhoto) / (perPhoto - 1);
      const box = {
        left: Math.round(fx * (photo.width - size)),
        top: Math.round(fy * (photo.height - size)),
        width: size,
        height: size,
      };
      const crop = cropImage(photo, box);
      out.push({ image: i % 2 ? flipHorizontal(crop) : crop, label });
    }
  }
  return out;
}

/** The crops' pixels through `clf`'s evaluation transform: `Float32Array [n, 3, S, S]`. */
export function cropPixels(clf: ViTClassifier, images: readonly RgbImage[]): Float32Array {
  const s = clf.config.image_size, plane = 3 * s * s;
  const pixels = new Float32Array(images.length * plane);
  images.forEach((image, i) => pixels.set(transformImage(image, clf.transformSpec()), i * plane));
  return pixels;
}

/** The small ViT of the tests: 64 wide, 4 layers, 4 heads, 64×64 images in 8×8 patches. */
export const PHOTO_VIT_CONFIG = parseViTConfig({
  hidden_size: 64,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  intermediate_size: 256,
  image_size: 64,
  patch_size: 8,
});

/** The classifier of the module's documentation, on the current backend. */
export async function photoClassifier(
  crops: readonly { image: RgbImage; label: number }[],
): Promise<ViTClassifier> {
  const clf = await createClassifier(PHOTO_VIT_CONFIG, {
    labels: [...PHOTOS],
    lora: { r: 4, alpha: 8, dropout: 0, targetModules: ["query", "value"] },
    seed: 3,
  });
  let seed = 11;
  for (const [key, v] of Object.entries(clf.trainableVariables())) {
    if (!key.includes("lora_B")) continue;
    const b = tf.randomNormal(v.shape, 0, 0.05, "float32", seed++);
    v.assign(b);
    b.dispose();
  }
  const size = clf.config.image_size;
  const pixels = cropPixels(clf, crops.map((c) => c.image));
  const features = tf.tidy(() =>
    clf.features(tf.tensor4d(pixels, [crops.length, 3, size, size]) as Tensor4D)
  );
  const f = (await features.data()) as Float32Array, h = features.shape[1];
  features.dispose();
  const mean = new Float64Array(h), sums = PHOTOS.map(() => new Float64Array(h));
  const counts = PHOTOS.map(() => 0);
  crops.forEach(({ label }, i) => {
    counts[label]++;
    for (let j = 0; j < h; j++) {
      sums[label][j] += f[i * h + j];
      mean[j] += f[i * h + j] / crops.length;
    }
  });
  const w = new Float32Array(PHOTOS.length * h);
  PHOTOS.forEach((_, c) => {
    const d = sums[c].map((s, j) => s / counts[c] - mean[j]);
    const norm = Math.hypot(...d) || 1;
    d.forEach((v, j) => w[c * h + j] = (v / norm) * 1);
  });
  const weight = tf.tensor2d(w, [PHOTOS.length, h]) as Tensor2D;
  clf.classifier.weight.assign(weight);
  weight.dispose();
  return clf;
}
