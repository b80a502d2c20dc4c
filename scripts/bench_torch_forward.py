#!/usr/bin/env python3
"""PyTorch CPU baseline for yolo-burn's speed: YOLOv8n (Ultralytics 8.4.190) forward and forward+backward.

Builds YOLOv8n from yolov8n.yaml (random init, nc=80, not fused), feeds a random batch and times:
  eval   model.eval(), torch.no_grad(): the inference forward (includes Detect's box decoding)
  train  model.train(): forward, then backward of the sum of the raw head outputs (boxes + scores), standing in
         for the loss; gradients are cleared (set to None) before each iteration, no optimizer step
Prints one JSON line on stdout: torch/ultralytics versions, threads, shape, and for each mode ms per image and
images/s from the mean iteration time, the same from the median (robust to a busy machine), and mean / median / min
ms per batch.

Needs torch and ultralytics==8.4.190; runs offline. Example (the numbers yolo-burn's CPU benches compare with):
  python scripts/bench_torch_forward.py --threads 2 --imgsz 320 --batch 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

import torch  # noqa: E402

import ultralytics  # noqa: E402

ULTRALYTICS_VERSION = "8.4.190"
assert ultralytics.__version__ == ULTRALYTICS_VERSION, (
    f"needs ultralytics=={ULTRALYTICS_VERSION}, found {ultralytics.__version__}"
)

from ultralytics.nn.tasks import DetectionModel  # noqa: E402


def timed(fn, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def summary(times: list[float], batch: int) -> dict:
    mean, med = statistics.fmean(times), statistics.median(times)
    return {
        "ms_per_image": round(mean * 1e3 / batch, 3),
        "images_per_s": round(batch / mean, 3),
        "ms_per_image_median": round(med * 1e3 / batch, 3),
        "images_per_s_median": round(batch / med, 3),
        "ms_per_batch_mean": round(mean * 1e3, 3),
        "ms_per_batch_median": round(med * 1e3, 3),
        "ms_per_batch_min": round(min(times) * 1e3, 3),
        "iters": len(times),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--imgsz", type=int, default=320, help="square input size, multiple of 32 (default 320)")
    ap.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    ap.add_argument("--cfg", default="yolov8n.yaml", help="model yaml (default yolov8n.yaml)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed iterations per mode (default 2)")
    ap.add_argument("--iters", type=int, default=5, help="timed iterations per mode (default 5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                    help="fp32, or torch.autocast('cpu') in bf16/fp16 (what AMP training runs)")
    args = ap.parse_args(argv)
    if args.imgsz % 32:
        ap.error("--imgsz must be a multiple of 32")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = DetectionModel(args.cfg, nc=80, verbose=False)
    x = torch.rand(args.batch, 3, args.imgsz, args.imgsz)

    model.eval()
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)

    def autocast():
        return torch.autocast("cpu", dtype=half, enabled=half is not None)

    def eval_step():
        with torch.no_grad(), autocast():
            model(x)

    eval_times = timed(eval_step, args.warmup, args.iters)

    model.train()

    def train_step():
        model.zero_grad(set_to_none=True)
        with autocast():
            preds = model(x)
        (preds["boxes"].float().sum() + preds["scores"].float().sum()).backward()

    train_times = timed(train_step, args.warmup, args.iters)

    result = {
        "bench": "torch_cpu_forward",
        "model": args.cfg,
        "torch": torch.__version__,
        "ultralytics": ultralytics.__version__,
        "threads": torch.get_num_threads(),
        "precision": args.precision,
        "batch": args.batch,
        "imgsz": args.imgsz,
        "params": sum(p.numel() for p in model.parameters()),
        "cpu": platform.processor() or platform.machine(),
        "os_cpu_count": os.cpu_count(),
        "eval_forward": summary(eval_times, args.batch),
        "train_forward_backward": summary(train_times, args.batch),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
