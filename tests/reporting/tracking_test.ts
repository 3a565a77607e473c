/** Weights & Biases tracking, against an imitation of its endpoints on 127.0.0.1. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { writeSyntheticDataset } from "../../src/data/synthetic.ts";
import { reportCallback, trackingCallback } from "../../src/reporting/callbacks.ts";
import { train } from "../../src/training/trainer.ts";
import { FakeWandb } from "./wandb_server.ts";
import { fixture, tempDir, useBackend } from "../helpers.ts";

Deno.test("W&B: --report-to wandb streams config, steps and evaluations (imitation on 127.0.0.1)", async () => {
  await useBackend("cpu");
  await using dir = await tempDir();
  const wandb = await FakeWandb.start();
  const saved = ["WANDB_BASE_URL", "WANDB_API_KEY"].map((n) => [n, Deno.env.get(n)] as const);
  try {
    Deno.env.set("WANDB_BASE_URL", wandb.url);
    Deno.env.set("WANDB_API_KEY", "k".repeat(40));
    const data = join(dir.path, "data");
    await writeSyntheticDataset(data, { classes: 3, trainPerClass: 8, validationPerClass: 6 });
    const result = await train({
      model: `${fixture("vit-tiny-a")}/model`,
      data,
      out: join(dir.path, "run"),
      epochs: 2,
      batchSize: 8,
      gradAccum: 1,
      loraR: 4,
      backend: "cpu",
      workers: 0,
      progress: false,
      callbacks: [reportCallback(), trackingCallback(["wandb"])],
    });
    assert.ok(wandb.complete, "the run was finished");
    assert.ok(wandb.keys.has("k".repeat(40)));
    const config = JSON.parse(String(wandb.upserts[0].config));
    assert.equal(config.lr?.value ?? config.lr, 0.005);
    const losses = wandb.history.filter((h) => "train/loss" in h);
    assert.equal(losses.length, result.steps);
    const accuracies = wandb.history.filter((h) => "validation/accuracy" in h);
    assert.equal(accuracies.length, 2);
    assert.ok(wandb.history.some((h) => "test/accuracy" in h));
  } finally {
    for (const [n, v] of saved) v === undefined ? Deno.env.delete(n) : Deno.env.set(n, v);
    await wandb.close();
  }
});
