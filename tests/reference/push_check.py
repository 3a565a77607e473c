"""Checks that an adapter pushed by vit-lora loads from a Hub (HF_ENDPOINT) with the real libraries.

    HF_ENDPOINT=http://127.0.0.1:PORT HF_TOKEN=... HF_HOME=$(mktemp -d) \
    python tests/reference/push_check.py --base-id OWNER/BASE --repo OWNER/ADAPTER --expected EXPECTED.safetensors \
        [--num-labels K] [--tol 1e-4] [--snippet CARD_SNIPPET.py]

Run by tests/reference/push_check.ts (which starts the Hub imitation, pushes, and writes EXPECTED). It does,
with nothing cached (a fresh HF_HOME), exactly what a user of the pushed repository does:

    PeftModel.from_pretrained(ViTForImageClassification.from_pretrained(BASE_ID, num_labels=K), REPO)

then runs it in eval mode on EXPECTED's `pixel_values` ([N, 3, H, W] float32, normalised) and compares with
EXPECTED's `logits` ([N, K], what vit-lora computed). With --snippet, it instead executes the model card's
Python snippet (which must define `model`, `processor` and `names`) and feeds EXPECTED's `images` (uint8
pixels as float32, [N, H, W, 3]) through `processor`, so the card's own preprocessing is checked as well.

Fails (exit status 1) when loading raises, when PEFT/transformers warn about missing/unexpected keys or
unmatched targets, when the adapter file's keys and the loaded model's adapter keys differ (PEFT loads with
strict=False and does not mention unused keys or a missing modules_to_save classifier), when a loaded tensor
differs from the file's, or when max |logits - expected| / max |expected| exceeds --tol.

Prints one JSON object: ok, versions, max_rel_logits, max_abs_logits, missing_keys, unexpected_keys, warnings
(everything warnings.warn and the transformers/peft/huggingface_hub loggers emitted), lora_layers, cached
(the repositories found in the fresh HF_HOME's cache afterwards), errors.
"""

import argparse
import json
import logging
import os
import re
import sys
import warnings

import torch
from safetensors.torch import load_file

import huggingface_hub
import peft
import transformers
from huggingface_hub import hf_hub_download
from peft import PeftModel
from peft.utils import get_peft_model_state_dict
from transformers import ViTForImageClassification

BAD_WARNING = re.compile(
    r"missing adapter keys|unexpected (adapter )?key|did not match any targeted module|no module was matched"
    r"|no parameter was matched|were not initialized from the model checkpoint|not used when initializing"
    r"|missing keys|unexpected keys",
    re.IGNORECASE,
)


class Collect(logging.Handler):
    def __init__(self, sink):
        super().__init__(level=logging.WARNING)
        self.sink = sink

    def emit(self, record):
        self.sink.append({"source": f"logging:{record.name}", "message": record.getMessage()})


class Capture:
    """Records warnings.warn and WARNING+ records of the libraries' loggers while active."""

    def __init__(self, sink):
        self.sink = sink
        self.handler = Collect(sink)
        self.loggers = [logging.getLogger(n) for n in ("transformers", "peft", "huggingface_hub")]

    def __enter__(self):
        for lg in self.loggers:
            lg.addHandler(self.handler)
        self.cw = warnings.catch_warnings(record=True)
        self.caught = self.cw.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self.cw.__exit__(*exc)
        for w in self.caught:
            self.sink.append({"source": f"warnings:{w.category.__name__}", "message": str(w.message)})
        for lg in self.loggers:
            lg.removeHandler(self.handler)
        return False


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def lora_layer_info(pm):
    out = {}
    for name, mod in pm.named_modules():
        if hasattr(mod, "lora_A") and hasattr(mod, "scaling") and "default" in getattr(mod, "r", {}):
            out[name.removeprefix("base_model.model.")] = {
                "r": int(mod.r["default"]),
                "alpha": float(mod.lora_alpha["default"]),
                "scaling": float(mod.scaling["default"]),
            }
    return out


def cached_repos():
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(os.environ.get("HF_HOME", ""), "hub")
    if not os.path.isdir(hub):
        return {}
    out = {}
    for d in sorted(os.listdir(hub)):
        snaps = os.path.join(hub, d, "snapshots")
        if not os.path.isdir(snaps):
            continue
        files = set()
        for commit in os.listdir(snaps):
            for root, _, names in os.walk(os.path.join(snaps, commit)):
                files.update(os.path.relpath(os.path.join(root, n), os.path.join(snaps, commit)) for n in names)
        out[d] = sorted(files)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-id", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--expected", required=True)
    ap.add_argument("--num-labels", type=int, default=None)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--snippet", default=None, help="the model card's Python block, executed instead of the load")
    a = ap.parse_args()

    out = {
        "ok": False,
        "mode": "card snippet" if a.snippet else "PeftModel.from_pretrained",
        "repo": a.repo,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "huggingface_hub": huggingface_hub.__version__,
        },
        "endpoint": os.environ.get("HF_ENDPOINT"),
        "errors": [],
        "warnings": [],
    }
    try:
        if not os.environ.get("HF_ENDPOINT", "").startswith("http://127.0.0.1:"):
            raise RuntimeError("HF_ENDPOINT must point at the Hub imitation on 127.0.0.1")
        exp = load_file(a.expected)
        want = exp["logits"].float()
        num_labels = a.num_labels or int(want.shape[-1])
        if a.snippet:
            with open(a.snippet) as f:
                code = f.read()
            ns = {"__name__": "__card__"}
            with Capture(out["warnings"]):
                exec(compile(code, a.snippet, "exec"), ns)
            pm, processor, names = ns["model"], ns["processor"], ns["names"]
            out["names"] = names
            if pm.config.id2label != dict(enumerate(names)):
                out["errors"].append(f"id2label {pm.config.id2label} is not the card's names")
            images = [img.to(torch.uint8).numpy() for img in exp["images"]]
            with Capture(out["warnings"]):
                pixels = processor(images=images, return_tensors="pt")["pixel_values"].float()
            out["processor"] = type(processor).__name__
            out["max_abs_pixels_vs_module"] = float((pixels - exp["pixel_values"]).abs().max())
        else:
            pixels = exp["pixel_values"].float()
            with Capture(out["warnings"]):
                base = ViTForImageClassification.from_pretrained(a.base_id, num_labels=num_labels)
                pm = PeftModel.from_pretrained(base, a.repo)
        pm.eval()
        out["peft_config"] = {
            k: (sorted(v) if isinstance(v, set) else v)
            for k, v in pm.peft_config["default"].to_dict().items()
            if k in ("base_model_name_or_path", "target_modules", "r", "lora_alpha", "modules_to_save", "task_type")
        }
        file_sd = load_file(hf_hub_download(a.repo, "adapter_model.safetensors"))
        model_sd = get_peft_model_state_dict(pm)
        out["adapter_keys"] = len(file_sd)
        out["missing_keys"] = sorted(set(model_sd) - set(file_sd))
        out["unexpected_keys"] = sorted(set(file_sd) - set(model_sd))
        differing = sorted(
            k for k in set(model_sd) & set(file_sd) if not torch.equal(model_sd[k].float(), file_sd[k].float())
        )
        out["lora_layers"] = lora_layer_info(pm)
        if not out["lora_layers"]:
            out["errors"].append("no LoRA layer was built")
        if out["missing_keys"]:
            out["errors"].append(f"adapter file lacks keys the model has: {out['missing_keys']}")
        if out["unexpected_keys"]:
            out["errors"].append(f"adapter file has keys the model does not use: {out['unexpected_keys']}")
        if differing:
            out["errors"].append(f"loaded tensors differ from the file: {differing}")
        with torch.no_grad():
            got = pm(pixel_values=pixels).logits
        if got.shape != want.shape:
            raise RuntimeError(f"logits shape {tuple(got.shape)} vs expected {tuple(want.shape)}")
        out["max_rel_logits"] = rel(got, want)
        out["max_abs_logits"] = float((got - want).abs().max())
        out["argmax_agree"] = bool(torch.equal(got.argmax(-1), want.argmax(-1)))
        if not out["max_rel_logits"] <= a.tol:
            out["errors"].append(f"logits differ: max rel {out['max_rel_logits']:.3g} > {a.tol}")
    except Exception as e:  # noqa: BLE001 - any failure to load is a failure of the check
        out["errors"].append(f"{type(e).__name__}: {e}")
    for w in out["warnings"]:
        if BAD_WARNING.search(w["message"]):
            out["errors"].append(f"warned: {w['message']}")
    out["cached"] = cached_repos()
    out["ok"] = not out["errors"]
    print(json.dumps(out, indent=1))
    sys.exit(0 if out["ok"] else 1)


if __name__ == "__main__":
    main()
