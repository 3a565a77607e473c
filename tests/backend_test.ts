/** Backend selection, and the tfjs-webgpu fault this module repairs (held against cpu). */

import assert from "node:assert/strict";
import { initBackend, parseBackendName, tf, VitLoraError } from "../mod.ts";

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
