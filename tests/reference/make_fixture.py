"""Makes a reference set like ../fixtures/vit-tiny-{a,b} for a ViT shape of one's choosing.

An independent float32 PyTorch implementation of transformers' ViTModel /
ViTForImageClassification forward pass (modeling_vit.py semantics) with PEFT's LoRA
(lora/layer.py semantics), written with torch.nn.functional only, so it needs no
transformers or peft: Debian's python3-torch is enough.

    python3 tests/reference/make_fixture.py OUT_DIR [--seed N]

writes OUT_DIR/{model,adapter,merged}/ and OUT_DIR/expected.safetensors, laid out as
../fixtures/README.md describes. The shape below is deliberately unlike the shared
fixtures: no qkv bias, an image size that the patch size does not divide, 5 heads,
layer_norm_eps 1e-6, and LoRA on intermediate.dense as well as query and value.
"""

import argparse
import json
import math
import os
import struct

import torch
import torch.nn.functional as F

CONFIG = {
    "model_type": "vit",
    "architectures": ["ViTModel"],
    "hidden_size": 40,
    "num_hidden_layers": 3,
    "num_attention_heads": 5,
    "intermediate_size": 72,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-6,
    "image_size": 30,
    "patch_size": 8,
    "num_channels": 3,
    "qkv_bias": False,
    "encoder_stride": 8,
}
NUM_LABELS = 6
R, ALPHA = 6, 9
TARGETS = ["query", "value", "intermediate.dense"]
BATCH = 4


def write_safetensors(path, tensors):
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        data = t.numpy().tobytes()
        dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)


def linear_modules(c):
    h, m = c["hidden_size"], c["intermediate_size"]
    shapes = {
        "attention.attention.query": (h, h),
        "attention.attention.key": (h, h),
        "attention.attention.value": (h, h),
        "attention.output.dense": (h, h),
        "intermediate.dense": (m, h),
        "output.dense": (h, m),
    }
    return shapes


def make_weights(c, g):
    h, p, ch = c["hidden_size"], c["patch_size"], c["num_channels"]
    grid = c["image_size"] // p
    n = lambda *s: torch.randn(*s, generator=g) * 0.2
    w = {
        "embeddings.cls_token": n(1, 1, h),
        "embeddings.position_embeddings": n(1, grid * grid + 1, h),
        "embeddings.patch_embeddings.projection.weight": n(h, ch, p, p),
        "embeddings.patch_embeddings.projection.bias": n(h),
    }
    for i in range(c["num_hidden_layers"]):
        for mod, shape in linear_modules(c).items():
            w[f"encoder.layer.{i}.{mod}.weight"] = n(*shape)
            if c["qkv_bias"] or not mod.startswith("attention.attention."):
                w[f"encoder.layer.{i}.{mod}.bias"] = n(shape[0])
        for norm in ["layernorm_before", "layernorm_after"]:
            w[f"encoder.layer.{i}.{norm}.weight"] = 1 + n(h)
            w[f"encoder.layer.{i}.{norm}.bias"] = n(h)
    w["layernorm.weight"] = 1 + n(h)
    w["layernorm.bias"] = n(h)
    w["pooler.dense.weight"] = n(h, h)
    w["pooler.dense.bias"] = n(h)
    return w


def targeted(mod):
    name = "vit." + mod
    return any(name == t or name.endswith("." + t) for t in TARGETS)


def forward(c, w, lora, pixels, scaling):
    """Returns (features at CLS after the final layernorm, hidden states)."""
    h, heads, p = c["hidden_size"], c["num_attention_heads"], c["patch_size"]
    d = h // heads
    eps = c["layer_norm_eps"]
    x = F.conv2d(pixels, w["embeddings.patch_embeddings.projection.weight"],
                 w["embeddings.patch_embeddings.projection.bias"], stride=p)
    x = x.flatten(2).transpose(1, 2)  # [batch, patches, hidden]
    cls = w["embeddings.cls_token"].expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1) + w["embeddings.position_embeddings"]

    def lin(prefix, mod, y):
        out = F.linear(y, w[f"{prefix}.{mod}.weight"], w.get(f"{prefix}.{mod}.bias"))
        key = f"{prefix}.{mod}"
        if key in lora:
            a, b = lora[key]
            out = out + F.linear(F.linear(y, a), b) * scaling
        return out

    for i in range(c["num_hidden_layers"]):
        pre = f"encoder.layer.{i}"
        y = F.layer_norm(x, (h,), w[f"{pre}.layernorm_before.weight"], w[f"{pre}.layernorm_before.bias"], eps)
        bsz, t, _ = y.shape
        split = lambda z: z.view(bsz, t, heads, d).permute(0, 2, 1, 3)
        q = split(lin(pre, "attention.attention.query", y))
        k = split(lin(pre, "attention.attention.key", y))
        v = split(lin(pre, "attention.attention.value", y))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d)
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v).permute(0, 2, 1, 3).reshape(bsz, t, h)
        x = x + lin(pre, "attention.output.dense", ctx)
        y = F.layer_norm(x, (h,), w[f"{pre}.layernorm_after.weight"], w[f"{pre}.layernorm_after.bias"], eps)
        x = x + lin(pre, "output.dense", F.gelu(lin(pre, "intermediate.dense", y)))
    x = F.layer_norm(x, (h,), w["layernorm.weight"], w["layernorm.bias"], eps)
    return x[:, 0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=20261127)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(args.seed)
    c = CONFIG
    h = c["hidden_size"]
    w = make_weights(c, g)
    scaling = ALPHA / R
    lora = {}
    for i in range(c["num_hidden_layers"]):
        for mod, (out_f, in_f) in linear_modules(c).items():
            key = f"encoder.layer.{i}.{mod}"
            if targeted(key):
                lora[key] = (
                    (torch.randn(R, in_f, generator=g) * 0.3).requires_grad_(),
                    (torch.randn(out_f, R, generator=g) * 0.3).requires_grad_(),
                )
    head_w = (torch.randn(NUM_LABELS, h, generator=g) * 0.3).requires_grad_()
    head_b = (torch.randn(NUM_LABELS, generator=g) * 0.1).requires_grad_()
    pixels = torch.randn(BATCH, c["num_channels"], c["image_size"], c["image_size"], generator=g)
    labels = torch.randint(0, NUM_LABELS, (BATCH,), generator=g)

    features = forward(c, w, {}, pixels, scaling)
    cls = forward(c, w, lora, pixels, scaling)
    logits = F.linear(cls, head_w, head_b)
    loss = F.cross_entropy(logits, labels)
    loss.backward()

    merged_w = dict(w)
    for key, (a, b) in lora.items():
        merged_w[f"{key}.weight"] = w[f"{key}.weight"] + scaling * (b @ a).detach()
    merged_logits = F.linear(forward(c, merged_w, {}, pixels, scaling), head_w, head_b)

    out = args.out
    for sub in ["model", "adapter", "merged"]:
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    with open(os.path.join(out, "model", "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    pre = {"do_normalize": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
           "image_std": [0.5, 0.5, 0.5], "size": c["image_size"]}
    with open(os.path.join(out, "model", "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2)
    write_safetensors(os.path.join(out, "model", "model.safetensors"), w)

    adapter = {}
    grads = {}
    for key, (a, b) in lora.items():
        for which, t in (("lora_A", a), ("lora_B", b)):
            name = f"base_model.model.vit.{key}.{which}.weight"
            adapter[name] = t
            grads[f"grad.{name}"] = t.grad
    adapter["base_model.model.classifier.weight"] = head_w
    adapter["base_model.model.classifier.bias"] = head_b
    grads["grad.base_model.model.classifier.weight"] = head_w.grad
    grads["grad.base_model.model.classifier.bias"] = head_b.grad
    write_safetensors(os.path.join(out, "adapter", "adapter_model.safetensors"), adapter)
    adapter_config = {
        "alpha_pattern": {}, "base_model_name_or_path": "../model", "bias": "none",
        "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True,
        "layers_pattern": None, "layers_to_transform": None, "lora_alpha": ALPHA,
        "lora_dropout": 0.1, "modules_to_save": ["classifier"], "peft_type": "LORA", "r": R,
        "rank_pattern": {}, "revision": None, "target_modules": TARGETS, "task_type": None,
        "use_dora": False, "use_rslora": False,
    }
    with open(os.path.join(out, "adapter", "adapter_config.json"), "w") as f:
        json.dump(adapter_config, f, indent=2)

    merged = {f"vit.{k}": v for k, v in merged_w.items() if not k.startswith("pooler.")}
    merged["classifier.weight"] = head_w
    merged["classifier.bias"] = head_b
    write_safetensors(os.path.join(out, "merged", "model.safetensors"), merged)
    labels_map = {str(i): f"class_{i}" for i in range(NUM_LABELS)}
    merged_config = dict(c, architectures=["ViTForImageClassification"], id2label=labels_map,
                         label2id={v: int(k) for k, v in labels_map.items()})
    with open(os.path.join(out, "merged", "config.json"), "w") as f:
        json.dump(merged_config, f, indent=2)

    expected = {"pixel_values": pixels, "labels": labels, "logits": logits,
                "merged_logits": merged_logits, "features": features, "loss": loss.reshape(1)}
    expected.update(grads)
    write_safetensors(os.path.join(out, "expected.safetensors"), expected)
    print(f"wrote {out}: loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
