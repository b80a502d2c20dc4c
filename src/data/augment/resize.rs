//! Resizing as Ultralytics' `BaseDataset.load_image` does: the long side becomes `imgsz`, with OpenCV's
//! `INTER_LINEAR` sampling (two taps per axis at half-pixel centres, no anti-aliasing when shrinking).

use image::RgbImage;

/// Fixed-point weight bits, as OpenCV's `INTER_RESIZE_COEF_BITS`.
const COEF_BITS: u32 = 11;
const COEF_ONE: i32 = 1 << COEF_BITS;

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
pub fn resize_long_side(image: RgbImage, imgsz: u32) -> RgbImage {
    let target = long_side_size([image.width(), image.height()], imgsz);
    if target == [image.width(), image.height()] {
        return image;
    }
    resize_bilinear(&image, target)
}

/// One output coordinate's source tap and weight of that tap (the next tap gets `COEF_ONE - weight`).
#[derive(Debug, Clone, Copy)]
struct Tap {
    index: usize,
    weight: i32,
}

/// OpenCV's `INTER_LINEAR` coordinate map: `src = (dst + 0.5) * scale - 0.5`, clamped at the borders.
fn taps(src_len: u32, dst_len: u32) -> Vec<Tap> {
    let scale = src_len as f64 / dst_len as f64;
    (0..dst_len)
        .map(|d| {
            let f = (d as f64 + 0.5) * scale - 0.5;
            let mut i = f.floor() as i64;
            let mut frac = f - i as f64;
            if i < 0 {
                i = 0;
                frac = 0.0;
            }
            if i >= src_len as i64 - 1 {
                i = src_len as i64 - 1;
                frac = 0.0;
            }
            Tap {
                index: i as usize,
                weight: ((1.0 - frac) * COEF_ONE as f64).round() as i32,
            }
        })
        .collect()
}

/// Bilinear resize to `[w, h]` with OpenCV `INTER_LINEAR` geometry and 11-bit fixed-point weights.
pub fn resize_bilinear(src: &RgbImage, size: [u32; 2]) -> RgbImage {
    let [w, h] = size;
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let xt = taps(src.width(), w);
    let yt = taps(src.height(), h);
    let raw = src.as_raw();
    let row_stride = sw * 3;
    // Horizontally resampled source row, in units of COEF_ONE.
    let horizontal = |y: usize, out: &mut [i32]| {
        let row = &raw[y * row_stride..(y + 1) * row_stride];
        for (x, t) in xt.iter().enumerate() {
            let a = t.index * 3;
            let b = if t.index + 1 < sw { a + 3 } else { a };
            for c in 0..3 {
                out[x * 3 + c] =
                    row[a + c] as i32 * t.weight + row[b + c] as i32 * (COEF_ONE - t.weight);
            }
        }
    };
    let mut out = vec![0u8; w as usize * h as usize * 3];
    let mut row0 = vec![0i32; w as usize * 3];
    let mut row1 = vec![0i32; w as usize * 3];
    let mut cached: Option<usize> = None;
    for (y, t) in yt.iter().enumerate() {
        let next = (t.index + 1).min(sh - 1);
        if cached != Some(t.index) {
            if cached.map(|c| c + 1) == Some(t.index) {
                // The previous row1 is this row0: swap rather than recompute.
                std::mem::swap(&mut row0, &mut row1);
            } else {
                horizontal(t.index, &mut row0);
            }
            horizontal(next, &mut row1);
            cached = Some(t.index);
        }
        let dst = &mut out[y * w as usize * 3..(y + 1) * w as usize * 3];
        let (b0, b1) = (t.weight as i64, (COEF_ONE - t.weight) as i64);
        let half = 1i64 << (2 * COEF_BITS - 1);
        for ((d, &p0), &p1) in dst.iter_mut().zip(&row0).zip(&row1) {
            *d = ((p0 as i64 * b0 + p1 as i64 * b1 + half) >> (2 * COEF_BITS)).clamp(0, 255) as u8;
        }
    }
    RgbImage::from_raw(w, h, out).unwrap_or_else(|| RgbImage::new(w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let src = RgbImage::from_fn(4, 1, |x, _| {
            let v = [0, 100, 200, 255][x as usize];
            image::Rgb([v, v, v])
        });
        let out = resize_bilinear(&src, [2, 1]);
        assert_eq!(out.get_pixel(0, 0).0[0], 50);
        assert_eq!(out.get_pixel(1, 0).0[0], 228);
    }

    #[test]
    fn resize_bilinear_matches_opencv_within_one() {
        // cv2.resize(a, (5, 4)) of a 9x7 image, first channel (OpenCV 5.0, INTER_LINEAR).
        let a: [[u8; 9]; 7] = [
            [172, 192, 195, 211, 36, 216, 58, 39, 88],
            [25, 9, 208, 254, 192, 216, 29, 142, 193],
            [127, 202, 163, 114, 34, 164, 38, 17, 105],
            [31, 65, 57, 119, 82, 142, 140, 84, 6],
            [127, 204, 232, 148, 23, 117, 49, 163, 197],
            [113, 162, 131, 205, 149, 0, 43, 23, 121],
            [163, 195, 227, 50, 41, 36, 43, 2, 32],
        ];
        let expected: [[u8; 5]; 4] = [
            [119, 205, 95, 81, 107],
            [143, 143, 40, 73, 66],
            [144, 197, 30, 72, 165],
            [159, 174, 81, 39, 43],
        ];
        let src = RgbImage::from_fn(9, 7, |x, y| {
            let v = a[y as usize][x as usize];
            image::Rgb([v, v, v])
        });
        let out = resize_bilinear(&src, [5, 4]);
        for (y, row) in expected.iter().enumerate() {
            for (x, &e) in row.iter().enumerate() {
                let got = out.get_pixel(x as u32, y as u32).0[0];
                assert!(
                    (got as i32 - e as i32).abs() <= 1,
                    "({x},{y}): {got} vs {e}"
                );
            }
        }
    }
}
