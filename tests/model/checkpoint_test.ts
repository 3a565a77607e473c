/**
 * Saving and loading: PEFT adapters and merged transformers checkpoints read back to the same
 * logits; both checkpoint shapes load; bad folders fail with one clear line.
 */

import assert from "node:assert/strict";
import { cp } from "node:fs/promises";
import { VitLoraError } from "../../src/core/errors.ts";
import { tf } from "../../src/core/tf.ts";
import { loadClassifier } from "../../src/model/loading.ts";
import { readSafetensors } from "../../src/model/safetensors_file.ts";
import { BACKENDS, expected, fixture, inputs, relError, tempDir, useBackend } from "../helpers.ts";

for (const backend of BACKENDS) {
  Deno.test(`on ${backend}: a saved adapter and a merged checkpoint read back to the same logits`, async () => {
    await useBackend(backend);
    await using tmp = await tempDir();
    const dir = fixture("vit-tiny-b");
    const e = await expected("vit-tiny-b");
    const { pixels } = inputs(e);
    const clf = await loadClassifier(`${dir}/model`, { adapter: `${dir}/adapter`, backend });
    const ref = await clf.logits(pixels).data() as Float32Array;

    await clf.saveAdapter(`${tmp.path}/adapter`);
    await clf.saveMerged(`${tmp.path}/merged`);
    const again = await loadClassifier(`${dir}/model`, { adapter: `${tmp.path}/adapter`, backend });
    const merged = await loadClassifier(`${tmp.path}/merged`, { backend });
    try {
      assert.equal(relError(await again.logits(pixels).data() as Float32Array, ref), 0, "adapter");
      const mergedErr = relError(await merged.logits(pixels).data() as Float32Array, ref);
      assert.ok(mergedErr < 1e-5, `merged: ${mergedErr}`);
      assert.deepEqual(merged.labels, clf.labels);
      assert.equal(merged.lora, undefined);
    } finally {
      pixels.dispose();
      for (const c of [clf, again, merged]) c.dispose();
    }
  });
}

Deno.test("a saved adapter is in PEFT's format: same keys and config fields as PEFT's own", async () => {
  await useBackend("cpu");
  await using tmp = await tempDir();
  const dir = fixture("vit-tiny-a");
  const clf = await loadClassifier(`${dir}/model`, { adapter: `${dir}/adapter` });
  await clf.saveAdapter(tmp.path);
  clf.dispose();
  const ours = await readSafetensors(`${tmp.path}/adapter_model.safetensors`);
  const peft = await readSafetensors(`${dir}/adapter/adapter_model.safetensors`);
  assert.deepEqual([...ours.keys()].sort(), [...peft.keys()].sort());
  for (const [key, t] of peft) {
    assert.deepEqual(ours.get(key)!.shape, t.shape, key);
    assert.deepEqual([...ours.get(key)!.data], [...t.data], key);
  }
  const config = JSON.parse(await Deno.readTextFile(`${tmp.path}/adapter_config.json`));
  const peftConfig = JSON.parse(await Deno.readTextFile(`${dir}/adapter/adapter_config.json`));
  for (const field of Object.keys(peftConfig)) assert.ok(field in config, `field ${field}`);
  assert.equal(config.peft_type, "LORA");
  assert.equal(config.r, 4);
  assert.equal(config.lora_alpha, 8);
  assert.deepEqual(config.target_modules, ["query", "value"]);
  assert.deepEqual(config.modules_to_save, ["classifier"]);
  assert.equal(config.base_model_name_or_path, `${dir}/model`);
});

Deno.test("a merged checkpoint is a ViTForImageClassification in transformers' layout", async () => {
  await useBackend("cpu");
  await using tmp = await tempDir();
  const dir = fixture("vit-tiny-a");
  const clf = await loadClassifier(`${dir}/model`, {
    adapter: `${dir}/adapter`,
    labels: ["a", "b", "c", "d", "e", "f", "g"],
  });
  await clf.saveMerged(tmp.path);
  clf.dispose();
  const ours = await readSafetensors(`${tmp.path}/model.safetensors`);
  const reference = await readSafetensors(`${dir}/merged/model.safetensors`);
  assert.deepEqual([...ours.keys()].sort(), [...reference.keys()].sort());
  for (const [key, t] of reference) {
    assert.deepEqual(ours.get(key)!.shape, t.shape, key);
    assert.ok(relError(ours.get(key)!.data, t.data) < 1e-6, key);
  }
  const config = JSON.parse(await Deno.readTextFile(`${tmp.path}/config.json`));
  assert.deepEqual(config.architectures, ["ViTForImageClassification"]);
  assert.equal(config.id2label["6"], "g");
  assert.equal(config.label2id.c, 2);
  assert.equal(config.hidden_size, 48);
  const pre = JSON.parse(await Deno.readTextFile(`${tmp.path}/preprocessor_config.json`));
  assert.deepEqual(pre.image_mean, [0.5, 0.5, 0.5]);
});

Deno.test("a ViTModel checkpoint gets a new head for the given labels, initialised as HF does", async () => {
  await useBackend("cpu");
  const dir = fixture("vit-tiny-a");
  const clf = await loadClassifier(`${dir}/model`, { labels: ["x", "y", "z"], seed: 3 });
  try {
    assert.deepEqual(clf.labels, ["x", "y", "z"]);
    assert.deepEqual(clf.classifier.weight.shape, [3, 48]);
    const w = await clf.classifier.weight.data() as Float32Array;
    const mean = w.reduce((a, b) => a + b, 0) / w.length;
    const std = Math.sqrt(w.reduce((a, b) => a + (b - mean) ** 2, 0) / w.length);
    assert.ok(Math.abs(std - 0.02) < 0.005, `std ${std}`); // initializer_range
    assert.deepEqual([...await clf.classifier.bias.data()], [0, 0, 0]);
    assert.equal(clf.lora, undefined);
    assert.deepEqual(Object.keys(clf.trainableVariables()), [
      "base_model.model.classifier.weight",
      "base_model.model.classifier.bias",
    ]);
    await assert.rejects(() => clf.saveAdapter("/tmp/never"), /has no LoRA adapter to save/);
  } finally {
    clf.dispose();
  }
  // No labels and no head: transformers' default of two, LABEL_0 and LABEL_1.
  const plain = await loadClassifier(`${dir}/model`);
  assert.deepEqual(plain.labels, ["LABEL_0", "LABEL_1"]);
  plain.dispose();
});

Deno.test("a new LoRA adapter starts as the base model: A kaiming-uniform, B zero", async () => {
  await useBackend("cpu");
  const dir = fixture("vit-tiny-a");
  const e = await expected("vit-tiny-a");
  const { pixels } = inputs(e);
  const base = await loadClassifier(`${dir}/model`, { labels: ["a", "b"], seed: 1 });
  const lora = await loadClassifier(`${dir}/model`, {
    labels: ["a", "b"],
    seed: 1,
    lora: { r: 8, alpha: 16, dropout: 0.1 },
  });
  try {
    const vars = lora.trainableVariables();
    const keys = Object.keys(vars);
    assert.equal(
      keys.length,
      2 * 2 * 2 + 2,
      "A and B on query and value of 2 layers, and the head",
    );
    // a new adapter is named as PEFT names it on transformers 5
    const A = vars["base_model.model.vit.layers.1.attention.v_proj.lora_A.weight"];
    assert.deepEqual(A.shape, [8, 48]);
    const a = await A.data() as Float32Array;
    const bound = 1 / Math.sqrt(48);
    assert.ok(a.every((x) => Math.abs(x) <= bound), "within 1/√fan_in");
    assert.ok(Math.max(...a) > bound * 0.8, "spread over the range");
    const B = vars["base_model.model.vit.layers.1.attention.v_proj.lora_B.weight"];
    assert.deepEqual(B.shape, [48, 8]);
    assert.ok((await B.data()).every((x) => x === 0));
    assert.equal(relError(await lora.logits(pixels).data(), await base.logits(pixels).data()), 0);
    const { trainable, total } = lora.parameterCount();
    assert.equal(trainable, 2 * 2 * 8 * (48 + 48) + 2 * 48 + 2);
    assert.ok(total > trainable);
  } finally {
    pixels.dispose();
    base.dispose();
    lora.dispose();
  }
});

Deno.test("several classifiers live in one process, and a disposed one says so", async () => {
  await useBackend("cpu");
  const before = tf.memory().numTensors;
  const a = await loadClassifier(`${fixture("vit-tiny-a")}/model`, {
    adapter: `${fixture("vit-tiny-a")}/adapter`,
  });
  const b = await loadClassifier(`${fixture("vit-tiny-b")}/model`, {
    adapter: `${fixture("vit-tiny-b")}/adapter`,
  });
  const a2 = await loadClassifier(`${fixture("vit-tiny-a")}/model`, {
    adapter: `${fixture("vit-tiny-a")}/adapter`,
  });
  const ea = inputs(await expected("vit-tiny-a"));
  const eb = inputs(await expected("vit-tiny-b"));
  const la = await a.logits(ea.pixels).data();
  assert.deepEqual(b.logits(eb.pixels).shape, [3, 5]);
  assert.deepEqual(await a2.logits(ea.pixels).data(), la);
  a.dispose();
  assert.throws(() => a.logits(ea.pixels), /has been disposed/);
  assert.deepEqual(await a2.logits(ea.pixels).data(), la, "a's twin is untouched");
  b.dispose();
  a2.dispose();
  tf.dispose([ea.pixels, ea.labels, eb.pixels, eb.labels]);
  // Results of logits() above were left to the test; everything the classifiers held is gone.
  assert.ok(tf.memory().numTensors - before <= 4, `${tf.memory().numTensors - before} left`);
});

/** Copies a fixture set's folder into a temporary one to break it. */
async function brokenCopy(tmp: string, set: string): Promise<string> {
  await cp(fixture(set), `${tmp}/${set}`, { recursive: true });
  return `${tmp}/${set}`;
}

async function assertFails(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(() => p, (e: Error) => {
    assert.ok(e instanceof VitLoraError, `${e.name}: ${e.message}`);
    assert.ok(!e.message.includes("\n"), "one line");
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("bad model folders fail with one line naming the file and the fault", async () => {
  await useBackend("cpu");
  await using tmp = await tempDir();
  const dir = await brokenCopy(tmp.path, "vit-tiny-a");
  // A config that does not fit the weights: the tensor and both shapes are named.
  const config = JSON.parse(await Deno.readTextFile(`${dir}/model/config.json`));
  await Deno.writeTextFile(
    `${dir}/model/config.json`,
    JSON.stringify({ ...config, intermediate_size: 96 }),
  );
  await assertFails(
    loadClassifier(`${dir}/model`),
    /model\.safetensors: tensor 'encoder\.layer\.0\.intermediate\.dense\.weight' has shape \[192, 48\], but .*config\.json .*needs \[96, 48\]/,
  );
  await Deno.writeTextFile(
    `${dir}/model/config.json`,
    JSON.stringify({ ...config, num_hidden_layers: 3 }),
  );
  await assertFails(
    loadClassifier(`${dir}/model`),
    /missing tensor 'encoder\.layer\.2\.attention\.attention\.query\.weight'/,
  );
  await Deno.writeTextFile(
    `${dir}/model/config.json`,
    JSON.stringify({ ...config, num_attention_heads: 5 }),
  );
  await assertFails(
    loadClassifier(`${dir}/model`),
    /config\.json: hidden_size 48 is not a multiple of num_attention_heads 5/,
  );
  await Deno.writeTextFile(`${dir}/model/config.json`, "{ not json");
  await assertFails(loadClassifier(`${dir}/model`), /config\.json: not valid JSON/);
  await Deno.writeTextFile(`${dir}/model/config.json`, JSON.stringify(config));

  await assertFails(loadClassifier(`${tmp.path}/nowhere`), /nowhere: no such model folder/);
  await Deno.remove(`${dir}/model/config.json`);
  await assertFails(loadClassifier(`${dir}/model`), /model\/config\.json: file not found/);

  // Only a PyTorch pickle.
  await Deno.writeTextFile(`${dir}/model/config.json`, JSON.stringify(config));
  await Deno.rename(`${dir}/model/model.safetensors`, `${dir}/model/pytorch_model.bin`);
  await assertFails(loadClassifier(`${dir}/model`), /only pytorch_model\.bin/);
});

Deno.test("bad adapters fail with one line naming the file and the fault", async () => {
  await useBackend("cpu");
  await using tmp = await tempDir();
  const a = await brokenCopy(tmp.path, "vit-tiny-a");
  // An adapter for another hidden size (vit-tiny-b's: 64) on vit-tiny-a (48).
  await assertFails(
    loadClassifier(`${a}/model`, { adapter: `${fixture("vit-tiny-b")}/adapter` }),
    /adapter_model\.safetensors: tensor 'base_model\.model\.vit\.encoder\.layer\.0\.attention\.attention\.query\.lora_A\.weight' has shape \[8, 64\], but .* needs \[8, 48\]/,
  );
  const config = JSON.parse(await Deno.readTextFile(`${a}/adapter/adapter_config.json`));
  const { peft_type: _, ...noType } = config;
  await Deno.writeTextFile(`${a}/adapter/adapter_config.json`, JSON.stringify(noType));
  await assertFails(
    loadClassifier(`${a}/model`, { adapter: `${a}/adapter` }),
    /adapter_config\.json: no peft_type/,
  );
  await Deno.writeTextFile(
    `${a}/adapter/adapter_config.json`,
    JSON.stringify({ ...config, peft_type: "IA3" }),
  );
  await assertFails(
    loadClassifier(`${a}/model`, { adapter: `${a}/adapter` }),
    /only LoRA adapters/,
  );
  await Deno.writeTextFile(`${a}/adapter/adapter_config.json`, JSON.stringify({ ...config, r: 6 }));
  await assertFails(
    loadClassifier(`${a}/model`, { adapter: `${a}/adapter` }),
    /lora_A\.weight' has shape \[4, 48\], but .*needs \[6, 48\]/,
  );
  await Deno.writeTextFile(
    `${a}/adapter/adapter_config.json`,
    JSON.stringify({ ...config, target_modules: ["query"] }),
  );
  await assertFails(
    loadClassifier(`${a}/model`, { adapter: `${a}/adapter` }),
    /tensor '.*value\.lora_A\.weight' is not one that .*adapter_config\.json describes/,
  );
  await Deno.writeTextFile(`${a}/adapter/adapter_config.json`, JSON.stringify(config));
  await assertFails(
    loadClassifier(`${a}/model`, { adapter: `${a}/adapter`, labels: ["only", "two"] }),
    /the classifier has 7 classes, but 2 labels were given/,
  );
  await Deno.remove(`${a}/adapter/adapter_model.safetensors`);
  await assertFails(
    loadClassifier(`${a}/model`, { adapter: `${a}/adapter` }),
    /adapter_model\.safetensors: file not found/,
  );
});
