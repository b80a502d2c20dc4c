//! Whole-slice conversions between `f32` and the half types, with AVX-512 where the CPU has it.
//!
//! Why not `half`'s `HalfFloatSliceExt` alone: it converts `f16` with F16C 4 or 8 lanes at a time and `bf16`
//! with portable code that compiles to SSE2, and a bf16 training step rounds every activation and gradient it
//! keeps: measured at ~6 % of a YOLOv8n bf16 step. Here `bf16` rounds with AVX512_BF16's `VCVTNEPS2BF16`
//! (nearest even, like `half`; subnormal inputs count as zero, as in every `VDPBF16PS` product) and `f16` with
//! AVX-512F's `VCVTPS2PH`, 16 lanes at a time; other CPUs and the tails use `half`.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

/// Slice conversions of a half type.
pub trait HalfSlice {
    /// `out[i] = self[i]` widened to `f32` (exact).
    fn widen_into(&self, out: &mut [f32]);
    /// `self[i] = src[i]` rounded to nearest even.
    fn round_from(&mut self, src: &[f32]);
}

/// The slice conversions of one half type: AVX-512 blocks where `$round_feature` (and AVX-512F for widening)
/// is present, `half` for the tail and elsewhere.
macro_rules! half_slice {
    ($t:ty, $widen:ident, $round:ident, $round_feature:tt) => {
        impl HalfSlice for [$t] {
            fn widen_into(&self, out: &mut [f32]) {
                assert_eq!(self.len(), out.len());
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: AVX-512F is present; the lengths match.
                    let done = unsafe { x86::$widen(self, out) };
                    self[done..].convert_to_f32_slice(&mut out[done..]);
                    return;
                }
                self.convert_to_f32_slice(out);
            }

            fn round_from(&mut self, src: &[f32]) {
                assert_eq!(self.len(), src.len());
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!($round_feature) {
                    // SAFETY: the feature (with AVX-512F) is present; the lengths match.
                    let done = unsafe { x86::$round(src, self) };
                    self[done..].convert_from_f32_slice(&src[done..]);
                    return;
                }
                self.convert_from_f32_slice(src);
            }
        }
    };
}

half_slice!(bf16, widen_bf16, round_bf16, "avx512bf16");
half_slice!(f16, widen_f16, round_f16, "avx512f");

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::{bf16, f16};

    /// Widens the whole 16-element blocks; returns how many elements it did.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn widen_bf16(src: &[bf16], out: &mut [f32]) -> usize {
        let n = src.len() / 16 * 16;
        for i in (0..n).step_by(16) {
            // SAFETY: i + 16 ≤ n ≤ both lengths.
            unsafe {
                let h = _mm256_loadu_si256(src.as_ptr().add(i).cast());
                let v = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h));
                _mm512_storeu_ps(out.as_mut_ptr().add(i), _mm512_castsi512_ps(v));
            }
        }
        n
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn round_bf16(src: &[f32], out: &mut [bf16]) -> usize {
        let n = src.len() / 16 * 16;
        for i in (0..n).step_by(16) {
            // SAFETY: as above.
            unsafe {
                let v = _mm512_cvtneps_pbh(_mm512_loadu_ps(src.as_ptr().add(i)));
                _mm256_storeu_si256(
                    out.as_mut_ptr().add(i).cast(),
                    std::mem::transmute::<__m256bh, __m256i>(v),
                );
            }
        }
        n
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn widen_f16(src: &[f16], out: &mut [f32]) -> usize {
        let n = src.len() / 16 * 16;
        for i in (0..n).step_by(16) {
            // SAFETY: as above.
            unsafe {
                let h = _mm256_loadu_si256(src.as_ptr().add(i).cast());
                _mm512_storeu_ps(out.as_mut_ptr().add(i), _mm512_cvtph_ps(h));
            }
        }
        n
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn round_f16(src: &[f32], out: &mut [f16]) -> usize {
        let n = src.len() / 16 * 16;
        for i in (0..n).step_by(16) {
            // SAFETY: as above.
            unsafe {
                let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    _mm512_loadu_ps(src.as_ptr().add(i)),
                );
                _mm256_storeu_si256(out.as_mut_ptr().add(i).cast(), h);
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both directions against `half`'s scalar conversions, bit for bit, over normal values, ties, infinities,
    /// zeros and a length with a tail. (Subnormal f32 inputs are left out: VCVTNEPS2BF16 counts them as zero.)
    #[test]
    fn conversions_match_half() {
        let mut values: Vec<f32> = (0..1000)
            .map(|i| ((i as f32) * 0.731 - 300.0) * (1.0 + (i % 13) as f32 * 1e-3))
            .collect();
        values.extend([
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1.0 + f32::EPSILON * 64.0, // a bf16 tie
            65504.0,
            1e-3,
            3.0e38,
        ]);
        let mut b = vec![bf16::ZERO; values.len()];
        b.round_from(&values);
        let mut h = vec![f16::ZERO; values.len()];
        h.round_from(&values);
        for (i, v) in values.iter().enumerate() {
            assert_eq!(b[i].to_bits(), bf16::from_f32(*v).to_bits(), "bf16 of {v}");
            assert_eq!(h[i].to_bits(), f16::from_f32(*v).to_bits(), "f16 of {v}");
        }
        let mut wide = vec![0.0f32; values.len()];
        b.widen_into(&mut wide);
        assert!(wide.iter().zip(&b).all(|(w, x)| *w == x.to_f32()));
        h.widen_into(&mut wide);
        assert!(wide.iter().zip(&h).all(|(w, x)| *w == x.to_f32()));
    }
}
