#!/usr/bin/env python3
"""Reference cases for tests/numpy_argsort.rs: the order numpy 2.4.6's default `np.argsort` gives float64 arrays
with many ties, on each of its three CPU paths.

Why: Ultralytics' `BaseDataset.set_rectangle` sorts validation images with `ar.argsort()` (h/w, float64). That
sort is unstable and its tie order depends on the CPU: numpy 2.4.6 dispatches float64 argsort to x86-simd-sort's
`avx512_argsort` (target X86_V4) or `avx2_argsort` (target X86_V3), else runs its own introsort `aquicksort_`.
Images with equal aspect ratios (many 640x480) land in different batches, so yolo-burn emulates all three
(src/data/loader/numpy_argsort.rs) and this file pins each one down.

Each path runs in a child process with `NPY_DISABLE_CPU_FEATURES` set, which numpy reads at import; the child
checks that the dispatch features are then what the path needs. The AVX-512 path needs a CPU with AVX-512
(x86-64-v4); the others run anywhere on x86-64 that has AVX2.

Most inputs are not stored: both sides regenerate them from (kind, n, seed) with splitmix64 (`values` below), as
ratios of small integers so that Python's `h / w` and Rust's `h as f64 / w as f64` give the same bits. The
adversarial inputs that reach the heapsort fallbacks (`killer_ranks`) are stored as ranks.
Permutations of up to FULL_MAX elements are stored in full, longer ones as the SHA-256 of the permutation as
little-endian u64s.

    pip install numpy==2.4.6
    python scripts/numpy_argsort_reference.py           # writes tests/data/numpy_argsort.json

`--images DIR --out FILE` writes one case instead: the images of DIR in Ultralytics' order (sorted names), their
sizes as Ultralytics reads them (PIL and `exif_size`, as `verify_image_label` does) and numpy's order of their
h/w, as `set_rectangle` sorts them. The Rust test then also checks `rect_plan` on those sizes:

    NUMPY_ARGSORT_CASES=FILE cargo test --test numpy_argsort
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "numpy_argsort.json")
NUMPY = "2.4.6"
# numpy v2.4.6's numpy/_core/src/npysort/x86-simd-sort submodule.
X86_SIMD_SORT = "5adb33411f3cea8bdbafa9d91bd75bc4bf19c7dd"
FULL_MAX = 300
MASK = (1 << 64) - 1

# Path name -> NPY_DISABLE_CPU_FEATURES, and the dispatch features the child must then see as (X86_V3, X86_V4).
PATHS = {
    "introsort": ("X86_V3 X86_V4 AVX512_ICL AVX512_SPR", (False, False)),
    "avx2": ("X86_V4 AVX512_ICL AVX512_SPR", (True, False)),
    "avx512": ("", (True, True)),
}

# (w, h) of common image sizes, repeated to weight them: their h/w ratios tie a lot, as in real datasets.
COMMON_WH = [
    (640, 480), (640, 480), (640, 480), (640, 427), (640, 427), (427, 640), (480, 640), (640, 640),
    (500, 375), (375, 500), (500, 333), (1280, 720), (1920, 1080), (640, 360), (612, 612), (640, 424),
]


def splitmix64(seed: int):
    state = seed & MASK
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        yield z ^ (z >> 31)


def values(kind: str, n: int, seed: int) -> list[float]:
    """The input array of a case; tests/numpy_argsort.rs `values` is the same recipe."""
    rng = splitmix64(seed)
    out = []
    for i in range(n):
        r = next(rng)
        if kind == "common":  # h/w of common sizes: few distinct values, many ties
            w, h = COMMON_WH[r % len(COMMON_WH)]
            out.append(h / w)
        elif kind == "random":  # h/w with h, w in 1..=1000: mostly distinct
            out.append((1 + r % 1000) / (1 + (r >> 32) % 1000))
        elif kind == "two":  # 3/4 of the values equal the smallest: x86-simd-sort's pivot keeps equalling it
            out.append(0.75 if r % 4 else 1.0)
        elif kind == "sorted":  # ascending with ties: x86-simd-sort's early exit
            out.append((1 + i // 3) / 7)
        elif kind == "reversed":
            out.append((1 + (n - 1 - i) // 3) / 7)
        elif kind == "equal":
            out.append(0.75)
        elif kind == "inf":  # common sizes with +-inf
            w, h = COMMON_WH[r % len(COMMON_WH)]
            out.append([float("inf"), float("-inf")][r % 9] if r % 9 < 2 else h / w)
        elif kind == "nan":  # common sizes with NaN and +-inf: x86-simd-sort's std::sort path
            w, h = COMMON_WH[r % len(COMMON_WH)]
            special = [float("nan"), float("inf"), float("-inf")]
            out.append(special[r % 11] if r % 11 < 3 else h / w)
        else:
            raise ValueError(kind)
    return out


def case_list() -> list[tuple[str, int, int]]:
    """(kind, n, seed) of every case."""
    cases = []
    for n in range(1, 41):
        for kind in ("common", "random", "two"):
            cases.append((kind, n, 1000 * n + len(cases)))
    for n in (100, 128, 255, 256, 257, 300, 1000, 5000, 20000, 100000):
        for kind in ("common", "random", "two", "inf", "nan"):
            if n <= 5000 or kind in ("common", "two"):
                cases.append((kind, n, 1000 * n + len(cases)))
    for n in (5, 40, 300, 1000, 5000):
        for kind in ("sorted", "reversed", "equal"):
            cases.append((kind, n, 0))
    for n in (700, 2000):
        cases += [("killer-introsort", n, 0), ("killer-stdsort", n, 0)]
    # More seeds where partitioning and the std::sort fallback start (n > 256).
    for k in range(12):
        for kind in ("common", "two"):
            cases.append((kind, 257 + 61 * k, 77 + 2 * k + len(cases)))
    return cases


# Inputs that drive the quicksorts into their depth limits, so that the heapsort fallbacks are checked too:
# numpy's `aheapsort_` (introsort path) and the heapsort inside libstdc++'s `std::sort` (which x86-simd-sort
# calls on NaN arrays). The adversary runs against Python copies of the two control flows; whether an input
# really reaches the fallback does not depend on these copies being right, only the coverage does.

class Adversary:
    """McIlroy's "A killer adversary for quicksort" (1999): values are fixed lazily, as comparisons need them."""
    def __init__(self, n):
        self.gas = n
        self.val = [n] * n
        self.nsolid = 0
        self.candidate = 0
    def freeze(self, x):
        self.val[x] = self.nsolid
        self.nsolid += 1
    def less(self, x, y):
        val, gas = self.val, self.gas
        if val[x] == gas and val[y] == gas:
            self.freeze(x if x == self.candidate else y)
        if val[x] == gas:
            self.candidate = x
        elif val[y] == gas:
            self.candidate = y
        return val[x] < val[y]
    def values(self):
        for i in range(len(self.val)):
            if self.val[i] == self.gas:
                self.freeze(i)
        return self.val

def aquicksort_flow(n, less):
    """numpy's aquicksort_ control flow (heapsort branch omitted: the adversary only needs the quicksort part)."""
    t = list(range(n))
    pl, pr = 0, n - 1
    stack = []
    while True:
        while pr - pl > 15:
            pm = pl + ((pr - pl) >> 1)
            if less(t[pm], t[pl]): t[pm], t[pl] = t[pl], t[pm]
            if less(t[pr], t[pm]): t[pr], t[pm] = t[pm], t[pr]
            if less(t[pm], t[pl]): t[pm], t[pl] = t[pl], t[pm]
            vp = t[pm]
            pi, pj = pl, pr - 1
            t[pm], t[pj] = t[pj], t[pm]
            while True:
                pi += 1
                while less(t[pi], vp): pi += 1
                pj -= 1
                while less(vp, t[pj]): pj -= 1
                if pi >= pj: break
                t[pi], t[pj] = t[pj], t[pi]
            t[pi], t[pr - 1] = t[pr - 1], t[pi]
            if pi - pl < pr - pi:
                stack.append((pi + 1, pr)); pr = pi - 1
            else:
                stack.append((pl, pi - 1)); pl = pi + 1
        for i in range(pl + 1, pr + 1):
            v = t[i]; j = i
            while j > pl and less(v, t[j - 1]):
                t[j] = t[j - 1]; j -= 1
            t[j] = v
        if not stack: break
        pl, pr = stack.pop()

def std_sort_flow(n, less):
    """libstdc++ std::sort's introsort loop without its depth limit, and the final insertion sort."""
    s = list(range(n))
    def loop(first, last):
        while last - first > 16:
            mid = first + (last - first) // 2
            a, b, c = first + 1, mid, last - 1
            lt = lambda x, y: less(s[x], s[y])
            if lt(a, b):
                p = b if lt(b, c) else (c if lt(a, c) else a)
            elif lt(a, c):
                p = a
            elif lt(b, c):
                p = c
            else:
                p = b
            s[first], s[p] = s[p], s[first]
            lo, hi = first + 1, last
            while True:
                while less(s[lo], s[first]): lo += 1
                hi -= 1
                while less(s[first], s[hi]): hi -= 1
                if not lo < hi: break
                s[lo], s[hi] = s[hi], s[lo]; lo += 1
            loop(lo, last)
            last = lo
    loop(0, n)
    for i in range(1, n):
        v = s[i]; j = i
        while j > 0 and less(v, s[j - 1]):
            s[j] = s[j - 1]; j -= 1
        s[j] = v

def killer(sort, n):
    adv = Adversary(n)
    sort(n, adv.less)
    return adv.values()


def killer_ranks(kind: str, n: int) -> list[int]:
    """Ranks 0..n-1 of an adversarial input; -1 marks a NaN (in place of the largest, which it then acts as)."""
    if kind == "killer-introsort":
        return killer(aquicksort_flow, n)
    ranks = killer(std_sort_flow, n)
    return [-1 if r == n - 1 else r for r in ranks]


def perm_record(perm: np.ndarray):
    if len(perm) <= FULL_MAX:
        return [int(v) for v in perm]
    return {"sha256": hashlib.sha256(perm.astype("<u8").tobytes()).hexdigest()}


def case_values(case: dict) -> np.ndarray:
    if "ranks" in case:
        return np.array([np.nan if r < 0 else float(r) for r in case["ranks"]])
    if "sizes" in case:  # [w, h] of images: Ultralytics' `ar = s[:, 0] / s[:, 1]` with s = [h, w] integers
        s = np.array([[h, w] for w, h in case["sizes"]])
        return s[:, 0] / s[:, 1]
    return np.array(values(case["kind"], case["n"], case["seed"]), dtype=np.float64)


def child(path: str) -> None:
    """Sorts the cases read from stdin on this process's numpy path and writes the orders to stdout."""
    from numpy._core import _multiarray_umath as mu

    feats = mu.__cpu_features__
    want = PATHS[path][1]
    got = (bool(feats.get("X86_V3")), bool(feats.get("X86_V4")))
    if got != want:
        sys.exit(f"path {path}: numpy sees (X86_V3, X86_V4) = {got}, needs {want}: this CPU cannot run it")
    json.dump([perm_record(np.argsort(case_values(case))) for case in json.load(sys.stdin)], sys.stdout)


def image_sizes(folder: str) -> list[list[int]]:
    """[w, h] of the images in `folder`, in Ultralytics' order and as its `verify_image_label` reads them."""
    from PIL import Image
    from ultralytics.data.utils import IMG_FORMATS, exif_size

    files = sorted(f for f in os.listdir(folder) if f.rpartition(".")[-1].lower() in IMG_FORMATS)
    sizes = []
    for f in files:
        with Image.open(os.path.join(folder, f)) as im:
            sizes.append(list(exif_size(im)))
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--images", metavar="DIR", help="one case from the image sizes of DIR")
    parser.add_argument("--out", default=OUT, help="output file (default: tests/data/numpy_argsort.json)")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if np.__version__ != NUMPY:
        sys.exit(f"numpy {np.__version__} is installed; the reference is numpy {NUMPY}")
    if args.images:
        sizes = image_sizes(args.images)
        cases = [{"kind": "sizes", "n": len(sizes), "seed": 0, "sizes": sizes}]
    else:
        cases = [{"kind": k, "n": n, "seed": s} for k, n, s in case_list()]
        for case in cases:
            if case["kind"].startswith("killer"):
                case["ranks"] = killer_ranks(case["kind"], case["n"])
    results = {}
    for path, (disable, _) in PATHS.items():
        env = dict(os.environ, NPY_DISABLE_CPU_FEATURES=disable)
        run = subprocess.run(
            [sys.executable, __file__, "--child", path], env=env, input=json.dumps(cases), capture_output=True, text=True
        )
        if run.returncode != 0:
            sys.exit(run.stderr)
        results[path] = json.loads(run.stdout)
    for i, case in enumerate(cases):
        case["expected"] = {p: results[p][i] for p in PATHS}
    doc = {
        "generator": "scripts/numpy_argsort_reference.py",
        "numpy": NUMPY,
        "x86_simd_sort": X86_SIMD_SORT,
        "full_max": FULL_MAX,
        "cases": cases,
    }
    with open(args.out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} cases to {os.path.normpath(args.out)} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
