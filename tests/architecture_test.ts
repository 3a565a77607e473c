/** The layout: no import cycle in src/, no folder importing one above it (tasks/check_graph.ts). */

import assert from "node:assert/strict";
import { graphFaults, LAYERS, sourceImports } from "../tasks/check_graph.ts";

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("src/ has no import cycle and no upward import between its folders", async () => {
  const imports = await sourceImports(ROOT);
  assert.ok(imports.length > 100, `${imports.length} imports found`);
  const folders = new Set(imports.map((i) => i.from.split("/")[1]));
  assert.deepEqual([...folders].sort(), [...LAYERS].sort(), "every folder is a known layer");
  assert.deepEqual(graphFaults(imports), []);
});

Deno.test("the graph check finds a cycle and an upward import", () => {
  const faults = graphFaults([
    { from: "src/model/a.ts", to: "src/model/b.ts", typeOnly: false },
    { from: "src/model/b.ts", to: "src/model/a.ts", typeOnly: true },
    { from: "src/core/c.ts", to: "src/training/d.ts", typeOnly: false },
  ]);
  assert.ok(
    faults.some((f) =>
      /import cycle: src\/model\/a\.ts → src\/model\/b\.ts → src\/model\/a\.ts/.test(f)
    ),
  );
  assert.ok(faults.some((f) => /core\/ may not import training\//.test(f)));
});

Deno.test("deno.lock holds the module's packages only: a first run fetches nothing only tests or benchmarks use", async () => {
  const lock = JSON.parse(await Deno.readTextFile(new URL("../deno.lock", import.meta.url)));
  const dev = JSON.parse(await Deno.readTextFile(new URL("../dev.lock", import.meta.url)));
  const module = Object.keys(lock.specifiers).sort();
  assert.ok(module.some((s) => s.startsWith("npm:@tensorflow/tfjs@")), "tfjs is the module's");
  for (const only of ["npm:@huggingface/transformers", "npm:onnxruntime-web", "npm:sharp"]) {
    assert.ok(!module.some((s) => s.startsWith(only)), `${only} is the benchmarks', not in deno.lock`);
  }
  // what tests and benchmarks use besides goes to dev.lock, which has the module's too
  for (const s of module) assert.ok(s in dev.specifiers, `dev.lock lacks ${s}`);
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  for (const task of ["test", "bench", "check"]) {
    assert.match(config.tasks[task], /--lock=dev\.lock/, `deno task ${task} uses dev.lock`);
  }
  // a package whose install scripts Deno would skip with a warning box is denied them outright
  assert.deepEqual(config.allowScripts, { deny: ["npm:onnxruntime-node", "npm:core-js"] });
});
