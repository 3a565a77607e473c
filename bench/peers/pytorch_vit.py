"""The PyTorch peer of bench/vit_bench.ts: ViT-B/16 at 224 (random weights, the real shapes),
forward at batch 1 and 8, and one LoRA training step at batch 8, with LoRA r 32 / alpha 16 /
dropout 0.1 on the attention query and value of every layer and the classifier trained in full
(101 classes): 1,257,317 trainable parameters.

--impl hf (the default) is what a user installs today: pip's torch 2.x + transformers + peft.
ViTForImageClassification from a ViTConfig, then PEFT's get_peft_model with LoraConfig(r=32,
lora_alpha=16, lora_dropout=0.1, modules_to_save=["classifier"]). The LoRA target names are read
from the instantiated model: transformers 5 names the attention projections
`layers.N.attention.{q_proj,k_proj,v_proj,o_proj}` (targets ["q_proj", "v_proj"]), transformers 4
`encoder.layer.N.attention.attention.{query,key,value}` (targets ["query", "value"]). After
get_peft_model the script checks that LoRA sits on exactly the query and value linear of every
layer and that the trainable parameter count is the recipe's, and exits non-zero if not. If
transformers or peft do not import, it exits non-zero with one line on stderr naming what is
missing; it never falls back silently.

--impl plain runs a plain-PyTorch ViT with the same shapes and arithmetic instead (LoRA dropout
included; Debian's python3-torch is enough: install libopenblas0-pthread, or PyTorch falls back
to the reference BLAS and runs some 25x slower). Only when asked for.

The training step is the recipe as transformers + PEFT users run it: model.train(), cross-entropy
loss, backward, clip_grad_norm_ 1.0, AdamW step. torch uses os.cpu_count() threads.

Prints one JSON object (the last line of stdout): images/s for each measurement
(forward_b{N}_images_per_s, train_step_b{N}_images_per_s), the implementation
("transformers+peft" or "plain PyTorch"), the torch, transformers and peft versions (null for
plain), target_modules, trainable_parameters, threads, cpu (the CPU model name), device, config.
Usage: python3 bench/peers/pytorch_vit.py [--impl hf|plain] [--repeat N] [--small]
       [--device cuda] [--forward-batches 1,8] [--train-batch 8]
On a GPU (--device cuda, as bench/gpu.sh runs it): float32, timed with CUDA synchronisation.
"""
import argparse
import contextlib
import json
import math
import os
import platform
import sys
import time

NAME = "pytorch_vit.py"


def die(message):
    print(f"{NAME}: {message}", file=sys.stderr)
    sys.exit(1)


parser = argparse.ArgumentParser()
parser.add_argument("--impl", choices=("hf", "plain"), default="hf",
                    help="hf: transformers + peft (the default); plain: a plain-PyTorch ViT")
parser.add_argument("--repeat", type=int, default=2)
parser.add_argument("--small", action="store_true", help="the small config of the bench suite")
parser.add_argument("--device", default="cpu")
parser.add_argument("--forward-batches", default="1,8")
parser.add_argument("--train-batch", type=int, default=8)
parser.add_argument("--fp16", action="store_true",
                    help="mixed precision as Trainer's fp16=True: torch.autocast(float16) and a GradScaler")
args = parser.parse_args()

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except Exception as e:  # noqa: BLE001 - report any import failure in one line
    die(f"torch is not importable ({e}); install it (pip install torch transformers peft)")

if args.impl == "hf":
    try:
        import peft
        import transformers
        from peft import LoraConfig, get_peft_model
        from transformers import ViTConfig, ViTForImageClassification
    except Exception as e:  # noqa: BLE001 - report any import failure in one line
        die(f"transformers + peft are not importable ({e}); install them "
            f"(pip install torch transformers peft) or pass --impl plain")

device = torch.device(args.device)
torch.set_num_threads(os.cpu_count() or 1)
torch.manual_seed(0)

if args.small:
    H, L, HEADS, I, S, P = 64, 3, 4, 256, 48, 16
else:
    H, L, HEADS, I, S, P = 768, 12, 12, 3072, 224, 16
R, ALPHA, DROPOUT, LABELS = 32, 16, 0.1, 101
# LoRA A (r x H) and B (H x r) on query and value of every layer, plus the whole classifier:
# 1,257,317 for ViT-B/16 with 101 labels.
EXPECTED_TRAINABLE = L * 2 * (R * H + H * R) + H * LABELS + LABELS


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


# ---- transformers + peft -------------------------------------------------------------------

def lora_targets(model):
    """The names of the attention query and value linear in this transformers version."""
    names = [n for n, _ in model.named_modules()]
    if any(n.endswith("attention.q_proj") for n in names):  # transformers 5
        return ["q_proj", "v_proj"]
    if any(n.endswith("attention.attention.query") for n in names):  # transformers 4
        return ["query", "value"]
    sample = ", ".join(n for n in names if ".0." in n) or ", ".join(names[:20])
    die(f"cannot find the ViT attention query/value modules in transformers "
        f"{transformers.__version__} (layer 0 modules: {sample})")


def build_hf():
    config = ViTConfig(hidden_size=H, num_hidden_layers=L, num_attention_heads=HEADS,
                       intermediate_size=I, image_size=S, patch_size=P, num_labels=LABELS)
    base = ViTForImageClassification(config)
    targets = lora_targets(base)
    model = get_peft_model(base, LoraConfig(
        r=R, lora_alpha=ALPHA, lora_dropout=DROPOUT, target_modules=targets,
        modules_to_save=["classifier"]))

    # LoRA on exactly the query and value linear of every layer, nothing else
    from peft.tuners.lora import LoraLayer
    lora = [n for n, m in model.named_modules() if isinstance(m, LoraLayer)]
    lora_a = [n for n, m in model.named_modules()
              if isinstance(m, nn.Linear) and n.rsplit(".", 2)[-2:-1] == ["lora_A"]]
    wrong = [n for n in lora if n.rsplit(".", 1)[-1] not in targets]
    per_target = {t: sum(n.endswith("." + t) for n in lora) for t in targets}
    if wrong or len(lora) != 2 * L or len(lora_a) != 2 * L or any(c != L for c in per_target.values()):
        die(f"LoRA landed on {len(lora)} modules ({len(lora_a)} lora_A), expected {2 * L}: "
            f"{L} each of {targets}; got {per_target}, unexpected {wrong[:4]}")

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    peft_trainable, total = model.get_nb_trainable_parameters()
    with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the JSON line
        model.print_trainable_parameters()
    if trainable != EXPECTED_TRAINABLE or peft_trainable != EXPECTED_TRAINABLE:
        die(f"{trainable:,} trainable parameters (peft says {peft_trainable:,}), "
            f"expected {EXPECTED_TRAINABLE:,} (LoRA r {R} on {targets} of {L} layers + classifier)")
    info = {
        "implementation": "transformers+peft",
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "target_modules": targets,
        "attention": getattr(model.config, "_attn_implementation", None),
    }
    return model, info, lambda x: model(pixel_values=x).logits


# ---- plain PyTorch (--impl plain only) -----------------------------------------------------

class LoraLinear(nn.Module):
    def __init__(self, din, dout, r=0):
        super().__init__()
        self.base = nn.Linear(din, dout)
        self.base.requires_grad_(False)
        self.r = r
        if r:
            self.drop = nn.Dropout(DROPOUT)
            self.A = nn.Parameter(torch.randn(r, din) / math.sqrt(din))
            self.B = nn.Parameter(torch.zeros(dout, r))

    def forward(self, x):
        y = self.base(x)
        if self.r:
            y = y + F.linear(F.linear(self.drop(x), self.A), self.B) * (ALPHA / self.r)
        return y


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(H, eps=1e-12), nn.LayerNorm(H, eps=1e-12)
        self.q, self.k, self.v = LoraLinear(H, H, R), LoraLinear(H, H), LoraLinear(H, H, R)
        self.o, self.up, self.down = LoraLinear(H, H), LoraLinear(H, I), LoraLinear(I, H)
        for m in (self.ln1, self.ln2):
            m.requires_grad_(False)

    def forward(self, x):
        b, t, _ = x.shape
        h = self.ln1(x)
        split = lambda z: z.view(b, t, HEADS, H // HEADS).transpose(1, 2)
        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(H // HEADS), -1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(b, t, H))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class PlainViT(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, H, P, P)
        self.cls = nn.Parameter(torch.zeros(1, 1, H), requires_grad=False)
        self.pos = nn.Parameter(torch.zeros(1, (S // P) ** 2 + 1, H), requires_grad=False)
        self.layers = nn.ModuleList(Layer() for _ in range(L))
        self.ln = nn.LayerNorm(H, eps=1e-12)
        self.head = nn.Linear(H, LABELS)
        for m in (self.patch, self.ln):
            m.requires_grad_(False)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], 1) + self.pos
        for layer in self.layers:
            x = layer(x)
        return self.head(self.ln(x)[:, 0])


def build_plain():
    model = PlainViT()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if trainable != EXPECTED_TRAINABLE:
        die(f"plain ViT has {trainable:,} trainable parameters, expected {EXPECTED_TRAINABLE:,}")
    info = {"implementation": "plain PyTorch", "transformers": None, "peft": None,
            "target_modules": ["q", "v"], "attention": "eager"}
    return model, info, model


model, info, logits_of = build_hf() if args.impl == "hf" else build_plain()
model.to(device)


def sync():
    if device.type == "cuda":
        torch.cuda.synchronize()


def rate(fn, batch):
    fn()  # warm-up
    sync()
    start = time.perf_counter()
    for _ in range(args.repeat):
        fn()
    sync()
    return batch * args.repeat / (time.perf_counter() - start)


def forward(batch):
    x = torch.randn(batch, 3, S, S, device=device)
    model.eval()

    def run():
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.float16, enabled=args.fp16):
            logits_of(x)

    return run


def train_step(batch):
    x = torch.randn(batch, 3, S, S, device=device)
    labels = torch.randint(0, LABELS, (batch,), device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-3, weight_decay=0.0)
    model.train()  # LoRA dropout on
    scaler = torch.amp.GradScaler(device.type, enabled=args.fp16)

    def run():
        with torch.autocast(device.type, dtype=torch.float16, enabled=args.fp16):
            loss = F.cross_entropy(logits_of(x), labels)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()

    return run


result = {
    "implementation": info["implementation"],
    "torch": torch.__version__,
    "transformers": info["transformers"],
    "peft": info["peft"],
    "target_modules": info["target_modules"],
    "attention": info["attention"],
    "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
    "cpu": cpu_name(),
    "threads": torch.get_num_threads(),
    "config": "small" if args.small else "ViT-B/16",
    "precision": "fp16 (autocast + GradScaler)" if args.fp16 else "fp32",
}
for b in (int(n) for n in args.forward_batches.split(",")):
    result[f"forward_b{b}_images_per_s"] = rate(forward(b), b)
result[f"train_step_b{args.train_batch}_images_per_s"] = rate(train_step(args.train_batch), args.train_batch)
print(json.dumps(result))
