/**
 * `deno task report --run RUN`: writes the run report `RUN/report.html` (and `RUN/report.png`
 * when Chromium is installed), evaluating the best adapter on the test split first if the run
 * has no `eval-test.json` yet.
 *
 * @module
 */

import { join } from "node:path";
import { evaluate, parseBackendName, VitLoraError, writeReport } from "../mod.ts";
import { parseFlags, runTask } from "./cli.ts";

const HELP = `Write a training run's report: RUN/report.html (and report.png with Chromium).

usage: deno task report --run RUN [--no-screenshot] [--backend B]`;

if (import.meta.main) {
  await runTask(async () => {
    const { values } = parseFlags({
      args: Deno.args,
      allowNegative: true,
      options: {
        run: { type: "string" },
        screenshot: { type: "boolean" },
        backend: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }, HELP);
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
  });
}
