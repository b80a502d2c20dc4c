"""Reference trajectories of PyTorch's dynamic loss scaler (torch.amp.GradScaler), for our loss scaler's tests.

Runs the real `torch.amp.GradScaler("cpu", ...)` on a tiny model (one float32 parameter tensor of four values,
plain SGD) through scripted sequences of clean and overflowing steps, and writes, after every step, the scale
(`scaler.get_scale()`), the growth tracker (`scaler.state_dict()["_growth_tracker"]`) and whether the optimizer
step was skipped (the parameter compared before/after) to a small JSON file.

Each step does `loss = (p * x).sum(); scaler.scale(loss).backward()`; on a step scripted as an overflow one
gradient element is then overwritten with +inf or NaN (both kinds are used); then `scaler.step(opt)`,
`scaler.update()`, `opt.zero_grad()`. Clean steps are checked to have finite gradients, so the `overflow` list is
exactly what the scaler saw.

Cases:
- `interval3`: init 65536, growth 2, backoff 0.5, interval 3; runs of 1..7 clean steps between single and double
  overflows (inf and NaN).
- `growth4_backoff0.25_interval5`: init 1024, growth 4, backoff 0.25, interval 5; another mixed pattern.
- `tiny_scale`: init 2, growth 2, backoff 0.5, interval 1; 20 overflows (scale falls to 2**-19, there is no lower
  clamp), then 10 clean steps.
- `large_scale`: init 2**24, growth 2, interval 2; 30 clean steps (scale reaches 2**39, exact in float32).
- `f32_max`: init 2**125, growth 2, interval 2; clean steps past the float32 limit: torch refuses a growth whose
  result is not finite, so the scale stays at 2**127 (the tracker still resets to 0), then an overflow and more
  clean steps.

Generated with torch 2.15.0 (CPU wheel from PyPI, `pip install torch`). Run it from the repository root:
    python scripts/make_grad_scaler_case.py -o tests/data/grad_scaler_trajectory.json
"""

from __future__ import annotations

import argparse
import json
import math

import torch

X = [0.5, -0.25, 0.375, 0.125]  # |x| <= 0.5, so even a 2**127 scale gives finite gradients
P0 = [1.0, -2.0, 0.5, 3.0]
LR = 0.1


def pattern(*tokens: str) -> list[str | None]:
    """Token "c<n>": n clean steps; "i": one +inf overflow; "n": one NaN overflow."""
    steps: list[str | None] = []
    for tok in tokens:
        if tok.startswith("c"):
            steps += [None] * int(tok[1:])
        elif tok == "i":
            steps.append("inf")
        elif tok == "n":
            steps.append("nan")
        else:
            raise ValueError(tok)
    return steps


CASES = [
    dict(
        name="interval3",
        init_scale=65536.0,
        growth_factor=2.0,
        backoff_factor=0.5,
        growth_interval=3,
        steps=pattern("c1", "i", "c3", "c4", "i", "i", "c2", "n", "c7", "i", "c5", "n", "i", "c6", "i", "c3"),
    ),
    dict(
        name="growth4_backoff0.25_interval5",
        init_scale=1024.0,
        growth_factor=4.0,
        backoff_factor=0.25,
        growth_interval=5,
        steps=pattern("c4", "i", "c5", "c6", "n", "n", "c7", "i", "c1", "i", "c3", "n", "c5", "c1"),
    ),
    dict(
        name="tiny_scale",
        init_scale=2.0,
        growth_factor=2.0,
        backoff_factor=0.5,
        growth_interval=1,
        steps=pattern(*(["i", "n"] * 10), "c10"),
    ),
    dict(
        name="large_scale",
        init_scale=float(2**24),
        growth_factor=2.0,
        backoff_factor=0.5,
        growth_interval=2,
        steps=pattern("c30"),
    ),
    dict(
        name="f32_max",
        init_scale=float(2**125),
        growth_factor=2.0,
        backoff_factor=0.5,
        growth_interval=2,
        steps=pattern("c6", "i", "c6"),
    ),
]


def run_case(case: dict) -> dict:
    p = torch.nn.Parameter(torch.tensor(P0, dtype=torch.float32))
    x = torch.tensor(X, dtype=torch.float32)
    opt = torch.optim.SGD([p], lr=LR)
    scaler = torch.amp.GradScaler(
        "cpu",
        init_scale=case["init_scale"],
        growth_factor=case["growth_factor"],
        backoff_factor=case["backoff_factor"],
        growth_interval=case["growth_interval"],
    )
    overflow, scale_after, tracker_after, skipped = [], [], [], []
    for kind in case["steps"]:
        loss = (p * x).sum()
        scaler.scale(loss).backward()
        if kind is None:
            assert bool(torch.isfinite(p.grad).all()), "a clean step produced non-finite gradients"
        else:
            p.grad[0] = math.inf if kind == "inf" else math.nan
        before = p.detach().clone()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        assert scaler._scale.dtype == torch.float32
        overflow.append(kind is not None)
        scale_after.append(float(scaler.get_scale()))
        tracker_after.append(int(scaler.state_dict()["_growth_tracker"]))
        skipped.append(bool(torch.equal(before, p.detach())))
    return dict(
        name=case["name"],
        init_scale=case["init_scale"],
        growth_factor=case["growth_factor"],
        backoff_factor=case["backoff_factor"],
        growth_interval=case["growth_interval"],
        overflow=overflow,
        scale_after=scale_after,
        growth_tracker_after=tracker_after,
        step_skipped=skipped,
    )


def dump(doc: dict) -> str:
    """Pretty but small: one line per key, arrays kept on one line. json.dumps writes floats with repr."""
    lines = ["{", f'  "source": {json.dumps(doc["source"])},', '  "cases": [']
    for i, case in enumerate(doc["cases"]):
        fields = [f"      {json.dumps(k)}: {json.dumps(v)}" for k, v in case.items()]
        lines.append("    {")
        lines.append(",\n".join(fields))
        lines.append("    }" + ("," if i + 1 < len(doc["cases"]) else ""))
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default="tests/data/grad_scaler_trajectory.json")
    args = ap.parse_args()
    version = torch.__version__.split("+")[0]
    doc = {"source": f"torch {version} torch.amp.GradScaler", "cases": [run_case(c) for c in CASES]}
    text = dump(doc)
    assert json.loads(text) == doc
    with open(args.out, "w") as f:
        f.write(text)
    for case in doc["cases"]:
        print(case["name"], len(case["overflow"]), "steps; first scales:", case["scale_after"][:10])


if __name__ == "__main__":
    main()
