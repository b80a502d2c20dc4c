#!/usr/bin/env python3
"""Ultralytics' predictor letterbox shapes, for `Letterbox::fit_rect`'s test (src/data/augment/letterbox.rs).

Runs ultralytics 8.4.190's own `LetterBox(new_shape=(640, 640), auto=True, stride=32)` (what `Model.predict`
builds with rect=True) on blank images of several sizes and prints, per [w, h]: the canvas [w, h], the scaled
image size and the left/top padding, read off the output (the image is 0, the padding 114).

    pip install ultralytics==8.4.190
    python scripts/letterbox_reference.py
"""

import numpy as np
from ultralytics.data.augment import LetterBox

SIZES = [(640, 427), (333, 500), (1280, 720), (500, 500), (810, 1080), (97, 641)]

for w, h in SIZES:
    out = LetterBox(new_shape=(640, 640), auto=True, stride=32)(image=np.zeros((h, w, 3), np.uint8))
    ys, xs = np.nonzero((out != 114).any(2))
    print(
        f"([{w}, {h}], [{xs.max() - xs.min() + 1}, {ys.max() - ys.min() + 1}], "
        f"[{xs.min()}, {ys.min()}], [{out.shape[1]}, {out.shape[0]}]),"
    )
