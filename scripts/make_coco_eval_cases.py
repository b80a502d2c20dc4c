#!/usr/bin/env python3
"""Generate the COCO-evaluation edge cases under tests/data/coco_eval/ with pycocotools' answers.

Each case is a folder with gt.json (COCO instances), dt.json (COCO results) and expected.json: the 12 stats of
COCOeval(gt, dt, 'bbox') with default params, and per-category AP@[.50:.95] (area all, maxDets 100; -1 when the
category has no defined precision), computed as pycocotools computes its stats.

Run with pycocotools 2.0.11 in a scratch venv:
    python3 -m venv /work/venv-coco && /work/venv-coco/bin/pip install pycocotools==2.0.11 numpy
    /work/venv-coco/bin/python scripts/make_coco_eval_cases.py [OUT_DIR]
Deterministic (fixed seeds); the outputs are small enough to commit.
"""

import contextlib
import io
import json
import random
import sys
from pathlib import Path

import numpy as np
from importlib.metadata import version
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def categories(ids):
    return [{"id": i, "name": f"class{i}", "supercategory": "thing"} for i in ids]


def gt_ann(ann_id, image_id, cat, box, crowd=0, area=None):
    x, y, w, h = box
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": cat,
        "bbox": [x, y, w, h],
        "area": w * h if area is None else area,
        "iscrowd": crowd,
        "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
    }


def det(image_id, cat, box, score):
    return {"image_id": image_id, "category_id": cat, "bbox": list(box), "score": score}


def jitter(rng, box, amount):
    x, y, w, h = box
    return [
        round(x + rng.uniform(-amount, amount) * w, 2),
        round(y + rng.uniform(-amount, amount) * h, 2),
        round(max(1.0, w * (1 + rng.uniform(-amount, amount))), 2),
        round(max(1.0, h * (1 + rng.uniform(-amount, amount))), 2),
    ]


def random_box(rng, size_choices=(12, 20, 40, 70, 150, 300)):
    w = rng.choice(size_choices) * rng.uniform(0.7, 1.3)
    h = rng.choice(size_choices) * rng.uniform(0.7, 1.3)
    return [round(rng.uniform(0, 600 - w), 2), round(rng.uniform(0, 600 - h), 2), round(w, 2), round(h, 2)]


def images(ids):
    return [{"id": i, "width": 640, "height": 640, "file_name": f"{i}.jpg"} for i in ids]


def case_crowd(rng):
    """Crowd regions absorbing many detections (IoU = inter / detection area), crowd next to real GT."""
    anns, dts, ann_id = [], [], 1
    for image_id in (1, 2, 3):
        crowd = [50, 50, 300, 200]
        anns.append(gt_ann(ann_id, image_id, 1, crowd, crowd=1, area=30000.0)); ann_id += 1
        real = [[60, 60, 40, 80], [200, 100, 90, 60], [400, 300, 25, 25]]
        for box in real:
            anns.append(gt_ann(ann_id, image_id, 1, box)); ann_id += 1
        anns.append(gt_ann(ann_id, image_id, 2, [380, 380, 120, 120], crowd=1)); ann_id += 1
        anns.append(gt_ann(ann_id, image_id, 2, [20, 400, 60, 60])); ann_id += 1
        for box in real:
            dts.append(det(image_id, 1, jitter(rng, box, 0.08), round(rng.uniform(0.5, 0.99), 4)))
        for _ in range(12):  # small boxes inside the crowd region
            box = [round(rng.uniform(60, 300), 2), round(rng.uniform(60, 200), 2), 20.0, 30.0]
            dts.append(det(image_id, 1, box, round(rng.uniform(0.05, 0.95), 4)))
        for _ in range(4):
            dts.append(det(image_id, 2, jitter(rng, [390, 390, 50, 50], 0.3), round(rng.uniform(0.1, 0.9), 4)))
        dts.append(det(image_id, 2, jitter(rng, [20, 400, 60, 60], 0.05), 0.8))
    return {"images": images([1, 2, 3]), "annotations": anns, "categories": categories([1, 2])}, dts


def case_empty_images(rng):
    """Images with nothing, with GT only, with detections only (false positives)."""
    anns, dts, ann_id = [], [], 1
    for image_id in (10, 11, 12, 13, 14, 15):
        kind = image_id % 3
        boxes = [random_box(rng) for _ in range(3)]
        if kind in (0, 1):  # GT
            for b in boxes:
                anns.append(gt_ann(ann_id, image_id, rng.choice([1, 2]), b)); ann_id += 1
        if kind == 0:  # matching detections
            for a in [a for a in anns if a["image_id"] == image_id]:
                dts.append(det(image_id, a["category_id"], jitter(rng, a["bbox"], 0.1), round(rng.random(), 4)))
        if kind == 2:  # detections on an image without GT
            for b in boxes:
                dts.append(det(image_id, rng.choice([1, 2]), b, round(rng.random(), 4)))
    ids = [10, 11, 12, 13, 14, 15, 16, 17]  # 16 and 17: no GT, no detections
    return {"images": images(ids), "annotations": anns, "categories": categories([1, 2])}, dts


def case_many_detections(rng):
    """More than 100 detections per image: maxDets 1/10/100 cut per image after the score sort."""
    anns, dts, ann_id = [], [], 1
    for image_id in (1, 2):
        gts = [random_box(rng) for _ in range(30)]
        for b in gts:
            anns.append(gt_ann(ann_id, image_id, 1, b)); ann_id += 1
        for i in range(160):
            if i % 2 == 0:
                box = jitter(rng, gts[(i // 2) % len(gts)], 0.15)
            else:
                box = random_box(rng)
            dts.append(det(image_id, 1, box, round(rng.random(), 3)))
    return {"images": images([1, 2]), "annotations": anns, "categories": categories([1])}, dts


def case_ties(rng):
    """Scores from three values only, so the stable mergesort's order decides TP/FP runs, within and across
    images, and across the maxDets cut."""
    anns, dts, ann_id = [], [], 1
    for image_id in (5, 3, 9, 1):
        gts = [random_box(rng, (40, 70, 150)) for _ in range(6)]
        for b in gts:
            anns.append(gt_ann(ann_id, image_id, 1, b)); ann_id += 1
        for i in range(14):
            box = jitter(rng, gts[i % 6], 0.05) if i % 3 != 2 else random_box(rng)
            dts.append(det(image_id, 1, box, rng.choice([0.9, 0.5, 0.5, 0.2])))
        # exact duplicates at equal score: the first in file order takes the GT
        dts.append(det(image_id, 1, gts[0], 0.5))
        dts.append(det(image_id, 1, gts[0], 0.5))
    rng.shuffle(dts)
    return {"images": images([1, 3, 5, 9]), "annotations": anns, "categories": categories([1])}, dts


def case_missing_categories(rng):
    """Category 2 has detections but no GT (-1), 3 has neither (-1), 4 has GT but no detections (0),
    category 7 exists only in the results (left out, as getAnnIds leaves it out)."""
    anns, dts, ann_id = [], [], 1
    for image_id in (1, 2, 3):
        for cat in (1, 4):
            b = random_box(rng)
            anns.append(gt_ann(ann_id, image_id, cat, b)); ann_id += 1
            if cat == 1:
                dts.append(det(image_id, 1, jitter(rng, b, 0.1), round(rng.random(), 4)))
        dts.append(det(image_id, 2, random_box(rng), round(rng.random(), 4)))
        dts.append(det(image_id, 7, random_box(rng), round(rng.random(), 4)))
    return {"images": images([1, 2, 3]), "annotations": anns, "categories": categories([1, 2, 3, 4])}, dts


def case_random_mixture(rng):
    """Everything at once on 25 images: all area ranges, GT areas exactly at 32² and 96² (both ranges include
    their bounds), crowd, a GT with id 0 (pycocotools reads a match to it as no match), unsorted ids."""
    anns, dts = [], []
    ids = list(range(100, 125))
    rng.shuffle(ids)
    ann_ids = list(range(0, 400))
    rng.shuffle(ann_ids)
    ann_ids.remove(0)
    ann_ids.insert(0, 0)  # the first annotation has id 0
    for image_id in ids:
        for _ in range(rng.randint(0, 8)):
            cat = rng.choice([1, 2, 3, 5])
            b = random_box(rng)
            area = rng.choice([None, None, None, 1024.0, 9216.0])
            crowd = 1 if rng.random() < 0.08 else 0
            anns.append(gt_ann(ann_ids[len(anns)], image_id, cat, b, crowd=crowd, area=area))
            if rng.random() < 0.8:
                dts.append(det(image_id, cat, jitter(rng, b, 0.2), round(rng.random(), 3)))
        for _ in range(rng.randint(0, 6)):
            dts.append(det(image_id, rng.choice([1, 2, 3, 5]), random_box(rng), round(rng.random(), 3)))
    return {"images": images(ids), "annotations": anns, "categories": categories([5, 1, 3, 2])}, dts


CASES = {
    "crowd": case_crowd,
    "empty_images": case_empty_images,
    "many_detections": case_many_detections,
    "ties": case_ties,
    "missing_categories": case_missing_categories,
    "random_mixture": case_random_mixture,
}


def evaluate(gt_path, dt_path):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        dt = gt.loadRes(str(dt_path))
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"]
    per_category = {}
    for k, cat_id in enumerate(ev.params.catIds):
        s = precision[:, :, k, 0, -1]
        per_category[str(cat_id)] = float(np.mean(s[s > -1])) if (s > -1).any() else -1.0
    return [float(v) for v in ev.stats], per_category


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "tests/data/coco_eval"
    for seed, (name, make) in enumerate(CASES.items()):
        rng = random.Random(1000 + seed)
        gt, dts = make(rng)
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "gt.json").write_text(json.dumps(gt, separators=(",", ":")))
        (folder / "dt.json").write_text(json.dumps(dts, separators=(",", ":")))
        stats, per_category = evaluate(folder / "gt.json", folder / "dt.json")
        expected = {
            "description": make.__doc__.strip(),
            "generated_by": f"scripts/make_coco_eval_cases.py, pycocotools {version('pycocotools')}",
            "stats": stats,
            "per_category_AP": per_category,
        }
        (folder / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
        print(f"{name}: {len(gt['annotations'])} GT, {len(dts)} detections, AP {stats[0]:.4f}")


if __name__ == "__main__":
    main()
