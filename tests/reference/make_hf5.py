"""Makes tests/fixtures/hf5-more/ with the real libraries: torch 2.13 (CPU), transformers 5.18, PEFT 0.21.

    PYTHONHASHSEED=0 /work/v/bin/python tests/reference/make_hf5.py [OUT_DIR]

(OUT_DIR defaults to tests/fixtures/hf5-more next to this script; the script re-executes itself with
PYTHONHASHSEED=0 when it is unset, so that the order PEFT writes a set-valued `target_modules` in is fixed.)
Needs transformers 5.x, peft 0.21, pillow, pyarrow, datasets, accelerate.

Writes, laid out as OUT_DIR/README.md describes:
  model/                       random tiny ViTForImageClassification (save_pretrained) + preprocessor_config.json
  adapter-{list,all,regex,layers}/
                               PEFT adapters (get_peft_model(...).save_pretrained) + expected.safetensors
  data-a/, data-b/             PNG datasets in the Hub parquet layout + pixels.safetensors
  trainer-a/, trainer-b/       real transformers.Trainer runs: trainer_run.json + trained-adapter/

The transformers-4 twins of the adapters (adapter-*-t4/) come from make_hf5_t4.py, run afterwards under
transformers 4.57.6.
"""

import copy
import io
import json
import math
import os
import random
import shutil
import subprocess
import sys

if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

import peft
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import (
    Trainer,
    TrainerCallback,
    TrainingArguments,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessor,
)

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(HERE, "..", "fixtures", "hf5-more")
OUT = os.path.normpath(OUT)

NUM_LABELS = 6
NAMES = [f"class_{i}" for i in range(NUM_LABELS)]
IMAGE = 30
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
BATCH = 4  # rows of expected.safetensors

CONFIG = dict(
    hidden_size=40,
    num_hidden_layers=3,
    num_attention_heads=5,
    intermediate_size=72,
    hidden_act="gelu",
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    initializer_range=0.02,
    layer_norm_eps=1e-6,
    image_size=IMAGE,
    patch_size=8,
    num_channels=3,
    qkv_bias=False,
    encoder_stride=8,
)

# LoRA variants. "t4" is what make_hf5_t4.py uses for the same adapter under transformers 4's module names.
VARIANTS = {
    "list": dict(
        r=6,
        lora_alpha=9,
        target_modules=["q_proj", "v_proj", "fc1"],
    ),
    "all": dict(
        r=4,
        lora_alpha=6,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"],
        # get_pattern_key: the FIRST key (dict order) for which re.match(rf"(.*\.)?({key})$", module) matches wins,
        # so the layer-specific key must come before the plain "q_proj".
        rank_pattern={"layers.1.attention.q_proj": 5, "q_proj": 2, "fc1": 3},
        alpha_pattern={"v_proj": 4, r"layers\.2\.mlp\.fc2": 10},
        use_rslora=True,
    ),
    "regex": dict(
        r=3,
        lora_alpha=12,
        target_modules=r".*layers\.(0|2)\.attention\.(q_proj|v_proj)",
    ),
    "layers": dict(
        r=2,
        lora_alpha=3,
        target_modules=["q_proj", "v_proj"],
        layers_to_transform=[1],
        layers_pattern="layers",
    ),
}

TRAINER_RUNS = {
    "a": dict(
        data="data-a",
        n_train=23,
        n_validation=9,
        start_adapter="adapter-list",
        args=dict(
            learning_rate=0.01,
            per_device_train_batch_size=4,
            gradient_accumulation_steps=3,
            num_train_epochs=2,
            weight_decay=0.0,
            warmup_steps=0,
            max_grad_norm=1.0,
            lr_scheduler_type="linear",
        ),
    ),
    "b": dict(
        data="data-b",
        n_train=17,
        n_validation=8,
        start_adapter="adapter-all",
        args=dict(
            learning_rate=0.005,
            per_device_train_batch_size=5,
            gradient_accumulation_steps=2,
            num_train_epochs=3,
            weight_decay=0.01,
            # transformers 5 has no warmup_ratio: a float < 1 in warmup_steps is the ratio (ceil(ratio * total))
            warmup_steps=0.2,
            max_grad_norm=1.0,
            lr_scheduler_type="linear",
        ),
    ),
}

SEED = 1234


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


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    transformers.set_seed(seed)


def versions():
    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


# ---------------------------------------------------------------- model


def make_model(model_dir):
    seed_all(SEED)
    cfg = ViTConfig(
        **CONFIG,
        id2label={i: n for i, n in enumerate(NAMES)},
        label2id={n: i for i, n in enumerate(NAMES)},
    )
    model = ViTForImageClassification(cfg)
    # transformers' init (std 0.02) makes attention nearly uniform and the net nearly linear; redraw every
    # tensor at a scale where attention, GELU and the layer norms all matter.
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("cls_token") or name.endswith("position_embeddings"):
                v = 0.5 * torch.randn(p.shape, generator=g)
            elif "layernorm" in name and name.endswith(".weight"):
                v = 1.0 + 0.2 * torch.randn(p.shape, generator=g)
            elif name.endswith(".bias"):
                v = 0.1 * torch.randn(p.shape, generator=g)
            else:
                fan_in = p[0].numel()
                v = torch.randn(p.shape, generator=g) / math.sqrt(fan_in)
            p.copy_(v)
    model.save_pretrained(model_dir)
    proc = ViTImageProcessor(
        do_resize=True,
        size={"height": IMAGE, "width": IMAGE},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=MEAN,
        image_std=STD,
    )
    proc.save_pretrained(model_dir)
    return model


def load_base(model_dir):
    m = ViTForImageClassification.from_pretrained(model_dir)
    m.name_or_path = ""  # else PEFT writes this machine's path into adapter_config.json and README.md
    m.config.name_or_path = ""
    m.eval()
    return m


# ---------------------------------------------------------------- adapters


def saved_key(param_name):
    """PEFT in-memory parameter name -> the key save_pretrained writes."""
    k = param_name.replace(".modules_to_save.default.", ".")
    k = k.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B.")
    return k


def make_pixels(seed):
    g = torch.Generator().manual_seed(seed)
    raw = torch.randint(0, 256, (BATCH, 3, IMAGE, IMAGE), generator=g).float() / 255.0
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    pixel_values = ((raw - mean) / std).float()
    labels = torch.randint(0, NUM_LABELS, (BATCH,), generator=g).long()
    return pixel_values, labels


def lora_layer_info(pm):
    """{module path: {"r":..., "alpha":..., "scaling":...}} of every LoRA layer of a PeftModel."""
    out = {}
    for name, mod in pm.named_modules():
        if hasattr(mod, "lora_A") and hasattr(mod, "scaling") and "default" in getattr(mod, "r", {}):
            path = name.removeprefix("base_model.model.")
            out[path] = {
                "r": int(mod.r["default"]),
                "alpha": float(mod.lora_alpha["default"]),
                "scaling": float(mod.scaling["default"]),
            }
    return out


def expected_for(model_dir, adapter_dir, pixel_values, labels):
    """Reload base + adapter from disk and compute logits, loss, grads, merged logits."""
    base = load_base(model_dir)
    with torch.no_grad():
        base_logits = base(pixel_values=pixel_values).logits.clone()
    pm = PeftModel.from_pretrained(load_base(model_dir), adapter_dir, is_trainable=True)
    pm.eval()
    saved = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    logits = pm(pixel_values=pixel_values).logits
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    grads = {}
    for n, p in pm.named_parameters():
        if p.requires_grad:
            k = saved_key(n)
            assert k in saved, (n, k)
            assert torch.equal(p.detach(), saved[k]), f"reloaded {n} differs from the file"
            grads["grad." + k] = p.grad.detach().clone()
    assert set(g.removeprefix("grad.") for g in grads) == set(saved), (sorted(grads), sorted(saved))
    info = lora_layer_info(pm)
    merged = copy.deepcopy(pm).merge_and_unload()
    merged.eval()
    with torch.no_grad():
        merged_logits = merged(pixel_values=pixel_values).logits
    tensors = {
        "pixel_values": pixel_values.contiguous(),
        "labels": labels.contiguous(),
        "logits": logits.detach().contiguous(),
        "loss": loss.detach().reshape(1).contiguous(),
        "merged_logits": merged_logits.contiguous(),
        "base_logits": base_logits.contiguous(),
        **grads,
    }
    return tensors, info


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def make_adapter(model_dir, name, spec, seed):
    adapter_dir = os.path.join(OUT, f"adapter-{name}")
    seed_all(seed)
    base = load_base(model_dir)
    cfg = LoraConfig(lora_dropout=0.0, modules_to_save=["classifier"], bias="none", **spec)
    pm = get_peft_model(base, cfg)
    g = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            elif "modules_to_save" in n and n.endswith(".weight"):
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
            elif "modules_to_save" in n and n.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    pm.eval()
    pixel_values, labels = make_pixels(seed + 11)
    with torch.no_grad():
        mem_logits = pm(pixel_values=pixel_values).logits
    pm.save_pretrained(adapter_dir)
    tensors, info = expected_for(model_dir, adapter_dir, pixel_values, labels)
    meta = {
        "format": "pt",
        "lora_layers": json.dumps(info, sort_keys=True),
        "versions": json.dumps(versions()),
    }
    save_st(tensors, os.path.join(adapter_dir, "expected.safetensors"), metadata=meta)
    report = {
        "adapter": name,
        "lora_layers": len(info),
        "reload_vs_memory_logits_rel": rel(tensors["logits"], mem_logits),
        "merged_vs_logits_rel": rel(tensors["merged_logits"], tensors["logits"]),
        "adapter_vs_base_logits_rel": rel(tensors["logits"], tensors["base_logits"]),
        "keys": len(load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))),
    }
    print(json.dumps(report))
    print("  ", json.dumps(info, sort_keys=True))
    return report


# ---------------------------------------------------------------- data


def class_image(rng, c):
    """A 30x30 RGB uint8 image whose pattern depends on class c, plus noise."""
    y, x = np.mgrid[0:IMAGE, 0:IMAGE].astype(np.float64)
    base = np.zeros((IMAGE, IMAGE, 3))
    colour = np.array([[200, 60, 60], [60, 200, 60], [60, 60, 200], [200, 200, 60], [200, 60, 200], [60, 200, 200]])[c]
    period = [4, 6, 8, 5, 7, 9][c]
    phase = rng.uniform(0, 2 * np.pi)
    if c % 2 == 0:
        wave = np.sin(2 * np.pi * x / period + phase)
    else:
        wave = np.sin(2 * np.pi * (x + y) / period + phase)
    base = colour[None, None, :] * (0.6 + 0.4 * wave[..., None])
    base += rng.normal(0, 25, size=base.shape)
    return np.clip(np.rint(base), 0, 255).astype(np.uint8)


def png_bytes(arr, mode):
    img = Image.fromarray(arr, "RGB")
    if mode == "RGBA":
        a = np.full(arr.shape[:2] + (1,), 255, np.uint8)
        img = Image.fromarray(np.concatenate([arr, a], axis=2), "RGBA")
    elif mode == "L":
        img = img.convert("L")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def image_mode(split, i):
    if split == "train" and i % 11 == 10:
        return "L"
    if i % 7 == 3:
        return "RGBA"
    return "RGB"


def write_split(root, split, n, rng):
    labels = [(i * 5 + (i // 6)) % NUM_LABELS for i in range(n)]  # every class, not in blocks
    images, modes, decoded = [], [], []
    for i, c in enumerate(labels):
        arr = class_image(rng, c)
        mode = image_mode(split, i)
        b = png_bytes(arr, mode)
        images.append({"bytes": b, "path": f"{split}_{i}.png"})
        modes.append(mode)
        decoded.append(np.asarray(Image.open(io.BytesIO(b)).convert("RGB")))
    hf = {"info": {"features": {"image": {"_type": "Image"}, "label": {"names": NAMES, "_type": "ClassLabel"}}}}
    schema = pa.schema(
        [
            pa.field("image", pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])),
            pa.field("label", pa.int64()),
        ],
        metadata={"huggingface": json.dumps(hf, separators=(",", ":"))},
    )
    table = pa.Table.from_pydict({"image": images, "label": labels}, schema=schema)
    os.makedirs(os.path.join(root, "data"), exist_ok=True)
    # as the shared hf5/data files (written by hyparquet): snappy, data pages v2, PLAIN images, a dictionary-
    # encoded label column, one row group, statistics, and `huggingface` as the only key-value metadata (no
    # ARROW:schema; store_schema=False drops the schema's metadata too, so it is added to the footer directly)
    writer = pq.ParquetWriter(
        os.path.join(root, "data", f"{split}-00000-of-00001.parquet"),
        table.schema,
        compression="snappy",
        use_dictionary=["label"],
        write_statistics=True,
        version="2.6",
        data_page_version="2.0",
        store_schema=False,
    )
    writer.write_table(table, row_group_size=n)
    writer.add_key_value_metadata({"huggingface": schema.metadata[b"huggingface"].decode()})
    writer.close()
    return np.stack(decoded), np.array(labels, np.int64), modes


def make_data(name, n_train, n_val, seed):
    root = os.path.join(OUT, name)
    rng = np.random.default_rng(seed)
    tr_pix, tr_lab, tr_modes = write_split(root, "train", n_train, rng)
    va_pix, va_lab, va_modes = write_split(root, "validation", n_val, rng)
    save_st(
        {
            "train.pixels": torch.from_numpy(tr_pix),
            "train.labels": torch.from_numpy(tr_lab),
            "validation.pixels": torch.from_numpy(va_pix),
            "validation.labels": torch.from_numpy(va_lab),
        },
        os.path.join(root, "pixels.safetensors"),
        metadata={"names": ",".join(NAMES), "format": "pt"},
    )
    return {"train": tr_modes, "validation": va_modes}


# ---------------------------------------------------------------- trainer runs


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, pixel_values, labels):
        self.pixel_values = pixel_values
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"idx": i, "pixel_values": self.pixel_values[i], "labels": int(self.labels[i])}


def trainer_run(key, run, modes):
    from torch.utils.data import SequentialSampler
    import datasets

    data_root = os.path.join(OUT, run["data"])
    model_dir = os.path.join(OUT, "model")
    run_dir = os.path.join(OUT, f"trainer-{key}")
    os.makedirs(run_dir, exist_ok=True)
    seed_all(SEED)

    # The Hub layout read the way the Hub reads it: split names and class names come from the files.
    ds = datasets.load_dataset(data_root)
    assert ds["train"].features["label"].names == NAMES, ds["train"].features
    assert len(ds["train"]) == run["n_train"] and len(ds["validation"]) == run["n_validation"]
    pixels = load_file(os.path.join(data_root, "pixels.safetensors"))
    processor = ViTImageProcessor.from_pretrained(model_dir)

    splits = {}
    data_info = {"resized": 0}
    for split in ("train", "validation"):
        imgs = [im.convert("RGB") for im in ds[split]["image"]]
        data_info["resized"] += sum(1 for im in imgs if im.size != (IMAGE, IMAGE))
        arr = np.stack([np.asarray(im) for im in imgs])
        data_info[f"{split}_decode_equals_pixels_safetensors"] = bool(
            np.array_equal(arr, pixels[f"{split}.pixels"].numpy())
        ) and bool(np.array_equal(np.array(ds[split]["label"]), pixels[f"{split}.labels"].numpy()))
        pv = processor(images=imgs, return_tensors="pt")["pixel_values"].float()
        manual = (torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(
            STD
        ).view(1, 3, 1, 1)
        data_info[f"{split}_processor_vs_manual_max_abs"] = float((pv - manual).abs().max())
        splits[split] = (pv, torch.tensor(ds[split]["label"], dtype=torch.long))

    seen = []

    def collate(items):
        seen.extend(int(it["idx"]) for it in items)
        return {
            "pixel_values": torch.stack([it["pixel_values"] for it in items]),
            "labels": torch.tensor([it["labels"] for it in items], dtype=torch.long),
        }

    seed_all(SEED)
    base = load_base(model_dir)
    model = PeftModel.from_pretrained(base, os.path.join(OUT, run["start_adapter"]), is_trainable=True)
    model.train()

    micro = []  # (size, num_items_in_batch, loss, summed CE / num_items recomputed)
    steps = []

    class RecTrainer(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
            if model.training:
                n_items = int(num_items_in_batch) if num_items_in_batch is not None else None
                summed = F.cross_entropy(outputs.logits.detach(), inputs["labels"], reduction="sum").item()
                micro.append((int(inputs["labels"].shape[0]), n_items, loss.item(), summed / n_items if n_items else None))
            return (loss, outputs) if return_outputs else loss

    pending = {}

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

    a = run["args"]
    targs = TrainingArguments(
        output_dir=os.path.join("/tmp", f"hf5-more-trainer-{key}"),
        learning_rate=a["learning_rate"],
        per_device_train_batch_size=a["per_device_train_batch_size"],
        gradient_accumulation_steps=a["gradient_accumulation_steps"],
        num_train_epochs=a["num_train_epochs"],
        weight_decay=a["weight_decay"],
        warmup_steps=a["warmup_steps"],
        max_grad_norm=a["max_grad_norm"],
        lr_scheduler_type=a["lr_scheduler_type"],
        logging_strategy="steps",
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=SEED,
        data_seed=SEED,
        dataloader_drop_last=False,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    trainer = RecTrainer(
        model=model,
        args=targs,
        train_dataset=ListDataset(*splits["train"]),
        data_collator=collate,
        callbacks=[Rec()],
    )
    trainer.train()

    n = run["n_train"]
    opt = trainer.optimizer
    inner = getattr(opt, "optimizer", opt)
    name_of = {id(p): n_ for n_, p in trainer.model.named_parameters()}
    d = inner.defaults
    optimizer = {
        "class": type(inner).__name__,
        "betas": list(d.get("betas")),
        "eps": d.get("eps"),
        "amsgrad": d.get("amsgrad"),
        "foreach": d.get("foreach"),
        "fused": d.get("fused"),
        "group_weight_decay": [g["weight_decay"] for g in inner.param_groups],
        "group_params": [[name_of[id(p)] for p in g["params"]] for g in inner.param_groups],
        "scheduler": type(trainer.lr_scheduler).__name__,
        "optim": str(targs.optim),
    }
    # each micro-batch's loss is its summed CE over the step's num_items_in_batch: check it and drop the helpers
    max_micro_dev = 0.0
    for s in steps:
        assert all(it == s["num_items_in_batch"] for it in s.pop("_items"))
        assert s["num_items_in_batch"] == sum(s["sizes"])
        for got, want in zip(s["micro_losses"], s.pop("_recomputed")):
            max_micro_dev = max(max_micro_dev, abs(got - want) / max(abs(want), 1e-12))
        max_micro_dev = max(max_micro_dev, abs(sum(s["micro_losses"]) - s["loss"]) / abs(s["loss"]))
    assert max_micro_dev < 1e-5, max_micro_dev

    steps_per_epoch = math.ceil(math.ceil(n / a["per_device_train_batch_size"]) / a["gradient_accumulation_steps"])
    order = seen[:n]
    model = trainer.model
    model.eval()
    with torch.no_grad():
        train_logits = model(pixel_values=splits["train"][0]).logits
        val_logits = model(pixel_values=splits["validation"][0]).logits
    trained_dir = os.path.join(run_dir, "trained-adapter")
    model.save_pretrained(trained_dir)

    out = {
        "versions": versions(),
        "optimizer": optimizer,
        "model_accepts_loss_kwargs": bool(trainer.model_accepts_loss_kwargs),
        "loss_per_microbatch": not max_micro_dev < 1e-5,  # False: micro-batch losses are summed CE / num_items_in_batch
        "trainable": [n_ for n_, p in model.named_parameters() if p.requires_grad],
        "data": {
            **data_info,
            "train": n,
            "validation": run["n_validation"],
            "order_first_epoch": order,
            "order_is_file_order": order == list(range(n)),
            "order_all_epochs_file_order": seen == list(range(n)) * int(a["num_train_epochs"]),
            "modes": modes,
            "root": run["data"],
        },
        "args": {**a, "seed": SEED, "dataloader_drop_last": False, "logging_steps": 1},
        "start_adapter": run["start_adapter"],
        "total_steps": int(trainer.state.max_steps),
        "steps_per_epoch": steps_per_epoch,
        "warmup_steps_resolved": int(targs.get_warmup_steps(trainer.state.max_steps)),
        "steps": steps,
        "train_logits": train_logits.tolist(),
        "validation_logits": val_logits.tolist(),
    }
    with open(os.path.join(run_dir, "trainer_run.json"), "w") as f:
        json.dump(out, f)

    # self-check: the saved trained adapter reproduces the recorded logits
    pm = PeftModel.from_pretrained(load_base(model_dir), trained_dir)
    pm.eval()
    with torch.no_grad():
        re_val = pm(pixel_values=splits["validation"][0]).logits
        re_train = pm(pixel_values=splits["train"][0]).logits
    print(
        json.dumps(
            {
                "trainer": key,
                "total_steps": out["total_steps"],
                "warmup": out["warmup_steps_resolved"],
                "sizes": [s["sizes"] for s in steps],
                "items": [s["num_items_in_batch"] for s in steps],
                "lr": [s["lr"] for s in steps],
                "lr_used": [s["lr_used"] for s in steps],
                "loss": [round(s["loss"], 5) for s in steps],
                "micro_loss_max_rel_dev": max_micro_dev,
                "order_is_file_order": out["data"]["order_is_file_order"],
                "all_epochs_file_order": out["data"]["order_all_epochs_file_order"],
                "reload_trained_val_rel": rel(re_val, val_logits),
                "reload_trained_train_rel": rel(re_train, train_logits),
                "data": data_info,
                "group_weight_decay": optimizer["group_weight_decay"],
                "fused": optimizer["fused"],
            }
        )
    )


def main():
    print(json.dumps(versions()), "->", OUT)
    if os.path.isdir(OUT):
        # keep the transformers-4 twins and the README; rebuild the rest
        for entry in os.listdir(OUT):
            if entry.endswith("-t4") or entry == "README.md":
                continue
            p = os.path.join(OUT, entry)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    os.makedirs(OUT, exist_ok=True)
    model_dir = os.path.join(OUT, "model")
    make_model(model_dir)
    for i, (name, spec) in enumerate(VARIANTS.items()):
        make_adapter(model_dir, name, spec, SEED + 100 * (i + 1))
    modes = {}
    for i, (key, run) in enumerate(TRAINER_RUNS.items()):
        modes[key] = make_data(run["data"], run["n_train"], run["n_validation"], SEED + 1000 * (i + 1))
    for key, run in TRAINER_RUNS.items():
        trainer_run(key, run, modes[key])


if __name__ == "__main__":
    main()
