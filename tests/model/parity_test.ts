/**
 * The model against PyTorch (transformers' ViT + PEFT LoRA, float32): logits, merged logits,
 * features, loss and the gradient of every adapter tensor, on WebGPU and on cpu.
 */

import assert from "node:assert/strict";
import { type Tensor4D, tf } from "../../src/core/tf.ts";
import { loadClassifier } from "../../src/model/loading.ts";
import { readSafetensors } from "../../src/model/safetensors_file.ts";
import {
  assertClose,
  BACKENDS,
  expected,
  fixture,
  FIXTURE_SETS,
  inputs,
  useBackend,
} from "../helpers.ts";

for (const backend of BACKENDS) {
  for (const set of FIXTURE_SETS) {
    Deno.test(`${set} on ${backend}: logits, features, loss and gradients match PyTorch`, async () => {
      await useBackend(backend);
      const e = await expected(set);
      const { pixels, labels } = inputs(e);
      const dir = fixture(set);
      const clf = await loadClassifier(`${dir}/model`, { adapter: `${dir}/adapter`, backend });
      const bare = await loadClassifier(`${dir}/model`, { backend });
      const merged = await loadClassifier(`${dir}/merged`, { backend });
      try {
        const logits = clf.logits(pixels);
        await assertClose(logits, e.tensors.get("logits")!, 1e-4, "logits");
        const mergedLogits = merged.logits(pixels);
        await assertClose(mergedLogits, e.tensors.get("merged_logits")!, 1e-4, "merged logits");
        // `features` are the bare ViTModel's (no adapter): LoRA changes them.
        const features = bare.features(pixels);
        await assertClose(features, e.tensors.get("features")!, 1e-4, "features");

        const { loss, grads } = clf.lossAndGradients(pixels, labels);
        await assertClose(loss.reshape([1]), e.tensors.get("loss")!, 1e-4, "loss");
        const adapterKeys = [
          ...(await readSafetensors(`${dir}/adapter/adapter_model.safetensors`)).keys(),
        ];
        assert.deepEqual(
          Object.keys(grads).sort(),
          adapterKeys.sort(),
          "one gradient per adapter tensor",
        );
        for (const key of adapterKeys) {
          await assertClose(grads[key], e.tensors.get(`grad.${key}`)!, 1e-3, `grad ${key}`);
        }
        tf.dispose([logits, mergedLogits, features, loss, ...Object.values(grads)]);
      } finally {
        tf.dispose([pixels, labels]);
        clf.dispose();
        bare.dispose();
        merged.dispose();
      }
    });
  }
}

Deno.test("webgpu and cpu agree on the logits of a batch of 9", async () => {
  // Holds the WebGPU path against the cpu one on a bigger batch than the fixtures' 3.
  const dir = fixture("vit-tiny-b");
  const results: Float32Array[] = [];
  for (const backend of BACKENDS) {
    await useBackend(backend);
    const clf = await loadClassifier(`${dir}/model`, { adapter: `${dir}/adapter`, backend });
    const pixels = tf.randomNormal([9, 3, 48, 48], 0, 1, "float32", 7) as Tensor4D;
    const logits = clf.logits(pixels);
    results.push(await logits.data() as Float32Array);
    tf.dispose([pixels, logits]);
    clf.dispose();
  }
  const [gpu, cpu] = results;
  let worst = 0, scale = 0;
  for (let i = 0; i < cpu.length; i++) {
    worst = Math.max(worst, Math.abs(gpu[i] - cpu[i]));
    scale = Math.max(scale, Math.abs(cpu[i]));
  }
  assert.ok(worst / scale < 1e-5, `webgpu vs cpu: ${worst / scale}`);
});
