//! Ultralytics' `RandomPerspective`: one 3×3 matrix `M = T·S·R·P·C` (centre, perspective, rotation and scale,
//! shear, translation) warps the image onto an `imgsz` square; boxes are mapped by their four corners, clipped,
//! and kept only if `box_candidates` accepts them.

use image::RgbImage;

use std::borrow::Cow;

use super::mosaic::Mosaic;
use super::{trunc_to_byte, LabelBox, Sample, PAD_VALUE};

#[cfg(target_arch = "x86_64")]
mod vbmi;
use crate::config::AugmentSection;
use crate::data::rng::SampleRng;

/// The ranges of the random warp, from `[augment]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerspectiveRange {
    /// Rotation, ± degrees.
    pub degrees: f64,
    /// Translation of the centre, ± fraction of the output size.
    pub translate: f64,
    /// Zoom factor in `[1 - scale, 1 + scale]`.
    pub scale: f64,
    /// Shear, ± degrees on each axis.
    pub shear: f64,
    /// Projective terms, ± this.
    pub perspective: f64,
}

impl From<&AugmentSection> for PerspectiveRange {
    fn from(a: &AugmentSection) -> Self {
        Self {
            degrees: a.degrees,
            translate: a.translate,
            scale: a.scale,
            shear: a.shear,
            perspective: a.perspective,
        }
    }
}

/// A drawn warp: the matrix from input to output pixels, and the zoom used to compare box areas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Warp {
    /// Row-major 3×3 matrix mapping input `(x, y, 1)` to output pixels.
    pub m: [[f64; 3]; 3],
    /// The drawn zoom factor `s`.
    pub scale: f64,
    /// `true` when the projective row is used (`perspective > 0`), as Ultralytics picks warpPerspective.
    pub projective: bool,
}

fn matmul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

const IDENTITY: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

impl PerspectiveRange {
    /// `RandomPerspective._compute_affine_matrix` for an input of `[w, h]` and a square output of `out_side`,
    /// drawing in Ultralytics' order: perspective x, y; angle; scale; shear x, y; translation x, y.
    pub fn draw(&self, input: [u32; 2], out_side: u32, rng: &mut SampleRng) -> Warp {
        let mut c = IDENTITY;
        c[0][2] = -(input[0] as f64) / 2.0;
        c[1][2] = -(input[1] as f64) / 2.0;
        let mut p = IDENTITY;
        p[2][0] = rng.uniform(-self.perspective, self.perspective);
        p[2][1] = rng.uniform(-self.perspective, self.perspective);
        let angle = rng.uniform(-self.degrees, self.degrees).to_radians();
        let s = rng.uniform(1.0 - self.scale, 1.0 + self.scale);
        // cv2.getRotationMatrix2D(center=(0, 0), angle, scale)
        let (alpha, beta) = (s * angle.cos(), s * angle.sin());
        let r = [[alpha, beta, 0.0], [-beta, alpha, 0.0], [0.0, 0.0, 1.0]];
        let mut sh = IDENTITY;
        sh[0][1] = rng.uniform(-self.shear, self.shear).to_radians().tan();
        sh[1][0] = rng.uniform(-self.shear, self.shear).to_radians().tan();
        let mut t = IDENTITY;
        t[0][2] = rng.uniform(0.5 - self.translate, 0.5 + self.translate) * out_side as f64;
        t[1][2] = rng.uniform(0.5 - self.translate, 0.5 + self.translate) * out_side as f64;
        let m = matmul(&t, &matmul(&sh, &matmul(&r, &matmul(&p, &c))));
        Warp {
            m,
            scale: s,
            projective: self.perspective != 0.0,
        }
    }
}

/// `floor(v + 0.5)` with a truncating cast (f64::round and floor are libm calls on baseline x86-64), as f64.
#[inline]
fn round_half_up(v: f64) -> f64 {
    let f = v + 0.5;
    if !(-1e15..1e15).contains(&f) {
        return f; // far outside any image (or NaN): the caller skips it
    }
    let i = f as i64;
    (if (i as f64) > f { i - 1 } else { i }) as f64
}

/// Inverse of a 3×3 matrix (adjugate over determinant); `None` when singular.
fn invert(m: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let cof =
        |r0: usize, r1: usize, c0: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    let adj = [
        [cof(1, 2, 1, 2), -cof(0, 2, 1, 2), cof(0, 1, 1, 2)],
        [-cof(1, 2, 0, 2), cof(0, 2, 0, 2), -cof(0, 1, 0, 2)],
        [cof(1, 2, 0, 1), -cof(0, 2, 0, 1), cof(0, 1, 0, 1)],
    ];
    let det = m[0][0] * adj[0][0] + m[0][1] * adj[1][0] + m[0][2] * adj[2][0];
    if det.abs() < 1e-12 {
        return None;
    }
    Some(adj.map(|row| row.map(|v| v / det)))
}

impl Warp {
    /// Maps one point (divides by the projective term only when `projective`, as `apply_bboxes`).
    pub fn map(&self, x: f64, y: f64) -> [f64; 2] {
        let m = &self.m;
        let u = m[0][0] * x + m[0][1] * y + m[0][2];
        let v = m[1][0] * x + m[1][1] * y + m[1][2];
        if self.projective {
            let w = m[2][0] * x + m[2][1] * y + m[2][2];
            [u / w, v / w]
        } else {
            [u, v]
        }
    }

    /// The warped image, `out_side` square, bilinear, grey 114 outside the input: `cv2.warpAffine` (see
    /// [`warp_affine`]) or, with a projective row, `cv2.warpPerspective` with `borderValue=114`.
    pub fn warp_image(&self, src: &RgbImage, out_side: u32) -> RgbImage {
        self.warp_image_mirrored(Source::Image(src), out_side, false)
    }

    /// [`Warp::warp_image`], flipped left-right if `mirror`. The separable affine warp (Ultralytics' default)
    /// flips for free by blending its columns in reverse order; the others flip after.
    fn warp_image_mirrored(&self, src: Source, out_side: u32, mirror: bool) -> RgbImage {
        if !self.projective {
            return warp_affine_mirrored(src, &[self.m[0], self.m[1]], out_side, mirror);
        }
        let mut image = self.warp_perspective(&src.image(), out_side);
        if mirror {
            image::imageops::flip_horizontal_in_place(&mut image);
        }
        image
    }

    /// The projective case, one pixel at a time in f64, positions cut to 1/32 pixel (OpenCV 4's
    /// `INTER_TAB_SIZE` scheme; not compared with OpenCV 5's float one).
    fn warp_perspective(&self, src: &RgbImage, out_side: u32) -> RgbImage {
        let n = out_side as usize;
        let mut out = vec![PAD_VALUE; n * n * 3];
        let Some(inv) = invert(&self.m) else {
            return RgbImage::from_raw(out_side, out_side, out).unwrap_or_default();
        };
        let (sw, sh) = (src.width() as i64, src.height() as i64);
        let raw = src.as_raw();
        let pixel = |x: i64, y: i64| -> [i32; 3] {
            if x < 0 || y < 0 || x >= sw || y >= sh {
                [PAD_VALUE as i32; 3]
            } else {
                let i = ((y * sw + x) * 3) as usize;
                [raw[i] as i32, raw[i + 1] as i32, raw[i + 2] as i32]
            }
        };
        for (dy, row) in out.chunks_exact_mut(n * 3).enumerate() {
            let y = dy as f64;
            for dx in 0..n {
                let x = dx as f64;
                let mut sx = inv[0][0] * x + inv[0][1] * y + inv[0][2];
                let mut sy = inv[1][0] * x + inv[1][1] * y + inv[1][2];
                if self.projective {
                    let w = inv[2][0] * x + inv[2][1] * y + inv[2][2];
                    let w = if w != 0.0 { 1.0 / w } else { 0.0 };
                    sx *= w;
                    sy *= w;
                }
                // Quantise to 1/32 px; skip pixels whose four taps are all outside.
                let qx = round_half_up(sx * 32.0);
                let qy = round_half_up(sy * 32.0);
                if !(qx > -64.0
                    && qy > -64.0
                    && qx < (sw as f64 + 1.0) * 32.0
                    && qy < (sh as f64 + 1.0) * 32.0)
                {
                    continue;
                }
                let (qx, qy) = (qx as i64, qy as i64);
                let (qx, qy) = (qx.max(-64), qy.max(-64));
                let (x0, y0) = (qx >> 5, qy >> 5);
                let (fx, fy) = ((qx & 31) as i32, (qy & 31) as i32);
                let w00 = (32 - fx) * (32 - fy);
                let w10 = fx * (32 - fy);
                let w01 = (32 - fx) * fy;
                let w11 = fx * fy;
                let inside = x0 >= 0 && y0 >= 0 && x0 + 1 < sw && y0 + 1 < sh;
                let d = &mut row[dx * 3..dx * 3 + 3];
                if inside {
                    let i = ((y0 * sw + x0) * 3) as usize;
                    let j = i + (sw * 3) as usize;
                    for c in 0..3 {
                        let v = raw[i + c] as i32 * w00
                            + raw[i + 3 + c] as i32 * w10
                            + raw[j + c] as i32 * w01
                            + raw[j + 3 + c] as i32 * w11;
                        d[c] = ((v + 512) >> 10) as u8;
                    }
                } else {
                    let (p00, p10) = (pixel(x0, y0), pixel(x0 + 1, y0));
                    let (p01, p11) = (pixel(x0, y0 + 1), pixel(x0 + 1, y0 + 1));
                    for c in 0..3 {
                        let v = p00[c] * w00 + p10[c] * w10 + p01[c] * w01 + p11[c] * w11;
                        d[c] = ((v + 512) >> 10) as u8;
                    }
                }
            }
        }
        RgbImage::from_raw(out_side, out_side, out).unwrap_or_default()
    }

    /// `RandomPerspective.apply_bboxes`: each box becomes the bounding box of its four mapped corners.
    pub fn map_box(&self, xyxy: [f32; 4]) -> [f32; 4] {
        let [x1, y1, x2, y2] = xyxy.map(|v| v as f64);
        let corners = [
            self.map(x1, y1),
            self.map(x2, y2),
            self.map(x1, y2),
            self.map(x2, y1),
        ];
        let xs = corners.map(|c| c[0]);
        let ys = corners.map(|c| c[1]);
        let min = |v: [f64; 4]| v.into_iter().fold(f64::INFINITY, f64::min) as f32;
        let max = |v: [f64; 4]| v.into_iter().fold(f64::NEG_INFINITY, f64::max) as f32;
        [min(xs), min(ys), max(xs), max(ys)]
    }

    /// Warps a sample onto an `out_side` square: image, boxes mapped and clipped, then filtered by
    /// [`box_candidates`] against the input boxes scaled by the drawn zoom.
    pub fn apply(&self, sample: &Sample, out_side: u32) -> Sample {
        self.apply_mirrored(sample, out_side, false)
    }

    /// [`Warp::apply`], then Ultralytics' left-right flip if `mirror` (`Sample::flip_lr`), in one pass over the
    /// pixels where the warp is separable.
    pub fn apply_mirrored(&self, sample: &Sample, out_side: u32, mirror: bool) -> Sample {
        self.apply_source(
            Source::Image(&sample.image),
            &sample.boxes,
            out_side,
            mirror,
        )
    }

    /// [`Warp::apply_mirrored`] on a source image (a mosaic need not be composed) and its boxes.
    pub fn apply_source(
        &self,
        src: Source,
        boxes: &[LabelBox],
        out_side: u32,
        mirror: bool,
    ) -> Sample {
        let image = self.warp_image_mirrored(src, out_side, mirror);
        let side = out_side as f32;
        let s = self.scale as f32;
        let boxes = boxes
            .iter()
            .filter_map(|b| {
                let mapped = self.map_box(b.xyxy_px).map(|v| v.clamp(0.0, side));
                let before = b.xyxy_px.map(|v| v * s);
                let warped = LabelBox {
                    class: b.class,
                    xyxy_px: mapped,
                };
                box_candidates(before, mapped, BoxCandidates::ULTRALYTICS).then(|| {
                    if mirror {
                        warped.mirrored(side)
                    } else {
                        warped
                    }
                })
            })
            .collect();
        Sample { image, boxes }
    }
}

/// `cv2.warpAffine(src, m, (n, n), flags=INTER_LINEAR, borderValue=(114, 114, 114))` as OpenCV 4.11+ and 5.x
/// compute it for 8-bit, 3-channel images (`warpAffineLinearInvoker_8UC3`, its SIMD path): the matrix inverted
/// in f64 as `hal::warpAffine` does and cut to f32; per row `M1·y + M2` in f32, per pixel `fma(M0, x, ·)`; the
/// tap weights are the fractional parts, blended with three FMAs and rounded half to even. Taps outside the
/// source read 114. `tests/data/warp_affine.safetensors` holds cv2's own outputs for this function's test.
/// (OpenCV's scalar tail, used only for the last `width mod 16` pixels of a row, rounds differently by at most
/// one level; our widths are multiples of 32.)
pub fn warp_affine(src: &RgbImage, m: &[[f64; 3]; 2], out_side: u32) -> RgbImage {
    warp_affine_mirrored(Source::Image(src), m, out_side, false)
}

/// The image a warp reads: pixels, or a mosaic whose rows are composed as the warp needs them.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    Image(&'a RgbImage),
    Mosaic(&'a Mosaic<'a>),
}

impl<'a> Source<'a> {
    /// `[w, h]`.
    fn size(&self) -> [usize; 2] {
        let [w, h] = match self {
            Source::Image(image) => [image.width(), image.height()],
            Source::Mosaic(mosaic) => mosaic.size(),
        };
        [w as usize, h as usize]
    }

    /// The whole image, composed if it is a mosaic.
    fn image(&self) -> Cow<'a, RgbImage> {
        match *self {
            Source::Image(image) => Cow::Borrowed(image),
            Source::Mosaic(mosaic) => Cow::Owned(mosaic.image()),
        }
    }
}

/// [`warp_affine`], flipped left-right if `mirror`: for free when the warp is separable (its columns blended in
/// reverse order, the same bytes as a flip after), by a flip after otherwise.
fn warp_affine_mirrored(src: Source, m: &[[f64; 3]; 2], out_side: u32, mirror: bool) -> RgbImage {
    let n = out_side as usize;
    let mut out = vec![PAD_VALUE; n * n * 3];
    let inv = affine_inverse(m);
    let [sw, sh] = src.size();
    let image = |out| RgbImage::from_raw(out_side, out_side, out).unwrap_or_default();
    if n == 0 || sw == 0 || sh == 0 {
        return image(out); // all grey: a flip changes nothing
    }
    if inv[1] == 0.0 && inv[3] == 0.0 {
        warp_affine_separable(src, &inv, n, mirror, &mut out);
        return image(out);
    }
    let raw = src.image();
    for (y, row) in out.chunks_exact_mut(n * 3).enumerate() {
        warp_affine_row(raw.as_raw(), [sw, sh], &inv, y, row);
    }
    let mut image = image(out);
    if mirror {
        image::imageops::flip_horizontal_in_place(&mut image);
    }
    image
}

/// `hal::warpAffine`'s inversion of `m` (output → source), in f64, then cut to the f32 its kernels use; row-major
/// `[M0, M1, M2, M3, M4, M5]`. A singular `m` gives zeros (every pixel then reads the source's top-left pixel).
fn affine_inverse(m: &[[f64; 3]; 2]) -> [f32; 6] {
    let [[m0, m1, m2], [m3, m4, m5]] = *m;
    let d = m0 * m4 - m1 * m3;
    let d = if d != 0.0 { 1.0 / d } else { 0.0 };
    let (i0, i1, i3, i4) = (m4 * d, m1 * -d, m3 * -d, m0 * d);
    let i2 = -i0 * m2 - i1 * m5;
    let i5 = -i3 * m2 - i4 * m5;
    [i0, i1, i2, i3, i4, i5].map(|v| v as f32)
}

/// [`warp_affine`] without rotation or shear (Ultralytics' default `degrees = shear = 0`), with the same
/// arithmetic, so the same bytes: `M1 = M3 = 0` makes a column's source `x` and blend weight the same on every
/// row and a row's source `y` the same in every column. So each source row is blended horizontally once
/// (`top = fma(a, p01 − p00, p00)`, taps outside reading 114), kept while the next output row needs it, and each
/// output row is one vertical `fma(b, bottom − top, top)` over contiguous floats, which vectorises.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn warp_affine_separable(src: Source, m: &[f32; 6], n: usize, mirror: bool, out: &mut [u8]) {
    let [sw, sh] = src.size();
    // `y·M1 + M2` is the same signed value for every y when M1 is ±0, and `fma(±0, x, ·)` likewise.
    let mx = 0.0f32 * m[1] + m[2];
    let mut columns: Vec<(i32, f32)> = (0..n)
        .map(|x| {
            let sx = m[0].mul_add(x as f32, mx);
            let ix = sx.floor() as i32;
            (ix, sx - ix as f32)
        })
        .collect();
    // each output value depends on its column's tap and weight only, so reversed columns are a flipped image
    if mirror {
        columns.reverse();
    }
    #[cfg(target_arch = "x86_64")]
    let blocks = vbmi::plan(&columns, sw);
    let stride = sw * 3;
    let pad = f32::from(PAD_VALUE);
    // a mosaic's row is composed here, only the pixels that some column reads; an image's is read in place
    let mut composed = Vec::new();
    let reads = {
        let taps = columns.iter().map(|&(ix, _)| ix);
        let first = taps.clone().min().unwrap_or(0).clamp(0, sw as i32) as usize;
        first..(taps.max().unwrap_or(0).saturating_add(2)).clamp(0, sw as i32) as usize
    };
    let mut horizontal = |r: i32, h: &mut Vec<f32>| {
        h.clear();
        h.resize(n * 3, pad);
        if (r as u32 as usize) >= sh {
            return;
        }
        let row: &[u8] = match src {
            Source::Image(image) => &image.as_raw()[r as usize * stride..][..stride],
            Source::Mosaic(mosaic) => {
                composed.resize(stride, 0);
                mosaic.row_into(r as usize, reads.clone(), &mut composed);
                &composed
            }
        };
        let tap = |x: i32, c: usize| -> f32 {
            if (x as u32 as usize) < sw {
                f32::from(row[x as usize * 3 + c])
            } else {
                pad
            }
        };
        let portable = |out: &mut [f32], columns: &[(i32, f32)]| {
            for (out, &(ix, a)) in out.chunks_exact_mut(3).zip(columns) {
                if (ix as u32 as usize) < sw - 1 {
                    let p = &row[ix as usize * 3..][..6];
                    for c in 0..3 {
                        let (p0, p1) = (f32::from(p[c]), f32::from(p[c + 3]));
                        out[c] = a.mul_add(p1 - p0, p0);
                    }
                } else {
                    for (c, o) in out.iter_mut().enumerate() {
                        let (p0, p1) = (tap(ix, c), tap(ix + 1, c));
                        *o = a.mul_add(p1 - p0, p0);
                    }
                }
            }
        };
        #[cfg(target_arch = "x86_64")]
        for ((out, columns), block) in h
            .chunks_mut(3 * vbmi::BLOCK)
            .zip(columns.chunks(vbmi::BLOCK))
            .zip(&blocks)
        {
            match block {
                Some(block) => vbmi::blend(block, row, out),
                None => portable(out, columns),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        portable(h, &columns);
    };
    // The horizontal blends of the two source rows the current output row reads: (row index, values). Output
    // rows move down the source, so the next output row usually finds one or both here already.
    let mut slots = [
        (i32::MIN, Vec::with_capacity(n * 3)),
        (i32::MIN, Vec::with_capacity(n * 3)),
    ];
    for (y, row) in out.chunks_exact_mut(n * 3).enumerate() {
        let my = y as f32 * m[4] + m[5];
        let sy = m[3].mul_add(1.0, my);
        let iy = sy.floor() as i32;
        let b = sy - iy as f32;
        let below = iy.saturating_add(1);
        if slots[0].0 != iy && slots[1].0 == iy {
            slots.swap(0, 1);
        }
        for (slot, r) in slots.iter_mut().zip([iy, below]) {
            if slot.0 != r {
                horizontal(r, &mut slot.1);
                slot.0 = r;
            }
        }
        let [(_, top), (_, bottom)] = &slots;
        for (d, (&t, &u)) in row.iter_mut().zip(top.iter().zip(bottom)) {
            *d = trunc_to_byte(b.mul_add(u - t, t).round_ties_even());
        }
    }
}

/// One output row of [`warp_affine`]; compiled for FMA targets so that `mul_add` is one instruction.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn warp_affine_row(raw: &[u8], [sw, sh]: [usize; 2], m: &[f32; 6], y: usize, row: &mut [u8]) {
    let yf = y as f32;
    let (mx, my) = (yf * m[1] + m[2], yf * m[4] + m[5]);
    let stride = sw * 3;
    let pad = f32::from(PAD_VALUE);
    let tap = |x: i32, y: i32, c: usize| -> f32 {
        if (x as u32 as usize) < sw && (y as u32 as usize) < sh {
            f32::from(raw[y as usize * stride + x as usize * 3 + c])
        } else {
            pad
        }
    };
    for (x, d) in row.chunks_exact_mut(3).enumerate() {
        let xf = x as f32;
        let sx = m[0].mul_add(xf, mx);
        let sy = m[3].mul_add(xf, my);
        let (ix, iy) = (sx.floor() as i32, sy.floor() as i32);
        let (a, b) = (sx - ix as f32, sy - iy as f32);
        let blend = |p00: f32, p01: f32, p10: f32, p11: f32| -> u8 {
            let top = a.mul_add(p01 - p00, p00);
            let bottom = a.mul_add(p11 - p10, p10);
            trunc_to_byte(b.mul_add(bottom - top, top).round_ties_even())
        };
        if (ix as u32 as usize) < sw - 1 && (iy as u32 as usize) < sh - 1 {
            let i = iy as usize * stride + ix as usize * 3;
            let (t, u) = (&raw[i..i + 6], &raw[i + stride..i + stride + 6]);
            for c in 0..3 {
                d[c] = blend(
                    f32::from(t[c]),
                    f32::from(t[c + 3]),
                    f32::from(u[c]),
                    f32::from(u[c + 3]),
                );
            }
        } else if ((ix + 1) as u32 as usize) < sw + 1 && ((iy + 1) as u32 as usize) < sh + 1 {
            // at the border: the taps outside read the border value
            for (c, v) in d.iter_mut().enumerate() {
                *v = blend(
                    tap(ix, iy, c),
                    tap(ix + 1, iy, c),
                    tap(ix, iy + 1, c),
                    tap(ix + 1, iy + 1, c),
                );
            }
        }
    }
}

/// The thresholds of `box_candidates`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxCandidates {
    /// Minimum width and height after the warp, pixels (exclusive).
    pub wh_thr: f32,
    /// Maximum aspect ratio, either way (exclusive).
    pub ar_thr: f32,
    /// Minimum ratio of the warped area to the (zoomed) original area (exclusive).
    pub area_thr: f32,
}

impl BoxCandidates {
    /// Ultralytics' values for boxes without segments: `wh_thr=2, ar_thr=100, area_thr=0.1`.
    pub const ULTRALYTICS: Self = Self {
        wh_thr: 2.0,
        ar_thr: 100.0,
        area_thr: 0.1,
    };
}

/// `RandomPerspective.box_candidates`: is the warped box `after` (clipped) still a usable label for the box
/// `before` (original, scaled by the zoom)? Both xyxy pixels; `eps = 1e-16` as Ultralytics.
pub fn box_candidates(before: [f32; 4], after: [f32; 4], t: BoxCandidates) -> bool {
    const EPS: f32 = 1e-16;
    let (w1, h1) = (before[2] - before[0], before[3] - before[1]);
    let (w2, h2) = (after[2] - after[0], after[3] - after[1]);
    let ar = (w2 / (h2 + EPS)).max(h2 / (w2 + EPS));
    w2 > t.wh_thr && h2 > t.wh_thr && w2 * h2 / (w1 * h1 + EPS) > t.area_thr && ar < t.ar_thr
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: BoxCandidates = BoxCandidates::ULTRALYTICS;

    #[test]
    fn box_candidates_keeps_unchanged_box() {
        assert!(box_candidates(
            [10., 10., 50., 40.],
            [10., 10., 50., 40.],
            T
        ));
    }

    #[test]
    fn box_candidates_drops_thin_boxes() {
        // 2 px is not > 2 px.
        assert!(!box_candidates([0., 0., 10., 10.], [0., 0., 2., 10.], T));
        assert!(box_candidates([0., 0., 10., 10.], [0., 0., 2.5, 10.], T));
    }

    #[test]
    fn box_candidates_drops_mostly_clipped_boxes() {
        // 10% of the area is not > 10%.
        assert!(!box_candidates(
            [0., 0., 100., 100.],
            [0., 0., 100., 10.],
            T
        ));
        assert!(box_candidates(
            [0., 0., 100., 100.],
            [0., 0., 100., 10.5],
            T
        ));
    }

    #[test]
    fn box_candidates_drops_extreme_aspect_ratio() {
        assert!(!box_candidates([0., 0., 400., 4.], [0., 0., 400., 4.], T));
        assert!(box_candidates([0., 0., 399., 4.], [0., 0., 399., 4.], T));
    }

    #[test]
    fn warp_identity_like_keeps_pixels_and_boxes() {
        // No randomness: zero ranges, translate 0 puts the input centre at the output centre.
        let range = PerspectiveRange {
            degrees: 0.0,
            translate: 0.0,
            scale: 0.0,
            shear: 0.0,
            perspective: 0.0,
        };
        let mut rng = SampleRng::for_sample(0, 0, 0);
        let warp = range.draw([64, 64], 64, &mut rng);
        let image = RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let sample = Sample {
            image,
            boxes: vec![LabelBox {
                class: 0,
                xyxy_px: [5., 6., 30., 40.],
            }],
        };
        let out = warp.apply(&sample, 64);
        assert_eq!(out.image, sample.image);
        assert_eq!(out.boxes, sample.boxes);
    }

    #[test]
    fn warp_affine_equals_opencv() {
        // tests/data/warp_affine.safetensors: cv2 5.0 warpAffine outputs (scripts/make_warp_case.py). Every
        // byte must match: zoom in and out, rotation with shear, a source partly outside, and the exact grid.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/warp_affine.safetensors"
        );
        let bytes = std::fs::read(path).expect("tests/data/warp_affine.safetensors");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
        let src = st.tensor("src").expect("src");
        let [h, w] = [src.shape()[0] as u32, src.shape()[1] as u32];
        let src = RgbImage::from_raw(w, h, src.data().to_vec()).expect("rgb");
        for i in 0..5 {
            let m: Vec<f64> = st
                .tensor(&format!("m{i}"))
                .expect("matrix")
                .data()
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect();
            let m = [[m[0], m[1], m[2]], [m[3], m[4], m[5]]];
            let want = st.tensor(&format!("out{i}")).expect("output");
            let got = warp_affine(&src, &m, want.shape()[0] as u32);
            let differ = got
                .as_raw()
                .iter()
                .zip(want.data())
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(
                differ, 0,
                "case {i}: {differ} bytes differ from cv2.warpAffine"
            );
        }
    }

    #[test]
    fn mirrored_warps_equal_a_flip_after() {
        // Ultralytics flips after the warp and HSV; we fold the flip into the warp. Same image and boxes for
        // the separable warp (reversed columns), a rotated one and a projective one (flipped after).
        let src = RgbImage::from_fn(300, 200, |x, y| {
            image::Rgb([(x * 7 + y) as u8, (x ^ y) as u8, (y * 3) as u8])
        });
        let sample = Sample {
            image: src,
            boxes: vec![LabelBox {
                class: 1,
                xyxy_px: [40.0, 30.0, 200.0, 150.0],
            }],
        };
        let range = |degrees, perspective| PerspectiveRange {
            degrees,
            translate: 0.1,
            scale: 0.5,
            shear: 0.0,
            perspective,
        };
        for (k, r) in [range(0.0, 0.0), range(10.0, 0.0), range(0.0, 0.0005)]
            .into_iter()
            .enumerate()
        {
            for image in 0..4 {
                let mut rng = SampleRng::for_sample(3, k, image);
                let warp = r.draw([300, 200], 128, &mut rng);
                let mut want = warp.apply(&sample, 128);
                want.flip_lr();
                assert_eq!(
                    warp.apply_mirrored(&sample, 128, true),
                    want,
                    "case {k}, image {image}"
                );
            }
        }
    }

    #[test]
    fn warp_affine_separable_path_equals_row_path() {
        // Axis-aligned matrices take the separable path; it must give the bytes of the per-pixel one, for
        // zoom in and out and sources partly or wholly outside the output.
        let src = RgbImage::from_fn(53, 41, |x, y| {
            image::Rgb([
                (x * 37 + y * 11) as u8,
                (x * y) as u8,
                (x * 5 + 200 - y) as u8,
            ])
        });
        for (k, (scale, tx, ty)) in [
            (0.5, 20.0, 30.0),
            (1.5, 10.0, -5.0),
            (1.0, 0.25, 0.75),
            (0.8, -40.0, 60.0),
            (2.3, 64.0, 64.0),
            (1.0, 200.0, 0.0),
        ]
        .into_iter()
        .enumerate()
        {
            let m = [[scale, 0.0, tx], [0.0, scale, ty]];
            let n = 64;
            let fast = warp_affine(&src, &m, n as u32);
            let inv = affine_inverse(&m);
            assert!(
                inv[1] == 0.0 && inv[3] == 0.0,
                "case {k} must take the separable path"
            );
            let mut slow = vec![PAD_VALUE; n * n * 3];
            for (y, row) in slow.chunks_exact_mut(n * 3).enumerate() {
                warp_affine_row(src.as_raw(), [53, 41], &inv, y, row);
            }
            assert_eq!(fast.as_raw(), &slow, "case {k}");
        }
    }

    #[test]
    fn warp_map_box_of_rotation_contains_rotated_corners() {
        let range = PerspectiveRange {
            degrees: 45.0,
            translate: 0.1,
            scale: 0.5,
            shear: 10.0,
            perspective: 0.0005,
        };
        let mut rng = SampleRng::for_sample(1, 2, 3);
        let warp = range.draw([100, 80], 64, &mut rng);
        let b = warp.map_box([10., 10., 60., 50.]);
        for (x, y) in [(10., 10.), (60., 50.), (35., 30.)] {
            let [u, v] = warp.map(x, y);
            assert!(u as f32 >= b[0] - 1e-3 && u as f32 <= b[2] + 1e-3);
            assert!(v as f32 >= b[1] - 1e-3 && v as f32 <= b[3] + 1e-3);
        }
    }
}
