/**
 * The whole suite in one isolate: `deno task test` runs this file only.
 *
 * Deno runs each test module in an isolate of its own, and each isolate that uses WebGPU
 * opens a GPU device of its own; with four or more of them in one process, Deno 2.9's
 * wgpu + Mesa teardown corrupts the heap at exit now and then (an abort after every test
 * passed, seen here in 1 run of 4). Importing every test module here keeps to one device.
 * Each module still runs alone: `deno test -A tests/model/parity_test.ts`. The folders mirror
 * `src/`'s.
 */

import assert from "node:assert/strict";
import "./architecture_test.ts";
import "./backend/backend_test.ts";
import "./backend/blas_test.ts";
import "./model/checkpoint_test.ts";
import "./model/config_test.ts";
import "./engines/exit_test.ts";
import "./data/augment_test.ts";
import "./data/data_test.ts";
import "./model/hf5_test.ts";
import "./engines/ort_test.ts";
import "./onnx/export_test.ts";
import "./onnx/export_task_test.ts";
import "./onnx/transformersjs_test.ts";
import "./hub/hub_test.ts";
import "./readme_test.ts";
import "./data/image_test.ts";
import "./data/imagefolder_test.ts";
import "./backend/kernels_test.ts";
import "./backend/f16_test.ts";
import "./backend/f16_model_test.ts";
import "./backend/optimizer_kernels_test.ts";
import "./training/memory_test.ts";
import "./training/grad_scaler_test.ts";
import "./model/parity_test.ts";
import "./engines/replicas_test.ts";
import "./eval/results_test.ts";
import "./eval/shard_test.ts";
import "./reporting/push_test.ts";
import "./reporting/report_test.ts";
import "./reporting/tracking_test.ts";
import "./tasks/demo_test.ts";
import "./model/safetensors_test.ts";
import "./training/gpu_work_test.ts";
import "./training/train_test.ts";
import "./training/early_stopping_test.ts";
import "./training/label_smoothing_test.ts";
import "./training/recorder_test.ts";
import "./training/own_images_test.ts";
import "./web/web_test.ts";
import "./docs_test.ts";

Deno.test("every test module of tests/ is imported above", async () => {
  const self = await Deno.readTextFile(new URL(import.meta.url));
  const walk = async (dir: URL, prefix: string): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory && entry.name !== "fixtures" && entry.name !== "reference") {
        await walk(new URL(`${entry.name}/`, dir), `${prefix}${entry.name}/`);
      } else if (entry.name.endsWith("_test.ts") && entry.name !== "all_test.ts") {
        const path = `${prefix}${entry.name}`;
        assert.ok(
          self.includes(`import "./${path}";`),
          `tests/${path} is not imported by tests/all_test.ts`,
        );
      }
    }
  };
  await walk(new URL(".", import.meta.url), "");
});
