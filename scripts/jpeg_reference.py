#!/usr/bin/env python3
"""cv2.imread's JPEG pixels, for `load_rgb`'s test (tests/jpeg_decode.rs, tests/data/jpeg_reference.json).

Ultralytics reads images with cv2 (`ultralytics.utils.patches.imread`, i.e. `cv2.imdecode(..., IMREAD_COLOR)`,
which gives the same pixels as `cv2.imread`): libjpeg-turbo with its accurate integer IDCT and fancy chroma
upsampling, EXIF orientation applied, BGR. This script records, per JPEG, the SHA-256 of
`cv2.imread(path)[..., ::-1]` (RGB, row-major HWC bytes), its width and height, and an 8x8 RGB crop at
`CROP_XY` so that a failing test can show pixels.

Two groups:
- `coco128`: five of ../shared/datasets/coco128 (paths relative to it) of different sizes and aspect ratios,
  one of them grayscale. All coco128 JPEGs are baseline 4:4:4 (or grayscale) without EXIF orientation, so:
- `generated`: small JPEGs written here into tests/data/jpeg/ from a crop of one coco128 image, each for a
  decoder path coco128 lacks: 4:2:0 progressive, 4:2:2 with restart markers, 4:4:0 (libjpeg-turbo's h1v2
  fancy upsampling), odd sizes (partial MCUs), Adobe CMYK (OpenCV's own CMYK->BGR formula), EXIF orientations
  5 and 6. Rerunning rewrites them (and the hashes), so rerun only to change the set.

Versions used: opencv-python 5.1.0 (libjpeg-turbo 3.1.2, bundled), Pillow 13.0.0, numpy 2.4.6, the
environment of ultralytics 8.4.190.

    pip install ultralytics==8.4.190 opencv-python==5.1.0
    python scripts/jpeg_reference.py    # from the repository root, beside ../shared
"""

import hashlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import PIL
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
COCO128 = ROOT.parent / "shared" / "datasets" / "coco128"
GENERATED = ROOT / "tests" / "data" / "jpeg"
OUT = ROOT / "tests" / "data" / "jpeg_reference.json"
CROP_XY = (16, 16)
CROP = 8

COCO128_IMAGES = [
    "images/train2017/000000000086.jpg",  # grayscale, 512x640
    "images/train2017/000000000415.jpg",  # tallest, 359x640
    "images/train2017/000000000357.jpg",  # widest, 640x218
    "images/val2017/000000001503.jpg",  # smallest, 320x240
    "images/val2017/000000008629.jpg",  # square, 640x640
]
SOURCE = COCO128 / "images/train2017/000000000009.jpg"


def cv2_sampling(h, v):
    """cv2's IMWRITE_JPEG_SAMPLING_FACTOR value for luma factors h x v (chroma 1x1)."""
    return h << 20 | v << 16 | 0x1111


def write_generated():
    """Writes the small JPEGs of the `generated` group; returns their names."""
    GENERATED.mkdir(parents=True, exist_ok=True)
    bgr = cv2.imread(str(SOURCE))
    cv2_cases = {
        "ycc420_progressive.jpg": (bgr[:61, :97], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], (2, 2), 75),
        "ycc422_restart.jpg": (bgr[40:87, 100:183], [cv2.IMWRITE_JPEG_RST_INTERVAL, 2], (2, 1), 80),
        "ycc440_odd.jpg": (bgr[100:153, 200:271], [], (1, 2), 85),
    }
    for name, (crop, extra, (h, v), quality) in cv2_cases.items():
        params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2_sampling(h, v)]
        cv2.imwrite(str(GENERATED / name), np.ascontiguousarray(crop), params + extra)
    rgb = Image.fromarray(np.ascontiguousarray(bgr[200:257, 300:379, ::-1]))
    # Pillow writes CMYK inverted, with an Adobe marker, as Photoshop does.
    rgb.convert("CMYK").save(GENERATED / "cmyk_adobe.jpg", quality=90)
    for orientation in (5, 6):
        exif = Image.Exif()
        exif[274] = orientation
        rgb.save(GENERATED / f"exif_orientation_{orientation}.jpg", quality=90, exif=exif.tobytes())
    return sorted(p.name for p in GENERATED.glob("*.jpg"))


def reference(path, name):
    rgb = np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1])
    x, y = CROP_XY
    return {
        "path": name,
        "width": rgb.shape[1],
        "height": rgb.shape[0],
        "sha256": hashlib.sha256(rgb.tobytes()).hexdigest(),
        "crop": rgb[y : y + CROP, x : x + CROP].tolist(),
    }


def main():
    build = cv2.getBuildInformation()
    turbo = re.search(r"JPEG:\s+build-libjpeg-turbo \(ver ([^)]+)\)", build)
    out = {
        "generator": "scripts/jpeg_reference.py",
        "versions": {
            "opencv": cv2.__version__,
            "libjpeg_turbo": turbo.group(1) if turbo else "unknown",
            "pillow": PIL.__version__,
            "numpy": np.__version__,
        },
        "crop_xy": list(CROP_XY),
        "crop_size": CROP,
        "coco128": [reference(COCO128 / name, name) for name in COCO128_IMAGES],
        "generated": [reference(GENERATED / name, name) for name in write_generated()],
    }
    text = json.dumps(out, indent=1)
    # Number lists on one line, and one crop row per line, keep the file readable.
    numbers = r"\[\s*(\d+(?:,\s*\d+)*)\s*\]"
    text = re.sub(numbers, lambda m: "[" + re.sub(r",\s*", ", ", m.group(1)) + "]", text)
    pixels = r"\[\s*(\[[\d, ]+\](?:,\s*\[[\d, ]+\])*)\s*\]"
    text = re.sub(pixels, lambda m: "[" + re.sub(r"\],\s*", "], ", m.group(1)) + "]", text)
    OUT.write_text(text + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(out['coco128'])} coco128 + {len(out['generated'])} generated")


if __name__ == "__main__":
    main()
