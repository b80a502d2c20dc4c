#!/usr/bin/env python3
"""Checks the max-pool rule that tests/kernels_pool.rs transcribes against PyTorch itself.

SPPF's nn.MaxPool2d(5, 1, 2) on tie-heavy values (multiples of 1/4 in [-2, 2)), f32, bf16 and f16, with a
gradient: torch's outputs and input gradients against a transcription of the rule our pool implements (-inf
padding; the window's first maximum in row-major order takes the gradient; `v > max or isnan(v)`). The sums of
the transcription are taken in the tensor's type, as torch adds them (ours adds in f32 and rounds once, so only
the chosen elements, not the half-precision sums, are what this compares for f16/bf16).

Usage (needs torch): python scripts/check_pool_torch.py   # prints one line per case, exits 1 on a mismatch
"""

import itertools
import sys

import torch


def rule(x: torch.Tensor, g: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    n, c, h, w = x.shape
    p = k // 2
    xf = x.float()
    out = torch.empty_like(xf)
    dx = torch.zeros_like(x)
    for b, ch, oy, ox in itertools.product(range(n), range(c), range(h), range(w)):
        best, at = float("-inf"), None
        for iy in range(max(oy - p, 0), min(oy + p + 1, h)):
            for ix in range(max(ox - p, 0), min(ox + p + 1, w)):
                v = xf[b, ch, iy, ix].item()
                if v > best or v != v:
                    best, at = v, (iy, ix)
        out[b, ch, oy, ox] = best
        dx[b, ch, at[0], at[1]] += g[b, ch, oy, ox]
    return out, dx


def main() -> int:
    torch.manual_seed(0)
    bad = 0
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        for h, w in [(7, 9), (10, 10), (3, 2), (1, 1)]:
            x = (torch.floor(torch.rand(2, 3, h, w) * 16 - 8) / 4).to(dtype).requires_grad_(True)
            g = torch.rand(2, 3, h, w).to(dtype)
            y = torch.nn.functional.max_pool2d(x, 5, 1, 2)
            (y * g).sum().backward()
            want_y, want_dx = rule(x.detach(), g, 5)
            same = torch.equal(y.detach().float(), want_y) and torch.equal(x.grad, want_dx)
            bad += not same
            print(f"{dtype} {h}x{w}: {'same' if same else 'DIFFERENT'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
