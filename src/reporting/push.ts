/**
 * A run back to the Hub: its best adapter in PEFT's format, the run's metrics and
 * configuration and a model card, in one commit, through npm:@huggingface/hub (`whoAmI`,
 * `createRepo`, `commit`: preupload, LFS upload, commit).
 *
 * @module
 */

import { basename, join } from "node:path";
import { commit, createRepo, HubApiError, whoAmI } from "@huggingface/hub";
import type { ViTClassifier } from "../model/classifier.ts";
import { loadClassifier } from "../model/loading.ts";
import { VitLoraError } from "../core/errors.ts";
import { exists } from "../core/files.ts";
import { type HubSettings, hubSettings } from "../hub/settings.ts";
import { parseMetrics, readRunConfig, type RunConfig } from "../runs/folder.ts";
import type { TrainConfig } from "../runs/config.ts";
import type { EvalEvent } from "../runs/events.ts";
import { keysFormat, type PeftFormat } from "../model/peft_format.ts";
import { openSafetensors } from "../model/safetensors_file.ts";
import { augmentMode } from "../data/transforms.ts";

/** Options of {@link pushRun}. */
export interface PushOptions {
  /** The run folder (`deno task train --out`). */
  run: string;
  /**
   * The repository, `owner/name` (default: your user name and
   * `<model>-l<lr>_b<batch>_e<epochs>_finetuned-lora-<dataset>-<timestamp>`).
   */
  repo?: string;
  /** Make a new repository private (default false). */
  private?: boolean;
  /** Also upload the merged transformers checkpoint, under `merged/` (default false). */
  merged?: boolean;
  /**
   * The adapter's naming (see `peft_format.ts`): `transformers-5` for PEFT on transformers 5,
   * `transformers-4` for PEFT on transformers 4.x (default: the run's own, as saved).
   */
  peftFormat?: PeftFormat;
  /** Hub settings (default: from the environment). */
  settings?: HubSettings;
}

/** What {@link pushRun} did. */
export interface PushResult {
  /** `owner/name`. */
  repo: string;
  /** The repository's page. */
  url: string;
  /** The commit made. */
  commit: string;
  /** The files committed. */
  files: string[];
}

const AUGMENTATION = {
  standard: "RandomResizedCrop + horizontal flip",
  trivial: "RandomResizedCrop + horizontal flip + TrivialAugmentWide",
  none: "none",
} as const;

function lastSegment(source: string): string {
  return basename(source.replace(/@.*$/, "").replace(/\/+$/, ""));
}

/**
 * The default repository name of a run, as the reference recipe names it.
 *
 * @example
 * ```ts
 * import { DEFAULT_TRAIN_CONFIG } from "@lora/vit";
 * import { defaultRepoName } from "./push.ts";
 *
 * console.log(defaultRepoName(DEFAULT_TRAIN_CONFIG, new Date("2026-11-27T03:05:00Z")));
 * // vit-base-patch16-224-in21k-l0.005_b64_e5_finetuned-lora-food101-20261127-0305
 * ```
 */
export function defaultRepoName(config: TrainConfig, date: Date = new Date()): string {
  const stamp = date.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 13);
  const name = `${lastSegment(config.model)}-l${config.lr}_b${config.batchSize}_e${config.epochs}` +
    `_finetuned-lora-${lastSegment(config.data)}-${stamp}`;
  return name.replace(/[^\w.-]/g, "-").slice(0, 96);
}

/** A local folder by its last name only (a user's paths stay on their machine); Hub ids as they are. */
function shown(source: string): string {
  return source.startsWith("/") || source.startsWith(".") || /^[A-Za-z]:[\\/]/.test(source)
    ? lastSegment(source)
    : source;
}

function yamlList(items: string[]): string {
  return items.map((i) => `- ${JSON.stringify(i)}`).join("\n");
}

/**
 * The model card: YAML front matter, configuration, results, how to load it.
 *
 * @example
 * ```ts ignore
 * import { readMetrics, readRunConfig } from "@lora/vit/training";
 * import { modelCard } from "./push.ts";
 *
 * const card = modelCard({
 *   repo: "me/food-lora",
 *   config: await readRunConfig("runs/food101"),
 *   metrics: await readMetrics("runs/food101"),
 *   endpoint: "https://huggingface.co",
 * });
 * await Deno.writeTextFile("README.md", card);
 * ```
 */
export function modelCard(init: {
  repo: string;
  config: RunConfig;
  metrics: (EvalEvent | { event: string })[];
  endpoint: string;
  /** The uploaded adapter's naming and targets (default: the run's configuration). */
  adapter?: { peftFormat: PeftFormat; targetModules: string[] | string };
}): string {
  const { repo, config, metrics } = init;
  const peftFormat = init.adapter?.peftFormat ?? config.train.peftFormat ?? "transformers-4";
  const targets = init.adapter?.targetModules ?? config.train.targetModules;
  const targetList = typeof targets === "string" ? [targets] : targets;
  const t = config.train;
  const model = shown(t.model);
  const evals = metrics.filter((m): m is EvalEvent => m.event === "eval");
  const validation = evals.filter((e) => e.split === "validation");
  const test = evals.find((e) => e.split === "test");
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  const dataset = t.data.includes("/") && !t.data.startsWith(".") && !t.data.startsWith("/")
    ? [t.data.replace(/@.*$/, "")]
    : [];
  const front = [
    "---",
    "library_name: peft",
    `base_model: ${JSON.stringify(model.replace(/@.*$/, ""))}`,
    ...(dataset.length ? ["datasets:", yamlList(dataset)] : []),
    "metrics:",
    yamlList(["accuracy"]),
    "tags:",
    yamlList(["image-classification", "vision", "vit", "lora", "peft", "vit-lora", "deno"]),
    "license: apache-2.0",
    "pipeline_tag: image-classification",
    "---",
  ].join("\n");
  const rows = (pairs: [string, unknown][]) =>
    pairs.map(([k, v]) => `| ${k} | ${Array.isArray(v) ? v.join(", ") : v} |`).join("\n");
  const labels = config.dataset?.labels?.length ?? "?";
  return `${front}

# ${repo.split("/")[1]}

A LoRA adapter for [${model}](${init.endpoint}/${model}) fine-tuned for image classification
on ${
    dataset.length
      ? `[${dataset[0]}](${init.endpoint}/datasets/${dataset[0]})`
      : `\`${shown(t.data)}\``
  }
(${labels} classes) with [vit-lora](https://jsr.io/@lora/vit), a Deno module that runs Hugging
Face's ViT + PEFT recipe on WebGPU. The adapter is in PEFT's format, with ${
    peftFormat === "transformers-5"
      ? "transformers 5's module names (`q_proj`, `v_proj`, …)"
      : "transformers 4's module names (`query`, `value`, …)"
  }: LoRA on ${targetList.map((m) => `\`${m}\``).join(", ")}, and the classifier trained in full${
    config.parameters
      ? ` (${config.parameters.trainable.toLocaleString("en-US")} trainable of ${
        config.parameters.total.toLocaleString("en-US")
      } parameters)`
      : ""
  }.

## Results

${
    test
      ? `On the held-out test split (${test.count} images), with the adapter of epoch ${test.epoch}, the best on validation: **accuracy ${
        pct(test.accuracy)
      }**, top-5 ${pct(test.top5)}, loss ${test.loss.toFixed(4)}.\n\n`
      : ""
  }| epoch | validation accuracy | top-5 | loss |
| --- | --- | --- | --- |
${
    validation.map((e) =>
      `| ${e.epoch} | ${pct(e.accuracy)} | ${pct(e.top5)} | ${e.loss.toFixed(4)} |`
    ).join("\n")
  }

## Training configuration

| setting | value |
| --- | --- |
${
    rows([
      ["base model", model],
      ["dataset", shown(t.data)],
      ["epochs", t.epochs],
      ["batch size", t.batchSize],
      ["gradient accumulation", t.gradAccum],
      ["learning rate", `${t.lr} (linear decay to 0, warmup ratio ${t.warmupRatio})`],
      ["optimizer", `AdamW (betas 0.9, 0.999, eps 1e-8, weight decay ${t.weightDecay})`],
      ["gradient clipping", `global norm ${t.maxGradNorm}`],
      ["LoRA", `r ${t.loraR}, alpha ${t.loraAlpha}, dropout ${t.loraDropout}`],
      ["target modules", targetList],
      ["adapter format", peftFormat],
      ["augmentation", AUGMENTATION[augmentMode(t.augment)]],
      ["seed", t.seed],
      ...(config.dataset?.parts
        ? [
          ["validation split", config.dataset.parts.validation],
          ["test split", config.dataset.parts.test],
        ] as [string, unknown][]
        : [[
          "validation / test split",
          `the original validation split, ${100 - 100 * t.testFraction}/${
            100 * t.testFraction
          } by the seed`,
        ] as [string, unknown]]),
      ...(config.backend
        ? [
          [
            "backend",
            `${config.backend.name}${config.backend.adapter ? ` (${config.backend.adapter})` : ""}`,
          ] as [string, unknown],
        ]
        : []),
    ])
  }

\`training_config.json\` holds the whole configuration and \`metrics.jsonl\` every step's loss, learning
rate and gradient norm and every evaluation.

## Use it

In Python, with ${
    peftFormat === "transformers-5"
      ? "transformers 5 and PEFT (checked with transformers 5.18 and PEFT 0.21; for transformers 4.x, push the run again with `--peft-format transformers-4`)"
      : "transformers 4.x and PEFT (checked with transformers 4.57 and PEFT 0.21; for transformers 5, push the run again with `--peft-format transformers-5`)"
  }:

\`\`\`python
import json
from huggingface_hub import hf_hub_download
from transformers import AutoImageProcessor, ViTForImageClassification
from peft import PeftModel

# the class names are in the run's configuration (a PEFT adapter carries none)
with open(hf_hub_download("${repo}", "training_config.json")) as f:
    names = json.load(f)["dataset"]["labels"]
base = ViTForImageClassification.from_pretrained(
    "${model}", num_labels=len(names),
    id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
model = PeftModel.from_pretrained(base, "${repo}")
processor = AutoImageProcessor.from_pretrained("${model}")
\`\`\`

In Deno, with vit-lora:

\`\`\`ts
import { loadClassifier } from "jsr:@lora/vit";

const classifier = await loadClassifier("${model}", { adapter: "${repo}" });
\`\`\`
`;
}

/** The naming of a saved adapter's keys (see `peft_format.ts`). */
async function adapterFormat(dir: string): Promise<PeftFormat> {
  const path = join(dir, "adapter_model.safetensors");
  using file = await openSafetensors(path);
  return keysFormat(file.entries.keys(), path) ?? "transformers-5";
}

function hubError(e: unknown, settings: HubSettings, what: string): VitLoraError {
  if (e instanceof VitLoraError) return e;
  const status = e instanceof HubApiError ? e.statusCode : undefined;
  if (status === 401 || status === 403) {
    return new VitLoraError(
      `${what}: ${status} from ${settings.endpoint}: the token from ${settings.tokenSource} cannot write there; set HF_TOKEN to a token with write access`,
    );
  }
  return new VitLoraError(`${what}: ${(e as Error)?.message ?? e}`);
}

/** The token's user name, by `whoAmI`. */
async function userName(settings: HubSettings): Promise<string> {
  try {
    return (await whoAmI({ accessToken: settings.token!, hubUrl: settings.endpoint })).name;
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
    // whoAmI also reads the token's details (`auth`), which some Hub mirrors leave out of
    // the answer; the name is all that is needed
    const res = await fetch(`${settings.endpoint}/api/whoami-v2`, {
      headers: { Authorization: `Bearer ${settings.token}` },
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok || typeof body?.name !== "string") throw e;
    return body.name;
  }
}

/**
 * Uploads a run's best adapter to the Hub, creating the repository when it is missing, in one
 * commit: `adapter_config.json`, `adapter_model.safetensors`, `metrics.jsonl`,
 * `training_config.json` (the run's `config.json`, renamed so that transformers does not
 * take it for a model config) and a `README.md` model card; with `merged`, also the merged
 * checkpoint under `merged/`.
 *
 * @example
 * ```ts ignore
 * import { pushRun } from "@lora/vit";
 * const { url } = await pushRun({ run: "runs/food101" }); // HF_TOKEN must be set
 * console.log(url);
 * ```
 */
export async function pushRun(options: PushOptions): Promise<PushResult> {
  const settings = options.settings ?? hubSettings();
  if (settings.offline) throw new VitLoraError("HF_HUB_OFFLINE=1: cannot push to the Hub offline");
  if (!settings.token) {
    throw new VitLoraError(
      "pushing to the Hub needs a token with write access: set HF_TOKEN (https://huggingface.co/settings/tokens)",
    );
  }
  const run = options.run;
  const config = await readRunConfig(run);
  const best = join(run, "best");
  for (const file of ["adapter_config.json", "adapter_model.safetensors"]) {
    if (!(await exists(join(best, file)))) {
      throw new VitLoraError(
        `${best}/${file}: missing: the run has no best adapter yet (train at least one epoch)`,
      );
    }
  }
  const metricsText = await Deno.readTextFile(join(run, "metrics.jsonl")).catch(() => "");
  const metrics = parseMetrics(metricsText);
  const credentials = { accessToken: settings.token, hubUrl: settings.endpoint };

  let repo = options.repo;
  if (!repo) {
    let user: string;
    try {
      user = await userName(settings);
    } catch (e) {
      throw hubError(e, settings, "cannot find your user name (whoami); pass --repo owner/name");
    }
    repo = `${user}/${defaultRepoName(config.train)}`;
  }
  if (!/^[\w.-]+\/[\w.-]+$/.test(repo)) {
    throw new VitLoraError(`--repo: "${repo}" is not of the form owner/name`);
  }
  try {
    await createRepo({
      ...credentials,
      repo: { type: "model", name: repo },
      private: options.private ?? false,
    });
  } catch (e) {
    if (!(e instanceof HubApiError && e.statusCode === 409)) {
      throw hubError(e, settings, `cannot create ${repo}`);
    }
    // it exists: commit to it
  }

  const files = new Map<string, Blob>();
  // the run's model with its best adapter, loaded only when the adapter must be written in the
  // other generation's names, or merged
  let clf: ViTClassifier | undefined;
  const model = async () =>
    clf ??= await loadClassifier(config.train.model, {
      adapter: best,
      labels: config.dataset?.labels,
      progress: false,
      hub: settings,
    });
  const saved = await adapterFormat(best);
  const peftFormat = options.peftFormat ?? saved;
  try {
    // the adapter in the naming asked for: as saved, or written again in the other
    const adapter = peftFormat === saved
      ? new Map(
        await Promise.all(
          ["adapter_config.json", "adapter_model.safetensors"].map(async (name) =>
            [name, await Deno.readFile(join(best, name))] as const
          ),
        ),
      )
      : await (await model()).adapterFiles({ peftFormat });
    for (const [name, bytes] of adapter) files.set(name, new Blob([bytes as BlobPart]));
    const adapterConfig = JSON.parse(
      new TextDecoder().decode(adapter.get("adapter_config.json")),
    );
    // the run's configuration, with local folders by their last names only
    const uploaded = JSON.parse(await Deno.readTextFile(join(run, "config.json")));
    for (const key of ["model", "data", "adapter"]) {
      if (typeof uploaded.train?.[key] === "string") {
        uploaded.train[key] = shown(uploaded.train[key]);
      }
    }
    if (typeof uploaded.dataset?.root === "string") {
      uploaded.dataset.root = shown(uploaded.dataset.root);
    }
    files.set("training_config.json", new Blob([JSON.stringify(uploaded, null, 2) + "\n"]));
    files.set("metrics.jsonl", new Blob([metricsText]));
    files.set(
      "README.md",
      new Blob([
        modelCard({
          repo,
          config,
          metrics,
          endpoint: settings.endpoint,
          adapter: { peftFormat, targetModules: adapterConfig.target_modules },
        }),
      ]),
    );
    if (options.merged) {
      for (const [name, bytes] of await (await model()).mergedFiles()) {
        files.set(`merged/${name}`, new Blob([bytes as BlobPart]));
      }
    }
  } finally {
    clf?.dispose();
  }
  try {
    const out = await commit({
      ...credentials,
      repo: { type: "model", name: repo },
      title: `Upload LoRA adapter from vit-lora run ${basename(run)}`,
      operations: [...files].map(([path, content]) => ({
        operation: "addOrUpdate",
        path,
        content,
      })),
      useXet: false,
    });
    return {
      repo,
      url: `${settings.endpoint}/${repo}`,
      commit: out?.commit.oid ?? "",
      files: [...files.keys()],
    };
  } catch (e) {
    throw hubError(e, settings, `cannot commit to ${repo}`);
  }
}
