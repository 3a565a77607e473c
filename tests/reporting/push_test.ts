/**
 * Pushing a run to the Hub, against the imitation on 127.0.0.1 (`../hub/hub_server.ts`): one
 * commit with the adapter, metrics, configuration and model card, in either PEFT format.
 */

import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { readSafetensors } from "../../src/model/safetensors_file.ts";
import { pushRun } from "../../src/reporting/push.ts";
import { train } from "../../src/training/trainer.ts";
import { setup } from "../hub/hub_fixture.ts";
import { fixture, tempDir, useBackend } from "../helpers.ts";

Deno.test("push: one commit with the adapter, metrics, configuration, model card (and the merged checkpoint)", async () => {
  await useBackend("cpu");
  await using tmp = await tempDir();
  const { hub, settings } = await setup(tmp.path);
  try {
    const run = join(tmp.path, "run");
    await train({
      model: `${fixture("vit-tiny-a")}/model`,
      data: join(tmp.path, "ds"),
      out: run,
      epochs: 1,
      batchSize: 12,
      gradAccum: 1,
      loraR: 4,
      backend: "cpu",
      workers: 0,
      progress: false,
    });
    await assert.rejects(
      () => pushRun({ run, settings: { ...settings, token: undefined } }),
      /needs a token with write access: set HF_TOKEN/,
    );
    const result = await pushRun({ run, merged: true, settings });
    assert.match(result.repo, /^tester\/model-l0\.005_b12_e1_finetuned-lora-ds-\d{8}-\d{4}$/);
    const files = hub.files("model", result.repo)!;
    assert.deepEqual([...files.keys()].sort(), [
      "README.md",
      "adapter_config.json",
      "adapter_model.safetensors",
      "merged/config.json",
      "merged/model.safetensors",
      "merged/preprocessor_config.json",
      "metrics.jsonl",
      "training_config.json",
    ]);
    for (
      const [name, local] of [
        ["adapter_model.safetensors", "best/adapter_model.safetensors"],
        ["adapter_config.json", "best/adapter_config.json"],
        ["metrics.jsonl", "metrics.jsonl"],
      ]
    ) {
      assert.deepEqual(files.get(name), await Deno.readFile(join(run, local)), name);
    }
    // the run's configuration, with local folders by their last names only
    const uploaded = JSON.parse(new TextDecoder().decode(files.get("training_config.json")));
    const local = JSON.parse(await Deno.readTextFile(join(run, "config.json")));
    assert.equal(uploaded.train.data, basename(local.train.data));
    assert.equal(uploaded.dataset.root, basename(local.dataset.root));
    assert.equal(uploaded.train.model, basename(local.train.model));
    const masked = (c: { train: object; dataset: object }) => ({
      ...c,
      train: { ...c.train, data: 0, model: 0 },
      dataset: { ...c.dataset, root: 0 },
    });
    assert.deepEqual(masked(uploaded), masked(local));
    assert.ok(!new TextDecoder().decode(files.get("README.md")).includes(local.train.data));
    const repo = hub.repos.get(`model:${result.repo}`)!;
    assert.equal(repo.commits.length, 2, "the repo's creation, then one commit");
    assert.equal(repo.refs.get("main"), result.commit);
    const card = new TextDecoder().decode(files.get("README.md"));
    for (const line of ["library_name: peft", "base_model:", "metrics:", "tags:", "license:"]) {
      assert.ok(card.includes(`\n${line}`), line);
    }
    assert.match(card, /PeftModel\.from_pretrained\(base, "tester\//);
    assert.match(card, /In Python, with transformers 5 and PEFT \(checked with transformers 5\.18/);
    assert.match(card, /\| adapter format \| transformers-5 \|/);
    assert.match(card, /\| target modules \| q_proj, v_proj \|/);
    assert.match(card, /loadClassifier\(/);
    assert.match(card, /\| 1 \| \d+\.\d+% \|/);
    // the merged checkpoint is a ViTForImageClassification with the run's labels
    const merged = JSON.parse(new TextDecoder().decode(files.get("merged/config.json")));
    assert.deepEqual(merged.architectures, ["ViTForImageClassification"]);
    assert.deepEqual(Object.values(merged.id2label), [
      "horizontal_stripes",
      "vertical_stripes",
      "checkerboard",
    ]);
    const tensors = await readSafetensors(join(run, "best", "adapter_model.safetensors"));
    assert.ok(tensors.size > 0);
    // a second push to the same repo is another commit, not an error; this one in the seed
    // era's names, written anew from the run's best adapter, with a card to match
    const again = await pushRun({ run, repo: result.repo, settings, peftFormat: "transformers-4" });
    assert.notEqual(again.commit, result.commit);
    const t4 = hub.files("model", result.repo)!;
    const t4Config = JSON.parse(new TextDecoder().decode(t4.get("adapter_config.json")));
    assert.deepEqual(t4Config.target_modules, ["query", "value"]);
    const t4Card = new TextDecoder().decode(t4.get("README.md"));
    assert.match(t4Card, /In Python, with transformers 4\.x and PEFT/);
    assert.match(t4Card, /\| adapter format \| transformers-4 \|/);
    const t4File = join(tmp.path, "t4.safetensors");
    await Deno.writeFile(t4File, t4.get("adapter_model.safetensors")!);
    const t4Tensors = await readSafetensors(t4File);
    assert.deepEqual(
      [...t4Tensors.keys()].filter((k) => k.includes("lora_A")).sort(),
      [...tensors.keys()].filter((k) => k.includes("lora_A")).map((k) =>
        k.replace(
          /vit\.layers\.(\d+)\.attention\.(q|v)_proj/,
          (_, n, w) =>
            `vit.encoder.layer.${n}.attention.attention.${w === "q" ? "query" : "value"}`,
        )
      ).sort(),
    );
  } finally {
    await hub.close();
  }
});
