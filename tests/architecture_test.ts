/** The layout: no import cycle in src/, no folder importing one above it (tasks/check_graph.ts). */

import assert from "node:assert/strict";
import {
  browserFaults,
  graphFaults,
  LAYERS,
  lengthFaults,
  MAX_LINES,
  sourceImports,
  stripComments,
} from "../tasks/check_graph.ts";

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
    assert.ok(
      !module.some((s) => s.startsWith(only)),
      `${only} is the benchmarks', not in deno.lock`,
    );
  }
  // what tests and benchmarks use besides goes to dev.lock, which has the module's too
  for (const s of module) assert.ok(s in dev.specifiers, `dev.lock lacks ${s}`);
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  for (const task of ["test", "bench", "check"]) {
    assert.match(config.tasks[task], /--lock=dev\.lock/, `deno task ${task} uses dev.lock`);
  }
  // graphql as @wandb/sdk and graphql-request ask for it (else Deno warns of a peer dependency)
  for (const l of [lock, dev]) {
    assert.ok(Object.keys(l.npm).some((p) => p.startsWith("graphql@16.")), "graphql 16");
    assert.ok(!Object.keys(l.npm).some((p) => p.startsWith("graphql@17.")), "no graphql 17");
  }
  // a package whose install scripts Deno would skip with a warning box is denied them outright
  assert.deepEqual(config.allowScripts, {
    deny: ["npm:onnxruntime-node", "npm:core-js", "npm:protobufjs"],
  });
});

Deno.test("the graph check sees side-effect, dynamic and worker imports, the browser entry's Deno and node: uses, and long files", async () => {
  const root = await Deno.makeTempDir();
  try {
    const write = async (path: string, text: string) => {
      await Deno.mkdir(`${root}/${path.split("/").slice(0, -1).join("/")}`, { recursive: true });
      await Deno.writeTextFile(`${root}/${path}`, text);
    };
    await write("src/core/a.ts", 'import "../training/t.ts";\nexport const a = 1;\n');
    await write("src/core/b.ts", 'export const b = () => import("../eval/e.ts");\n');
    await write("src/training/t.ts", "export const t = 1;\n");
    await write("src/eval/e.ts", "export const e = 1;\n");
    await write(
      "src/web/mod.ts",
      'import { d } from "../data/d.ts";\nimport type { x } from "../data/x.ts";\nexport { d };\n',
    );
    await write("src/web/page/app.ts", "// Deno.exit(1) in a comment is no use of Deno\n");
    await write(
      "src/data/d.ts",
      'import { join } from "node:path";\nexport const d = join("a");\n',
    );
    await write("src/data/x.ts", "export type x = number;\nDeno.exit(1);\n");
    await write("src/model/long.ts", "// a line\n".repeat(MAX_LINES + 1));
    const imports = await sourceImports(root);
    const faults = graphFaults(imports);
    assert.ok(
      faults.some((f) => /src\/core\/a\.ts imports src\/training\/t\.ts/.test(f)),
      "side effect",
    );
    assert.ok(faults.some((f) => /src\/core\/b\.ts imports src\/eval\/e\.ts/.test(f)), "dynamic");
    const browser = await browserFaults(root, imports);
    assert.deepEqual(browser, [
      "src/data/d.ts imports node:path but the browser entry loads it (loaded by src/web/mod.ts)",
    ], "x.ts is imported for a type only (erased); comments do not count");
    assert.deepEqual(await lengthFaults(root), [
      `src/model/long.ts: ${MAX_LINES + 1} lines (at most ${MAX_LINES})`,
    ]);
    assert.equal(
      stripComments('const u = "http://x"; // note\n/* block */'),
      'const u = "http://x"; \n',
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
