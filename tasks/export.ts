/**
 * `deno task export --run RUN [--out DIR] [--dtype fp32,fp16,q8]` (or `--model M --adapter A
 * --out DIR`): the fine-tuned classifier, LoRA merged, as the model folder transformers.js loads
 * (`config.json`, `preprocessor_config.json`, `README.md`, `onnx/model.onnx`,
 * `onnx/model_fp16.onnx`, `onnx/model_quantized.onnx`), written whole or not at all.
 *
 * @module
 */

import { join } from "node:path";
import { parseBackendName, readRunConfig, VitLoraError } from "../mod.ts";
import { exists } from "../src/core/files.ts";
import { loadClassifier } from "../src/model/loading.ts";
import { exportOnnx, parseOnnxDtypes } from "../src/onnx/export.ts";
import { ONNX_FILES } from "../src/onnx/folder.ts";
import { checkOnnxFolder, writeOnnxFolder } from "../src/onnx/write.ts";
import { parseFlags, runTask } from "./cli.ts";

const HELP =
  `Export a fine-tuned classifier (LoRA merged) to ONNX, as the folder transformers.js loads.

usage: deno task export --run RUN [--out DIR] [--dtype fp32,fp16,q8]
       deno task export --model ID|DIR --adapter ID|DIR --out DIR [--dtype …]

  --run RUN        a training run: its base model and best adapter (default --out RUN/onnx)
  --checkpoint C   with --run: best (default), epoch-N or step-N
  --model, --adapter   without a run (an adapter without class names gets LABEL_0…)
  --out DIR        the folder to write (replaced if it holds an earlier export)
  --dtype LIST     precisions, comma-separated (default fp32,fp16,q8):
                   fp32 → onnx/model.onnx, fp16 → onnx/model_fp16.onnx (LayerNorm, Softmax
                   and the logits in float32), q8 → onnx/model_quantized.onnx (int8 products,
                   as ONNX Runtime's quantize_dynamic)
  --backend B      tfjs backend to load the model on: webgpu, wasm or cpu (default wasm)
  -h, --help       this text

Load it with transformers.js: pipeline("image-classification", DIR, { dtype: "q8" }); the
folder's README.md shows how, and with Python's onnxruntime.`;

if (import.meta.main) {
  await runTask(async () => {
    const { values } = parseFlags({
      args: Deno.args,
      options: {
        run: { type: "string" },
        checkpoint: { type: "string" },
        model: { type: "string" },
        adapter: { type: "string" },
        out: { type: "string" },
        dtype: { type: "string" },
        backend: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }, HELP);
    const dtypes = parseOnnxDtypes(values.dtype ?? "fp32,fp16,q8");
    let model = values.model, adapter = values.adapter, labels: string[] | undefined;
    let out = values.out;
    if (values.run) {
      const config = await readRunConfig(values.run);
      model ??= config.train.model;
      labels = config.dataset?.labels;
      const checkpoint = values.checkpoint ?? "best";
      if (checkpoint !== "best" && !/^(epoch|step)-\d+$/.test(checkpoint)) {
        throw new VitLoraError(`--checkpoint: best, epoch-N or step-N, not ${checkpoint}`);
      }
      adapter ??= checkpoint === "best"
        ? join(values.run, "best")
        : join(values.run, "checkpoints", checkpoint);
      if (!(await exists(join(adapter, "adapter_config.json")))) {
        throw new VitLoraError(
          `${adapter}: no adapter there (has the run finished an epoch? checkpoints: best, epoch-N, step-N)`,
        );
      }
      out ??= join(values.run, "onnx");
    } else if (values.checkpoint) {
      throw new VitLoraError("--checkpoint needs --run");
    }
    if (!model) {
      throw new VitLoraError("give a run (--run) or a model and adapter (--model, --adapter)");
    }
    if (!out) throw new VitLoraError("--out DIR: where to write the folder (needed without --run)");
    await checkOnnxFolder(out); // before the model loads: a folder that cannot be written fails fast
    const clf = await loadClassifier(model, {
      adapter,
      labels,
      backend: values.backend ? parseBackendName(values.backend) : "wasm",
    });
    try {
      const files = await exportOnnx(clf, { dtypes });
      await writeOnnxFolder(out, files);
      const sizes = dtypes.map((d) => {
        const mb = files.get(ONNX_FILES[d])!.length / 2 ** 20;
        return `${ONNX_FILES[d]} ${mb.toFixed(mb < 10 ? 1 : 0)} MB`;
      });
      console.error(`written: ${out} (${sizes.join(", ")})`);
    } finally {
      clf.dispose();
    }
  });
}
