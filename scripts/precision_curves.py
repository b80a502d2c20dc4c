#!/usr/bin/env python3
"""The default run in fp32, fp16 and bf16 side by side: train loss curves and mAP50-95 per epoch in one PNG, and a
Markdown table of the final metrics and their differences from fp32 (issue #12's fidelity check).

Each run is the default config with only the precision changed:
  yolo-burn train --config configs/yolo.toml --set train.precision=P --set train.project=R --set train.name=P
Then:
  python scripts/precision_curves.py --runs R/fp32 R/fp16 R/bf16 --png docs/precision_curves.png
Needs matplotlib only (reads each run's results.csv).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def read(run: Path) -> dict[str, list[float]]:
    with open(run / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in rows[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", type=Path, required=True, help="run folders, fp32 first")
    ap.add_argument("--png", type=Path, required=True)
    args = ap.parse_args()
    runs = {p.name: read(p) for p in args.runs}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("train/box_loss", "train box loss"),
        ("train/cls_loss", "train cls loss"),
        ("train/dfl_loss", "train dfl loss"),
        ("metrics/mAP50-95(B)", "val mAP50-95"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    styles = {"fp32": "-", "fp16": "--", "bf16": ":"}
    for ax, (key, title) in zip(axes, panels):
        for name, data in runs.items():
            ax.plot(data["epoch"], data[key], styles.get(name, "-"), label=name, linewidth=1.6)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("yolov8n, default config (shapes dataset, imgsz 128): fp32 vs fp16 vs bf16")
    fig.tight_layout()
    fig.savefig(args.png, dpi=110)

    base = next(iter(runs.values()))
    print("| precision | mAP50 | mAP50-95 | Δ mAP50-95 vs fp32 (points) | final train box / cls / dfl | largest train-loss gap to fp32 (any epoch) | skipped steps | final scale | time (s) |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for name, d in runs.items():
        dmap = 100 * (d["metrics/mAP50-95(B)"][-1] - base["metrics/mAP50-95(B)"][-1])
        dloss = max(
            abs(a - b)
            for k in ("train/box_loss", "train/cls_loss", "train/dfl_loss")
            for a, b in zip(d[k], base[k])
        )
        print(
            f"| {name} | {d['metrics/mAP50(B)'][-1]:.4f} | {d['metrics/mAP50-95(B)'][-1]:.4f} | {dmap:+.2f} | "
            f"{d['train/box_loss'][-1]:.4f} / {d['train/cls_loss'][-1]:.4f} / {d['train/dfl_loss'][-1]:.4f} | "
            f"{dloss:.4f} | {int(d.get('amp/skipped_steps', [0])[-1])} | {d.get('amp/scale', [1])[-1]:g} | "
            f"{d['time'][-1]:.0f} |"
        )


if __name__ == "__main__":
    main()
