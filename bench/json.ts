/**
 * `deno task bench:json`: runs the bench suite (`deno bench --json`) and the two peers of its
 * ViT-B/16 measurements: PyTorch + PEFT (bench/peers/pytorch_vit.py, when python3 with torch
 * is there) and transformers.js (bench/peers/transformersjs_vit.ts: the same model exported
 * to ONNX, on ONNX Runtime's native CPU engine). Writes `bench/results/<date>-<machine>.json`
 * with images/s for every measurement, the ratios to each peer, the CPU, the engines (BLAS,
 * ONNX Runtime), the backend adapter, and the Deno, tfjs, PyTorch and transformers.js
 * versions, so that runs on different machines can be compared. Prints the tables the README
 * shows.
 *
 * The ViT-B/16 measurements and the peers run in rounds, one after the other (`--rounds N`,
 * default 2: this module's ViT-B/16 bench, PyTorch, transformers.js; again): each figure is
 * the best round's, so that a burst of another program's work on a shared machine does not
 * decide a ratio. Every round's figures are recorded too.
 *
 * Usage: deno task bench:json [--rounds N] [bench files…] (default: all of bench/)
 */

import { join } from "node:path";
import { quietWayland } from "../src/backend/deno_platform.ts";
import { blasStatus } from "../src/backend/blas.ts";
import { tf } from "../src/core/tf.ts";

interface BenchResult {
  name: string;
  group?: string;
  avgMs: number;
  images?: number;
  imagesPerSecond?: number;
}

type Peer = Record<string, unknown>;

const root = new URL("..", import.meta.url).pathname;
const args = [...Deno.args];
const roundsAt = args.indexOf("--rounds");
const rounds = roundsAt >= 0 ? Math.max(1, Number(args.splice(roundsAt, 2)[1]) || 1) : 2;
const files = args.length ? args : ["bench/"];
const VIT = "ViT-B/16";

async function run(cmd: string, args: string[]): Promise<{ ok: boolean; stdout: string }> {
  try {
    const out = await new Deno.Command(cmd, { args, cwd: root, stderr: "inherit" }).output();
    return { ok: out.success, stdout: new TextDecoder().decode(out.stdout) };
  } catch {
    return { ok: false, stdout: "" };
  }
}

/** `deno bench --json` of `paths`, as results. */
async function benches(paths: string[]): Promise<{ results: BenchResult[]; cpu?: string }> {
  const bench = await run(Deno.execPath(), [
    "bench",
    "--json",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-ffi", // OpenBLAS and ONNX Runtime's addon (the CPU path's engines)
    ...paths,
  ]);
  if (!bench.ok) console.error("bench:json: some benchmarks failed (see above)");
  const parsed = JSON.parse(bench.stdout || "{}");
  const results: BenchResult[] = [];
  for (const b of parsed.benches ?? []) {
    const ok = b.results?.[0]?.ok;
    if (!ok) continue;
    const avgMs = ok.avg / 1e6;
    const images =
      Number(/\((\d+) images\)/.exec(b.name)?.[1] ?? /batch (\d+)/.exec(b.name)?.[1]) ||
      undefined;
    results.push({
      name: b.name,
      group: b.group,
      avgMs,
      images,
      imagesPerSecond: images ? images / (avgMs / 1000) : undefined,
    });
  }
  return { results, cpu: parsed.cpu };
}

/** The last line of a peer's stdout, parsed. */
function lastJson(stdout: string): Peer {
  return JSON.parse(stdout.trim().split("\n").at(-1)!);
}

// the PyTorch peer: transformers + PEFT on pip's torch, what a user installs today. $PYTHON
// when set (and only it), else the first python3 on the PATH that runs it; its own stderr
// says why one cannot.
let python: string | undefined;
async function pytorchPeer(): Promise<Peer | undefined> {
  const given = Deno.env.get("PYTHON");
  for (const candidate of python ? [python] : given ? [given] : ["python3", "/usr/bin/python3"]) {
    const py = await run(candidate, ["bench/peers/pytorch_vit.py", "--repeat", "2"]);
    if (py.ok) {
      python = candidate;
      return lastJson(py.stdout);
    }
  }
  console.error(
    "bench:json: error: the PyTorch peer did not run: it needs a python3 with torch, transformers and peft (pip install torch transformers peft); set PYTHON to choose one",
  );
}

// the transformers.js peer: the same ViT-B/16 (this bench's weights, exported to ONNX) through
// @huggingface/transformers on onnxruntime-node, what a JavaScript user runs on a CPU today
async function transformersJsPeer(): Promise<Peer | undefined> {
  const js = await run(Deno.execPath(), [
    "run",
    "--lock=dev.lock", // the peer's packages are the benchmarks', not the module's
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-ffi",
    "--allow-sys",
    "bench/peers/transformersjs_vit.ts",
    "--repeat",
    "2",
  ]);
  if (js.ok) return lastJson(js.stdout);
  console.error("bench:json: error: the transformers.js peer did not run (see above)");
}

/** Per key, the best (highest) images/s of the rounds; other fields from the first. */
function best(peers: (Peer | undefined)[]): Peer | undefined {
  const got = peers.filter((p): p is Peer => !!p);
  if (!got.length) return undefined;
  const out: Peer = { ...got[0] };
  for (const key of Object.keys(out)) {
    if (key.endsWith("_images_per_s")) {
      out[key] = Math.max(...got.map((p) => Number(p[key]) || 0));
    }
  }
  return out;
}

// round 1: the whole suite, then the peers; later rounds: the ViT-B/16 bench and the peers
const suite = await benches(files);
const results = suite.results;
const hasVit = results.some((r) => r.name.startsWith(VIT));
const vitRounds: BenchResult[][] = [results.filter((r) => r.name.startsWith(VIT))];
const torchRounds: (Peer | undefined)[] = [];
const jsRounds: (Peer | undefined)[] = [];
if (hasVit) {
  for (let round = 1; round <= rounds; round++) {
    if (round > 1) {
      const again = await benches(["bench/vit_bench.ts"]);
      vitRounds.push(again.results.filter((r) => r.name.startsWith(VIT)));
    }
    torchRounds.push(await pytorchPeer());
    jsRounds.push(await transformersJsPeer());
  }
  // this module's ViT-B/16 figures: the best round's
  for (const r of results) {
    if (!r.name.startsWith(VIT) || !r.images) continue;
    const times = vitRounds.map((rs) => rs.find((x) => x.name === r.name)?.avgMs ?? Infinity);
    r.avgMs = Math.min(...times);
    r.imagesPerSecond = r.images / (r.avgMs / 1000);
  }
}
const peer = best(torchRounds);
const jsPeer = best(jsRounds);

const ratioTo = (other: Peer | undefined) => (ours: string, theirs: string) => {
  const a = results.find((r) => r.name.startsWith(ours))?.imagesPerSecond;
  const b = other?.[theirs] as number | undefined;
  return a && b ? a / b : undefined;
};
const ratio = ratioTo(peer);
const ratios = peer && {
  forward_b1: ratio(`${VIT} forward, batch 1`, "forward_b1_images_per_s"),
  forward_b8: ratio(`${VIT} forward, batch 8`, "forward_b8_images_per_s"),
  train_step_b8: ratio(`${VIT} LoRA training step`, "train_step_b8_images_per_s"),
};
const jsRatio = ratioTo(jsPeer);
const ratiosTransformersJs = jsPeer && {
  forward_b1: jsRatio(`${VIT} forward, batch 1`, "forward_b1_images_per_s"),
  forward_b8: jsRatio(`${VIT} forward, batch 8`, "forward_b8_images_per_s"),
};

let adapter = "none";
try {
  quietWayland(); // as initBackend does: no Mesa error line on a machine without a session
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
const blas = blasStatus();
const images = (rs: BenchResult[]) =>
  Object.fromEntries(rs.filter((r) => r.imagesPerSecond).map((r) => [r.name, r.imagesPerSecond]));
const record = {
  date: new Date().toISOString(),
  machine,
  cpu: suite.cpu,
  cores: navigator.hardwareConcurrency,
  webgpu_adapter: adapter,
  deno: Deno.version.deno,
  tfjs: tf.version.tfjs,
  blas: blas.blas ? `${blas.blas.config} (${blas.blas.path})` : `none: ${blas.reason}`,
  rounds: hasVit ? rounds : 0,
  results,
  peer,
  ratios,
  peer_transformers_js: jsPeer,
  ratios_transformers_js: ratiosTransformersJs,
  every_round: hasVit
    ? {
      this_module: vitRounds.map(images),
      pytorch: torchRounds,
      transformers_js: jsRounds,
    }
    : undefined,
};
const dir = join(root, "bench", "results");
await Deno.mkdir(dir, { recursive: true });
const path = join(dir, `${record.date.slice(0, 10)}-${machine.replace(/[^\w.-]/g, "_")}.json`);
await Deno.writeTextFile(path, JSON.stringify(record, null, 2) + "\n");

const rows = results.map((r) =>
  `| ${r.name} | ${r.avgMs.toFixed(1)} ms | ${r.imagesPerSecond?.toFixed(2) ?? "–"} |`
);
console.log(`| benchmark | time | images/s |\n| --- | --- | --- |\n${rows.join("\n")}`);
const pct = (x?: number) => (x === undefined ? "–" : `${(100 * x).toFixed(0)}%`);
console.log(`\nCPU: ${record.cpu}, ${record.cores} cores; BLAS: ${record.blas}`);
if (hasVit) console.log(`${VIT} figures and peers: the best of ${rounds} interleaved rounds`);
if (peer) {
  console.log(
    `\nPyTorch peer (${peer.implementation}: torch ${peer.torch}, transformers ${peer.transformers}, peft ${peer.peft}, ${peer.threads} threads on ${peer.cpu}), this module / PyTorch:` +
      `\n| ${VIT} | forward b1 | forward b8 | train step b8 |\n| --- | --- | --- | --- |` +
      `\n| images/s ratio | ${pct(ratios?.forward_b1)} | ${pct(ratios?.forward_b8)} | ${
        pct(ratios?.train_step_b8)
      } |`,
  );
}
if (jsPeer) {
  console.log(
    `\ntransformers.js peer (transformers.js ${jsPeer.transformers_js}, onnxruntime-node ${jsPeer.onnxruntime_node}, ${jsPeer.threads} threads on ${jsPeer.cpu}), this module / transformers.js:` +
      `\n| ${VIT} | forward b1 | forward b8 |\n| --- | --- | --- |` +
      `\n| images/s ratio | ${pct(ratiosTransformersJs?.forward_b1)} | ${
        pct(ratiosTransformersJs?.forward_b8)
      } |`,
  );
}
console.log(`\nwritten: ${path}`);
if (hasVit && (!peer || !jsPeer)) Deno.exit(1);
