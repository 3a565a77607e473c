"""Writes tests/fixtures/onnx/photos/: eight real photographs from scikit-image's sample data,
the shorter side resized to 128 (PIL bilinear), as JPEG (quality 85). The ONNX export tests cut
many deterministic crops of them.

    /work/venv/bin/pip install --index-url file:///opt/pypi/simple scikit-image   # 0.26.0
    /work/venv/bin/python tests/reference/make_onnx_photos.py

Sources and terms (scikit-image's data/_fetchers.py): astronaut (NASA, public domain), camera
(Lav Varshney, CC0; grayscale), chelsea (Stefan van der Walt, CC0), coffee (Rachel Michetti, CC0),
hubble_deep_field (NASA, public domain), immunohistochemistry (CMMI, no known copyright
restrictions), retina (Wikimedia, CC0), rocket (SpaceX, public domain).
"""
import os
import numpy as np
from PIL import Image
from skimage import data

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "onnx", "photos")
os.makedirs(OUT, exist_ok=True)
for name in ["astronaut", "camera", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "retina", "rocket"]:
    a = np.asarray(getattr(data, name)())
    image = Image.fromarray(a).convert("RGB")
    w, h = image.size
    s = 128 / min(w, h)
    image = image.resize((round(w * s), round(h * s)), Image.BILINEAR)
    path = os.path.join(OUT, f"{name}.jpg")
    image.save(path, quality=85)
    print(path, image.size, os.path.getsize(path))
