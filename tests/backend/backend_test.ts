/** Backend selection, and the tfjs-webgpu fault this module repairs (held against cpu). */

import assert from "node:assert/strict";
import { initBackend, parseBackendName } from "../../src/backend/backend.ts";
import { VitLoraError } from "../../src/core/errors.ts";
import { readEnv } from "../../src/core/env.ts";
import { tf } from "../../src/core/tf.ts";

Deno.test("WebGPU: an adapter is found and described (CI installs Mesa's when none is)", async () => {
  const info = await initBackend("webgpu", { quiet: true });
  assert.equal(info.name, "webgpu");
  assert.equal(tf.getBackend(), "webgpu");
  assert.ok(info.adapter && info.adapter.length > 0, "adapter description");
  assert.equal(typeof info.software, "boolean");
});

Deno.test("WebGPU: tf.addN of many tensors sums all of them, as on cpu", async () => {
  const sums: Float32Array[] = [];
  for (const backend of ["webgpu", "cpu"] as const) {
    await initBackend(backend, { quiet: true });
    for (const n of [2, 5, 8, 13]) {
      const parts = Array.from({ length: n }, (_, i) => tf.tensor([i + 1, 10 * (i + 1), -i]));
      const sum = tf.addN(parts);
      sums.push(await sum.data() as Float32Array);
      tf.dispose([sum, ...parts]);
    }
  }
  const [gpu, cpu] = [sums.slice(0, 4), sums.slice(4)];
  assert.deepEqual(gpu, cpu);
  assert.deepEqual([...cpu[3]], [91, 910, -78]);
});

Deno.test("backend names are checked", async () => {
  assert.equal(parseBackendName("cpu"), "cpu");
  assert.equal(parseBackendName("wasm"), "wasm");
  assert.throws(() => parseBackendName("webgl"), (e: Error) => {
    assert.ok(e instanceof VitLoraError);
    assert.equal(e.message, "--backend: unknown backend 'webgl' (choose webgpu, wasm, cpu)");
    return true;
  });
  const info = await initBackend("cpu");
  assert.deepEqual(info, { name: "cpu" });
  assert.equal(tf.getBackend(), "cpu");
  // A later call without a name (as loadClassifier makes) keeps the choice.
  assert.deepEqual(await initBackend(), { name: "cpu" });
  assert.equal(tf.getBackend(), "cpu");
});

Deno.test("wasm: transposed, batched and broadcast matMuls (XNNPACK products in our kernel) equal the cpu backend's", async () => {
  const cases: [number[], number[], boolean, boolean][] = [
    [[37, 19], [23, 19], false, true],
    [[19, 37], [19, 23], true, false],
    [[19, 37], [23, 19], true, true],
    [[3, 11, 7], [3, 5, 7], false, true],
    [[3, 7, 11], [3, 7, 5], true, false],
    [[2, 3, 11, 7], [2, 3, 7, 5], false, false],
    [[2, 3, 11, 7], [7, 5], false, false],
    [[11, 7], [4, 7, 5], false, false],
    [[4, 7, 11], [5, 7], true, true],
    [[2, 1, 11, 7], [3, 7, 5], false, false],
  ];
  for (const [sa, sb, ta, tb] of cases) {
    const a = Float32Array.from({ length: sa.reduce((x, y) => x * y) }, (_, i) => Math.sin(i));
    const b = Float32Array.from({ length: sb.reduce((x, y) => x * y) }, (_, i) => Math.cos(i));
    const product = async () => {
      const out = tf.matMul(tf.tensor(a, sa), tf.tensor(b, sb), ta, tb);
      return { shape: out.shape, data: await out.data() };
    };
    await initBackend("cpu");
    const ref = await product();
    await initBackend("wasm");
    const before = tf.memory().numTensors;
    const got = await product();
    assert.equal(tf.memory().numTensors, before + 3, "no transposed copy left behind");
    assert.deepEqual(got.shape, ref.shape);
    for (let i = 0; i < ref.data.length; i++) {
      assert.ok(Math.abs(got.data[i] - ref.data[i]) < 1e-4, `[${sa}]·[${sb}] ${ta}/${tb} at ${i}`);
    }
  }
  await initBackend("cpu");
});

Deno.test("a Deno program that finds a software GPU prints no error line, also without XDG_RUNTIME_DIR", async () => {
  const script = `import { initBackend } from ${
    JSON.stringify(new URL("../../mod.ts", import.meta.url).href)
  }; const info = await initBackend(); console.log(info.name);`;
  // the few variables the child needs, as far as this process may read them
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["HOME", "DENO_WEBGPU_BACKEND", "DENO_DIR"]) {
    const value = readEnv(name);
    if (value) env[name] = value;
  }
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    clearEnv: true, // no XDG_RUNTIME_DIR, as on a server or in a container
    env,
    cwd: new URL("../..", import.meta.url).pathname,
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.match(new TextDecoder().decode(out.stdout), /^(webgpu|wasm)\n$/);
  const errors = stderr.split("\n").filter((line) => /^error:/i.test(line));
  assert.deepEqual(errors, [], "no error line on stderr");
});
