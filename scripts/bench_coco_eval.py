#!/usr/bin/env python3
"""Time `yolo-burn val --gt --predictions` against pycocotools on a COCO-val-sized synthetic case.

The case (deterministic, seed 0): 5,000 images, ~36k GT boxes over 80 categories (person-heavy like COCO val2017,
~1% crowd, GT `area` below the box area as segment areas are), and exactly 100 detections per image: jittered
copies of GT (some with the wrong class) plus random boxes, random scores. It is written to a temporary folder.

pycocotools is timed for evaluate() + accumulate() + summarize() only (loading excluded, in its favour);
yolo-burn for the whole process (reading both JSON files included), best of --runs. Both answers are compared
(12 stats to 1e-6) before the ratio is printed.

    /work/venv-coco/bin/python scripts/bench_coco_eval.py target/release/yolo-burn [--runs 3] [--keep DIR]
"""

import argparse
import contextlib
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

NUM_IMAGES = 5000
NUM_CATEGORIES = 80
GT_PER_IMAGE_MEAN = 7.3  # COCO val2017: 36,781 boxes / 5,000 images
DETS_PER_IMAGE = 100
KEYS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def make_case(folder: Path, seed: int = 0):
    rng = random.Random(seed)
    # Category frequencies: one dominant class (person ~ 30% in COCO), the rest decaying.
    weights = [30.0] + [8.0 / (1 + 0.08 * k) for k in range(NUM_CATEGORIES - 1)]
    cat_ids = list(range(1, NUM_CATEGORIES + 1))
    images, annotations, detections = [], [], []
    ann_id = 1
    for image_id in range(1, NUM_IMAGES + 1):
        width, height = 640, rng.choice([427, 480, 640])
        images.append({"id": image_id, "width": width, "height": height, "file_name": f"{image_id:012d}.jpg"})
        n_gt = min(60, int(rng.expovariate(1 / (GT_PER_IMAGE_MEAN + 0.5))))  # int() floors: +0.5
        gts = []
        for _ in range(n_gt):
            side = 10 ** rng.uniform(0.9, 2.6)  # ~8 to ~400 px: small, medium and large
            w = min(width - 1, side * rng.uniform(0.5, 1.5))
            h = min(height - 1, side * rng.uniform(0.5, 1.5))
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            cat = rng.choices(cat_ids, weights)[0]
            box = [round(x, 2), round(y, 2), round(w, 2), round(h, 2)]
            annotations.append({
                "id": ann_id, "image_id": image_id, "category_id": cat, "bbox": box,
                "area": round(w * h * rng.uniform(0.45, 0.95), 2), "iscrowd": int(rng.random() < 0.01),
            })
            ann_id += 1
            gts.append((cat, box))
        for i in range(DETS_PER_IMAGE):
            if gts and i < 3 * len(gts):
                cat, (x, y, w, h) = gts[i % len(gts)]
                if rng.random() < 0.1:
                    cat = rng.choice(cat_ids)
                j = 0.05 + 0.1 * (i // len(gts))
                box = [x + rng.gauss(0, j) * w, y + rng.gauss(0, j) * h,
                       w * max(0.2, 1 + rng.gauss(0, j)), h * max(0.2, 1 + rng.gauss(0, j))]
                score = rng.uniform(0.3, 1.0) / (1 + i // len(gts))
            else:
                side = 10 ** rng.uniform(0.9, 2.6)
                box = [rng.uniform(0, width - side / 2), rng.uniform(0, height - side / 2),
                       side * rng.uniform(0.5, 1.5), side * rng.uniform(0.5, 1.5)]
                cat = rng.choices(cat_ids, weights)[0]
                score = rng.uniform(0.001, 0.4)
            detections.append({"image_id": image_id, "category_id": cat,
                               "bbox": [round(v, 2) for v in box], "score": round(score, 5)})
    gt = {"images": images, "annotations": annotations,
          "categories": [{"id": c, "name": f"class{c}", "supercategory": "thing"} for c in cat_ids]}
    gt_path, dt_path = folder / "instances.json", folder / "results.json"
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(detections))
    return gt_path, dt_path, len(annotations), len(detections)


def time_pycocotools(gt_path, dt_path):
    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        gt = COCO(str(gt_path))
        dt = gt.loadRes(str(dt_path))
        t1 = time.perf_counter()
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1, [float(s) for s in ev.stats]


def time_yolo_burn(binary, gt_path, dt_path, runs):
    best, stats = float("inf"), None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = subprocess.run([binary, "val", "--gt", str(gt_path), "--predictions", str(dt_path), "--json"],
                             check=True, capture_output=True, text=True)
        best = min(best, time.perf_counter() - t0)
        report = json.loads(out.stdout)
        stats = [report[k] for k in KEYS]
    return best, stats


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary", help="path to the release yolo-burn binary")
    parser.add_argument("--runs", type=int, default=3, help="yolo-burn runs (best is kept)")
    parser.add_argument("--keep", type=Path, help="write the case here instead of a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        gt_path, dt_path, n_gt, n_dt = make_case(folder)
        print(f"case: {NUM_IMAGES} images, {n_gt} GT boxes, {n_dt} detections, {NUM_CATEGORIES} categories "
              f"(instances {gt_path.stat().st_size / 1e6:.1f} MB, results {dt_path.stat().st_size / 1e6:.1f} MB)")
        ours, our_stats = time_yolo_burn(args.binary, gt_path, dt_path, args.runs)
        load, theirs, their_stats = time_pycocotools(gt_path, dt_path)
    worst = max(abs(a - b) for a, b in zip(our_stats, their_stats))
    print(f"stats agree to {worst:.1e} (AP {their_stats[0]:.6f})")
    print(f"pycocotools evaluate+accumulate+summarize: {theirs:.2f} s (plus {load:.2f} s loading)")
    print(f"yolo-burn val --gt --predictions (whole process, best of {args.runs}, {os.cpu_count()} CPUs): {ours:.2f} s")
    print(f"speed-up: {theirs / ours:.1f}x (with pycocotools' loading: {(theirs + load) / ours:.1f}x)")
    if worst > 1e-6:
        sys.exit("stats differ by more than 1e-6")


if __name__ == "__main__":
    main()
