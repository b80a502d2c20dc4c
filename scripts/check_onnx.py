#!/usr/bin/env python3
"""Validate every ONNX variant `yolo-burn export` makes, with onnx, onnxruntime and Ultralytics (issue #14).

What it does:
  1. For {yolov8n, yolo11n} (the random-init parity weights in /work/shared/parity) x {fp32, fp16} x
     {raw, deepstream, nms} x {static batch 1, dynamic batch} at opset 17, plus two opset-13 variants, it runs
     `yolo-burn export` into a temp dir and checks the file:
       - `onnx.checker.check_model(model, full_check=True)`. For the `nms` head the EfficientNMS_TRT node
         (domain "TRT") has no schema in onnx; whatever full_check says is printed in the table, and when it
         raises, the file is re-checked with full_check=False (the table says so);
       - the default-domain opset (and IR version: 7 for opsets <= 14, 8 above);
       - every node's op_type in TENSORRT_85_OPS, parsed from src/export/onnx/ops.rs (plus EfficientNMS_TRT in
         domain TRT for the nms head only);
       - input `images` f32 [B,3,640,640] and the outputs of each head, names, dtypes and shapes
         (B = 1, or the symbolic `batch`);
       - the metadata_props keys (producer, version, arch, scale, nc, names, stride, imgsz, batch, precision,
         head; iou, conf, max_det for nms) and the values that follow from the export options;
       - raw and deepstream files run in onnxruntime (CPUExecutionProvider) at B=1 and, for dynamic files,
         B=3 (each image of the B=3 batch must equal its B=1 run), and the deepstream output must equal the
         raw output of the same weights/precision decoded (xyxy, max score, argmax class). nms files are not
         run: onnxruntime has no EfficientNMS_TRT.
  2. With the trained /tmp/exp/best.safetensors (yolov8n, 6 classes, 128 px), exports fp32/fp16 raw and
     deepstream files and compares, per coco8 val image, onnxruntime + Ultralytics' own pre/post-processing
     (LetterBox(new_shape, auto=False), RGB /255; `ultralytics.utils.nms.non_max_suppression` conf 0.25
     iou 0.7 for raw, a per-class torchvision NMS for deepstream; `scale_boxes` back to the image) against
     `yolo-burn predict --weights file.onnx --set eval.conf=0.25` (tract): same count, boxes within 0.01 px,
     scores within 1e-4 for fp32 (fp16: 1 px and 1e-2, see TOL), detections paired by class and IoU.
Prints a table and a final PASS/FAIL; exits 1 on failure.

How to run (from the repository root, with a built release binary):
    python -m venv venv && venv/bin/pip install ultralytics==8.4.190 onnx onnxruntime
    venv/bin/python scripts/check_onnx.py [--bin target/release/yolo-burn] [--parity DIR] [--trained W]
        [--images DIR]
Written against: ultralytics 8.4.190, torch 2.x, torchvision 0.2x, onnx 1.23.2, onnxruntime 1.32.0, numpy,
opencv-python; yolo-burn 0.1 (Burn 0.21).
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import torch
import torchvision
from ultralytics.data.augment import LetterBox
from ultralytics.utils.nms import non_max_suppression
from ultralytics.utils.ops import scale_boxes

ROOT = Path(__file__).resolve().parent.parent
META_KEYS = ["producer", "version", "arch", "scale", "nc", "names", "stride", "imgsz", "batch", "precision", "head"]
NMS_KEYS = ["iou", "conf", "max_det"]
# Part 2 tolerances (max |box| px, max |score|). fp16: tract (yolo-burn) and onnxruntime's CPU provider round
# the f16 graph differently (seen: tract fp16 vs ort fp16 ~4e-3 in score, ~0.4 px; ort fp16 vs ort fp32 ~8e-4,
# so ort seems to keep more in f32), so the strict fp32 bounds would only measure that. Both are printed.
TOL = {"fp32": (0.01, 1e-4), "fp16": (1.0, 1e-2)}


def trt_ops():
    """TENSORRT_85_OPS from the Rust source (src/export/onnx/ops.rs)."""
    src = (ROOT / "src/export/onnx/ops.rs").read_text()
    m = re.search(r"pub const TENSORRT_85_OPS: &\[&str\] = &\[(.*?)\];", src, re.S)
    if not m:
        sys.exit("TENSORRT_85_OPS not found in src/export/onnx/ops.rs")
    return set(re.findall(r'"([A-Za-z0-9_]+)"', m.group(1)))


def dims(vi):
    return [d.dim_param if d.dim_param else d.dim_value for d in vi.type.tensor_type.shape.dim]


def dtype(vi):
    return onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type).name


def export(bin_, weights, out, extra, sets=()):
    cmd = [bin_, "export", "--weights", str(weights), "--output", str(out), *extra]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"export failed: {' '.join(cmd)}\n{r.stderr}")
    return r.stdout


def session(path):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def letterbox(img_bgr, size):
    lb = LetterBox(new_shape=(size, size), auto=False)
    im = lb(image=img_bgr)
    return np.ascontiguousarray(im[..., ::-1].transpose(2, 0, 1)).astype(np.float32) / 255.0


def decode_raw(raw):
    """raw [B, 4+nc, A] -> deepstream layout [B, A, 6]."""
    cx, cy, w, h = raw[:, 0], raw[:, 1], raw[:, 2], raw[:, 3]
    s = raw[:, 4:]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, s.max(1), s.argmax(1).astype(np.float32)], -1)


def check_variant(bin_, tmp, ops, model, weights, sets, prec, head, dyn, opset, batch_imgs, raw_cache):
    name = f"{model}-{prec}-{head}-{'dyn' if dyn else 'b1'}-op{opset}"
    path = Path(tmp) / f"{name}.onnx"
    extra = ["--opset", str(opset), "--head", head, "--imgsz", "640"]
    if prec == "fp16":
        extra.append("--half")
    if dyn:
        extra.append("--dynamic")
    fails, notes = [], []
    export(bin_, weights, path, extra, sets)
    m = onnx.load(str(path))
    # 1. checker
    checker = "full"
    try:
        onnx.checker.check_model(m, full_check=True)
    except Exception as e:  # noqa: BLE001
        msg = str(e).strip().splitlines()[0][:110]
        if head == "nms":
            try:
                onnx.checker.check_model(m, full_check=False)
                checker = "basic"
                notes.append(f"full_check raised ({msg}); passes full_check=False")
            except Exception as e2:  # noqa: BLE001
                checker = "FAIL"
                fails.append(f"check_model: {str(e2).splitlines()[0][:110]}")
        else:
            checker = "FAIL"
            fails.append(f"check_model(full_check=True): {msg}")
    # 2. opset / IR
    op = {o.domain: o.version for o in m.opset_import}
    if op.get("", op.get("ai.onnx")) != opset:
        fails.append(f"opset {op}")
    want_ir = 7 if opset <= 14 else 8
    if m.ir_version != want_ir:
        fails.append(f"ir_version {m.ir_version} != {want_ir}")
    if head == "nms" and "TRT" not in op:
        fails.append("no opset_import for domain TRT")
    # 3. ops
    types = {}
    for n in m.graph.node:
        types[(n.domain, n.op_type)] = types.get((n.domain, n.op_type), 0) + 1
    for (dom, t), _ in types.items():
        if dom in ("", "ai.onnx") and t in ops:
            continue
        if head == "nms" and dom == "TRT" and t == "EfficientNMS_TRT":
            continue
        fails.append(f"op {dom}:{t} not in TENSORRT_85_OPS")
    if head == "nms" and types.get(("TRT", "EfficientNMS_TRT"), 0) != 1:
        fails.append("expected one TRT:EfficientNMS_TRT node")
    # 4. IO
    b = "batch" if dyn else 1
    ins = [(i.name, dtype(i), dims(i)) for i in m.graph.input]
    if ins != [("images", "float32", [b, 3, 640, 640])]:
        fails.append(f"inputs {ins}")
    meta = {p.key: p.value for p in m.metadata_props}
    nc = int(meta.get("nc", 80))
    if head == "raw":
        want = [("output0", "float32", [b, 4 + nc, 8400])]
    elif head == "deepstream":
        want = [("output0", "float32", [b, 8400, 6])]
    else:
        md = int(meta.get("max_det", 300))
        want = [("num_dets", "int32", [b, 1]), ("det_boxes", "float32", [b, md, 4]),
                ("det_scores", "float32", [b, md]), ("det_classes", "int32", [b, md])]
    outs = [(o.name, dtype(o), dims(o)) for o in m.graph.output]
    if outs != want:
        fails.append(f"outputs {outs} != {want}")
    # 5. metadata
    keys = META_KEYS + (NMS_KEYS if head == "nms" else [])
    missing = [k for k in keys if k not in meta]
    if missing:
        fails.append(f"metadata missing {missing}")
    expect = {"producer": "yolo-burn", "arch": model[:-1], "scale": "n", "nc": "80", "imgsz": "[640, 640]",
              "batch": "dynamic" if dyn else "1", "precision": prec, "head": head, "stride": "[8, 16, 32]"}
    for k, v in expect.items():
        if k in meta and meta[k] != v:
            fails.append(f"metadata {k}={meta[k]!r} != {v!r}")
    if "names" in meta and len(json.loads(meta["names"])) != nc:
        fails.append("metadata names length != nc")
    # 6. onnxruntime
    ort_res = "not run (no plugin)" if head == "nms" else ""
    if head != "nms":
        s = session(path)
        y1 = s.run(None, {"images": batch_imgs[:1]})[0]
        if not np.isfinite(y1).all():
            fails.append("ort B=1 output not finite")
        exp_shape = (1, 4 + nc, 8400) if head == "raw" else (1, 8400, 6)
        if y1.shape != exp_shape:
            fails.append(f"ort B=1 shape {y1.shape}")
        ort_res = "B=1 ok"
        if dyn:
            y3 = s.run(None, {"images": batch_imgs})[0]
            if y3.shape[0] != 3:
                fails.append(f"ort B=3 shape {y3.shape}")
            else:
                singles = [s.run(None, {"images": batch_imgs[i:i + 1]})[0] for i in range(3)]
                d = max(float(np.abs(y3[i:i + 1] - singles[i]).max()) for i in range(3))
                tol = 1e-2 if prec == "fp16" else 1e-3
                if d > tol:
                    fails.append(f"ort B=3 vs B=1 max diff {d:.3g}")
                ort_res = f"B=1,3 ok (B3-B1 {d:.1g})"
        key = (model, prec, dyn, opset)
        if head == "raw":
            raw_cache[key] = y1
        elif key in raw_cache:
            ref = decode_raw(raw_cache[key])
            dd = np.abs(ref - y1)
            box = float(dd[..., :5].max())
            cls_ok = (ref[..., 4] < 1e-3) | (ref[..., 5] == y1[..., 5]) | (dd[..., 4] < 1e-6)
            if box > 1e-2 or not cls_ok.all():
                fails.append(f"deepstream != decoded raw (max {box:.3g}, class mismatches {int((~cls_ok).sum())})")
            ort_res += f"; ds=raw ({box:.1g})"
    return name, checker, len(m.graph.node), sorted(t for _, t in types), ort_res, fails, notes


def predict_json(bin_, onnx_path, imgdir, project):
    name = Path(onnx_path).stem
    cmd = [bin_, "predict", "--weights", str(onnx_path), "--source", str(imgdir), "--set", "eval.conf=0.25",
           "--set", f"train.project={project}", "--name", name, "--exist-ok", "-q"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"predict failed: {' '.join(cmd)}\n{r.stderr}")
    out = {}
    for f in glob.glob(f"{project}/{name}/*.json"):
        dets = json.load(open(f))
        out[Path(f).stem] = [[d["box"]["x1"], d["box"]["y1"], d["box"]["x2"], d["box"]["y2"], d["confidence"],
                              d["class"]] for d in dets]
    return out


def ort_dets(sess, head, img, size):
    x = letterbox(img, size)[None]
    y = torch.from_numpy(sess.run(None, {"images": x})[0])
    if head == "raw":
        det = non_max_suppression(y, conf_thres=0.25, iou_thres=0.7, max_det=300)[0]
    else:
        d = y[0]
        d = d[d[:, 4] > 0.25]
        keep = torchvision.ops.batched_nms(d[:, :4], d[:, 4], d[:, 5].long(), 0.7)[:300]
        det = d[keep]
    det = det.clone()
    det[:, :4] = scale_boxes((size, size), det[:, :4], img.shape[:2])
    return det.numpy().tolist()


def compare(a, b):
    """Pairs each detection of `a` (best score first) with the unpaired one of `b` of the same class and highest
    IoU (so near-tied scores that swap order don't matter); returns (max |box diff| px, max |score diff|,
    every pair found), or None if the counts differ."""
    if len(a) != len(b):
        return None
    if not a:
        return 0.0, 0.0, True
    a = sorted(a, key=lambda d: -d[4])
    free = list(range(len(b)))
    db = ds = 0.0
    for d in a:
        cand = [j for j in free if b[j][5] == d[5]]
        if not cand:
            return float("nan"), float("nan"), False
        iou = torchvision.ops.box_iou(torch.tensor([d[:4]]), torch.tensor([b[j][:4] for j in cand]))[0]
        j = cand[int(iou.argmax())]
        free.remove(j)
        db = max(db, max(abs(x - y) for x, y in zip(d[:4], b[j][:4])))
        ds = max(ds, abs(d[4] - b[j][4]))
    return db, ds, True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=str(ROOT / "target/release/yolo-burn"))
    ap.add_argument("--parity", default="/work/shared/parity")
    ap.add_argument("--trained", default="/tmp/exp/best.safetensors")
    ap.add_argument("--images", default="/work/shared/datasets/coco8/images/val")
    args = ap.parse_args()
    ops = trt_ops()
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, torch {torch.__version__}, "
          f"torchvision {torchvision.__version__}; TENSORRT_85_OPS ({len(ops)}): {' '.join(sorted(ops))}")
    images = sorted(glob.glob(f"{args.images}/*.jpg"))
    batch_imgs = np.stack([letterbox(cv2.imread(p), 640) for p in images[:3]])
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        print("\n== Part 1: every export variant (parity weights, random init, 640 px) ==")
        print(f"{'variant':36} {'checker':7} {'nodes':>5}  {'onnxruntime':38} result")
        variants = []
        for model in ("yolov8n", "yolo11n"):
            for prec in ("fp32", "fp16"):
                for head in ("raw", "deepstream", "nms"):
                    for dyn in (False, True):
                        variants.append((model, prec, head, dyn, 17))
        variants += [("yolov8n", "fp32", "raw", False, 13), ("yolov8n", "fp32", "deepstream", False, 13),
                     ("yolo11n", "fp16", "nms", True, 13)]
        raw_cache, all_notes, op_sets = {}, [], {}
        for model, prec, head, dyn, opset in variants:
            weights = f"{args.parity}/{model}.weights.safetensors"
            sets = [f"model.arch={model[:-1]}", "model.scale=n", "model.nc=80"]
            try:
                name, checker, nn, types, ort_res, fails, notes = check_variant(
                    args.bin, tmp, ops, model, weights, sets, prec, head, dyn, opset, batch_imgs, raw_cache)
            except Exception as e:  # noqa: BLE001
                name = f"{model}-{prec}-{head}-{'dyn' if dyn else 'b1'}-op{opset}"
                checker, nn, types, ort_res, fails, notes = "-", 0, [], "-", [f"error: {e}"], []
            op_sets[head] = op_sets.get(head, set()) | set(types)
            res = "PASS" if not fails else "FAIL"
            ok &= not fails
            print(f"{name:36} {checker:7} {nn:5}  {ort_res:38} {res}")
            for f in fails:
                print(f"    - {f}")
            all_notes += [f"{name}: {n}" for n in notes]
        for h, t in op_sets.items():
            print(f"ops used by head {h}: {' '.join(sorted(t))}")
        if all_notes:
            print("notes:")
            for n in all_notes:
                print(f"  {n}")

        print(f"\n== Part 2: onnxruntime + Ultralytics post-processing vs `yolo-burn predict` (tract), "
              f"{Path(args.trained).name}, {len(images)} images from {args.images} ==")
        print(f"tolerances: fp32 box {TOL['fp32'][0]} px, score {TOL['fp32'][1]}; fp16 box {TOL['fp16'][0]} px, "
              f"score {TOL['fp16'][1]} (see TOL); detections paired by class and IoU")
        print(f"{'file':22} {'image':14} {'ort':>4} {'ours':>4} {'max|dbox| px':>12} {'max|dscore|':>11} result")
        proj = Path(tmp) / "runs"
        for prec, head in (("fp32", "raw"), ("fp16", "raw"), ("fp32", "deepstream"), ("fp16", "deepstream")):
            path = Path(tmp) / f"best-{prec}-{head}.onnx"
            extra = ["--head", head] + (["--half"] if prec == "fp16" else [])
            try:
                export(args.bin, args.trained, path, extra)
                size = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["imgsz"])[0]
                sess = session(path)
                ours = predict_json(args.bin, path, args.images, proj)
            except Exception as e:  # noqa: BLE001
                print(f"{path.name:22} error: {e}")
                ok = False
                continue
            for p in images:
                stem = Path(p).stem
                ref = ort_dets(sess, head, cv2.imread(p), size)
                got = ours.get(stem)
                if got is None:
                    print(f"{path.stem:22} {stem:14} no JSON from predict   FAIL")
                    ok = False
                    continue
                c = compare(ref, got)
                if c is None:
                    res = "FAIL (count)"
                    db = ds = float("nan")
                else:
                    db, ds, paired = c
                    tb, ts = TOL[prec]
                    res = "PASS" if db <= tb and ds <= ts and paired else "FAIL"
                    if not paired:
                        res += " (class)"
                ok &= res == "PASS"
                print(f"{path.stem:22} {stem:14} {len(ref):4} {len(got):4} {db:12.2e} {ds:11.2e} {res}")
    print(f"\nOVERALL: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
