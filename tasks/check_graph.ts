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
 * Two more rules: no file under `src/` is longer than {@link MAX_LINES} lines, and the browser
 * entry (`src/web/mod.ts`, and the page's `src/web/page/app.ts`) reaches no module that uses
 * `Deno` or imports `node:` (through any import that is loaded: static, side-effect, dynamic
 * or a worker's), nor an npm package outside {@link BROWSER_PACKAGES}: Deno's parts are plugged
 * in through `core/platform.ts`.
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

/** The longest a file under `src/` may be, in lines. */
export const MAX_LINES = 500;

/** The browser entry's modules: what the page and `@lora/vit/web` load. */
export const BROWSER_ENTRIES = ["src/web/mod.ts", "src/web/page/app.ts"] as const;

/** The npm packages the browser entry may load (bare specifiers, by package). */
export const BROWSER_PACKAGES: readonly string[] = [
  "@tensorflow/tfjs",
  "@tensorflow/tfjs-backend-webgpu",
  "@tensorflow/tfjs-backend-wasm",
  "@jsquash/jpeg",
  "@jsquash/png",
  "@jsquash/webp",
  "imagescript",
  "exifr",
  "omggif",
  "fflate",
];

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
const SIDE_EFFECT = /(?:^|\n)\s*import\s+["'](\.{1,2}\/[^"']+)["']/g;
const DYNAMIC = /\bimport\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;
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
        for (const re of [SIDE_EFFECT, DYNAMIC, WORKER]) {
          for (const m of stripComments(text).matchAll(re)) {
            out.push({ from, to: relative(root, resolve(dirname(path), m[1])), typeOnly: false });
          }
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

/** Source text without its comments (and with its strings' contents kept). */
export function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\/|(^|[^:"'`\\])\/\/[^\n]*/g, (_, pre) => pre ?? "");
}

/** What a module's code (comments left out) uses of Deno and Node, and its npm imports. */
export function platformUses(text: string): { deno: boolean; node: string[]; packages: string[] } {
  // template literals' text (e.g. a README written out) is no code
  const code = stripComments(text).replace(/`(?:\\[\s\S]|[^\\`])*`/g, "``");
  const specifiers = [
    ...code.matchAll(/(?:from|import)\s*\(?\s*["']([^"'.][^"']*)["']/g),
  ].map((m) => m[1]);
  return {
    deno: /\bDeno\.\w/.test(code),
    node: specifiers.filter((s) => s.startsWith("node:")),
    packages: specifiers.filter((s) => !s.startsWith("node:") && !s.startsWith("npm:")).map((
      s,
    ) => s.startsWith("@") ? s.split("/").slice(0, 2).join("/") : s.split("/")[0]),
  };
}

/**
 * The faults of the browser entry's graph: each module it loads (type-only imports are erased)
 * that uses `Deno`, imports `node:`, or loads an npm package outside {@link BROWSER_PACKAGES}.
 */
export async function browserFaults(root: string, imports: readonly Import[]): Promise<string[]> {
  const next = new Map<string, string[]>();
  for (const i of imports) {
    if (!i.typeOnly) next.set(i.from, [...(next.get(i.from) ?? []), i.to]);
  }
  const seen = new Map<string, string>(); // module → who loads it
  const queue: string[] = [...BROWSER_ENTRIES];
  for (const entry of queue) seen.set(entry, entry);
  while (queue.length > 0) {
    const file = queue.shift()!;
    for (const to of next.get(file) ?? []) {
      if (!seen.has(to)) {
        seen.set(to, file);
        queue.push(to);
      }
    }
  }
  const faults: string[] = [];
  for (const [file, by] of seen) {
    let text: string;
    try {
      text = await Deno.readTextFile(join(root, file));
    } catch {
      continue;
    }
    const uses = platformUses(text);
    const chain = `(loaded by ${by})`;
    if (uses.deno) faults.push(`${file} uses Deno but the browser entry loads it ${chain}`);
    for (const n of uses.node) {
      faults.push(`${file} imports ${n} but the browser entry loads it ${chain}`);
    }
    for (const p of uses.packages.filter((p) => !BROWSER_PACKAGES.includes(p))) {
      faults.push(
        `${file} imports the npm package ${p}, not one the browser entry may load ${chain}`,
      );
    }
  }
  return faults;
}

/** Files under `root/src` longer than {@link MAX_LINES} lines. */
export async function lengthFaults(root: string): Promise<string[]> {
  const faults: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".ts")) {
        const lines = (await Deno.readTextFile(path)).split("\n").length - 1;
        if (lines > MAX_LINES) {
          faults.push(`${relative(root, path)}: ${lines} lines (at most ${MAX_LINES})`);
        }
      }
    }
  };
  await walk(join(root, "src"));
  return faults;
}

if (import.meta.main) {
  const root = resolve(dirname(new URL(import.meta.url).pathname), "..");
  const imports = await sourceImports(root);
  const faults = [
    ...graphFaults(imports),
    ...await browserFaults(root, imports),
    ...await lengthFaults(root),
  ];
  for (const fault of faults) console.error(`error: ${fault}`);
  if (faults.length > 0) Deno.exit(1);
  const files = new Set(imports.map((i) => i.from)).size;
  console.log(
    `check_graph: ${files} modules under src/, no import cycle, no upward import, none over ${MAX_LINES} lines, a browser entry free of Deno and node:`,
  );
}
