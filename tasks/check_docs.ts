/**
 * `deno task check`'s check of the doc examples that `deno test --doc` does not run: every
 * ```` ```ts ignore ```` block in the JSDoc of `mod.ts` and `src/**\/*.ts`, and every
 * ```` ```ts ```` / ```` ```js ```` block of README.md, type-checked as a module of its own.
 *
 * Each block is written next to its source (a temporary file in the same folder, so that its
 * relative imports resolve; README's at the repository root), all of them are type-checked in
 * one `deno check --lock=dev.lock` call, and the temporary files are removed. In the extracted
 * text `jsr:@lora/vit…` (as the README writes the package) becomes `@lora/vit…`, which
 * deno.json's `name` and `exports` resolve to this checkout's entries, and the README's
 * peer `@huggingface/transformers` becomes the npm version the tests pin. A block in
 * `src/web/` (or one that says `/// <reference lib="dom" />`) is browser code and gets the
 * DOM's types; a `js` block is checked as JavaScript (`// @ts-check`).
 *
 * Usage: `deno run --allow-read --allow-write=. --allow-run tasks/check_docs.ts [--skip PATH]…`
 * prints one `file:line: message` per fault (the line of the block's source) and exits 1 if
 * there is any. `--skip` (repeatable) leaves out a file, or a folder when it ends in `/`;
 * {@link PENDING} is left out as well unless `--all` is given.
 *
 * @module
 */

import { dirname, join, relative, resolve } from "node:path";

/** Files whose examples are being rewritten on another branch: left out until it merges. */
export const PENDING: readonly string[] = [];

/** Specifiers rewritten in the extracted text: how the README names them → what resolves here. */
export const REWRITES: ReadonlyArray<readonly [RegExp, string]> = [
  [/(["'])jsr:@lora\/vit(?=["'/])/g, "$1@lora/vit"],
  [/(["'])@huggingface\/transformers(["'])/g, "$1npm:@huggingface/transformers@4.3.2$2"],
];

/** One doc example. */
export interface DocBlock {
  /** The file it is in, relative to the repository. */
  file: string;
  /** The line of the block's first line of code in that file (1-based). */
  line: number;
  /** The fence's language. */
  lang: "ts" | "js";
  /** The code, comment markers stripped. */
  code: string;
  /** Whether it is browser code (checked with the DOM's types). */
  dom: boolean;
}

/** One fault: where in the source, and the type checker's message. */
export interface DocFault {
  /** The source file, relative to the repository. */
  file: string;
  /** The line in the source file (1-based). */
  line: number;
  /** The checker's message (its first line). */
  message: string;
}

/** What {@link checkDocs} did. */
export interface DocCheck {
  /** How many blocks were type-checked. */
  checked: number;
  /** How many blocks were found in skipped files. */
  skipped: number;
  /** The faults, in file and line order. */
  faults: DocFault[];
}

const FENCE_END = /^\s*```\s*$/;

/** The ```` ```ts ignore ```` blocks of a source file's JSDoc comments. */
export function jsDocBlocks(file: string, text: string): DocBlock[] {
  const lines = text.split("\n");
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s*\*\s*```ts ignore\s*$/.test(lines[i])) continue;
    const code: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*\*\s*```\s*$/.test(lines[j]); j++) {
      if (/\*\//.test(lines[j])) {
        throw new Error(`${file}:${i + 1}: unclosed \`\`\`ts ignore block`);
      }
      code.push(lines[j].replace(/^\s*\*( |$)/, ""));
    }
    if (j === lines.length) throw new Error(`${file}:${i + 1}: unclosed \`\`\`ts ignore block`);
    const source = code.join("\n");
    blocks.push({ file, line: i + 2, lang: "ts", code: source, dom: isBrowserCode(file, source) });
    i = j;
  }
  return blocks;
}

/** The ```` ```ts ```` and ```` ```js ```` blocks of a Markdown file. */
export function markdownBlocks(file: string, text: string): DocBlock[] {
  const lines = text.split("\n");
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)/.exec(lines[i]);
    if (!open) continue;
    let j = i + 1;
    while (j < lines.length && !FENCE_END.test(lines[j])) j++;
    if (j === lines.length) throw new Error(`${file}:${i + 1}: unclosed code block`);
    const lang = open[1];
    if (lang === "ts" || lang === "js") {
      const code = lines.slice(i + 1, j).join("\n");
      blocks.push({ file, line: i + 2, lang, code, dom: isBrowserCode(file, code) });
    }
    i = j;
  }
  return blocks;
}

function isBrowserCode(file: string, code: string): boolean {
  return file.startsWith("src/web/") || /\/\/\/\s*<reference lib="dom"\s*\/>/.test(code);
}

async function sourceFiles(root: string): Promise<string[]> {
  const files = ["mod.ts"];
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(join(root, dir))) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".ts") && !entry.name.startsWith("_doc_")) files.push(path);
    }
  };
  await walk("src");
  return files.sort();
}

function isSkipped(file: string, skip: readonly string[]): boolean {
  return skip.some((s) => s.endsWith("/") ? file.startsWith(s) : file === s);
}

/** Every doc example of the repository at `root`: the JSDoc ones first, then README.md's. */
export async function docBlocks(root: string): Promise<DocBlock[]> {
  const blocks: DocBlock[] = [];
  for (const file of await sourceFiles(root)) {
    blocks.push(...jsDocBlocks(file, await Deno.readTextFile(join(root, file))));
  }
  blocks.push(...markdownBlocks("README.md", await Deno.readTextFile(join(root, "README.md"))));
  return blocks;
}

/** The module a block is checked as: its header lines (how many) and text. */
export function blockModule(block: DocBlock): { header: number; text: string } {
  const head: string[] = [];
  if (block.lang === "js") head.push("// @ts-check");
  if (block.dom && !/<reference lib="dom"/.test(block.code)) {
    head.push('/// <reference lib="dom" />');
  }
  let code = block.code;
  for (const [pattern, to] of REWRITES) code = code.replace(pattern, to);
  // `export {}` makes it a module even when it imports nothing (top-level await, own scope).
  return { header: head.length, text: [...head, code, "export {};", ""].join("\n") };
}

// deno check's diagnostics: `TSnnnn [ERROR]: message` … `at file:///path:line:col`, or a
// fatal `error: message` (a module that does not resolve) with its `at` line.
const AT = /^\s+at (file:\/\/\S+?):(\d+):(\d+)\s*$/;

/** The faults in `deno check`'s output, mapped from the temporary files to their blocks. */
export function parseCheckOutput(
  output: string,
  temps: ReadonlyMap<string, { block: DocBlock; header: number }>,
): DocFault[] {
  const faults: DocFault[] = [];
  const seen = new Set<string>();
  let message: string | undefined;
  for (const line of output.split("\n")) {
    const head = /^(?:error: )?(TS\d+ \[ERROR\]: .*)$/.exec(line) ?? /^error: (.*)$/.exec(line);
    if (head) {
      message = /^Type checking failed/.test(head[1]) ? undefined : head[1];
      continue;
    }
    const at = AT.exec(line);
    if (!at || message === undefined) continue;
    const temp = temps.get(decodeURIComponent(new URL(at[1]).pathname));
    if (temp === undefined) { // a fault (or a related location) in a real source file
      message = undefined;
      continue;
    }
    const fault = {
      file: temp.block.file,
      line: temp.block.line + Number(at[2]) - 1 - temp.header,
      message,
    };
    const key = `${fault.file}:${fault.line}: ${fault.message}`;
    if (!seen.has(key)) faults.push(fault), seen.add(key);
    message = undefined;
  }
  return faults;
}

/** Options of {@link checkDocs}. */
export interface CheckDocsOptions {
  /** The repository's root (default: this file's parent folder). */
  root?: string;
  /** Files (or folders, ending in `/`) to leave out (default: {@link PENDING}). */
  skip?: readonly string[];
}

/** Type-checks every doc example in one `deno check` call; temporary files are removed. */
export async function checkDocs(options: CheckDocsOptions = {}): Promise<DocCheck> {
  const root = resolve(options.root ?? new URL("..", import.meta.url).pathname);
  const skip = options.skip ?? PENDING;
  const all = await docBlocks(root);
  const blocks = all.filter((b) => !isSkipped(b.file, skip));
  const temps = new Map<string, { block: DocBlock; header: number }>();
  const tag = `${Deno.pid}_${Date.now().toString(36)}`;
  try {
    for (const block of blocks) {
      const base = block.file.replace(/^.*\//, "").replace(/\.\w+$/, "");
      const name = `_doc_${base}_${block.line}_${tag}.${block.lang}`;
      const path = join(root, dirname(block.file), name);
      const { header, text } = blockModule(block);
      await Deno.writeTextFile(path, text, { createNew: true });
      temps.set(path, { block, header });
    }
    if (temps.size === 0) return { checked: 0, skipped: all.length, faults: [] };
    const run = await new Deno.Command(Deno.execPath(), {
      args: [
        "check",
        "--lock=dev.lock",
        "--quiet",
        ...[...temps.keys()].map((p) => relative(root, p)),
      ],
      cwd: root,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const output = new TextDecoder().decode(run.stdout) + new TextDecoder().decode(run.stderr);
    const faults = parseCheckOutput(output, temps);
    if (!run.success && faults.length === 0) {
      throw new Error(`deno check failed with no fault in a doc example:\n${output}`);
    }
    faults.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
    return { checked: blocks.length, skipped: all.length - blocks.length, faults };
  } finally {
    for (const path of temps.keys()) await Deno.remove(path).catch(() => {});
  }
}

if (import.meta.main) {
  const skip: string[] = Deno.args.includes("--all") ? [] : [...PENDING];
  for (let i = 0; i < Deno.args.length; i++) {
    if (Deno.args[i] === "--skip" && Deno.args[i + 1]) skip.push(Deno.args[++i]);
    else if (Deno.args[i] !== "--all") {
      console.error(`error: unknown argument ${Deno.args[i]} (usage: [--skip PATH]… [--all])`);
      Deno.exit(2);
    }
  }
  const result = await checkDocs({ skip });
  for (const f of result.faults) console.error(`${f.file}:${f.line}: ${f.message}`);
  const note = result.skipped ? ` (${result.skipped} in skipped files left out)` : "";
  console.log(
    `doc examples: ${result.checked} checked${note}, ${result.faults.length} fault(s)`,
  );
  if (result.faults.length) Deno.exit(1);
}
