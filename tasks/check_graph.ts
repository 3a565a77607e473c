/**
 * `deno task check`'s architecture check: the module graph of `src/` has no import cycle, and
 * no folder imports one above it. The folders, lowest first:
 *
 * | folder          | holds                                                              |
 * | --------------- | ------------------------------------------------------------------ |
 * | `core/`         | tfjs, errors, files, environment, seeded random, progress          |
 * | `backend/`      | backend choice, WGSL and wasm kernels                              |
 * | `data/`         | parquet, split and order, decoding, transforms, batches            |
 * | `hub/`          | the Hugging Face Hub: settings, cache, downloads                   |
 * | `model/`        | configs, safetensors, PEFT names, LoRA, the ViT, the classifier    |
 * | `onnx/`         | the ViT as an ONNX graph: building, encoding                       |
 * | `engines/`      | running the model on every core: ONNX Runtime, replicas in workers |
 * | `runs/`         | a training run's folder: configuration, events, metrics            |
 * | `eval/`         | metrics, evaluation, prediction, shards and their merge            |
 * | `training/`     | the optimizer, checkpoints, callbacks, the training loop           |
 * | `reporting/`    | what plugs into training: the report, W&B, the push to the Hub     |
 * | `web/`          | the browser entry (`@lora/vit/web`) and the page of `deno task web` |
 *
 * Usage: `deno run --allow-read tasks/check_graph.ts` (exit 1 with one line per fault).
 *
 * @module
 */

import { dirname, join, relative, resolve } from "node:path";

/** The folders of `src/`, lowest first: each may import its own and those before it. */
export const LAYERS = [
  "core",
  "backend",
  "data",
  "hub",
  "model",
  "onnx",
  "engines",
  "runs",
  "eval",
  "training",
  "reporting",
  "web",
] as const;

/** One relative import of a source file. */
export interface Import {
  /** The importing file, relative to the repository. */
  from: string;
  /** The imported file, relative to the repository. */
  to: string;
  /** `import type …` / `export type …`: erased, never loaded. */
  typeOnly: boolean;
}

const IMPORT =
  /(?:^|\n)\s*(import|export)\s+(type\s+)?([^;]*?)\s+from\s+["'](\.{1,2}\/[^"']+)["']/g;
const WORKER = /new\s+(?:Worker|URL)\(\s*(?:new URL\()?\s*["'](\.{1,2}\/[^"']+\.ts)["']/g;

/** Every relative import (and worker script) of every `.ts` file under `root/src`. */
export async function sourceImports(root: string): Promise<Import[]> {
  const out: Import[] = [];
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) {
        const text = await Deno.readTextFile(path);
        const from = relative(root, path);
        for (const m of text.matchAll(IMPORT)) {
          // `import { type A, type B }` is as erased as `import type { A, B }`
          const names = /^\{([^}]*)\}$/.exec(m[3].trim())?.[1].split(",").map((s) => s.trim())
            .filter(Boolean);
          const typeOnly = !!m[2] || (!!names && names.every((n) => n.startsWith("type ")));
          out.push({ from, to: relative(root, resolve(dirname(path), m[4])), typeOnly });
        }
        for (const m of text.matchAll(WORKER)) {
          out.push({ from, to: relative(root, resolve(dirname(path), m[1])), typeOnly: false });
        }
      }
    }
  };
  await walk(join(root, "src"));
  return out;
}

/** The folder of a file under `src/` (`model` for `src/model/vit.ts`). */
function layerOf(file: string): string {
  return file.split("/")[1];
}

/**
 * The faults of a module graph: imports of a folder above the importer's (or of one not in
 * {@link LAYERS}), and cycles (through any import, erased or not).
 */
export function graphFaults(imports: readonly Import[]): string[] {
  const faults: string[] = [];
  const rank = (file: string) => (LAYERS as readonly string[]).indexOf(layerOf(file));
  for (const i of imports) {
    if (!i.to.startsWith("src/")) continue;
    if (rank(i.from) < 0) faults.push(`${i.from}: not in a known folder (${LAYERS.join(", ")})`);
    else if (rank(i.to) > rank(i.from)) {
      faults.push(
        `${i.from} imports ${i.to}: ${layerOf(i.from)}/ may not import ${layerOf(i.to)}/`,
      );
    }
  }
  const edges = new Map<string, string[]>();
  for (const i of imports) edges.set(i.from, [...(edges.get(i.from) ?? []), i.to]);
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const seen = new Set<string>();
  const visit = (file: string): void => {
    state.set(file, "open");
    stack.push(file);
    for (const next of edges.get(file) ?? []) {
      if (state.get(next) === "open") {
        const cycle = [...stack.slice(stack.indexOf(next)), next];
        const key = [...cycle].sort().join();
        if (!seen.has(key)) {
          seen.add(key);
          faults.push(`import cycle: ${cycle.join(" → ")}`);
        }
      } else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of [...edges.keys()].sort()) if (!state.has(file)) visit(file);
  return faults;
}

if (import.meta.main) {
  const root = resolve(dirname(new URL(import.meta.url).pathname), "..");
  const imports = await sourceImports(root);
  const faults = graphFaults(imports);
  for (const fault of faults) console.error(`error: ${fault}`);
  if (faults.length > 0) Deno.exit(1);
  const files = new Set(imports.map((i) => i.from)).size;
  console.log(`check_graph: ${files} modules under src/, no import cycle, no upward import`);
}
