/**
 * The README's tables of options, made from the option tables the commands are parsed with
 * (see `src/core/options.ts`): each `<!-- options: NAME -->` … `<!-- /options -->` block of
 * README.md is the table of the command NAME. `deno task readme` rewrites them;
 * `tests/readme_test.ts` checks that they are what this makes.
 *
 * @module
 */

import { optionsTable } from "../src/core/options.ts";
import type { OptionSchema } from "../src/core/options.ts";
import { DEMO_COMMAND } from "./demo.ts";
import { EVAL_COMMAND } from "./eval.ts";
import { EXPORT_COMMAND } from "./export.ts";
import { PREDICT_COMMAND } from "./predict.ts";
import { PUSH_COMMAND } from "./push.ts";
import { REPORT_COMMAND } from "./report.ts";
import { TRAIN_COMMAND } from "./train.ts";
import { WEB_COMMAND } from "./web.ts";

/** The commands whose options the README lists, by the name its markers use. */
export const README_COMMANDS: Readonly<Record<string, { schema: OptionSchema }>> = {
  train: TRAIN_COMMAND,
  eval: EVAL_COMMAND,
  predict: PREDICT_COMMAND,
  export: EXPORT_COMMAND,
  push: PUSH_COMMAND,
  report: REPORT_COMMAND,
  demo: DEMO_COMMAND,
  web: WEB_COMMAND,
};

const BLOCK = /<!-- options: ([\w-]+) -->\n[\s\S]*?<!-- \/options -->/g;

/** A Markdown table with its columns padded as `deno fmt` pads them. */
export function alignTable(table: string): string {
  const rows = table.split("\n").map((line) =>
    line.slice(1, -1).split(/(?<!\\)\|/).map((cell) => cell.trim())
  );
  const widths = rows[0].map((_, c) =>
    Math.max(3, ...rows.filter((_, r) => r !== 1).map((row) => [...row[c]].length))
  );
  return rows.map((row, r) =>
    `| ${
      row.map((cell, c) =>
        r === 1 ? "-".repeat(widths[c]) : cell + " ".repeat(widths[c] - [...cell].length)
      ).join(" | ")
    } |`
  ).join("\n");
}

/** README text with every options block made anew; an unknown command name is an error. */
export function withOptionTables(readme: string): string {
  return readme.replace(BLOCK, (_, name: string) => {
    const command = README_COMMANDS[name];
    if (!command) throw new Error(`README.md: <!-- options: ${name} -->: no such command`);
    const table = alignTable(optionsTable(command.schema));
    return `<!-- options: ${name} -->\n\n${table}\n\n<!-- /options -->`;
  });
}

if (import.meta.main) {
  const path = new URL("../README.md", import.meta.url);
  const before = await Deno.readTextFile(path);
  const after = withOptionTables(before);
  if (Deno.args.includes("--check")) {
    if (after !== before) {
      console.error("error: README.md's option tables are stale: run deno task readme");
      Deno.exit(1);
    }
  } else if (after !== before) {
    await Deno.writeTextFile(path, after);
    console.log("README.md: option tables written");
  } else console.log("README.md: option tables up to date");
}
