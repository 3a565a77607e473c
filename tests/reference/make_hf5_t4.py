"""Writes the transformers-4 twins of make_hf5.py's adapters: tests/fixtures/hf5-more/adapter-<variant>-t4/.

    PYTHONHASHSEED=0 /work/v4/bin/python tests/reference/make_hf5_t4.py [OUT_DIR]

Run after make_hf5.py, under transformers 4.57.6 + PEFT 0.21 (+ torch 2.13 CPU). (In this sandbox /work/v4's
transformers had its huggingface-hub pin "<1.0" relaxed to "<2.0" in dependency_versions_table.py, as only
huggingface_hub 1.33 was installable; nothing here touches the Hub.)

For each variant it loads OUT_DIR/model with transformers 4 (module names vit.encoder.layer.N.attention.attention.query,
...), builds the same LoRA config with transformers 4's names, copies the tensors of OUT_DIR/adapter-<variant>/ into it
(renaming the keys), saves it with PEFT's save_pretrained, reloads it from disk, and writes expected.safetensors
(same pixel_values/labels as the transformers-5 adapter; logits, loss, merged_logits, base_logits and grad.<key> for
every key of this adapter's adapter_model.safetensors). It prints the max relative differences to the
transformers-5 adapter's expected.safetensors and fails if they exceed 1e-5 (logits) / 1e-4 (gradients).
"""

import copy
import json
import math
import os
import re
import shutil
import sys

if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import peft
import transformers
from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict
from transformers import ViTForImageClassification

assert transformers.__version__.startswith("4."), transformers.__version__
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(HERE, "..", "fixtures", "hf5-more")
OUT = os.path.normpath(OUT)

# make_hf5.py's VARIANTS with transformers 4's module names
VARIANTS = {
    "list": dict(
        r=6,
        lora_alpha=9,
        target_modules=["query", "value", "intermediate.dense"],
    ),
    "all": dict(
        r=4,
        lora_alpha=6,
        # "dense" matches attention.output.dense (o_proj), intermediate.dense (fc1) and output.dense (fc2)
        target_modules=["query", "key", "value", "dense"],
        rank_pattern={"layer.1.attention.attention.query": 5, "query": 2, "intermediate.dense": 3},
        alpha_pattern={"value": 4, r"layer\.2\.output\.dense": 10},
        use_rslora=True,
    ),
    "regex": dict(
        r=3,
        lora_alpha=12,
        target_modules=r".*layer\.(0|2)\.attention\.attention\.(query|value)",
    ),
    "layers": dict(
        r=2,
        lora_alpha=3,
        target_modules=["query", "value"],
        layers_to_transform=[1],
        layers_pattern="layer",
    ),
}

RENAMES = [
    (r"\.vit\.layers\.(\d+)\.attention\.q_proj\.", r".vit.encoder.layer.\1.attention.attention.query."),
    (r"\.vit\.layers\.(\d+)\.attention\.k_proj\.", r".vit.encoder.layer.\1.attention.attention.key."),
    (r"\.vit\.layers\.(\d+)\.attention\.v_proj\.", r".vit.encoder.layer.\1.attention.attention.value."),
    (r"\.vit\.layers\.(\d+)\.attention\.o_proj\.", r".vit.encoder.layer.\1.attention.output.dense."),
    (r"\.vit\.layers\.(\d+)\.mlp\.fc1\.", r".vit.encoder.layer.\1.intermediate.dense."),
    (r"\.vit\.layers\.(\d+)\.mlp\.fc2\.", r".vit.encoder.layer.\1.output.dense."),
]


def save_st(tensors, path, metadata):
    """safetensors.torch.save_file, but with the header's keys in a fixed order (the Rust writer orders
    __metadata__ by hash, so two runs would differ byte-wise)."""
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


def to_t4(key):
    for pat, rep in RENAMES:
        new, n = re.subn(pat, rep, key)
        if n:
            return new
    return key


def to_t4_module(path):
    return to_t4("." + path + ".").strip(".")


def saved_key(param_name):
    k = param_name.replace(".modules_to_save.default.", ".")
    k = k.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B.")
    return k


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def load_base(model_dir):
    m = ViTForImageClassification.from_pretrained(model_dir)
    m.name_or_path = ""  # else PEFT writes this machine's path into adapter_config.json and README.md
    m.config.name_or_path = ""
    m.eval()
    return m


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


def main():
    model_dir = os.path.join(OUT, "model")
    versions = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}
    print(json.dumps(versions), "->", OUT)
    worst = {}
    for name, spec in VARIANTS.items():
        src = os.path.join(OUT, f"adapter-{name}")
        dst = os.path.join(OUT, f"adapter-{name}-t4")
        if os.path.isdir(dst):
            shutil.rmtree(dst)
        src_sd = load_file(os.path.join(src, "adapter_model.safetensors"))
        ref = load_file(os.path.join(src, "expected.safetensors"))
        with open(os.path.join(src, "expected.safetensors"), "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            ref_meta = json.loads(f.read(n))["__metadata__"]
        ref_info = json.loads(ref_meta["lora_layers"])

        torch.manual_seed(0)
        cfg = LoraConfig(lora_dropout=0.0, modules_to_save=["classifier"], bias="none", **spec)
        pm = get_peft_model(load_base(model_dir), cfg)
        t4_sd = {to_t4(k): v for k, v in src_sd.items()}
        result = set_peft_model_state_dict(pm, t4_sd)
        assert not result.unexpected_keys, result.unexpected_keys
        expected_keys = {saved_key(n) for n, p in pm.named_parameters() if p.requires_grad}
        assert expected_keys == set(t4_sd), (sorted(expected_keys ^ set(t4_sd)))
        pm.save_pretrained(dst)

        # reload from disk, as a user would
        pm = PeftModel.from_pretrained(load_base(model_dir), dst, is_trainable=True)
        pm.eval()
        saved = load_file(os.path.join(dst, "adapter_model.safetensors"))
        assert set(saved) == set(t4_sd)
        pixel_values, labels = ref["pixel_values"], ref["labels"]
        logits = pm(pixel_values=pixel_values).logits
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        grads = {}
        for n, p in pm.named_parameters():
            if p.requires_grad:
                k = saved_key(n)
                assert torch.equal(p.detach(), saved[k]), n
                grads["grad." + k] = p.grad.detach().clone()
        info = lora_layer_info(pm)
        ref_info_t4 = {to_t4_module(k): v for k, v in ref_info.items()}
        assert set(info) == set(ref_info_t4), sorted(set(info) ^ set(ref_info_t4))
        for k in info:
            assert info[k]["r"] == ref_info_t4[k]["r"], (k, info[k], ref_info_t4[k])
            assert abs(info[k]["scaling"] - ref_info_t4[k]["scaling"]) < 1e-12, (k, info[k], ref_info_t4[k])
        merged = copy.deepcopy(pm).merge_and_unload()
        merged.eval()
        with torch.no_grad():
            merged_logits = merged(pixel_values=pixel_values).logits
            base_logits = load_base(model_dir)(pixel_values=pixel_values).logits
        tensors = {
            "pixel_values": pixel_values.contiguous(),
            "labels": labels.contiguous(),
            "logits": logits.detach().contiguous(),
            "loss": loss.detach().reshape(1).contiguous(),
            "merged_logits": merged_logits.contiguous(),
            "base_logits": base_logits.contiguous(),
            **grads,
        }
        meta = {"format": "pt", "lora_layers": json.dumps(info, sort_keys=True), "versions": json.dumps(versions)}
        save_st(tensors, os.path.join(dst, "expected.safetensors"), metadata=meta)

        grad_rel = 0.0
        for k, v in ref.items():
            if k.startswith("grad."):
                grad_rel = max(grad_rel, rel(grads["grad." + to_t4(k.removeprefix("grad."))], v))
        report = {
            "adapter": f"{name}-t4",
            "logits_rel_vs_t5": rel(logits.detach(), ref["logits"]),
            "loss_rel_vs_t5": rel(loss.detach().reshape(1), ref["loss"]),
            "merged_rel_vs_t5": rel(merged_logits, ref["merged_logits"]),
            "base_rel_vs_t5": rel(base_logits, ref["base_logits"]),
            "grad_max_rel_vs_t5": grad_rel,
            "lora_layers": len(info),
        }
        print(json.dumps(report))
        worst[name] = report
        assert report["logits_rel_vs_t5"] < 1e-5 and report["merged_rel_vs_t5"] < 1e-5, report
        assert report["grad_max_rel_vs_t5"] < 1e-4, report


if __name__ == "__main__":
    main()
