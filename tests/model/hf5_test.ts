/**
 * Today's Hugging Face stack, both ways: adapters that PEFT 0.21 saved on transformers 5.18
 * (and the same tensors in the seed era's names), and a real `transformers.Trainer` run
 * whose epochs end with a short micro-batch sharing its optimizer step with a full one
 * (`fixtures/hf5/`, made by the real libraries; see its README).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type Tensor4D, tf } from "../../src/core/tf.ts";
import { linearModules, VIT_BASE_CONFIG } from "../../src/model/config.ts";
import { loadClassifier } from "../../src/model/loading.ts";
import { loraConfig, loraTargets, parseAdapterConfig } from "../../src/model/lora.ts";
import { parsePeftKey } from "../../src/model/peft_format.ts";
import { readSafetensors, writeSafetensors } from "../../src/model/safetensors_file.ts";
import type { StepEvent } from "../../src/runs/events.ts";
import { train } from "../../src/training/trainer.ts";
import { parseTrainArgs } from "../../tasks/train.ts";
import {
  assertTrainerSteps,
  BACKENDS,
  fixture,
  relError,
  tempDir,
  type TrainerStep,
  useBackend,
} from "../helpers.ts";

const HF5 = fixture("hf5");
const MODEL = join(HF5, "model");
const T5 = join(HF5, "adapter-transformers5");
const T4 = join(HF5, "adapter-transformers4");
const MEAN = [0.485, 0.456, 0.406], STD = [0.229, 0.224, 0.225]; // model/preprocessor_config.json

/**
 * A split's pixels from a fixture's `pixels.safetensors` (default hf5's), normalised as the
 * processor does (both fixture models take ImageNet's mean and std), NCHW.
 */
async function pixels(
  split: "train" | "validation",
  data = join(HF5, "data"),
): Promise<Tensor4D> {
  const t = (await readSafetensors(join(data, "pixels.safetensors"))).get(`${split}.pixels`)!;
  return tf.tidy(() =>
    tf.tensor4d(Float32Array.from(t.data), t.shape as [number, number, number, number])
      .div(255).sub(MEAN).div(STD).transpose([0, 3, 1, 2])
  ) as Tensor4D;
}

/** A Trainer run's steps as `trainer_run.json` records them, with their micro-batches' sizes. */
type TrainerSteps = (TrainerStep & { sizes: number[] })[];

/** {@link assertTrainerSteps}, for a run in which a step mixes micro-batch sizes. */
function assertMixedSteps(name: string, steps: StepEvent[], expected: TrainerSteps): number {
  assert.ok(expected.some((s) => new Set(s.sizes).size > 1), `${name}: a step mixes sizes`);
  return assertTrainerSteps(name, steps, expected);
}

/** The relative error of a trained adapter's validation logits against Trainer's. */
async function validationError(
  model: string,
  adapter: string,
  data: string,
  expected: number[][],
  backend: (typeof BACKENDS)[number],
): Promise<number> {
  const clf = await loadClassifier(model, { adapter, backend });
  const x = await pixels("validation", data);
  const logits = clf.logits(x);
  const err = relError(await logits.data(), expected.flat());
  tf.dispose([x, logits]);
  clf.dispose();
  return err;
}

/** The linear modules of a ViT of `layers` layers (this module's names). */
const modulesOf = (layers: number) =>
  linearModules({ ...VIT_BASE_CONFIG, num_hidden_layers: layers });

async function readJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(path));
}

const run = await readJson(join(HF5, "trainer_run.json")) as {
  steps: TrainerSteps;
  validation_logits: number[][];
  train_logits: number[][];
};

for (const backend of BACKENDS) {
  Deno.test(`on ${backend}: an adapter PEFT 0.21 saved on transformers 5 loads with PyTorch's logits`, async () => {
    await useBackend(backend);
    const x = await pixels("validation");
    const clf = await loadClassifier(MODEL, {
      adapter: join(HF5, "trained-adapter-transformers5"),
      backend,
    });
    try {
      assert.equal(clf.peftFormat, "transformers-5");
      const logits = clf.logits(x);
      const err = relError(await logits.data(), run.validation_logits.flat());
      logits.dispose();
      assert.ok(err < 1e-4, `validation logits: relative error ${err.toExponential(2)}`);
    } finally {
      x.dispose();
      clf.dispose();
    }
  });
}

Deno.test("the same adapter in either generation's names gives the same model", async () => {
  await useBackend("cpu");
  const x = await pixels("train");
  const t5 = await loadClassifier(MODEL, { adapter: T5 });
  const t4 = await loadClassifier(MODEL, { adapter: T4 });
  try {
    assert.equal(t5.peftFormat, "transformers-5");
    assert.equal(t4.peftFormat, "transformers-4");
    const [a, b] = [t5.logits(x), t4.logits(x)];
    assert.deepEqual(await a.data(), await b.data());
    tf.dispose([a, b]);
    // the trainable tensors are keyed in each adapter's own names
    const keys5 = Object.keys(t5.trainableVariables()).sort();
    const keys4 = Object.keys(t4.trainableVariables()).sort();
    const file5 = [...(await readSafetensors(join(T5, "adapter_model.safetensors"))).keys()].sort();
    const file4 = [...(await readSafetensors(join(T4, "adapter_model.safetensors"))).keys()].sort();
    assert.deepEqual(keys5, file5);
    assert.deepEqual(keys4, file4);
  } finally {
    x.dispose();
    t5.dispose();
    t4.dispose();
  }
});

/** The adapter_config.json fields that decide what PEFT builds and loads. */
const DECIDING = [
  "peft_type",
  "r",
  "lora_alpha",
  "lora_dropout",
  "modules_to_save",
  "bias",
  "fan_in_fan_out",
  "use_rslora",
  "use_dora",
  "layers_to_transform",
  "layers_pattern",
  "rank_pattern",
  "alpha_pattern",
  "task_type",
] as const;

async function assertSameAdapter(ours: string, peft: string): Promise<void> {
  const [a, b] = [
    await readSafetensors(join(ours, "adapter_model.safetensors")),
    await readSafetensors(join(peft, "adapter_model.safetensors")),
  ];
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), "the same tensor names as PEFT's");
  for (const [key, t] of b) {
    assert.deepEqual(a.get(key)!.shape, t.shape, key);
    assert.deepEqual(a.get(key)!.data, t.data, key);
  }
  const [ca, cb] = [
    await readJson(join(ours, "adapter_config.json")),
    await readJson(join(peft, "adapter_config.json")),
  ];
  for (const field of DECIDING) assert.deepEqual(ca[field], cb[field], field);
  // PEFT writes target_modules from a set, in no fixed order
  assert.deepEqual(
    [...ca.target_modules as string[]].sort(),
    [...cb.target_modules as string[]].sort(),
    "target_modules",
  );
}

Deno.test("saved adapters have PEFT's own names and config: transformers-5 by default, transformers-4 on request", async () => {
  await useBackend("cpu");
  await using tmp = await tempDir();
  for (const source of [T5, T4]) {
    const clf = await loadClassifier(MODEL, { adapter: source });
    try {
      await clf.saveAdapter(join(tmp.path, "t5"), { peftFormat: "transformers-5" });
      await clf.saveAdapter(join(tmp.path, "t4"), { peftFormat: "transformers-4" });
    } finally {
      clf.dispose();
    }
    await assertSameAdapter(join(tmp.path, "t5"), T5);
    await assertSameAdapter(join(tmp.path, "t4"), T4);
  }
  // a new adapter, whichever names its targets are given in, is saved in today's names
  for (const targetModules of [["query", "value"], ["q_proj", "v_proj"]]) {
    const clf = await loadClassifier(MODEL, { lora: { r: 4, alpha: 8, targetModules } });
    const dir = join(tmp.path, `new-${targetModules[0]}`);
    try {
      await clf.saveAdapter(dir);
    } finally {
      clf.dispose();
    }
    const config = await readJson(join(dir, "adapter_config.json"));
    assert.deepEqual(config.target_modules, ["q_proj", "v_proj"]);
    const keys = [...(await readSafetensors(join(dir, "adapter_model.safetensors"))).keys()];
    assert.ok(keys.includes("base_model.model.vit.layers.1.attention.v_proj.lora_B.weight"));
  }
});

Deno.test("query,value and q_proj,v_proj name the same modules, in configs and on the command line", () => {
  const modules = modulesOf(2);
  const old = loraTargets(loraConfig({ targetModules: ["query", "value"] }), modules);
  const now = loraTargets(loraConfig({ targetModules: ["q_proj", "v_proj"] }), modules);
  assert.deepEqual(now, old);
  assert.equal(old.length, 4);
  const mlp = loraTargets(loraConfig({ targetModules: ["fc1", "output.dense"] }), modules);
  assert.deepEqual(
    mlp.map((t) => t.module),
    [
      "encoder.layer.0.intermediate.dense",
      "encoder.layer.0.attention.output.dense", // PEFT's suffix rule: output.dense ends both
      "encoder.layer.0.output.dense",
      "encoder.layer.1.intermediate.dense",
      "encoder.layer.1.attention.output.dense",
      "encoder.layer.1.output.dense",
    ].sort((a, b) => modules.indexOf(a) - modules.indexOf(b)),
  );
  assert.deepEqual(parseTrainArgs(["--target-modules", "q_proj,v_proj"]).targetModules, [
    "q_proj",
    "v_proj",
  ]);
  assert.equal(parseTrainArgs(["--peft-format", "transformers-4"]).peftFormat, "transformers-4");
  assert.throws(
    () => parseTrainArgs(["--peft-format", "peft-0.9"]),
    /--peft-format must be one of transformers-5, transformers-4, not "peft-0.9"/,
  );
  assert.deepEqual(
    parsePeftKey("base_model.model.vit.layers.1.mlp.fc2.lora_A.weight"),
    {
      kind: "lora",
      module: "encoder.layer.1.output.dense",
      which: "lora_A",
      format: "transformers-5",
    },
  );
});

/** Copies an adapter folder, changing its config and/or its tensors' names. */
async function variant(
  dir: string,
  source: string,
  edit: { config?: Record<string, unknown>; renameKeys?: (key: string) => string | undefined },
): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const config = { ...await readJson(join(source, "adapter_config.json")), ...edit.config };
  await Deno.writeTextFile(join(dir, "adapter_config.json"), JSON.stringify(config));
  const tensors = await readSafetensors(join(source, "adapter_model.safetensors"));
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [key, t] of tensors) {
    const name = edit.renameKeys ? edit.renameKeys(key) : key;
    if (name !== undefined) out[name] = { shape: t.shape, data: t.data as Float32Array };
  }
  await writeSafetensors(join(dir, "adapter_model.safetensors"), out);
  return dir;
}

Deno.test("adapters whose config and tensors disagree, as PEFT would not load them, are one clear error", async () => {
  await useBackend("cpu");
  await using tmp = await tempDir();
  const cases: [string, Parameters<typeof variant>[2], RegExp][] = [
    [
      "old targets, new keys",
      { config: { target_modules: ["query", "value"] } },
      /target_modules \["query","value"\] names transformers-4's modules, but the tensors of .* use transformers-5's names .*PEFT would not load this adapter/,
    ],
    [
      "new targets, old keys",
      {
        renameKeys: (k) => {
          const p = parsePeftKey(k);
          return p.kind === "lora" ? `base_model.model.vit.${p.module}.${p.which}.weight` : k;
        },
      },
      /names transformers-5's modules, but the tensors of .* use transformers-4's names/,
    ],
    [
      "a tensor left out",
      { renameKeys: (k) => k.includes("layers.1.attention.v_proj.lora_B") ? undefined : k },
      /missing tensor 'base_model\.model\.vit\.layers\.1\.attention\.v_proj\.lora_B\.weight'/,
    ],
    [
      "keys of both generations",
      {
        renameKeys: (k) =>
          k.includes("layers.0.attention.q_proj")
            ? k.replace("layers.0.attention.q_proj", "encoder.layer.0.attention.attention.query")
            : k,
      },
      /mixes transformers 5 names .* with transformers 4 names/,
    ],
    [
      "a target the keys lack",
      { config: { target_modules: ["q_proj", "v_proj", "fc1"] } },
      /missing tensor 'base_model\.model\.vit\.layers\.0\.mlp\.fc1\.lora_A\.weight'/,
    ],
    [
      "layers_to_transform on a regular expression",
      { config: { target_modules: ".*q_proj", layers_to_transform: [0] } },
      /layers_to_transform cannot be used when target_modules is a regular expression/,
    ],
  ];
  for (const [name, edit, message] of cases) {
    const dir = await variant(join(tmp.path, name.replaceAll(" ", "-")), T5, edit);
    await assert.rejects(() => loadClassifier(MODEL, { adapter: dir }), message, name);
  }
});

for (const backend of BACKENDS) {
  Deno.test(`on ${backend}: train() matches transformers.Trainer 5.18 step by step, with a short micro-batch sharing a step`, async () => {
    await useBackend(backend);
    await using tmp = await tempDir();
    const steps: StepEvent[] = [];
    const result = await train({
      model: MODEL,
      adapter: T5,
      data: join(HF5, "data"),
      out: join(tmp.path, "run"),
      epochs: 2,
      batchSize: 4,
      gradAccum: 2,
      lr: 0.01,
      augment: "none",
      shuffle: false,
      loraDropout: 0,
      workers: 0,
      progress: false,
      backend,
      onStep: (e) => steps.push(e),
    });
    const worst = assertMixedSteps("hf5", steps, run.steps);
    const config = await readJson(join(result.runDir, "config.json")) as {
      train: { peftFormat: string };
      adapter: { peft_format: string };
    };
    assert.equal(config.train.peftFormat, "transformers-5");
    assert.equal(config.adapter.peft_format, "transformers-5");
    const err = await validationError(
      MODEL,
      join(result.runDir, "checkpoints", "epoch-2"),
      join(HF5, "data"),
      run.validation_logits,
      backend,
    );
    assert.ok(err < 1e-4, `validation logits after training: ${err.toExponential(2)}`);
    console.log(`  worst step error ${worst.toExponential(2)}, logits ${err.toExponential(2)}`);
  });
}

Deno.test("train --peft-format transformers-4 saves the seed era's names; the default today's", async () => {
  await useBackend("cpu");
  await using tmp = await tempDir();
  for (const peftFormat of ["transformers-4", undefined] as const) {
    const runDir = join(tmp.path, peftFormat ?? "default");
    await train({
      model: MODEL,
      data: join(HF5, "data"),
      out: runDir,
      epochs: 1,
      batchSize: 8,
      gradAccum: 1,
      loraR: 2,
      targetModules: ["query", "value"],
      augment: "none",
      workers: 0,
      progress: false,
      backend: "cpu",
      peftFormat,
    });
    const config = await readJson(join(runDir, "best", "adapter_config.json"));
    const keys = [...(await readSafetensors(join(runDir, "best", "adapter_model.safetensors")))
      .keys()];
    if (peftFormat === "transformers-4") {
      assert.deepEqual(config.target_modules, ["query", "value"]);
      assert.ok(
        keys.includes(
          "base_model.model.vit.encoder.layer.0.attention.attention.query.lora_A.weight",
        ),
      );
    } else {
      assert.deepEqual(config.target_modules, ["q_proj", "v_proj"]);
      assert.ok(keys.includes("base_model.model.vit.layers.0.attention.q_proj.lora_A.weight"));
    }
    assert.ok(keys.every((k) => parsePeftKey(k).kind !== "other"), keys.join(", "));
  }
});

// ---- fixtures/hf5-more: other shapes, PEFT's targeting in full, two more Trainer runs ----

const MORE = fixture("hf5-more");
const MORE_MODEL = join(MORE, "model");
const VARIANTS = ["list", "all", "regex", "layers"] as const;

for (const backend of BACKENDS) {
  Deno.test(`on ${backend}: PEFT's targeting (lists, regex, layers_to_transform, rank/alpha patterns, rsLoRA) in both generations matches PyTorch`, async () => {
    await useBackend(backend);
    for (const variant of VARIANTS) {
      for (const suffix of ["", "-t4"]) {
        const dir = join(MORE, `adapter-${variant}${suffix}`);
        const e = await readSafetensors(join(dir, "expected.safetensors"));
        const px = e.get("pixel_values")!;
        const x = tf.tensor4d(px.data, px.shape as [number, number, number, number]);
        const y = tf.tensor1d(Int32Array.from(e.get("labels")!.data, Number), "int32");
        const clf = await loadClassifier(MORE_MODEL, { adapter: dir, backend });
        try {
          assert.equal(clf.peftFormat, suffix ? "transformers-4" : "transformers-5");
          const what = `adapter-${variant}${suffix}`;
          const logits = clf.logits(x);
          const err = relError(await logits.data(), e.get("logits")!.data);
          assert.ok(err < 1e-4, `${what} logits: ${err.toExponential(2)}`);
          const { loss, grads } = clf.lossAndGradients(x, y);
          const lossErr = relError(await loss.data(), e.get("loss")!.data);
          assert.ok(lossErr < 1e-4, `${what} loss: ${lossErr.toExponential(2)}`);
          const gradKeys = [...e.keys()].filter((k) => k.startsWith("grad.")).map((k) =>
            k.slice(5)
          );
          assert.deepEqual(Object.keys(grads).sort(), gradKeys.sort(), `${what}: gradient keys`);
          for (const key of gradKeys) {
            const g = relError(await grads[key].data(), e.get(`grad.${key}`)!.data);
            assert.ok(g < 1e-3, `${what} grad ${key}: ${g.toExponential(2)}`);
          }
          tf.dispose([logits, loss, ...Object.values(grads)]);
        } finally {
          clf.dispose();
          tf.dispose([x, y]);
        }
      }
    }
  });
}

Deno.test("adapters with PEFT's full targeting, saved in either generation, are what PEFT saved", async () => {
  await useBackend("cpu");
  await using tmp = await tempDir();
  const modules = modulesOf(3);
  for (const variant of VARIANTS) {
    const peft = {
      "transformers-5": join(MORE, `adapter-${variant}`),
      "transformers-4": join(MORE, `adapter-${variant}-t4`),
    } as const;
    for (const [from, source] of Object.entries(peft)) {
      const clf = await loadClassifier(MORE_MODEL, { adapter: source });
      try {
        for (const [to, reference] of Object.entries(peft)) {
          const out = join(tmp.path, `${variant}-${from}-${to}`);
          await clf.saveAdapter(out, { peftFormat: to as keyof typeof peft });
          if (from === to) {
            await assertSameAdapter(out, reference); // written as read
            continue;
          }
          // rewritten into the other names: the same tensors, and a config that PEFT resolves
          // to the same modules, ranks and alphas as PEFT's own
          const [a, b] = [
            await readSafetensors(join(out, "adapter_model.safetensors")),
            await readSafetensors(join(reference, "adapter_model.safetensors")),
          ];
          assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), `${variant} ${from}→${to}`);
          for (const [key, t] of b) assert.deepEqual(a.get(key)!.data, t.data, key);
          const format = to as keyof typeof peft;
          const ours = parseAdapterConfig(
            await readJson(join(out, "adapter_config.json")),
          );
          const theirs = parseAdapterConfig(
            await readJson(join(reference, "adapter_config.json")),
          );
          assert.deepEqual(
            loraTargets(ours, modules, format),
            loraTargets(theirs, modules, format),
            `${variant} ${from}→${to}: targets`,
          );
        }
      } finally {
        clf.dispose();
      }
    }
  }
});

for (const name of ["trainer-a", "trainer-b"]) {
  for (const backend of BACKENDS) {
    Deno.test(`on ${backend}: train() matches transformers.Trainer's ${name} (uneven split, weight decay, warmup)`, async () => {
      await useBackend(backend);
      await using tmp = await tempDir();
      const trainer = await readJson(join(MORE, name, "trainer_run.json")) as {
        args: Record<string, number>;
        start_adapter: string;
        data: { root: string };
        steps: TrainerSteps;
        validation_logits: number[][];
      };
      const a = trainer.args;
      const steps: StepEvent[] = [];
      const result = await train({
        model: MORE_MODEL,
        adapter: join(MORE, trainer.start_adapter),
        data: join(MORE, trainer.data.root),
        out: join(tmp.path, "run"),
        epochs: a.num_train_epochs,
        batchSize: a.per_device_train_batch_size,
        gradAccum: a.gradient_accumulation_steps,
        lr: a.learning_rate,
        weightDecay: a.weight_decay,
        warmupRatio: a.warmup_steps, // below 1: transformers 5 takes it as a ratio
        maxGradNorm: a.max_grad_norm,
        augment: "none",
        shuffle: false,
        loraDropout: 0,
        workers: 0,
        progress: false,
        backend,
        onStep: (e) => steps.push(e),
      });
      const worst = assertMixedSteps(name, steps, trainer.steps);
      const err = await validationError(
        MORE_MODEL,
        join(result.runDir, "checkpoints", `epoch-${a.num_train_epochs}`),
        join(MORE, trainer.data.root),
        trainer.validation_logits,
        backend,
      );
      assert.ok(err < 1e-4, `${name} validation logits: ${err.toExponential(2)}`);
      console.log(`  worst step error ${worst.toExponential(2)}, logits ${err.toExponential(2)}`);
    });
  }
}
