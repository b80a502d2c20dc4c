#!/usr/bin/env python3
"""Make one Ultralytics parity reference case for yolo-burn.

Produces, in --out, the four files described in shared/parity/README.txt:

  TAG.weights.safetensors  full state_dict (Ultralytics key names, float32, num_batches_tracked int64 [])
  TAG.forward.safetensors  eval-mode forward: input, out.0, out.1.boxes, out.1.scores, out.1.feats.K
  TAG.loss.safetensors     train-mode loss inputs/outputs: img, batch_idx, cls, bboxes,
                           pred_boxes, pred_scores, grad_pred_boxes, grad_pred_scores
  TAG.json                 ultralytics, torch, cfg, seed, input_hw, params, forward_keys, loss,
                           loss_x_batch, grad_norm_params_train_mode

The recipe (reverse-engineered from the shipped yolov8n / yolo11n cases, which it reproduces):
  torch.manual_seed(seed); model = DetectionModel(cfg, nc=80)      # Ultralytics' own random init
  g = torch.Generator().manual_seed(seed + 1), then for every BatchNorm2d in model.modules() order:
      weight ~ U(0.5, 1.5), bias ~ N(0, 0.1), running_mean ~ N(0, 0.2), running_var ~ U(0.5, 2.0)
  input = rand(1,3,H,W) from g; img = rand(B,3,H,W) from g (B = 2)
  targets from g: per image n ~ randint(2, 7); per object u = rand(4): w = 0.02 + 0.6 u0, h = 0.02 + 0.6 u1,
      cx = w/2 + u2 (1 - w), cy = h/2 + u3 (1 - h) (centre in double precision); cls ~ randint(0, 80);
      image 0 also gets a tiny fixed box (cls 79, cx 0.9, cy 0.1, w 0.02, h 0.03) after its random ones.
  eval forward under no_grad, then train-mode forward + v8DetectionLoss (default hyp: box 7.5, cls 0.5,
  dfl 1.5), backward of the sum of loss * batch_size.

Needs torch, safetensors and ultralytics==8.4.190 (e.g. a scratch venv; not a dependency of the crate).
Runs offline: YOLO_OFFLINE is set, nothing is plotted or downloaded.

Example:
  python scripts/make_parity_case.py --cfg yolov8s.yaml --seed 2 --hw 288 416 --out /tmp/parity-extra --tag yolov8s
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
from safetensors.torch import save_file  # noqa: E402

import ultralytics  # noqa: E402

ULTRALYTICS_VERSION = "8.4.190"
assert ultralytics.__version__ == ULTRALYTICS_VERSION, (
    f"needs ultralytics=={ULTRALYTICS_VERSION}, found {ultralytics.__version__}"
)

from ultralytics.nn.tasks import DetectionModel  # noqa: E402
from ultralytics.utils import DEFAULT_CFG  # noqa: E402

TINY_BOX = (79, (0.9, 0.1, 0.02, 0.03))  # cls, normalised cx, cy, w, h: an edge case for the assigner


def randomise_bn(model: torch.nn.Module, g: torch.Generator) -> None:
    """Give every BatchNorm2d non-trivial affine parameters and running statistics (in modules() order)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0.0, 0.1, generator=g)
                m.running_mean.normal_(0.0, 0.2, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)


def make_targets(batch: int, g: torch.Generator, nc: int = 80):
    """Random normalised cx,cy,w,h boxes grouped by image, as the Ultralytics collate_fn lays them out."""
    batch_idx, cls, boxes = [], [], []
    for i in range(batch):
        n = int(torch.randint(2, 7, (1,), generator=g).item())
        for _ in range(n):
            u = torch.rand(4, generator=g)
            w = float(0.02 + 0.6 * u[0])  # float32 tensor arithmetic
            h = float(0.02 + 0.6 * u[1])
            # centre uniform in [w/2, 1 - w/2] so the box lies inside the image (Python double arithmetic)
            cx = w / 2 + ((1 - w / 2) - w / 2) * float(u[2])
            cy = h / 2 + ((1 - h / 2) - h / 2) * float(u[3])
            c = int(torch.randint(0, nc, (1,), generator=g).item())
            batch_idx.append(float(i))
            cls.append([float(c)])
            boxes.append([cx, cy, w, h])
        if i == 0:
            c, box = TINY_BOX
            batch_idx.append(0.0)
            cls.append([float(c)])
            boxes.append(list(box))
    return (
        torch.tensor(batch_idx, dtype=torch.float32),
        torch.tensor(cls, dtype=torch.float32),
        torch.tensor(boxes, dtype=torch.float32),
    )


def build_model(cfg: str, seed: int, nc: int = 80) -> tuple[DetectionModel, torch.Generator]:
    torch.manual_seed(seed)
    model = DetectionModel(cfg, nc=nc, verbose=False)
    model.args = DEFAULT_CFG  # loss hyper-parameters box 7.5, cls 0.5, dfl 1.5 as in training
    g = torch.Generator().manual_seed(seed + 1)
    randomise_bn(model, g)
    return model, g


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cfg", required=True, help="Ultralytics model yaml, e.g. yolov8s.yaml or yolo11m.yaml")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--hw", type=int, nargs=2, metavar=("H", "W"), required=True, help="input size, multiples of 32")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--tag", required=True, help="file name prefix, e.g. yolov8s")
    ap.add_argument("--batch", type=int, default=2, help="loss batch size (shipped cases: 2)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    H, W = args.hw
    if H % 32 or W % 32:
        ap.error("--hw must be multiples of 32")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_grad_enabled(True)

    model, g = build_model(args.cfg, args.seed)
    params = sum(p.numel() for p in model.parameters())

    # Weights, before anything can touch the BN running stats.
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(out / f"{args.tag}.weights.safetensors"), metadata={"cfg": args.cfg, "seed": str(args.seed)})

    x = torch.rand(1, 3, H, W, generator=g)
    img = torch.rand(args.batch, 3, H, W, generator=g)
    batch_idx, cls, bboxes = make_targets(args.batch, g)

    # Eval-mode forward.
    model.eval()
    with torch.no_grad():
        y, preds = model(x)
    fwd = {"input": x, "out.0": y, "out.1.boxes": preds["boxes"], "out.1.scores": preds["scores"]}
    for k, f in enumerate(preds["feats"]):
        fwd[f"out.1.feats.{k}"] = f
    fwd = {k: v.detach().contiguous() for k, v in fwd.items()}
    save_file(fwd, str(out / f"{args.tag}.forward.safetensors"))

    # Train-mode forward, loss and backward.
    model.train()
    model.zero_grad(set_to_none=True)
    preds = model(img)
    preds["boxes"].retain_grad()
    preds["scores"].retain_grad()
    batch = {"img": img, "batch_idx": batch_idx, "cls": cls, "bboxes": bboxes}
    loss_x_batch, items = model.loss(batch, preds)
    loss_x_batch.sum().backward()
    # L2 norm accumulated in float64 (a float32 sum over millions of terms drifts by ~1e-4), reported as float32
    grads = [p.grad.detach().double().flatten() for p in model.parameters() if p.grad is not None]
    grad_norm = float(torch.cat(grads).norm().float())

    lo = {
        "img": img,
        "batch_idx": batch_idx,
        "cls": cls,
        "bboxes": bboxes,
        "pred_boxes": preds["boxes"].detach(),
        "pred_scores": preds["scores"].detach(),
        "grad_pred_boxes": preds["boxes"].grad.detach(),
        "grad_pred_scores": preds["scores"].grad.detach(),
    }
    save_file({k: v.contiguous() for k, v in lo.items()}, str(out / f"{args.tag}.loss.safetensors"))

    meta = {
        "ultralytics": ultralytics.__version__,
        "torch": torch.__version__,
        "cfg": args.cfg,
        "seed": args.seed,
        "input_hw": [H, W],
        "params": params,
        "forward_keys": {k: list(v.shape) for k, v in fwd.items()},
        "loss": {k: float(v) for k, v in items.items()},
        "loss_x_batch": [float(v) for v in loss_x_batch.detach()],
        "grad_norm_params_train_mode": grad_norm,
    }
    (out / f"{args.tag}.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {args.tag}.{{weights,forward,loss}}.safetensors and {args.tag}.json to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
