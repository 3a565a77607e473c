/**
 * `deno task report --run RUN`: writes the run report `RUN/report.html` (and `RUN/report.png`
 * when Chromium is installed), evaluating the best adapter on the test split first if the run
 * has no `eval-test.json` yet.
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { evaluate, parseBackendName, VitLoraError, writeReport } from "../mod.ts";

const HELP = `Write a training run's report: RUN/report.html (and report.png with Chromium).

usage: deno task report --run RUN [--no-screenshot] [--backend B]`;

if (import.meta.main) {
  try {
    let values;
    try {
      ({ values } = parseArgs({
        args: Deno.args,
        allowNegative: true,
        options: {
          run: { type: "string" },
          screenshot: { type: "boolean" },
          backend: { type: "string" },
          help: { type: "boolean", short: "h" },
        },
      }));
    } catch (e) {
      throw new VitLoraError(`${(e as Error).message} (see --help)`);
    }
    if (values.help) {
      console.log(HELP);
      Deno.exit(0);
    }
    if (!values.run) throw new VitLoraError("--run RUN is required (see --help)");
    try {
      await Deno.stat(join(values.run, "eval-test.json"));
    } catch {
      await evaluate({
        run: values.run,
        split: "test",
        backend: values.backend ? parseBackendName(values.backend) : undefined,
      });
    }
    const { html, png } = await writeReport({ run: values.run, screenshot: values.screenshot });
    console.log(`report: ${html}${png ? `\nscreenshot: ${png}` : ""}`);
  } catch (e) {
    if (e instanceof VitLoraError) {
      console.error(`error: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  }
}
