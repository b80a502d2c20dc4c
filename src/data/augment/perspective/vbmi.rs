//! The horizontal pass of [`super::warp_affine_separable`] with AVX-512 VBMI, 16 output pixels (48 bytes) a
//! step. Every output row blends the same source columns, so each block of 16 columns is planned once per warp:
//! the byte window of the source row it reads (at most 128 bytes, two registers), the permute that picks each
//! left tap from it (the right tap is 3 bytes on) and the blend weights. A source row then costs two loads, two
//! `vpermi2b` and the same per-value `fma(a, p1 − p0, p0)` as the portable loop, where that loop loads every tap
//! on its own. Blocks whose taps leave the source or span more than one window stay with the portable loop.

use std::arch::x86_64::*;

use crate::data::vbmi::available;

/// Output pixels per block.
pub(super) const BLOCK: usize = 16;

/// One block of columns that this kernel blends.
pub(super) struct Block {
    /// First byte of the window in a source row.
    base: usize,
    /// Window offset of each left tap, channel by channel (48 used).
    taps: [u8; 64],
    /// The blend weight of each output value (the column's, repeated per channel).
    weights: [f32; 3 * BLOCK],
}

/// A plan for each block of [`BLOCK`] columns (`(left tap x, weight)` per column) of a source `sw` pixels wide:
/// `None` where the portable loop must blend it, and all `None` on a CPU without AVX-512 VBMI.
pub(super) fn plan(columns: &[(i32, f32)], sw: usize) -> Vec<Option<Block>> {
    let enabled = available();
    columns
        .chunks(BLOCK)
        .map(|block| {
            // both taps inside the source, as the portable loop's fast branch requires
            let inside = block
                .iter()
                .all(|&(ix, _)| (ix as u32 as usize) < sw.saturating_sub(1));
            if !enabled || block.len() != BLOCK || !inside {
                return None;
            }
            let lo = block.iter().map(|&(ix, _)| ix as usize).min()?;
            let hi = block.iter().map(|&(ix, _)| ix as usize).max()?;
            // the right tap's last byte is 3·hi + 5
            if 3 * (hi - lo) + 5 >= 128 {
                return None;
            }
            let mut taps = [0u8; 64];
            let mut weights = [0f32; 3 * BLOCK];
            for (k, &(ix, a)) in block.iter().enumerate() {
                for c in 0..3 {
                    taps[3 * k + c] = (3 * (ix as usize - lo) + c) as u8;
                    weights[3 * k + c] = a;
                }
            }
            Some(Block {
                base: 3 * lo,
                taps,
                weights,
            })
        })
        .collect()
}

/// The 48 blended values of `block` from one source `row` (packed RGB bytes).
pub(super) fn blend(block: &Block, row: &[u8], out: &mut [f32]) {
    assert!(out.len() >= 3 * BLOCK && block.base < row.len());
    // SAFETY: a `Block` exists only where `available()` held (see `plan`); the asserts bound the accesses.
    unsafe { blend_vbmi(block, row, out) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
fn blend_vbmi(block: &Block, row: &[u8], out: &mut [f32]) {
    let window = &row[block.base..];
    let mask = |skip: usize| -> __mmask64 {
        let n = window.len().saturating_sub(skip).min(64);
        if n == 64 {
            u64::MAX
        } else {
            (1u64 << n) - 1
        }
    };
    // SAFETY: masked loads read only the bytes of `window` (lanes past its end are masked off and not read).
    let (a, b) = unsafe {
        (
            _mm512_maskz_loadu_epi8(mask(0), window.as_ptr().cast()),
            _mm512_maskz_loadu_epi8(mask(64), window.as_ptr().wrapping_add(64).cast()),
        )
    };
    // SAFETY: 64 readable bytes.
    let taps = unsafe { _mm512_loadu_si512(block.taps.as_ptr().cast()) };
    let left = _mm512_permutex2var_epi8(a, taps, b);
    let right = _mm512_permutex2var_epi8(a, _mm512_add_epi8(taps, _mm512_set1_epi8(3)), b);
    let widen = |x: __m512i, q: usize| {
        let part = match q {
            0 => _mm512_extracti32x4_epi32::<0>(x),
            1 => _mm512_extracti32x4_epi32::<1>(x),
            _ => _mm512_extracti32x4_epi32::<2>(x),
        };
        _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(part))
    };
    for q in 0..3 {
        let (p0, p1) = (widen(left, q), widen(right, q));
        // SAFETY: 16 readable floats at 16q of `weights`, 16 writable ones at 16q of `out` (asserted ≥ 48).
        unsafe {
            let w = _mm512_loadu_ps(block.weights.as_ptr().add(16 * q));
            let v = _mm512_fmadd_ps(w, _mm512_sub_ps(p1, p0), p0);
            _mm512_storeu_ps(out.as_mut_ptr().add(16 * q), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blend_equals_the_portable_blend() {
        if !available() {
            eprintln!("no AVX-512 VBMI on this CPU: the portable loop runs instead");
            return;
        }
        let sw = 301;
        let row: Vec<u8> = (0..3 * sw).map(|i| (i * 7919 % 253) as u8).collect();
        let mut planned = 0;
        // zoom in, none, out to the widest window; offsets put blocks at both edges of the source
        for (step, start) in [
            (0.37f32, -3.3f32),
            (1.0, 0.5),
            (1.6, 12.25),
            (2.6, -1.0),
            (2.0, 40.0),
        ] {
            let columns: Vec<(i32, f32)> = (0..160)
                .map(|x| {
                    let sx = step.mul_add(x as f32, start);
                    let ix = sx.floor() as i32;
                    (ix, sx - ix as f32)
                })
                .collect();
            for (block, cols) in plan(&columns, sw).iter().zip(columns.chunks(BLOCK)) {
                let Some(block) = block else {
                    // the portable loop's: some tap outside, or the window too wide
                    assert!(
                        cols.iter().any(|&(ix, _)| ix < 0 || ix as usize + 1 >= sw)
                            || 3 * (cols[BLOCK - 1].0 - cols[0].0) + 5 >= 128
                    );
                    continue;
                };
                planned += 1;
                let mut got = [0f32; 3 * BLOCK];
                blend(block, &row, &mut got);
                for (k, &(ix, a)) in cols.iter().enumerate() {
                    for c in 0..3 {
                        let p0 = f32::from(row[3 * ix as usize + c]);
                        let p1 = f32::from(row[3 * ix as usize + 3 + c]);
                        assert_eq!(got[3 * k + c].to_bits(), a.mul_add(p1 - p0, p0).to_bits());
                    }
                }
            }
        }
        assert!(planned >= 20, "{planned} blocks took the kernel");
    }
}
