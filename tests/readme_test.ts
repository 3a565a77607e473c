/**
 * The README is true: its tables of options are the ones the commands are parsed with, each
 * task's `--help` is made from the same tables, and every command it shows runs as written.
 *
 * The commands run in a copy of the project (the same `src/`, `tasks/` and `deno.json`, in
 * `$HOME/vit-lora`) where the paths they name exist (`photos/`, `dish.jpg`, `other.png`,
 * `models/vit-base-patch16-224-in21k`, `datasets/food101`) and the Hugging Face Hub is an
 * imitation on 127.0.0.1 (`HF_ENDPOINT`) that serves tiny stand-ins under the real ids
 * (`google/vit-base-patch16-224-in21k` is a 2-layer ViT, `ethz/food101` a generated dataset of
 * four classes), so that the reference recipe's commands run in seconds. The copy's `deno.json`
 * differs from the real one in two ways only: its tasks may also reach 127.0.0.1, and
 * `jsr:@lora/vit` maps to the copy's own files. Each `sh` block runs in bash with `-e`, in order
 * (later blocks use the runs earlier ones made), and must exit 0 with no `error:` line. Three
 * things are not run: `deno task test` (this suite), `sbatch` (no Slurm here: the array script
 * it submits is run once for each index instead) and `deno task web`, which serves until
 * stopped (it is started, its page fetched, then stopped).
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { flagText } from "../src/core/options.ts";
import { helpOf } from "../tasks/cli.ts";
import { README_COMMANDS, withOptionTables } from "../tasks/readme.ts";
import { writeSyntheticDataset } from "../src/data/synthetic.ts";
import { FakeHub } from "./hub/hub_server.ts";
import { copyTree, fixture, folderFiles, taskPermissions, tempDir } from "./helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const README = await Deno.readTextFile(join(ROOT, "README.md"));

Deno.test("README: its tables of options are made from the tables the commands are parsed with", () => {
  assert.equal(withOptionTables(README), README, "stale: run deno task readme");
  for (const name of ["train", "eval", "predict"]) {
    assert.ok(README.includes(`<!-- options: ${name} -->`), `README lists ${name}'s options`);
  }
});

Deno.test("every task's --help is made from its option table", async () => {
  for (const [name, command] of Object.entries(README_COMMANDS)) {
    const task = name === "eval" ? "eval" : name;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...await taskPermissions(task), `tasks/${task}.ts`, "--help"],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const help = helpOf(command as Parameters<typeof helpOf>[0]);
    assert.equal(new TextDecoder().decode(out.stdout), help + "\n", `deno task ${name} --help`);
    for (const spec of Object.values(command.schema)) {
      if (!spec.libraryOnly) assert.ok(help.includes(flagText(spec)), `${name}: ${flagText(spec)}`);
    }
  }
});

/** The README's `sh` blocks, in order. */
function shellBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```sh\n([\s\S]*?)^```/gm)].map((m) => m[1]);
}

/** The project's copy with the files the README's commands name; returns its folder. */
async function sandbox(home: string, hub: FakeHub): Promise<string> {
  const repo = join(home, "vit-lora");
  await Deno.mkdir(repo, { recursive: true });
  for (const dir of ["src", "tasks"]) await Deno.symlink(join(ROOT, dir), join(repo, dir));
  for (const file of ["mod.ts", "deno.lock", "LICENSE"]) {
    await Deno.copyFile(join(ROOT, file), join(repo, file));
  }
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  for (const [name, line] of Object.entries(config.tasks as Record<string, string>)) {
    config.tasks[name] = line.replace(
      /--allow-net=(\S+)/,
      (_, hosts) => `--allow-net=${hosts},127.0.0.1`,
    );
  }
  config.imports["jsr:@lora/vit"] = "./mod.ts";
  for (const entry of Object.keys(config.exports).filter((e) => e !== ".")) {
    config.imports[`jsr:@lora/vit/${entry.slice(2)}`] = config.exports[entry];
  }
  await Deno.writeTextFile(join(repo, "deno.json"), JSON.stringify(config, null, 2));
  // the files and folders the commands name
  const own = fixture("own-images");
  await copyTree(join(own, "folder"), join(repo, "photos"));
  await Deno.copyFile(join(own, "folder", "test", "cat", "cat_1.jpg"), join(repo, "dish.jpg"));
  await Deno.copyFile(join(own, "png", "rgb8.png"), join(repo, "other.png"));
  await copyTree(
    join(fixture("vit-tiny-a"), "model"),
    join(repo, "models/vit-base-patch16-224-in21k"),
  );
  await writeSyntheticDataset(join(repo, "datasets/food101"), {
    classes: 4,
    trainPerClass: 16,
    validationPerClass: 10,
  });
  // the Hub: tiny stand-ins under the real ids, and a mirror's
  const model = await folderFiles(join(fixture("vit-tiny-a"), "model"));
  for (const id of ["google/vit-base-patch16-224-in21k", "acme/vit"]) {
    hub.addRepo("model", id, model);
  }
  const data = await folderFiles(join(repo, "datasets/food101"));
  for (const id of ["ethz/food101", "acme/photos"]) hub.addRepo("dataset", id, data);
  return repo;
}

/** A block with the lines that are not run here taken out (each named in the module doc). */
function runnable(block: string): { script: string; skipped: string[] } {
  const skipped: string[] = [];
  const lines = block.split("\n").map((line) => {
    if (
      /^\s*deno task test\b/.test(line) || /\bsbatch\b/.test(line) ||
      /^\s*deno task web\b/.test(line)
    ) {
      skipped.push(line.trim());
      return ":";
    }
    return line;
  });
  return { script: lines.join("\n"), skipped };
}

Deno.test({
  name: "README: every command it shows runs as written (a Hub imitation stands in for the Hub)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using tmp = await tempDir();
    const home = join(tmp.path, "home");
    const hub = await FakeHub.start();
    const mirror = await FakeHub.start(8765); // the README's mirror example's address
    hub.token = mirror.token = "hf_yourtoken";
    hub.user = mirror.user = "you";
    try {
      const repo = await sandbox(home, hub);
      const model = await folderFiles(join(fixture("vit-tiny-a"), "model"));
      mirror.addRepo("model", "acme/vit", model);
      mirror.addRepo("dataset", "acme/photos", await folderFiles(join(repo, "datasets/food101")));
      const env: Record<string, string> = {
        HOME: home,
        PATH: `${dirname(Deno.execPath())}:/usr/bin:/bin`,
        HF_ENDPOINT: hub.url,
        NO_COLOR: "1",
      };
      for (const name of ["XDG_RUNTIME_DIR", "DENO_WEBGPU_BACKEND"]) {
        const value = Deno.env.get(name);
        if (value) env[name] = value;
      }
      // this process's Deno cache (HOME moves, and the default cache with it)
      const info = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output();
      env.DENO_DIR = JSON.parse(new TextDecoder().decode(info.stdout)).denoDir;
      const blocks = shellBlocks(README);
      assert.ok(blocks.length >= 8, `${blocks.length} sh blocks`);
      const run = async (script: string, extra: Record<string, string> = {}) => {
        const out = await new Deno.Command("bash", {
          args: ["-e", "-o", "pipefail", "-c", script],
          cwd: repo,
          env: { ...env, ...extra },
          clearEnv: true,
        }).output();
        const stderr = new TextDecoder().decode(out.stderr);
        assert.equal(out.code, 0, `this README block failed:\n${script}\n--- stderr:\n${stderr}`);
        const errors = stderr.split("\n").filter((l) => /^error:/i.test(l));
        assert.deepEqual(errors, [], `error lines from:\n${script}`);
        assert.doesNotMatch(stderr, /╭ Warning/, `a warning box from:\n${script}`);
      };
      let web = 0;
      for (const block of blocks) {
        const { script, skipped } = runnable(block);
        if (/^#!\/bin\/sh/.test(block) && /#SBATCH --array=0-(\d+)/.test(block)) {
          // the array script sbatch would run: once for each index
          const last = Number(/#SBATCH --array=0-(\d+)/.exec(block)![1]);
          for (let i = 0; i <= last; i++) await run(block, { SLURM_ARRAY_TASK_ID: String(i) });
          continue;
        }
        await run(script);
        if (skipped.some((l) => l.startsWith("deno task web"))) web++;
      }
      assert.equal(web, 1, "the README shows deno task web once");
      // deno task web serves until stopped: start it, fetch its page, stop it
      const server = new Deno.Command("bash", {
        args: ["-c", "exec deno task web --port 0"],
        cwd: repo,
        env,
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      const deadline = Date.now() + 120_000;
      while (!/serving .* at (http:\S+)/.test(text) && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
      const url = /serving .* at (http:\S+)/.exec(text)?.[1];
      assert.ok(url, `deno task web did not start serving:\n${text}`);
      const page = await fetch(url);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<html/i);
      server.kill("SIGTERM");
      await reader.cancel();
      await server.status;
      await server.stderr.cancel();
    } finally {
      await hub.close();
      await mirror.close();
    }
  },
});
