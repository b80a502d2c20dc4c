#!/usr/bin/env python3
"""Training-loader throughput, yolo-burn vs Ultralytics, on the same images with the same worker count.

Both load coco128's train images at imgsz 640 with Ultralytics' default augmentations (mosaic 1.0, translate 0.1,
scale 0.5, fliplr 0.5, HSV 0.015/0.7/0.4), no image cache, batch 16, and collate batches:

- Ultralytics 8.4.190: `build_yolo_dataset(cfg, ..., mode="train")` + `build_dataloader(..., shuffle=True)`, its
  own `InfiniteDataLoader` with `--workers` worker processes; a batch counts when the main process has it.
- yolo-burn: `yolo-burn bench loader` (worker threads; CHW byte batches and targets, as Ultralytics' collated
  `uint8` batches), run as a subprocess; and again with `--tensor`, which also makes each batch's f32 0..1 tensor
  on the consuming thread (what our trainer does, and what Ultralytics' trainer does after its loader).

Each side runs --warmup untimed epochs, then --epochs timed epochs; the two sides alternate for --rounds rounds and
the median images/s of each is compared. Run it in one go:

    /work/venv-ref/bin/python scripts/bench_loader.py --bin target/release/yolo-burn \\
        --data ../shared/datasets/coco128 --workers 2
"""

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def ultralytics_images_per_s(images: Path, imgsz: int, batch: int, workers: int, warmup: int, epochs: int) -> float:
    from ultralytics.cfg import get_cfg
    from ultralytics.data.build import build_dataloader, build_yolo_dataset
    from ultralytics.utils import DEFAULT_CFG

    cfg = get_cfg(DEFAULT_CFG, overrides={"imgsz": imgsz, "cache": False, "workers": workers, "batch": batch})
    data = {"names": {i: str(i) for i in range(80)}, "nc": 80, "channels": 3}
    dataset = build_yolo_dataset(cfg, str(images), batch, data, mode="train")
    loader = build_dataloader(dataset, batch, workers, shuffle=True)
    for _ in range(warmup):
        for _ in loader:
            pass
    n = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for b in loader:
            n += len(b["im_file"])
    seconds = time.perf_counter() - start
    del loader
    return n / seconds


def ours_images_per_s(binary: str, dataset: Path, imgsz: int, batch: int, workers: int, warmup: int,
                      epochs: int, tensor: bool) -> float:
    out = subprocess.run(
        [binary, "bench", "loader", "--data", str(dataset), "--imgsz", str(imgsz),
         "--batch", str(batch), "--workers", str(workers), "--warmup", str(warmup), "--epochs", str(epochs),
         "--json"] + (["--tensor"] if tensor else []),
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default="target/release/yolo-burn")
    p.add_argument("--data", default="../shared/datasets/coco128", type=Path)
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    images, labels = args.data / "images" / "train2017", args.data / "labels" / "train2017"
    # Ultralytics writes labels/train2017.cache beside the labels: give it a private copy of the labels (and a
    # symlink to the images) so the shared dataset is never written.
    scratch = Path(tempfile.mkdtemp(prefix="bench_loader_"))
    (scratch / "images").mkdir()
    (scratch / "images" / "train2017").symlink_to(images.resolve())
    shutil.copytree(labels, scratch / "labels" / "train2017")
    ul_images = scratch / "images" / "train2017"
    ul, ours, ours_tensor = [], [], []
    for r in range(args.rounds):
        ul.append(ultralytics_images_per_s(ul_images, args.imgsz, args.batch, args.workers, args.warmup, args.epochs))
        for tensor, out in [(False, ours), (True, ours_tensor)]:
            out.append(ours_images_per_s(args.bin, args.data / "coco128.yaml", args.imgsz, args.batch, args.workers,
                                         args.warmup, args.epochs, tensor))
        print(f"round {r}: ultralytics {ul[-1]:.1f} img/s, yolo-burn {ours[-1]:.1f} img/s "
              f"(with f32 tensors {ours_tensor[-1]:.1f})", flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    u, o, t = statistics.median(ul), statistics.median(ours), statistics.median(ours_tensor)
    print(f"median: ultralytics {u:.1f} img/s, yolo-burn {o:.1f} img/s, ratio {o / u:.2f}x; "
          f"with f32 tensors {t:.1f} img/s, {t / u:.2f}x ({args.workers} workers each, so the same ratio per worker)")


if __name__ == "__main__":
    main()
