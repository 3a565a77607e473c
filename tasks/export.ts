/**
 * `deno task export --run RUN [--out DIR] [--dtype fp32,fp16,q8]` (or `--model M --adapter A
 * --out DIR`): the fine-tuned classifier, LoRA merged, as the model folder transformers.js loads
 * (`config.json`, `preprocessor_config.json`, `README.md`, `onnx/model.onnx`,
 * `onnx/model_fp16.onnx`, `onnx/model_quantized.onnx`), written whole or not at all.
 *
 * @module
 */

import { join } from "node:path";
import { readRunConfig } from "../src/runs/folder.ts";
import { VitLoraError } from "../src/core/errors.ts";
import { exists } from "../src/core/files.ts";
import type { OptionSchema } from "../src/core/options.ts";
import { loadClassifier } from "../src/model/loading.ts";
import { exportOnnx } from "../src/onnx/export.ts";
import { ONNX_DTYPES, ONNX_FILES, type OnnxDtype } from "../src/onnx/folder.ts";
import { checkOnnxFolder, writeOnnxFolder } from "../src/onnx/write.ts";
import { SHARED_OPTIONS } from "../src/runs/config.ts";
import { type Command, parseCommand, runTask } from "./cli.ts";

/** The options of `deno task export`. */
export const EXPORT_OPTIONS = {
  /** A training run: its base model and best adapter. */
  run: {
    ...SHARED_OPTIONS.run,
    help: "a training run: its base model and best adapter (default --out RUN/onnx)",
  },
  /** With `run`: which adapter. */
  checkpoint: {
    kind: "string",
    flag: "checkpoint",
    arg: "C",
    defaultText: "best",
    help: "with --run: best, epoch-N or step-N",
    section: "data and model",
  },
  /** Without `run`: the base model. */
  model: { ...SHARED_OPTIONS.model, help: "without a run: the base model (Hub id or folder)" },
  /** Without `run`: the adapter (one without class names gets LABEL_0 …). */
  adapter: {
    ...SHARED_OPTIONS.adapter,
    help: "without a run: the adapter (class names from the run, else LABEL_0 …)",
  },
  /** The folder to write (replaced if it holds an earlier export). */
  out: {
    kind: "string",
    flag: "out",
    arg: "DIR",
    defaultText: "RUN/onnx",
    help: "the folder to write (replaced if it holds an earlier export)",
    section: "data and model",
  },
  /** The precisions to write. */
  dtype: {
    kind: "list",
    choices: ONNX_DTYPES,
    flag: "dtype",
    arg: "LIST",
    default: ONNX_DTYPES,
    help: "fp32 → onnx/model.onnx, fp16 → onnx/model_fp16.onnx (LayerNorm,\n" +
      "Softmax and the logits in float32), q8 → onnx/model_quantized.onnx (int8\n" +
      "products, as ONNX Runtime's quantize_dynamic)",
    section: "data and model",
  },
  /** The tfjs backend the model is loaded on (default wasm). */
  backend: { ...SHARED_OPTIONS.backend, defaultText: "wasm" },
} as const satisfies OptionSchema;

/** `deno task export`: its help and flags. */
export const EXPORT_COMMAND: Command<typeof EXPORT_OPTIONS> = {
  summary:
    "Export a fine-tuned classifier (LoRA merged) to ONNX, as the folder transformers.js loads.",
  usage: [
    "deno task export --run RUN [--out DIR] [--dtype fp32,fp16,q8]",
    "deno task export --model ID|DIR --adapter ID|DIR --out DIR [--dtype …]",
  ],
  schema: EXPORT_OPTIONS,
  notes: 'Load it with transformers.js: pipeline("image-classification", DIR, { dtype: "q8" }); ' +
    "the folder's\nREADME.md shows how, and with Python's onnxruntime.",
};

if (import.meta.main) {
  await runTask(async () => {
    const { values } = parseCommand(EXPORT_COMMAND, Deno.args);
    const dtypes = (values.dtype ?? EXPORT_OPTIONS.dtype.default) as OnnxDtype[];
    let model = values.model, adapter = values.adapter, labels: string[] | undefined;
    let out = values.out;
    if (values.run) {
      const config = await readRunConfig(values.run);
      model ??= config.train.model;
      labels = config.dataset?.labels;
      const checkpoint = values.checkpoint ?? "best";
      if (checkpoint !== "best" && !/^(epoch|step)-\d+$/.test(checkpoint)) {
        throw new VitLoraError(`--checkpoint must be best, epoch-N or step-N, not ${checkpoint}`);
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
    const clf = await loadClassifier(model, { adapter, labels, backend: values.backend ?? "wasm" });
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
