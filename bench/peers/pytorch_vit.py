"""The PyTorch peer of bench/vit_bench.ts: ViT-B/16 at 224 (random weights, the real shapes),
forward at batch 1 and 8, and one LoRA training step (forward, backward, AdamW) at batch 8,
with LoRA r 32 / alpha 16 on query and value and the classifier trained (101 classes).

With transformers + peft importable it uses them (ViTForImageClassification from a config,
PEFT's LoraConfig with modules_to_save=["classifier"]); otherwise a plain-PyTorch ViT with the
same shapes and arithmetic (Debian's python3-torch is enough; install libopenblas0-pthread,
or PyTorch falls back to the reference BLAS and runs some 25x slower).

Prints one JSON object: images/s for each measurement, the implementation and thread count.
Usage: python3 bench/peers/pytorch_vit.py [--repeat N] [--small] [--device cuda]
       [--forward-batches 1,8] [--train-batch 8]
On a GPU (--device cuda, as bench/gpu.sh runs it): float32, timed with CUDA synchronisation.
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

parser = argparse.ArgumentParser()
parser.add_argument("--repeat", type=int, default=2)
parser.add_argument("--small", action="store_true", help="the small config of the bench suite")
parser.add_argument("--device", default="cpu")
parser.add_argument("--forward-batches", default="1,8")
parser.add_argument("--train-batch", type=int, default=8)
args = parser.parse_args()
device = torch.device(args.device)
torch.set_num_threads(os.cpu_count() or 1)
torch.manual_seed(0)

if args.small:
    H, L, HEADS, I, S, P = 64, 3, 4, 256, 48, 16
else:
    H, L, HEADS, I, S, P = 768, 12, 12, 3072, 224, 16
R, ALPHA, LABELS = 32, 16, 101


class LoraLinear(nn.Module):
    def __init__(self, din, dout, r=0):
        super().__init__()
        self.base = nn.Linear(din, dout)
        self.base.requires_grad_(False)
        self.r = r
        if r:
            self.A = nn.Parameter(torch.randn(r, din) / math.sqrt(din))
            self.B = nn.Parameter(torch.zeros(dout, r))

    def forward(self, x):
        y = self.base(x)
        if self.r:
            y = y + F.linear(F.linear(x, self.A), self.B) * (ALPHA / self.r)
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


def build():
    try:
        from peft import LoraConfig, get_peft_model
        from transformers import ViTConfig, ViTForImageClassification

        config = ViTConfig(hidden_size=H, num_hidden_layers=L, num_attention_heads=HEADS,
                           intermediate_size=I, image_size=S, patch_size=P, num_labels=LABELS)
        model = get_peft_model(ViTForImageClassification(config), LoraConfig(
            r=R, lora_alpha=ALPHA, lora_dropout=0.1, target_modules=["query", "value"],
            modules_to_save=["classifier"]))
        return model, "transformers+peft", lambda out: out.logits
    except Exception:
        return PlainViT(), "plain PyTorch", lambda out: out


model, impl, logits_of = build()
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
        with torch.no_grad():
            logits_of(model(x))

    return run


def train_step(batch):
    x = torch.randn(batch, 3, S, S, device=device)
    labels = torch.randint(0, LABELS, (batch,), device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-3, weight_decay=0.0)
    model.train()

    def run():
        loss = F.cross_entropy(logits_of(model(x)), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()

    return run


result = {
    "implementation": impl,
    "torch": torch.__version__,
    "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
    "threads": torch.get_num_threads(),
    "config": "small" if args.small else "ViT-B/16",
}
for b in (int(n) for n in args.forward_batches.split(",")):
    result[f"forward_b{b}_images_per_s"] = rate(forward(b), b)
result[f"train_step_b{args.train_batch}_images_per_s"] = rate(train_step(args.train_batch), args.train_batch)
print(json.dumps(result))
