/**
 * Writes the ONNX export of vit-tiny-a (model + adapter, LoRA merged; all three dtypes) into
 * the folder given as argument: what tests/reference/make_onnx_q8.py and make_onnx_config.py
 * check with the Python libraries, and what export_test.ts compares with their fixtures.
 *
 * Usage: deno run --allow-read --allow-write --allow-env tests/onnx/export_fixture.ts DIR
 *
 * @module
 */

import { loadClassifier } from "../../src/model/loading.ts";
import { exportOnnx } from "../../src/onnx/export.ts";
import { writeOnnxFolder } from "../../src/onnx/write.ts";
import type { ViTClassifier } from "../../src/model/classifier.ts";

/** vit-tiny-a with its adapter, on tfjs's cpu backend. */
export function fixtureClassifier(): Promise<ViTClassifier> {
  const dir = new URL("../fixtures/vit-tiny-a/", import.meta.url).pathname;
  return loadClassifier(`${dir}model`, { adapter: `${dir}adapter`, backend: "cpu" });
}

if (import.meta.main) {
  const clf = await fixtureClassifier();
  await writeOnnxFolder(Deno.args[0], await exportOnnx(clf));
  clf.dispose();
}
