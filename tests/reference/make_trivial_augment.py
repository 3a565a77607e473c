"""torchvision's TrivialAugmentWide operations on real photos: tests/fixtures/trivial-augment/.

Every one of the 14 operations of `TrivialAugmentWide()` (31 bins, NEAREST, fill None), at
every magnitude bin and both signs where signed, run through torchvision's own
`autoaugment._apply_op` on PIL images, exactly as `TrivialAugmentWide.forward` calls it after
its draws. Sources: scikit-image's `chelsea()` and `coffee()` photos downscaled to 96×64, and
a 64×64 square from chelsea (after RandomResizedCrop a training image is square, and Pillow
rotates squares by 90°/270° with exact transposes). Written:

- `sources/<image>.png`: the three inputs;
- `<image>/<op>_<bin><sign>.png`: the outputs of a selection of cases (every op at least
  twice over the two photos, and the square's 90°/270° turns), for diagnosis and max-diff;
- `manifest.json`: versions, torch's CPU capability, the 31 magnitudes of each op as
  `magnitudes[i].item()` gives them, the first 16 hex digits of the SHA-256 of the raw RGB
  bytes of the output of *every* case (all bins, both signs, three images), and the affine
  matrices Pillow's `Image.transform` received for ShearX/ShearY/Rotate (captured by wrapping
  it) at every bin and sign, for 96×64 and 64×64.

Versions: torch 2.13.0+cpu, torchvision 0.28.0+cu130, Pillow 12.3.0, numpy 2.4.6,
scikit-image 0.26.0 (Python 3.11). The venv's torchvision wheel is a CUDA build whose C
extension (`_C.so`, torchvision::nms and the other detection ops) cannot load next to the
CPU torch; the transforms are pure Python and never use it, so `torchvision` is imported as a
bare package without running its `__init__` (see `import_torchvision_transforms`).

Run: /work/venv/bin/python tests/reference/make_trivial_augment.py [--dump DIR]
(`--dump DIR` also writes every case's PNG under DIR, not committed.)
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import PIL
import skimage
import skimage.data
import torch
from PIL import Image


def import_torchvision_transforms():
    spec = importlib.util.find_spec("torchvision")
    package = types.ModuleType("torchvision")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["torchvision"] = package
    from torchvision import version  # noqa: E402

    package.__version__ = version.__version__
    from torchvision.transforms import autoaugment, InterpolationMode  # noqa: E402

    return autoaugment, InterpolationMode, version.__version__


autoaugment, InterpolationMode, TORCHVISION_VERSION = import_torchvision_transforms()

HERE = Path(__file__).resolve().parent.parent / "fixtures" / "trivial-augment"
BINS = 31

# (image, op, bin, sign) whose PNG is committed; sign "" for unsigned ops
PNG_CASES = [
    ("chelsea", "Identity", None, ""),
    ("chelsea", "ShearX", 18, "+"),
    ("coffee", "ShearX", 30, "-"),
    ("coffee", "ShearY", 18, "-"),
    ("chelsea", "ShearY", 30, "+"),
    ("chelsea", "TranslateX", 15, "+"),
    ("coffee", "TranslateX", 30, "-"),
    ("coffee", "TranslateY", 7, "-"),
    ("chelsea", "TranslateY", 30, "+"),
    ("chelsea", "Rotate", 7, "+"),
    ("coffee", "Rotate", 30, "-"),
    ("square", "Rotate", 20, "+"),
    ("square", "Rotate", 20, "-"),
    ("coffee", "Brightness", 18, "+"),
    ("chelsea", "Brightness", 30, "-"),
    ("chelsea", "Color", 30, "+"),
    ("coffee", "Color", 18, "-"),
    ("coffee", "Contrast", 30, "+"),
    ("chelsea", "Contrast", 7, "-"),
    ("chelsea", "Sharpness", 30, "+"),
    ("coffee", "Sharpness", 18, "-"),
    ("coffee", "Posterize", 30, ""),
    ("chelsea", "Posterize", 18, ""),
    ("chelsea", "Solarize", 7, ""),
    ("coffee", "Solarize", 18, ""),
    ("coffee", "AutoContrast", None, ""),
    ("chelsea", "Equalize", None, ""),
]


def sources() -> dict[str, Image.Image]:
    chelsea = Image.fromarray(skimage.data.chelsea())  # 451×300
    coffee = Image.fromarray(skimage.data.coffee())  # 600×400
    return {
        "chelsea": chelsea.resize((96, 64), Image.BILINEAR),
        "coffee": coffee.resize((96, 64), Image.BILINEAR),
        "square": chelsea.resize((64, 64), Image.BILINEAR, box=(100, 0, 400, 300)),
    }


captured: list[list[float]] = []
_transform = Image.Image.transform


def recording_transform(self, size, method, data=None, *args, **kwargs):
    captured.append([float(v) for v in data])
    return _transform(self, size, method, data, *args, **kwargs)


Image.Image.transform = recording_transform


def digest(image: Image.Image) -> str:
    assert image.mode == "RGB"
    return hashlib.sha256(image.tobytes()).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dump", type=Path, help="also write every case's PNG here")
    args = parser.parse_args()

    ta = autoaugment.TrivialAugmentWide()
    assert ta.num_magnitude_bins == BINS and ta.interpolation == InterpolationMode.NEAREST
    assert ta.fill is None
    space = ta._augmentation_space(BINS)
    ops = list(space.keys())

    def apply(image: Image.Image, op: str, bin_: int | None, negative: bool) -> Image.Image:
        magnitudes, _ = space[op]
        magnitude = float(magnitudes[bin_].item()) if bin_ is not None else 0.0
        if negative:
            magnitude *= -1.0
        return autoaugment._apply_op(image, op, magnitude, interpolation=ta.interpolation, fill=ta.fill)

    images = sources()
    (HERE / "sources").mkdir(parents=True, exist_ok=True)
    for name, image in images.items():
        image.save(HERE / "sources" / f"{name}.png", optimize=True)
        # the saved PNG is what the test reads: it must round-trip
        assert Image.open(HERE / "sources" / f"{name}.png").convert("RGB").tobytes() == image.tobytes()

    # forward() is _apply_op after its draws: replay torch's draws for a few seeds
    for seed in range(40):
        torch.manual_seed(seed)
        expected = ta(images["chelsea"])
        torch.manual_seed(seed)
        op = ops[int(torch.randint(len(ops), (1,)).item())]
        magnitudes, signed = space[op]
        bin_ = int(torch.randint(len(magnitudes), (1,), dtype=torch.long).item()) if magnitudes.ndim > 0 else None
        negative = bool(signed and torch.randint(2, (1,)))
        assert apply(images["chelsea"], op, bin_, negative).tobytes() == expected.tobytes(), seed

    hashes: dict = {}
    matrices: dict = {}
    for name, image in images.items():
        hashes[name] = {}
        for op, (magnitudes, signed) in space.items():
            if magnitudes.ndim == 0:
                out = apply(image, op, None, False)
                hashes[name][op] = digest(out)
                if args.dump:
                    (args.dump / name).mkdir(parents=True, exist_ok=True)
                    out.save(args.dump / name / f"{op}.png")
                continue
            signs = ["+", "-"] if signed else [""]
            per_sign: dict = {}
            for sign in signs:
                row = []
                mats = []
                for b in range(len(magnitudes)):
                    captured.clear()
                    out = apply(image, op, b, sign == "-")
                    assert out.size == image.size and out.mode == "RGB"
                    row.append(digest(out))
                    mats.append(captured[0] if captured else None)
                    if args.dump:
                        (args.dump / name).mkdir(parents=True, exist_ok=True)
                        out.save(args.dump / name / f"{op}_{b}{sign}.png")
                per_sign[sign or "value"] = row
                if op in ("ShearX", "ShearY", "Rotate") and name in ("chelsea", "square"):
                    size = f"{image.width}x{image.height}"
                    matrices.setdefault(size, {}).setdefault(op, {})[sign] = mats
            hashes[name][op] = per_sign if signed else per_sign["value"]

    for name, op, bin_, sign in PNG_CASES:
        out = apply(images[name], op, bin_, sign == "-")
        (HERE / name).mkdir(parents=True, exist_ok=True)
        file = f"{op}.png" if bin_ is None else f"{op}_{bin_}{sign}.png"
        out.save(HERE / name / file, optimize=True)
        assert Image.open(HERE / name / file).convert("RGB").tobytes() == out.tobytes()

    manifest = {
        "versions": {
            "torch": torch.__version__,
            "torchvision": TORCHVISION_VERSION,
            "Pillow": PIL.__version__,
            "numpy": np.__version__,
            "scikit-image": skimage.__version__,
            "python": sys.version.split()[0],
        },
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bins": BINS,
        "ops": ops,
        "signed": [op for op, (_, signed) in space.items() if signed],
        "magnitudes": {
            op: [float(v) for v in magnitudes.tolist()]
            for op, (magnitudes, _) in space.items()
            if magnitudes.ndim > 0
        },
        "images": {name: [image.width, image.height] for name, image in images.items()},
        "pngs": [
            {
                "image": name,
                "op": op,
                "bin": bin_,
                "sign": sign,
                "file": f"{name}/{op}.png" if bin_ is None else f"{name}/{op}_{bin_}{sign}.png",
            }
            for name, op, bin_, sign in PNG_CASES
        ],
        "hashes": hashes,
        "matrices": matrices,
    }
    (HERE / "manifest.json").write_text(json.dumps(manifest, separators=(",", ":")) + "\n")
    total = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())
    print(f"wrote {HERE} ({total} bytes)")


if __name__ == "__main__":
    main()
