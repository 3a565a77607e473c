/** Decoding, Pillow-exact resizing and torchvision's transforms. */

import assert from "node:assert/strict";
import { Random } from "../../src/core/random.ts";
import { decodeImage, type RgbImage } from "../../src/data/image.ts";
import { cropImage, resizeImage } from "../../src/data/resize.ts";
import {
  centerCropBox,
  evalImage,
  flipHorizontal,
  normalize,
  randomResizedCropBox,
  resizeShorter,
  roundHalfEven,
  transformImage,
} from "../../src/data/transforms.ts";

const fixtures = (name: string) => new URL(`../fixtures/${name}`, import.meta.url).pathname;
const load = async (name: string) => decodeImage(await Deno.readFile(fixtures(name)));

/** Mean and max absolute difference in levels. */
function difference(a: RgbImage, b: RgbImage): { mean: number; max: number } {
  assert.equal(a.width, b.width, "width");
  assert.equal(a.height, b.height, "height");
  let sum = 0, max = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = Math.abs(a.data[i] - b.data[i]);
    sum += d;
    max = Math.max(max, d);
  }
  return { mean: sum / a.data.length, max };
}

Deno.test("resize: Pillow's antialiased bilinear filter, on the three PIL outputs", async () => {
  const source = await load("resize/source.png");
  assert.deepEqual([source.width, source.height], [512, 384]);
  const cases: [string, RgbImage][] = [
    ["resize_224x224.png", resizeImage(source, 224, 224)],
    ["resize224_centercrop224.png", evalImage(source, 224)],
    [
      "crop_40_30_300x250_to_224.png",
      resizeImage(source, 224, 224, { left: 40, top: 30, width: 300, height: 250 }),
    ],
  ];
  for (const [name, ours] of cases) {
    const { mean, max } = difference(ours, await load(`resize/${name}`));
    // the bound is mean 0.5 and max 2; Pillow's fixed-point arithmetic makes it exact
    assert.ok(mean <= 0.5 && max <= 2, `${name}: mean ${mean}, max ${max}`);
    assert.equal(max, 0, `${name}: not bit-exact (mean ${mean}, max ${max})`);
  }
});

Deno.test("resize: one axis only, upscaling, an odd box: bit-exact against Pillow too", async () => {
  const source = await load("resize/source.png");
  const cases: [string, RgbImage][] = [
    ["w224_h384.png", resizeImage(source, 224, 384)],
    ["w512_h224.png", resizeImage(source, 512, 224)],
    [
      "up_97x61.png",
      resizeImage(cropImage(source, { left: 100, top: 100, width: 50, height: 40 }), 97, 61),
    ],
    [
      "box_7_11_294x279_to_64x80.png",
      resizeImage(source, 64, 80, { left: 7, top: 11, width: 294, height: 279 }),
    ],
  ];
  for (const [name, ours] of cases) {
    const { mean, max } = difference(ours, await load(`resize-more/${name}`));
    assert.equal(max, 0, `${name}: mean ${mean}, max ${max}`);
  }
});

Deno.test("resize: shorter side as torchvision computes it, untouched at size", async () => {
  const source = await load("resize/source.png");
  const r = resizeShorter(source, 224);
  assert.deepEqual([r.width, r.height], [298, 224]); // int(224 · 512 / 384)
  assert.deepEqual(centerCropBox(298, 224, 224), { left: 37, top: 0, width: 224, height: 224 });
  assert.equal(roundHalfEven(2.5), 2);
  assert.equal(roundHalfEven(3.5), 4);
  assert.equal(roundHalfEven(-0.5), -0);
  const small: RgbImage = { width: 32, height: 32, data: source.data.slice(0, 32 * 32 * 3) };
  assert.equal(evalImage(small, 32), small, "an image at size is left untouched");
  const spec = { size: 32, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], augment: false };
  const pixels = transformImage(small, spec);
  for (const i of [0, 1, 1000, 3071]) {
    const c = Math.floor(i / 1024), p = i % 1024;
    assert.equal(pixels[i], Math.fround((Math.fround(small.data[p * 3 + c] / 255) - 0.5) / 0.5));
  }
});

Deno.test("decode: grayscale, CMYK, RGB JPEGs and RGBA, palette, gray PNGs as PIL's convert('RGB')", async () => {
  for (const name of ["gray.jpg", "cmyk.jpg", "rgb.jpg", "rgba.png", "palette.png", "gray.png"]) {
    const ours = await load(`images/${name}`);
    const pil = await load(`images/${name}.rgb.png`);
    const { mean, max } = difference(ours, pil);
    // JPEG decoders differ by a level or so in their IDCT; PNGs are exact
    const limit = name.endsWith(".png") ? 0 : 3;
    assert.ok(max <= limit && mean < 1, `${name}: mean ${mean.toFixed(3)}, max ${max}`);
  }
});

Deno.test("decode: a corrupt or foreign file is an error that says so", async () => {
  const jpeg = await Deno.readFile(fixtures("images/rgb.jpg"));
  await assert.rejects(() => decodeImage(jpeg.slice(0, 200)), /corrupt JPEG/);
  await assert.rejects(
    () => decodeImage(new TextEncoder().encode("not an image at all")),
    /not a readable image/,
  );
  await assert.rejects(() => decodeImage(new Uint8Array(3)), /not an image/);
});

Deno.test("RandomResizedCrop: boxes inside the image, area and ratio in range, seeded", () => {
  for (let i = 0; i < 500; i++) {
    const rng = Random.derive(42, 0, i);
    const box = randomResizedCropBox(512, 384, rng);
    assert.ok(box.left >= 0 && box.top >= 0, "inside");
    assert.ok(box.left + box.width <= 512 && box.top + box.height <= 384, "inside");
    const area = box.width * box.height / (512 * 384);
    assert.ok(area > 0.07 && area <= 1.0001, `area ${area}`);
    const ratio = box.width / box.height;
    assert.ok(ratio > 0.7 && ratio < 1.4, `ratio ${ratio}`);
    assert.deepEqual(randomResizedCropBox(512, 384, Random.derive(42, 0, i)), box, "seeded");
  }
  // a very wide image falls back to a central crop at the largest ratio
  const rng = new Random(1);
  rng.next = () => 0.999; // every draw too large
  assert.deepEqual(randomResizedCropBox(1000, 100, rng), {
    left: 433,
    top: 0,
    width: 133,
    height: 100,
  });
});

Deno.test("flip and normalise", () => {
  const image: RgbImage = {
    width: 3,
    height: 1,
    data: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]),
  };
  assert.deepEqual([...flipHorizontal(image).data], [7, 8, 9, 4, 5, 6, 1, 2, 3]);
  const out = normalize(image, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
  assert.equal(out.length, 9);
  // channel-first: out[c * 3 + x]
  assert.ok(Math.abs(out[0] - (7 / 255 - 0.485) / 0.229) < 1e-6);
  assert.ok(Math.abs(out[3 + 2] - (2 / 255 - 0.456) / 0.224) < 1e-6);
});

Deno.test("the training transform is seeded: same stream, same pixels", async () => {
  const source = await load("resize/source.png");
  const spec = { size: 64, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], augment: true };
  const a = transformImage(source, spec, Random.derive(7, 1, 3));
  const b = transformImage(source, spec, Random.derive(7, 1, 3));
  const c = transformImage(source, spec, Random.derive(7, 1, 4));
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.throws(() => transformImage(source, spec), /needs a Random/);
});
