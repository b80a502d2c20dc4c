//! [`super::color`]'s HSV augmentation with AVX-512 VBMI, 64 pixels a step, for x86-64 CPUs that have it
//! (Intel since Ice Lake, AMD since Zen 4). The portable 16-lane code spends most of its time in gathers: five
//! table lookups per pixel, one load per lane each. Here a 256-entry byte table is two `vpermi2b` and a blend
//! for 64 pixels, the two reciprocal tables are recomputed by a division (exact, see
//! `divisions_equal_the_reciprocal_tables`), and the RGB bytes are split into planes and joined again by byte
//! permutes. The arithmetic is the portable code's, operation for operation, so the bytes are the same; the tests
//! compare the two on every colour class.

use std::arch::x86_64::*;

use super::{HsvLut, HSV_SHIFT};
use crate::data::vbmi::{available, from_planes, load, to_planes};

/// Pixels per step.
pub(super) const STEP: usize = 64;

/// [`HsvLut::apply`] on the first `pixels.len() / 192 · 64` pixels of packed RGB bytes; returns how many bytes
/// it converted (the caller converts the rest).
///
/// # Panics
/// Never; returns 0 when the CPU lacks AVX-512 VBMI.
pub(super) fn apply(lut: &HsvLut, pixels: &mut [u8]) -> usize {
    if !available() {
        return 0;
    }
    // SAFETY: the features `apply_vbmi` is compiled for were detected above.
    unsafe { apply_vbmi(lut, pixels) }
}

/// A 256-entry byte table as four registers.
#[derive(Clone, Copy)]
struct Table([__m512i; 4]);

#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[inline]
fn table(t: &[u8; 256]) -> Table {
    let part = |i: usize| -> &[u8; 64] { t[64 * i..][..64].try_into().expect("64 bytes") };
    Table([load(part(0)), load(part(1)), load(part(2)), load(part(3))])
}

/// `t[x]` for each of 64 bytes: entries 0..128 and 128..256 by one permute each, chosen by bit 7.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[inline]
fn lookup(t: Table, x: __m512i) -> __m512i {
    let low = _mm512_permutex2var_epi8(t.0[0], x, t.0[1]);
    let high = _mm512_permutex2var_epi8(t.0[2], x, t.0[3]);
    _mm512_mask_blend_epi8(_mm512_movepi8_mask(x), low, high)
}

/// Lanes `16q .. 16q + 16` of 64 bytes, widened to `i32`.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[inline]
fn quarter(x: __m512i, q: usize) -> __m512i {
    let part = match q {
        0 => _mm512_extracti32x4_epi32::<0>(x),
        1 => _mm512_extracti32x4_epi32::<1>(x),
        2 => _mm512_extracti32x4_epi32::<2>(x),
        _ => _mm512_extracti32x4_epi32::<3>(x),
    };
    _mm512_cvtepu8_epi32(part)
}

/// Four registers of 16 `i32` (each 0..=255) narrowed into 64 bytes, lane order kept.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[inline]
fn narrow(q: [__m512i; 4]) -> __m512i {
    let zero = _mm512_setzero_si512();
    let byte = |i: usize| _mm512_cvtusepi32_epi8(_mm512_max_epi32(q[i], zero));
    let x = _mm512_castsi128_si512(byte(0));
    let x = _mm512_inserti32x4::<1>(x, byte(1));
    let x = _mm512_inserti32x4::<2>(x, byte(2));
    _mm512_inserti32x4::<3>(x, byte(3))
}

/// `round(numerator / x)`, ties to even, for `x` in 1..=255 and 0 for `x = 0`: the reciprocal tables of
/// `color::div_tables`.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[inline]
fn reciprocal(numerator: f32, x: __m512i) -> __m512i {
    let q = _mm512_div_ps(_mm512_set1_ps(numerator), _mm512_cvtepi32_ps(x));
    let q = _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(q);
    _mm512_maskz_mov_epi32(_mm512_test_epi32_mask(x, x), q)
}

/// `color::rgb_to_hsv_with` for 16 pixels (lanes `16q ..` of the planes): `[h, s]`; v is the plane maximum.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[inline]
fn hue_saturation(
    rgb: [__m512i; 3],
    v: __m512i,
    diff: __m512i,
    masks: [u64; 2],
    q: usize,
) -> [__m512i; 2] {
    let [r, g, b] = [quarter(rgb[0], q), quarter(rgb[1], q), quarter(rgb[2], q)];
    let (v, diff) = (quarter(v, q), quarter(diff, q));
    let [vr, vg] = [
        (masks[0] >> (16 * q)) as __mmask16,
        (masks[1] >> (16 * q)) as __mmask16,
    ];
    let round = _mm512_set1_epi32(1 << (HSV_SHIFT - 1));
    let sdiv = reciprocal((255 << HSV_SHIFT) as f32, v);
    let s = _mm512_srli_epi32::<HSV_SHIFT>(_mm512_add_epi32(_mm512_mullo_epi32(diff, sdiv), round));
    let d2 = _mm512_add_epi32(diff, diff);
    let from_b = _mm512_add_epi32(_mm512_sub_epi32(b, r), d2); // v == g
    let from_r = _mm512_add_epi32(_mm512_sub_epi32(r, g), _mm512_add_epi32(d2, d2)); // v == b
    let h = _mm512_mask_blend_epi32(vg, from_r, from_b);
    let h = _mm512_mask_blend_epi32(vr, h, _mm512_sub_epi32(g, b));
    let hdiv = reciprocal(((180 << HSV_SHIFT) / 6) as f32, diff);
    let h = _mm512_srai_epi32::<HSV_SHIFT>(_mm512_add_epi32(_mm512_mullo_epi32(h, hdiv), round));
    let negative = _mm512_cmplt_epi32_mask(h, _mm512_setzero_si512());
    let h = _mm512_mask_add_epi32(h, negative, h, _mm512_set1_epi32(180));
    [h, s]
}

/// `color::hsv_to_rgb_i32` for 16 pixels given as `i32` lanes: `[r, g, b]` as `i32` lanes.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[inline]
fn hsv_to_rgb16(h: __m512i, s: __m512i, v: __m512i) -> [__m512i; 3] {
    const TRUNC: i32 = _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC;
    let f = |x| _mm512_cvtepi32_ps(x);
    let h = _mm512_mul_ps(f(h), _mm512_set1_ps(6.0f32 / 180.0));
    let s = _mm512_mul_ps(f(s), _mm512_set1_ps(1.0f32 / 255.0));
    let v = _mm512_mul_ps(f(v), _mm512_set1_ps(1.0f32 / 255.0));
    let pre_sector = _mm512_roundscale_ps::<TRUNC>(h);
    let frac = _mm512_sub_ps(h, pre_sector);
    let sixths =
        _mm512_roundscale_ps::<TRUNC>(_mm512_mul_ps(pre_sector, _mm512_set1_ps(1.0f32 / 6.0)));
    let sector = _mm512_cvtt_roundps_epi32::<{ _MM_FROUND_NO_EXC }>(_mm512_sub_ps(
        pre_sector,
        _mm512_mul_ps(sixths, _mm512_set1_ps(6.0)),
    ));
    let one = _mm512_set1_ps(1.0);
    // 1 - s·x with one rounding: the f64 product and difference of `hsv_to_rgb_i32` (checked equal)
    let one_minus = |x| _mm512_fnmadd_ps(s, x, one);
    let p = _mm512_mul_ps(v, one_minus(one));
    let q = _mm512_mul_ps(v, one_minus(frac));
    let t = _mm512_mul_ps(v, one_minus(_mm512_sub_ps(one, frac)));
    let is = |k: i32| _mm512_cmpeq_epi32_mask(sector, _mm512_set1_epi32(k));
    let [s0, s1, s2, s3, s4] = [is(0), is(1), is(2), is(3), is(4)];
    // OpenCV's sector table, as `hsv_to_rgb_i32`'s matches; sectors ≥ 5 take the last row
    let r = _mm512_mask_mov_ps(v, s1, q);
    let r = _mm512_mask_mov_ps(r, s2 | s3, p);
    let r = _mm512_mask_mov_ps(r, s4, t);
    let g = _mm512_mask_mov_ps(p, s0, t);
    let g = _mm512_mask_mov_ps(g, s1 | s2, v);
    let g = _mm512_mask_mov_ps(g, s3, q);
    let b = _mm512_mask_mov_ps(q, s0 | s1, p);
    let b = _mm512_mask_mov_ps(b, s2, t);
    let b = _mm512_mask_mov_ps(b, s3 | s4, v);
    let scale = _mm512_set1_ps(255.0);
    let byte = |c| _mm512_cvtt_roundps_epi32::<{ _MM_FROUND_NO_EXC }>(_mm512_mul_ps(c, scale));
    [byte(r), byte(g), byte(b)]
}

/// RGB → HSV → tables → RGB for 64 pixels.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[inline]
fn step(tables: &[Table; 3], packed: &mut [u8; 192]) {
    let [r, g, b] = to_planes(packed);
    let v = _mm512_max_epu8(_mm512_max_epu8(r, g), b);
    let diff = _mm512_sub_epi8(v, _mm512_min_epu8(_mm512_min_epu8(r, g), b));
    let masks = [_mm512_cmpeq_epi8_mask(v, r), _mm512_cmpeq_epi8_mask(v, g)];
    let [h0, s0] = hue_saturation([r, g, b], v, diff, masks, 0);
    let [h1, s1] = hue_saturation([r, g, b], v, diff, masks, 1);
    let [h2, s2] = hue_saturation([r, g, b], v, diff, masks, 2);
    let [h3, s3] = hue_saturation([r, g, b], v, diff, masks, 3);
    let h = lookup(tables[0], narrow([h0, h1, h2, h3]));
    let s = lookup(tables[1], narrow([s0, s1, s2, s3]));
    let v = lookup(tables[2], v);
    let rgb = |q: usize| hsv_to_rgb16(quarter(h, q), quarter(s, q), quarter(v, q));
    let [r0, g0, b0] = rgb(0);
    let [r1, g1, b1] = rgb(1);
    let [r2, g2, b2] = rgb(2);
    let [r3, g3, b3] = rgb(3);
    from_planes(
        [
            narrow([r0, r1, r2, r3]),
            narrow([g0, g1, g2, g3]),
            narrow([b0, b1, b2, b3]),
        ],
        packed,
    );
}

#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[inline]
fn apply_vbmi(lut: &HsvLut, pixels: &mut [u8]) -> usize {
    let tables = [table(&lut.hue), table(&lut.saturation), table(&lut.value)];
    let mut done = 0;
    for chunk in pixels.chunks_exact_mut(3 * STEP) {
        step(&tables, chunk.try_into().expect("192 bytes"));
        done += 3 * STEP;
    }
    done
}

#[cfg(test)]
mod tests {
    use super::super::{div_tables, hsv_to_rgb_i32, rgb_to_hsv_with};
    use super::*;

    /// 16 `i32` lanes from values.
    fn lanes(values: impl Fn(usize) -> i32) -> __m512i {
        let v: [i32; 16] = std::array::from_fn(values);
        // SAFETY: 64 readable bytes.
        unsafe { _mm512_loadu_si512(v.as_ptr().cast()) }
    }

    fn values(x: __m512i) -> [i32; 16] {
        let mut v = [0i32; 16];
        // SAFETY: 64 writable bytes.
        unsafe { _mm512_storeu_si512(v.as_mut_ptr().cast(), x) };
        v
    }

    #[test]
    fn divisions_equal_the_reciprocal_tables() {
        if !available() {
            eprintln!("no AVX-512 VBMI on this CPU: the portable path runs instead");
            return;
        }
        let t = div_tables();
        for base in (0..256).step_by(16) {
            let x = lanes(|k| (base + k) as i32);
            // SAFETY: the features were detected.
            let [s, h] = unsafe {
                [
                    reciprocal((255 << HSV_SHIFT) as f32, x),
                    reciprocal(((180 << HSV_SHIFT) / 6) as f32, x),
                ]
            };
            assert_eq!(values(s), std::array::from_fn(|k| t.sdiv[base + k]));
            assert_eq!(values(h), std::array::from_fn(|k| t.hdiv[base + k]));
        }
    }

    #[test]
    fn hsv_to_rgb_equals_the_portable_conversion() {
        if !available() {
            eprintln!("no AVX-512 VBMI on this CPU: the portable path runs instead");
            return;
        }
        // every hue and saturation byte (one fused multiply-add here, an f64 product there), values spread
        for v in (0..256).step_by(5).chain([254, 255]) {
            for s in 0..256 {
                for h0 in (0..256).step_by(16) {
                    // SAFETY: the features were detected.
                    let rgb = unsafe {
                        hsv_to_rgb16(
                            lanes(|k| (h0 + k) as i32),
                            _mm512_set1_epi32(s),
                            _mm512_set1_epi32(v),
                        )
                    }
                    .map(values);
                    for k in 0..16 {
                        let want = hsv_to_rgb_i32([(h0 + k) as i32, s, v]);
                        let got = rgb.map(|c| c[k]);
                        assert_eq!(
                            got,
                            want.map(i32::from),
                            "hsv {:?}",
                            [h0 + k, s as usize, v as usize]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn apply_equals_the_portable_conversion_on_every_red_green_pair() {
        if !available() {
            eprintln!("no AVX-512 VBMI on this CPU: the portable path runs instead");
            return;
        }
        let t = div_tables();
        let pixels: Vec<u8> = (0..1u32 << 16)
            .flat_map(|i| {
                let (r, g) = ((i >> 8) as u8, i as u8);
                [0u8, 1, 114, 255, r ^ 0x5a, g.wrapping_mul(7)].map(|b| [r, g, b])
            })
            .flatten()
            .collect();
        for gains in [[0.0, 0.0, 0.0], [0.013, -0.61, 0.37], [-0.015, 0.7, -0.4]] {
            let lut = HsvLut::from_gains(gains);
            let mut got = pixels.clone();
            assert_eq!(apply(&lut, &mut got), pixels.len());
            for (p, q) in pixels.chunks_exact(3).zip(got.chunks_exact(3)) {
                let hsv = rgb_to_hsv_with(t, [p[0], p[1], p[2]].map(i32::from));
                let mapped = [
                    lut.hue[hsv[0] as usize],
                    lut.saturation[hsv[1] as usize],
                    lut.value[hsv[2] as usize],
                ];
                let want = hsv_to_rgb_i32(mapped.map(i32::from));
                assert_eq!(q, want, "rgb {p:?}, gains {gains:?}");
            }
        }
    }
}
