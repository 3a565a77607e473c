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
