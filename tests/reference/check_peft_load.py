"""Checks that real PEFT loads an adapter cleanly and reproduces its logits.

    python tests/reference/check_peft_load.py BASE_DIR ADAPTER_DIR EXPECTED.safetensors \
        [--num-labels K] [--pixels-key pixel_values] [--logits-key logits] [--tol 1e-4] [--grads]

Runs under either venv (transformers 5 + PEFT 0.21: /work/v/bin/python; transformers 4.57 + PEFT 0.21:
/work/v4/bin/python). It does

    PeftModel.from_pretrained(ViTForImageClassification.from_pretrained(BASE_DIR, num_labels=K), ADAPTER_DIR)

(K defaults to the last dimension of the expected logits), runs it in eval mode on EXPECTED's `pixel_values`
([N, 3, H, W] float32, already normalised) and compares with EXPECTED's `logits` ([N, K]). With --grads and
EXPECTED holding `labels` and `grad.<adapter key>` tensors, it also compares d(mean cross-entropy)/d(each adapter
tensor), reloading the adapter with is_trainable=True.

It fails (exit status 1) when:
  - loading raises (e.g. peft's NoMatchingPeftModuleError: none of target_modules exists in the base model, which is
    what PEFT 0.21 under transformers 5 says of a transformers-4 ViT adapter with target_modules query/value);
  - PEFT warns "Found missing adapter keys while loading the checkpoint: [...]" (its only load-time key warning;
    it lists only missing LoRA keys) or warns that rank_pattern/alpha_pattern keys or target_modules matched nothing;
  - ADAPTER_DIR/adapter_model.safetensors has keys the loaded model does not use (PEFT loads with strict=False and
    says nothing about them; a key that happens to name a base-model parameter, e.g. `base_model.model.classifier.weight`
    when adapter_config.json lacks modules_to_save, is silently copied into the base model), or lacks keys
    the model has (PEFT warns only for LoRA keys; a missing modules_to_save tensor makes it raise
    KeyError: 'base_model.model.classifier.weight'), or spells keys with the adapter name
    (`...lora_A.default.weight`: PEFT 0.21 loads those too, but save_pretrained never writes them);
  - a loaded tensor differs from the file's;
  - max |logits - expected| / max |expected| exceeds --tol (default 1e-4); same for gradients with --grads (1e-3).

Prints one JSON object: ok, versions, max_rel_logits, max_abs_logits, (max_rel_grads), missing_keys,
unexpected_keys, warnings (everything warnings.warn and the transformers/peft loggers emitted), lora_layers
({module: {r, alpha, scaling}}), errors.
"""

import argparse
import json
import logging
import os
import re
import sys
import warnings

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import peft
import transformers
from peft import PeftModel
from peft.utils import get_peft_model_state_dict
from transformers import ViTForImageClassification

BAD_WARNING = re.compile(
    r"missing adapter keys|did not match any targeted module|no module was matched|no parameter was matched"
    r"|were not initialized from the model checkpoint and are being ignored|unexpected key",
    re.IGNORECASE,
)


class Collect(logging.Handler):
    def __init__(self, sink):
        super().__init__(level=logging.WARNING)
        self.sink = sink

    def emit(self, record):
        self.sink.append({"source": f"logging:{record.name}", "message": record.getMessage()})


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


def saved_key(param_name):
    k = param_name.replace(".modules_to_save.default.", ".")
    return k.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B.")


def load(base, adapter, num_labels, trainable, sink):
    handler = Collect(sink)
    loggers = [logging.getLogger("transformers"), logging.getLogger("peft")]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = ViTForImageClassification.from_pretrained(base, num_labels=num_labels)
            pm = PeftModel.from_pretrained(model, adapter, is_trainable=trainable)
        for w in caught:
            sink.append({"source": f"warnings:{w.category.__name__}", "message": str(w.message)})
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
    return pm


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base")
    ap.add_argument("adapter")
    ap.add_argument("expected")
    ap.add_argument("--num-labels", type=int, default=None)
    ap.add_argument("--pixels-key", default="pixel_values")
    ap.add_argument("--logits-key", default="logits")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--grad-tol", type=float, default=1e-3)
    ap.add_argument("--grads", action="store_true")
    a = ap.parse_args()

    out = {
        "ok": False,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "adapter": a.adapter,
        "errors": [],
        "warnings": [],
    }
    try:
        exp = load_file(a.expected)
        pixels = exp[a.pixels_key].float()
        want = exp[a.logits_key].float()
        num_labels = a.num_labels or int(want.shape[-1])
        pm = load(a.base, a.adapter, num_labels, False, out["warnings"])
        pm.eval()
        file_sd = load_file(os.path.join(a.adapter, "adapter_model.safetensors"))
        model_sd = get_peft_model_state_dict(pm)
        out["missing_keys"] = sorted(set(model_sd) - set(file_sd))
        out["unexpected_keys"] = sorted(set(file_sd) - set(model_sd))
        named = [k for k in out["unexpected_keys"] if re.sub(r"\.default(?=\.|$)", "", k) in model_sd]
        if named:
            out["errors"].append(f"keys carry the adapter name (PEFT loads them, save_pretrained never writes them): {named}")
        full_sd = pm.state_dict()
        into_base = [k for k in out["unexpected_keys"] if k in full_sd and k not in named]
        if into_base:
            out["errors"].append(
                "keys outside the adapter as adapter_config.json defines it, which load_state_dict(strict=False) "
                f"copies straight into the base model (save_pretrained would not write them back): {into_base}"
            )
        out["unexpected_keys"] = [k for k in out["unexpected_keys"] if k not in named and k not in into_base]
        if out["unexpected_keys"]:
            out["errors"].append(f"adapter file has keys the model does not use: {out['unexpected_keys']}")
        differing = [k for k in set(model_sd) & set(file_sd) if not torch.equal(model_sd[k].float(), file_sd[k].float())]
        out["lora_layers"] = lora_layer_info(pm)
        if out["missing_keys"]:
            out["errors"].append(f"adapter file lacks keys the model has: {out['missing_keys']}")
        if differing:
            out["errors"].append(f"loaded tensors differ from the file: {sorted(differing)}")
        with torch.no_grad():
            got = pm(pixel_values=pixels).logits
        out["max_rel_logits"] = rel(got, want)
        out["max_abs_logits"] = float((got - want).abs().max())
        if not out["max_rel_logits"] <= a.tol:
            out["errors"].append(f"logits differ: max rel {out['max_rel_logits']:.3g} > {a.tol}")
        if a.grads:
            grads = {k.removeprefix("grad."): v for k, v in exp.items() if k.startswith("grad.")}
            if not grads or "labels" not in exp:
                out["errors"].append("--grads needs labels and grad.<key> tensors in the expected file")
            else:
                pmt = load(a.base, a.adapter, num_labels, True, out["warnings"])
                pmt.eval()
                loss = F.cross_entropy(pmt(pixel_values=pixels).logits, exp["labels"].long())
                loss.backward()
                got_g = {saved_key(n): p.grad for n, p in pmt.named_parameters() if p.requires_grad}
                worst = 0.0
                for k, v in grads.items():
                    if k not in got_g or got_g[k] is None:
                        out["errors"].append(f"no gradient for {k}")
                        continue
                    worst = max(worst, rel(got_g[k], v.float()))
                out["max_rel_grads"] = worst
                if not worst <= a.grad_tol:
                    out["errors"].append(f"gradients differ: max rel {worst:.3g} > {a.grad_tol}")
    except Exception as e:  # noqa: BLE001 - report any failure to load as a failure of the check
        out["errors"].append(f"{type(e).__name__}: {e}")
    for w in out["warnings"]:
        if BAD_WARNING.search(w["message"]):
            out["errors"].append(f"PEFT/transformers warned: {w['message']}")
    out["ok"] = not out["errors"]
    print(json.dumps(out, indent=1))
    sys.exit(0 if out["ok"] else 1)


if __name__ == "__main__":
    main()
