/**
 * The exported folder in the real transformers.js (`@huggingface/transformers` 4.3.2, run by
 * transformersjs_run.ts in a process of its own, remote models off) and in ONNX Runtime Web, on
 * 256 crops of eight real photos (photos.ts), against this module's own classifier on tfjs:
 * fp32 logits within 1e-4 relative and the same top-5, fp16 within 1e-2, q8 the same top-1 on at
 * least 98 % of the images; `pipeline("image-classification")` gives the module's own top-5
 * labels. Skipped (with a line saying why) where ONNX Runtime's addon does not load.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type Tensor4D, tf } from "../../src/core/tf.ts";
import { evalImage } from "../../src/data/transforms.ts";
import { ortStatus } from "../../src/engines/ort.ts";
import { classify } from "../../src/eval/classify.ts";
import { exportOnnx } from "../../src/onnx/export.ts";
import { writeOnnxFolder } from "../../src/onnx/write.ts";
import { relError, tempDir, useBackend } from "../helpers.ts";
import { cropPixels, photoClassifier, photoCrops } from "./photos.ts";

const status = await ortStatus();
if (!status.ort) console.error(`transformersjs_test: skipped: ${status.reason}`);

/** Class indices by decreasing logit, the first `k`, of each row. */
function topK(logits: ArrayLike<number>, labels: number, k: number): number[][] {
  const rows = logits.length / labels;
  return Array.from({ length: rows }, (_, i) =>
    Array.from({ length: labels }, (_, j) => j)
      .sort((a, b) => logits[i * labels + b] - logits[i * labels + a])
      .slice(0, k));
}

Deno.test({
  name:
    "transformers.js from the exported folder: the module's top-5 (fp32 within 1e-4, fp16 1e-2, q8 top-1 ≥ 98 %), ONNX Runtime Web too",
  ignore: !status.ort,
  async fn() {
    await useBackend("wasm");
    const crops = await photoCrops();
    const clf = await photoClassifier(crops);
    await using tmp = await tempDir();
    try {
      const size = clf.config.image_size, labels = clf.labels.length, rows = crops.length;
      const pixels = cropPixels(clf, crops.map((c) => c.image));
      const logits = tf.tidy(() =>
        clf.logits(tf.tensor4d(pixels, [rows, 3, size, size]) as Tensor4D)
      );
      const ref = (await logits.data()) as Float32Array;
      logits.dispose();
      // the pipeline's images: crops at the model's size, which its processor leaves as they are
      const shown = crops.filter((_, i) => i % 16 === 0).map((c) => evalImage(c.image, size));
      const ours = (await classify(clf, shown, { topK: 5 })).map((t) => t.map((p) => p.label));

      const dir = join(tmp.path, "model");
      await writeOnnxFolder(dir, await exportOnnx(clf));
      await Deno.writeFile(join(tmp.path, "pixels.f32"), new Uint8Array(pixels.buffer));
      const rgb = new Uint8Array(shown.length * size * size * 3);
      shown.forEach((image, i) => rgb.set(image.data, i * size * size * 3));
      await Deno.writeFile(join(tmp.path, "images.u8"), rgb);
      const script = new URL("./transformersjs_run.ts", import.meta.url).pathname;
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--lock=dev.lock",
          "--allow-read",
          `--allow-write=${tmp.path}`,
          "--allow-env",
          "--allow-ffi",
          "--allow-sys",
          script,
          dir,
          tmp.path,
          String(rows),
          String(shown.length),
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.ok(out.success, `transformersjs_run.ts failed:\n${stderr}`);
      const read = async (name: string) =>
        new Float32Array((await Deno.readFile(join(tmp.path, name))).buffer);

      const refTop = topK(ref, labels, 5);
      const measured: string[] = [];
      for (const [engine, prefix] of [["transformers.js", "tjs"], ["ONNX Runtime Web", "web"]]) {
        const fp32 = await read(`${prefix}_fp32.f32`);
        const err32 = relError(fp32, ref);
        assert.ok(err32 < 1e-4, `${engine} fp32: relative error ${err32.toExponential(2)}`);
        assert.deepEqual(topK(fp32, labels, 5), refTop, `${engine} fp32: the module's top-5`);
        const err16 = relError(await read(`${prefix}_fp16.f32`), ref);
        assert.ok(err16 < 1e-2, `${engine} fp16: relative error ${err16.toExponential(2)}`);
        const q8 = topK(await read(`${prefix}_q8.f32`), labels, 1);
        const same = q8.filter((t, i) => t[0] === refTop[i][0]).length;
        assert.ok(same >= 0.98 * rows, `${engine} q8: top-1 equal on ${same} of ${rows}`);
        measured.push(
          `${engine}: fp32 ${err32.toExponential(1)}, fp16 ${
            err16.toExponential(1)
          }, q8 top-1 ${same}/${rows}`,
        );
      }
      console.log(measured.join("; "));
      for (const dtype of ["fp32", "fp16", "q8"]) {
        const tops = JSON.parse(await Deno.readTextFile(join(tmp.path, `pipeline_${dtype}.json`)));
        if (dtype === "fp32") assert.deepEqual(tops, ours, "pipeline fp32: the module's top-5");
        else assert.equal(tops.length, shown.length);
      }
    } finally {
      clf.dispose();
    }
  },
});
