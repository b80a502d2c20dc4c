//! `C (+)= A · Bᵀ` for a small `C` and a long inner dimension, as dot products: the weight gradient of convs
//! with few output channels and a short im2col (the stem's 3 → 16 conv has a 16 × 27 gradient summed over
//! 25,600 positions an image).
//!
//! Why not `gemm`: for that shape it packs both long operands per call and fills few of its micro-kernel's
//! registers, and measured 8.5–28 GFLOP/s on YOLOv8n's first two convs' weight gradients (one thread at 320),
//! against ~80 for the model's other convs. Here `A` and `B` are read in place, rows contiguous along the inner
//! dimension, 4 × 4 outputs at a time (16 AVX-512 accumulators), in inner-dimension blocks small enough that the
//! rows of a block stay in L2 while every tile reads them.

use super::half_gemm::Elem;

/// Whether [`a_bt`] runs here (AVX-512F) and beats `gemm` for a `m × n` result over `l`-long rows.
///
/// `gemm` packs `(m + n)·l` floats for `m·n·l` multiply-adds, so it loses where one side is narrow. Measured
/// per layer on YOLOv8n at 320 (one thread, weight gradients): 0.43× `gemm`'s time for 16 × 27 over 25,600,
/// 0.78× for 32 × 144 over 6,400, 0.79–0.88× for 32 × 48 and 32 × 32 over 6,400; but 1.08–1.5× for 64 × 64 to
/// 64 × 128 over 1,600, and up to 4× over 100 to 400 positions, where the 16 horizontal sums a tile ends with
/// are a large share.
pub(super) fn applies(m: usize, n: usize, l: usize) -> bool {
    m.min(n) <= 32 && m * n <= 8192 && l >= 1024 && avx512()
}

#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx512() -> bool {
    false
}

/// `c[i·n + j] (+)= Σ_p a[i·l + p] · b[j·l + p]`; only where [`applies`] said so. `a` and `b` may each be `f32`,
/// `bf16` or `f16` (a rounded upstream gradient, the im2col of a half-precision input): each vector is widened
/// as it is loaded and multiplied in `f32`, which keeps this kernel at its `f32` speed (its loads, not its FMAs,
/// bound it).
pub(super) fn a_bt<A: Elem, T: Elem>(
    m: usize,
    n: usize,
    l: usize,
    a: &[A],
    b: &[T],
    c: &mut [f32],
    accumulate: bool,
) {
    assert!(a.len() >= m * l && b.len() >= n * l && c.len() == m * n && avx512());
    if !accumulate {
        c.fill(0.0);
    }
    if m == 0 || n == 0 || l == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is present (asserted above); the slices are at least the sizes the kernel reads.
    unsafe {
        let (a, b) = (a.as_ptr().cast::<u8>(), b.as_ptr().cast::<u8>());
        use avx512::{BF16, F16, F32};
        match (avx512::kind::<A>(), avx512::kind::<T>()) {
            (F32, BF16) => avx512::a_bt::<F32, BF16>(m, n, l, a, b, c),
            (F32, F16) => avx512::a_bt::<F32, F16>(m, n, l, a, b, c),
            (F32, _) => avx512::a_bt::<F32, F32>(m, n, l, a, b, c),
            (BF16, BF16) => avx512::a_bt::<BF16, BF16>(m, n, l, a, b, c),
            (BF16, F16) => avx512::a_bt::<BF16, F16>(m, n, l, a, b, c),
            (BF16, _) => avx512::a_bt::<BF16, F32>(m, n, l, a, b, c),
            (_, BF16) => avx512::a_bt::<F16, BF16>(m, n, l, a, b, c),
            (_, F16) => avx512::a_bt::<F16, F16>(m, n, l, a, b, c),
            _ => avx512::a_bt::<F16, F32>(m, n, l, a, b, c),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Rows of `A` and `B` in one block, times its length, stay within this many floats (1 MiB, Zen 4's L2).
    const BLOCK_FLOATS: usize = 256 * 1024;

    /// An operand's element type: `f32`, `bf16` or `f16`.
    pub(super) const F32: u8 = 0;
    pub(super) const BF16: u8 = 1;
    pub(super) const F16: u8 = 2;

    pub(super) fn kind<T: 'static>() -> u8 {
        use std::any::TypeId;
        let t = TypeId::of::<T>();
        if t == TypeId::of::<half::bf16>() {
            BF16
        } else if t == TypeId::of::<half::f16>() {
            F16
        } else {
            F32
        }
    }

    const fn size(kind: u8) -> usize {
        if kind == F32 {
            4
        } else {
            2
        }
    }

    /// 16 elements of kind `K` from `p` as `f32`; only the first `live` (the rest zero, not read).
    #[inline(always)]
    unsafe fn load<const K: u8>(p: *const u8, live: usize) -> __m512 {
        let mask: __mmask16 = if live >= 16 { !0 } else { (1u16 << live) - 1 };
        // SAFETY: the caller's: `live` elements from `p` are readable; AVX-512F/BW/VL are enabled in every
        // caller.
        unsafe {
            match K {
                F32 => _mm512_maskz_loadu_ps(mask, p.cast()),
                BF16 => {
                    let h = _mm256_maskz_loadu_epi16(mask, p.cast());
                    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
                }
                _ => _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p.cast())),
            }
        }
    }

    /// `c += a · bᵀ`, `a` `m × l` and `b` `n × l` row-major (elements of kinds `KA` and `K`), all non-empty.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn a_bt<const KA: u8, const K: u8>(
        m: usize,
        n: usize,
        l: usize,
        a: *const u8,
        b: *const u8,
        c: &mut [f32],
    ) {
        let block = (BLOCK_FLOATS / (m + n)).clamp(256, 4096) / 16 * 16;
        let mut start = 0;
        while start < l {
            let len = block.min(l - start);
            for i0 in (0..m).step_by(4) {
                // Rows past the end repeat the last one; their sums are dropped.
                // SAFETY: row (i0 + t) of a has l elements, `start` < l.
                let rows_a: [*const u8; 4] = std::array::from_fn(|t| unsafe {
                    a.add(((i0 + t).min(m - 1) * l + start) * size(KA))
                });
                for j0 in (0..n).step_by(4) {
                    // SAFETY: row (j0 + t) of b has l elements, `start` < l.
                    let rows_b: [*const u8; 4] = std::array::from_fn(|t| unsafe {
                        b.add(((j0 + t).min(n - 1) * l + start) * size(K))
                    });
                    let sums = unsafe { tile::<KA, K>(rows_a, rows_b, len) };
                    for (x, row) in sums.iter().enumerate().take(m - i0) {
                        for (y, s) in row.iter().enumerate().take(n - j0) {
                            c[(i0 + x) * n + j0 + y] += s;
                        }
                    }
                }
            }
            start += len;
        }
    }

    /// The 16 dot products of 4 rows of `a` with 4 rows of `b`, each `len` long.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn tile<const KA: u8, const K: u8>(
        a: [*const u8; 4],
        b: [*const u8; 4],
        len: usize,
    ) -> [[f32; 4]; 4] {
        let mut acc = [[_mm512_setzero_ps(); 4]; 4];
        let mut p = 0;
        let mut step = |av: [__m512; 4], bv: [__m512; 4]| {
            for x in 0..4 {
                for y in 0..4 {
                    acc[x][y] = _mm512_fmadd_ps(av[x], bv[y], acc[x][y]);
                }
            }
        };
        // SAFETY (both loops): every row has `len` readable floats from its pointer; the tail's masked loads
        // touch only the first `len − p` of the remaining ones.
        while p + 16 <= len {
            let av = a.map(|r| unsafe { load::<KA>(r.add(p * size(KA)), 16) });
            let bv = b.map(|r| unsafe { load::<K>(r.add(p * size(K)), 16) });
            step(av, bv);
            p += 16;
        }
        if p < len {
            let av = a.map(|r| unsafe { load::<KA>(r.add(p * size(KA)), len - p) });
            let bv = b.map(|r| unsafe { load::<K>(r.add(p * size(K)), len - p) });
            step(av, bv);
        }
        acc.map(|row| row.map(|v| _mm512_reduce_add_ps(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Partial 4 × 4 tiles at both edges, several inner blocks, a masked tail, and both write modes, against an
    /// `f64` sum, for each pair of operand types the conv kernels pass (`f32` or a rounded `bf16` gradient, times
    /// an `f32`, `bf16` or `f16` image). (The conv tests reach this kernel only on YOLO shapes: full blocks,
    /// lengths a multiple of 16.)
    #[test]
    fn dot_products_match_f64_sums() {
        if !avx512() {
            eprintln!("no AVX-512F here: a_bt never runs, nothing to test");
            return;
        }
        fn case<A: Elem, B: Elem>(
            to_a: fn(f32) -> A,
            to_b: fn(f32) -> B,
            wide: fn(A) -> f32,
            wide_b: fn(B) -> f32,
        ) {
            let (m, n, l) = (5, 7, 3 * 4096 + 13);
            let value =
                |i: usize, seed: usize| ((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0;
            let a: Vec<A> = (0..m * l).map(|i| to_a(value(i, 1))).collect();
            let b: Vec<B> = (0..n * l).map(|i| to_b(value(i, 2))).collect();
            let want: Vec<f64> = (0..m * n)
                .map(|ij| {
                    let (i, j) = (ij / n, ij % n);
                    (0..l)
                        .map(|p| f64::from(wide(a[i * l + p])) * f64::from(wide_b(b[j * l + p])))
                        .sum()
                })
                .collect();
            for accumulate in [false, true] {
                let mut c = vec![if accumulate { 0.5 } else { f32::NAN }; m * n];
                a_bt(m, n, l, &a, &b, &mut c, accumulate);
                let base = if accumulate { 0.5 } else { 0.0 };
                for (k, (got, want)) in c.iter().zip(&want).enumerate() {
                    let want = want + base;
                    assert!(
                        (f64::from(*got) - want).abs() <= 1e-4 * want.abs().max(1.0),
                        "c[{k}] = {got}, want {want} (accumulate {accumulate})"
                    );
                }
            }
        }
        use half::{bf16, f16};
        let id = |v: f32| v;
        case::<f32, f32>(id, id, id, id);
        case::<f32, bf16>(id, bf16::from_f32, id, bf16::to_f32);
        case::<f32, f16>(id, f16::from_f32, id, f16::to_f32);
        case::<bf16, bf16>(bf16::from_f32, bf16::from_f32, bf16::to_f32, bf16::to_f32);
        case::<bf16, f16>(bf16::from_f32, f16::from_f32, bf16::to_f32, f16::to_f32);
    }
}
