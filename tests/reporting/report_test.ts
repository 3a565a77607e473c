/** The run report: one self-contained page, rendered in headless Chromium. */

import assert from "node:assert/strict";
import { reportCallback } from "../../src/reporting/callbacks.ts";
import { openInChromium, writeReport } from "../../src/reporting/report.ts";
import { tempDir, trainedRun, useBackend } from "../helpers.ts";

Deno.test("report: one self-contained page that renders in headless Chromium with no console error", async () => {
  await useBackend("cpu");
  await using dir = await tempDir();
  const { run } = await trainedRun(dir.path, [reportCallback()]);
  const { html, png } = await writeReport({ run });
  const page = await Deno.readTextFile(html);
  for (
    const heading of [
      "Training",
      "Validation accuracy by epoch",
      "Confusion matrix",
      "Per-class accuracy",
      "Misclassified test images",
      "Configuration",
    ]
  ) {
    assert.ok(page.includes(heading), heading);
  }
  assert.ok((page.match(/<svg/g) ?? []).length >= 4, "charts rendered to SVG");
  assert.ok(!/(src|href)="https?:/.test(page), "nothing fetched from the network");
  const opened = await openInChromium(html);
  assert.ok(opened, "Chromium is needed for this test (Debian: apt-get install chromium)");
  assert.deepEqual(opened.consoleErrors, []);
  assert.match(opened.dom, /data-ready="([4-9]|\d\d)"/, "the page's script ran and saw the charts");
  assert.ok(png, "report.png");
  const bytes = await Deno.readFile(png);
  assert.deepEqual([...bytes.subarray(1, 4)], [0x50, 0x4e, 0x47], "a PNG");
  assert.ok(bytes.length > 10_000);
});
