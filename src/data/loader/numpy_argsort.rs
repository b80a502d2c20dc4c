//! numpy 2.4.6's default (unstable) `np.argsort` of a float64 array, on each of the CPU paths numpy dispatches it
//! to, as plain scalar code.
//!
//! Why: Ultralytics' `BaseDataset.set_rectangle` orders validation images by `ar.argsort()` (h/w), and images
//! with equal ratios (very common: every 640x480 image) then fall into batches by numpy's tie order. A
//! different tie order moves images between batches of different shapes, so padding and predictions change.
//! numpy's tie order depends on the CPU, so [`ArgsortKernel::detect`] picks what numpy would pick here.
//!
//! What numpy 2.4.6 runs (numpy/_core/src/npysort/quicksort.cpp `aquicksort_double`, numpy/_core/meson.build):
//! - x86-64 with X86_V4 (AVX512F, CD, BW, DQ, VL on top of X86_V3): x86-simd-sort's `avx512_argsort`
//!   (submodule commit 5adb334, src/xss-common-argsort.h), 8 double lanes: [`ArgsortKernel::Avx512`].
//! - x86-64 with X86_V3 (AVX, AVX2, FMA3, F16C, BMI1/2, LZCNT, MOVBE): `avx2_argsort`, 4 lanes:
//!   [`ArgsortKernel::Avx2`]. numpy's Windows wheels are built with MSVC, where meson_cpu/x86/meson.build
//!   disables X86_V4, so there AVX-512 CPUs take this path too.
//! - Anything else (older x86-64, aarch64, ...): numpy's introsort `aquicksort_`: [`ArgsortKernel::Introsort`].
//!   Highway's vqsort serves `np.sort` on aarch64, but argsort is only dispatched to x86-simd-sort.
//!
//! Both x86-simd-sort paths call the same template (`xss_argsort`): a NaN check (NaN arrays go to `std::sort`
//! with NaN last), an early exit when the values are already sorted, then a quicksort with a median-of-8 (4)
//! pivot, `argpartition_unrolled` (4 registers at a time, compress-stores), and a bitonic network
//! (`argsort_n`) for ranges of at most 256; when `2·⌊log2 n⌋` levels are used up the range goes to
//! `std::sort`, libstdc++'s introsort in numpy's Linux wheels, emulated here too (`std_sort`): ranges where
//! most values equal the smallest one (a pivot equal to the minimum moves nothing) reach it with realistic
//! data. The emulation keeps the vector lanes as arrays and does each load and store where the intrinsics do,
//! so it also reproduces where the partitions leave their scratch. Speed is not the point, but it is
//! `O(n log n)`: about 0.06 s for 2·10⁶ ratios in a release build.
//!
//! Not mirrored: numpy's `NPY_DISABLE_CPU_FEATURES` (a user who set it gets numpy's other order), and 32-bit
//! x86, where numpy's AVX2 path sorts 32-bit indices (treated as the introsort here).

/// The argsort implementation numpy 2.4.6 uses for float64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArgsortKernel {
    /// numpy's own introsort `aquicksort_` (quicksort.cpp) with its `aheapsort_` fallback.
    Introsort,
    /// x86-simd-sort's `avx2_argsort` (X86_V3 CPUs).
    Avx2,
    /// x86-simd-sort's `avx512_argsort` (X86_V4 CPUs).
    Avx512,
}

impl ArgsortKernel {
    /// All kernels, in numpy's dispatch order from the baseline up.
    pub const ALL: [ArgsortKernel; 3] = [Self::Introsort, Self::Avx2, Self::Avx512];

    /// The kernel numpy 2.4.6's dispatch (`NPY_CPU_DISPATCH_CALL_XB` over X86_V4, X86_V3) picks on this CPU.
    /// The feature lists are numpy's `npy__cpu_have[X86_V3]` and `[X86_V4]` (npy_cpu_features.c); X86_V2's
    /// SSE4.2/POPCNT/CX16 are numpy's own baseline, checked so that an exotic CPU is not misread.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let v2 = has!("sse3")
                && has!("ssse3")
                && has!("sse4.1")
                && has!("sse4.2")
                && has!("popcnt")
                && has!("cmpxchg16b");
            let v3 = v2
                && has!("avx")
                && has!("avx2")
                && has!("fma")
                && has!("f16c")
                && has!("bmi1")
                && has!("bmi2")
                && has!("lzcnt")
                && has!("movbe");
            let v4 = v3
                && has!("avx512f")
                && has!("avx512cd")
                && has!("avx512bw")
                && has!("avx512dq")
                && has!("avx512vl");
            // MSVC-built numpy (the Windows wheels) has no X86_V4 target.
            if v4 && !cfg!(windows) {
                return Self::Avx512;
            }
            if v3 {
                return Self::Avx2;
            }
        }
        Self::Introsort
    }

    /// The name the reference data uses (tests/data/numpy_argsort.json).
    pub fn name(self) -> &'static str {
        match self {
            Self::Introsort => "introsort",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
        }
    }
}

/// `np.argsort(values)` (default kind) as numpy 2.4.6 computes it with `kernel`: indices of `values` in
/// ascending order, NaN last, ties in that kernel's order.
///
/// The x86-simd-sort kernels pad short vectors with `+inf` keys and a sentinel index, and numpy would return
/// garbage if a sentinel ever outran a real `+inf`; should the emulation see that (it did not in any test), it
/// returns the stable order instead of an invalid permutation.
pub fn argsort(values: &[f64], kernel: ArgsortKernel) -> Vec<usize> {
    let mut arg: Vec<usize> = (0..values.len()).collect();
    match kernel {
        ArgsortKernel::Introsort => aquicksort(values, &mut arg),
        ArgsortKernel::Avx2 => xss_argsort::<4>(values, &mut arg),
        ArgsortKernel::Avx512 => xss_argsort::<8>(values, &mut arg),
    }
    if !is_permutation(&arg) {
        arg = (0..values.len()).collect();
        arg.sort_by(|&a, &b| order_nan_last(values[a], values[b]));
    }
    arg
}

fn order_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
        (a_nan, b_nan) => a_nan.cmp(&b_nan),
    }
}

fn is_permutation(arg: &[usize]) -> bool {
    let mut seen = vec![false; arg.len()];
    arg.iter()
        .all(|&i| i < seen.len() && !std::mem::replace(&mut seen[i], true))
}

/// A value by index; the sentinel index of x86-simd-sort's padding lanes reads as its `+inf` padding key.
fn key(values: &[f64], i: usize) -> f64 {
    values.get(i).copied().unwrap_or(f64::INFINITY)
}

/// numpy's `DOUBLE_LT` (npysort_common.h): `<` with NaN sorting last.
fn nan_last_less(a: f64, b: f64) -> bool {
    a < b || (b.is_nan() && !a.is_nan())
}

// ---------------------------------------------------------------------------------------------------------------
// numpy's introsort: numpy/_core/src/npysort/quicksort.cpp `aquicksort_`, npysort_heapsort.h `aheapsort_`.

/// Below this `pr - pl`, `aquicksort_` insertion-sorts.
const SMALL_QUICKSORT: isize = 15;

/// `aquicksort_<double_tag>`: median-of-3 quicksort on index pointers, larger side pushed on a stack, insertion
/// sort below 16 elements, heapsort for a range popped with its depth budget (`2·⌊log2 n⌋`) spent.
fn aquicksort(v: &[f64], tosort: &mut [usize]) {
    let num = tosort.len();
    if num < 2 {
        return;
    }
    let lt = |a: usize, b: usize| nan_last_less(v[a], v[b]);
    let mut pl: isize = 0;
    let mut pr: isize = num as isize - 1;
    // (pl, pr, depth) of the pushed larger partitions.
    let mut stack: Vec<(isize, isize, i32)> = Vec::new();
    let mut cdepth = 2 * (usize::BITS - 1 - num.leading_zeros()) as i32;
    let at = |p: isize| p as usize;
    loop {
        if cdepth < 0 {
            aheapsort(v, &mut tosort[at(pl)..=at(pr)]);
        } else {
            while pr - pl > SMALL_QUICKSORT {
                let pm = pl + ((pr - pl) >> 1);
                if lt(tosort[at(pm)], tosort[at(pl)]) {
                    tosort.swap(at(pm), at(pl));
                }
                if lt(tosort[at(pr)], tosort[at(pm)]) {
                    tosort.swap(at(pr), at(pm));
                }
                if lt(tosort[at(pm)], tosort[at(pl)]) {
                    tosort.swap(at(pm), at(pl));
                }
                let vp = v[tosort[at(pm)]];
                let mut pi = pl;
                let mut pj = pr - 1;
                tosort.swap(at(pm), at(pj));
                loop {
                    loop {
                        pi += 1;
                        if !nan_last_less(v[tosort[at(pi)]], vp) {
                            break;
                        }
                    }
                    loop {
                        pj -= 1;
                        if !nan_last_less(vp, v[tosort[at(pj)]]) {
                            break;
                        }
                    }
                    if pi >= pj {
                        break;
                    }
                    tosort.swap(at(pi), at(pj));
                }
                tosort.swap(at(pi), at(pr - 1));
                // Push the larger partition, go on with the smaller.
                cdepth -= 1;
                if pi - pl < pr - pi {
                    stack.push((pi + 1, pr, cdepth));
                    pr = pi - 1;
                } else {
                    stack.push((pl, pi - 1, cdepth));
                    pl = pi + 1;
                }
            }
            // Insertion sort.
            let mut pi = pl + 1;
            while pi <= pr {
                let vi = tosort[at(pi)];
                let vp = v[vi];
                let mut pj = pi;
                while pj > pl && nan_last_less(vp, v[tosort[at(pj - 1)]]) {
                    tosort[at(pj)] = tosort[at(pj - 1)];
                    pj -= 1;
                }
                tosort[at(pj)] = vi;
                pi += 1;
            }
        }
        match stack.pop() {
            Some((l, r, d)) => {
                pl = l;
                pr = r;
                cdepth = d;
            }
            None => break,
        }
    }
}

/// `aheapsort_<double_tag>` on one range (1-based heap indexing, as in numpy).
fn aheapsort(v: &[f64], tosort: &mut [usize]) {
    let mut n = tosort.len();
    if n == 0 {
        return;
    }
    // a[k] is tosort[k - 1].
    let lt = |a: usize, b: usize| nan_last_less(v[a], v[b]);
    let sift = |a: &mut [usize], tmp: usize, mut i: usize, n: usize| {
        let mut j = i << 1;
        while j <= n {
            if j < n && lt(a[j - 1], a[j]) {
                j += 1;
            }
            if lt(tmp, a[j - 1]) {
                a[i - 1] = a[j - 1];
                i = j;
                j += j;
            } else {
                break;
            }
        }
        a[i - 1] = tmp;
    };
    for l in (1..=n >> 1).rev() {
        let tmp = tosort[l - 1];
        sift(tosort, tmp, l, n);
    }
    while n > 1 {
        let tmp = tosort[n - 1];
        tosort[n - 1] = tosort[0];
        n -= 1;
        sift(tosort, tmp, 1, n);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// libstdc++'s std::sort (bits/stl_algo.h, bits/stl_heap.h), which x86-simd-sort's `std_argsort` and
// `std_argsort_withnan` call in numpy's Linux wheels (GCC).

/// libstdc++'s `_S_threshold`.
const STD_THRESHOLD: usize = 16;

/// libstdc++'s `std::sort(first, last, comp)` on a slice of indices: `__introsort_loop` (median-of-3 to the
/// front, unguarded partition, depth limit `2·⌊log2 n⌋` then heapsort) and `__final_insertion_sort`.
///
/// This is what numpy's Linux wheels (GCC, libstdc++) run. Intel macOS wheels use libc++ and Windows wheels
/// MSVC's STL, whose `std::sort`s differ: there, ranges that reach x86-simd-sort's fallback (see the module
/// doc) may order ties differently from numpy.
fn std_sort(s: &mut [usize], less: &impl Fn(usize, usize) -> bool) {
    let n = s.len();
    if n == 0 {
        return;
    }
    introsort_loop(s, 0, n, 2 * floor_log2(n), less);
    final_insertion_sort(s, less);
}

fn floor_log2(n: usize) -> usize {
    (usize::BITS - 1 - n.leading_zeros()) as usize
}

fn introsort_loop(
    s: &mut [usize],
    first: usize,
    mut last: usize,
    mut depth: usize,
    less: &impl Fn(usize, usize) -> bool,
) {
    while last - first > STD_THRESHOLD {
        if depth == 0 {
            // __partial_sort(first, last, last): __heap_select (a make_heap) then __sort_heap.
            make_heap(&mut s[first..last], less);
            sort_heap(&mut s[first..last], less);
            return;
        }
        depth -= 1;
        let cut = unguarded_partition_pivot(s, first, last, less);
        introsort_loop(s, cut, last, depth, less);
        last = cut;
    }
}

fn unguarded_partition_pivot(
    s: &mut [usize],
    first: usize,
    last: usize,
    less: &impl Fn(usize, usize) -> bool,
) -> usize {
    let mid = first + (last - first) / 2;
    move_median_to_first(s, first, first + 1, mid, last - 1, less);
    unguarded_partition(s, first + 1, last, first, less)
}

fn move_median_to_first(
    s: &mut [usize],
    result: usize,
    a: usize,
    b: usize,
    c: usize,
    less: &impl Fn(usize, usize) -> bool,
) {
    let lt = |x: usize, y: usize| less(s[x], s[y]);
    let pick = if lt(a, b) {
        if lt(b, c) {
            b
        } else if lt(a, c) {
            c
        } else {
            a
        }
    } else if lt(a, c) {
        a
    } else if lt(b, c) {
        c
    } else {
        b
    };
    s.swap(result, pick);
}

fn unguarded_partition(
    s: &mut [usize],
    mut first: usize,
    mut last: usize,
    pivot: usize,
    less: &impl Fn(usize, usize) -> bool,
) -> usize {
    loop {
        while less(s[first], s[pivot]) {
            first += 1;
        }
        last -= 1;
        while less(s[pivot], s[last]) {
            last -= 1;
        }
        if first >= last {
            return first;
        }
        s.swap(first, last);
        first += 1;
    }
}

fn final_insertion_sort(s: &mut [usize], less: &impl Fn(usize, usize) -> bool) {
    if s.len() > STD_THRESHOLD {
        insertion_sort(&mut s[..STD_THRESHOLD], less);
        for i in STD_THRESHOLD..s.len() {
            unguarded_linear_insert(s, i, less);
        }
    } else {
        insertion_sort(s, less);
    }
}

fn insertion_sort(s: &mut [usize], less: &impl Fn(usize, usize) -> bool) {
    for i in 1..s.len() {
        if less(s[i], s[0]) {
            s[..=i].rotate_right(1);
        } else {
            unguarded_linear_insert(s, i, less);
        }
    }
}

/// `__unguarded_linear_insert`: libstdc++ relies on a smaller element in front; the index check only keeps a
/// broken comparator from reading out of bounds.
fn unguarded_linear_insert(s: &mut [usize], mut last: usize, less: &impl Fn(usize, usize) -> bool) {
    let val = s[last];
    while last > 0 && less(val, s[last - 1]) {
        s[last] = s[last - 1];
        last -= 1;
    }
    s[last] = val;
}

fn make_heap(s: &mut [usize], less: &impl Fn(usize, usize) -> bool) {
    let len = s.len();
    if len < 2 {
        return;
    }
    let mut parent = (len - 2) / 2;
    loop {
        let value = s[parent];
        adjust_heap(s, parent, len, value, less);
        if parent == 0 {
            return;
        }
        parent -= 1;
    }
}

fn sort_heap(s: &mut [usize], less: &impl Fn(usize, usize) -> bool) {
    let mut last = s.len();
    while last > 1 {
        last -= 1;
        // __pop_heap(first, last, last)
        let value = s[last];
        s[last] = s[0];
        adjust_heap(s, 0, last, value, less);
    }
}

fn adjust_heap(
    s: &mut [usize],
    mut hole: usize,
    len: usize,
    value: usize,
    less: &impl Fn(usize, usize) -> bool,
) {
    let top = hole;
    let mut second = hole;
    while second < (len - 1) / 2 {
        second = 2 * (second + 1);
        if less(s[second], s[second - 1]) {
            second -= 1;
        }
        s[hole] = s[second];
        hole = second;
    }
    if len & 1 == 0 && second == (len - 2) / 2 {
        second = 2 * (second + 1);
        s[hole] = s[second - 1];
        hole = second - 1;
    }
    // __push_heap
    while hole > top {
        let parent = (hole - 1) / 2;
        if !less(s[parent], value) {
            break;
        }
        s[hole] = s[parent];
        hole = parent;
    }
    s[hole] = value;
}

// ---------------------------------------------------------------------------------------------------------------
// x86-simd-sort (src/xss-common-argsort.h, xss-network-keyvaluesort.hpp, xss-reg-networks.hpp) with `L` double
// lanes: 8 for zmm_vector<double> (AVX-512), 4 for avx2_vector<double>. Indices are 64-bit lanes alike.

/// Ranges up to this size go to the bitonic network (`argsort_n<vtype, argtype, 256>`).
const NETWORK_MAX: usize = 256;

/// Doubles in a zmm register: `L` of the AVX-512 kernel (the AVX2 kernel's ymm registers hold 4).
const AVX512_LANES: usize = 8;

/// `argpartition_unrolled<vtype, argtype, 4>`: registers loaded per step.
const UNROLL: usize = 4;

/// `xss_argsort` as numpy calls it (`hasnan = true`, ascending).
fn xss_argsort<const L: usize>(arr: &[f64], arg: &mut [usize]) {
    let n = arr.len();
    if n <= 1 {
        return;
    }
    if arr.iter().any(|x| x.is_nan()) {
        // std_argsort_withnan: NaN compares greater than everything, and not less than NaN.
        let less = |a: usize, b: usize| {
            let (x, y) = (key(arr, a), key(arr, b));
            match (x.is_nan(), y.is_nan()) {
                (false, false) => x < y,
                (true, _) => false,
                (false, true) => true,
            }
        };
        std_sort(arg, &less);
        return;
    }
    // Early exit (`std::is_sorted` with `<`): the values, not the indices, are already in order, so the
    // identity permutation stands. Without NaN, `!(b < a)` is `a <= b`.
    if arr.windows(2).all(|w| w[0] <= w[1]) {
        return;
    }
    // `2 * (arrsize_t)log2(arrsize)` in double precision, as the C code computes it.
    let max_iters = 2 * (n as f64).log2() as usize;
    argsort_range::<L>(arr, arg, 0, n - 1, max_iters);
}

/// `argsort_` on `arg[left..=right]`.
fn argsort_range<const L: usize>(
    arr: &[f64],
    arg: &mut [usize],
    left: usize,
    right: usize,
    max_iters: usize,
) {
    if max_iters == 0 {
        std_sort(&mut arg[left..=right], &|a, b| key(arr, a) < key(arr, b));
        return;
    }
    if right + 1 - left <= NETWORK_MAX {
        argsort_n::<L>(arr, &mut arg[left..=right]);
        return;
    }
    let pivot = pivot_64bit::<L>(arr, arg, left, right);
    let part = argpartition_unrolled::<L>(arr, arg, left, right + 1, pivot);
    // A pivot equal to the smallest value leaves nothing on the left (and may leave the right side as it was);
    // one equal to the biggest leaves only copies of it on the right.
    if pivot != part.smallest {
        argsort_range::<L>(arr, arg, left, part.pivot_index - 1, max_iters - 1);
    }
    if pivot != part.biggest {
        argsort_range::<L>(arr, arg, part.pivot_index, right, max_iters - 1);
    }
}

/// `get_pivot_64bit`: the 8 (4) values at `left + k·⌊(right-left)/L⌋`, k = 1..=L, sorted by the register network;
/// lane L/2 is the pivot. Ranges here are longer than 256, so the sampled branch always applies.
fn pivot_64bit<const L: usize>(arr: &[f64], arg: &[usize], left: usize, right: usize) -> f64 {
    let size = (right - left) / L;
    // `set(v1, ..., vL)` puts its last argument in lane 0.
    let mut keys = [0.0; L];
    for (lane, k) in keys.iter_mut().zip((1..=L).rev()) {
        *lane = key(arr, arg[left + k * size]);
    }
    let mut idx = [0usize; L];
    sort_reg(&mut keys, &mut idx);
    keys[L / 2]
}

/// What `argpartition_unrolled` returns and reports through its pointers.
struct Partition {
    /// First index of the `>= pivot` side.
    pivot_index: usize,
    smallest: f64,
    biggest: f64,
}

/// `argpartition_unrolled<vtype, argtype, 4>` on `arg[left..right]`: values `< pivot` to the front, `>= pivot`
/// to the back. The first and last 4 registers are held back and partitioned last; the loop loads 4 registers
/// from whichever end has less room stored, and `partition_vec` writes each register to both ends.
/// (`right - left > 256` here, above the `8·4·L` cut-over to plain `argpartition`, which argsort never reaches.)
fn argpartition_unrolled<const L: usize>(
    arr: &[f64],
    arg: &mut [usize],
    mut left: usize,
    mut right: usize,
    pivot: f64,
) -> Partition {
    let step = UNROLL * L;
    let mut smallest = f64::INFINITY;
    let mut biggest = f64::NEG_INFINITY;
    let track = |x: f64, smallest: &mut f64, biggest: &mut f64| {
        // std::min / std::max with `<`, and _mm*_min_pd / _max_pd, agree without NaN.
        if x < *smallest {
            *smallest = x;
        }
        if *biggest < x {
            *biggest = x;
        }
    };
    // Make the length a multiple of 4 registers, scalar.
    for _ in 0..(right - left) % step {
        let x = key(arr, arg[left]);
        track(x, &mut smallest, &mut biggest);
        if x < pivot {
            left += 1;
        } else {
            right -= 1;
            arg.swap(left, right);
        }
    }
    if left == right {
        return Partition {
            pivot_index: left,
            smallest,
            biggest,
        };
    }
    let load = |arg: &[usize], at: usize| -> Lanes<L> {
        let mut lanes = Lanes {
            idx: [0; L],
            keys: [0.0; L],
        };
        lanes.idx.copy_from_slice(&arg[at..at + L]);
        for (k, &i) in lanes.keys.iter_mut().zip(&lanes.idx) {
            *k = key(arr, i);
        }
        lanes
    };
    let held_left: Vec<Lanes<L>> = (0..UNROLL).map(|ii| load(arg, left + L * ii)).collect();
    let held_right: Vec<Lanes<L>> = (0..UNROLL)
        .map(|ii| load(arg, right - L * (UNROLL - ii)))
        .collect();
    let mut l_store = left;
    // One past the free slots on the right (`r_store + numlanes` in the C code).
    let mut r_end = right;
    left += step;
    right -= step;
    let mut store =
        |arg: &mut [usize], lanes: &Lanes<L>, l_store: &mut usize, r_end: &mut usize| {
            for &x in &lanes.keys {
                track(x, &mut smallest, &mut biggest);
            }
            let amount_ge = partition_vec(arg, *l_store, *r_end, lanes, pivot);
            *l_store += L - amount_ge;
            *r_end -= amount_ge;
        };
    while right != left {
        let from = if r_end - right < left - l_store {
            right -= step;
            right
        } else {
            left += step;
            left - step
        };
        let batch: Vec<Lanes<L>> = (0..UNROLL).map(|ii| load(arg, from + ii * L)).collect();
        for lanes in &batch {
            store(arg, lanes, &mut l_store, &mut r_end);
        }
    }
    for lanes in held_left.iter().chain(&held_right) {
        store(arg, lanes, &mut l_store, &mut r_end);
    }
    Partition {
        pivot_index: l_store,
        smallest,
        biggest,
    }
}

/// One register: indices and their values.
struct Lanes<const L: usize> {
    idx: [usize; L],
    keys: [f64; L],
}

/// `partition_vec`: returns how many lanes are `>= pivot` (`_CMP_GE_OQ`).
///
/// AVX-512 (`partition_vec_avx512`): compress-stores the `<` lanes in lane order at `l_store` and the `>=`
/// lanes in lane order just below `r_end`. AVX2 (`avx2_double_compressstore64`): permutes the register to the
/// `<` lanes in order followed by the `>=` lanes in reverse order, and stores all 4 lanes at `l_store` and
/// again at `r_end - 4`.
fn partition_vec<const L: usize>(
    arg: &mut [usize],
    l_store: usize,
    r_end: usize,
    lanes: &Lanes<L>,
    pivot: f64,
) -> usize {
    let ge: [bool; L] = std::array::from_fn(|j| lanes.keys[j] >= pivot);
    let amount_ge = ge.iter().filter(|&&g| g).count();
    if L == AVX512_LANES {
        let below = (0..L).filter(|&j| !ge[j]).map(|j| lanes.idx[j]);
        for (slot, i) in arg[l_store..].iter_mut().zip(below) {
            *slot = i;
        }
        let above = (0..L).filter(|&j| ge[j]).map(|j| lanes.idx[j]);
        for (slot, i) in arg[r_end - amount_ge..].iter_mut().zip(above) {
            *slot = i;
        }
    } else {
        let mut out = [0usize; L];
        let (mut lo, mut hi) = (0, L);
        for (&is_ge, &i) in ge.iter().zip(&lanes.idx) {
            if is_ge {
                hi -= 1;
                out[hi] = i;
            } else {
                out[lo] = i;
                lo += 1;
            }
        }
        arg[l_store..l_store + L].copy_from_slice(&out);
        arg[r_end - L..r_end].copy_from_slice(&out);
    }
    amount_ge
}

/// `argsort_n<vtype, argtype, 256>` on a range of at most 256: as few registers as hold it (a power of two),
/// the tail padded with `+inf` keys and the all-ones index, each register sorted, then bitonic merges.
fn argsort_n<const L: usize>(arr: &[f64], arg: &mut [usize]) {
    let n = arg.len();
    // argsort_n_vec halves numVecs while N·2 <= numVecs·L.
    let mut num_vecs = NETWORK_MAX / L;
    while num_vecs > 1 && n * 2 <= num_vecs * L {
        num_vecs /= 2;
    }
    let mut keys = vec![[f64::INFINITY; L]; num_vecs];
    let mut idx = vec![[usize::MAX; L]; num_vecs];
    for (p, &i) in arg.iter().enumerate() {
        idx[p / L][p % L] = i;
        keys[p / L][p % L] = key(arr, i);
    }
    for (k, i) in keys.iter_mut().zip(idx.iter_mut()) {
        sort_reg(k, i);
    }
    // bitonic_fullmerge_n_vec: merge runs of 2, 4, ... registers.
    let mut per = 2;
    while per <= num_vecs {
        for start in (0..num_vecs).step_by(per) {
            bitonic_merge_n_vec(&mut keys[start..start + per], &mut idx[start..start + per]);
        }
        per *= 2;
    }
    for (p, slot) in arg.iter_mut().enumerate() {
        *slot = idx[p / L][p % L];
    }
}

/// `bitonic_merge_n_vec`: COEX each register of the first half with the reversed mirror register of the second
/// half, the half-cleaner between registers, then `bitonic_merge_reg_*lanes` inside each register.
fn bitonic_merge_n_vec<const L: usize>(keys: &mut [[f64; L]], idx: &mut [[usize; L]]) {
    let n = keys.len();
    for i in 0..n / 2 {
        let j = n - 1 - i;
        // Reversing register j, COEX lane by lane, reversing back: lane l of i meets lane L-1-l of j.
        let (lo_k, hi_k) = keys.split_at_mut(j);
        let (lo_i, hi_i) = idx.split_at_mut(j);
        for l in 0..L {
            let r = L - 1 - l;
            coex(
                &mut lo_k[i][l],
                &mut hi_k[0][r],
                &mut lo_i[i][l],
                &mut hi_i[0][r],
            );
        }
    }
    // bitonic_clean_n_vec
    let mut num = n / 2;
    while num >= 2 {
        for j in (0..n).step_by(num) {
            for i in 0..num / 2 {
                let (a, b) = (i + j, i + j + num / 2);
                let (lo_k, hi_k) = keys.split_at_mut(b);
                let (lo_i, hi_i) = idx.split_at_mut(b);
                for l in 0..L {
                    coex(
                        &mut lo_k[a][l],
                        &mut hi_k[0][l],
                        &mut lo_i[a][l],
                        &mut hi_i[0][l],
                    );
                }
            }
        }
        num /= 2;
    }
    for (k, i) in keys.iter_mut().zip(idx.iter_mut()) {
        bitonic_merge_reg(k, i);
    }
}

/// Key-index `COEX`: min to the first, max to the second (`_mm*_min_pd(key1, key2)`: `key1 < key2 ? key1 :
/// key2`); an index follows its key unless the keys compare equal.
fn coex(k1: &mut f64, k2: &mut f64, i1: &mut usize, i2: &mut usize) {
    let (a, b) = (*k1, *k2);
    let lo = if a < b { a } else { b };
    let hi = if a > b { a } else { b };
    if lo != a {
        std::mem::swap(i1, i2);
    }
    *k1 = lo;
    *k2 = hi;
}

/// One `cmp_merge` step inside a register: lane l meets lane `partner(l)`; lanes with `l & half` set take the
/// max, the others the min (`min_pd(in2, in1)`, `max_pd(in2, in1)`); a lane keeps its index when its key is
/// unchanged (`eq(tmp, in1)`), else takes its partner's.
fn cmp_merge<const L: usize>(
    keys: &mut [f64; L],
    idx: &mut [usize; L],
    partner: impl Fn(usize) -> usize,
    half: usize,
) {
    let (k0, i0) = (*keys, *idx);
    for l in 0..L {
        let p = partner(l);
        let (in1, in2) = (k0[l], k0[p]);
        let min = if in2 < in1 { in2 } else { in1 };
        let max = if in2 > in1 { in2 } else { in1 };
        let t = if l & half != 0 { max } else { min };
        keys[l] = t;
        idx[l] = if t == in1 { i0[l] } else { i0[p] };
    }
}

/// `sort_reg_8lanes` / `sort_reg_4lanes` (key-index): for k = 2, 4, ..., L: `reverse_n<k>` (lane l ^ (k-1)),
/// then `swap_n<k/2>`, ..., `swap_n<2>` (lane l ^ (s/2)); each step's mask is the lanes with bit k/2 (s/2) set.
fn sort_reg<const L: usize>(keys: &mut [f64; L], idx: &mut [usize; L]) {
    let mut k = 2;
    while k <= L {
        cmp_merge(keys, idx, |l| l ^ (k - 1), k / 2);
        let mut s = k / 2;
        while s >= 2 {
            cmp_merge(keys, idx, |l| l ^ (s / 2), s / 2);
            s /= 2;
        }
        k *= 2;
    }
}

/// `bitonic_merge_reg_8lanes` / `_4lanes`: `swap_n<L>`, ..., `swap_n<2>`.
fn bitonic_merge_reg<const L: usize>(keys: &mut [f64; L], idx: &mut [usize; L]) {
    let mut s = L;
    while s >= 2 {
        cmp_merge(keys, idx, |l| l ^ (s / 2), s / 2);
        s /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratios(n: usize, seed: u64) -> Vec<f64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                [0.75, 0.75, 0.75, 1.0, 0.5625, 1.3333333333333333][(x >> 33) as usize % 6]
            })
            .collect()
    }

    #[test]
    fn every_kernel_sorts_ascending_with_nan_last() {
        for n in [0, 1, 2, 7, 16, 17, 100, 256, 257, 1000, 4099] {
            let mut v = ratios(n, n as u64);
            if n > 5 {
                v[3] = f64::NAN;
            }
            for kernel in ArgsortKernel::ALL {
                let order = argsort(&v, kernel);
                assert!(is_permutation(&order), "{kernel:?} n={n}");
                let sorted: Vec<f64> = order.iter().map(|&i| v[i]).collect();
                assert!(
                    sorted.windows(2).all(|w| !nan_last_less(w[1], w[0])),
                    "{kernel:?} n={n}"
                );
            }
        }
    }

    #[test]
    fn std_sort_matches_a_stable_sort_up_to_ties() {
        let v = ratios(5000, 3);
        let mut s: Vec<usize> = (0..v.len()).collect();
        std_sort(&mut s, &|a, b| v[a] < v[b]);
        let mut want: Vec<usize> = (0..v.len()).collect();
        want.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        assert!(s.iter().zip(&want).all(|(&a, &b)| v[a] == v[b]));
    }

    #[test]
    fn cmp_merge_networks_sort_one_register() {
        let mut keys = [5.0, 1.0, 7.0, 3.0, 3.0, 0.0, 9.0, 2.0];
        let mut idx = [0, 1, 2, 3, 4, 5, 6, 7];
        sort_reg(&mut keys, &mut idx);
        assert_eq!(keys, [0.0, 1.0, 2.0, 3.0, 3.0, 5.0, 7.0, 9.0]);
        let mut seen = idx;
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2, 3, 4, 5, 6, 7]);
    }
}
