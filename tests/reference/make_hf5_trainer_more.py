"""Makes tests/fixtures/hf5-trainer-more/: real transformers 5.18 Trainer runs with early stopping and with
label smoothing, and PyTorch's label-smoothed loss and its gradients, on the tiny ViT + LoRA of hf5-more.

    PYTHONHASHSEED=0 /work/venv/bin/python tests/reference/make_hf5_trainer_more.py [OUT_DIR]

(OUT_DIR defaults to tests/fixtures/hf5-trainer-more next to this script; the script re-executes itself with
PYTHONHASHSEED=0 when it is unset.) After the runs it replays each by hand in plain torch (`replay`: the semantics
written out) and checks LabelSmoother against the formula in float64. Versions: torch 2.13.0+cpu, transformers 5.18.0, peft 0.21.0, accelerate 1.15.0,
safetensors 0.8.0, numpy 2.4.6 (Python 3.11). Float32, CPU, one thread, deterministic algorithms; two runs give
byte-identical files.

Inputs are the committed tests/fixtures/hf5-more/ files (made by make_hf5.py, not imported here: it rebuilds its
folder when run): `model/` (the tiny ViTForImageClassification), `adapter-list/` (the PEFT LoRA adapter every run
starts from) and `data-a/` (23 train / 9 validation 30×30 PNGs; their decoded pixels in `pixels.safetensors`).
The Trainer plumbing (SequentialSampler, the per-step recorder) is copied from make_hf5.py's trainer runs.

Writes, laid out as OUT_DIR/README.md describes:
  trainer-es/   EarlyStoppingCallback(patience 1, threshold 0.05) on eval accuracy, load_best_model_at_end:
                trainer_run.json (steps, evaluations, stop and best epochs) + trained-adapter/ (the best one)
  trainer-es-threshold/
                the same with threshold 0.15, where a gain below the threshold stops the run
  trainer-ls/   label_smoothing_factor 0.1, otherwise trainer-a's recipe: trainer_run.json + trained-adapter/
  loss-ls.safetensors
                LabelSmoother's loss and the gradient of every trainable tensor on a fixed batch, eps 0.1 / 0.3
"""

import json
import math
import os
import random
import shutil
import sys

if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

import importlib.util
import types


def import_torchvision_bare():
    """/work/venv's torchvision 0.28.0+cu130 is a CUDA build whose C extension cannot load next to the CPU torch
    (RuntimeError: operator torchvision::nms does not exist, raised by its __init__), and transformers imports it
    when it is installed (so `import peft` fails). Nothing here uses torchvision: register it as a bare package
    (its __init__ not run) so that transformers' imports of it succeed."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or "torchvision" in sys.modules:
        return
    package = types.ModuleType("torchvision")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    sys.modules["torchvision"] = package
    from torchvision import version

    package.__version__ = version.__version__


import_torchvision_bare()

import accelerate  # noqa: E402
import numpy as np
import safetensors
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import peft
import transformers
from peft import PeftModel
from torch.utils.data import SequentialSampler
from transformers import (
    EarlyStoppingCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    ViTForImageClassification,
)
from transformers.trainer_pt_utils import LabelSmoother

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

HERE = os.path.dirname(os.path.abspath(__file__))
MORE = os.path.normpath(os.path.join(HERE, "..", "fixtures", "hf5-more"))
OUT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(HERE, "..", "fixtures", "hf5-trainer-more")
OUT = os.path.normpath(OUT)

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
SEED = 1234
DATA = "data-a"
START_ADAPTER = "adapter-list"

# trainer-a's recipe (make_hf5.py), shared by both runs
BASE_ARGS = dict(
    learning_rate=0.01,
    per_device_train_batch_size=4,
    gradient_accumulation_steps=3,
    num_train_epochs=2,
    weight_decay=0.0,
    warmup_steps=0,
    max_grad_norm=1.0,
    lr_scheduler_type="linear",
)

ES_ARGS = {
    **BASE_ARGS,
    "learning_rate": 0.005,
    "gradient_accumulation_steps": 2,
    "num_train_epochs": 8,
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "load_best_model_at_end": True,
    "metric_for_best_model": "accuracy",
    "per_device_eval_batch_size": 16,
}

RUNS = {
    # accuracy 4/9, 7/9, 8/9, 8/9: the 4th evaluation does not improve -> stop after epoch 4, epoch 3's adapter restored
    "es": dict(args=ES_ARGS, early_stopping=dict(early_stopping_patience=1, early_stopping_threshold=0.05)),
    # the same run, threshold 0.15: epoch 3's gain of 1/9 is not above it -> stop after epoch 3, though epoch 3 is
    # still the new best (Trainer's best metric takes any strict gain, the threshold only feeds the patience counter)
    "es-threshold": dict(args=ES_ARGS, early_stopping=dict(early_stopping_patience=1, early_stopping_threshold=0.15)),
    "ls": dict(args={**BASE_ARGS, "label_smoothing_factor": 0.1}),
}

LOSS_EPSILONS = [0.1, 0.3]


def save_st(tensors, path, metadata):
    """safetensors.torch.save_file with the header's keys in a fixed order (as make_hf5.py)."""
    from safetensors.torch import save as st_save

    blob = st_save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    meta = header.pop("__metadata__", None)
    ordered = {"__metadata__": dict(sorted(meta.items()))} if meta else {}
    for k, v in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        ordered[k] = v
    hs = json.dumps(ordered, separators=(",", ":")).encode()
    hs += b" " * (-len(hs) % 8)
    with open(path, "wb") as f:
        f.write(len(hs).to_bytes(8, "little") + hs + blob[8 + n :])


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    transformers.set_seed(seed)


def versions():
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "accelerate": accelerate.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }


def load_base():
    m = ViTForImageClassification.from_pretrained(os.path.join(MORE, "model"))
    m.name_or_path = ""  # else PEFT writes this machine's path into adapter_config.json and README.md
    m.config.name_or_path = ""
    m.eval()
    return m


def saved_key(param_name):
    """PEFT in-memory parameter name -> the key save_pretrained writes."""
    k = param_name.replace(".modules_to_save.default.", ".")
    k = k.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B.")
    return k


def normalise(pixels):
    """uint8 [N, H, W, 3] -> ViTImageProcessor's pixel_values (rescale 1/255, ImageNet mean/std; the images are
    already 30×30, so no resize: make_hf5.py checked this equals the processor with difference 0)."""
    x = pixels.permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def load_data():
    px = load_file(os.path.join(MORE, DATA, "pixels.safetensors"))
    return {
        split: (normalise(px[f"{split}.pixels"]), px[f"{split}.labels"].long()) for split in ("train", "validation")
    }


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, pixel_values, labels, split):
        self.pixel_values = pixel_values
        self.labels = labels
        self.split = split

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"idx": i, "split": self.split, "pixel_values": self.pixel_values[i], "labels": int(self.labels[i])}


def smoothed_sum(logits, labels, eps):
    """(1 − eps) · Σ −log p[label] + eps / K · Σ_i Σ_k −log p_k: LabelSmoother's numerator (no ignored labels)."""
    logp = -F.log_softmax(logits.double(), dim=-1)
    nll = logp.gather(-1, labels.view(-1, 1)).sum()
    return float((1 - eps) * nll + eps * logp.sum() / logits.shape[-1])


def trainer_run(key, run, data):
    run_dir = os.path.join(OUT, f"trainer-{key}")
    os.makedirs(run_dir, exist_ok=True)
    a = run["args"]
    eps = a.get("label_smoothing_factor", 0.0)
    seen = []

    def collate(items):
        seen.extend(int(it["idx"]) for it in items if it["split"] == "train")  # the same collator serves eval
        return {
            "pixel_values": torch.stack([it["pixel_values"] for it in items]),
            "labels": torch.tensor([it["labels"] for it in items], dtype=torch.long),
        }

    seed_all(SEED)
    model = PeftModel.from_pretrained(load_base(), os.path.join(MORE, START_ADAPTER), is_trainable=True)
    model.train()

    micro = []  # (size, num_items_in_batch, loss, loss recomputed from the logits)
    steps = []
    evaluations = []
    pending = {}

    class RecTrainer(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs["labels"]
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
            if model.training:
                n_items = int(num_items_in_batch)
                again = smoothed_sum(outputs.logits.detach(), labels, eps) / n_items
                micro.append((int(labels.shape[0]), n_items, loss.item(), again))
            return (loss, outputs) if return_outputs else loss

    es = EarlyStoppingCallback(**run["early_stopping"]) if "early_stopping" in run else None

    class Rec(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, **kw):
            pending["lr_used"] = trainer.optimizer.param_groups[0]["lr"]
            pending["micro"] = list(micro)
            micro.clear()

        def on_log(self, args, state, control, logs=None, **kw):
            if logs is None or "loss" not in logs:
                return
            mb = pending.pop("micro")
            steps.append(
                {
                    "step": state.global_step,
                    "loss": logs["loss"],
                    "lr": logs["learning_rate"],
                    "grad_norm": logs["grad_norm"],
                    "epoch": logs["epoch"],
                    "lr_used": pending.pop("lr_used"),
                    "sizes": [m[0] for m in mb],
                    "num_items_in_batch": mb[0][1],
                    "micro_losses": [m[2] for m in mb],
                    "_recomputed": [m[3] for m in mb],
                    "_items": [m[1] for m in mb],
                }
            )

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            # runs after EarlyStoppingCallback.on_evaluate (callbacks run in order) and before Trainer updates
            # state.best_metric (_determine_best_metric follows the evaluation)
            with torch.no_grad():
                was = trainer.model.training
                trainer.model.eval()
                logits = trainer.model(pixel_values=data["validation"][0]).logits
                trainer.model.train(was)
            evaluations.append(
                {
                    "epoch": metrics["epoch"],
                    "step": state.global_step,
                    "eval_loss": metrics["eval_loss"],
                    "eval_accuracy": metrics["eval_accuracy"],
                    "best_metric_before": state.best_metric,
                    "patience_counter": es.early_stopping_patience_counter if es else None,
                    "should_training_stop": bool(control.should_training_stop),
                    "validation_logits": logits.tolist(),
                }
            )

        def on_save(self, args, state, control, **kw):
            evaluations[-1]["best_metric_after"] = state.best_metric
            evaluations[-1]["best_global_step_after"] = state.best_global_step
            evaluations[-1]["checkpoint"] = f"checkpoint-{state.global_step}"

    def compute_metrics(p):
        return {"accuracy": float((np.argmax(p.predictions, axis=-1) == p.label_ids).mean())}

    output_dir = os.path.join("/tmp", f"hf5-trainer-more-{key}")
    shutil.rmtree(output_dir, ignore_errors=True)
    targs = TrainingArguments(
        output_dir=output_dir,
        **a,
        logging_strategy="steps",
        logging_steps=1,
        **({} if "save_strategy" in a else {"save_strategy": "no", "eval_strategy": "no"}),
        report_to=[],
        use_cpu=True,
        seed=SEED,
        data_seed=SEED,
        dataloader_drop_last=False,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    callbacks = [es, Rec()] if es else [Rec()]
    trainer = RecTrainer(
        model=model,
        args=targs,
        train_dataset=ListDataset(*data["train"], "train"),
        eval_dataset=ListDataset(*data["validation"], "validation") if es else None,
        data_collator=collate,
        compute_metrics=compute_metrics if es else None,
        callbacks=callbacks,
    )
    trainer.train()

    # each micro-batch's loss is its (smoothed) summed loss over the step's num_items_in_batch: check, drop helpers
    max_micro_dev = 0.0
    for s in steps:
        assert all(it == s["num_items_in_batch"] for it in s.pop("_items"))
        assert s["num_items_in_batch"] == sum(s["sizes"])
        for got, want in zip(s["micro_losses"], s.pop("_recomputed")):
            max_micro_dev = max(max_micro_dev, abs(got - want) / max(abs(want), 1e-12))
        max_micro_dev = max(max_micro_dev, abs(sum(s["micro_losses"]) - s["loss"]) / abs(s["loss"]))
    assert max_micro_dev < 1e-5, max_micro_dev

    n = len(data["train"][1])
    model = trainer.model
    model.eval()
    with torch.no_grad():
        train_logits = model(pixel_values=data["train"][0]).logits
        val_logits = model(pixel_values=data["validation"][0]).logits
    trained_dir = os.path.join(run_dir, "trained-adapter")
    model.save_pretrained(trained_dir)
    os.remove(os.path.join(trained_dir, "README.md"))  # PEFT's model card template: nothing of the run in it

    out = {
        "versions": versions(),
        "model_accepts_loss_kwargs": bool(trainer.model_accepts_loss_kwargs),
        "label_smoother": None if trainer.label_smoother is None else {"epsilon": trainer.label_smoother.epsilon},
        "trainable": [n_ for n_, p in model.named_parameters() if p.requires_grad],
        "data": {
            "root": f"../hf5-more/{DATA}",
            "train": n,
            "validation": len(data["validation"][1]),
            "order_all_epochs_file_order": len(seen) % n == 0 and seen == list(range(n)) * (len(seen) // n),
        },
        "model": "../hf5-more/model",
        "start_adapter": f"../hf5-more/{START_ADAPTER}",
        "args": {**a, "seed": SEED, "dataloader_drop_last": False, "logging_steps": 1},
        "total_steps": int(trainer.state.max_steps),
        "steps_per_epoch": math.ceil(
            math.ceil(n / a["per_device_train_batch_size"]) / a["gradient_accumulation_steps"]
        ),
        "steps": steps,
        "micro_loss_max_rel_dev": max_micro_dev,
        "train_logits": train_logits.tolist(),
        "validation_logits": val_logits.tolist(),
    }
    if es:
        best = trainer.state.best_model_checkpoint
        best_step = trainer.state.best_global_step
        best_eval = next(e for e in evaluations if e["step"] == best_step)
        out["early_stopping"] = {
            **run["early_stopping"],
            "metric_for_best_model": a["metric_for_best_model"],
            "greater_is_better": bool(targs.greater_is_better),
            "evaluations": evaluations,
            "stopped_after_epoch": evaluations[-1]["epoch"],
            "stopped_at_step": trainer.state.global_step,
            "stopped_early": trainer.state.global_step < trainer.state.max_steps,
            "best_metric": trainer.state.best_metric,
            "best_global_step": best_step,
            "best_epoch": best_eval["epoch"],
            "best_model_checkpoint": os.path.basename(best),
        }
        # load_best_model_at_end restored the best checkpoint's adapter: the final model is that epoch's
        assert torch.equal(torch.tensor(best_eval["validation_logits"]), val_logits), "final model is not the best"
        saved = load_file(os.path.join(best, "adapter_model.safetensors"))
        final = load_file(os.path.join(trained_dir, "adapter_model.safetensors"))
        assert saved.keys() == final.keys() and all(torch.equal(saved[k], final[k]) for k in saved)
    with open(os.path.join(run_dir, "trainer_run.json"), "w") as f:
        json.dump(out, f)

    # self-check: the saved adapter reproduces the recorded logits
    pm = PeftModel.from_pretrained(load_base(), trained_dir)
    pm.eval()
    with torch.no_grad():
        re_val = pm(pixel_values=data["validation"][0]).logits
    assert torch.equal(re_val, val_logits)
    summary = {
        "trainer": key,
        "total_steps": out["total_steps"],
        "steps_run": len(steps),
        "loss": [round(s["loss"], 5) for s in steps],
        "lr": [s["lr"] for s in steps],
        "micro_loss_max_rel_dev": max_micro_dev,
    }
    if es:
        e = out["early_stopping"]
        summary["evals"] = [
            (v["epoch"], round(v["eval_accuracy"], 4), round(v["eval_loss"], 4), v["patience_counter"])
            for v in evaluations
        ]
        summary.update({k: e[k] for k in ("stopped_after_epoch", "best_epoch", "best_model_checkpoint")})
    print(json.dumps(summary))


def replay(key, data):
    """The run replayed by hand in plain torch (non-fused AdamW, no Trainer), with the semantics the README states:
    each micro-batch's (smoothed) summed loss over the step's label count, gradients clipped to global norm 1, the
    rate of step s (from 0) lr · (T − s) / T over the T planned steps (stopping early does not change it), an
    evaluation after each epoch; the patience counter resets on a strict gain above the threshold over the best
    so far, else rises, and training stops when it reaches the patience; the best is the first evaluation with
    the highest accuracy, and its adapter is the final one. Returns the worst relative differences."""
    run = json.load(open(os.path.join(OUT, f"trainer-{key}", "trainer_run.json")))
    a = run["args"]
    eps = a.get("label_smoothing_factor", 0.0)
    X, Y = data["train"]
    XV, YV = data["validation"]
    m = PeftModel.from_pretrained(load_base(), os.path.join(MORE, START_ADAPTER), is_trainable=True)
    m.eval()
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=a["learning_rate"], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    B, G, N = a["per_device_train_batch_size"], a["gradient_accumulation_steps"], len(Y)
    micro = [(i, min(i + B, N)) for i in range(0, N, B)]
    groups = [micro[i : i + G] for i in range(0, len(micro), G)]
    total = len(groups) * a["num_train_epochs"]
    es = run.get("early_stopping")
    worst = {"loss": 0.0, "grad_norm": 0.0, "lr": 0.0, "eval_loss": 0.0}
    step, best, best_state, best_epoch, counter, stopped = 0, None, None, None, 0, None
    for epoch in range(1, a["num_train_epochs"] + 1):
        for g in groups:
            n_items = sum(e - s for s, e in g)
            total_loss = 0.0
            for s, e in g:
                logp = -F.log_softmax(m(pixel_values=X[s:e]).logits, -1)
                loss = (1 - eps) * logp.gather(-1, Y[s:e].view(-1, 1)).sum() / n_items
                loss = loss + eps * logp.sum() / (n_items * logp.shape[-1])
                loss.backward()
                total_loss += loss.item()
            gn = torch.nn.utils.clip_grad_norm_(params, a["max_grad_norm"]).item()
            lr = a["learning_rate"] * (total - step) / total
            for pg in opt.param_groups:
                pg["lr"] = lr
            rec = run["steps"][step]
            worst["loss"] = max(worst["loss"], abs(total_loss - rec["loss"]) / rec["loss"])
            worst["grad_norm"] = max(worst["grad_norm"], abs(gn - rec["grad_norm"]) / rec["grad_norm"])
            worst["lr"] = max(worst["lr"], abs(lr - rec["lr"]))
            opt.step()
            opt.zero_grad()
            step += 1
        if es:
            with torch.no_grad():
                v = m(pixel_values=XV).logits
            acc = float((v.argmax(-1) == YV).double().mean())
            ev = es["evaluations"][epoch - 1]
            assert acc == ev["eval_accuracy"], (key, epoch, acc)
            ce = float(F.cross_entropy(v, YV))
            worst["eval_loss"] = max(worst["eval_loss"], abs(ce - ev["eval_loss"]) / ev["eval_loss"])
            if best is None or (acc > best and abs(acc - best) > es["early_stopping_threshold"]):
                counter = 0
            else:
                counter += 1
            assert counter == ev["patience_counter"], (key, epoch, counter)
            if best is None or acc > best:
                best, best_epoch = acc, epoch
                best_state = [p.detach().clone() for p in params]
            if counter >= es["early_stopping_patience"]:
                stopped = epoch
                break
    assert step == len(run["steps"])
    if es:
        assert (stopped, best_epoch) == (es["stopped_after_epoch"], es["best_epoch"]), (key, stopped, best_epoch)
        with torch.no_grad():
            for p, b in zip(params, best_state):
                p.copy_(b)
    with torch.no_grad():
        v = m(pixel_values=XV).logits
    rv = torch.tensor(run["validation_logits"])
    worst["final_logits"] = float((v - rv).abs().max() / rv.abs().max())
    assert all(x < 1e-5 for x in worst.values()), (key, worst)
    print(json.dumps({"replayed": key, **{k: float(f"{x:.3g}") for k, x in worst.items()}}))


def loss_ls(data):
    """LabelSmoother on a fixed batch: the first 8 training images (labels 0 5 4 3 2 1 1 0), start adapter."""
    pixel_values = data["train"][0][:8].contiguous()
    labels = data["train"][1][:8].contiguous()
    tensors = {"pixel_values": pixel_values, "labels": labels}
    meta = {"format": "pt", "versions": json.dumps(versions()), "epsilons": json.dumps(LOSS_EPSILONS)}
    cases = [(f"eps{e}", e, labels, None) for e in LOSS_EPSILONS]
    ignored = labels.clone()
    ignored[[2, 5]] = -100
    cases.append(("eps0.1_ignore", 0.1, ignored, None))
    cases.append(("eps0.1_items16", 0.1, labels, 16))
    tensors["labels_ignore"] = ignored
    for name, eps, lab, items in cases:
        model = PeftModel.from_pretrained(load_base(), os.path.join(MORE, START_ADAPTER), is_trainable=True)
        model.eval()
        outputs = model(pixel_values=pixel_values)
        loss = LabelSmoother(epsilon=eps)(outputs, lab, num_items_in_batch=items)
        loss.backward()
        if name == f"eps{LOSS_EPSILONS[0]}":
            tensors["logits"] = outputs.logits.detach().clone()
            tensors["ce_loss"] = F.cross_entropy(outputs.logits.detach(), labels).reshape(1)
        tensors[f"{name}.loss"] = loss.detach().reshape(1)
        for n_, p in model.named_parameters():
            if p.requires_grad and name in (f"eps{e}" for e in LOSS_EPSILONS):
                tensors[f"{name}.grad.{saved_key(n_)}"] = p.grad.detach().clone()
        # the formula, written out in float64: mean over the kept labels (or / num_items_in_batch)
        keep = lab != -100
        denom = items if items is not None else int(keep.sum())
        want = smoothed_sum(outputs.logits.detach()[keep], lab[keep], eps) / denom
        assert abs(loss.item() - want) <= 1e-6 * abs(want), (name, loss.item(), want)
    save_st(tensors, os.path.join(OUT, "loss-ls.safetensors"), metadata=meta)
    print(json.dumps({k: round(float(v), 6) for k, v in tensors.items() if k.endswith("loss")}))


def main():
    print(json.dumps(versions()), "->", OUT)
    if os.path.isdir(OUT):
        for entry in os.listdir(OUT):
            if entry == "README.md":
                continue
            p = os.path.join(OUT, entry)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    os.makedirs(OUT, exist_ok=True)
    data = load_data()
    for key, run in RUNS.items():
        trainer_run(key, run, data)
    for key in RUNS:
        replay(key, data)
    loss_ls(data)


if __name__ == "__main__":
    main()
