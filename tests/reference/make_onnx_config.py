"""Loads the config.json of vit-lora's ONNX export (vit-tiny-a) with transformers 5's
AutoConfig and writes tests/fixtures/onnx/config.json (the file as exported) and
autoconfig.json (what transformers read from it: the class, the label maps, the sizes, and the
config as transformers itself would save it). export_test.ts checks that today's export writes
the same config.json.

    /work/venv/bin/python tests/reference/make_onnx_config.py   # transformers 5.18, deno on PATH
"""
import json, os, shutil, subprocess, tempfile
import transformers
from transformers import AutoConfig

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "onnx")

with tempfile.TemporaryDirectory() as tmp:
    folder = os.path.join(tmp, "export")
    subprocess.run(
        ["deno", "run", "--allow-read", "--allow-write", "--allow-env", "tests/onnx/export_fixture.ts", folder],
        cwd=ROOT, check=True,
    )
    config = AutoConfig.from_pretrained(folder)
    shutil.copy(os.path.join(folder, "config.json"), os.path.join(OUT, "config.json"))
    saved = os.path.join(tmp, "saved")
    config.save_pretrained(saved)
    with open(os.path.join(saved, "config.json")) as f:
        resaved = json.load(f)

reading = {
    "transformers": transformers.__version__,
    "class": type(config).__name__,
    "model_type": config.model_type,
    "architectures": config.architectures,
    "num_labels": config.num_labels,
    "id2label": {str(k): v for k, v in config.id2label.items()},
    "label2id": config.label2id,
    "hidden_size": config.hidden_size,
    "image_size": config.image_size,
    "patch_size": config.patch_size,
    "dtype": str(config.dtype),
    "saved": resaved,
}
with open(os.path.join(OUT, "autoconfig.json"), "w") as f:
    json.dump(reading, f, indent=2, sort_keys=True)
    f.write("\n")
print(json.dumps(reading, indent=2)[:400])
