#!/usr/bin/env python3
"""yolo-burn vs Ultralytics on coco8, from scratch: the mAP50 of each epoch, side by side.

Both train YOLOv8n from the yaml (no pretrained weights) for --epochs epochs at imgsz 320, batch 16, mosaic off,
seed 0, on the CPU, with their defaults otherwise (optimizer auto, warmup, EMA, validation each epoch):
  ours         yolo-burn train --config configs/coco8.toml --set augment.mosaic=0 ...
  ultralytics  YOLO("yolov8n.yaml").train(data=coco8.yaml, pretrained=False, mosaic=0, amp=False, ...)
Writes a Markdown table (every --every epochs, and the best) to stdout and a PNG of both curves to --png.

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

ROOT = Path(__file__).resolve().parent.parent
COCO8 = (ROOT / "../shared/datasets/coco8").resolve()


def read_map50(csv_path: Path) -> list[float]:
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    key = next(k for k in rows[0] if k.strip() == "metrics/mAP50(B)")
    return [float(r[key]) for r in rows]


def run_ours(args, work: Path) -> tuple[list[float], float]:
    cmd = [args.bin, "train", "--config", str(ROOT / "configs/coco8.toml"), "--quiet", "--exist-ok",
           "--name", "ours", "--set", f"train.project={work}", "--set", f"train.epochs={args.epochs}",
           "--set", f"train.imgsz={args.imgsz}", "--set", "augment.mosaic=0", "--set", f"train.seed={args.seed}",
           "--set", f"data.dataset={COCO8 / 'coco8.yaml'}"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env=dict(os.environ, RAYON_NUM_THREADS=str(args.threads)))
    return read_map50(work / "ours/results.csv"), time.perf_counter() - t0


def run_ultralytics(args, work: Path) -> tuple[list[float], float]:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(args.threads)
    data = work / "coco8.yaml"
    text = (COCO8 / "coco8.yaml").read_text().replace("path: # dataset root dir", f"path: {COCO8}")
    data.write_text(text)
    t0 = time.perf_counter()
    YOLO("yolov8n.yaml").train(data=str(data), epochs=args.epochs, imgsz=args.imgsz, batch=16, mosaic=0.0,
                               seed=args.seed, deterministic=True, pretrained=False, amp=False, device="cpu",
                               workers=2, plots=False, project=str(work), name="ultralytics", exist_ok=True,
                               verbose=False)
    return read_map50(work / "ultralytics/results.csv"), time.perf_counter() - t0


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
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="coco8-curves-"))
    work.mkdir(parents=True, exist_ok=True)

    ours, ours_s = run_ours(args, work)
    theirs, theirs_s = run_ultralytics(args, work)

    print(f"coco8, YOLOv8n from scratch, imgsz {args.imgsz}, batch 16, mosaic off, seed {args.seed}, "
          f"{args.epochs} epochs, {args.threads} threads; wall time ours {ours_s:.0f} s, Ultralytics {theirs_s:.0f} s\n")
    print("| epoch | yolo-burn mAP50 | Ultralytics mAP50 |")
    print("| ---: | ---: | ---: |")
    for e in range(1, args.epochs + 1):
        if e % args.every == 0 or e == 1:
            a = f"{ours[e - 1]:.3f}" if e <= len(ours) else "-"
            b = f"{theirs[e - 1]:.3f}" if e <= len(theirs) else "-"
            print(f"| {e} | {a} | {b} |")
    print(f"| best | {max(ours):.3f} | {max(theirs):.3f} |")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(range(1, len(ours) + 1), ours, label="yolo-burn")
        ax.plot(range(1, len(theirs) + 1), theirs, label="Ultralytics 8.4.190")
        ax.set_xlabel("epoch")
        ax.set_ylabel("mAP50 (val)")
        ax.set_title(f"coco8, YOLOv8n from scratch, imgsz {args.imgsz}, mosaic off")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.png, dpi=100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
