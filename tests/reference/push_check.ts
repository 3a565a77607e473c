/**
 * End to end: a run pushed by this module to the Hub imitation (tests/hub_server.ts) loads in
 * Python with the real `huggingface_hub` + transformers + PEFT, by repository id, with nothing
 * cached, and gives this module's logits.
 *
 *     deno run -A tests/reference/push_check.ts [--keep] [--python /work/v/bin/python]
 *       [--python4 /work/v4/bin/python]
 *
 * 1. starts FakeHub and seeds `tester/vit-tiny-base` with `tests/fixtures/hf5/model/`;
 * 2. trains a tiny run from the Hub id `tester/vit-tiny-base` (through the imitation) on
 *    `tests/fixtures/hf5/data` (1 epoch, batch 8, LoRA r 4 on query/value, cpu);
 * 3. pushes it to `tester/pushed-lora` (the run's own naming, transformers-5) and again with
 *    `peftFormat: "transformers-4"` to `tester/pushed-lora-t4`;
 * 4. computes this module's logits on the validation pixels with `loadClassifier(base,
 *    { adapter: run/best })` (and, as a cross-check, from the pushed repositories by id);
 * 5. runs, each with a fresh HF_HOME and HF_ENDPOINT = the imitation:
 *    - `push_check.py` on `tester/pushed-lora` with transformers 5 (must pass: logits within
 *      1e-4 relative, no missing/unexpected-keys warning);
 *    - the pushed model card's ```python block, as-is (must exit 0), and executed inside
 *      `push_check.py --snippet` so that its `model` and `processor` are checked too (must pass);
 *    - the same for `tester/pushed-lora-t4` on transformers 5 (reported only: that push is for
 *      transformers 4, which the card says) and, when `--python4` exists (transformers 4.x), on
 *      transformers 4 (must pass).
 *
 * Exits 1 when a required check fails. Prints each Python check's JSON and a summary.
 *
 * @module
 */

import { join } from "node:path";
import { type Tensor4D, tf } from "../../src/core/tf.ts";
import type { HubSettings } from "../../src/hub/settings.ts";
import { loadClassifier } from "../../src/model/loading.ts";
import { readSafetensors, writeSafetensors } from "../../src/model/safetensors_file.ts";
import { pushRun } from "../../src/reporting/push.ts";
import { train } from "../../src/training/trainer.ts";
import { FakeHub } from "../hub/hub_server.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const HF5 = join(ROOT, "tests/fixtures/hf5");
const MODEL = join(HF5, "model");
const DATA = join(HF5, "data");
const BASE_ID = "tester/vit-tiny-base";
const REPO_T5 = "tester/pushed-lora";
const REPO_T4 = "tester/pushed-lora-t4";
const CHECK_PY = join(ROOT, "tests/reference/push_check.py");

const args = [...Deno.args];
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args.splice(i, 1).length > 0 : false;
};
const option = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args.splice(i, 2)[1] : fallback;
};
const keep = flag("--keep");
const PYTHON = option("--python", "/work/v/bin/python");
const PYTHON4 = option("--python4", "/work/v4/bin/python");

const BAD_WARNING =
  /missing adapter keys|unexpected (adapter )?key|did not match any targeted module|no module was matched|missing keys|unexpected keys|were not initialized from the model checkpoint/i;

const log = (s: string) => console.log(s);

async function folderFiles(dir: string): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile) out[e.name] = await Deno.readFile(join(dir, e.name));
  }
  return out;
}

function relError(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (a.length !== ref.length) throw new Error(`lengths differ: ${a.length} vs ${ref.length}`);
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return diff / scale;
}

/** The routes a stretch of `hub.requests` touched, with counts. */
function routes(requests: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of requests) out[r] = (out[r] ?? 0) + 1;
  return out;
}

interface PyResult {
  name: string;
  required: boolean;
  rc: number;
  json?: Record<string, unknown>;
  stdout: string;
  stderr: string;
  requests: Record<string, number>;
  badStderr: string[];
}

const tmp = await Deno.makeTempDir({ prefix: "vit-lora-push-check-" });
const hub = await FakeHub.start();
const results: PyResult[] = [];
let failed = false;
try {
  // 1. the base model on the imitation, whose LFS redirects go to another host name, as the
  // Hub's go to its CDN (huggingface_hub follows a redirect to the same host, and the file's
  // metadata would then be the CDN's answer's, without X-Repo-Commit)
  hub.cdnUrl = hub.url.replace("127.0.0.1", "localhost");
  hub.addRepo("model", BASE_ID, await folderFiles(MODEL));
  const settings: HubSettings = {
    endpoint: hub.url,
    token: hub.token,
    tokenSource: "HF_TOKEN",
    cacheDir: join(tmp, "deno-hf-cache"),
    offline: false,
  };
  log(`FakeHub at ${hub.url}; seeded ${BASE_ID}; work folder ${tmp}`);

  // 2. a tiny run from the Hub id
  const run = join(tmp, "run");
  const t0 = performance.now();
  const result = await train({
    model: BASE_ID,
    data: DATA,
    out: run,
    epochs: 1,
    batchSize: 8,
    gradAccum: 1,
    loraR: 4,
    targetModules: ["query", "value"],
    backend: "cpu",
    workers: 0,
    progress: false,
    hub: settings,
  });
  const runConfig = JSON.parse(await Deno.readTextFile(join(run, "config.json")));
  log(
    `trained ${run}: ${result.steps} steps, best epoch ${result.bestEpoch}, validation accuracy ${result.validation?.accuracy}, config.train.model ${
      JSON.stringify(runConfig.train.model)
    }, peftFormat ${runConfig.train.peftFormat} (${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s)`,
  );
  const labels: string[] = runConfig.dataset?.labels ?? [];
  log(`labels: ${JSON.stringify(labels)}`);

  // 3. two pushes
  const pushed5 = await pushRun({ run, repo: REPO_T5, settings });
  log(`pushed ${pushed5.repo} @ ${pushed5.commit}: ${pushed5.files.join(", ")}`);
  const pushed4 = await pushRun({ run, repo: REPO_T4, settings, peftFormat: "transformers-4" });
  log(`pushed ${pushed4.repo} @ ${pushed4.commit}: ${pushed4.files.join(", ")}`);
  const text = (repo: string, path: string) =>
    new TextDecoder().decode(hub.files("model", repo)!.get(path)!);
  for (const repo of [REPO_T5, REPO_T4]) {
    const config = JSON.parse(text(repo, "adapter_config.json"));
    const keys = [
      ...(await readSafetensorsBytes(hub.files("model", repo)!.get("adapter_model.safetensors")!))
        .keys(),
    ];
    log(
      `${repo}: adapter_config target_modules ${JSON.stringify(config.target_modules)}, ` +
        `modules_to_save ${JSON.stringify(config.modules_to_save)}, base_model_name_or_path ${
          JSON.stringify(config.base_model_name_or_path)
        }, r ${config.r}, lora_alpha ${config.lora_alpha}, task_type ${
          JSON.stringify(config.task_type)
        }; ${keys.length} tensors, e.g. ${keys.sort()[0]}`,
    );
  }

  // 4. this module's logits on the validation pixels
  const preprocessor = JSON.parse(
    await Deno.readTextFile(join(MODEL, "preprocessor_config.json")),
  );
  const mean: number[] = preprocessor.image_mean, std: number[] = preprocessor.image_std;
  const raw = (await readSafetensors(join(DATA, "pixels.safetensors"))).get("validation.pixels")!;
  const nhwc = tf.tensor4d(
    Float32Array.from(raw.data),
    raw.shape as [number, number, number, number],
  );
  const pixels = tf.tidy(() =>
    nhwc.mul(preprocessor.rescale_factor ?? 1 / 255).sub(mean).div(std).transpose([0, 3, 1, 2])
  ) as Tensor4D;
  const clf = await loadClassifier(MODEL, {
    adapter: join(run, "best"),
    backend: "cpu",
    progress: false,
  });
  const logitsT = clf.logits(pixels);
  const logits = await logitsT.data() as Float32Array;
  const K = logitsT.shape[1];
  clf.dispose();
  logitsT.dispose();
  log(`module logits: [${raw.shape[0]}, ${K}] on ${raw.shape.join("x")} uint8 validation pixels`);
  // cross-check: the pushed repositories read back by this module, by id, through the imitation
  for (const repo of [REPO_T5, REPO_T4]) {
    const back = await loadClassifier(BASE_ID, {
      adapter: repo,
      backend: "cpu",
      progress: false,
      hub: settings,
    });
    const l = back.logits(pixels);
    const err = relError(await l.data(), logits);
    log(
      `module reads ${repo} back by id (${back.peftFormat}): max rel diff ${err.toExponential(2)}`,
    );
    if (err > 1e-5) {
      log(`  FAIL: the pushed adapter ${repo} is not the run's best adapter`);
      failed = true;
    }
    l.dispose();
    back.dispose();
  }
  const expected = join(tmp, "expected.safetensors");
  await writeSafetensors(expected, {
    pixel_values: { shape: pixels.shape, data: await pixels.data() as Float32Array },
    logits: { shape: [raw.shape[0], K], data: logits },
    images: { shape: raw.shape, data: await nhwc.data() as Float32Array },
  });
  tf.dispose([pixels, nhwc]);

  // 5. Python, by id, with nothing cached
  let homes = 0;
  const python = async (
    name: string,
    required: boolean,
    py: string,
    argv: string[],
    parseJson: boolean,
  ): Promise<PyResult> => {
    const home = join(tmp, `hf-home-${++homes}`);
    await Deno.mkdir(home);
    const before = hub.requests.length;
    const out = await new Deno.Command(py, {
      args: argv,
      cwd: tmp,
      clearEnv: true,
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        HOME: home,
        LANG: "C.UTF-8",
        HF_ENDPOINT: hub.url,
        HF_TOKEN: hub.token,
        HF_HOME: home,
        HF_HUB_DISABLE_TELEMETRY: "1",
        PYTHONWARNINGS: "default",
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    let json: Record<string, unknown> | undefined;
    if (parseJson) {
      try {
        json = JSON.parse(stdout);
      } catch {
        // left undefined: the output is reported as text
      }
    }
    const r: PyResult = {
      name,
      required,
      rc: out.code,
      json,
      stdout,
      stderr,
      requests: routes(hub.requests.slice(before)),
      badStderr: stderr.split("\n").filter((l) => BAD_WARNING.test(l)),
    };
    results.push(r);
    return r;
  };
  const check = (repo: string, py: string, name: string, required: boolean) =>
    python(name, required, py, [
      CHECK_PY,
      "--base-id",
      BASE_ID,
      "--repo",
      repo,
      "--expected",
      expected,
      "--num-labels",
      String(K),
    ], true);
  const snippets = async (repo: string, py: string, label: string, required: boolean) => {
    const card = text(repo, "README.md");
    const block = card.match(/```python\n([\s\S]*?)```/)?.[1];
    if (!block) {
      log(`FAIL: ${repo}'s README.md has no python block`);
      failed = true;
      return;
    }
    const file = join(tmp, `card-${repo.replace("/", "--")}.py`);
    await Deno.writeTextFile(file, block);
    await Deno.writeTextFile(file.replace(/\.py$/, ".md"), card);
    await python(`${repo} card snippet as-is, ${label}`, required, py, [file], false);
    await python(`${repo} card snippet checked, ${label}`, required, py, [
      CHECK_PY,
      "--base-id",
      BASE_ID,
      "--repo",
      repo,
      "--expected",
      expected,
      "--snippet",
      file,
    ], true);
  };

  await check(REPO_T5, PYTHON, `${REPO_T5} by PeftModel.from_pretrained, transformers 5`, true);
  await snippets(REPO_T5, PYTHON, "transformers 5", true);
  await check(REPO_T4, PYTHON, `${REPO_T4} by PeftModel.from_pretrained, transformers 5`, false);
  await snippets(REPO_T4, PYTHON, "transformers 5", false);
  const have4 = await Deno.stat(PYTHON4).then(() => true, () => false);
  if (have4) {
    await check(REPO_T4, PYTHON4, `${REPO_T4} by PeftModel.from_pretrained, transformers 4`, true);
    await snippets(REPO_T4, PYTHON4, "transformers 4", true);
    await check(REPO_T5, PYTHON4, `${REPO_T5} by PeftModel.from_pretrained, transformers 4`, false);
  } else {
    log(`(${PYTHON4} not found: the transformers-4 push is not checked on transformers 4)`);
  }

  for (const r of results) {
    const ok = r.rc === 0 && r.badStderr.length === 0;
    if (r.required && !ok) failed = true;
    log(
      `\n=== ${r.name}: ${ok ? "OK" : "FAILED"}${
        r.required ? "" : " (reported only)"
      } (exit ${r.rc})`,
    );
    if (r.json) {
      const { cached: _cached, lora_layers: _layers, ...rest } = r.json;
      log(JSON.stringify(rest, null, 1));
      log(`cached afterwards: ${JSON.stringify(r.json.cached)}`);
    } else if (r.stdout.trim()) log(`stdout:\n${r.stdout.trim()}`);
    if (r.stderr.trim()) log(`stderr (last 2000 chars):\n${r.stderr.trim().slice(-2000)}`);
    if (r.badStderr.length) log(`key warnings on stderr: ${JSON.stringify(r.badStderr)}`);
    log(`requests to the imitation: ${JSON.stringify(r.requests)}`);
  }
  log("\n=== summary");
  for (const r of results) {
    const j = r.json as { max_rel_logits?: number; warnings?: unknown[]; errors?: string[] };
    log(
      `${r.rc === 0 && !r.badStderr.length ? "ok  " : "FAIL"} ${
        r.required ? "required" : "reported"
      } ${r.name}` +
        (j?.max_rel_logits !== undefined
          ? `: max rel logits ${j.max_rel_logits.toExponential(2)}`
          : "") +
        (j?.warnings ? `, ${j.warnings.length} warnings` : "") +
        (j?.errors?.length ? `, errors: ${j.errors.join(" | ").slice(0, 300)}` : ""),
    );
  }
  log(failed ? "\nPUSH CHECK FAILED" : "\nPUSH CHECK PASSED");
} catch (e) {
  failed = true;
  console.error(e);
  const tail = hub.requests.slice(-30);
  console.error(`last requests to the imitation:\n${tail.join("\n")}`);
} finally {
  await hub.close();
  if (keep) log(`kept ${tmp}`);
  else await Deno.remove(tmp, { recursive: true }).catch(() => {});
}
Deno.exit(failed ? 1 : 0);

/** The tensor names of safetensors bytes. */
function readSafetensorsBytes(bytes: Uint8Array): Map<string, unknown> {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  delete header.__metadata__;
  return new Map(Object.entries(header));
}
