//! The BatchNorm + SiLU backward's two passes reading half-precision `y` and `dout` in place, each 16-lane
//! vector widened in registers.
//!
//! Why: [`Floats::with_f32`] widens each block of `y` and `dout` into an L1 buffer first, a store and a load per
//! element on top of the conversion (`widen_bf16`/`widen_f16` were 1.6–2.4 % of a YOLOv8n train step at 320 in
//! the half types, nearly all of it here). The arithmetic is the scalar code's ([`super::plane_dz`],
//! [`super::plane_affine2`]) operation for operation, with no fused multiply-adds and the same per-lane partial
//! sums, so the results are bit for bit those of the widened path (`tests` below).

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
    if (ys.1 == x86::F32 && ds.1 == x86::F32) || !avx512() || dz.len() != range.len() {
        return None;
    }
    let c = [mean, invstd, gamma, beta];
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F/BW and F16C are present (`avx512`); `y`, `dout` and `dz` each hold `range.len()`
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

/// Element kinds (also named off x86, where they only label [`view`]'s answer).
mod x86 {
    pub(super) const F32: u8 = 0;
    pub(super) const BF16: u8 = 1;
    pub(super) const F16: u8 = 2;

    #[cfg(target_arch = "x86_64")]
    pub(super) use imp::*;

    #[cfg(target_arch = "x86_64")]
    mod imp {
        use super::{BF16, F32};
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

        /// [`super::super::super::exp`], 16 lanes, the same operations in the same order.
        #[inline(always)]
        unsafe fn exp(x: __m512) -> __m512 {
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

        /// `dz = dout · silu'(gamma·x̂ + beta)` (or `dout`), and `(Σ dz, Σ dz·x̂)` over the block.
        #[target_feature(enable = "avx512f,avx512bw,f16c")]
        pub(in super::super) unsafe fn plane_dz<const ACT: bool, const KY: u8, const KD: u8>(
            y: *const u8,
            dout: *const u8,
            dz: &mut [f32],
            [mean, invstd, gamma, beta]: [f32; 4],
        ) -> (f64, f64) {
            let s = _mm512_set1_ps;
            let (add, sub, mul) = (_mm512_add_ps, _mm512_sub_ps, _mm512_mul_ps);
            let (mut s_dz, mut s_dzx) = (_mm512_setzero_ps(), _mm512_setzero_ps());
            let full = dz.len() - dz.len() % 16;
            for i in (0..full).step_by(16) {
                // SAFETY: the caller's: 16 elements from i lie in each operand.
                unsafe {
                    let xhat = mul(sub(load::<KY>(y, i), s(mean)), s(invstd));
                    let dout = load::<KD>(dout, i);
                    let g = if ACT {
                        let x = add(mul(s(gamma), xhat), s(beta));
                        let sig = _mm512_div_ps(
                            s(1.0),
                            add(
                                s(1.0),
                                exp(_mm512_castsi512_ps(_mm512_xor_si512(
                                    _mm512_castps_si512(x),
                                    _mm512_set1_epi32(i32::MIN),
                                ))),
                            ),
                        );
                        mul(dout, mul(sig, add(s(1.0), mul(x, sub(s(1.0), sig)))))
                    } else {
                        dout
                    };
                    _mm512_storeu_ps(dz.as_mut_ptr().add(i), g);
                    s_dz = add(s_dz, g);
                    s_dzx = add(s_dzx, mul(g, xhat));
                }
            }
            let (mut lanes_dz, mut lanes_dzx) = ([0.0f32; 16], [0.0f32; 16]);
            // SAFETY: 16 floats each.
            unsafe {
                _mm512_storeu_ps(lanes_dz.as_mut_ptr(), s_dz);
                _mm512_storeu_ps(lanes_dzx.as_mut_ptr(), s_dzx);
            }
            let mut total_dz: f64 = lanes_dz.iter().map(|v| f64::from(*v)).sum();
            let mut total_dzx: f64 = lanes_dzx.iter().map(|v| f64::from(*v)).sum();
            for (i, dz) in dz.iter_mut().enumerate().skip(full) {
                // SAFETY: element i lies in each operand.
                let (y, dout) = unsafe { (scalar::<KY>(y, i), scalar::<KD>(dout, i)) };
                let xhat = (y - mean) * invstd;
                let g = if ACT {
                    dout * super::super::super::silu_grad(gamma * xhat + beta)
                } else {
                    dout
                };
                *dz = g;
                total_dz += f64::from(g);
                total_dzx += f64::from(g * xhat);
            }
            (total_dz, total_dzx)
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
    /// with a 13-element tail, against the widened path: equal bit for bit (the trainer's half-precision results
    /// must not depend on which path ran).
    #[test]
    fn half_operands_in_place_match_the_widened_path_bit_for_bit() {
        if !avx512() {
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
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&fused),
                        bits(&widened),
                        "dz, y {ky} dout {kd} act {act}"
                    );
                    assert_eq!(
                        got.0.to_bits(),
                        want.0.to_bits(),
                        "Σ dz, y {ky} dout {kd} act {act}"
                    );
                    assert_eq!(
                        got.1.to_bits(),
                        want.1.to_bits(),
                        "Σ dz·x̂, y {ky} dout {kd} act {act}"
                    );
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
}
