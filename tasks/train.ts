/**
 * `deno task train`: fine-tunes a ViT with LoRA on a parquet image dataset, with the
 * reference recipe's defaults (ViT-B/16 in21k, Food-101, r 32, alpha 16, lr 5e-3, batch 64 ×
 * 4, 5 epochs). Run `deno task train --help` for the flags.
 *
 * Ctrl-C finishes the optimizer step in progress, saves a checkpoint and exits; `--resume RUN`
 * continues from it. A second Ctrl-C exits at once.
 *
 * @module
 */

import {
  DEFAULT_TRAIN_CONFIG,
  hubSettings,
  parseBackendName,
  parsePeftFormat,
  pushRun,
  train,
  type TrainOptions,
  VitLoraError,
} from "../mod.ts";
import { countFlag, numberFlag, parseFlags, runTask } from "./cli.ts";

const HELP =
  `Fine-tune a ViT with LoRA on an image-classification dataset in the Hub's parquet layout.

usage: deno task train [flags]

data and model
  --model ID|DIR        base model: a Hub id (owner/name[@revision]) or a folder in HF layout
                        (default ${DEFAULT_TRAIN_CONFIG.model})
  --data ID|DIR         dataset: a Hub id or a folder of data/train-*.parquet,
                        data/validation-*.parquet (default ${DEFAULT_TRAIN_CONFIG.data})
  --adapter ID|DIR      start from this PEFT adapter (its r, alpha, targets and classifier)
  --test-fraction F     part of the validation split held out as test (default 0.3)

recipe (defaults: the reference run)
  --epochs N            passes over the training split (default 5)
  --batch-size N        images a micro-batch (default 64)
  --grad-accum N        micro-batches an optimizer step (default 4)
  --lr X                peak learning rate, decayed linearly to 0 (default 5e-3)
  --weight-decay X      AdamW's decoupled weight decay (default 0)
  --warmup-ratio X      fraction of steps warming up from 0 (default 0)
  --max-steps N         stop after N optimizer steps
  --lora-r N            LoRA rank (default 32)
  --lora-alpha X        LoRA alpha (default 16)
  --lora-dropout X      dropout on the LoRA input (default 0.1)
  --target-modules A,B  modules that get LoRA, in either generation's names: query,value
                        and q_proj,v_proj are the same (default query,value)
  --peft-format F       the adapters' naming: transformers-5 (PEFT on transformers 5, the
                        default) or transformers-4 (PEFT on transformers 4.x)
  --seed N              seed of split, order, augmentation, dropout, new weights (default 42)
  --no-augment          train on the evaluation transform (no random crop or flip)
  --no-shuffle          train in file order

run
  --out RUN             the run folder (default runs/<date-time>)
  --resume RUN          continue RUN from its last complete checkpoint
  --backend NAME        webgpu, wasm or cpu (default: VIT_LORA_BACKEND, else webgpu on a
                        hardware GPU, else wasm)
  --workers N           decoding workers (default: cores - 1)
  --replicas N          model copies in workers on wasm, to use every core (default: one
                        per further core, up to 3, for models of ViT-B's size)
  --prefetch N          batches decoded ahead (default 2)
  --report-to wandb     also stream metrics to Weights & Biases (needs WANDB_API_KEY)
  --push-to-hub         upload the best adapter to the Hub at the end (deno task push)
  --hub-repo owner/name the repository for --push-to-hub (default: see deno task push --help)
  --chunk-size N        images a forward/backward pass; batches are split into chunks whose
                        gradients add up to the batch's (default: what fits 12 GiB, 13 for ViT-B)
  -h, --help            this text
`;

/** Parses the command line into {@link TrainOptions}. */
export function parseTrainArgs(
  args: string[],
): TrainOptions & { help?: boolean; pushToHub?: boolean; hubRepo?: string } {
  const parsed = parseFlags({
    args,
    allowNegative: true,
    options: {
      model: { type: "string" },
      data: { type: "string" },
      adapter: { type: "string" },
      epochs: { type: "string" },
      "batch-size": { type: "string" },
      "grad-accum": { type: "string" },
      lr: { type: "string" },
      "weight-decay": { type: "string" },
      "warmup-ratio": { type: "string" },
      "lora-r": { type: "string" },
      "lora-alpha": { type: "string" },
      "lora-dropout": { type: "string" },
      "target-modules": { type: "string" },
      "peft-format": { type: "string" },
      seed: { type: "string" },
      augment: { type: "boolean" },
      shuffle: { type: "boolean" },
      "test-fraction": { type: "string" },
      "max-steps": { type: "string" },
      resume: { type: "string" },
      out: { type: "string" },
      backend: { type: "string" },
      workers: { type: "string" },
      replicas: { type: "string" },
      prefetch: { type: "string" },
      "chunk-size": { type: "string" },
      "push-to-hub": { type: "boolean" },
      "report-to": { type: "string" },
      "hub-repo": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const v = parsed.values;
  return {
    help: v.help,
    pushToHub: v["push-to-hub"],
    hubRepo: v["hub-repo"],
    model: v.model,
    data: v.data,
    adapter: v.adapter,
    epochs: numberFlag("epochs", v.epochs),
    batchSize: numberFlag("batch-size", v["batch-size"]),
    gradAccum: numberFlag("grad-accum", v["grad-accum"]),
    lr: numberFlag("lr", v.lr),
    weightDecay: numberFlag("weight-decay", v["weight-decay"]),
    warmupRatio: numberFlag("warmup-ratio", v["warmup-ratio"]),
    loraR: numberFlag("lora-r", v["lora-r"]),
    loraAlpha: numberFlag("lora-alpha", v["lora-alpha"]),
    loraDropout: numberFlag("lora-dropout", v["lora-dropout"]),
    targetModules: v["target-modules"]?.split(",").map((s) => s.trim()).filter(Boolean),
    peftFormat: v["peft-format"] === undefined ? undefined : parsePeftFormat(v["peft-format"]),
    seed: numberFlag("seed", v.seed),
    augment: v.augment,
    shuffle: v.shuffle,
    testFraction: numberFlag("test-fraction", v["test-fraction"]),
    maxSteps: numberFlag("max-steps", v["max-steps"]),
    resume: v.resume,
    out: v.out,
    backend: v.backend === undefined ? undefined : parseBackendName(v.backend),
    workers: countFlag("workers", v.workers),
    replicas: countFlag("replicas", v.replicas),
    prefetch: countFlag("prefetch", v.prefetch),
    chunkSize: countFlag("chunk-size", v["chunk-size"], 1),
    reportTo: v["report-to"]?.split(",").map((s) => s.trim()).filter(Boolean),
  };
}

if (import.meta.main) {
  await runTask(async () => {
    const { help, pushToHub, hubRepo, ...options } = parseTrainArgs(Deno.args);
    if (help) {
      console.log(HELP);
      Deno.exit(0);
    }
    if (pushToHub) {
      // fail now, not after hours of training
      const hub = hubSettings();
      if (hub.offline) throw new VitLoraError("--push-to-hub: HF_HUB_OFFLINE=1 forbids uploading");
      if (!hub.token) {
        throw new VitLoraError(
          "--push-to-hub needs a token with write access: set HF_TOKEN (https://huggingface.co/settings/tokens)",
        );
      }
    }
    const stop = new AbortController();
    const onInterrupt = () => {
      if (stop.signal.aborted) Deno.exit(130);
      console.error("\nstopping after this step to save a checkpoint (Ctrl-C again to quit now)");
      stop.abort();
    };
    Deno.addSignalListener("SIGINT", onInterrupt);
    const result = await train({ ...options, signal: stop.signal, screenshot: true });
    Deno.removeSignalListener("SIGINT", onInterrupt);
    if (result.interrupted) Deno.exit(130);
    if (pushToHub) {
      const pushed = await pushRun({ run: result.runDir, repo: hubRepo });
      console.error(`pushed ${pushed.files.join(", ")} to ${pushed.url} (commit ${pushed.commit})`);
    }
    Deno.exit(0);
  });
}
