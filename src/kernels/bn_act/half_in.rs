//! The BatchNorm + SiLU epilogues on half-precision tensors in place, each 16-lane vector converted in
//! registers: the forward's `round(act(y · scale + shift))` and the backward's two passes reading half `y` and
//! `dout`.
//!
//! Why: [`Floats::with_f32`] widens each block of `y` and `dout` into an L1 buffer first, and the forward rounds
//! from one, a store and a load per element on top of the conversion (`widen_bf16`/`widen_f16` were 1.6–2.4 % of
//! a YOLOv8n train step at 320 in the half types, nearly all of it here). And the SiLU's sigmoid divides
//! (`VDIVPS`, the scalar loops' bottleneck: 41 % of the forward epilogue's samples sat on the division's store);
//! here it takes a reciprocal estimate and a Newton step.
//!
//! What that changes: nothing in the forward, whose lanes near a rounding midpoint of the half type take the
//! division, so its outputs are the scalar code's bit for bit. The backward's `dz` (kept in `f32`) moves by a
//! few `f32` ulps where the SiLU is on, against the 2^−8 or 2^−11 to which `y` and `dout` were rounded; without
//! the SiLU it is the scalar code's, and the second pass ([`super::plane_affine2`]) is, operation for
//! operation, bit for bit. The per-block sums `(Σ dz, Σ dz·x̂)` add in another order (the tail joins the lanes).

use super::Floats;

/// Pass 1 ([`super::plane_dz`]) on elements `range` of `y` and `dout`, writing `dz` (`range.len()` long).
/// `None` where it does not apply: both operands `f32` (already read in place) or no AVX-512 here.
#[allow(clippy::too_many_arguments)]
pub(super) fn plane_dz(
    y: Floats,
    dout: Floats,
    range: std::ops::Range<usize>,
    [mean, invstd, gamma, beta]: [f32; 4],
    act: bool,
    dz: &mut [f32],
) -> Option<(f64, f64)> {
    let (Some(ys), Some(ds)) = (view(y, &range), view(dout, &range)) else {
        return None;
    };
    if (ys.1 == x86::F32 && ds.1 == x86::F32) || !avx512_vl() || dz.len() != range.len() {
        return None;
    }
    let c = [mean, invstd, gamma, beta];
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F/BW/VL and F16C are present (`avx512_vl`); `y`, `dout` and `dz` each hold `range.len()`
    // elements from their pointers.
    unsafe {
        use x86::{BF16 as B, F16 as H, F32 as F};
        let run = match (act, ys.1, ds.1) {
            (true, F, B) => x86::plane_dz::<true, F, B>,
            (true, F, H) => x86::plane_dz::<true, F, H>,
            (true, B, F) => x86::plane_dz::<true, B, F>,
            (true, B, B) => x86::plane_dz::<true, B, B>,
            (true, B, _) => x86::plane_dz::<true, B, H>,
            (true, _, F) => x86::plane_dz::<true, H, F>,
            (true, _, B) => x86::plane_dz::<true, H, B>,
            (true, _, _) => x86::plane_dz::<true, H, H>,
            (false, F, B) => x86::plane_dz::<false, F, B>,
            (false, F, H) => x86::plane_dz::<false, F, H>,
            (false, B, F) => x86::plane_dz::<false, B, F>,
            (false, B, B) => x86::plane_dz::<false, B, B>,
            (false, B, _) => x86::plane_dz::<false, B, H>,
            (false, _, F) => x86::plane_dz::<false, H, F>,
            (false, _, B) => x86::plane_dz::<false, H, B>,
            (false, _, _) => x86::plane_dz::<false, H, H>,
        };
        Some(run(ys.0, ds.0, dz, c))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (c, act);
        None
    }
}

/// Pass 2 ([`super::plane_affine2`]): `dz[i] = a·dz[i] + b·y[range.start + i] + c0` for a half `y`; false (and
/// nothing done) where it does not apply, as [`plane_dz`].
pub(super) fn plane_affine2(
    dz: &mut [f32],
    y: Floats,
    range: std::ops::Range<usize>,
    (a, b, c0): (f32, f32, f32),
) -> bool {
    let Some(ys) = view(y, &range) else {
        return false;
    };
    if ys.1 == x86::F32 || !avx512() || dz.len() != range.len() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `plane_dz`.
    unsafe {
        if ys.1 == x86::BF16 {
            x86::plane_affine2::<{ x86::BF16 }>(ys.0, dz, [a, b, c0]);
        } else {
            x86::plane_affine2::<{ x86::F16 }>(ys.0, dz, [a, b, c0]);
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, b, c0);
        false
    }
}

/// The forward epilogue `dst[i] = round(act(src[i] · scale + shift))` for a half `dst` (`src` half, or `f32` as
/// the GEMM hands a block over), 16 lanes at a time in registers with a masked tail; false (and nothing done)
/// where it does not apply: `dst` not half, no AVX-512 (with AVX512_BF16 for a `bf16` `dst`), or lengths that
/// differ.
///
/// Why: the widened path ([`super::plane_scale_shift_act`] between `widen_into` and `round_from`) divides for
/// the sigmoid (`VDIVPS`, the loop's bottleneck) and goes through an L1 buffer each way. The result is that
/// path's bit for bit (`tests`): the reciprocal sigmoid's SiLU is within 4 `f32` ulps of the division's, and
/// lanes that close to a midpoint between two half values take the division.
pub(in super::super) fn scale_shift_act_rounded<S: 'static, D: 'static>(
    src: &[S],
    scale: f32,
    shift: f32,
    act: bool,
    dst: &mut [D],
) -> bool {
    let (Some(ks), Some(kd)) = (kind_of::<S>(), kind_of::<D>()) else {
        return false;
    };
    if kd == x86::F32 || src.len() != dst.len() || !avx512_vl() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if kd == x86::BF16 && !std::arch::is_x86_feature_detected!("avx512bf16") {
            return false;
        }
        use x86::{BF16 as B, F16 as H, F32 as F};
        let (src, n, dst) = (
            src.as_ptr().cast::<u8>(),
            src.len(),
            dst.as_mut_ptr().cast::<u16>(),
        );
        let c = [scale, shift];
        // SAFETY: AVX-512F/BW/VL and F16C are present (`avx512_vl`), and AVX512_BF16 for a bf16 `dst`; `src` and
        // `dst` each hold `n` elements of their kinds.
        unsafe {
            match (kd, ks, act) {
                (B, F, true) => x86::act_rounded_bf16::<F, true>(src, n, c, dst),
                (B, F, false) => x86::act_rounded_bf16::<F, false>(src, n, c, dst),
                (B, B, true) => x86::act_rounded_bf16::<B, true>(src, n, c, dst),
                (B, B, false) => x86::act_rounded_bf16::<B, false>(src, n, c, dst),
                (B, _, true) => x86::act_rounded_bf16::<H, true>(src, n, c, dst),
                (B, _, false) => x86::act_rounded_bf16::<H, false>(src, n, c, dst),
                (_, F, true) => x86::act_rounded_f16::<F, true>(src, n, c, dst),
                (_, F, false) => x86::act_rounded_f16::<F, false>(src, n, c, dst),
                (_, B, true) => x86::act_rounded_f16::<B, true>(src, n, c, dst),
                (_, B, false) => x86::act_rounded_f16::<B, false>(src, n, c, dst),
                (_, _, true) => x86::act_rounded_f16::<H, true>(src, n, c, dst),
                (_, _, false) => x86::act_rounded_f16::<H, false>(src, n, c, dst),
            }
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ks, scale, shift, act);
        false
    }
}

/// The element kind of `T`, where it is one of the three float types.
fn kind_of<T: 'static>() -> Option<u8> {
    use std::any::TypeId;
    let t = TypeId::of::<T>();
    [
        (TypeId::of::<f32>(), x86::F32),
        (TypeId::of::<half::bf16>(), x86::BF16),
        (TypeId::of::<half::f16>(), x86::F16),
    ]
    .into_iter()
    .find_map(|(id, kind)| (id == t).then_some(kind))
}

/// The address of element `range.start` and the element kind; `None` when `range` is out of bounds.
fn view(v: Floats, range: &std::ops::Range<usize>) -> Option<(*const u8, u8)> {
    let ok = |len: usize| range.start <= range.end && range.end <= len;
    match v {
        Floats::F32(s) if ok(s.len()) => Some((s[range.start..].as_ptr().cast(), x86::F32)),
        Floats::Bf16(s) if ok(s.len()) => Some((s[range.start..].as_ptr().cast(), x86::BF16)),
        Floats::F16(s) if ok(s.len()) => Some((s[range.start..].as_ptr().cast(), x86::F16)),
        _ => None,
    }
}

#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("f16c")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx512() -> bool {
    false
}

/// [`avx512`] with AVX-512VL, for the masked 16-bit loads and stores of a tail.
fn avx512_vl() -> bool {
    #[cfg(target_arch = "x86_64")]
    return avx512() && std::arch::is_x86_feature_detected!("avx512vl");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Element kinds (also named off x86, where they only label [`view`]'s answer).
mod x86 {
    pub(super) const F32: u8 = 0;
    pub(super) const BF16: u8 = 1;
    pub(super) const F16: u8 = 2;

    #[cfg(target_arch = "x86_64")]
    pub(super) use imp::*;

    #[cfg(target_arch = "x86_64")]
    mod imp {
        use super::{BF16, F16, F32};
        use std::arch::x86_64::*;

        /// One element of kind `K` at index `i` from `p`, as `f32` (exact).
        #[inline(always)]
        unsafe fn scalar<const K: u8>(p: *const u8, i: usize) -> f32 {
            // SAFETY: the caller's: element `i` is readable.
            unsafe {
                match K {
                    F32 => *p.cast::<f32>().add(i),
                    BF16 => f32::from_bits(u32::from(*p.cast::<u16>().add(i)) << 16),
                    _ => half::f16::from_bits(*p.cast::<u16>().add(i)).to_f32(),
                }
            }
        }

        /// Elements `i..i + 16` of kind `K` from `p`, as `f32` (exact). Only inlined into the AVX-512 functions
        /// below (a `target_feature` of its own would forbid `inline(always)`).
        #[inline(always)]
        unsafe fn load<const K: u8>(p: *const u8, i: usize) -> __m512 {
            // SAFETY: the caller's: 16 elements from `i` are readable, and AVX-512F/BW and F16C are enabled.
            unsafe {
                match K {
                    F32 => _mm512_loadu_ps(p.cast::<f32>().add(i)),
                    BF16 => {
                        let h = _mm256_loadu_si256(p.cast::<u16>().add(i).cast());
                        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
                    }
                    _ => _mm512_cvtph_ps(_mm256_loadu_si256(p.cast::<u16>().add(i).cast())),
                }
            }
        }

        /// Elements `i..i + 16` of kind `K` from `p` where `mask` is set (zero elsewhere), as `f32`. As [`load`],
        /// with AVX-512VL besides.
        #[inline(always)]
        unsafe fn load_masked<const K: u8>(p: *const u8, i: usize, mask: __mmask16) -> __m512 {
            // SAFETY: the caller's: the masked elements from `i` are readable.
            unsafe {
                match K {
                    F32 => _mm512_maskz_loadu_ps(mask, p.cast::<f32>().add(i)),
                    BF16 => {
                        let h = _mm256_maskz_loadu_epi16(mask, p.cast::<i16>().add(i));
                        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
                    }
                    _ => _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p.cast::<i16>().add(i))),
                }
            }
        }

        /// `1 / (1 + e^−x)`: [`super::super::super::exp`]'s range reduction and polynomial in fused
        /// multiply-adds, `2^n` by `VSCALEFPS`, and a reciprocal estimate (14 bits) with one Newton step in place
        /// of a division: the SiLU within 4 `f32` ulps of the division's, and its derivative as accurate
        /// (`tests`).
        #[inline(always)]
        unsafe fn sigmoid(x: __m512) -> __m512 {
            // SAFETY: AVX-512F is enabled in every caller.
            unsafe {
                let s = _mm512_set1_ps;
                let m = _mm512_min_ps(
                    _mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), x), s(-87.3)),
                    s(88.3),
                );
                let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    _mm512_mul_ps(m, s(std::f32::consts::LOG2_E)),
                );
                let r = _mm512_fnmadd_ps(n, s(0.693_359_4), m);
                let r = _mm512_fnmadd_ps(n, s(-2.121_944_4e-4), r);
                let mut p = s(1.987_569_1e-4);
                p = _mm512_fmadd_ps(p, r, s(1.398_199_9e-3));
                p = _mm512_fmadd_ps(p, r, s(8.333_452e-3));
                p = _mm512_fmadd_ps(p, r, s(4.166_579_6e-2));
                p = _mm512_fmadd_ps(p, r, s(1.666_666_5e-1));
                p = _mm512_fmadd_ps(p, r, s(0.5));
                let e = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, s(1.0)));
                let d = _mm512_add_ps(_mm512_scalef_ps(e, n), s(1.0));
                let r0 = _mm512_rcp14_ps(d);
                _mm512_fmadd_ps(r0, _mm512_fnmadd_ps(d, r0, s(1.0)), r0)
            }
        }

        /// [`super::super::super::exp`], 16 lanes, the same operations in the same order (no fused
        /// multiply-adds), so the same bits.
        #[inline(always)]
        unsafe fn exp_exact(x: __m512) -> __m512 {
            const LOG2E: f32 = std::f32::consts::LOG2_E;
            const LN2_HI: f32 = 0.693_359_4;
            const LN2_LO: f32 = -2.121_944_4e-4;
            const ROUND: f32 = 12_582_912.0;
            // SAFETY: AVX-512F is enabled in every caller.
            unsafe {
                let s = _mm512_set1_ps;
                let (add, sub, mul) = (_mm512_add_ps, _mm512_sub_ps, _mm512_mul_ps);
                let x = _mm512_min_ps(_mm512_max_ps(x, s(-87.3)), s(88.3));
                let t = add(mul(x, s(LOG2E)), s(ROUND));
                let n = sub(t, s(ROUND));
                let r = sub(sub(x, mul(n, s(LN2_HI))), mul(n, s(LN2_LO)));
                let mut p = s(1.987_569_1e-4);
                p = add(mul(p, r), s(1.398_199_9e-3));
                p = add(mul(p, r), s(8.333_452e-3));
                p = add(mul(p, r), s(4.166_579_6e-2));
                p = add(mul(p, r), s(1.666_666_5e-1));
                p = add(mul(p, r), s(0.5));
                let e = add(add(mul(mul(p, r), r), r), s(1.0));
                let ni = _mm512_sub_epi32(
                    _mm512_castps_si512(t),
                    _mm512_set1_epi32(ROUND.to_bits() as i32),
                );
                let two_n = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
                    ni,
                    _mm512_set1_epi32(127),
                )));
                mul(two_n, e)
            }
        }

        /// How far (in `f32` ulps) the reciprocal sigmoid's SiLU may lie from the division's and still round
        /// to the same half value: lanes closer than this to a rounding midpoint take the division. The two
        /// differ by at most 4 ulps over −90..90 (`tests`); a lane is this close to a midpoint with odds
        /// 31 in 2^16 (`bf16`) or 2^13 (`f16`).
        pub(in super::super) const TIE_ULPS: i32 = 16;

        /// The lanes of `v` whose rounding to half kind `KD` could differ from that of a value `TIE_ULPS` away:
        /// near a midpoint between two half values, or outside the range where the midpoints sit at a fixed
        /// bit pattern (zero, subnormal, infinite or NaN, and for `f16` below 2^−14 or from 65,504 up).
        #[inline(always)]
        unsafe fn near_midpoint<const KD: u8>(v: __m512) -> __mmask16 {
            // SAFETY: AVX-512F is enabled in every caller.
            unsafe {
                let i = _mm512_set1_epi32;
                let bits = _mm512_castps_si512(v);
                let (low_bits, midpoint) = if KD == BF16 {
                    (0xFFFF, 0x8000)
                } else {
                    (0x1FFF, 0x1000)
                };
                let low = _mm512_and_si512(bits, i(low_bits));
                let dist = _mm512_abs_epi32(_mm512_sub_epi32(low, i(midpoint)));
                let near = _mm512_cmplt_epi32_mask(dist, i(TIE_ULPS));
                let magnitude = _mm512_and_si512(bits, i(0x7FFF_FFFF));
                let (lo, hi) = if KD == BF16 {
                    (0x0080_0000, 0x7F80_0000) // the normal f32 range
                } else {
                    (0x3880_0000, 0x477F_E000) // 2^−14, 65,504
                };
                let outside = _mm512_cmplt_epi32_mask(magnitude, i(lo))
                    | _mm512_cmpge_epi32_mask(magnitude, i(hi));
                near | outside
            }
        }

        /// `act(v · scale + shift)` of 16 lanes, rounding to half kind `KD` exactly as the scalar code's
        /// result would ([`super::super::super::plane_scale_shift_act`]): the SiLU by the reciprocal sigmoid,
        /// and by the scalar's division in the lanes [`near_midpoint`] finds (3 % of `bf16` vectors, 26 % of
        /// `f16` ones hold one).
        #[inline(always)]
        unsafe fn scale_shift_act<const ACT: bool, const KD: u8>(
            v: __m512,
            scale: f32,
            shift: f32,
        ) -> __m512 {
            // SAFETY: AVX-512F is enabled in every caller.
            unsafe {
                let s = _mm512_set1_ps;
                let x = _mm512_add_ps(_mm512_mul_ps(v, s(scale)), s(shift));
                if !ACT {
                    return x;
                }
                let fast = _mm512_mul_ps(x, sigmoid(x));
                let near = near_midpoint::<KD>(fast);
                if near == 0 {
                    return fast;
                }
                let neg = _mm512_castsi512_ps(_mm512_xor_si512(
                    _mm512_castps_si512(x),
                    _mm512_set1_epi32(i32::MIN),
                ));
                let exact = _mm512_div_ps(x, _mm512_add_ps(s(1.0), exp_exact(neg)));
                _mm512_mask_blend_ps(near, fast, exact)
            }
        }

        /// The SiLU of each `x` by the reciprocal sigmoid and by the scalar code's division: what
        /// [`TIE_ULPS`] must cover.
        #[cfg(test)]
        #[target_feature(enable = "avx512f")]
        pub(in super::super) unsafe fn silu_both(x: &[f32]) -> Vec<(f32, f32)> {
            x.chunks(16)
                .flat_map(|c| {
                    let mut lanes = [0.0f32; 16];
                    lanes[..c.len()].copy_from_slice(c);
                    let (mut fast, mut exact) = ([0.0f32; 16], [0.0f32; 16]);
                    // SAFETY: 16 floats each.
                    unsafe {
                        let x = _mm512_loadu_ps(lanes.as_ptr());
                        _mm512_storeu_ps(fast.as_mut_ptr(), _mm512_mul_ps(x, sigmoid(x)));
                        let neg = _mm512_castsi512_ps(_mm512_xor_si512(
                            _mm512_castps_si512(x),
                            _mm512_set1_epi32(i32::MIN),
                        ));
                        let d = _mm512_add_ps(_mm512_set1_ps(1.0), exp_exact(neg));
                        _mm512_storeu_ps(exact.as_mut_ptr(), _mm512_div_ps(x, d));
                    }
                    fast.into_iter()
                        .zip(exact)
                        .take(c.len())
                        .collect::<Vec<_>>()
                })
                .collect()
        }

        /// [`super::super::scale_shift_act_rounded`] into half kind `KD`, each vector rounded by `round`. Only
        /// inlined into the two functions below, whose features differ (AVX512_BF16 for `bf16`).
        #[inline(always)]
        unsafe fn act_rounded<const KS: u8, const KD: u8, const ACT: bool>(
            src: *const u8,
            n: usize,
            [scale, shift]: [f32; 2],
            dst: *mut u16,
            round: impl Fn(__m512) -> __m256i,
        ) {
            let full = n - n % 16;
            for i in (0..full).step_by(16) {
                // SAFETY: the caller's: 16 elements from i lie in src and dst.
                unsafe {
                    let v = scale_shift_act::<ACT, KD>(load::<KS>(src, i), scale, shift);
                    _mm256_storeu_si256(dst.add(i).cast(), round(v));
                }
            }
            if full < n {
                let mask: __mmask16 = (1 << (n - full)) - 1;
                // SAFETY: the masked elements from `full` lie in src and dst.
                unsafe {
                    let v = load_masked::<KS>(src, full, mask);
                    let v = scale_shift_act::<ACT, KD>(v, scale, shift);
                    _mm256_mask_storeu_epi16(dst.add(full).cast(), mask, round(v));
                }
            }
        }

        /// [`act_rounded`] into `bf16` (`VCVTNEPS2BF16`).
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c,avx512bf16")]
        pub(in super::super) unsafe fn act_rounded_bf16<const KS: u8, const ACT: bool>(
            src: *const u8,
            n: usize,
            coef: [f32; 2],
            dst: *mut u16,
        ) {
            // SAFETY: the caller's; AVX512_BF16 is enabled here.
            unsafe {
                act_rounded::<KS, BF16, ACT>(src, n, coef, dst, |v| {
                    std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(v))
                })
            }
        }

        /// [`act_rounded`] into `f16` (`VCVTPS2PH`, nearest even).
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
        pub(in super::super) unsafe fn act_rounded_f16<const KS: u8, const ACT: bool>(
            src: *const u8,
            n: usize,
            coef: [f32; 2],
            dst: *mut u16,
        ) {
            // SAFETY: the caller's.
            unsafe {
                act_rounded::<KS, F16, ACT>(src, n, coef, dst, |v| {
                    _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v)
                })
            }
        }

        /// `dz = dout · silu'(gamma·x̂ + beta)` (or `dout`), and `(Σ dz, Σ dz·x̂)` over the block; the tail in
        /// one masked vector (its dead lanes add zeros).
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
        pub(in super::super) unsafe fn plane_dz<const ACT: bool, const KY: u8, const KD: u8>(
            y: *const u8,
            dout: *const u8,
            dz: &mut [f32],
            [mean, invstd, gamma, beta]: [f32; 4],
        ) -> (f64, f64) {
            let s = _mm512_set1_ps;
            let (add, sub, mul) = (_mm512_add_ps, _mm512_sub_ps, _mm512_mul_ps);
            let grad = |y: __m512, dout: __m512| -> (__m512, __m512) {
                // SAFETY: AVX-512F is enabled here.
                unsafe {
                    let xhat = mul(sub(y, s(mean)), s(invstd));
                    let g = if ACT {
                        let x = _mm512_fmadd_ps(s(gamma), xhat, s(beta));
                        let sig = sigmoid(x);
                        mul(dout, mul(sig, _mm512_fmadd_ps(x, sub(s(1.0), sig), s(1.0))))
                    } else {
                        dout
                    };
                    (g, xhat)
                }
            };
            let (mut s_dz, mut s_dzx) = (_mm512_setzero_ps(), _mm512_setzero_ps());
            let n = dz.len();
            let full = n - n % 16;
            for i in (0..full).step_by(16) {
                // SAFETY: the caller's: 16 elements from i lie in each operand.
                unsafe {
                    let (g, xhat) = grad(load::<KY>(y, i), load::<KD>(dout, i));
                    _mm512_storeu_ps(dz.as_mut_ptr().add(i), g);
                    s_dz = add(s_dz, g);
                    s_dzx = _mm512_fmadd_ps(g, xhat, s_dzx);
                }
            }
            if full < n {
                let mask: __mmask16 = (1 << (n - full)) - 1;
                // SAFETY: the masked elements from `full` lie in each operand; dead lanes load zeros, so their
                // dout and g are zero.
                unsafe {
                    let (g, xhat) = grad(
                        load_masked::<KY>(y, full, mask),
                        load_masked::<KD>(dout, full, mask),
                    );
                    _mm512_mask_storeu_ps(dz.as_mut_ptr().add(full), mask, g);
                    s_dz = add(s_dz, g);
                    s_dzx = _mm512_fmadd_ps(g, xhat, s_dzx);
                }
            }
            let (mut lanes_dz, mut lanes_dzx) = ([0.0f32; 16], [0.0f32; 16]);
            // SAFETY: 16 floats each.
            unsafe {
                _mm512_storeu_ps(lanes_dz.as_mut_ptr(), s_dz);
                _mm512_storeu_ps(lanes_dzx.as_mut_ptr(), s_dzx);
            }
            let total = |lanes: [f32; 16]| lanes.iter().map(|v| f64::from(*v)).sum::<f64>();
            (total(lanes_dz), total(lanes_dzx))
        }

        /// `dz = a·dz + b·y + c0`.
        #[target_feature(enable = "avx512f,avx512bw,f16c")]
        pub(in super::super) unsafe fn plane_affine2<const KY: u8>(
            y: *const u8,
            dz: &mut [f32],
            [a, b, c0]: [f32; 3],
        ) {
            let s = _mm512_set1_ps;
            let full = dz.len() - dz.len() % 16;
            for i in (0..full).step_by(16) {
                // SAFETY: the caller's: 16 elements from i lie in y and dz.
                unsafe {
                    let p = dz.as_mut_ptr().add(i);
                    let d = _mm512_loadu_ps(p);
                    let ab = _mm512_add_ps(
                        _mm512_mul_ps(s(a), d),
                        _mm512_mul_ps(s(b), load::<KY>(y, i)),
                    );
                    _mm512_storeu_ps(p, _mm512_add_ps(ab, s(c0)));
                }
            }
            for (i, d) in dz.iter_mut().enumerate().skip(full) {
                // SAFETY: element i lies in y.
                let y = unsafe { scalar::<KY>(y, i) };
                *d = a * *d + b * y + c0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    fn values(len: usize, seed: u32, spread: f32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let v = (i as u32).wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503);
                ((v >> 8) as f32 / (1u32 << 24) as f32 - 0.45) * spread
            })
            .collect()
    }

    /// Both passes, for every pair of operand types with a half one, with and without the SiLU, on a block
    /// with a 13-element tail, against the widened path: equal bit for bit without the SiLU and in pass 2; with
    /// it, `dz` within 4 `f32` ulps (relative 4.8e-7; the reciprocal sigmoid) and the sums within 1e-6 of
    /// `Σ |terms|`. Dropping the tail, or a dead tail lane that adds, fails it.
    #[test]
    fn half_operands_in_place_match_the_widened_path() {
        if !avx512_vl() {
            eprintln!("no AVX-512 here: the widened path runs, nothing to compare");
            return;
        }
        let len = 3 * 16 + 13;
        let range = 5..5 + len;
        let y32 = values(len + 9, 1, 8.0);
        let d32 = values(len + 9, 2, 0.01);
        let (y16, d16): (Vec<f16>, Vec<f16>) = (
            y32.iter().map(|v| f16::from_f32(*v)).collect(),
            d32.iter().map(|v| f16::from_f32(*v)).collect(),
        );
        let (yb, db): (Vec<bf16>, Vec<bf16>) = (
            y32.iter().map(|v| bf16::from_f32(*v)).collect(),
            d32.iter().map(|v| bf16::from_f32(*v)).collect(),
        );
        let kinds = |which: usize| match which {
            0 => [Floats::F32(&y32), Floats::F32(&d32)],
            1 => [Floats::Bf16(&yb), Floats::Bf16(&db)],
            _ => [Floats::F16(&y16), Floats::F16(&d16)],
        };
        let coef = [0.3f32, 1.7, 0.9, -0.2];
        let mut compared = 0;
        for ky in 0..3 {
            for kd in 0..3 {
                let (y, dout) = (kinds(ky)[0], kinds(kd)[1]);
                for act in [false, true] {
                    let mut fused = vec![f32::NAN; len];
                    let got = plane_dz(y, dout, range.clone(), coef, act, &mut fused);
                    if ky == 0 && kd == 0 {
                        assert!(got.is_none(), "f32 operands are read in place already");
                        continue;
                    }
                    let got = got.expect("AVX-512 is here, so half operands take the fused pass");
                    let mut widened = vec![f32::NAN; len];
                    let want = y.with_f32(range.clone(), |y| {
                        dout.with_f32(range.clone(), |dout| {
                            let [m, s, g, b] = coef;
                            super::super::plane_dz(y, dout, m, s, g, b, act, &mut widened)
                        })
                    });
                    let at = format!("y {ky} dout {kd} act {act}");
                    if act {
                        for (i, (a, b)) in fused.iter().zip(&widened).enumerate() {
                            // silu' ≤ 1.1 in size, and cancels near x = −1.28: against |dout|
                            let tol = 4.0 * f32::EPSILON * (b.abs() + d32[5 + i].abs());
                            assert!((a - b).abs() <= tol, "dz[{i}] {a} vs {b}, {at}");
                        }
                        let abs_dz: f64 = widened.iter().map(|v| f64::from(v.abs())).sum();
                        assert!((got.0 - want.0).abs() <= 1e-6 * abs_dz, "Σ dz, {at}");
                        assert!(
                            (got.1 - want.1).abs() <= 1e-6 * 8.0 * abs_dz,
                            "Σ dz·x̂, {at}"
                        );
                    } else {
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&fused), bits(&widened), "dz, {at}");
                        // the same terms, summed in another order (the tail joins the lanes)
                        let abs_dz: f64 = widened.iter().map(|v| f64::from(v.abs())).sum();
                        assert!((got.0 - want.0).abs() <= 1e-6 * abs_dz, "Σ dz, {at}");
                        assert!(
                            (got.1 - want.1).abs() <= 1e-6 * 8.0 * abs_dz,
                            "Σ dz·x̂, {at}"
                        );
                    }
                    compared += 1;
                }
                let mut fused = d32[..len].to_vec();
                let mut widened = fused.clone();
                let done = plane_affine2(&mut fused, y, range.clone(), (0.7, -1.3, 0.01));
                assert_eq!(done, ky != 0, "pass 2 runs in place for a half y only");
                if done {
                    y.with_f32(range.clone(), |y| {
                        super::super::plane_affine2(&mut widened, y, 0.7, -1.3, 0.01)
                    });
                    assert_eq!(fused, widened, "pass 2, y {ky}");
                }
            }
        }
        assert_eq!(compared, 16);
    }

    /// The SiLU's derivative on the vector path (the reciprocal sigmoid) against `f64`, over −90..90 (past
    /// both clamps) in steps that hit no grid, measured in `f32` ulps of the terms' size (`silu'` cancels near
    /// x = −1.28, and `1 − s` for large x): no worse than the scalar path's exact division, 8.14 ulps both, from
    /// that cancellation. Without the Newton step (a 14-bit estimate) it fails.
    #[test]
    fn reciprocal_sigmoid_is_as_accurate_as_the_division() {
        if !avx512_vl() {
            eprintln!("no AVX-512 here: nothing to test");
            return;
        }
        let xs: Vec<f32> = (0..18_000)
            .map(|i| -90.0 + i as f32 * 0.010_003_7)
            .collect();
        let ones = vec![1.0f32; xs.len()];
        // pass 1 with mean 0, invstd 1, gamma 1, beta 0 gives dz = silu'(x)
        let mut dz = vec![0.0f32; xs.len()];
        plane_dz(
            Floats::F32(&xs),
            Floats::Bf16(&ones.iter().map(|v| bf16::from_f32(*v)).collect::<Vec<_>>()),
            0..xs.len(),
            [0.0, 1.0, 1.0, 0.0],
            true,
            &mut dz,
        )
        .expect("AVX-512 is here");
        let scalar: Vec<f32> = xs.iter().map(|x| super::super::silu_grad(*x)).collect();
        let (mut worst, mut worst_scalar) = (0.0f64, 0.0f64);
        for ((x, got), exact_path) in xs.iter().zip(&dz).zip(&scalar) {
            // the kernels clamp e^−x's argument to −87.3..88.3, as the scalar `exp`
            let x = f64::from(*x);
            let s = 1.0 / (1.0 + (-x).clamp(-87.3, 88.3).exp());
            let want = s * (1.0 + x * (1.0 - s));
            // against the terms' size: silu' crosses zero near x = −1.28, where 1 + x(1 − s) cancels
            let size = s * (1.0 + x.abs() * (1.0 - s));
            let err = (f64::from(*got) - want).abs();
            if size > 1e-30 {
                worst = worst.max(err / size / f64::from(f32::EPSILON));
                let err = (f64::from(*exact_path) - want).abs();
                worst_scalar = worst_scalar.max(err / size / f64::from(f32::EPSILON));
            } else {
                assert!(err < 1e-37, "silu'({x}) = {got}, want {want}");
            }
        }
        assert!(
            worst <= worst_scalar.max(4.0) + 0.5,
            "silu' within {worst:.2} ulps of the terms, the scalar path {worst_scalar:.2}"
        );
    }

    /// The forward epilogue from each source kind into each half type, with and without the SiLU, on 4,109
    /// values over −12..12 (a 13-element tail), with round and with full-significand BatchNorm coefficients
    /// (round ones put many products on half-type midpoints): bit for bit the scalar path's result, widened,
    /// [`super::super::plane_scale_shift_act`], rounded. Without the fallback to the division near midpoints,
    /// or without the tail, it fails.
    #[test]
    fn forward_epilogue_equals_the_scalar_path_bit_for_bit() {
        if !avx512_vl() {
            eprintln!("no AVX-512 here: nothing to test");
            return;
        }
        use super::super::super::half_slice::HalfSlice;
        #[allow(clippy::too_many_arguments)]
        fn check<S: 'static, D: 'static + Copy + PartialEq>(
            src: &[S],
            wide: &[f32],
            zero: D,
            round: fn(&mut [D], &[f32]),
            [scale, shift]: [f32; 2],
            act: bool,
            what: &str,
        ) {
            let mut got = vec![zero; src.len()];
            assert!(
                scale_shift_act_rounded(src, scale, shift, act, &mut got),
                "{what}: applies"
            );
            let mut exact = vec![0.0f32; src.len()];
            super::super::plane_scale_shift_act(wide, scale, shift, act, &mut exact);
            let mut want = vec![zero; src.len()];
            round(&mut want, &exact);
            let off = got.iter().zip(&want).filter(|(g, w)| g != w).count();
            assert_eq!(off, 0, "{what}: {off} of {} differ", src.len());
        }
        let len = 4096 + 13;
        let y32 = values(len, 3, 24.0);
        let yb: Vec<bf16> = y32.iter().map(|v| bf16::from_f32(*v)).collect();
        let yh: Vec<f16> = y32.iter().map(|v| f16::from_f32(*v)).collect();
        let wide_b: Vec<f32> = yb.iter().map(|v| v.to_f32()).collect();
        let wide_h: Vec<f32> = yh.iter().map(|v| v.to_f32()).collect();
        let has_bf16 = std::arch::is_x86_feature_detected!("avx512bf16");
        let to_h: fn(&mut [f16], &[f32]) = |d, s| d.round_from(s);
        let to_b: fn(&mut [bf16], &[f32]) = |d, s| d.round_from(s);
        for coef in [
            [0.83f32, -0.31],
            [0.830_517_6, -0.310_993_4],
            [6.394_465, 0.001_499_368_7],
        ] {
            for act in [false, true] {
                let w = format!("{coef:?} act {act}");
                check(
                    &y32,
                    &y32,
                    f16::ZERO,
                    to_h,
                    coef,
                    act,
                    &format!("f32 -> f16 {w}"),
                );
                check(
                    &yb,
                    &wide_b,
                    f16::ZERO,
                    to_h,
                    coef,
                    act,
                    &format!("bf16 -> f16 {w}"),
                );
                check(
                    &yh,
                    &wide_h,
                    f16::ZERO,
                    to_h,
                    coef,
                    act,
                    &format!("f16 -> f16 {w}"),
                );
                if has_bf16 {
                    check(
                        &y32,
                        &y32,
                        bf16::ZERO,
                        to_b,
                        coef,
                        act,
                        &format!("f32 -> bf16 {w}"),
                    );
                    check(
                        &yb,
                        &wide_b,
                        bf16::ZERO,
                        to_b,
                        coef,
                        act,
                        &format!("bf16 -> bf16 {w}"),
                    );
                    check(
                        &yh,
                        &wide_h,
                        bf16::ZERO,
                        to_b,
                        coef,
                        act,
                        &format!("f16 -> bf16 {w}"),
                    );
                } else {
                    let mut out = vec![bf16::ZERO; len];
                    assert!(!scale_shift_act_rounded(
                        &y32, coef[0], coef[1], act, &mut out
                    ));
                }
            }
        }
    }

    /// What the midpoint margin must cover: the reciprocal sigmoid's SiLU against the division's over
    /// −90..90 in steps that hit no grid, at most 4 `f32` ulps apart (measured), half the margin or less.
    #[test]
    fn reciprocal_silu_is_within_the_midpoint_margin() {
        if !avx512_vl() {
            eprintln!("no AVX-512 here: nothing to test");
            return;
        }
        let xs: Vec<f32> = (0..180_000)
            .map(|i| -90.0 + i as f32 * 0.001_000_37)
            .collect();
        // SAFETY: AVX-512F is present.
        let both = unsafe { x86::silu_both(&xs) };
        let mut worst = 0i64;
        for (x, (fast, exact)) in xs.iter().zip(both) {
            if exact.abs() < f32::MIN_POSITIVE {
                // outside the normal range every lane takes the division (`near_midpoint`)
                continue;
            }
            assert_eq!(fast.signum(), exact.signum(), "silu({x})");
            let ulps = (i64::from(fast.to_bits()) - i64::from(exact.to_bits())).abs();
            worst = worst.max(ulps);
        }
        eprintln!("the reciprocal SiLU is within {worst} ulps of the division's");
        assert!(
            2 * worst <= i64::from(x86::TIE_ULPS),
            "the reciprocal SiLU is {worst} ulps from the division's"
        );
    }
}
