#!/usr/bin/env python3
"""yolo-burn vs PyTorch on the CPU, in one run: YOLOv8n forward and forward+backward per image.

For each input size and thread count, runs, interleaved for `--rounds` rounds (so machine noise hits every
contender alike):
  torch      scripts/bench_torch_forward.py (Ultralytics 8.4.190 YOLOv8n, torch threads = the thread count)
  yolo-burn  yolo-burn bench --backend cpu --kernels fast (burn-flex with our conv blocks, RAYON_NUM_THREADS)
  stock      yolo-burn bench --kernels burn (with --stock; Burn's own conv, BatchNorm and SiLU)
  ndarray    yolo-burn bench --backend ndarray (with --ndarray; the binary must have --features ndarray)
and prints a Markdown table of median ms/img and the ratio to torch (>1 means faster than torch).

Example (the command behind docs/benchmarks.md):
  cargo build --release
  python scripts/bench_cpu_forward.py --bin target/release/yolo-burn --threads 1 2 --imgsz 320 640 --stock
  python scripts/bench_cpu_forward.py --threads 1 2 --imgsz 320 640 --precision fp32 bf16 fp16 --torch-precision fp32 bf16
Needs torch and ultralytics==8.4.190 for the torch side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_json(cmd: list[str], env: dict[str, str]) -> dict:
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release/yolo-burn", help="yolo-burn release binary")
    ap.add_argument("--threads", type=int, nargs="+", default=[2], help="thread counts to measure")
    ap.add_argument("--imgsz", type=int, nargs="+", default=[320], help="input sizes to measure")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=3, help="timed iterations per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    ap.add_argument("--stock", action="store_true",
                    help="also burn-flex with Burn's stock conv blocks (--kernels burn); slow, so only at the "
                         "smallest size and the most threads")
    ap.add_argument("--ndarray", action="store_true", help="also burn-ndarray (needs --features ndarray; slow)")
    ap.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16", "fp16"],
                    help="precisions to measure on both sides (torch: autocast); ratios are against torch "
                         "in the same precision, and each half row also against our own fp32")
    ap.add_argument("--torch-precision", nargs="+", default=None, choices=["fp32", "bf16", "fp16"],
                    help="precisions to measure torch in (default: every --precision)")
    args = ap.parse_args()
    torch_precisions = args.torch_precision if args.torch_precision is not None else args.precision

    print("| imgsz | threads | contender | forward ms/img | vs torch (same precision) | forward+backward ms/img "
          "| vs torch (same precision) | vs yolo-burn fp32 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for imgsz in args.imgsz:
        for threads in args.threads:
            env = dict(os.environ, RAYON_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
            shape = ["--imgsz", str(imgsz), "--batch", str(args.batch), "--iters", str(args.iters)]
            ours = [args.bin, "bench", "--json", "--warmup", "1", *shape]
            contenders = {}
            for p in args.precision:
                tag = "" if p == "fp32" else f" {p}"
                if p in torch_precisions:
                    contenders[f"torch{tag}"] = [sys.executable, str(HERE / "bench_torch_forward.py"), "--threads",
                                                 str(threads), "--warmup", "1", "--precision", p, *shape]
                contenders[f"yolo-burn{tag}"] = [*ours, "--backend", "cpu", "--kernels", "fast", "--precision", p]
            if args.stock and imgsz == min(args.imgsz) and threads == max(args.threads):
                contenders["burn-flex, stock conv blocks"] = [*ours, "--backend", "cpu", "--kernels", "burn"]
            if args.ndarray and imgsz == min(args.imgsz) and threads == max(args.threads):
                contenders["burn-ndarray"] = [*ours, "--backend", "ndarray", "--kernels", "burn"]
            results: dict[str, dict[str, list[float]]] = {k: {"forward": [], "train": []} for k in contenders}
            for r in range(args.rounds):
                for name, cmd in contenders.items():
                    try:
                        res = run_json(cmd, env)
                    except subprocess.CalledProcessError as e:
                        print(f"{name} failed: {e.stderr.strip()}", file=sys.stderr)
                        continue
                    if name.startswith("torch"):
                        fwd = res["eval_forward"]["ms_per_image_median"]
                        train = res["train_forward_backward"]["ms_per_image_median"]
                    else:
                        fwd, train = res["forward_ms_per_img"], res["train_ms_per_img"]
                    results[name]["forward"].append(fwd)
                    results[name]["train"].append(train)
                    print(f"imgsz {imgsz} threads {threads} round {r + 1}: {name:32s} forward {fwd:8.1f} ms/img  "
                          f"forward+backward {train:8.1f} ms/img", file=sys.stderr)
            med = {k: {m: statistics.median(v) for m, v in d.items() if v} for k, d in results.items()}
            ours32 = med.get("yolo-burn", {})
            for name, m in med.items():
                if not m:
                    continue
                tag = name.split(" ", 1)[1] if name.startswith(("torch ", "yolo-burn ")) else ""
                torch = med.get(f"torch {tag}" if tag else "torch", {})
                ratio = lambda ref, k: f"{ref[k] / m[k]:.2f}x" if k in ref else "n/a"  # noqa: E731
                print(f"| {imgsz} | {threads} | {name} | {m['forward']:.1f} | {ratio(torch, 'forward')} | "
                      f"{m['train']:.1f} | {ratio(torch, 'train')} | {ratio(ours32, 'train')} |", flush=True)
    print(f"\nYOLOv8n, batch {args.batch}, median of {args.rounds} rounds x {args.iters} iterations; "
          "vs torch > 1 means faster than torch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
