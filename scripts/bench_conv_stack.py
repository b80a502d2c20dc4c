#!/usr/bin/env python3
"""Issue #6's conv stack, yolo-burn vs PyTorch on the CPU in one run: forward GFLOP/s and forward+backward img/s.

13 Conv blocks (Conv2d without bias -> BatchNorm2d(eps 1e-3) -> SiLU) with YOLOv8n's backbone widths
3 -> 16 -> ... -> 256 (the STACK table in src/bench/conv_stack.rs), batch 8, random input.

Contenders, interleaved for --rounds rounds so machine noise hits all alike:
  torch fp32, torch bf16 (torch.autocast("cpu", bfloat16)), torch fp16 (autocast float16)
  yolo-burn bench conv --precision {fp32,fp16,bf16} --kernels fast   (our kernels on burn-flex)
  yolo-burn bench conv --precision {fp32,fp16} --kernels burn        (Burn's stock modules; with --stock)
Prints a Markdown table of medians; "vs torch fp32" > 1 means faster than PyTorch's fp32.

Example (the command behind docs/benchmarks.md):
  cargo build --release
  python scripts/bench_conv_stack.py --bin target/release/yolo-burn --threads 2 --stock
Needs torch for the torch side (no ultralytics).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

STACK = [(3, 16, 3, 2), (16, 32, 3, 2), (32, 32, 3, 1), (32, 64, 3, 2), (64, 64, 3, 1), (64, 64, 3, 1),
         (64, 128, 3, 2), (128, 128, 3, 1), (128, 128, 3, 1), (128, 256, 3, 2), (256, 256, 3, 1),
         (256, 256, 3, 1), (256, 256, 1, 1)]


def macs(imgsz: int) -> float:
    size, total = imgsz, 0.0
    for c1, c2, k, s in STACK:
        size = (size + 2 * (k // 2) - k) // s + 1
        total += size * size * c2 * c1 * k * k
    return total


def torch_child(args) -> None:
    """Runs in a subprocess: one torch measurement, one JSON line."""
    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    layers = []
    for c1, c2, k, s in STACK:
        layers += [nn.Conv2d(c1, c2, k, s, k // 2, bias=False), nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03),
                   nn.SiLU()]
    model = nn.Sequential(*layers)
    x = torch.rand(args.batch, 3, args.imgsz, args.imgsz)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]

    def run(train: bool):
        model.train(train)
        ctx = torch.autocast("cpu", dtype=dtype) if dtype else torch.autocast("cpu", enabled=False)
        if train:
            with ctx:
                y = model(x)
            y.float().sum().backward()
            for p in model.parameters():
                p.grad = None
        else:
            with torch.no_grad(), ctx:
                model(x).float().sum().item()

    def timed(train: bool) -> float:
        for _ in range(args.warmup):
            run(train)
        t0 = time.perf_counter()
        for _ in range(args.iters):
            run(train)
        return (time.perf_counter() - t0) / args.iters

    fwd, train = timed(False), timed(True)
    m = macs(args.imgsz)
    print(json.dumps({"forward_gflops": 2 * m * args.batch / fwd / 1e9, "forward_img_per_s": args.batch / fwd,
                      "train_img_per_s": args.batch / train}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release/yolo-burn")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--stock", action="store_true", help="also Burn's stock conv blocks (slow)")
    ap.add_argument("--skip-torch-fp16", action="store_true",
                    help="leave out torch's fp16 autocast (0.04x of its fp32 on CPUs without AVX512-FP16; slow)")
    ap.add_argument("--torch-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_child:
        torch_child(args)
        return 0

    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    common = ["--imgsz", str(args.imgsz), "--batch", str(args.batch), "--iters", str(args.iters),
              "--warmup", str(args.warmup)]
    contenders = {}
    for p in ["fp32", "bf16"] + ([] if args.skip_torch_fp16 else ["fp16"]):
        contenders[f"torch {p}"] = [sys.executable, __file__, "--torch-child", "--precision", p,
                                    "--threads", str(args.threads), *common]
    for p in ["fp32", "bf16", "fp16"]:
        contenders[f"yolo-burn {p}"] = [args.bin, "bench", "conv", "--json", "--precision", p, "--kernels", "fast",
                                        *common]
    if args.stock:
        for p in ["fp32", "fp16"]:
            contenders[f"burn-flex stock {p}"] = [args.bin, "bench", "conv", "--json", "--precision", p,
                                                  "--kernels", "burn", *common]
    results = {k: {"forward_gflops": [], "train_img_per_s": []} for k in contenders}
    for r in range(args.rounds):
        for name, cmd in contenders.items():
            try:
                out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
            except subprocess.CalledProcessError as e:
                print(f"{name} failed: {e.stderr.strip()[-500:]}", file=sys.stderr)
                continue
            res = json.loads(out.strip().splitlines()[-1])
            for k in results[name]:
                results[name][k].append(res[k])
            print(f"round {r + 1}: {name:24s} forward {res['forward_gflops']:7.1f} GFLOP/s  "
                  f"train {res['train_img_per_s']:6.2f} img/s", file=sys.stderr)
    med = {k: {m: statistics.median(v) for m, v in d.items() if v} for k, d in results.items()}
    base = med.get("torch fp32", {})
    print(f"conv stack ({macs(args.imgsz) / 1e9:.3f} GMAC/img), imgsz {args.imgsz}, batch {args.batch}, "
          f"{args.threads} threads, median of {args.rounds} rounds x {args.iters} iterations\n")
    print("| contender | forward GFLOP/s | vs torch fp32 | vs own fp32 | forward+backward img/s | vs torch fp32 "
          "| vs own fp32 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, m in med.items():
        if not m:
            continue
        own = med.get(name.rsplit(" ", 1)[0] + " fp32", {})
        ratio = lambda ref, k: f"{m[k] / ref[k]:.2f}x" if k in ref else "n/a"  # noqa: E731
        print(f"| {name} | {m['forward_gflops']:.1f} | {ratio(base, 'forward_gflops')} | "
              f"{ratio(own, 'forward_gflops')} | {m['train_img_per_s']:.2f} | {ratio(base, 'train_img_per_s')} | "
              f"{ratio(own, 'train_img_per_s')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
