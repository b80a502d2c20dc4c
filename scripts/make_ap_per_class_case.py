#!/usr/bin/env python3
"""Generate tests/data/ap_per_class.json: YOLO validation metrics computed by Ultralytics' own code.

Ultralytics 8.4.190. For each synthetic case (seeded numpy RNG, fully deterministic) and each image, this does what
DetectionValidator.update_metrics/_process_batch do (models/yolo/detect/val.py):
  * IoU matrix [M labels, N preds] with ultralytics.utils.metrics.box_iou on float32 xyxy tensors;
  * tp [N, 10] bool with BaseValidator.match_predictions(pred_cls, true_cls, iou, use_scipy=False), called unbound on a
    stub carrying iouv = torch.linspace(0.5, 0.95, 10) (the only attribute it reads); images with no labels or no
    predictions get np.zeros((N, 10), bool) without matching, as _process_batch does;
  * per-image stats tp / conf (float32, or np.zeros(0) when there are no predictions) / pred_cls (float32, same rule)
    / target_cls (float32), concatenated over the images and given to ultralytics.utils.metrics.ap_per_class(...,
    plot=False) as DetMetrics.process does. The means are cross-checked against DetMetrics itself.

Predictions of each image are stored in descending-confidence order, exactly as NMS hands them to match_predictions
(its greedy loop relies on that order). All confidences of a case are distinct float32 values in (0.001, 1).

JSON per case: images (gt_xyxy, gt_cls, pred_xyxy, pred_conf, pred_cls, tp), classes (unique label classes, ascending),
ap [nc][10], p/r/f1 [nc] at the best-mean-F1 confidence, f1_index (that index into linspace(0, 1, 1000)), mp, mr, map50,
map. Floats are written with repr(), so float32 values round-trip exactly.

Run with Ultralytics in a scratch venv:
    /tmp/refvenv/bin/pip install ultralytics==8.4.190
    python scripts/make_ap_per_class_case.py -o tests/data/ap_per_class.json
"""

import argparse
import json
import os
import types

os.environ.setdefault("YOLO_OFFLINE", "1")

import numpy as np
import torch

import ultralytics
from ultralytics.engine.validator import BaseValidator
from ultralytics.utils.metrics import DetMetrics, ap_per_class, box_iou

W, H = 640.0, 480.0


# ----------------------------------------------------------------------------------------------------------------------
# Synthetic data
# ----------------------------------------------------------------------------------------------------------------------
def clip_box(b):
    x1, y1, x2, y2 = b
    x1, x2 = np.clip([x1, x2], 0.0, W)
    y1, y2 = np.clip([y1, y2], 0.0, H)
    if x2 - x1 < 1.0:
        x2 = min(W, x1 + 1.0)
        x1 = x2 - 1.0
    if y2 - y1 < 1.0:
        y2 = min(H, y1 + 1.0)
        y1 = y2 - 1.0
    return [x1, y1, x2, y2]


def random_box(rng, wmin=8.0, wmax=220.0, hmin=8.0, hmax=200.0):
    w, h = rng.uniform(wmin, wmax), rng.uniform(hmin, hmax)
    x1, y1 = rng.uniform(0.0, W - w), rng.uniform(0.0, H - h)
    return [x1, y1, x1 + w, y1 + h]


def jitter(rng, b, s):
    """Move each side of b by up to s times the box size (s ~ 0.02 gives IoU ~0.95, s ~ 0.3 gives ~0.4)."""
    x1, y1, x2, y2 = b
    w, h = x2 - x1, y2 - y1
    d = rng.uniform(-s, s, 4) * np.array([w, h, w, h])
    return clip_box([x1 + d[0], y1 + d[1], x2 + d[2], y2 + d[3]])


class ConfSource:
    """Distinct float32 confidences strictly inside (0.001, 1) across a whole case."""

    def __init__(self, rng):
        self.rng, self.used = rng, set()

    def __call__(self, lo, hi):
        while True:
            c = np.float32(self.rng.uniform(lo, hi))
            if 0.001 < float(c) < 1.0 and float(c) not in self.used:
                self.used.add(float(c))
                return c


def finish_image(gt, gcls, pred, pconf, pcls):
    """float32 arrays; predictions sorted by descending confidence (the NMS output order)."""
    order = np.argsort(-np.asarray(pconf, dtype=np.float32), kind="stable")
    return {
        "gt_xyxy": np.asarray(gt, dtype=np.float32).reshape(-1, 4),
        "gt_cls": np.asarray(gcls, dtype=np.int64).reshape(-1),
        "pred_xyxy": np.asarray(pred, dtype=np.float32).reshape(-1, 4)[order],
        "pred_conf": np.asarray(pconf, dtype=np.float32).reshape(-1)[order],
        "pred_cls": np.asarray(pcls, dtype=np.int64).reshape(-1)[order],
    }


def case_mixed(seed=20250190):
    """12 images, 5 classes: class 3 has labels but is never predicted, class 4 is predicted but has no labels."""
    rng = np.random.default_rng(seed)
    conf = ConfSource(rng)
    gt_classes, pred_wrong = [0, 1, 2, 3], [0, 1, 2, 4]
    images = []
    for im in range(12):
        m = int(rng.integers(0, 9)) if im not in (0, 1) else 8  # 0..8 labels; the first two images are full
        gt = [random_box(rng) for _ in range(m)]
        gcls = [int(rng.choice(gt_classes, p=[0.35, 0.3, 0.2, 0.15])) for _ in range(m)]
        if im == 0:
            gcls[0] = 3  # make sure class 3 has labels
        pred, pconf, pcls = [], [], []
        for b, c in zip(gt, gcls):
            if rng.random() < 0.2:
                continue  # missed label
            ncopies = 1 + int(rng.random() < 0.3) + int(rng.random() < 0.1)  # duplicates hit one label
            for _ in range(ncopies):
                s = float(rng.choice([0.01, 0.03, 0.06, 0.1, 0.15, 0.22, 0.3]))
                pc = c
                if c == 3 or rng.random() < 0.12:  # class 3 never predicted; some wrong-class hits
                    pc = int(rng.choice([k for k in pred_wrong if k != c]))
                pred.append(jitter(rng, b, s))
                pconf.append(conf(0.05, 1.0) if s <= 0.15 else conf(0.001, 0.8))
                pcls.append(pc)
        nfp = int(rng.integers(0, 6))
        for _ in range(nfp):  # random false positives (some may still overlap a label by chance)
            pred.append(random_box(rng))
            pconf.append(conf(0.001, 0.6))
            pcls.append(int(rng.choice(pred_wrong)))
        if im == 1:  # make sure class 4 is predicted, once overlapping a label
            if gt:
                pred.append(jitter(rng, gt[0], 0.03))
                pconf.append(conf(0.3, 0.9))
                pcls.append(4)
            pred.append(random_box(rng))
            pconf.append(conf(0.001, 0.9))
            pcls.append(4)
        keep = sorted(rng.permutation(len(pred))[:25].tolist())  # at most 25 predictions per image
        pred, pconf, pcls = [pred[k] for k in keep], [pconf[k] for k in keep], [pcls[k] for k in keep]
        if im == 7:
            pred, pconf, pcls = [], [], []  # an image with labels and no predictions at all
        images.append(finish_image(gt, gcls, pred, pconf, pcls))
    return {"name": "mixed", "images": images}


def case_single_class_dense(seed=8419001):
    """4 images, class 0 only, crowded clusters of overlapping labels and predictions (greedy matching order)."""
    rng = np.random.default_rng(seed)
    conf = ConfSource(rng)
    images = []
    for _ in range(4):
        gt = []
        for _ in range(int(rng.integers(2, 4))):  # clusters
            base = random_box(rng, 60, 160, 60, 140)
            gt.append(base)
            for _ in range(int(rng.integers(2, 5))):  # labels overlapping the cluster's base (IoU ~0.3..0.8)
                gt.append(jitter(rng, base, float(rng.uniform(0.08, 0.35))))
        pred, pconf = [], []
        for b in gt:
            for _ in range(int(rng.integers(0, 4))):
                s = float(rng.uniform(0.01, 0.3))
                pred.append(jitter(rng, b, s))
                pconf.append(conf(0.001, 1.0))
        for _ in range(int(rng.integers(1, 5))):
            pred.append(random_box(rng))
            pconf.append(conf(0.001, 0.5))
        images.append(finish_image(gt, [0] * len(gt), pred, pconf, [0] * len(pred)))
    return {"name": "single_class_dense", "images": images}


def case_empty_image(seed=190):
    """3 images: labels without predictions, predictions without labels, and one ordinary image."""
    rng = np.random.default_rng(seed)
    conf = ConfSource(rng)
    gt0 = [random_box(rng) for _ in range(3)]
    im0 = finish_image(gt0, [0, 1, 1], [], [], [])
    pred1 = [random_box(rng) for _ in range(4)]
    im1 = finish_image([], [], pred1, [conf(0.001, 1.0) for _ in pred1], [0, 1, 0, 1])
    gt2 = [random_box(rng) for _ in range(4)]
    gcls2 = [0, 1, 0, 1]
    pred2, pconf2, pcls2 = [], [], []
    for b, c, s in zip(gt2, gcls2, [0.02, 0.08, 0.15, 0.25]):
        pred2.append(jitter(rng, b, s))
        pconf2.append(conf(0.001, 1.0))
        pcls2.append(c)
    pred2.append(random_box(rng))
    pconf2.append(conf(0.001, 1.0))
    pcls2.append(0)
    im2 = finish_image(gt2, gcls2, pred2, pconf2, pcls2)
    return {"name": "empty_image", "images": [im0, im1, im2]}


# ----------------------------------------------------------------------------------------------------------------------
# Ultralytics evaluation, as DetectionValidator does it
# ----------------------------------------------------------------------------------------------------------------------
STUB = types.SimpleNamespace(iouv=torch.linspace(0.5, 0.95, 10))  # DetectionValidator.__init__: self.iouv
NIOU = STUB.iouv.numel()


def process_image(img):
    gt_boxes = torch.from_numpy(img["gt_xyxy"])  # float32 [M, 4] (letterboxed input space in the real validator)
    gt_cls = torch.from_numpy(img["gt_cls"].astype(np.float32))  # batch["cls"] is float32
    pr_boxes = torch.from_numpy(img["pred_xyxy"])  # float32 [N, 4], descending confidence
    pr_conf = torch.from_numpy(img["pred_conf"])  # float32 [N]
    pr_cls = torch.from_numpy(img["pred_cls"].astype(np.float32))  # NMS output column 5, float32
    # DetectionValidator._process_batch
    if gt_cls.shape[0] == 0 or pr_cls.shape[0] == 0:
        tp = np.zeros((pr_cls.shape[0], NIOU), dtype=bool)
    else:
        iou = box_iou(gt_boxes, pr_boxes)
        tp = BaseValidator.match_predictions(STUB, pr_cls, gt_cls, iou, use_scipy=False).cpu().numpy()
    cls = gt_cls.cpu().numpy()
    no_pred = pr_cls.shape[0] == 0
    # DetectionValidator.update_metrics -> DetMetrics.update_stats
    return {
        "tp": tp,
        "target_cls": cls,
        "target_img": np.unique(cls),
        "conf": np.zeros(0) if no_pred else pr_conf.cpu().numpy(),
        "pred_cls": np.zeros(0) if no_pred else pr_cls.cpu().numpy(),
    }


def evaluate(case):
    per_image = [process_image(img) for img in case["images"]]
    stats = {k: np.concatenate([s[k] for s in per_image], 0) for k in ("tp", "conf", "pred_cls", "target_cls")}
    tp, fp, p, r, f1, ap, classes, p_curve, r_curve, f1_curve, x, prec = ap_per_class(
        stats["tp"], stats["conf"], stats["pred_cls"], stats["target_cls"], plot=False
    )
    mean = lambda a: float(a.mean()) if len(a) else 0.0  # Metric.mp/mr/map50/map
    res = {
        "classes": [int(c) for c in classes],
        "ap": [[float(v) for v in row] for row in ap],
        "p": [float(v) for v in p],
        "r": [float(v) for v in r],
        "f1": [float(v) for v in f1],
        "mp": mean(p),
        "mr": mean(r),
        "map50": mean(ap[:, 0]) if len(ap) else 0.0,
        "map": mean(ap),
    }
    # which point of linspace(0, 1, 1000) was chosen, and how clear the choice was
    from ultralytics.utils.metrics import smooth

    sm = smooth(f1_curve.mean(0), 0.1) if len(classes) else np.zeros(1)
    res["f1_index"] = int(sm.argmax())
    top2 = np.sort(sm)[-2:]
    case["_margin"] = float(top2[-1] - top2[0]) if len(top2) == 2 else None

    # cross-check with DetMetrics itself (the object DetectionValidator.get_stats uses)
    nc = max([int(c) for s in per_image for c in np.concatenate([s["target_cls"], s["pred_cls"]])] + [0]) + 1
    dm = DetMetrics(names={i: f"c{i}" for i in range(nc)})
    for k, s in enumerate(per_image):
        dm.update_stats({**s, "im_name": f"im{k}.jpg"})
    dm.process(plot=False)
    ref = [float(v) for v in dm.mean_results()]
    assert ref == [res["mp"], res["mr"], res["map50"], res["map"]], (ref, res)

    for img, s in zip(case["images"], per_image):
        img["tp"] = s["tp"]
    return res


# ----------------------------------------------------------------------------------------------------------------------
# JSON
# ----------------------------------------------------------------------------------------------------------------------
def tolist(a):
    a = np.asarray(a)
    if a.dtype == np.bool_:
        return a.astype(bool).tolist()
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(int).tolist()
    return a.astype(np.float64).tolist()  # float32 -> exact float64 -> repr round-trips the float32


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def write(path, source, iouv, cases):
    lines = ["{", f'"source":{dumps(source)},', f'"iou_thresholds":{dumps(iouv)},', '"cases":[']
    for ci, c in enumerate(cases):
        lines.append(f'{{"name":{dumps(c["name"])},')
        lines.append('"images":[')
        for ii, img in enumerate(c["images"]):
            fields = [f'"{k}":{dumps(tolist(img[k]))}' for k in ("gt_xyxy", "gt_cls", "pred_xyxy", "pred_conf", "pred_cls", "tp")]
            lines.append("{" + ",\n ".join(fields) + "}" + ("," if ii + 1 < len(c["images"]) else ""))
        lines.append("],")
        keys = ("classes", "ap", "p", "r", "f1", "f1_index", "mp", "mr", "map50", "map")
        lines.append(",\n".join(f'"{k}":{dumps(c[k])}' for k in keys))
        lines.append("}" + ("," if ci + 1 < len(cases) else ""))
    lines.append("]}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default="tests/data/ap_per_class.json")
    args = ap.parse_args()

    cases = [case_mixed(), case_single_class_dense(), case_empty_image()]
    for c in cases:
        c.update(evaluate(c))
    iouv = [float(v) for v in STUB.iouv.tolist()]
    source = (
        f"ultralytics {ultralytics.__version__} (torch {torch.__version__}, numpy {np.__version__}): "
        "box_iou + BaseValidator.match_predictions(use_scipy=False) per image, ap_per_class on the concatenated stats; "
        "generated by scripts/make_ap_per_class_case.py"
    )
    write(args.output, source, iouv, cases)
    for c in cases:
        n_gt = sum(len(i["gt_cls"]) for i in c["images"])
        n_pr = sum(len(i["pred_cls"]) for i in c["images"])
        print(
            f"{c['name']}: {len(c['images'])} images, {n_gt} labels, {n_pr} preds, classes {c['classes']}, "
            f"mp={c['mp']!r} mr={c['mr']!r} map50={c['map50']!r} map={c['map']!r} "
            f"f1_index={c['f1_index']} smoothed-F1 margin={c['_margin']!r}"
        )


if __name__ == "__main__":
    main()
