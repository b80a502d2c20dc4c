#!/usr/bin/env python3
"""yolo-burn vs PyTorch on the CPU, in one run: YOLOv8n forward and forward+backward per image.

Runs, interleaved for `--rounds` rounds (so machine noise hits every contender alike):
  torch      scripts/bench_torch_forward.py (Ultralytics 8.4.190 YOLOv8n, torch threads = --threads)
  flex       yolo-burn bench --backend cpu      (burn-flex, RAYON_NUM_THREADS = --threads)
  ndarray    yolo-burn bench --backend ndarray  (only if the binary was built with --features ndarray)
and prints a Markdown table of median ms/img and the ratio to torch (>1 means faster than torch).

Example (the command behind docs/benchmarks.md):
  cargo build --release --features ndarray
  python scripts/bench_cpu_forward.py --bin target/release/yolo-burn --threads 2 --imgsz 320 --batch 8
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
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=3, help="timed iterations per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    ap.add_argument("--no-ndarray", action="store_true", help="skip burn-ndarray (slow in backward)")
    args = ap.parse_args()

    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    shape = ["--imgsz", str(args.imgsz), "--batch", str(args.batch), "--iters", str(args.iters)]
    contenders = {
        "torch": [sys.executable, str(HERE / "bench_torch_forward.py"), "--threads", str(args.threads),
                  "--warmup", "1", *shape],
        "flex": [args.bin, "bench", "--json", "--backend", "cpu", "--warmup", "1", *shape],
    }
    if not args.no_ndarray:
        contenders["ndarray"] = [args.bin, "bench", "--json", "--backend", "ndarray", "--warmup", "1", *shape]

    results: dict[str, dict[str, list[float]]] = {k: {"forward": [], "train": []} for k in contenders}
    for r in range(args.rounds):
        for name, cmd in contenders.items():
            try:
                res = run_json(cmd, env)
            except subprocess.CalledProcessError as e:
                print(f"{name} failed: {e.stderr.strip()}", file=sys.stderr)
                continue
            if name == "torch":
                fwd = res["eval_forward"]["ms_per_image_median"]
                train = res["train_forward_backward"]["ms_per_image_median"]
            else:
                fwd, train = res["forward_ms_per_img"], res["train_ms_per_img"]
            results[name]["forward"].append(fwd)
            results[name]["train"].append(train)
            print(f"round {r + 1}: {name:8s} forward {fwd:8.1f} ms/img  forward+backward {train:8.1f} ms/img",
                  file=sys.stderr)

    med = {k: {m: statistics.median(v) for m, v in d.items() if v} for k, d in results.items()}
    torch = med.get("torch", {})
    print(f"YOLOv8n, imgsz {args.imgsz}, batch {args.batch}, {args.threads} threads, "
          f"median of {args.rounds} rounds x {args.iters} iterations\n")
    print("| contender | forward ms/img | vs torch | forward+backward ms/img | vs torch |")
    print("| --- | --- | --- | --- | --- |")
    for name, m in med.items():
        if not m:
            continue
        ratio = lambda k: f"{torch[k] / m[k]:.2f}x" if k in torch else "n/a"  # noqa: E731
        print(f"| {name} | {m['forward']:.1f} | {ratio('forward')} | {m['train']:.1f} | {ratio('train')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
