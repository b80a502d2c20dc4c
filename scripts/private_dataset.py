"""A private copy of a YOLO-layout dataset for Ultralytics runs, so that ../shared stays untouched."""

from __future__ import annotations

import shutil
from pathlib import Path


def private_copy(src: Path, work: Path) -> Path:
    """`src` with its images linked file by file and its labels copied under `work`.

    Ultralytics writes a `.cache` file beside the labels, and ../shared must not change. Images are linked one
    by one because Ultralytics resolves directory links, which would lead it back into ../shared.
    """
    dst = work / src.name
    if not dst.exists():
        dst.mkdir(parents=True)
        for image in (src / "images").rglob("*"):
            if image.is_file():
                link = dst / image.relative_to(src)
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(image)
        shutil.copytree(src / "labels", dst / "labels", ignore=shutil.ignore_patterns("*.cache"))
    return dst
