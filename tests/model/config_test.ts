/** Configs, parameter counts and PEFT's module-targeting rules. */

import assert from "node:assert/strict";
import { VitLoraError } from "../../src/core/errors.ts";
import { countParameters } from "../../src/model/classifier.ts";
import {
  parsePreprocessorConfig,
  parseViTConfig,
  VIT_BASE_CONFIG,
  vitTensorShapes,
} from "../../src/model/config.ts";
import { loraConfig, loraTargets, parseAdapterConfig } from "../../src/model/lora.ts";

Deno.test("ViT-B/16, 101 labels, LoRA r 32 on query/value: 1,257,317 trainable of 87,055,973", () => {
  const { trainable, total } = countParameters(VIT_BASE_CONFIG, {
    numLabels: 101,
    lora: loraConfig({ r: 32, alpha: 16, dropout: 0.1 }),
  });
  assert.equal(trainable, 1_257_317);
  assert.equal(total, 87_055_973);
  assert.equal((100 * trainable / total).toFixed(2), "1.44");
  // The bare encoder (no pooler) is ViT-B/16's 85.8M.
  const encoder = [...vitTensorShapes(VIT_BASE_CONFIG).values()]
    .reduce((s, shape) => s + shape.reduce((a, b) => a * b, 1), 0);
  assert.equal(encoder, 85_798_656);
});

Deno.test("config.json: defaults are transformers' ViTConfig; bad fields are named", () => {
  const c = parseViTConfig({ hidden_size: 64, num_attention_heads: 4 }, "m/config.json");
  assert.equal(c.num_hidden_layers, 12);
  assert.equal(c.layer_norm_eps, 1e-12);
  assert.equal(c.hidden_act, "gelu");
  assert.equal(c.qkv_bias, true);
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ model_type: "bert" }, /model_type is 'bert'/],
    [{ hidden_size: 0 }, /hidden_size must be a positive integer/],
    [{ hidden_size: 50, num_attention_heads: 3 }, /not a multiple of num_attention_heads/],
    [{ hidden_act: "mish" }, /hidden_act 'mish' is not supported/],
    [{ image_size: 8, patch_size: 16 }, /image_size 8 is smaller than patch_size 16/],
    [{ hidden_dropout_prob: 1 }, /hidden_dropout_prob must be a number in \[0, 1\)/],
  ];
  for (const [json, pattern] of bad) {
    assert.throws(() => parseViTConfig(json, "m/config.json"), (e: Error) => {
      assert.ok(e instanceof VitLoraError);
      assert.match(e.message, /^m\/config\.json: /);
      assert.match(e.message, pattern);
      return true;
    });
  }
});

Deno.test("preprocessor_config.json: size as a number or {height, width}; std may not be 0", () => {
  assert.deepEqual(parsePreprocessorConfig({ size: 32 }).size, { height: 32, width: 32 });
  assert.deepEqual(parsePreprocessorConfig({ size: { height: 224, width: 224 } }).size, {
    height: 224,
    width: 224,
  });
  const p = parsePreprocessorConfig({});
  assert.deepEqual(p.image_mean, [0.5, 0.5, 0.5]);
  assert.equal(p.rescale_factor, 1 / 255);
  assert.throws(() => parsePreprocessorConfig({ image_std: [1, 0, 1] }), /image_std has a zero/);
  assert.throws(
    () => parsePreprocessorConfig({ image_mean: [1] }),
    /image_mean must be three numbers/,
  );
});

const MODULES = [0, 1, 2].flatMap((i) =>
  [
    "attention.attention.query",
    "attention.attention.key",
    "attention.attention.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
  ].map((m) => `encoder.layer.${i}.${m}`)
);

Deno.test("LoRA targets follow PEFT: names by suffix, regex, layers_to_transform, patterns", () => {
  const names = (c: Parameters<typeof loraTargets>[0]) =>
    loraTargets(c, MODULES).map((t) => t.module);
  assert.deepEqual(names(loraConfig()), [
    "encoder.layer.0.attention.attention.query",
    "encoder.layer.0.attention.attention.value",
    "encoder.layer.1.attention.attention.query",
    "encoder.layer.1.attention.attention.value",
    "encoder.layer.2.attention.attention.query",
    "encoder.layer.2.attention.attention.value",
  ]);
  // "dense" matches every module whose name ends in ".dense".
  assert.equal(names(loraConfig({ targetModules: ["dense"] })).length, 9);
  // "output.dense" matches the attention output too (its name ends in ".output.dense").
  assert.equal(names(loraConfig({ targetModules: ["output.dense"] })).length, 6);
  // A string is a regular expression over the full name (PEFT's re.fullmatch).
  const regex = { ...loraConfig(), target_modules: String.raw`.*layer\.1\..*key` };
  assert.deepEqual(names(regex), ["encoder.layer.1.attention.attention.key"]);
  const layers = { ...loraConfig(), layers_to_transform: [2] };
  assert.deepEqual(names(layers), [
    "encoder.layer.2.attention.attention.query",
    "encoder.layer.2.attention.attention.value",
  ]);
  const patterned = {
    ...loraConfig({ r: 8, alpha: 16 }),
    rank_pattern: { "layer.1.attention.attention.query": 4 },
  };
  const t = loraTargets(patterned, MODULES);
  assert.deepEqual(t.map((x) => x.r), [8, 8, 4, 8, 8, 8]);
  assert.deepEqual(t.map((x) => x.scaling), [2, 2, 4, 2, 2, 2]);
  const rs = loraTargets({ ...loraConfig({ r: 16, alpha: 16 }), use_rslora: true }, MODULES);
  assert.equal(rs[0].scaling, 4); // alpha / √r
});

Deno.test("adapter_config.json: what this module cannot honour is refused by name", () => {
  const base = { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["query"] };
  assert.throws(
    () => parseAdapterConfig({ r: 4 }, "a/adapter_config.json"),
    /^.*a\/adapter_config\.json: no peft_type/,
  );
  assert.throws(() => parseAdapterConfig({ ...base, use_dora: true }), /DoRA/);
  assert.throws(() => parseAdapterConfig({ ...base, bias: "all" }), /bias 'all' is not supported/);
  assert.throws(
    () => parseAdapterConfig({ ...base, modules_to_save: ["pooler"] }),
    /modules_to_save/,
  );
  assert.throws(() => parseAdapterConfig({ ...base, r: 0 }), /r must be a positive integer/);
  assert.throws(() => parseAdapterConfig({ ...base, target_modules: [] }), /target_modules/);
  const c = parseAdapterConfig(base);
  assert.equal(c.lora_dropout, 0);
  assert.equal(c.use_rslora, false);
});
