/**
 * `deno task bench:json`: runs the bench suite (`deno bench --json`) and the PyTorch peer
 * (bench/peers/pytorch_vit.py, when python3 with torch is there), and writes
 * `bench/results/<date>-<machine>.json` with images/s for every measurement, the ratios to
 * the peer, the backend adapter, and the Deno, tfjs and PyTorch versions, so that runs on
 * different machines can be compared. Prints the table the README shows.
 *
 * Usage: deno task bench:json [bench files…] (default: all of bench/)
 */

import { join } from "node:path";
import { tf } from "../src/core/tf.ts";

interface BenchResult {
  name: string;
  group?: string;
  avgMs: number;
  images?: number;
  imagesPerSecond?: number;
}

const root = new URL("..", import.meta.url).pathname;
const files = Deno.args.length ? Deno.args : ["bench/"];

async function run(cmd: string, args: string[]): Promise<{ ok: boolean; stdout: string }> {
  try {
    const out = await new Deno.Command(cmd, { args, cwd: root, stderr: "inherit" }).output();
    return { ok: out.success, stdout: new TextDecoder().decode(out.stdout) };
  } catch {
    return { ok: false, stdout: "" };
  }
}

// the suite, as JSON
const bench = await run(Deno.execPath(), [
  "bench",
  "--json",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  ...files,
]);
if (!bench.ok) console.error("bench:json: some benchmarks failed (see above)");
const parsed = JSON.parse(bench.stdout || "{}");
const results: BenchResult[] = [];
for (const b of parsed.benches ?? []) {
  const ok = b.results?.[0]?.ok;
  if (!ok) continue;
  const avgMs = ok.avg / 1e6;
  const images = Number(/\((\d+) images\)/.exec(b.name)?.[1] ?? /batch (\d+)/.exec(b.name)?.[1]) ||
    undefined;
  results.push({
    name: b.name,
    group: b.group,
    avgMs,
    images,
    imagesPerSecond: images ? images / (avgMs / 1000) : undefined,
  });
}

// the PyTorch peer: transformers + PEFT on pip's torch, what a user installs today. $PYTHON
// when set (and only it), else the first python3 on the PATH that runs it; its own stderr
// says why one cannot.
let peer: Record<string, unknown> | undefined;
if (results.some((r) => r.name.startsWith("ViT-B/16"))) {
  const given = Deno.env.get("PYTHON");
  for (const python of given ? [given] : ["python3", "/usr/bin/python3"]) {
    const py = await run(python, ["bench/peers/pytorch_vit.py", "--repeat", "2"]);
    if (py.ok) {
      peer = JSON.parse(py.stdout.trim().split("\n").at(-1)!);
      break;
    }
  }
  if (!peer) {
    console.error(
      "bench:json: error: the PyTorch peer did not run: it needs a python3 with torch, transformers and peft (pip install torch transformers peft); set PYTHON to choose one",
    );
  }
}
const ratio = (ours: string, theirs: string) => {
  const a = results.find((r) => r.name.startsWith(ours))?.imagesPerSecond;
  const b = peer?.[theirs] as number | undefined;
  return a && b ? a / b : undefined;
};
const ratios = peer && {
  forward_b1: ratio("ViT-B/16 forward, batch 1", "forward_b1_images_per_s"),
  forward_b8: ratio("ViT-B/16 forward, batch 8", "forward_b8_images_per_s"),
  train_step_b8: ratio("ViT-B/16 LoRA training step", "train_step_b8_images_per_s"),
};

let adapter = "none";
try {
  const a = await navigator.gpu?.requestAdapter();
  adapter = a ? (a.info.description || a.info.vendor || "unnamed") : "none";
} catch {
  // no WebGPU
}
let machine = "unknown";
try {
  machine = Deno.hostname();
} catch {
  // no --allow-sys
}
const record = {
  date: new Date().toISOString(),
  machine,
  cpu: parsed.cpu,
  cores: navigator.hardwareConcurrency,
  webgpu_adapter: adapter,
  deno: Deno.version.deno,
  tfjs: tf.version.tfjs,
  results,
  peer,
  ratios,
};
const dir = join(root, "bench", "results");
await Deno.mkdir(dir, { recursive: true });
const path = join(dir, `${record.date.slice(0, 10)}-${machine.replace(/[^\w.-]/g, "_")}.json`);
await Deno.writeTextFile(path, JSON.stringify(record, null, 2) + "\n");

const rows = results.map((r) =>
  `| ${r.name} | ${r.avgMs.toFixed(1)} ms | ${r.imagesPerSecond?.toFixed(2) ?? "–"} |`
);
console.log(`| benchmark | time | images/s |\n| --- | --- | --- |\n${rows.join("\n")}`);
if (peer) {
  const pct = (x?: number) => (x === undefined ? "–" : `${(100 * x).toFixed(0)}%`);
  console.log(
    `\nPyTorch peer (${peer.implementation}: torch ${peer.torch}, transformers ${peer.transformers}, peft ${peer.peft}, ${peer.threads} threads on ${peer.cpu}), this module / PyTorch:` +
      `\n| ViT-B/16 | forward b1 | forward b8 | train step b8 |\n| --- | --- | --- | --- |` +
      `\n| images/s ratio | ${pct(ratios?.forward_b1)} | ${pct(ratios?.forward_b8)} | ${
        pct(ratios?.train_step_b8)
      } |`,
  );
}
console.log(`\nwritten: ${path}`);
if (results.some((r) => r.name.startsWith("ViT-B/16")) && !peer) Deno.exit(1);
