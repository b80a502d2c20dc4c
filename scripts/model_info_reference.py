#!/usr/bin/env python3
"""Write tests/data/ultralytics_model_info.json: Ultralytics' own size figures for YOLOv8 / YOLO11 detect models.

For each of yolov8{n,s,m,l,x} and yolo11{n,s,m,l,x} built from the Ultralytics yaml with nc=80 (random init,
not fused, as YOLO("yolov8n.yaml").info() reports them):

  params             sum(p.numel() for p in model.parameters()), DFL conv included (model_info's "parameters")
  gradients          parameters with requires_grad (DFL conv excluded; model_info's "gradients")
  layers             model_info's layer count (leaf modules)
  gflops_640         ultralytics.utils.torch_utils.get_flops(model, 640), full precision (info() prints %.1f)
  state_dict_keys    len(model.state_dict()) without the BatchNorm num_batches_tracked buffers
  state_dict_keys_with_num_batches_tracked
                     len(model.state_dict())
  fused_params, fused_gflops_640
                     the same after model.fuse() (Conv+BN folded), which is what Ultralytics' docs tables
                     and the info() of a pretrained checkpoint loaded for inference show

Needs torch and ultralytics==8.4.190 (and ultralytics-thop, a dependency of ultralytics); runs offline.

Usage:
  python scripts/model_info_reference.py [--out tests/data/ultralytics_model_info.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

import torch  # noqa: E402

import ultralytics  # noqa: E402

ULTRALYTICS_VERSION = "8.4.190"
assert ultralytics.__version__ == ULTRALYTICS_VERSION, (
    f"needs ultralytics=={ULTRALYTICS_VERSION}, found {ultralytics.__version__}"
)

from ultralytics.nn.tasks import DetectionModel  # noqa: E402
from ultralytics.utils.torch_utils import get_flops, get_num_params, model_info  # noqa: E402

MODELS = [f"{arch}{s}" for arch in ("yolov8", "yolo11") for s in "nsmlx"]
IMGSZ = 640


def info(name: str) -> dict:
    torch.manual_seed(0)
    model = DetectionModel(f"{name}.yaml", nc=80, verbose=False)
    sd = model.state_dict()
    n_l, n_p, n_g, flops = model_info(model, verbose=True, imgsz=IMGSZ)  # what model.info() returns
    rec = {
        "yaml": f"{name}.yaml",
        "nc": 80,
        "params": n_p,
        "gradients": n_g,
        "layers": n_l,
        "gflops_640": flops,
        "state_dict_keys": sum(1 for k in sd if not k.endswith("num_batches_tracked")),
        "state_dict_keys_with_num_batches_tracked": len(sd),
    }
    assert rec["params"] == sum(p.numel() for p in model.parameters())
    assert rec["gflops_640"] == get_flops(model, IMGSZ) > 0, "get_flops returned 0 (is ultralytics-thop installed?)"
    model.eval()
    model.fuse(verbose=False)
    rec["fused_params"] = get_num_params(model)
    rec["fused_gflops_640"] = get_flops(model, IMGSZ)
    return rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_out = Path(__file__).resolve().parent.parent / "tests" / "data" / "ultralytics_model_info.json"
    ap.add_argument("--out", default=str(default_out), help=f"output JSON (default: {default_out})")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    models = {}
    for name in MODELS:
        models[name] = info(name)
        r = models[name]
        print(f"{name}: {r['params']:,} params, {r['gflops_640']:.4f} GFLOPs, {r['state_dict_keys']} keys", file=sys.stderr)
    doc = {
        "ultralytics": ultralytics.__version__,
        "torch": torch.__version__,
        "imgsz": IMGSZ,
        "note": "Built from the yaml with nc=80, not fused unless the key says fused. params = sum of numel over "
        "model.parameters() (DFL conv included); gflops_640 = ultralytics.utils.torch_utils.get_flops(model, 640).",
        "models": models,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
