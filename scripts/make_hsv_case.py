"""cv2 colour conversions for our HSV augmentation (src/data/augment/color.rs).

Ultralytics' RandomHSV converts BGR -> HSV with cv2.cvtColor, maps H, S and V through lookup tables, and converts
back with HSV2BGR. This script stores, for the corners of the cube, every grey level and 4,152 random
colours, cv2's HSV of each colour and cv2's conversion of that HSV back, so that `hsv_conversions_equal_opencv`
checks both directions byte for byte. The colours form one wide row, so cv2 takes its vectorised path as it
does on real images.

Usage (needs numpy, opencv-python, safetensors):
    python scripts/make_hsv_case.py --out tests/data/hsv.safetensors
"""

import argparse
import itertools

import cv2
import numpy as np
from safetensors.numpy import save_file


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    # corners and greys first, then random colours up to a multiple of 64: cv2 converts a row's last
    # (width mod SIMD block) pixels with a scalar path that rounds where the vectorised one truncates
    rgb = [np.array(list(itertools.product([0, 255], repeat=3)), dtype=np.uint8)]
    rgb.append(np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1))
    rgb.append(rng.integers(0, 256, size=(4416 - 264, 3), dtype=np.uint8))
    rgb = np.concatenate(rgb)
    assert len(rgb) % 64 == 0
    bgr = rgb[None, :, ::-1].copy()
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    back = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, :, ::-1].copy()
    save_file({"rgb": rgb, "hsv": hsv[0].copy(), "back_rgb": back}, args.out, metadata={"cv2": cv2.__version__})
    print(f"wrote {len(rgb)} colours to {args.out} (cv2 {cv2.__version__})")


if __name__ == "__main__":
    main()
