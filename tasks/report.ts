/**
 * `deno task report --run RUN`: writes the run report `RUN/report.html` (and `RUN/report.png`
 * when Chromium is installed), evaluating the best adapter on the test split first if the run
 * has no `eval-test.json` yet.
 *
 * @module
 */

import { join } from "node:path";
import { evaluate, VitLoraError, writeReport } from "../mod.ts";
import type { OptionSchema } from "../src/core/options.ts";
import { SHARED_OPTIONS } from "../src/runs/config.ts";
import { type Command, parseCommand, runTask } from "./cli.ts";

/** The options of `deno task report`. */
export const REPORT_OPTIONS = {
  /** The run folder. */
  run: { ...SHARED_OPTIONS.run, help: "the run folder" },
  /** Also render `report.png` with Chromium. */
  screenshot: {
    kind: "boolean",
    flag: "screenshot",
    default: true,
    help: "skip report.png (Chromium's screenshot of the report)",
  },
  /** The backend of the test evaluation, if one is needed. */
  backend: SHARED_OPTIONS.backend,
} as const satisfies OptionSchema;

/** `deno task report`: its help and flags. */
export const REPORT_COMMAND: Command<typeof REPORT_OPTIONS> = {
  summary: "Write a training run's report: RUN/report.html (and report.png with Chromium).",
  usage: ["deno task report --run RUN [--no-screenshot] [--backend B]"],
  schema: REPORT_OPTIONS,
};

if (import.meta.main) {
  await runTask(async () => {
    const { values } = parseCommand(REPORT_COMMAND, Deno.args);
    if (!values.run) throw new VitLoraError("--run RUN is required (see --help)");
    try {
      await Deno.stat(join(values.run, "eval-test.json"));
    } catch {
      await evaluate({ run: values.run, split: "test", backend: values.backend });
    }
    const { html, png } = await writeReport({ run: values.run, screenshot: values.screenshot });
    console.log(`report: ${html}${png ? `\nscreenshot: ${png}` : ""}`);
  });
}
