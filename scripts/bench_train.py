#!/usr/bin/env python3
"""Training images/s on the CPU, yolo-burn vs Ultralytics, in one run (issue #4's training benchmark).

Both train YOLOv8n from scratch on coco128 (128 images) at imgsz 320, batch 8, with the default augmentations
(mosaic on), 2 loader workers, fp32 (Ultralytics amp=False), for --epochs epochs with validation off, and the
time of each training epoch (loader included, validation excluded) is taken:
  ours         yolo-burn train --config configs/coco128.toml --set train.val=false ...: results.csv `time` of
               the epochs before the last (the last one validates)
  ultralytics  YOLO("yolov8n.yaml").train(..., val=False): on_train_epoch_start/end callbacks
The first epoch is a warm-up for both (dataset cache, allocator) and is left out. Contenders alternate for
--rounds rounds; the table gives the median img/s and the ratio (>1: yolo-burn is faster).

Example (the command behind docs/benchmarks.md):
  cargo build --release
  python scripts/bench_train.py --bin target/release/yolo-burn --epochs 3 --rounds 2
Needs ultralytics==8.4.190 for the Ultralytics side; runs offline.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from private_dataset import private_copy  # noqa: E402  (scripts/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
COCO128 = (ROOT / "../shared/datasets/coco128").resolve()


def ours(args, work: Path) -> float:
    name = f"ours-{time.time_ns()}"
    cmd = [args.bin, "train", "--config", str(ROOT / "configs/coco128.toml"), "--quiet", "--name", name,
           "--set", f"train.project={work}", "--set", f"train.epochs={args.epochs}", "--set",
           f"train.imgsz={args.imgsz}", "--set", f"train.batch={args.batch}", "--set", "train.workers=2",
           "--set", "train.val=false", "--set", f"data.dataset={COCO128 / 'coco128.yaml'}"]
    subprocess.run(cmd, check=True, cwd=ROOT, env=dict(os.environ, RAYON_NUM_THREADS=str(args.threads)),
                   stdout=subprocess.DEVNULL)
    with open(work / name / "results.csv") as f:
        times = [float(r["time"]) for r in csv.DictReader(f)]
    # Epochs 2..N-1: the last epoch also validates.
    spans = [b - a for a, b in zip(times, times[1:])][: args.epochs - 2]
    return 128 * len(spans) / sum(spans)


def ultralytics_child(args) -> None:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    data = work / "coco128.yaml"
    text = (COCO128 / "coco128.yaml").read_text()
    root = private_copy(COCO128, work)
    text = "\n".join(f"path: {root}" if line.startswith("path:") else line for line in text.splitlines())
    data.write_text(text + "\n")
    spans, start = [], {}

    def on_start(trainer):
        start["t"] = time.perf_counter()

    def on_end(trainer):
        spans.append(time.perf_counter() - start["t"])

    model = YOLO("yolov8n.yaml")
    model.add_callback("on_train_epoch_start", on_start)
    model.add_callback("on_train_epoch_end", on_end)
    model.train(data=str(data), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, workers=2, amp=False,
                device="cpu", val=False, plots=False, project=str(work), name=f"ul-{time.time_ns()}",
                pretrained=False, verbose=False)
    spans = spans[1:]
    print(json.dumps({"img_per_s": 128 * len(spans) / sum(spans)}))


def ultralytics(args, work: Path) -> float:
    cmd = [sys.executable, __file__, "--ultralytics-child", "--work", str(work), "--epochs", str(args.epochs),
           "--imgsz", str(args.imgsz), "--batch", str(args.batch), "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS=str(args.threads))).stdout
    return json.loads(out.strip().splitlines()[-1])["img_per_s"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release/yolo-burn")
    ap.add_argument("--epochs", type=int, default=3, help="per run; the first is a warm-up (at least 3)")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--ultralytics-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ultralytics_child:
        ultralytics_child(args)
        return 0
    args.epochs = max(args.epochs, 3)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-train-"))
    results: dict[str, list[float]] = {"Ultralytics 8.4.190 (torch)": [], "yolo-burn": []}
    for r in range(args.rounds):
        for name, fn in [("Ultralytics 8.4.190 (torch)", ultralytics), ("yolo-burn", ours)]:
            v = fn(args, work)
            results[name].append(v)
            print(f"round {r + 1}: {name:28s} {v:6.2f} img/s", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in results.items()}
    ref = med["Ultralytics 8.4.190 (torch)"]
    print(f"YOLOv8n from scratch on coco128, imgsz {args.imgsz}, batch {args.batch}, 2 workers, "
          f"{args.threads} threads, fp32; median of {args.rounds} rounds; timed: the training epochs after the first, "
          f"validation excluded (ours: {args.epochs - 2}, Ultralytics: {args.epochs - 1} per run)\n")
    print("| trainer | train img/s | vs Ultralytics |")
    print("| --- | ---: | ---: |")
    for k, v in med.items():
        print(f"| {k} | {v:.2f} | {v / ref:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
