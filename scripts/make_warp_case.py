"""cv2.warpAffine reference outputs for the affine warp of our augmentation (src/data/augment/perspective.rs).

Ultralytics' RandomPerspective calls `cv2.warpAffine(img, M[:2], dsize=(s, s), borderValue=(114, 114, 114))`
whenever perspective is 0 (its default). This script warps one fixed noise image with a few matrices of the
kinds RandomPerspective draws (zoom, rotation, shear, translation, and one that maps partly outside the source)
and stores the source, the matrices and OpenCV's outputs in a safetensors file that
`warp_affine_equals_opencv` reads.

Usage (needs numpy, opencv-python, safetensors):
    python scripts/make_warp_case.py --out tests/data/warp_affine.safetensors
"""

import argparse
import math

import cv2
import numpy as np
from safetensors.numpy import save_file

SIDE = 64  # output square (a multiple of 32, as imgsz is: the SIMD path covers every pixel)


def matrix(angle_deg: float, scale: float, shear_deg: tuple[float, float], t: tuple[float, float],
           src_wh: tuple[int, int]) -> np.ndarray:
    """RandomPerspective's T @ S @ R @ C (no P), in float64."""
    c = np.eye(3)
    c[0, 2], c[1, 2] = -src_wh[0] / 2, -src_wh[1] / 2
    r = np.eye(3)
    r[:2] = cv2.getRotationMatrix2D(angle=angle_deg, center=(0, 0), scale=scale)
    s = np.eye(3)
    s[0, 1] = math.tan(math.radians(shear_deg[0]))
    s[1, 0] = math.tan(math.radians(shear_deg[1]))
    tr = np.eye(3)
    tr[0, 2], tr[1, 2] = t
    return tr @ s @ r @ c


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    h, w = 57, 83
    src = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)  # RGB order is irrelevant to the warp
    cases = [
        matrix(0.0, 0.55, (0, 0), (24.0, 24.0), (w, h)),  # zoom out: grey all around
        matrix(0.0, 1.37, (0, 0), (21.3, 26.9), (w, h)),  # zoom in, off-centre
        matrix(17.0, 0.9, (3.0, -2.0), (24.4, 23.1), (w, h)),  # rotation and shear
        matrix(-33.0, 1.1, (0, 0), (5.0, 40.0), (w, h)),  # far off-centre: partly outside
        matrix(0.0, 1.0, (0, 0), (24.0, 24.0), (w, h)),  # identity zoom: exact grid
    ]
    tensors = {"src": src}
    for i, m in enumerate(cases):
        out = cv2.warpAffine(src, m[:2], dsize=(SIDE, SIDE), borderValue=(114, 114, 114))
        tensors[f"m{i}"] = m[:2].astype(np.float64)
        tensors[f"out{i}"] = out
    save_file(tensors, args.out, metadata={"cv2": cv2.__version__, "side": str(SIDE), "cases": str(len(cases))})
    print(f"wrote {len(cases)} cases to {args.out} (cv2 {cv2.__version__})")


if __name__ == "__main__":
    main()
