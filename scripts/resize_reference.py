#!/usr/bin/env python3
"""Reference cases for tests/resize_cv2.rs: `cv2.resize` (INTER_LINEAR, INTER_AREA) and Ultralytics' predictor
`LetterBox`, byte for byte, on 3-channel uint8 images.

Each case names its source image and the SHA-256 of the expected output bytes (row-major, 3 bytes a pixel), plus
the letterbox geometry. Sources are synthetic noise that tests/resize_cv2.rs regenerates from the same seed
(`pattern` below), so the committed file stays small. Resizing treats the channels alike, and LetterBox pads
all three with 114, so the hash is the same whether the bytes are read as RGB or BGR.

The grid mixes small random sizes (1..70 on each side: widths that are not multiples of the 16/32-lane SIMD
loops, 1-pixel rows and columns), integer factors (cv2 swaps INTER_LINEAR for INTER_AREA's 2x2 mean at exactly
2x, and INTER_AREA sums integer blocks), fractional shrinks and growths, and the sizes the loader and the
predictor meet (640x427 -> 480x320, 500x375 -> 640x480, 1280x720 -> 640x360, ...).

    pip install ultralytics==8.4.190 opencv-python==5.1.0.95 numpy
    python scripts/resize_reference.py                   # writes tests/data/resize_cv2.json

`--full DIR` writes DIR/resize_cv2.json instead, with a larger grid and the coco128 images (decoded by cv2,
saved as PNG in DIR so that JPEG decoding is not under test) resized as `BaseDataset.load_image` does and
letterboxed as the predictor does; run the Rust side on it with

    RESIZE_CV2_CASES=DIR/resize_cv2.json cargo test --test resize_cv2
"""

import argparse
import glob
import hashlib
import json
import math
import os
import sys

import cv2
import numpy as np
import ultralytics
from ultralytics.data.augment import LetterBox

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "resize_cv2.json")
COCO = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets", "coco128", "images", "train2017")
INTERPOLATION = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}


def pattern(seed: int, w: int, h: int) -> np.ndarray:
    """Noise of shape (h, w, 3): byte i (row-major) is the top byte of a 32-bit integer hash of (seed, i)."""
    m = np.uint32(0xFFFFFFFF)
    i = np.arange(h * w * 3, dtype=np.uint64)
    x = ((i * 0x9E3779B1 + seed * 0x85EBCA77) & 0xFFFFFFFF).astype(np.uint32)
    x ^= x >> np.uint32(15)
    x = (x.astype(np.uint64) * 0x2C1B3C6D & m).astype(np.uint32)
    x ^= x >> np.uint32(12)
    x = (x.astype(np.uint64) * 0x297A2D39 & m).astype(np.uint32)
    x ^= x >> np.uint32(15)
    return (x >> np.uint32(24)).astype(np.uint8).reshape(h, w, 3)


def sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def size_grid(rng: np.random.Generator, n_random: int, big: bool) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """([src w, src h], [dst w, dst h]) pairs, none of them equal (cv2 copies those)."""
    pairs = []
    for _ in range(n_random):
        pairs.append((tuple(int(v) for v in rng.integers(1, 71, 2)), tuple(int(v) for v in rng.integers(1, 71, 2))))
    # Output widths around the 16- and 32-lane loops (x3 channels), from shrinking and growing sources.
    for dw in (15, 16, 17, 31, 32, 33, 63, 64, 65):
        pairs += [((int(dw * 1.7) + 1, 9), (dw, 5)), ((dw // 2 + 1, 4), (dw, 11))]
    # Integer factors: 2x both ways (INTER_LINEAR becomes the 2x2 mean), 2x one way only, 3x and 4x blocks.
    for w, h in ((1, 1), (7, 5), (33, 17), (64, 3)):
        pairs += [((2 * w, 2 * h), (w, h)), ((2 * w, h), (w, h)), ((3 * w, 3 * h), (w, h)), ((4 * w, 2 * h), (w, h))]
        pairs += [((3 * w, 2 * h), (w, h)), ((w, 5 * h), (w, h))]
    # One-pixel rows and columns, both as source and as destination; one axis kept, the other scaled.
    pairs += [((1, 50), (3, 7)), ((50, 1), (7, 3)), ((1, 1), (5, 4)), ((37, 23), (1, 1)), ((9, 1), (1, 9))]
    pairs += [((40, 30), (40, 17)), ((40, 30), (23, 30)), ((13, 29), (13, 71))]
    # Shrinks by less than 2x in one axis and more in the other, and mixed grow/shrink (INTER_AREA's bilinear).
    pairs += [((100, 30), (37, 45)), ((30, 100), (45, 37)), ((97, 61), (20, 60))]
    if big:
        pairs += [
            ((640, 427), (480, 320)),
            ((500, 375), (640, 480)),
            ((640, 480), (427, 320)),
            ((1280, 720), (640, 360)),
            ((333, 500), (427, 640)),
            ((1000, 750), (333, 250)),
            ((810, 1080), (480, 640)),
            ((97, 641), (96, 640)),
        ]
    return [p for p in pairs if p[0] != p[1]]


def resize_cases(rng: np.random.Generator, n_random: int, big: bool) -> list[dict]:
    cases = []
    for k, (src, dst) in enumerate(size_grid(rng, n_random, big)):
        seed = 1000 + k
        img = pattern(seed, *src)
        for name, flag in INTERPOLATION.items():
            out = cv2.resize(img, dst, interpolation=flag)
            cases.append({"src": list(src), "seed": seed, "dst": list(dst), "interpolation": name, "sha256": sha256(out)})
    return cases


def letterbox_case(img_bgr: np.ndarray, source: dict) -> dict:
    """Ultralytics' predictor letterbox (`Model.predict` builds `LetterBox(imgsz, auto=True, stride=32)`)."""
    out = LetterBox(new_shape=(640, 640), auto=True, stride=32)(image=img_bgr)
    h, w = img_bgr.shape[:2]
    # The geometry as LetterBox.get_params computes it.
    r = min(640 / h, 640 / w)
    unpadded = [max(round(w * r), 1), max(round(h * r), 1)]
    dw, dh = (640 - unpadded[0]) % 32 / 2, (640 - unpadded[1]) % 32 / 2
    pad = [round(dw - 0.1), round(dh - 0.1)]
    assert (out[: pad[1]] == 114).all() and (out[:, : pad[0]] == 114).all()
    assert out.shape[:2] == (unpadded[1] + (640 - unpadded[1]) % 32, unpadded[0] + (640 - unpadded[0]) % 32)
    return {
        **source,
        "src": [w, h],
        "unpadded": unpadded,
        "pad_left_top": pad,
        "canvas": [out.shape[1], out.shape[0]],
        "sha256": sha256(out[..., ::-1] if "png" in source else out),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", metavar="DIR", help="write a large grid and coco128 cases to DIR instead")
    args = parser.parse_args()
    rng = np.random.default_rng(20240611)
    full = args.full is not None
    cases = {
        "generator": "scripts/resize_reference.py",
        "versions": {"opencv-python": cv2.__version__, "ultralytics": ultralytics.__version__, "numpy": np.__version__},
        "resize": resize_cases(rng, 3000 if full else 240, big=True),
        "letterbox": [],
    }
    for k, (w, h) in enumerate([(640, 427), (333, 500), (1280, 720), (810, 1080)]):
        seed = 9000 + k
        cases["letterbox"].append(letterbox_case(pattern(seed, w, h), {"seed": seed}))
    if full:
        os.makedirs(args.full, exist_ok=True)
        for f in sorted(glob.glob(os.path.join(COCO, "*.jpg"))):
            im = cv2.imread(f)
            png = os.path.abspath(os.path.join(args.full, os.path.basename(f)[:-4] + ".png"))
            cv2.imwrite(png, im)
            h0, w0 = im.shape[:2]
            for imgsz in (640, 320, 512):
                # BaseDataset.load_image, rect_mode: long side to imgsz, always INTER_LINEAR in 8.4.190.
                r = imgsz / max(h0, w0)
                if r == 1:
                    continue
                dst = (min(math.ceil(w0 * r), imgsz), min(math.ceil(h0 * r), imgsz))
                for name, flag in INTERPOLATION.items():
                    out = cv2.resize(im, dst, interpolation=flag)[..., ::-1]  # BGR -> RGB, as the PNG loads
                    cases["resize"].append(
                        {"src": [w0, h0], "png": png, "dst": list(dst), "interpolation": name, "sha256": sha256(out)}
                    )
            cases["letterbox"].append(letterbox_case(im, {"png": png}))
    path = os.path.join(args.full, "resize_cv2.json") if full else OUT
    with open(path, "w") as f:
        json.dump(cases, f, separators=(",", ":"))
        f.write("\n")
    print(f"{path}: {len(cases['resize'])} resize and {len(cases['letterbox'])} letterbox cases", file=sys.stderr)


if __name__ == "__main__":
    main()
