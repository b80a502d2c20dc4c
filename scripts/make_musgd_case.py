"""Reference steps of Ultralytics' MuSGD optimizer, for tests/musgd_parity.rs.

Ultralytics 8.4.190 picks MuSGD (Muon + SGD) for `optimizer=auto` above 10,000 iterations. This script runs its
`MuSGD` class on a few fixed tensors shaped like YOLO parameters (conv weights that Muon orthogonalises, a
BatchNorm weight and a bias that get plain SGD), with fixed gradients, for three steps, and writes every
parameter after every step to a safetensors file.

Two references are written:
- `*.f32`: Ultralytics' code with its Newton-Schulz iteration run in float32 (the `.bfloat16()` cast patched
  out). yolo-burn computes in float32, so this one must match to float32 rounding.
- `*.bf16`: Ultralytics' code unchanged (Newton-Schulz in bfloat16, a GPU-throughput choice), to show how far
  the bfloat16 rounding alone moves the result.

Usage (needs torch; ultralytics itself is optional):
    pip download --no-deps ultralytics==8.4.190 && unzip ultralytics-8.4.190-*.whl -d ul
    python scripts/make_musgd_case.py --muon-file ul/ultralytics/optim/muon.py --out tests/data/musgd.safetensors
"""

from __future__ import annotations

import argparse
import importlib.util
import json

import torch
from safetensors.torch import save_file

# name, shape, group ("muon" for 2-D/4-D weights, else "bn" or "bias"), boosted (Detect's cv3: lr x3)
PARAMS = [
    ("conv_wide", (8, 4, 3, 3), "muon", False),  # 8 rows < 36 columns
    ("conv_tall", (24, 6, 1, 1), "muon", False),  # 24 rows > 6 columns: Newton-Schulz runs transposed
    ("conv_cls", (6, 8, 1, 2), "muon", True),  # kh/kw = 1/2; a cv3 weight with lr x3
    ("bn_weight", (8,), "bn", False),
    ("bias", (8,), "bias", False),
    ("cls_bias", (6,), "bias", True),
]
STEPS = 3
LR, MOMENTUM, DECAY = 0.01, 0.9, 5e-4
MUON, SGD = 0.2, 1.0  # build_optimizer's partial(MuSGD, muon=0.2, sgd=1.0)


def load_muon(path: str | None):
    if path is None:
        from ultralytics.optim import muon  # noqa: PLC0415

        return muon
    spec = importlib.util.spec_from_file_location("muon", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(muon, f32: bool) -> dict[str, torch.Tensor]:
    if f32:
        original = muon.zeropower_via_newtonschulz5

        def ns_f32(G, eps=1e-7):
            # the same iteration with the bfloat16 cast replaced by float32
            X = G.reshape(-1, G.size(-2), G.size(-1)).float()
            X /= X.norm(dim=(-2, -1), keepdim=True) + eps
            if G.size(-2) > G.size(-1):
                X = X.transpose(-2, -1)
            a, b, c = 3.4445, -4.7750, 2.0315
            for _ in range(5):
                A = X @ X.transpose(-2, -1)
                B = torch.baddbmm(A, A, A, beta=b, alpha=c)
                X = torch.baddbmm(X, B, X, beta=a)
            if G.size(-2) > G.size(-1):
                X = X.transpose(-2, -1)
            return X.reshape(G.shape)

        muon.zeropower_via_newtonschulz5 = ns_f32
    gen = torch.Generator().manual_seed(0)
    out: dict[str, torch.Tensor] = {}
    params = {}
    for name, shape, _, _ in PARAMS:
        p = torch.randn(shape, generator=gen) * 0.1
        params[name] = torch.nn.Parameter(p.clone())
        out[f"{name}.init"] = p.clone()
    grads = {
        (name, step): torch.randn(shape, generator=gen) * 0.05
        for step in range(STEPS)
        for name, shape, _, _ in PARAMS
    }
    for (name, step), g in grads.items():
        out[f"{name}.grad{step}"] = g
    # build_optimizer's groups: weight decay on muon (and weight) groups only; each group split into the
    # boosted cv3 params (lr x3) and the rest.
    groups = []
    for kind in ("bn", "bias", "muon"):
        for boosted in (True, False):
            ps = [params[n] for n, _, k, b in PARAMS if k == kind and b == boosted]
            if not ps:
                continue
            groups.append(
                {
                    "params": ps,
                    "lr": LR * (3 if boosted else 1),
                    "momentum": MOMENTUM,
                    "nesterov": True,
                    "weight_decay": DECAY if kind == "muon" else 0.0,
                    "use_muon": kind == "muon",
                }
            )
    opt = muon.MuSGD(groups, muon=MUON, sgd=SGD)
    for step in range(STEPS):
        for name, _, _, _ in PARAMS:
            params[name].grad = grads[(name, step)].clone()
        opt.step()
        for name, _, _, _ in PARAMS:
            out[f"{name}.step{step}"] = params[name].detach().clone()
    if f32:
        muon.zeropower_via_newtonschulz5 = original
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--muon-file", help="ultralytics/optim/muon.py, when ultralytics is not installed")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    muon = load_muon(args.muon_file)
    tensors = {}
    for suffix, f32 in (("f32", True), ("bf16", False)):
        for k, v in run(muon, f32).items():
            tensors[f"{suffix}.{k}"] = v.contiguous().float()
    meta = {
        "params": json.dumps([[n, list(s), k, b] for n, s, k, b in PARAMS]),
        "steps": str(STEPS),
        "lr": str(LR),
        "momentum": str(MOMENTUM),
        "weight_decay": str(DECAY),
        "source": "ultralytics 8.4.190 ultralytics/optim/muon.py MuSGD(muon=0.2, sgd=1.0)",
        "torch": torch.__version__,
    }
    save_file(tensors, args.out, metadata=meta)
    print(f"wrote {len(tensors)} tensors to {args.out}")


if __name__ == "__main__":
    main()
