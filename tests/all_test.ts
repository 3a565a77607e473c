/**
 * The whole suite in one isolate: `deno task test` runs this file only.
 *
 * Deno runs each test module in an isolate of its own, and each isolate that uses WebGPU
 * opens a GPU device of its own; with four or more of them in one process, Deno 2.9's
 * wgpu + Mesa teardown corrupts the heap at exit now and then (an abort after every test
 * passed, seen here in 1 run of 4). Importing every test module here keeps to one device.
 * Each module still runs alone: `deno test -A tests/parity_test.ts`.
 */

import "./backend_test.ts";
import "./checkpoint_test.ts";
import "./config_test.ts";
import "./data_test.ts";
import "./hf5_test.ts";
import "./hub_test.ts";
import "./image_test.ts";
import "./kernels_test.ts";
import "./memory_test.ts";
import "./parity_test.ts";
import "./replicas_test.ts";
import "./results_test.ts";
import "./safetensors_test.ts";
import "./train_test.ts";

Deno.test("every test module of tests/ is imported above", async () => {
  const self = await Deno.readTextFile(new URL(import.meta.url));
  for await (const entry of Deno.readDir(new URL(".", import.meta.url))) {
    if (!entry.name.endsWith("_test.ts") || entry.name === "all_test.ts") continue;
    if (!self.includes(`import "./${entry.name}";`)) {
      throw new Error(`tests/${entry.name} is not imported by tests/all_test.ts`);
    }
  }
});
