/** `deno task demo`: offline, with its own permissions, learning well above chance. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { taskPermissions, tempDir } from "../helpers.ts";

Deno.test("the demo runs offline with its own permissions and learns well above chance", async () => {
  await using dir = await tempDir();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...await taskPermissions("demo"),
      new URL("../../tasks/demo.ts", import.meta.url).pathname,
    ],
    cwd: dir.path, // demo-output/ lands here
    env: { VIT_LORA_BACKEND: "cpu", NO_COLOR: "1" },
  }).output();
  const stderr = new TextDecoder().decode(out.stderr),
    stdout = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, stderr);
  const accuracy = Number(/test accuracy +([\d.]+)%/.exec(stderr)?.[1]);
  assert.ok(accuracy >= 80, `test accuracy ${accuracy}% (4 classes: chance is 25%)`);
  assert.match(stdout, /report: .*demo-output\/run\/report\.html/);
  assert.ok((await Deno.stat(join(dir.path, "demo-output", "run", "report.html"))).isFile);
});
