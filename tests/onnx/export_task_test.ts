/**
 * `deno task export` (tasks/export.ts), run as the task runs it: a run folder becomes the
 * transformers.js folder (RUN/onnx by default); bad input is one `error:` line and exit
 * status 1 — a run without an adapter, an unknown dtype, an out folder that cannot be written
 * or holds something else — and leaves no folder behind.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fixture, tempDir } from "../helpers.ts";

const TASK = new URL("../../tasks/export.ts", import.meta.url).pathname;

/** The task's exit status and standard error. */
async function exportTask(...args: string[]): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", "--allow-read", "--allow-write", "--allow-env", TASK, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

/** A run folder of vit-tiny-a: its config and (unless `adapter` is false) its best adapter. */
async function fakeRun(dir: string, adapter = true): Promise<string> {
  const labels = Array.from({ length: 7 }, (_, i) => `dish ${i}`);
  await Deno.mkdir(dir, { recursive: true });
  const config = { train: { model: join(fixture("vit-tiny-a"), "model") }, dataset: { labels } };
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(config));
  if (adapter) {
    await Deno.mkdir(join(dir, "best"));
    for (const f of ["adapter_config.json", "adapter_model.safetensors"]) {
      await Deno.copyFile(join(fixture("vit-tiny-a"), "adapter", f), join(dir, "best", f));
    }
  }
  return dir;
}

const errorLines = (stderr: string) => stderr.split("\n").filter((l) => l.startsWith("error:"));

Deno.test("deno task export: a run becomes RUN/onnx with the dtypes asked for, class names from the run", async () => {
  await using tmp = await tempDir();
  const run = await fakeRun(join(tmp.path, "run"));
  const { code, stderr } = await exportTask("--run", run, "--dtype", "fp32,q8");
  assert.equal(code, 0, stderr);
  assert.match(stderr, /^written: .*run\/onnx \(onnx\/model\.onnx .* MB, onnx\/model_quantized/m);
  const names = (await Array.fromAsync(Deno.readDir(join(run, "onnx", "onnx")))).map((e) => e.name);
  assert.deepEqual(names.sort(), ["model.onnx", "model_quantized.onnx"]);
  const config = JSON.parse(await Deno.readTextFile(join(run, "onnx", "config.json")));
  assert.equal(config.id2label["3"], "dish 3");
});

Deno.test("deno task export: bad input is one error line and exit 1, nothing written", async () => {
  await using tmp = await tempDir();
  const run = await fakeRun(join(tmp.path, "run"));
  const bare = await fakeRun(join(tmp.path, "bare"), false);
  const blocker = join(tmp.path, "a-file");
  await Deno.writeTextFile(blocker, "");
  const cases: [string[], RegExp][] = [
    [["--run", bare], /^error: .*bare\/best: no adapter there/],
    [
      ["--run", run, "--dtype", "fp32,int4"],
      /^error: --dtype must be a list of fp32, fp16, q8, not "int4"$/,
    ],
    [["--run", run, "--out", join(blocker, "out")], /^error: .*a-file\/out: cannot write: /],
    [["--run", run, "--out", fixture("vit-tiny-a")], /exists and is not an exported model folder/],
    [["--model", join(fixture("vit-tiny-a"), "model")], /^error: --out DIR: /],
  ];
  for (const [args, pattern] of cases) {
    const { code, stderr } = await exportTask(...args);
    assert.equal(code, 1, `${args.join(" ")}: ${stderr}`);
    const lines = errorLines(stderr);
    assert.equal(lines.length, 1, stderr);
    assert.match(lines[0], pattern);
    assert.ok(!stderr.includes("    at "), `no stack trace: ${stderr}`);
  }
  const left = (await Array.fromAsync(Deno.readDir(tmp.path))).map((e) => e.name).sort();
  assert.deepEqual(left, ["a-file", "bare", "run"]);
  assert.deepEqual((await Array.fromAsync(Deno.readDir(run))).map((e) => e.name).sort(), [
    "best",
    "config.json",
  ]);
});
