"""Checks vit-lora's ONNX export of vit-tiny-a with the Python libraries and writes
tests/fixtures/onnx/:

- q8_reference.onnx: ONNX Runtime's own `onnxruntime.quantization.quantize_dynamic` on our
  float32 graph (onnx/model.onnx) with `op_types_to_quantize=["MatMul"]` (the MatMul/Gemm
  weights; the patch embedding's Conv stays float32), every other option its default (int8
  weights, MatMulConstBOnly);
- reference.safetensors: `pixel_values` [16, 3, 32, 32] (vit-tiny-a's 3 expected images and 13
  seeded normal ones) and the logits Python's onnxruntime gives on them for our three files and
  for q8_reference.onnx (`logits.fp32`, `logits.fp16`, `logits.q8`, `logits.q8_reference`);
- float16.json: float32 values and the float16 bits NumPy rounds them to (ties, subnormals,
  overflow), for float16.ts's rounding.

It asserts on the way: `onnx.checker.check_model(full_check=True)` passes on all three files;
our q8 initializers are byte for byte quantize_dynamic's; fp32 equals PyTorch's expected logits
within 1e-4.

    /work/venv/bin/python tests/reference/make_onnx_q8.py
    # torch 2.13, onnx 1.23.1, onnxruntime 1.30.0, numpy 2.4, deno on PATH
"""
import json, os, subprocess, tempfile, warnings
import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import quantize_dynamic
from safetensors.numpy import load_file, save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "onnx")
FILES = {"fp32": "model.onnx", "fp16": "model_fp16.onnx", "q8": "model_quantized.onnx"}

with tempfile.TemporaryDirectory() as tmp:
    folder = os.path.join(tmp, "export")
    subprocess.run(
        ["deno", "run", "--allow-read", "--allow-write", "--allow-env", "tests/onnx/export_fixture.ts", folder],
        cwd=ROOT, check=True,
    )
    for f in FILES.values():
        onnx.checker.check_model(onnx.load(os.path.join(folder, "onnx", f)), full_check=True)
    ref_path = os.path.join(OUT, "q8_reference.onnx")
    quantize_dynamic(os.path.join(folder, "onnx", "model.onnx"), ref_path, op_types_to_quantize=["MatMul"])

    ours = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(os.path.join(folder, "onnx", FILES["q8"])).graph.initializer}
    theirs = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(ref_path).graph.initializer}
    assert set(ours) == set(theirs), set(ours) ^ set(theirs)
    for k in ours:
        assert ours[k].dtype == theirs[k].dtype and np.array_equal(ours[k], theirs[k]), k

    expected = load_file(os.path.join(ROOT, "tests", "fixtures", "vit-tiny-a", "expected.safetensors"))
    rng = np.random.default_rng(19)
    x = np.concatenate([expected["pixel_values"], rng.standard_normal((13, 3, 32, 32)).astype(np.float32)])
    out = {"pixel_values": x}
    paths = {k: os.path.join(folder, "onnx", f) for k, f in FILES.items()}
    paths["q8_reference"] = ref_path
    for k, p in paths.items():
        session = ort.InferenceSession(p, providers=["CPUExecutionProvider"])
        out[f"logits.{k}"] = session.run(["logits"], {"pixel_values": x})[0]
    ref = expected["logits"]
    err = np.abs(out["logits.fp32"][:3] - ref).max() / np.abs(ref).max()
    assert err < 1e-4, err
    save_file(out, os.path.join(OUT, "reference.safetensors"), metadata={"onnxruntime": ort.__version__, "onnx": onnx.__version__})

warnings.simplefilter("ignore", RuntimeWarning)  # the overflows to infinity are the point
values = np.array(
    [0, -0.0, 1, -1, 1 / 3, 65504, 65520, 65519.99, 1e5, 6.1035156e-05, 6.0975552e-05, 5.9604645e-08,
     2.9802322e-08, 2.9802326e-08, 1e-9, 1.0009765625, 1.00048828125, 1.00146484375, -2.5e-6, 3.14159265, -70000.0],
    dtype=np.float32,
)
with open(os.path.join(OUT, "float16.json"), "w") as f:
    json.dump({"float32": [float(v) for v in values], "float16_bits": [int(b) for b in values.astype(np.float16).view(np.uint16)]}, f)
    f.write("\n")
print("wrote", OUT)
