"""Images in the formats Food-101 mixes (grayscale and CMYK JPEGs, PNGs with alpha or a
palette), each with what PIL's convert("RGB") makes of it, saved as a plain RGB PNG.

Run with Debian's python3 (PIL 9.4): python3 tests/reference/make_images.py
"""
from pathlib import Path

import numpy as np
from PIL import Image

out = Path(__file__).resolve().parent.parent / "fixtures" / "images"
out.mkdir(parents=True, exist_ok=True)
rng = np.random.RandomState(0)
yy, xx = np.mgrid[0:40, 0:48]
base = np.stack([xx * 5, yy * 6, (xx + yy) * 3], -1) + rng.randint(0, 40, (40, 48, 3))
rgb = Image.fromarray(np.clip(base, 0, 255).astype("uint8"))
cases = {
    "gray.jpg": rgb.convert("L"),
    "cmyk.jpg": rgb.convert("CMYK"),
    "rgb.jpg": rgb,
    "rgba.png": rgb.convert("RGBA"),
    "palette.png": rgb.convert("P"),
    "gray.png": rgb.convert("L"),
}
for name, image in cases.items():
    image.save(out / name, quality=95) if name.endswith(".jpg") else image.save(out / name)
    Image.open(out / name).convert("RGB").save(out / (name + ".rgb.png"))
print("wrote", sorted(p.name for p in out.iterdir()))
