/** `--augment trivial`: TrivialAugmentWide's 14 operations against torchvision on PIL. */

import assert from "node:assert/strict";
import { Random } from "../../src/core/random.ts";
import { VitLoraError } from "../../src/core/errors.ts";
import { decodeImage, type RgbImage } from "../../src/data/image.ts";
import { resizeImage } from "../../src/data/resize.ts";
import {
  augmentImage,
  augmentMode,
  flipHorizontal,
  normalize,
  randomResizedCropBox,
  transformImage,
} from "../../src/data/transforms.ts";
import { inverseAffineMatrix, rotationMatrix } from "../../src/data/pil_geometry.ts";
import {
  applyTrivialAugmentOp,
  drawTrivialAugment,
  isSignedOp,
  TRIVIAL_AUGMENT_OPS,
  trivialAugmentMagnitudes,
  type TrivialAugmentOp,
  trivialAugmentWide,
} from "../../src/data/trivial_augment.ts";

const fixtures = (name: string) =>
  new URL(`../fixtures/trivial-augment/${name}`, import.meta.url).pathname;
const load = async (name: string) => decodeImage(await Deno.readFile(fixtures(name)));

interface Manifest {
  cpu_capability: string;
  bins: number;
  ops: string[];
  signed: string[];
  magnitudes: Record<string, number[]>;
  images: Record<string, [number, number]>;
  pngs: { image: string; op: TrivialAugmentOp; bin: number | null; sign: string; file: string }[];
  hashes: Record<string, Record<string, string | string[] | Record<string, string[]>>>;
  matrices: Record<string, Record<string, Record<string, (number[] | null)[]>>>;
}

const manifest: Manifest = JSON.parse(await Deno.readTextFile(fixtures("manifest.json")));
const sources: Record<string, RgbImage> = {};
for (const name of Object.keys(manifest.images)) sources[name] = await load(`sources/${name}.png`);

/** The op's signed magnitude at a bin, as TrivialAugmentWide hands it to `_apply_op`. */
function magnitudeOf(op: TrivialAugmentOp, bin: number | null, sign: string): number {
  const m = bin === null ? 0 : trivialAugmentMagnitudes(op)![bin];
  return sign === "-" ? m * -1 : m;
}

function maxDifference(a: RgbImage, b: RgbImage): number {
  assert.deepEqual([a.width, a.height], [b.width, b.height]);
  let max = 0;
  for (let i = 0; i < a.data.length; i++) max = Math.max(max, Math.abs(a.data[i] - b.data[i]));
  return max;
}

async function digest(image: RgbImage): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(image.data)));
  return Array.from(hash.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("trivial augment: the 14 operations, their signs and torch's magnitude tables", () => {
  assert.deepEqual([...TRIVIAL_AUGMENT_OPS], manifest.ops);
  assert.deepEqual(TRIVIAL_AUGMENT_OPS.filter(isSignedOp), manifest.signed);
  assert.equal(manifest.bins, 31);
  for (const op of TRIVIAL_AUGMENT_OPS) {
    // float32 values compared as the doubles `.item()` gives: exactly
    assert.deepEqual(trivialAugmentMagnitudes(op), manifest.magnitudes[op], op);
  }
  // the FMA rounding of torch's vectorised linspace (AVX2/AVX-512): 15.999999, not 16
  assert.ok(["AVX2", "AVX512"].includes(manifest.cpu_capability), manifest.cpu_capability);
  assert.equal(Math.trunc(trivialAugmentMagnitudes("TranslateX")![15]), 15);
});

Deno.test("trivial augment: the affine matrices Pillow received, every bin and sign", () => {
  let compared = 0;
  for (const [size, ops] of Object.entries(manifest.matrices)) {
    const [w, h] = size.split("x").map(Number);
    for (const [op, signs] of Object.entries(ops)) {
      for (const [sign, rows] of Object.entries(signs)) {
        rows.forEach((expected, bin) => {
          const m = magnitudeOf(op as TrivialAugmentOp, bin, sign);
          const deg = Math.atan(m) * (180 / Math.PI);
          const ours = op === "ShearX"
            ? inverseAffineMatrix(w, h, { shear: [deg, 0], center: [0, 0] })
            : op === "ShearY"
            ? inverseAffineMatrix(w, h, { shear: [0, deg], center: [0, 0] })
            : rotationMatrix(w, h, m);
          // null: Pillow copied or transposed (0°, and 90°/270° on the square) without a matrix
          if (expected === null) {
            assert.ok(op === "Rotate" && (bin === 0 || (bin === 20 && w === h)), `${op} ${bin}`);
          } else {
            assert.deepEqual([...ours], expected, `${size} ${op} bin ${bin}${sign}`);
            compared++;
          }
        });
      }
    }
  }
  assert.equal(compared, 2 * 3 * 62 - 2 - 4);
});

Deno.test("trivial augment: the committed PNG cases, bit-exact against torchvision on PIL", async () => {
  for (const c of manifest.pngs) {
    const source = sources[c.image];
    const before = source.data.slice();
    const ours = applyTrivialAugmentOp(source, c.op, magnitudeOf(c.op, c.bin, c.sign));
    assert.deepEqual(source.data, before, `${c.file}: the input was modified`);
    assert.equal(maxDifference(ours, await load(c.file)), 0, c.file);
  }
  assert.equal(new Set(manifest.pngs.map((c) => c.op)).size, 14);
});

Deno.test("trivial augment: every op × bin × sign on three images, SHA-256 equal to torchvision's", async () => {
  let cases = 0;
  const wrong: string[] = [];
  for (const [image, ops] of Object.entries(manifest.hashes)) {
    for (const op of TRIVIAL_AUGMENT_OPS) {
      const expected = ops[op];
      const check = async (bin: number | null, sign: string, hash: string) => {
        const ours = applyTrivialAugmentOp(sources[image], op, magnitudeOf(op, bin, sign));
        if (await digest(ours) !== hash) wrong.push(`${image} ${op} ${bin}${sign}`);
        cases++;
      };
      if (typeof expected === "string") await check(null, "", expected);
      else if (Array.isArray(expected)) {
        for (const [bin, hash] of expected.entries()) await check(bin, "", hash);
      } else {
        for (const sign of ["+", "-"]) {
          for (const [bin, hash] of expected[sign].entries()) await check(bin, sign, hash);
        }
      }
    }
  }
  assert.deepEqual(wrong, []);
  assert.equal(cases, 3 * (3 + 2 * 31 + 9 * 62));
});

Deno.test("trivial augment: seeded draws — same seed, same ops; every op, bin and sign drawn", () => {
  const draws = (seed: number) =>
    Array.from({ length: 50 }, (_, i) => drawTrivialAugment(Random.derive(seed, 0, i)));
  assert.deepEqual(draws(7), draws(7));
  assert.notDeepEqual(draws(7), draws(8));

  const n = 14_000;
  const counts = new Map<string, number>();
  const bins = new Set<number>();
  let signed = 0, negative = 0;
  const rng = Random.derive(42, 1);
  for (let i = 0; i < n; i++) {
    const d = drawTrivialAugment(rng);
    counts.set(d.op, (counts.get(d.op) ?? 0) + 1);
    const table = trivialAugmentMagnitudes(d.op);
    if (table) {
      bins.add(d.bin!);
      assert.equal(Math.abs(d.magnitude), Math.abs(table[d.bin!]));
    } else assert.equal(d.bin, undefined);
    if (isSignedOp(d.op)) {
      signed++;
      if (d.negative) negative++;
      assert.equal(
        d.magnitude < 0 || (d.magnitude === 0 && Object.is(d.magnitude, -0)),
        d.negative,
      );
    } else assert.equal(d.negative, false);
  }
  assert.equal(counts.size, 14);
  // uniform over 14: 1000 expected each, binomial sd ≈ 30.6; 5 sd
  for (const [op, c] of counts) assert.ok(Math.abs(c - 1000) < 153, `${op}: ${c}`);
  assert.equal(bins.size, 31);
  assert.ok(Math.abs(negative / signed - 0.5) < 0.03, `${negative} of ${signed} negative`);
});

Deno.test("augment modes: true/false as before, trivial = crop + flip + one op from the same stream", async () => {
  assert.equal(augmentMode(true), "standard");
  assert.equal(augmentMode(false), "none");
  assert.equal(augmentMode("trivial"), "trivial");
  assert.throws(() => augmentMode("wide" as "none"), VitLoraError);

  const image = sources.coffee;
  const base = { size: 48, mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] };
  const rng = () => Random.derive(42, 3, 5);
  // standard and true, none and false: the same pixels
  assert.deepEqual(
    transformImage(image, { ...base, augment: "standard" }, rng()),
    transformImage(image, { ...base, augment: true }, rng()),
  );
  assert.deepEqual(
    transformImage(image, { ...base, augment: "none" }),
    transformImage(image, { ...base, augment: false }),
  );
  // trivial: the standard draws, then TrivialAugmentWide's from where they left off
  for (let i = 0; i < 30; i++) {
    const r = Random.derive(42, 3, i);
    const box = randomResizedCropBox(image.width, image.height, r);
    let expected = resizeImage(image, 48, 48, box);
    if (r.next() < 0.5) expected = flipHorizontal(expected);
    expected = trivialAugmentWide(expected, r);
    const ours = augmentImage(image, { ...base, augment: "trivial" }, Random.derive(42, 3, i));
    assert.deepEqual(ours, expected, `image ${i}`);
    assert.deepEqual(
      transformImage(image, { ...base, augment: "trivial" }, Random.derive(42, 3, i)),
      normalize(expected, base.mean, base.std),
    );
  }
  await Promise.resolve();
});
