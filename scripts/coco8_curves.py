#!/usr/bin/env python3
"""yolo-burn vs Ultralytics on coco8, from scratch: the mAP50 of each epoch, side by side.

Both train YOLOv8n from the yaml (no pretrained weights) for --epochs epochs at imgsz 320, batch 16, mosaic off,
seed 0, on the CPU, with their defaults otherwise (optimizer auto, warmup, EMA, validation each epoch):
  ours         yolo-burn train --config configs/coco8.toml --set augment.mosaic=0 ...
  ultralytics  YOLO("yolov8n.yaml").train(data=coco8.yaml, pretrained=False, mosaic=0, amp=False, ...)
Writes a Markdown table of mAP50 and the three train losses (every --every epochs, and the best mAP50) to stdout
and a PNG of both trainers' curves to --png.

Example (the command behind docs/benchmarks.md):
  cargo build --release
  python scripts/coco8_curves.py --bin target/release/yolo-burn --png docs/coco8_curves.png
Needs ultralytics==8.4.190 and matplotlib; runs offline (coco8 comes from ../shared/datasets/coco8).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from private_dataset import private_copy  # noqa: E402  (scripts/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
COCO8 = (ROOT / "../shared/datasets/coco8").resolve()


COLUMNS = ["metrics/mAP50(B)", "train/box_loss", "train/cls_loss", "train/dfl_loss"]


def read_curves(csv_path: Path) -> dict[str, list[float]]:
    """The COLUMNS of a results.csv (Ultralytics pads its column names with spaces)."""
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    keys = {k.strip(): k for k in rows[0]}
    return {c: [float(r[keys[c]]) for r in rows] for c in COLUMNS}


def run_ours(args, work: Path) -> tuple[dict[str, list[float]], float]:
    cmd = [args.bin, "train", "--config", str(ROOT / "configs/coco8.toml"), "--quiet", "--exist-ok",
           "--name", "ours", "--set", f"train.project={work}", "--set", f"train.epochs={args.epochs}",
           "--set", f"train.imgsz={args.imgsz}", "--set", "augment.mosaic=0", "--set", f"train.seed={args.seed}",
           "--set", f"data.dataset={COCO8 / 'coco8.yaml'}"]
    t0 = time.perf_counter()
    if not (args.reuse and (work / "ours/results.csv").exists()):
        subprocess.run(cmd, check=True, cwd=ROOT, env=dict(os.environ, RAYON_NUM_THREADS=str(args.threads)))
    return read_curves(work / "ours/results.csv"), time.perf_counter() - t0


def run_ultralytics(args, work: Path) -> tuple[dict[str, list[float]], float]:
    if args.reuse and (work / "ultralytics/results.csv").exists():
        return read_curves(work / "ultralytics/results.csv"), 0.0
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(args.threads)
    data = work / "coco8.yaml"
    root = private_copy(COCO8, work)
    text = (COCO8 / "coco8.yaml").read_text().replace("path: # dataset root dir", f"path: {root}")
    data.write_text(text)
    t0 = time.perf_counter()
    YOLO("yolov8n.yaml").train(data=str(data), epochs=args.epochs, imgsz=args.imgsz, batch=16, mosaic=0.0,
                               seed=args.seed, deterministic=True, pretrained=False, amp=False, device="cpu",
                               workers=2, plots=False, project=str(work), name="ultralytics", exist_ok=True,
                               verbose=False)
    return read_curves(work / "ultralytics/results.csv"), time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release/yolo-burn")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--every", type=int, default=10, help="table row spacing in epochs")
    ap.add_argument("--png", type=Path, help="write both curves here")
    ap.add_argument("--work", type=Path, help="run folder (default: a temp dir)")
    ap.add_argument("--reuse", action="store_true", help="re-read finished runs in --work instead of training")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="coco8-curves-"))
    work.mkdir(parents=True, exist_ok=True)

    ours, ours_s = run_ours(args, work)
    theirs, theirs_s = run_ultralytics(args, work)

    print(f"coco8, YOLOv8n from scratch, imgsz {args.imgsz}, batch 16, mosaic off, seed {args.seed}, "
          f"{args.epochs} epochs, {args.threads} threads; wall time ours {ours_s:.0f} s, Ultralytics {theirs_s:.0f} s\n")
    print("| epoch | mAP50 ours | mAP50 Ultralytics | box ours | box Ultralytics | cls ours | cls Ultralytics "
          "| dfl ours | dfl Ultralytics |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for e in range(1, args.epochs + 1):
        if e % args.every == 0 or e == 1:
            cells = []
            for c in COLUMNS:
                for curves in (ours, theirs):
                    v = curves[c]
                    cells.append(f"{v[e - 1]:.3f}" if e <= len(v) else "-")
            print(f"| {e} | " + " | ".join(cells) + " |")
    m = "metrics/mAP50(B)"
    print(f"| best mAP50 | {max(ours[m]):.3f} | {max(theirs[m]):.3f} | | | | | | |")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
        for ax, c in zip(axes, COLUMNS):
            ax.plot(range(1, len(ours[c]) + 1), ours[c], label="yolo-burn")
            ax.plot(range(1, len(theirs[c]) + 1), theirs[c], label="Ultralytics 8.4.190")
            ax.set_xlabel("epoch")
            ax.set_title(c)
            ax.grid(alpha=0.3)
        axes[0].legend()
        fig.suptitle(f"coco8, YOLOv8n from scratch, imgsz {args.imgsz}, mosaic off, seed {args.seed}")
        fig.tight_layout()
        fig.savefig(args.png, dpi=80)
    return 0


if __name__ == "__main__":
    sys.exit(main())
