"""Makes tests/fixtures/fp16/: PyTorch's mixed precision (what Trainer's `fp16=True` runs) on tiny ViTs with LoRA.

    /work/venv/bin/python tests/reference/make_fp16.py [OUT_DIR]

torch 2.13.0+cpu, transformers 5.18.0, peft 0.21.0 (real libraries, float32 weights). OUT_DIR defaults to
tests/fixtures/fp16 next to this script. Deterministic: two runs give byte-identical files.

What runs is the real thing, not an emulation: `torch.autocast("cpu", dtype=torch.float16)` around the
forward pass, as Trainer's `fp16=True` wraps it (accelerate's autocast), and `torch.amp.GradScaler` with
Trainer's order of calls. torch 2.13's CPU autocast supports float16 for every op a ViT uses (checked here, see
`check_autocast_dtypes`): linear layers (the patch convolution, query/key/value/output, the MLP, LoRA's A and B,
the classifier) and `scaled_dot_product_attention` run in float16 (float16 inputs, float32 accumulation, a
float16 result: within one rounding of that emulation, see `check_linear_is_emulation`), LayerNorm, softmax
inside attention, the loss and the residual sums in float32, GELU on float16 tensors. The only difference from
CUDA is the attention kernel (CPU's flash attention rounds its probabilities to float16 before `P V`).

Sets (each in OUT_DIR/<set>.safetensors; README.md says what each tensor is):
  a     tests/fixtures/vit-tiny-a's model/ and adapter/ (LoRA r 4 on query and value, alpha 8; hidden 48,
        2 layers, 3 heads, 7 labels; qkv bias), its pixel_values and labels (3 images)
  all   tests/fixtures/hf5-more's model/ and adapter-all/ (LoRA on every linear layer, ranks 2-5, rsLoRA;
        hidden 40, 3 layers, 5 heads, no qkv bias, 6 labels), its pixel_values and labels (4 images)
  scaler  set a trained 14 steps under autocast with GradScaler(init_scale 2^17, growth_interval 3), AdamW
        (lr 5e-3 linear to 0 over the 14 steps, as Trainer's scheduler: stepped only when the optimizer was),
        max_grad_norm 1: per step the scale used, whether the step was skipped, the loss, the gradient norm,
        and every trainable tensor after the step. The run overflows (skips) at its first steps and after
        growths; the script checks that each step's verdict holds with the scale 1% higher or lower (so a
        faithful implementation cannot land on the other side).
"""

import sys

sys.modules["torchvision"] = None  # this venv's torchvision does not load against its torch; nothing needs it

import json
import math
import os
import struct

import torch
import torch.nn.functional as F

import peft
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import ViTForImageClassification

transformers.logging.set_verbosity_error()
HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")
OUT = os.path.normpath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(FIXTURES, "fp16"))

T4_TO_T5 = [
    ("encoder.layer.", "layers."),
    ("attention.attention.query", "attention.q_proj"),
    ("attention.attention.key", "attention.k_proj"),
    ("attention.attention.value", "attention.v_proj"),
]


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        if t.dtype == torch.float64:
            t = t.float()
        data = t.numpy().tobytes()
        dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, sort_keys=True).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def set_a():
    """vit-tiny-a: its adapter (transformers 4 names) loaded into transformers 5's modules."""
    base = os.path.join(FIXTURES, "vit-tiny-a")
    model = ViTForImageClassification.from_pretrained(os.path.join(base, "model"), num_labels=7)
    cfg = json.load(open(os.path.join(base, "adapter", "adapter_config.json")))
    peft_model = get_peft_model(
        model,
        LoraConfig(
            r=cfg["r"],
            lora_alpha=cfg["lora_alpha"],
            target_modules=["q_proj", "v_proj"],
            lora_dropout=0.0,
            modules_to_save=["classifier"],
        ),
    )
    state = {}
    for key, value in load_file(os.path.join(base, "adapter", "adapter_model.safetensors")).items():
        for old, new in T4_TO_T5:
            key = key.replace(old, new)
        key = key.replace(".lora_A.weight", ".lora_A.default.weight").replace(".lora_B.weight", ".lora_B.default.weight")
        key = key.replace("classifier.weight", "classifier.modules_to_save.default.weight")
        key = key.replace("classifier.bias", "classifier.modules_to_save.default.bias")
        state[key] = value
    missing, unexpected = peft_model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert not [k for k in missing if "lora_" in k or "modules_to_save" in k], missing
    e = load_file(os.path.join(base, "expected.safetensors"))
    with torch.no_grad():  # the adapter is the one the float32 fixture describes
        fp32 = peft_model(pixel_values=e["pixel_values"]).logits
    assert (fp32 - e["logits"]).abs().max() < 1e-4
    return peft_model, e["pixel_values"], e["labels"]


def set_all():
    base = os.path.join(FIXTURES, "hf5-more")
    model = ViTForImageClassification.from_pretrained(os.path.join(base, "model"))
    peft_model = PeftModel.from_pretrained(model, os.path.join(base, "adapter-all"), is_trainable=True)
    e = load_file(os.path.join(base, "adapter-all", "expected.safetensors"))
    with torch.no_grad():
        fp32 = peft_model(pixel_values=e["pixel_values"]).logits
    assert (fp32 - e["logits"]).abs().max() < 1e-4
    return peft_model, e["pixel_values"], e["labels"]


def adapter_key(name):
    """A trainable parameter's name in adapter_model.safetensors (transformers 5 names, as PEFT saves them)."""
    name = name.replace(".default.", ".").replace("classifier.modules_to_save.", "classifier.")
    return name


def trainable(model):
    return {adapter_key(n): p for n, p in model.named_parameters() if p.requires_grad}


def check_autocast_dtypes(model, pixels):
    """The forward pass under CPU autocast runs the linear layers in float16, LayerNorm in float32."""
    seen = {}
    hooks = []
    for name, module in model.named_modules():
        kind = type(module).__name__
        if kind in ("Linear", "LayerNorm", "Conv2d"):
            hooks.append(module.register_forward_hook(
                lambda m, i, o, name=name, kind=kind: seen.setdefault(kind, set()).add(o.dtype)))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
        model(pixel_values=pixels)
    for h in hooks:
        h.remove()
    assert seen["Linear"] == {torch.float16}, seen
    assert seen["Conv2d"] == {torch.float16}, seen
    assert seen["LayerNorm"] == {torch.float32}, seen


def check_linear_is_emulation():
    """CPU autocast's float16 linear: float16 inputs, float32 accumulation, the bias added, one rounding."""
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(37, 96, generator=g), torch.randn(40, 96, generator=g) * 0.1, torch.randn(40, generator=g)
    with torch.autocast("cpu", dtype=torch.float16):
        y = F.linear(x, w, b)
    emulated = (x.half().float() @ w.half().float().T + b.half().float()).half()
    # equal but for the float32 summation order: at most one float16 step apart
    assert ((y.float() - emulated.float()).abs() <= emulated.float().abs() * 2**-10 + 2**-24).all()


def forward_backward(model, pixels, labels, scale=1.0):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.float16):
        out = model(pixel_values=pixels)
    loss = F.cross_entropy(out.logits.float(), labels)
    (loss * scale).backward()
    return out.logits, loss


def numerics(name, make):
    model, pixels, labels = make()
    model.eval()  # dropout is 0 anyway; eval makes it explicit
    check_autocast_dtypes(model, pixels)
    params = trainable(model)
    out = {"pixel_values": pixels, "labels": labels}
    for precision in ("fp16", "fp32"):
        model.zero_grad(set_to_none=True)
        if precision == "fp16":
            logits, loss = forward_backward(model, pixels, labels)
        else:
            logits = model(pixel_values=pixels).logits
            loss = F.cross_entropy(logits, labels)
            loss.backward()
        assert logits.dtype == (torch.float16 if precision == "fp16" else torch.float32)
        out[f"{precision}.logits"] = logits.float()
        out[f"{precision}.loss"] = loss.reshape(1).float()
        for key, p in params.items():
            out[f"{precision}.grad.{key}"] = p.grad.float().clone()
    write_safetensors(os.path.join(OUT, f"{name}.safetensors"), out)
    rel = lambda a, b: ((a - b).abs().max() / b.abs().max()).item()
    print(f"{name}: |fp16 - fp32| / max|fp32|: logits {rel(out['fp16.logits'], out['fp32.logits']):.2e}, "
          f"grads up to {max(rel(out[f'fp16.grad.{k}'], out[f'fp32.grad.{k}']) for k in params):.2e}")


SCALER = dict(init_scale=2.0**17, growth_factor=2.0, backoff_factor=0.5, growth_interval=3)
STEPS, LR, MAX_GRAD_NORM = 14, 5e-3, 1.0


def overflows(model, pixels, labels, scale):
    """Whether the backward pass at `scale` gives a non-finite gradient (GradScaler's found_inf)."""
    forward_backward(model, pixels, labels, scale)
    return any(not torch.isfinite(p.grad).all() for p in trainable(model).values())


def scaler_run():
    model, pixels, labels = set_a()
    model.train()
    params = trainable(model)
    names = sorted(params)
    opt = torch.optim.AdamW([params[k] for k in names], lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: max(0.0, (STEPS - k) / STEPS))
    scaler = torch.amp.GradScaler("cpu", **SCALER)
    out = {"pixel_values": pixels, "labels": labels}
    for k in names:
        out[f"initial.{k}"] = params[k].detach().clone()
    rows = []
    for step in range(STEPS):
        scale = scaler.get_scale()
        # the verdict must not depend on the last bits of the gradients
        for nudged in (scale * 0.99, scale * 1.01):
            assert overflows(model, pixels, labels, nudged) == overflows(model, pixels, labels, scale), step
        lr = opt.param_groups[0]["lr"]
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.float16):
            logits = model(pixel_values=pixels).logits
        loss = F.cross_entropy(logits.float(), labels)
        scaler.scale(loss).backward()
        # Trainer (accelerate): unscale, clip to max_grad_norm (the norm it logs), scaler.step, scaler.update,
        # then the scheduler only when the optimizer step was not skipped
        scaler.unscale_(opt)
        norm = torch.nn.utils.clip_grad_norm_([params[k] for k in names], MAX_GRAD_NORM)
        before = opt.state_dict()["state"].get(0, {}).get("step", torch.tensor(0.0)).item()
        scaler.step(opt)
        scaler.update()
        after = opt.state_dict()["state"].get(0, {}).get("step", torch.tensor(0.0)).item()
        skipped = after == before
        if not skipped:
            sched.step()
        rows.append(dict(step=step, scale=scale, skipped=skipped, loss=loss.item(), grad_norm=norm.item(), lr=lr))
        for k in names:
            out[f"step{step}.{k}"] = params[k].detach().clone()
    out["scale"] = torch.tensor([r["scale"] for r in rows], dtype=torch.float32)
    out["skipped"] = torch.tensor([1.0 if r["skipped"] else 0.0 for r in rows])
    out["loss"] = torch.tensor([r["loss"] for r in rows], dtype=torch.float32)
    out["grad_norm"] = torch.tensor([r["grad_norm"] for r in rows], dtype=torch.float32)
    out["lr"] = torch.tensor([r["lr"] for r in rows], dtype=torch.float32)
    out["final_scale"] = torch.tensor([scaler.get_scale()], dtype=torch.float32)
    write_safetensors(os.path.join(OUT, "scaler.safetensors"), out)
    for r in rows:
        print(f"step {r['step']:2d}: scale 2^{int(math.log2(r['scale'])):2d} {'skipped' if r['skipped'] else 'applied'}"
              f"  loss {r['loss']:.5f}  grad_norm {r['grad_norm']:.5g}  lr {r['lr']:.5g}")
    assert any(r["skipped"] for r in rows[:2]) and any(r["skipped"] for r in rows[4:]), "the run must overflow"
    assert not all(r["skipped"] for r in rows), "and apply steps"


def main():
    torch.backends.nnpack.set_flags(False)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")
    check_linear_is_emulation()
    numerics("a", set_a)
    numerics("all", set_all)
    scaler_run()


if __name__ == "__main__":
    main()
