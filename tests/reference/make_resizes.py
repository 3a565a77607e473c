"""More of Pillow's bilinear resizes of the shared resize/source.png: one axis at a time
(only a horizontal or only a vertical pass), upscaling, and an odd box.

Run with Debian's python3 (PIL 9.4): python3 tests/reference/make_resizes.py
"""
from pathlib import Path

from PIL import Image

here = Path(__file__).resolve().parent.parent / "fixtures"
source = Image.open(here / "resize" / "source.png").convert("RGB")
out = here / "resize-more"
out.mkdir(exist_ok=True)
source.resize((224, 384), Image.BILINEAR).save(out / "w224_h384.png")
source.resize((512, 224), Image.BILINEAR).save(out / "w512_h224.png")
source.crop((100, 100, 150, 140)).resize((97, 61), Image.BILINEAR).save(out / "up_97x61.png")
source.resize((64, 80), Image.BILINEAR, box=(7, 11, 301, 290)).save(out / "box_7_11_294x279_to_64x80.png")
print("wrote", sorted(p.name for p in out.iterdir()))
