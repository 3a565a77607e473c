"""Images as people have them, and what transformers' `load_image` makes of each.

Writes tests/fixtures/own-images/:
- `<format>/<name>` encoded inputs (JPEG, PNG, WebP, GIF, BMP, TIFF) made from real photos, and
  `<format>/<name>.rgb.png` what `transformers.image_utils.load_image` (that is
  `PIL.ImageOps.exif_transpose(Image.open(f)).convert("RGB")`) gives for each, as a plain RGB PNG;
- `manifest.json`: one entry per input (its format, what PIL opens it as, its EXIF orientation)
  and, for one file of each format, truncated copies (the first N bytes) with what PIL says;
- `folder/`, `folder-meta/`, `folder-flat/`: small image-folder datasets of real photos in the
  layouts of Hugging Face `datasets`' `imagefolder`, and `folder-labels.json`: what
  `datasets.load_dataset("imagefolder", data_dir=...)` gives for each (splits, row order,
  label feature).

The photos are scikit-image's bundled samples: `chelsea` (a cat, CC0, Stefan van der Walt),
`coffee` (CC0, Rachel Michetti), `astronaut` (NASA, public domain) and `rocket` (SpaceX,
public domain), cropped and downscaled here. Files that Pillow cannot write (16-bit RGB PNGs,
interlaced PNGs, 2/4-bit grays, short palettes, 16-bit and RLE BMPs, a GIF whose first frame
does not cover the screen, a YCCK JPEG as Photoshop writes it) are written by the small
encoders below, byte by byte as the formats specify; Pillow still says what they decode to.

Run with the reference venv:
    /work/venv/bin/python tests/reference/make_own_images.py
Made with Pillow 12.3.0 (libjpeg-turbo 3.1.4, libwebp 1.6.0, zlib-ng 2.3.3), transformers 5.18.0,
datasets 5.0.1, scikit-image 0.26.0 (and tifffile 2026.3.3, which it brings), numpy; the script
checks the versions of Pillow, transformers and datasets.
"""

import csv
import importlib.metadata
import io
import json
import os
import re
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import tifffile
import PIL
from PIL import Image, ImageOps, features
from skimage import data as skdata

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402

assert PIL.__version__ == "12.3.0", PIL.__version__
assert datasets.__version__ == "5.0.1", datasets.__version__

# transformers' image_utils imports torchvision, which this venv cannot always load; its
# load_image is read from the source instead, and its two steps for a PIL image are checked.
TRANSFORMERS = Path(datasets.__file__).parent.parent / "transformers"
TRANSFORMERS_VERSION = importlib.metadata.version("transformers")
assert TRANSFORMERS_VERSION == "5.18.0", TRANSFORMERS_VERSION
_src = (TRANSFORMERS / "image_utils.py").read_text()
_body = _src[_src.index("def load_image(") : _src.index("def load_image_as_tensor(")]
assert (
    'image = PIL.ImageOps.exif_transpose(image)\n    image = image.convert("RGB")\n    return image\n'
    in _body
), "transformers' load_image changed"


def load_image(image):
    """transformers 5.18's `image_utils.load_image` for a path or a PIL image."""
    if isinstance(image, str):
        image = Image.open(image)
    image = ImageOps.exif_transpose(image)
    image = image.convert("RGB")
    return image


OUT = Path(__file__).resolve().parent.parent / "fixtures" / "own-images"
OUT.mkdir(parents=True, exist_ok=True)
for old in OUT.iterdir():  # everything but the README is remade
    if old.name != "README.md":
        shutil.rmtree(old) if old.is_dir() else old.unlink()

PHOTOS = {
    "cat": skdata.chelsea(),  # 300 × 451
    "coffee": skdata.coffee(),  # 400 × 600
    "astronaut": skdata.astronaut(),  # 512 × 512
    "rocket": skdata.rocket(),  # 427 × 640
}


def photo(name, width, height, box=None):
    """A crop (left, top, right, bottom) of a sample photo, resized to width × height."""
    im = Image.fromarray(PHOTOS[name])
    if box is not None:
        im = im.crop(box)
    return im.resize((width, height), Image.LANCZOS)


manifest = {
    "pillow": PIL.__version__,
    "libjpeg_turbo": features.version("libjpeg_turbo"),
    "libwebp": features.version("webp"),
    "transformers": TRANSFORMERS_VERSION,
    "images": [],
    "truncated": [],
}


def record(path, **extra):
    """Stores what load_image gives for `path` next to it, and a manifest entry."""
    rel = path.relative_to(OUT).as_posix()
    opened = Image.open(path)
    orientation = opened.getexif().get(274)
    rgb = load_image(str(path))
    rgb.save(str(path) + ".rgb.png", optimize=True)
    entry = {
        "file": rel,
        "format": opened.format.lower(),  # JPEG, PNG, WEBP, GIF, BMP, TIFF
        "pil_format": opened.format,
        "pil_mode": opened.mode,
        "size": list(opened.size),
        # what PIL's getexif() holds for tag 274 (bytes shown as their repr)
        "orientation": orientation if isinstance(orientation, (int, type(None))) else repr(orientation),
        "rgb_size": list(rgb.size),
    }
    entry.update(extra)
    manifest["images"].append(entry)


def save(im, rel, **kw):
    path = OUT / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **kw)
    return path


def write(rel, data):
    path = OUT / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def exif_bytes(orientation, big_endian=False):
    """An Exif APP1 payload with IFD0 holding only the Orientation tag (SHORT)."""
    if big_endian:
        tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
        tiff += struct.pack(">HHIHH", 274, 3, 1, orientation, 0) + struct.pack(">I", 0)
    else:
        tiff = b"II\x2a\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
        tiff += struct.pack("<HHIHH", 274, 3, 1, orientation, 0) + struct.pack("<I", 0)
    return b"Exif\x00\x00" + tiff


# ------------------------------------------------------------------------------------- JPEG
cat = photo("cat", 77, 51)  # odd sizes: partial MCUs at the right and bottom edges
coffee = photo("coffee", 72, 48)
rocket = photo("rocket", 48, 64, (60, 0, 380, 427))
record(save(cat, "jpeg/baseline_420.jpg", quality=90), kind="baseline 4:2:0")
record(save(cat, "jpeg/baseline_422.jpg", quality=90, subsampling=1), kind="baseline 4:2:2")
record(save(coffee, "jpeg/baseline_444.jpg", quality=95, subsampling=0), kind="baseline 4:4:4")
record(save(rocket, "jpeg/optimized_q60.jpg", quality=60, optimize=True), kind="Huffman-optimised")
record(
    save(coffee, "jpeg/restart.jpg", quality=85, restart_marker_blocks=3),
    kind="restart markers every 3 MCUs",
)
record(save(cat, "jpeg/progressive.jpg", quality=85, progressive=True), kind="progressive 4:2:0")
record(
    save(rocket, "jpeg/progressive_444.jpg", quality=90, progressive=True, subsampling=0),
    kind="progressive 4:4:4",
)
record(save(cat.convert("L"), "jpeg/gray.jpg", quality=90), kind="grayscale")
record(
    save(coffee.convert("L"), "jpeg/gray_progressive.jpg", quality=90, progressive=True),
    kind="grayscale progressive",
)
# PIL writes CMYK inverted, with an Adobe APP14 marker (transform 0), and reads every CMYK JPEG
# as inverted (Adobe's convention)
record(save(coffee.convert("CMYK"), "jpeg/cmyk.jpg", quality=90), kind="CMYK, Adobe inverted")


def ycck_jpeg(rgb, subsampling):
    """A YCCK JPEG as Photoshop writes CMYK: an Adobe APP14 marker with transform 2; the inks
    (c, m, y, k), with black taken out under the colours, stored as YCbCr of (c, m, y) and
    255 - k. PIL writes the four planes it is given inverted; the transform byte is then set
    to 2, so that libjpeg converts YCCK back to (inverted) CMYK, which PIL inverts again."""
    ink = 255 - np.asarray(rgb).astype(np.int32)
    k = ink.min(axis=2)
    cmy = (ink - k[..., None]).astype(np.uint8)
    ycc = np.asarray(Image.fromarray(cmy).convert("YCbCr")).astype(np.int32)
    planes = np.dstack([255 - ycc, k])
    buf = io.BytesIO()
    Image.fromarray(planes.astype(np.uint8), "CMYK").save(
        buf, "JPEG", quality=90, subsampling=subsampling
    )
    raw = bytearray(buf.getvalue())
    at = raw.find(b"\xff\xee")
    assert raw[at + 4 : at + 9] == b"Adobe" and raw[at + 4 + 11] == 0, "PIL's Adobe marker"
    raw[at + 4 + 11] = 2  # transform: YCCK
    return bytes(raw)


record(write("jpeg/ycck.jpg", ycck_jpeg(cat, 0)), kind="YCCK (Photoshop CMYK)")
record(write("jpeg/ycck_420.jpg", ycck_jpeg(rocket, 2)), kind="YCCK, Y 2×2")

# EXIF orientation: all 8 values on a photo that is not symmetric, and 9 (invalid: ignored)
astro = photo("astronaut", 48, 32, (0, 60, 512, 401))
for o in range(1, 10):
    record(save(astro, f"orientation/jpeg_{o}.jpg", quality=90, exif=exif_bytes(o)), kind="EXIF")
record(
    save(astro, "orientation/jpeg_7_big_endian.jpg", quality=90, exif=exif_bytes(7, True)),
    kind="EXIF, big-endian TIFF header",
)
xmp = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
    b'syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
    b'tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
)
record(save(astro, "orientation/jpeg_xmp_6.jpg", quality=90, xmp=xmp), kind="XMP only")
def ifd0(*entries, big_endian=False):
    """An Exif block whose first IFD holds `entries`: (tag, type, count, 4 value bytes)."""
    e = ">" if big_endian else "<"
    out = (b"MM\x00\x2a" if big_endian else b"II\x2a\x00") + struct.pack(e + "IH", 8, len(entries))
    for tag, typ, count, value in entries:
        out += struct.pack(e + "HHI", tag, typ, count) + value
    return b"Exif\x00\x00" + out + struct.pack(e + "I", 0)


tiny = photo("astronaut", 24, 16, (0, 60, 512, 401))
EDGE = {
    # type LONG: PIL reads the integer
    "long_6": ifd0((274, 4, 1, struct.pack("<I", 6))),
    # two SHORTs: PIL takes the first
    "short_pair_8": ifd0((274, 3, 2, struct.pack("<HH", 8, 1))),
    # type BYTE: PIL reads bytes, not an integer, and transposes nothing
    "byte_6": ifd0((274, 1, 1, b"\x06\x00\x00\x00")),
    # the tag twice: the last one counts
    "twice_3_then_5": ifd0((274, 3, 1, struct.pack("<HH", 3, 0)), (274, 3, 1, struct.pack("<HH", 5, 0))),
}
for name, block in EDGE.items():
    record(save(tiny, f"orientation/edge_{name}.jpg", quality=90, exif=block), kind="EXIF edge case")
# the EXIF tag wins over XMP; a tag PIL reads as bytes still hides the XMP
record(
    save(tiny, "orientation/edge_exif_3_xmp_6.jpg", quality=90, exif=exif_bytes(3), xmp=xmp),
    kind="EXIF and XMP",
)
record(
    save(tiny, "orientation/edge_byte_tag_xmp_6.jpg", quality=90, exif=EDGE["byte_6"], xmp=xmp),
    kind="EXIF tag of type BYTE and XMP",
)
record(save(astro, "orientation/png_3.png", exif=exif_bytes(3)), kind="PNG eXIf")
record(save(astro, "orientation/png_6.png", exif=exif_bytes(6)), kind="PNG eXIf")
record(save(astro, "orientation/webp_5.webp", quality=90, exif=exif_bytes(5)), kind="WebP EXIF")
record(save(astro, "orientation/webp_8.webp", lossless=True, exif=exif_bytes(8)), kind="WebP EXIF")


# ------------------------------------------------------------------------------------- PNG
def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_rows(samples, depth):
    """Packs an (h, w, c) array of samples into PNG scanlines (without filter bytes)."""
    h, w, c = samples.shape
    rows = []
    for y in range(h):
        flat = samples[y].reshape(-1).astype(np.uint32)
        if depth == 16:
            rows.append(flat.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(flat.astype(np.uint8).tobytes())
        else:
            per = 8 // depth
            padded = np.concatenate([flat, np.zeros((-len(flat)) % per, np.uint32)])
            out = np.zeros(len(padded) // per, np.uint32)
            for i in range(per):
                out |= padded[i::per] << (8 - depth * (i + 1))
            rows.append(out.astype(np.uint8).tobytes())
    return rows


def png_filter(rows, bpp):
    """Filters each row with type y % 5 (none, sub, up, average, Paeth), as the spec defines."""
    out = b""
    prev = bytes(len(rows[0])) if rows else b""
    for y, row in enumerate(rows):
        kind = y % 5
        f = bytearray(len(row))
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 0:
                p = 0
            elif kind == 1:
                p = a
            elif kind == 2:
                p = b
            elif kind == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            f[i] = (x - p) & 255
        out += bytes([kind]) + bytes(f)
        prev = row
    return out


# Adam7's passes: (x0, y0, dx, dy)
ADAM7 = [
    (0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)
]


def png_file(samples, color_type, depth, palette=None, trns=None, interlace=False, extra=b""):
    h, w, c = samples.shape
    bpp = max(1, c * depth // 8)
    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += png_filter(png_rows(sub, depth), bpp)
    else:
        raw = png_filter(png_rows(samples, depth), bpp)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
    if palette is not None:
        out += png_chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).reshape(-1)))
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    out += extra
    # two IDAT chunks, as encoders that stream do
    z = zlib.compress(raw, 9)
    half = len(z) // 2
    out += png_chunk(b"IDAT", z[:half]) + png_chunk(b"IDAT", z[half:])
    return out + png_chunk(b"IEND", b"")


sky = photo("rocket", 48, 36, (0, 100, 427, 420))
face = photo("astronaut", 44, 33, (100, 0, 400, 225))
a8 = np.asarray(face)
gray8 = np.asarray(face.convert("L"))
yy, xx = np.mgrid[0 : a8.shape[0], 0 : a8.shape[1]]
alpha8 = ((xx * 255) // (a8.shape[1] - 1)).astype(np.uint8)
alpha8[:6] = 0  # fully transparent rows keep their colour under PIL's convert("RGB")

record(save(sky, "png/rgb8.png"), kind="RGB 8-bit")
record(save(Image.fromarray(np.dstack([a8, alpha8]), "RGBA"), "png/rgba8.png"), kind="RGBA")
record(save(Image.fromarray(np.dstack([gray8, alpha8]), "LA"), "png/la8.png"), kind="LA")
record(save(face.convert("L"), "png/gray8.png"), kind="grayscale 8-bit")
record(save(sky.convert("1"), "png/bilevel.png"), kind="1-bit")
record(save(sky.quantize(256), "png/palette8.png"), kind="palette 8-bit")
record(save(sky.quantize(16), "png/palette4.png", bits=4), kind="palette 4-bit")
record(save(sky.quantize(4), "png/palette2.png", bits=2), kind="palette 2-bit")
pal = face.quantize(64)
pal_alpha = bytes((i * 4) % 256 for i in range(64))
record(save(pal, "png/palette8_trns.png", transparency=pal_alpha), kind="palette, tRNS alphas")
record(save(pal, "png/palette8_trns_index.png", transparency=5), kind="palette, one tRNS index")
# 16-bit: PIL keeps the high byte of RGB(A)/LA samples, and clips 16-bit gray ("I;16") at 255
g16 = (gray8.astype(np.uint32) * 257 // 2 + (xx * 7 + yy) % 41).astype(np.uint16)
record(save(Image.fromarray(g16), "png/gray16.png"), kind="grayscale 16-bit (PIL clips)")
low16 = (gray8.astype(np.uint16) + 64)  # straddles 255
record(
    write("png/gray16_low.png", png_file(low16[..., None], 0, 16)),
    kind="grayscale 16-bit around 255",
)
rgb16 = a8.astype(np.uint32) * 257 + ((xx * 13 + yy * 5) % 200)[..., None]
record(write("png/rgb16.png", png_file(rgb16.astype(np.uint16), 2, 16)), kind="RGB 16-bit")
rgba16 = np.dstack([rgb16, alpha8.astype(np.uint32) * 257]).astype(np.uint16)
record(write("png/rgba16.png", png_file(rgba16, 6, 16)), kind="RGBA 16-bit")
la16 = np.dstack([g16, alpha8.astype(np.uint16) * 257])
record(write("png/la16.png", png_file(la16, 4, 16)), kind="LA 16-bit")
record(write("png/gray4.png", png_file((gray8 >> 4)[..., None], 0, 4)), kind="grayscale 4-bit")
record(write("png/gray2.png", png_file((gray8 >> 6)[..., None], 0, 2)), kind="grayscale 2-bit")
record(
    write("png/gray8_trns.png", png_file(gray8[..., None], 0, 8, trns=struct.pack(">H", 40))),
    kind="grayscale, tRNS colour",
)
record(
    write("png/rgb8_trns.png", png_file(a8, 2, 8, trns=struct.pack(">HHH", 10, 20, 30))),
    kind="RGB, tRNS colour",
)
record(write("png/rgb8_adam7.png", png_file(a8, 2, 8, interlace=True)), kind="RGB interlaced")
record(
    write("png/rgba16_adam7.png", png_file(rgba16, 6, 16, interlace=True)),
    kind="RGBA 16-bit interlaced",
)
idx4 = np.asarray(face.quantize(16))
pal16 = np.asarray(face.quantize(16).getpalette()[: 16 * 3]).reshape(16, 3)
record(
    write("png/palette4_adam7.png", png_file(idx4[..., None], 3, 4, palette=pal16, interlace=True)),
    kind="palette 4-bit interlaced",
)
record(
    write("png/gray2_adam7.png", png_file((gray8 >> 6)[..., None], 0, 2, interlace=True)),
    kind="grayscale 2-bit interlaced",
)
# a palette shorter than the indices used: PIL maps the missing entries to black
short = (idx4.astype(np.uint16) * 17 % 256).astype(np.uint8)
record(
    write("png/palette8_short.png", png_file(short[..., None], 3, 8, palette=pal16[:10])),
    kind="palette with indices past its end",
)
zexif = zlib.compress(
    b"\nexif\n      %d\n" % len(exif_bytes(8)) + exif_bytes(8).hex().encode() + b"\n"
)
record(
    write(
        "orientation/png_raw_profile_8.png",
        png_file(a8, 2, 8, extra=png_chunk(b"zTXt", b"Raw profile type exif\x00\x00" + zexif)),
    ),
    kind="PNG zTXt 'Raw profile type exif' (ImageMagick)",
)
record(
    write(
        "orientation/png_exif_after_idat_2.png",
        # an eXIf chunk after the image data, as some writers place it
        png_file(a8, 2, 8)[:-12] + png_chunk(b"eXIf", exif_bytes(2)[6:]) + png_chunk(b"IEND", b""),
    ),
    kind="PNG eXIf after IDAT",
)

# ------------------------------------------------------------------------------------ WebP
bowl = photo("coffee", 64, 48, (100, 0, 500, 300))
b8 = np.asarray(bowl)
byy, bxx = np.mgrid[0:48, 0:64]
balpha = np.clip((bxx * 4 + byy * 2), 0, 255).astype(np.uint8)
balpha[:, :8] = 0
bowl_rgba = Image.fromarray(np.dstack([b8, balpha]), "RGBA")
record(save(bowl, "webp/lossy.webp", quality=80), kind="lossy")
record(save(bowl, "webp/lossless.webp", lossless=True), kind="lossless")
record(save(bowl_rgba, "webp/lossy_alpha.webp", quality=80), kind="lossy with alpha")
record(save(bowl_rgba, "webp/lossless_alpha.webp", lossless=True), kind="lossless with alpha")
frames = [bowl, photo("coffee", 64, 48, (0, 50, 400, 350))]
record(
    save(frames[0], "webp/animated.webp", save_all=True, append_images=frames[1:], duration=80),
    kind="animated (first frame)",
)
record(
    save(
        bowl_rgba,
        "webp/animated_alpha.webp",
        save_all=True,
        append_images=[f.convert("RGBA") for f in frames[1:]],
        duration=80,
        lossless=True,
    ),
    kind="animated with alpha (first frame)",
)

# ------------------------------------------------------------------------------------- GIF
kitten = photo("cat", 64, 48, (100, 0, 400, 225))
record(save(kitten.quantize(256), "gif/palette.gif"), kind="256 colours, interlaced")
record(save(kitten.quantize(32), "gif/palette32.gif", interlace=False), kind="32 colours")
record(
    save(kitten.convert("L"), "gif/gray.gif", optimize=False), kind="gray ramp palette (PIL: mode L)"
)
record(save(kitten.quantize(64), "gif/transparent.gif", transparency=3), kind="transparency index")
anim = [kitten.quantize(64), photo("cat", 64, 48, (0, 0, 300, 225)).quantize(64)]
record(
    save(anim[0], "gif/animated.gif", save_all=True, append_images=anim[1:], duration=100, loop=0),
    kind="animated (first frame)",
)


def gif_offset_frame(im, screen, offset, transparency=None):
    """Re-frames a single-frame GIF written by PIL: a larger logical screen, the image placed
    at `offset`, optionally with a transparent index in a graphic control extension."""
    buf = io.BytesIO()
    im.save(buf, "GIF", interlace=False)
    raw = bytearray(buf.getvalue())
    assert raw[10] & 0x80, "global palette"
    raw[6:10] = struct.pack("<HH", *screen)
    pal_end = 13 + (3 << ((raw[10] & 7) + 1))
    at = raw.index(b",", pal_end)
    raw[at + 1 : at + 5] = struct.pack("<HH", *offset)
    if transparency is not None:
        gce = b"!\xf9\x04\x01\x00\x00" + bytes([transparency]) + b"\x00"
        # drop a GCE PIL may have written, then put ours just before the image
        pre = bytes(raw[pal_end:at])
        raw = raw[:pal_end] + gce + raw[at:]
        assert b"!\xf9" not in pre
    return bytes(raw)


small = photo("cat", 40, 30, (120, 30, 360, 210)).quantize(48)
record(
    write("gif/offset_frame.gif", gif_offset_frame(small, (64, 48), (10, 7))),
    kind="frame inside a larger screen",
)
record(
    write("gif/offset_frame_transparent.gif", gif_offset_frame(small, (64, 48), (20, 12), 7)),
    kind="offset frame, transparent index fills the screen",
)


# ------------------------------------------------------------------------------------- BMP
def bmp_file(rows, bits, size, palette=None, compression=0, masks=None, top_down=False):
    """A Windows BMP with a 40-byte BITMAPINFOHEADER; `rows` in file order, already padded."""
    width, height = size
    pal = b"" if palette is None else b"".join(bytes([b, g, r, 0]) for r, g, b in palette)
    extra = b"" if masks is None else b"".join(struct.pack("<I", m) for m in masks)
    body = b"".join(rows)
    offset = 14 + 40 + len(extra) + len(pal)
    info = struct.pack(
        "<IiiHHIIiiII", 40, width, -height if top_down else height, 1, bits, compression,
        len(body), 2835, 2835, 0 if palette is None else len(palette), 0,
    )
    head = b"BM" + struct.pack("<IHHI", offset + len(body), 0, 0, offset)
    return head + info + extra + pal + body


def bmp_rows(values, pack, top_down=False):
    """Each row of `values` packed to bytes and padded to 4; bottom-up unless `top_down`."""
    rows = [pack(values[y]) for y in range(values.shape[0])]
    rows = [row + bytes((-len(row)) % 4) for row in rows]
    return rows if top_down else rows[::-1]


def bgr(row):
    return row[:, ::-1].tobytes()


def bgrx(row):
    return np.hstack([row[:, ::-1], np.full((len(row), 1), 77, np.uint8)]).tobytes()


def u16le(row):
    return row.astype("<u2").tobytes()


def pack4(row):
    row = np.concatenate([row, np.zeros(len(row) % 2, row.dtype)])
    return ((row[0::2] << 4) | row[1::2]).astype(np.uint8).tobytes()


def rle8_rows(idx):
    """RLE8: each row as an absolute run of 5 pixels, then encoded runs; end-of-line codes."""
    out = []
    for y in range(idx.shape[0] - 1, -1, -1):
        row = idx[y]
        b = bytes([0, 5]) + row[:5].tobytes() + b"\x00"  # absolute, padded to a 16-bit word
        x = 5
        while x < len(row):
            n = 1
            while x + n < len(row) and row[x + n] == row[x] and n < 255:
                n += 1
            b += bytes([n, row[x]])
            x += n
        out.append(b + b"\x00\x00")
    out[-1] = out[-1][:-2] + b"\x00\x01"  # end of bitmap
    return out


brick = photo("rocket", 38, 29, (0, 0, 427, 320))  # odd widths: row padding
BRICK = brick.size
c8 = np.asarray(brick)
record(save(brick, "bmp/rgb24.bmp"), kind="24-bit")
record(save(brick.quantize(256), "bmp/palette8.bmp"), kind="8-bit palette")
record(save(brick.convert("L"), "bmp/gray8.bmp"), kind="8-bit gray ramp (PIL: mode L)")
record(save(brick.convert("1"), "bmp/bilevel.bmp"), kind="1-bit")
top_down = bmp_file(bmp_rows(c8, bgr, True), 24, BRICK, top_down=True)
record(write("bmp/rgb24_top_down.bmp", top_down), kind="24-bit top-down")
record(write("bmp/rgb32.bmp", bmp_file(bmp_rows(c8, bgrx), 32, BRICK)), kind="32-bit BGRX")
r5, g6, b5 = (c8[..., 0] >> 3).astype(np.uint16), (c8[..., 1] >> 2), (c8[..., 2] >> 3)
p565 = (r5 << 11) | (g6.astype(np.uint16) << 5) | b5
p555 = (r5 << 10) | ((g6.astype(np.uint16) >> 1) << 5) | b5
masks565 = (0xF800, 0x7E0, 0x1F)
record(
    write("bmp/rgb16_565.bmp", bmp_file(bmp_rows(p565, u16le), 16, BRICK, compression=3, masks=masks565)),
    kind="16-bit 5-6-5 bitfields",
)
record(write("bmp/rgb16_555.bmp", bmp_file(bmp_rows(p555, u16le), 16, BRICK)), kind="16-bit 5-5-5")
q16 = brick.quantize(16)
pal16b = np.asarray(q16.getpalette()[:48]).reshape(16, 3)
record(
    write("bmp/palette4.bmp", bmp_file(bmp_rows(np.asarray(q16), pack4), 4, BRICK, palette=pal16b)),
    kind="4-bit palette",
)
q12 = brick.quantize(12)
i8 = np.asarray(q12)
pal12 = np.asarray(q12.getpalette()[:36]).reshape(12, 3)
record(
    write("bmp/rle8.bmp", bmp_file(rle8_rows(i8), 8, BRICK, palette=pal12, compression=1)),
    kind="8-bit RLE",
)
past = (i8.astype(np.uint16) * 23 % 256).astype(np.uint8)
record(
    write("bmp/palette8_short.bmp", bmp_file(bmp_rows(past, np.ndarray.tobytes), 8, BRICK, palette=pal12)),
    kind="8-bit, indices past the palette",
)

# ------------------------------------------------------------------------------------ TIFF
record(save(brick, "tiff/rgb.tif"), kind="RGB, uncompressed")
record(save(brick, "tiff/rgb_lzw.tif", compression="tiff_lzw"), kind="RGB, LZW")
gray_brick, rgba_brick = brick.convert("L"), brick.convert("RGBA")
record(save(gray_brick, "tiff/gray_deflate.tif", compression="tiff_adobe_deflate"), kind="gray, Deflate")
record(save(rgba_brick, "tiff/rgba_deflate.tif", compression="tiff_deflate"), kind="RGBA, Deflate")
record(save(brick.quantize(64), "tiff/palette.tif"), kind="8-bit palette")
record(save(Image.fromarray(g16[:29, :38]), "tiff/gray16.tif"), kind="16-bit gray (PIL clips)")
tifffile.imwrite(OUT / "tiff/rgb16.tif", rgb16[:29, :38].astype(np.uint16), photometric="rgb")
record(OUT / "tiff/rgb16.tif", kind="16-bit RGB (tifffile)")
record(save(brick, "orientation/tiff_6.tif", exif=exif_bytes(6)), kind="TIFF Orientation tag")

# --------------------------------------------------------------------- truncated, damaged
# PIL reads a JPEG with a damaged byte in its entropy-coded data (libjpeg warns and goes on)
damaged = bytearray((OUT / "jpeg/baseline_420.jpg").read_bytes())
sos = damaged.index(b"\xff\xda")
damaged[sos + (len(damaged) - sos) // 2] ^= 0x5A
record(
    write("jpeg/damaged_data.jpg", bytes(damaged)), kind="a damaged byte in the scan (PIL decodes it)"
)

TRUNCATE = [
    "jpeg/baseline_420.jpg", "jpeg/progressive.jpg", "jpeg/cmyk.jpg", "png/rgb8.png",
    "png/palette4_adam7.png", "webp/lossy.webp", "webp/lossless.webp", "webp/animated.webp",
    "gif/palette.gif", "bmp/rgb24.bmp", "bmp/palette8.bmp", "bmp/rle8.bmp", "tiff/rgb_lzw.tif",
]
for rel in TRUNCATE:
    whole = (OUT / rel).read_bytes()
    for keep in sorted({len(whole) * 3 // 5, len(whole) - 2, 20}):
        entry = {"file": rel, "keep": keep}
        try:
            rgb = load_image(Image.open(io.BytesIO(whole[:keep])))
            # PIL reads it: what it gives is the reference
            entry["reference"] = f"truncated/{rel.replace('/', '_')}.{keep}.rgb.png"
            (OUT / "truncated").mkdir(exist_ok=True)
            rgb.save(OUT / entry["reference"], optimize=True)
        except Exception as e:  # noqa: BLE001 - what PIL says is the record
            entry["pil_error"] = re.sub(r" at 0x[0-9a-f]+", "", f"{type(e).__name__}: {e}")
        manifest["truncated"].append(entry)

def lines(items):
    return "[\n  " + ",\n  ".join(json.dumps(i) for i in items) + "\n ]"


head = {k: v for k, v in manifest.items() if not isinstance(v, list)}
(OUT / "manifest.json").write_text(
    json.dumps(head, indent=1)[:-2]
    + ',\n "images": ' + lines(manifest["images"])
    + ',\n "truncated": ' + lines(manifest["truncated"]) + "\n}\n"
)


# ------------------------------------------------------------------------- image folders
rng = np.random.RandomState(18)
CLASSES = {"cat": "cat", "coffee": "coffee", "rocket": "rocket"}
SIZES = [(48, 40), (56, 48), (64, 48), (72, 60), (56, 56), (80, 64), (96, 80)]


def crop_of(name):
    src = PHOTOS[name]
    h, w = src.shape[:2]
    ow, oh = SIZES[rng.randint(len(SIZES))]
    scale = rng.uniform(0.45, 0.9)
    cw = int(min(w, h * ow / oh) * scale)
    ch = int(cw * oh / ow)
    left, top = rng.randint(0, w - cw + 1), rng.randint(0, h - ch + 1)
    im = photo(name, ow, oh, (left, top, left + cw, top + ch))
    return im.transpose(Image.FLIP_LEFT_RIGHT) if rng.rand() < 0.5 else im


folder = OUT / "folder"
made = {}
for split, n in [("train", 12), ("validation", 4), ("test", 4)]:
    for cls, src in CLASSES.items():
        for i in range(1, n + 1):
            # numbered 1…12 without zero-padding: sorted as text, 10 comes before 2
            path = folder / split / cls / f"{cls}_{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            im = crop_of(src)
            im.save(path, quality=80)
            made.setdefault((split, cls), []).append(path)

# metadata.csv form: files side by side, string labels, rows not in file order
meta = OUT / "folder-meta"
for split, n in [("train", 4), ("validation", 2)]:
    rows = []
    for cls in CLASSES:
        for j, src in enumerate(made[(split, cls)][:n]):
            name = f"{split[:3]}{len(rows) * 7 % 13:02d}_{j}.jpg"
            (meta / split).mkdir(parents=True, exist_ok=True)
            shutil.copy(src, meta / split / name)
            rows.append((name, cls))
    rows.sort(key=lambda r: r[1], reverse=True)
    with open(meta / split / "metadata.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file_name", "label"])
        w.writerows(rows)

# class folders only, no split folders; mixed extensions and a file that is not an image
flat = OUT / "folder-flat"
for cls in CLASSES:
    (flat / cls).mkdir(parents=True)
    for j, src in enumerate(made[("train", cls)][:4]):
        ext = [".jpg", ".JPG", ".jpeg", ".png"][j]
        if ext == ".png":
            Image.open(src).save(flat / cls / f"{cls}{j}{ext}")
        else:
            shutil.copy(src, flat / cls / f"{cls}{j}{ext}")
(flat / "cat" / "notes.txt").write_text("not an image\n")

labels = {"datasets": datasets.__version__}
with tempfile.TemporaryDirectory() as cache:
    for name in ["folder", "folder-meta", "folder-flat"]:
        root = OUT / name
        ds = datasets.load_dataset("imagefolder", data_dir=str(root), cache_dir=cache)
        entry = {"splits": {}}
        for split in ds:
            d = ds[split]
            label_feature = d.features.get("label")
            entry["columns"] = list(d.features)
            if isinstance(label_feature, datasets.ClassLabel):
                entry["label_feature"] = {"type": "ClassLabel", "names": label_feature.names}
            elif label_feature is not None:
                entry["label_feature"] = {"type": "Value", "dtype": label_feature.dtype}
            raw = d.cast_column("image", datasets.Image(decode=False))
            entry["splits"][split] = [
                [os.path.relpath(r["image"]["path"], root).replace(os.sep, "/"), r.get("label")]
                for r in raw
            ]
        labels[name] = entry
(OUT / "folder-labels.json").write_text(json.dumps(labels, indent=1) + "\n")

total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
print(f"wrote {len(manifest['images'])} images, {total // 1024} KiB in {OUT}")
