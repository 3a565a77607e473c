/**
 * The Hub, against an imitation of it on 127.0.0.1 (`hub_server.ts`): downloads into a cache
 * laid out like Python's, cache hits with no request, resume, corruption, 401/404, offline
 * mode, pushing a run, and the tasks end to end with only Hub ids.
 */

import assert from "node:assert/strict";
import { openDataset } from "../../src/hub/dataset.ts";
import { planSplits } from "../../src/data/splits.ts";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { tf } from "../../src/core/tf.ts";
import { openParquetDataset } from "../../src/data/parquet.ts";
import { downloadDataset, downloadModel, hubFile } from "../../src/hub/hub.ts";
import { hubSettings } from "../../src/hub/settings.ts";
import { isRepoId } from "../../src/hub/ids.ts";
import { repoCacheDir } from "../../src/hub/cache.ts";
import { loadClassifier } from "../../src/model/loading.ts";
import { setup } from "./hub_fixture.ts";
import { expected, fixture, inputs, taskPermissions, tempDir, useBackend } from "../helpers.ts";

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const gitOid = (b: Uint8Array) =>
  createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");

Deno.test("hub: a model and a dataset land in a cache laid out like Python's, and load from it", async () => {
  await using tmp = await tempDir();
  const { hub, settings } = await setup(tmp.path);
  try {
    const dir = await downloadModel("acme/vit-tiny", { settings, progress: false });
    const storage = repoCacheDir(settings, { type: "model", id: "acme/vit-tiny" });
    assert.equal(storage, join(tmp.path, "cache", "models--acme--vit-tiny"));
    const commit = (await Deno.readTextFile(join(storage, "refs", "main"))).trim();
    assert.equal(dir, join(storage, "snapshots", commit));
    const weights = await Deno.readFile(`${fixture("vit-tiny-a")}/model/model.safetensors`);
    const config = await Deno.readFile(`${fixture("vit-tiny-a")}/model/config.json`);
    // blobs named by sha256 (LFS files) and git oid (small files); snapshots are relative links
    assert.deepEqual(await Deno.readFile(join(storage, "blobs", sha256(weights))), weights);
    assert.deepEqual(await Deno.readFile(join(storage, "blobs", gitOid(config))), config);
    assert.equal(
      await Deno.readLink(join(dir, "model.safetensors")),
      join("..", "..", "blobs", sha256(weights)),
    );

    const data = await downloadDataset("acme/patterns", { settings, progress: false });
    assert.match(data, /datasets--acme--patterns\/snapshots\/[0-9a-f]{40}$/);
    const parquet = await openParquetDataset(data);
    assert.equal(parquet.size("train"), 36);
    assert.equal(parquet.size("validation"), 18);
    assert.ok(
      !(await Deno.stat(join(data, "README.md")).catch(() => undefined)),
      "only the shards",
    );
    assert.ok(
      hub.requests.some((r) => r.includes("/tree/main") && r.startsWith("GET /api/datasets")),
    );

    // the model by Hub id (from the cache now) equals the fixture folder's
    await useBackend("cpu");
    const { pixels } = inputs(await expected("vit-tiny-a"));
    const adapter = `${fixture("vit-tiny-a")}/adapter`;
    const byId = await loadClassifier("acme/vit-tiny", { adapter, progress: false, hub: settings });
    const byFolder = await loadClassifier(`${fixture("vit-tiny-a")}/model`, { adapter });
    const [a, b] = [byId.logits(pixels), byFolder.logits(pixels)];
    assert.deepEqual(await a.data(), await b.data());
    assert.equal(byId.baseModel, "acme/vit-tiny", "the adapter will name the Hub id");
    tf.dispose([a, b, pixels]);
    byId.dispose();
    byFolder.dispose();
  } finally {
    await hub.close();
  }
});

Deno.test("hub: a dataset with a train split only (and a test split): its shards are downloaded and its validation carved out of train", async () => {
  await using tmp = await tempDir();
  const { hub, settings } = await setup(tmp.path);
  try {
    const files = hub.files("dataset", "acme/patterns")!;
    const only: Record<string, Uint8Array> = {};
    for (const [path, bytes] of files) if (!path.includes("validation")) only[path] = bytes;
    // the train shards again, named as a test split
    for (const [path, bytes] of files) {
      if (path.includes("train-")) only[path.replace("train-", "test-")] = bytes;
    }
    hub.addRepo("dataset", "acme/train-and-test", only);
    const data = await openDataset("acme/train-and-test", { settings, progress: false });
    assert.deepEqual(Object.keys(data.sizes).sort(), ["test", "train"]);
    const splits = planSplits(data.sizes, {
      seed: 42,
      validationFraction: 0.15,
      testFraction: 0.3,
    });
    assert.equal(splits.validation.source, "train", "validation carved out of train");
    assert.equal(splits.validation.indices?.length, Math.round(0.15 * data.sizes.train));
    assert.deepEqual(splits.test, { source: "test" }, "the dataset's own test split, whole");
  } finally {
    await hub.close();
  }
});

Deno.test("hub: a second load is served from the cache with no request; offline mode uses only the cache", async () => {
  await using tmp = await tempDir();
  const { hub, settings } = await setup(tmp.path);
  try {
    const first = await downloadModel("acme/vit-tiny", { settings, progress: false });
    const data = await downloadDataset("acme/patterns", { settings, progress: false });
    const n = hub.requests.length;
    assert.equal(await downloadModel("acme/vit-tiny", { settings, progress: false }), first);
    assert.equal(await downloadDataset("acme/patterns", { settings, progress: false }), data);
    const offline = { ...settings, offline: true };
    assert.equal(await downloadModel("acme/vit-tiny", { settings: offline }), first);
    assert.equal(hub.requests.length, n, "no request");

    const empty = { ...offline, cacheDir: join(tmp.path, "empty") };
    await assert.rejects(
      () => downloadModel("acme/vit-tiny", { settings: empty }),
      /acme\/vit-tiny\/config\.json \(revision main\) is not in the cache .*HF_HUB_OFFLINE=1/,
    );
    await assert.rejects(
      () => downloadDataset("acme/patterns", { settings: empty }),
      /dataset acme\/patterns: its shards are not in the cache/,
    );
    assert.equal(hub.requests.length, n, "still no request");
  } finally {
    await hub.close();
  }
});

Deno.test("hub: an interrupted download resumes where it stopped; a corrupted one is detected and deleted", async () => {
  await using tmp = await tempDir();
  const { hub, settings } = await setup(tmp.path);
  try {
    const weights = await Deno.readFile(`${fixture("vit-tiny-a")}/model/model.safetensors`);
    const repo = { type: "model" as const, id: "acme/vit-tiny" };
    hub.cutAfter = 100_000;
    await assert.rejects(
      () => hubFile(repo, "model.safetensors", { settings, progress: false }),
      /broke off after 100\.0 kB .*run again to resume it/,
    );
    const blob = join(repoCacheDir(settings, repo), "blobs", sha256(weights));
    assert.equal((await Deno.stat(`${blob}.incomplete`)).size, 100_000);
    const path = await hubFile(repo, "model.safetensors", { settings, progress: false });
    assert.deepEqual(await Deno.readFile(path!), weights);
    assert.ok(hub.ranges.includes("bytes=100000-"), `ranges asked: ${hub.ranges}`);

    const adapter = await Deno.readFile(
      `${fixture("vit-tiny-a")}/adapter/adapter_model.safetensors`,
    );
    hub.corrupt.add(sha256(adapter));
    const adapterRepo = { type: "model" as const, id: "acme/vit-tiny-adapter" };
    await assert.rejects(
      () => hubFile(adapterRepo, "adapter_model.safetensors", { settings, progress: false }),
      /adapter_model\.safetensors: the downloaded file is corrupt \(sha256 [0-9a-f]{64}, not the [0-9a-f]{64} the Hub reports\); it was deleted/,
    );
    const blobs = [...Deno.readDirSync(join(repoCacheDir(settings, adapterRepo), "blobs"))].map((
      e,
    ) => e.name);
    assert.ok(!blobs.some((b) => b.startsWith(sha256(adapter))), `left: ${blobs}`);
    hub.corrupt.clear();
    assert.ok(
      await hubFile(adapterRepo, "adapter_model.safetensors", { settings, progress: false }),
    );
  } finally {
    await hub.close();
  }
});

Deno.test("hub: 401 names HF_TOKEN; 404 names the repo, revision or file; pytorch_model.bin alone is refused", async () => {
  await using tmp = await tempDir();
  const { hub, settings } = await setup(tmp.path);
  try {
    const anonymous = { ...settings, token: undefined, tokenSource: undefined };
    await assert.rejects(
      () => downloadModel("acme/vit-tiny", { settings: anonymous }),
      /acme\/vit-tiny: 401 .*private or gated; set HF_TOKEN/,
    );
    await assert.rejects(
      () => downloadModel("acme/vit-tiny", { settings: { ...settings, token: "hf_wrong" } }),
      /the token from HF_TOKEN is not allowed to read it/,
    );
    await assert.rejects(
      () => downloadModel("acme/missing", { settings }),
      /acme\/missing: not found on http:\/\/127\.0\.0\.1:\d+ \(looking for config\.json at revision main\)/,
    );
    await assert.rejects(
      () => downloadModel("acme/vit-tiny", { settings, revision: "v9" }),
      /acme\/vit-tiny: no revision "v9"/,
    );
    await assert.rejects(
      () => hubFile({ type: "model", id: "acme/vit-tiny" }, "nope.json", { settings }),
      /acme\/vit-tiny@main: no file nope\.json/,
    );
    await assert.rejects(
      () => downloadModel("acme/only-bin", { settings }),
      /acme\/only-bin: the repository has only pytorch_model\.bin .*needs model\.safetensors/,
    );
    await assert.rejects(
      () => downloadDataset("acme/vit-tiny-adapter", { settings }),
      /dataset acme\/vit-tiny-adapter: not found/,
    );
  } finally {
    await hub.close();
  }
});

Deno.test("hub: settings from the environment as huggingface_hub reads them; repo ids", () => {
  const names = [
    "HF_ENDPOINT",
    "HF_TOKEN",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HF_HUB_OFFLINE",
    "HF_TOKEN_PATH",
  ];
  const saved = Object.fromEntries(names.map((n) => [n, Deno.env.get(n)]));
  try {
    for (const n of names) Deno.env.delete(n);
    Deno.env.set("HF_HOME", "/x/hf");
    Deno.env.set("HF_TOKEN_PATH", "/nonexistent/token");
    let s = hubSettings();
    assert.equal(s.endpoint, "https://huggingface.co");
    assert.equal(s.cacheDir, "/x/hf/hub");
    assert.equal(s.token, undefined);
    assert.equal(s.offline, false);
    Deno.env.set("HF_HUB_CACHE", "/y/cache");
    Deno.env.set("HF_ENDPOINT", "http://mirror.example/");
    Deno.env.set("HF_TOKEN", "hf_abc");
    Deno.env.set("HF_HUB_OFFLINE", "1");
    s = hubSettings();
    assert.deepEqual(s, {
      endpoint: "http://mirror.example",
      token: "hf_abc",
      tokenSource: "HF_TOKEN",
      cacheDir: "/y/cache",
      offline: true,
    });
  } finally {
    for (const n of names) saved[n] === undefined ? Deno.env.delete(n) : Deno.env.set(n, saved[n]!);
  }
  assert.ok(isRepoId("google/vit-base-patch16-224-in21k"));
  assert.ok(isRepoId("ethz/food101@refs/convert/parquet"));
  assert.ok(!isRepoId("./models/vit"));
  assert.ok(!isRepoId("/abs/path"));
  assert.ok(!isRepoId("a/b/c"));
});

Deno.test("tasks end to end with only Hub ids: train, train again offline, push; no token fails naming HF_TOKEN", async () => {
  await using tmp = await tempDir();
  const { hub } = await setup(tmp.path);
  try {
    hub.repos.get("dataset:acme/patterns")!.private = true;
    const port = new URL(hub.url).port;
    const run = async (task: string, args: string[], env: Record<string, string> = {}) => {
      // the task's own permissions from deno.json, plus the imitation's address
      const permissions = await taskPermissions(task);
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", ...permissions, `--allow-net=127.0.0.1:${port}`, `tasks/${task}.ts`, ...args],
        cwd: new URL("../..", import.meta.url).pathname,
        env: {
          HF_ENDPOINT: hub.url,
          HF_HOME: join(tmp.path, "hf"),
          HF_TOKEN: hub.token,
          VIT_LORA_BACKEND: "cpu",
          NO_COLOR: "1",
          ...env,
        },
      }).output();
      return {
        code: out.code,
        stderr: new TextDecoder().decode(out.stderr),
        stdout: new TextDecoder().decode(out.stdout),
      };
    };
    const flags = [
      "--epochs",
      "1",
      "--batch-size",
      "12",
      "--grad-accum",
      "1",
      "--lora-r",
      "4",
      "--workers",
      "1",
    ];
    const first = await run("train", [
      "--model",
      "acme/vit-tiny",
      "--data",
      "acme/patterns",
      ...flags,
      "--out",
      join(tmp.path, "run"),
    ]);
    assert.equal(first.code, 0, first.stderr);
    assert.ok(
      (await Deno.stat(join(tmp.path, "hf", "hub", "models--acme--vit-tiny", "refs", "main")))
        .isFile,
    );
    assert.ok(
      (await Deno.stat(join(tmp.path, "hf", "hub", "datasets--acme--patterns", "refs", "main")))
        .isFile,
    );

    const n = hub.requests.length;
    const offline = await run("train", [
      "--model",
      "acme/vit-tiny",
      "--data",
      "acme/patterns",
      ...flags,
      "--out",
      join(tmp.path, "run2"),
    ], { HF_HUB_OFFLINE: "1" });
    assert.equal(offline.code, 0, offline.stderr);
    assert.equal(hub.requests.length, n, "offline: no request");

    const pushed = await run("push", [
      "--run",
      join(tmp.path, "run"),
      "--repo",
      "tester/food-lora",
    ]);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.ok(hub.files("model", "tester/food-lora")?.has("adapter_model.safetensors"));

    const anonymous = await run("train", [
      "--model",
      "acme/vit-tiny",
      "--data",
      "acme/patterns",
      ...flags,
      "--out",
      join(tmp.path, "run3"),
    ], { HF_TOKEN: "", HF_HOME: join(tmp.path, "hf-empty") });
    assert.equal(anonymous.code, 1);
    assert.match(anonymous.stderr, /^error: .*401.*set HF_TOKEN/m);
    const noTokenPush = await run("train", [
      "--model",
      "acme/vit-tiny",
      "--data",
      "acme/patterns",
      "--push-to-hub",
      ...flags,
    ], { HF_TOKEN: "" });
    assert.equal(noTokenPush.code, 1);
    assert.match(
      noTokenPush.stderr,
      /^error: --push-to-hub needs a token with write access: set HF_TOKEN/m,
    );
  } finally {
    await hub.close();
  }
});
