#!/usr/bin/env python3
"""Convert an Ultralytics YOLOv8 / YOLO11 detection checkpoint (.pt) into a safetensors file for yolo-burn.

The output holds the model's full state_dict with Ultralytics key names (model.0.conv.weight, ...,
model.22.dfl.conv.weight): every floating tensor as float32 (checkpoints store float16), every
BatchNorm num_batches_tracked kept as an int64 scalar, nothing dropped. The EMA weights are used when the
checkpoint has them ('ema'), else 'model'.

safetensors metadata (all strings, as the format requires):
  format               "ultralytics"
  ultralytics_version  the version that wrote the checkpoint (ckpt['version']), else the one converting
  yaml                 model yaml name, e.g. "yolov8n.yaml" (from model.yaml['yaml_file'])
  arch                 "yolov8" | "yolo11"
  scale                "n" | "s" | "m" | "l" | "x"
  nc                   number of classes, e.g. "80"
  names                JSON list of class names, index = class id
  imgsz                the training image size (ckpt['train_args']['imgsz']) when it is one number: Ultralytics'
                       `YOLO(best.pt)` keeps it (Model._reset_ckpt_args) and predicts and validates at it
  sppf_cv1_act         "silu" | "identity": the activation the loaded SPPF.cv1 module really has (modules are
                       pickled whole, so this is what the checkpoint computes). In 8.4.190 SPPF's constructor
                       says Conv(..., act=False), but parse_model puts SiLU back for the legacy 2-argument
                       SPPF rows of yolov8*.yaml / yolo11*.yaml (only YOLO26 rows keep Identity), so yaml-built
                       and pretrained YOLOv8/YOLO11 models alike normally report "silu" (the shipped parity
                       cases were made that way). Read it rather than assume it.

Loading a .pt unpickles Python objects, so it needs ultralytics installed (this script pins 8.4.190, the
version yolo-burn is checked against; older checkpoints load through its legacy-module shims) and torch.
Only open checkpoints you trust. Nothing is downloaded: the file must exist locally.

Usage:
  python scripts/ultralytics_to_safetensors.py best.pt                 # writes best.safetensors
  python scripts/ultralytics_to_safetensors.py yolov8n.pt -o yolov8n.safetensors
  python scripts/ultralytics_to_safetensors.py --self-test             # round-trip check on yaml-built models
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from copy import deepcopy
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import ultralytics  # noqa: E402

ULTRALYTICS_VERSION = "8.4.190"
assert ultralytics.__version__ == ULTRALYTICS_VERSION, (
    f"needs ultralytics=={ULTRALYTICS_VERSION}, found {ultralytics.__version__}"
)

from ultralytics.nn.tasks import DetectionModel, torch_safe_load  # noqa: E402

SCALES = "nsmlx"
ARCHES = ("yolov8", "yolo11")


class ConvertError(Exception):
    pass


def load_checkpoint(path: Path) -> tuple[dict, torch.nn.Module, str]:
    """Return (checkpoint dict, detection model, 'ema'|'model')."""
    if not path.is_file():
        raise ConvertError(f"{path}: no such file (this script never downloads weights)")
    ckpt, _ = torch_safe_load(str(path))
    if not isinstance(ckpt, dict):
        raise ConvertError(f"{path}: not an Ultralytics checkpoint dict (got {type(ckpt).__name__})")
    for key in ("ema", "model"):
        m = ckpt.get(key)
        if m is not None:
            break
    else:
        raise ConvertError(f"{path}: checkpoint has neither 'ema' nor 'model'")
    if not isinstance(m, torch.nn.Module):
        raise ConvertError(f"{path}: ckpt['{key}'] is a {type(m).__name__}, not a model")
    student = getattr(m, "student_model", None)  # DistillationModel wrapper
    if isinstance(student, torch.nn.Module):
        m = student
    return ckpt, m, key


def check_detect(model: torch.nn.Module) -> torch.nn.Module:
    layers = getattr(model, "model", None)
    if not isinstance(layers, torch.nn.Sequential) or len(layers) == 0:
        raise ConvertError("not an Ultralytics model (no model.model Sequential)")
    head = layers[-1]
    if type(head).__name__ != "Detect":
        raise ConvertError(f"head is {type(head).__name__}: only plain detection (Detect) models are supported")
    if getattr(head, "one2one_cv2", None) is not None:
        raise ConvertError("end-to-end (one2one) heads such as YOLOv10/YOLO26 are not supported")
    return head


def module_names(model: torch.nn.Module) -> set[str]:
    return {type(m).__name__ for m in model.modules()}


def detect_arch(model: torch.nn.Module, yaml_name: str) -> str:
    m = re.match(r"yolo(v8|11)", yaml_name)
    if m:
        return "yolov8" if m.group(1) == "v8" else "yolo11"
    names = module_names(model)
    if "C3k2" in names and "C2PSA" in names:
        return "yolo11"
    if "C2f" in names and "SPPF" in names:
        return "yolov8"
    raise ConvertError(f"cannot tell YOLOv8 from YOLO11 (yaml {yaml_name!r}, modules {sorted(names)})")


def shapes(sd: dict) -> dict:
    return {k: tuple(v.shape) for k, v in sd.items()}


def detect_scale(model: torch.nn.Module, arch: str, nc: int, yaml_scale: str) -> str:
    """Scale from the yaml if recorded there, checked (or else found) by matching every state_dict shape."""
    want = shapes(model.state_dict())
    order = ([yaml_scale] if yaml_scale in SCALES else []) + [s for s in SCALES if s != yaml_scale]
    for s in order:
        ref = DetectionModel(f"{arch}{s}.yaml", nc=nc, verbose=False)
        if shapes(ref.state_dict()) == want:
            return s
    if yaml_scale in SCALES:
        print(f"warning: shapes match no stock {arch} scale; trusting yaml scale {yaml_scale!r}", file=sys.stderr)
        return yaml_scale
    raise ConvertError(f"state_dict matches no stock {arch}{{n,s,m,l,x}} model with nc={nc}")


def sppf_act(model: torch.nn.Module) -> str:
    sppf = [m for m in model.modules() if type(m).__name__ == "SPPF"]
    if len(sppf) != 1:
        raise ConvertError(f"expected one SPPF module, found {len(sppf)}")
    act = getattr(sppf[0].cv1, "act", None)
    if isinstance(act, torch.nn.SiLU):
        return "silu"
    if isinstance(act, torch.nn.Identity):
        return "identity"
    raise ConvertError(f"SPPF.cv1.act is {type(act).__name__}, expected SiLU or Identity")


def class_names(model: torch.nn.Module, nc: int) -> list[str]:
    names = getattr(model, "names", None)
    if isinstance(names, dict):
        out = [str(names[i]) if i in names else str(i) for i in range(nc)]
    elif isinstance(names, (list, tuple)):
        out = [str(n) for n in names]
    else:
        out = [str(i) for i in range(nc)]
    if len(out) != nc:
        raise ConvertError(f"{len(out)} class names for nc={nc}")
    return out


def convert(src: Path, dst: Path) -> dict:
    ckpt, model, which = load_checkpoint(src)
    head = check_detect(model)
    yaml = getattr(model, "yaml", None) or {}
    yaml_name = Path(str(yaml.get("yaml_file", ""))).name
    nc = int(getattr(head, "nc", 0) or yaml.get("nc", 0))
    arch = detect_arch(model, yaml_name)
    scale = detect_scale(model, arch, nc, str(yaml.get("scale") or ""))
    if not re.fullmatch(r"yolo(v8|11)[nslmx]\.yaml", yaml_name):
        yaml_name = f"{arch}{scale}.yaml"
    sd = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if v.is_floating_point():
            v = v.to(torch.float32)
        elif k.endswith("num_batches_tracked"):
            v = v.to(torch.int64).reshape(())
        sd[k] = v.clone().contiguous()  # own storage: safetensors refuses shared tensors
    meta = {
        "format": "ultralytics",
        "ultralytics_version": str(ckpt.get("version") or ultralytics.__version__),
        "yaml": yaml_name,
        "arch": arch,
        "scale": scale,
        "nc": str(nc),
        "names": json.dumps(class_names(model, nc)),
        "sppf_cv1_act": sppf_act(model),
    }
    imgsz = (ckpt.get("train_args") or {}).get("imgsz")
    if isinstance(imgsz, int) or (isinstance(imgsz, (list, tuple)) and len(set(imgsz)) == 1):
        meta["imgsz"] = str(imgsz if isinstance(imgsz, int) else imgsz[0])
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(dst), metadata=meta)
    print(f"{src} ({which}) -> {dst}: {len(sd)} tensors, {json.dumps({k: v for k, v in meta.items() if k != 'names'})}",
          file=sys.stderr)
    return meta


def self_test() -> int:
    """Save yaml-built models the way the Ultralytics trainer does and convert them back."""
    from safetensors import safe_open
    from ultralytics.utils import DEFAULT_CFG_DICT

    def trainer_ckpt(model, ema_too=True):
        ema = deepcopy(model).half()
        return {
            "epoch": 3, "best_fitness": None, "model": None if ema_too else ema, "ema": ema if ema_too else None,
            "updates": 10, "optimizer": None, "train_args": dict(DEFAULT_CFG_DICT), "version": ultralytics.__version__,
        }

    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # (model, expected sppf_cv1_act, force SPPF.cv1.act to Identity, save as 'ema' (else as 'model'))
        cases = [("yolov8n", "silu", False, True), ("yolov8n", "identity", True, True),
                 ("yolo11n", "silu", False, False), ("yolo11n", "identity", True, True), ("yolov8s", "silu", False, True)]
        for name, want_act, force_identity, ema_too in cases:
            torch.manual_seed(0)
            model = DetectionModel(f"{name}.yaml", nc=3, verbose=False)
            model.names = {0: "cat", 1: "dog", 2: "traffic light"}
            # yaml-built v8/11 models get SiLU on SPPF.cv1 in 8.4.190 (legacy SPPF rows); check the reader copes
            # with either activation by forcing Identity (the constructor's act=False) on some cases.
            assert isinstance(model.model[9].cv1.act, torch.nn.SiLU), "8.4.190 yaml-built SPPF.cv1 should be SiLU"
            if force_identity:
                model.model[9].cv1.act = torch.nn.Identity()
            with torch.no_grad():  # make BN stats and counters non-trivial
                for m in model.modules():
                    if isinstance(m, torch.nn.BatchNorm2d):
                        m.running_var.uniform_(0.5, 2.0)
                        m.num_batches_tracked.fill_(123)
            pt, st = tmp / f"{name}.pt", tmp / f"{name}.safetensors"
            torch.save(trainer_ckpt(model, ema_too), pt)
            meta = convert(pt, st)
            ref = {k: (v.half().float() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
            with safe_open(str(st), "pt") as f:
                got_meta = f.metadata()
                keys = set(f.keys())
                same = keys == set(ref) and all(torch.equal(f.get_tensor(k), ref[k]) for k in ref)
                dtypes_ok = all(
                    f.get_tensor(k).dtype == (torch.int64 if k.endswith("num_batches_tracked") else torch.float32)
                    for k in keys
                )
                nbt_ok = all(f.get_tensor(k).shape == () for k in keys if k.endswith("num_batches_tracked"))
            checks = {
                "tensors equal": same,
                "dtypes": dtypes_ok,
                "num_batches_tracked scalar int64": nbt_ok,
                "metadata round trip": got_meta == meta,
                "sppf_cv1_act": meta["sppf_cv1_act"] == want_act,
                "arch/scale/yaml": (meta["arch"], meta["scale"], meta["yaml"]) == (name[:-1], name[-1], f"{name}.yaml"),
                "nc/names": meta["nc"] == "3" and json.loads(meta["names"]) == ["cat", "dog", "traffic light"],
            }
            bad = [k for k, v in checks.items() if not v]
            ok &= not bad
            print(f"self-test {name} sppf={want_act} from={'ema' if ema_too else 'model'}: "
                  f"{'ok' if not bad else 'FAILED ' + ', '.join(bad)}", file=sys.stderr)
    print("self-test passed" if ok else "self-test FAILED", file=sys.stderr)
    return 0 if ok else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?", help="Ultralytics .pt checkpoint (YOLOv8 / YOLO11 detect)")
    ap.add_argument("-o", "--output", help="output .safetensors (default: checkpoint path with .safetensors)")
    ap.add_argument("--self-test", action="store_true", help="convert yaml-built models saved like the trainer")
    args = ap.parse_args(argv)
    if args.self_test:
        return self_test()
    if not args.checkpoint:
        ap.error("a checkpoint path is required (or --self-test)")
    src = Path(args.checkpoint)
    dst = Path(args.output) if args.output else src.with_suffix(".safetensors")
    try:
        convert(src, dst)
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
