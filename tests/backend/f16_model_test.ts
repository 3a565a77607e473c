/**
 * A classifier under `precision: "fp16"` against PyTorch's mixed precision (the real torch
 * 2.13 under `torch.autocast("cpu", dtype=torch.float16)`, transformers 5.18, PEFT 0.21:
 * `tests/reference/make_fp16.py`, fixtures in `tests/fixtures/fp16/`), on WebGPU with
 * shader-f16 (Mesa's lavapipe here): logits, loss and every adapter gradient; its frozen
 * weights in half the bytes; the choice of precision.
 *
 * Tolerances. Both sides round the same tensors to float16 at the same places (autocast's:
 * every linear layer's inputs and output, attention's output, the gradients of float16
 * tensors), each rounding within 2⁻¹¹ of its value. Where the two sides' float32 sums (in
 * different orders) fall on either side of a rounding boundary, they differ by one float16
 * step, 2⁻¹⁰ ≈ 9.8e-4 of the value, and that carries on through the layers. So: logits within
 * 1e-3 of their largest value (a float16 step; measured 4.0e-4); the loss within twice the
 * logits' largest difference (|Δ log softmax| ≤ 2 max|Δz|); gradients within 5e-3 of each
 * tensor's largest value (the backward pass multiplies float16 gradients through both layers
 * and back; measured up to 3.1e-3). And closer to PyTorch's float16 results than PyTorch's
 * float32 ones are (logits; the gradients on average over the tensors: measured 1.4e-3 and
 * 1.1e-3 against 3.4e-3 and 1.9e-3, though a tensor whose float16 and float32 gradients are
 * within the rounding noise of each other may go either way): what is compared is float16
 * arithmetic, not a float32 model within a loose bound.
 */

import assert from "node:assert/strict";
import { initBackend } from "../../src/backend/backend.ts";
import { tf } from "../../src/core/tf.ts";
import { createClassifier, loadClassifier } from "../../src/model/loading.ts";
import { parseViTConfig } from "../../src/model/config.ts";
import type { TensorData } from "../../src/model/safetensors.ts";
import { readSafetensors } from "../../src/model/safetensors_file.ts";
import { resolvePrecision } from "../../src/model/precision.ts";
import { fixture, relError, useBackend } from "../helpers.ts";

const SETS = [
  {
    set: "a",
    model: `${fixture("vit-tiny-a")}/model`,
    adapter: `${fixture("vit-tiny-a")}/adapter`,
  },
  {
    set: "all",
    model: `${fixture("hf5-more")}/model`,
    adapter: `${fixture("hf5-more")}/adapter-all`,
  },
];

for (const { set, model, adapter } of SETS) {
  Deno.test(`on webgpu, fp16 (set ${set}): logits, loss and adapter gradients hold to PyTorch's autocast float16`, async () => {
    await useBackend("webgpu");
    const e = await readSafetensors(`${fixture("fp16")}/${set}.safetensors`);
    const get = (name: string): TensorData => e.get(name)!;
    const clf = await loadClassifier(model, {
      adapter,
      precision: "fp16",
      loraDropout: 0,
      peftFormat: "transformers-5",
    });
    assert.equal(clf.precision, "fp16");
    const px = get("pixel_values");
    const x = tf.tensor4d(
      px.data as Float32Array,
      px.shape as number[] as [number, number, number, number],
    );
    const y = tf.tensor1d(
      Int32Array.from(get("labels").data as ArrayLike<number>, Number),
      "int32",
    );
    const logits = await clf.logits(x).data();
    const want = get("fp16.logits").data, fp32 = get("fp32.logits").data;
    const logitErr = relError(logits, want);
    assert.ok(logitErr < 1e-3, `logits: ${logitErr.toExponential(2)}`);
    assert.ok(logitErr < relError(fp32, want), "closer to PyTorch's float16 than its float32 is");
    const before = tf.memory().numTensors;
    for (let pass = 0; pass < 2; pass++) {
      const { loss, grads } = clf.lossAndGradients(x, y);
      const l = (await loss.data())[0], wantLoss = get("fp16.loss").data[0];
      const maxDz = Math.max(...Array.from(logits, (z, i) => Math.abs(z - want[i])));
      assert.ok(Math.abs(l - wantLoss) <= 2 * maxDz, `loss ${l} vs ${wantLoss}`);
      let ours = 0, theirs = 0;
      for (const [key, g] of Object.entries(grads)) {
        const ref = get(`fp16.grad.${key}`).data;
        const err = relError(await g.data(), ref);
        assert.ok(err < 5e-3, `${key}: ${err.toExponential(2)}`);
        ours += err;
        theirs += relError(get(`fp32.grad.${key}`).data, ref);
      }
      assert.ok(ours < theirs, `gradients: ${ours} vs float32's ${theirs} (summed over tensors)`);
      assert.equal(
        Object.keys(grads).length,
        [...e.keys()].filter((k) => k.startsWith("fp16.grad.")).length,
      );
      tf.dispose([loss, ...Object.values(grads)]);
      assert.equal(tf.memory().numTensors, before, "the tensor count does not grow");
    }
    tf.dispose([x, y]);
    clf.dispose();
  });
}

Deno.test("on webgpu, fp16: the frozen linear weights take half their float32 bytes; merged weights are their float16 values", async () => {
  await useBackend("webgpu");
  const { model, adapter } = SETS[1];
  const bytes = async (precision: "fp16" | "fp32") => {
    const start = tf.memory().numBytes;
    const clf = await loadClassifier(model, { adapter, precision });
    const used = tf.memory().numBytes - start;
    const merged = clf.vit.mergedTensors();
    const q = await merged.get("encoder.layer.1.attention.attention.query.weight")!.data();
    tf.dispose([...merged.values()]);
    clf.dispose();
    return { used, q };
  };
  const [half, full] = [await bytes("fp16"), await bytes("fp32")];
  // hidden 40, 3 layers, MLP 72, patches of 3·8·8: the linear weights' elements
  const linear = 3 * (4 * 40 * 40 + 2 * 40 * 72) + 192 * 40;
  assert.equal(full.used - half.used, linear * 2, "each float16 weight: 2 bytes of its 4");
  // the merged query weight (with its LoRA) is float32's within the weight's float16 rounding
  const err = relError(half.q, full.q);
  assert.ok(err > 0 && err < 2 ** -10, `merged weight: ${err}`);
});

Deno.test("precision: fp16 where it cannot run is one line and fp32; auto is fp32 on a software adapter", async () => {
  const config = parseViTConfig({
    hidden_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 64,
    image_size: 16,
    patch_size: 8,
  });
  const lines: string[] = [];
  const error = console.error;
  console.error = (...args: unknown[]) => lines.push(args.join(" "));
  try {
    await initBackend("cpu", { quiet: true });
    const clf = await createClassifier(config, { labels: ["a", "b"], precision: "fp16" });
    assert.equal(clf.precision, "fp32");
    clf.dispose();
    assert.deepEqual(lines, [
      "vit-lora: precision fp16: the cpu backend has no float16 kernels (WebGPU has): running in fp32",
    ]);
    await useBackend("webgpu");
    // lavapipe offers shader-f16 but is a software adapter: auto keeps fp32, quietly
    assert.equal(resolvePrecision("auto", config), "fp32");
    assert.equal(resolvePrecision("fp16", config), "fp16");
    const odd = { ...config, intermediate_size: 63 };
    assert.equal(resolvePrecision("fp16", odd), "fp32");
    assert.match(lines[1], /even head size and intermediate_size \(the model has 16 and 63\)/);
    assert.equal(lines.length, 2);
  } finally {
    console.error = error;
  }
});
