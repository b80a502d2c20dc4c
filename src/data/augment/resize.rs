//! Resizing byte for byte as OpenCV 5.1's `cv2.resize` does for 3-channel `uint8` images (`INTER_LINEAR` and
//! `INTER_AREA`), so that a model trained here sees the pixels Ultralytics' pipeline would have given it.
//!
//! The paths follow `cv::hal::resize` in modules/imgproc/src/resize.cpp (opencv-python 5.1.0.95). Its IPP HAL
//! declines 8-bit 3-channel `INTER_LINEAR` and `INTER_AREA` (hal/ipp/src/resize_ipp.cpp), so OpenCV's own code
//! is what runs. Its SIMD and scalar loops compute the same integers, so the vector width does not matter.

use image::RgbImage;

/// OpenCV's `INTER_RESIZE_COEF_SCALE`: 11-bit fixed-point weights.
const COEF_SCALE: f32 = 2048.0;

/// Size that `load_image` gives an image of `[w, h]`: the long side equals `imgsz` (up or down), each side
/// `min(ceil(side * r), imgsz)`. Unchanged when the long side already equals `imgsz`.
pub fn long_side_size(size: [u32; 2], imgsz: u32) -> [u32; 2] {
    let [w0, h0] = size;
    let long = w0.max(h0).max(1);
    if long == imgsz {
        return size;
    }
    let r = imgsz as f64 / long as f64;
    let side = |s: u32| ((s as f64 * r).ceil() as u32).clamp(1, imgsz);
    [side(w0), side(h0)]
}

/// `image` resized so that its long side is `imgsz` (Ultralytics `load_image` with `rect_mode=True`).
///
/// Always `INTER_LINEAR`: ultralytics 8.4.190's `load_image` no longer picks `INTER_AREA` for shrinking
/// validation images (older releases did), so training and validation resize alike.
pub fn resize_long_side(image: RgbImage, imgsz: u32) -> RgbImage {
    let target = long_side_size([image.width(), image.height()], imgsz);
    if target == [image.width(), image.height()] {
        return image;
    }
    resize_bilinear(&image, target)
}

/// `cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR)`.
///
/// For an exact 2× shrink on both axes OpenCV runs `INTER_AREA`'s 2×2 mean instead, which gives the same bytes
/// with less work; so does this.
pub fn resize_bilinear(src: &RgbImage, size: [u32; 2]) -> RgbImage {
    match Plan::new(src, size) {
        Plan::Trivial(image) => image,
        Plan::Scaled(scale) if scale.integer_factors() == Some([2, 2]) => {
            area_integer(src, size, [2, 2])
        }
        Plan::Scaled(_) => two_tap(src, size, Mapping::Linear),
    }
}

/// `cv2.resize(src, (w, h), interpolation=cv2.INTER_AREA)`: the mean over each destination pixel's footprint
/// when both axes shrink (an integer sum for integer factors, float weights otherwise), OpenCV's bilinear
/// variant with area-aligned taps when either axis grows.
pub fn resize_area(src: &RgbImage, size: [u32; 2]) -> RgbImage {
    match Plan::new(src, size) {
        Plan::Trivial(image) => image,
        Plan::Scaled(scale) if scale.x >= 1.0 && scale.y >= 1.0 => match scale.integer_factors() {
            Some(factors) => area_integer(src, size, factors),
            None => area_fractional(src, size, scale),
        },
        Plan::Scaled(_) => two_tap(src, size, Mapping::Area),
    }
}

/// What `cv::resize` decides before choosing a kernel.
enum Plan {
    /// A copy (same size), or an empty image where OpenCV would refuse (an empty source or destination).
    Trivial(RgbImage),
    Scaled(Scale),
}

/// Source pixels per destination pixel, computed as OpenCV does (`1 / (dst / src)` in f64), since its integer
/// test and coordinates depend on that exact double.
#[derive(Debug, Clone, Copy)]
struct Scale {
    x: f64,
    y: f64,
}

impl Plan {
    fn new(src: &RgbImage, [w, h]: [u32; 2]) -> Self {
        let (sw, sh) = src.dimensions();
        if [sw, sh] == [w, h] {
            return Self::Trivial(src.clone());
        }
        if sw == 0 || sh == 0 || w == 0 || h == 0 {
            return Self::Trivial(RgbImage::new(w, h));
        }
        Self::Scaled(Scale {
            x: 1.0 / (w as f64 / sw as f64),
            y: 1.0 / (h as f64 / sh as f64),
        })
    }
}

impl Scale {
    /// `[kx, ky]` when both scales are integers to within `DBL_EPSILON` (OpenCV's `is_area_fast`).
    fn integer_factors(&self) -> Option<[u32; 2]> {
        let int = |s: f64| {
            let i = s.round_ties_even();
            ((s - i).abs() < f64::EPSILON && i >= 1.0).then_some(i as u32)
        };
        Some([int(self.x)?, int(self.y)?])
    }
}

/// Where the two taps of an output coordinate sit.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mapping {
    /// `INTER_LINEAR`: pixel centres aligned, `src = (dst + 0.5) * scale - 0.5`.
    Linear,
    /// `INTER_AREA` on a growing axis: the tap follows the edge of the source pixel that the destination pixel
    /// straddles.
    Area,
}

/// OpenCV's source index and fractional weight of destination coordinate `d`, before any border clamping. The
/// fraction is an f32, as in `cv::hal::resize`; its rounding decides the last bit of the weights.
fn source_coordinate(d: usize, src_len: usize, dst_len: usize, mapping: Mapping) -> (i64, f32) {
    let inv_scale = dst_len as f64 / src_len as f64;
    let scale = 1.0 / inv_scale;
    match mapping {
        Mapping::Linear => {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let s = f.floor();
            (s as i64, f - s)
        }
        Mapping::Area => {
            let s = (d as f64 * scale).floor() as i64;
            let f = ((d + 1) as f64 - (s + 1) as f64 * inv_scale) as f32;
            (s, if f <= 0.0 { 0.0 } else { f - f.floor() })
        }
    }
}

/// Both weights are rounded from the f32 fraction separately (`saturate_cast<short>(cbuf[k] * 2048)`), so
/// they may sum to 2047 or 2049; OpenCV keeps that.
fn fixed_weights(frac: f32) -> [i32; 2] {
    let round = |v: f32| (v * COEF_SCALE).round_ties_even() as i32;
    [round(1.0 - frac), round(frac)]
}

/// One output column: byte offsets of its two source pixels in a row, and their weights.
#[derive(Debug, Clone, Copy)]
struct ColumnTap {
    offsets: [usize; 2],
    weights: [i32; 2],
}

/// Columns clamp both the index and the fraction at the borders (OpenCV's `xmin`/`xmax` handling).
fn column_taps(src_len: usize, dst_len: usize, mapping: Mapping) -> Vec<ColumnTap> {
    (0..dst_len)
        .map(|d| {
            let (mut s, mut frac) = source_coordinate(d, src_len, dst_len, mapping);
            if s < 0 {
                (s, frac) = (0, 0.0);
            }
            if s >= src_len as i64 - 1 {
                (s, frac) = (src_len as i64 - 1, 0.0);
            }
            let s = s as usize;
            ColumnTap {
                offsets: [s * 3, (s + 1).min(src_len - 1) * 3],
                weights: fixed_weights(frac),
            }
        })
        .collect()
}

/// One output row: its two source rows and their weights.
#[derive(Debug, Clone, Copy)]
struct RowTap {
    rows: [usize; 2],
    weights: [i32; 2],
}

/// Rows clamp only the row index and keep the unclamped fraction's weights, as OpenCV's vertical pass does (it
/// reads a clamped row twice). With weights summing to 2048 this gives the row's own value back.
fn row_taps(src_len: usize, dst_len: usize, mapping: Mapping) -> Vec<RowTap> {
    let last = src_len as i64 - 1;
    (0..dst_len)
        .map(|d| {
            let (s, frac) = source_coordinate(d, src_len, dst_len, mapping);
            RowTap {
                rows: [s.clamp(0, last) as usize, (s + 1).clamp(0, last) as usize],
                weights: fixed_weights(frac),
            }
        })
        .collect()
}

/// The horizontal pass of one source row, kept as `value >> 4` in i16: the vertical pass only ever reads it
/// so (`v_pack(v_shr<4>(…))`), and half-width rows halve the memory traffic.
fn horizontal_pass(row: &[u8], taps: &[ColumnTap], out: &mut [i16]) {
    for (o, t) in out.chunks_exact_mut(3).zip(taps) {
        let [a, b] = t.offsets;
        let [wa, wb] = t.weights;
        let (pa, pb) = (&row[a..a + 3], &row[b..b + 3]);
        for c in 0..3 {
            let v = pa[c] as i32 * wa + pb[c] as i32 * wb;
            o[c] = (v >> 4).min(i16::MAX as i32) as i16;
        }
    }
}

/// OpenCV's vertical pass for 8-bit images (`VResizeLinearVec_32s8u` and its scalar twin): each product keeps
/// only its high 16 bits before the sum, then a rounding shift by 2. This, not `(b0·s0 + b1·s1 + 2^21) >> 22`,
/// is what cv2 returns.
fn vertical_pass(r0: &[i16], r1: &[i16], [b0, b1]: [i32; 2], out: &mut [u8]) {
    for ((d, &p0), &p1) in out.iter_mut().zip(r0).zip(r1) {
        let v = (((b0 * p0 as i32) >> 16) + ((b1 * p1 as i32) >> 16) + 2) >> 2;
        *d = v.clamp(0, 255) as u8;
    }
}

/// OpenCV's separable two-tap resize (`resizeGeneric_` with `HResizeLinear` and `VResizeLinear`).
fn two_tap(src: &RgbImage, [w, h]: [u32; 2], mapping: Mapping) -> RgbImage {
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let (w, h) = (w as usize, h as usize);
    let columns = column_taps(sw, w, mapping);
    let rows = row_taps(sh, h, mapping);
    let raw = src.as_raw();
    let source_row = |y: usize| &raw[y * sw * 3..(y + 1) * sw * 3];
    let mut out = vec![0u8; w * h * 3];
    // Horizontal passes of the two source rows last used, and which rows they are.
    let mut buffers = [vec![0i16; w * 3], vec![0i16; w * 3]];
    let mut held: [Option<usize>; 2] = [None, None];
    for (dst, t) in out.chunks_exact_mut(w * 3).zip(&rows) {
        let [y0, y1] = t.rows;
        if held[0] != Some(y0) {
            if held[1] == Some(y0) {
                buffers.swap(0, 1);
                held.swap(0, 1);
            } else {
                horizontal_pass(source_row(y0), &columns, &mut buffers[0]);
                held[0] = Some(y0);
            }
        }
        if held[1] != Some(y1) {
            horizontal_pass(source_row(y1), &columns, &mut buffers[1]);
            held[1] = Some(y1);
        }
        vertical_pass(&buffers[0], &buffers[1], t.weights, dst);
    }
    RgbImage::from_raw(w as u32, h as u32, out).unwrap_or_else(|| RgbImage::new(w as u32, h as u32))
}

/// `resizeAreaFast_`: each destination pixel is the mean of a `kx × ky` block. The 2×2 case is an integer
/// rounding shift; other factors multiply the integer sum by the f32 `1 / (kx·ky)` and round half to even.
fn area_integer(src: &RgbImage, [w, h]: [u32; 2], [kx, ky]: [u32; 2]) -> RgbImage {
    let (sw, w, h) = (src.width() as usize, w as usize, h as usize);
    let (kx, ky) = (kx as usize, ky as usize);
    let raw = src.as_raw();
    let stride = sw * 3;
    let scale = 1.0f32 / (kx * ky) as f32;
    let mut out = vec![0u8; w * h * 3];
    for (y, dst) in out.chunks_exact_mut(w * 3).enumerate() {
        let block = &raw[y * ky * stride..(y + 1) * ky * stride];
        if kx == 2 && ky == 2 {
            let (r0, r1) = block.split_at(stride);
            for (x, d) in dst.chunks_exact_mut(3).enumerate() {
                let s = x * 6;
                for c in 0..3 {
                    let sum = r0[s + c] as u32
                        + r0[s + 3 + c] as u32
                        + r1[s + c] as u32
                        + r1[s + 3 + c] as u32;
                    d[c] = ((sum + 2) >> 2) as u8;
                }
            }
            continue;
        }
        for (x, d) in dst.chunks_exact_mut(3).enumerate() {
            for (c, dc) in d.iter_mut().enumerate() {
                let mut sum = 0i32;
                for row in block.chunks_exact(stride) {
                    for i in 0..kx {
                        sum += row[(x * kx + i) * 3 + c] as i32;
                    }
                }
                *dc = (sum as f32 * scale).round_ties_even().clamp(0.0, 255.0) as u8;
            }
        }
    }
    RgbImage::from_raw(w as u32, h as u32, out).unwrap_or_else(|| RgbImage::new(w as u32, h as u32))
}

/// One source pixel's share of one destination pixel (OpenCV's `DecimateAlpha`).
#[derive(Debug, Clone, Copy)]
struct Share {
    dst: usize,
    src: usize,
    alpha: f32,
}

/// `computeResizeAreaTab`: the source pixels each destination pixel covers, partial ones at both ends weighted
/// by their covered fraction (ignored below 1e-3), all divided by the cell width. Sorted by `dst`.
fn area_shares(src_len: usize, dst_len: usize, scale: f64) -> Vec<Share> {
    let mut shares = Vec::with_capacity(src_len * 2);
    for d in 0..dst_len {
        let fs1 = d as f64 * scale;
        let fs2 = fs1 + scale;
        let cell = scale.min(src_len as f64 - fs1);
        let mut s2 = fs2.floor() as i64;
        let mut s1 = fs1.ceil() as i64;
        s2 = s2.min(src_len as i64 - 1);
        s1 = s1.min(s2);
        let mut push = |src: i64, alpha: f64| {
            shares.push(Share {
                dst: d,
                src: src as usize,
                alpha: alpha as f32,
            })
        };
        if s1 as f64 - fs1 > 1e-3 {
            push(s1 - 1, (s1 as f64 - fs1) / cell);
        }
        for s in s1..s2 {
            // `float(1.0 / cellWidth)`: the same rounding as the partial shares.
            push(s, 1.0 / cell);
        }
        if fs2 - s2 as f64 > 1e-3 {
            push(s2, (fs2 - s2 as f64).min(1.0).min(cell) / cell);
        }
    }
    shares
}

/// `resizeArea_<uchar, float>`: f32 weighted sums, horizontal first, accumulated in table order (f32 addition
/// is not associative, so the order is part of the result), rounded half to even.
fn area_fractional(src: &RgbImage, [w, h]: [u32; 2], scale: Scale) -> RgbImage {
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let (w, h) = (w as usize, h as usize);
    let columns = area_shares(sw, w, scale.x);
    let rows = area_shares(sh, h, scale.y);
    let raw = src.as_raw();
    let mut out = vec![0u8; w * h * 3];
    let mut buf = vec![0f32; w * 3];
    let mut sum = vec![0f32; w * 3];
    let store = |sum: &[f32], out: &mut [u8], dy: usize| {
        for (d, &v) in out[dy * w * 3..(dy + 1) * w * 3].iter_mut().zip(sum) {
            *d = v.round_ties_even().clamp(0.0, 255.0) as u8;
        }
    };
    let mut current: Option<usize> = None;
    for r in &rows {
        let row = &raw[r.src * sw * 3..(r.src + 1) * sw * 3];
        buf.fill(0.0);
        for t in &columns {
            let (d, s) = (t.dst * 3, t.src * 3);
            for c in 0..3 {
                buf[d + c] += row[s + c] as f32 * t.alpha;
            }
        }
        if current == Some(r.dst) {
            for (s, &b) in sum.iter_mut().zip(&buf) {
                *s += r.alpha * b;
            }
        } else {
            if let Some(prev) = current {
                store(&sum, &mut out, prev);
            }
            for (s, &b) in sum.iter_mut().zip(&buf) {
                *s = r.alpha * b;
            }
            current = Some(r.dst);
        }
    }
    if let Some(prev) = current {
        store(&sum, &mut out, prev);
    }
    RgbImage::from_raw(w as u32, h as u32, out).unwrap_or_else(|| RgbImage::new(w as u32, h as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(rows: &[&[u8]]) -> RgbImage {
        RgbImage::from_fn(rows[0].len() as u32, rows.len() as u32, |x, y| {
            let v = rows[y as usize][x as usize];
            image::Rgb([v, v, v])
        })
    }

    fn first_channel(image: &RgbImage) -> Vec<Vec<u8>> {
        (0..image.height())
            .map(|y| {
                (0..image.width())
                    .map(|x| image.get_pixel(x, y).0[0])
                    .collect()
            })
            .collect()
    }

    #[test]
    fn long_side_size_matches_load_image() {
        assert_eq!(long_side_size([640, 480], 640), [640, 480]);
        assert_eq!(long_side_size([1280, 720], 640), [640, 360]);
        assert_eq!(long_side_size([333, 500], 640), [427, 640]);
        assert_eq!(long_side_size([100, 50], 320), [320, 160]);
    }

    #[test]
    fn resize_bilinear_constant_image_stays_constant() {
        let src = RgbImage::from_pixel(37, 23, image::Rgb([10, 200, 77]));
        let out = resize_bilinear(&src, [64, 11]);
        assert!(out.pixels().all(|p| p.0 == [10, 200, 77]));
    }

    #[test]
    fn resize_bilinear_halving_averages_pairs() {
        // cv2.resize(np.array([[0, 100, 200, 255]], np.uint8), (2, 1)) == [[50, 228]]
        let out = resize_bilinear(&gray(&[&[0, 100, 200, 255]]), [2, 1]);
        assert_eq!(first_channel(&out), [[50, 228]]);
    }

    #[test]
    fn resize_bilinear_matches_opencv_exactly() {
        // cv2.resize(a, (5, 4)) of a 9x7 image (opencv-python 5.1.0.95, INTER_LINEAR). Rounding the full
        // `b0·s0 + b1·s1` once (`+ 2^21 >> 22`) gives 160 at (0, 3) and 82 at (2, 3) instead.
        let a: [&[u8]; 7] = [
            &[172, 192, 195, 211, 36, 216, 58, 39, 88],
            &[25, 9, 208, 254, 192, 216, 29, 142, 193],
            &[127, 202, 163, 114, 34, 164, 38, 17, 105],
            &[31, 65, 57, 119, 82, 142, 140, 84, 6],
            &[127, 204, 232, 148, 23, 117, 49, 163, 197],
            &[113, 162, 131, 205, 149, 0, 43, 23, 121],
            &[163, 195, 227, 50, 41, 36, 43, 2, 32],
        ];
        let out = resize_bilinear(&gray(&a), [5, 4]);
        assert_eq!(
            first_channel(&out),
            [
                [119, 205, 95, 81, 107],
                [143, 143, 40, 73, 66],
                [144, 197, 30, 72, 165],
                [159, 174, 81, 39, 43],
            ]
        );
    }

    #[test]
    fn resize_area_integer_factor_rounds_half_to_even() {
        // cv2.resize(np.array([[1, 2, 3, 2]], np.uint8), (2, 1), interpolation=cv2.INTER_AREA) == [[2, 2]]:
        // 1.5 and 2.5 both round to 2.
        let out = resize_area(&gray(&[&[1, 2, 3, 2]]), [2, 1]);
        assert_eq!(first_channel(&out), [[2, 2]]);
    }
}
