/**
 * Run by ort_test.ts without --allow-ffi: ortLogits declines (one line on stderr), and the
 * tfjs path (its products on XNNPACK, as OpenBLAS may not be loaded either) gives PyTorch's
 * logits; asked for q8, it throws one line saying why.
 */

import { type Tensor4D, tf } from "../../src/core/tf.ts";
import { loadClassifier } from "../../src/model/loading.ts";
import { ortLogits } from "../../src/engines/ort.ts";
import { readSafetensors } from "../../src/model/safetensors_file.ts";

const dir = new URL("../fixtures/vit-tiny-b/", import.meta.url).pathname;
const clf = await loadClassifier(`${dir}model`, { adapter: `${dir}adapter`, backend: "wasm" });
const e = await readSafetensors(`${dir}expected.safetensors`);
const px = e.get("pixel_values")!;
const x = tf.tensor4d(
  px.data as Float32Array,
  px.shape as number[] as [number, number, number, number],
) as Tensor4D;
const fast = await ortLogits(clf, x, { always: true });
await ortLogits(clf, x, { always: true }); // said once
const got = await clf.logits(x).data();
const ref = e.get("logits")!.data;
let diff = 0, scale = 0;
ref.forEach((v, i) => {
  diff = Math.max(diff, Math.abs(got[i] - v));
  scale = Math.max(scale, Math.abs(v));
});
console.log(`ortLogits: ${fast}, logits ${diff / scale < 1e-4 ? "ok" : `off by ${diff / scale}`}`);
// an asked-for precision that only ONNX Runtime has: an error, not tfjs's float32
console.log(`q8: ${await ortLogits(clf, x, { dtype: "q8" }).then(() => "ran", (e) => String(e))}`);
