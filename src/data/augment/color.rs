//! Ultralytics' `RandomHSV`: random hue, saturation and value gains applied through 256-entry lookup tables in
//! OpenCV's 8-bit HSV space (H in 0..180, S and V in 0..256), then converted back. The conversions reproduce
//! OpenCV's `COLOR_BGR2HSV` (integer, 12-bit fixed-point divisions) and `COLOR_HSV2BGR` (float, rounded)
//! exactly, so the same gains give the same pixels as Ultralytics' cv2 code.

use image::RgbImage;

use super::trunc_to_byte;

#[cfg(target_arch = "x86_64")]
mod vbmi;
use crate::data::rng::SampleRng;

/// OpenCV's `hsv_shift`.
const HSV_SHIFT: u32 = 12;

/// The `sdiv_table` and `hdiv_table180` of OpenCV's `RGB2HSV_b`: fixed-point reciprocals.
struct DivTables {
    sdiv: [i32; 256],
    hdiv: [i32; 256],
}

fn div_tables() -> &'static DivTables {
    static TABLES: std::sync::OnceLock<DivTables> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let mut sdiv = [0; 256];
        let mut hdiv = [0; 256];
        for i in 1..256 {
            sdiv[i] = ((255 << HSV_SHIFT) as f64 / i as f64).round_ties_even() as i32;
            hdiv[i] = ((180 << HSV_SHIFT) as f64 / (6.0 * i as f64)).round_ties_even() as i32;
        }
        DivTables { sdiv, hdiv }
    })
}

/// OpenCV 8-bit RGB → HSV, H in 0..180.
pub fn rgb_to_hsv(rgb: [u8; 3]) -> [u8; 3] {
    rgb_to_hsv_with(div_tables(), rgb.map(i32::from)).map(|v| v as u8)
}

/// [`rgb_to_hsv`] on one pixel widened to `i32`, branch-free so that [`apply_lanes`] vectorises it; every
/// output is in `0..=255`.
#[inline(always)]
fn rgb_to_hsv_with(t: &DivTables, [r, g, b]: [i32; 3]) -> [i32; 3] {
    let v = r.max(g).max(b);
    let diff = v - r.min(g).min(b);
    let vr = -i32::from(v == r);
    let vg = -i32::from(v == g);
    let round = 1 << (HSV_SHIFT - 1);
    let s = (diff * t.sdiv[(v & 255) as usize] + round) >> HSV_SHIFT;
    let h = (vr & (g - b)) + (!vr & ((vg & (b - r + 2 * diff)) + (!vg & (r - g + 4 * diff))));
    let h = (h * t.hdiv[(diff & 255) as usize] + round) >> HSV_SHIFT;
    [h + ((h >> 31) & 180), s, v]
}

/// OpenCV 8-bit HSV (H in 0..180) → RGB, as its vectorised `HSV2RGB_b` computes it: floats, `1 - s·h` fused
/// (one rounding; emulated exactly in f64, since the product of two f32 is exact there), and the result
/// truncated, not rounded. `hsv_conversions_equal_opencv` checks both directions against cv2 5.0.
pub fn hsv_to_rgb(hsv: [u8; 3]) -> [u8; 3] {
    hsv_to_rgb_i32(hsv.map(i32::from))
}

/// [`hsv_to_rgb`] on one pixel widened to `i32`, branch-free (its sector table as selects, truncations as
/// plain conversions) so that [`apply_lanes`] vectorises it.
#[inline(always)]
fn hsv_to_rgb_i32([h, s, v]: [i32; 3]) -> [u8; 3] {
    let h = h as f32 * (6.0f32 / 180.0);
    let s = s as f32 * (1.0f32 / 255.0);
    let v = v as f32 * (1.0f32 / 255.0);
    let pre_sector = f32::from(trunc_to_byte(h));
    let frac = h - pre_sector;
    let sector =
        trunc_to_byte(pre_sector - f32::from(trunc_to_byte(pre_sector * (1.0f32 / 6.0))) * 6.0);
    let one_minus = |x: f32| (1.0 - f64::from(s) * f64::from(x)) as f32;
    let p = v * one_minus(1.0);
    let q = v * one_minus(frac);
    let t = v * one_minus(1.0 - frac);
    // OpenCV's sector table {b, g, r} = {p,t,v} {p,v,q} {t,v,p} {v,q,p} {v,p,t} {q,p,v}; sector ≥ 5 reads the
    // last row, as OpenCV's clamp does.
    let r = match sector {
        0 => v,
        1 => q,
        2 | 3 => p,
        4 => t,
        _ => v,
    };
    let g = match sector {
        0 => t,
        1 | 2 => v,
        3 => q,
        _ => p,
    };
    let b = match sector {
        0 | 1 => p,
        2 => t,
        3 | 4 => v,
        _ => q,
    };
    // r, g, b are in 0..=1; OpenCV's store truncates towards zero
    [r, g, b].map(|c| trunc_to_byte(c * 255.0))
}

/// Hue, saturation and value gains of `[augment]` (`hsv_h`, `hsv_s`, `hsv_v`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HsvGains {
    pub hue: f64,
    pub saturation: f64,
    pub value: f64,
}

/// The three lookup tables of one draw.
#[derive(Debug, Clone)]
pub struct HsvLut {
    hue: [u8; 256],
    saturation: [u8; 256],
    value: [u8; 256],
}

impl HsvGains {
    /// Whether any gain is non-zero (Ultralytics skips the conversion otherwise).
    pub fn active(&self) -> bool {
        self.hue != 0.0 || self.saturation != 0.0 || self.value != 0.0
    }

    /// `r = uniform(-1, 1, 3) * gains`, then Ultralytics' tables: hue `(x + r0·180) % 180`, saturation and
    /// value `clip(x · (1 + r), 0, 255)`, truncated to `u8`, and saturation 0 kept at 0.
    pub fn draw(&self, rng: &mut SampleRng) -> HsvLut {
        let r = [
            rng.uniform(-1.0, 1.0) * self.hue,
            rng.uniform(-1.0, 1.0) * self.saturation,
            rng.uniform(-1.0, 1.0) * self.value,
        ];
        HsvLut::from_gains(r)
    }
}

impl HsvLut {
    /// Tables for drawn gains `r = [hue, saturation, value]` (each in ±gain).
    pub fn from_gains(r: [f64; 3]) -> Self {
        let mut lut = Self {
            hue: [0; 256],
            saturation: [0; 256],
            value: [0; 256],
        };
        for x in 0..256 {
            let xf = x as f64;
            lut.hue[x] = (xf + r[0] * 180.0).rem_euclid(180.0) as u8;
            lut.saturation[x] = (xf * (r[1] + 1.0)).clamp(0.0, 255.0) as u8;
            lut.value[x] = (xf * (r[2] + 1.0)).clamp(0.0, 255.0) as u8;
        }
        lut.saturation[0] = 0;
        lut
    }

    /// Applies the tables to every pixel, in place: RGB → HSV → tables → RGB.
    pub fn apply(&self, image: &mut RgbImage) {
        let pixels: &mut [u8] = image.as_mut();
        #[cfg(target_arch = "x86_64")]
        let pixels = {
            let done = vbmi::apply(self, pixels);
            &mut pixels[done..]
        };
        apply_lanes(self, div_tables(), pixels);
    }

    /// The tables on one HSV triple: the tests' scalar reference for [`apply_lanes`].
    #[cfg(test)]
    fn map(&self, hsv: [u8; 3]) -> [u8; 3] {
        [
            self.hue[hsv[0] as usize],
            self.saturation[hsv[1] as usize],
            self.value[hsv[2] as usize],
        ]
    }
}

/// Pixels converted together: written as straight-line loops over arrays of this many lanes, which the
/// compiler turns into SIMD (table lookups become gathers) for the targets below.
const LANES: usize = 16;

/// [`HsvLut::apply`] over packed RGB bytes, [`LANES`] pixels at a time, with the same arithmetic as
/// [`rgb_to_hsv`] and [`hsv_to_rgb`] (so the same bytes), branch-free.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn apply_lanes(lut: &HsvLut, t: &DivTables, pixels: &mut [u8]) {
    // 32-bit copies of the byte tables: lookups in them vectorise as gathers, byte lookups do not.
    let widen = |table: &[u8; 256]| table.map(i32::from);
    let tables = [widen(&lut.hue), widen(&lut.saturation), widen(&lut.value)];
    let map = |hsv: [i32; 3]| [0, 1, 2].map(|k| tables[k][(hsv[k] & 255) as usize]);
    let mut chunks = pixels.chunks_exact_mut(3 * LANES);
    for chunk in &mut chunks {
        // two passes over arrays, not one per pixel: each loop then vectorises across the lanes
        let mut hsv = [[0i32; 3]; LANES];
        for (px, out) in chunk.chunks_exact(3).zip(&mut hsv) {
            *out = map(rgb_to_hsv_with(t, [px[0], px[1], px[2]].map(i32::from)));
        }
        let mut rgb = [[0u8; 3]; LANES];
        for (out, &hsv) in rgb.iter_mut().zip(&hsv) {
            *out = hsv_to_rgb_i32(hsv);
        }
        for (px, out) in chunk.chunks_exact_mut(3).zip(&rgb) {
            px.copy_from_slice(out);
        }
    }
    for px in chunks.into_remainder().chunks_exact_mut(3) {
        let rgb = hsv_to_rgb_i32(map(rgb_to_hsv_with(
            t,
            [px[0], px[1], px[2]].map(i32::from),
        )));
        px.copy_from_slice(&rgb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_to_hsv_matches_opencv_samples() {
        // cv2.cvtColor(np.uint8([[[b, g, r]]]), cv2.COLOR_BGR2HSV), OpenCV 5.0.
        let cases: [([u8; 3], [u8; 3]); 6] = [
            ([255, 0, 0], [0, 255, 255]),
            ([0, 255, 0], [60, 255, 255]),
            ([0, 0, 255], [120, 255, 255]),
            ([114, 114, 114], [0, 0, 114]),
            ([10, 200, 77], [71, 242, 200]),
            ([200, 30, 120], [164, 217, 200]),
        ];
        for (rgb, hsv) in cases {
            assert_eq!(rgb_to_hsv(rgb), hsv, "rgb {rgb:?}");
        }
    }

    #[test]
    fn hsv_round_trip_equals_opencv() {
        // rgb -> cv2 BGR2HSV -> HSV2BGR -> rgb, OpenCV 5.0 on a wide image (its vectorised path; images
        // narrower than one SIMD block take a scalar path that rounds instead of truncating). The round trip
        // is lossy (H has 180 steps, the way back truncates) and ours must lose exactly the same.
        let cases: [([u8; 3], [u8; 3]); 8] = [
            ([37, 235, 140], [36, 235, 142]),
            ([72, 255, 137], [71, 255, 139]),
            ([203, 133, 79], [203, 132, 78]),
            ([192, 144, 129], [192, 143, 128]),
            ([204, 71, 237], [203, 70, 237]),
            ([252, 134, 25], [252, 130, 24]),
            ([178, 20, 254], [175, 19, 254]),
            ([101, 146, 212], [100, 145, 212]),
        ];
        for (rgb, back) in cases {
            assert_eq!(hsv_to_rgb(rgb_to_hsv(rgb)), back, "rgb {rgb:?}");
        }
    }

    #[test]
    fn hsv_conversions_equal_opencv() {
        // tests/data/hsv.safetensors (scripts/make_hsv_case.py): cv2 5.0's BGR2HSV of 4,416 colours and its
        // HSV2BGR of that HSV, on one wide row (its vectorised path).
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hsv.safetensors");
        let bytes = std::fs::read(path).expect("tests/data/hsv.safetensors");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
        let get = |name: &str| st.tensor(name).expect(name).data().to_vec();
        let (rgb, hsv, back) = (get("rgb"), get("hsv"), get("back_rgb"));
        for ((c, h), b) in rgb.chunks(3).zip(hsv.chunks(3)).zip(back.chunks(3)) {
            let c = [c[0], c[1], c[2]];
            assert_eq!(rgb_to_hsv(c), [h[0], h[1], h[2]], "rgb {c:?}");
            assert_eq!(
                hsv_to_rgb([h[0], h[1], h[2]]),
                [b[0], b[1], b[2]],
                "hsv {h:?}"
            );
        }
        // the lane-parallel apply gives the same bytes: identity tables turn the image into its round trip
        let lut = HsvLut::from_gains([0.0, 0.0, 0.0]);
        let n = rgb.len() as u32 / 3;
        let mut image = RgbImage::from_raw(n, 1, rgb.clone()).expect("rgb");
        lut.apply(&mut image);
        assert_eq!(image.as_raw(), &back);
    }

    #[test]
    fn hsv_lanes_equal_scalar_conversion_with_gains() {
        let lut = HsvLut::from_gains([0.013, -0.61, 0.37]);
        let pixels: Vec<u8> = (0..3 * 1000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let mut image = RgbImage::from_raw(1000, 1, pixels.clone()).expect("rgb");
        lut.apply(&mut image);
        for (p, q) in pixels.chunks(3).zip(image.as_raw().chunks(3)) {
            let want = hsv_to_rgb(lut.map(rgb_to_hsv([p[0], p[1], p[2]])));
            assert_eq!([q[0], q[1], q[2]], want, "rgb {p:?}");
        }
    }

    #[test]
    fn hsv_lut_zero_gains_is_identity_tables() {
        let lut = HsvLut::from_gains([0.0, 0.0, 0.0]);
        for x in 0..256 {
            assert_eq!(lut.saturation[x] as usize, x);
            assert_eq!(lut.value[x] as usize, x);
        }
        assert_eq!(lut.hue[179], 179);
        assert_eq!(lut.hue[180], 0);
    }

    #[test]
    fn hsv_lut_value_gain_brightens_grey() {
        let lut = HsvLut::from_gains([0.0, 0.0, 0.5]);
        let mut image = RgbImage::from_pixel(2, 2, image::Rgb([100, 100, 100]));
        lut.apply(&mut image);
        assert_eq!(image.get_pixel(1, 1).0, [150, 150, 150]);
    }
}
