//! Letterboxing as Ultralytics' `LetterBox`: scale to fit, centre, pad with grey 114. Validation images go
//! through it with `scaleup=False` (they were already resized by `load_image`).

use image::RgbImage;

use super::resize::resize_bilinear;
use super::{LabelBox, Sample, PAD_VALUE};

/// Where a letterboxed image sits inside its padded canvas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// The scale applied to the input image.
    pub gain: f32,
    /// Size of the scaled image before padding, `[w, h]`.
    pub unpadded: [u32; 2],
    /// Padding added on the left and at the top, in pixels (right and bottom get the rest).
    pub pad_left_top: [u32; 2],
    /// Output size `[w, h]`.
    pub canvas: [u32; 2],
}

impl Letterbox {
    /// `LetterBox.get_params` with `auto=False`, `scale_fill=False`, `center=True`. `canvas` is `[w, h]`;
    /// `scaleup = false` never enlarges.
    pub fn fit(size: [u32; 2], canvas: [u32; 2], scaleup: bool) -> Self {
        let [w, h] = size.map(|s| s.max(1) as f64);
        let [cw, ch] = canvas;
        let mut r = (ch as f64 / h).min(cw as f64 / w);
        if !scaleup {
            r = r.min(1.0);
        }
        // Python's round() is round-half-to-even.
        let unpadded = [
            ((w * r).round_ties_even() as u32).max(1),
            ((h * r).round_ties_even() as u32).max(1),
        ];
        let dw = cw.saturating_sub(unpadded[0]) as f64 / 2.0;
        let dh = ch.saturating_sub(unpadded[1]) as f64 / 2.0;
        let left = (dw - 0.1).round_ties_even().max(0.0) as u32;
        let top = (dh - 0.1).round_ties_even().max(0.0) as u32;
        Self {
            gain: r as f32,
            unpadded,
            pad_left_top: [left, top],
            canvas,
        }
    }

    /// `LetterBox` as Ultralytics' predictor builds it for one image (`auto=True`, `Model.predict`'s
    /// `rect=True`): scale to fit `imgsz`, then pad only up to the next multiple of `stride` on each axis, so a
    /// 640×427 image runs at 640×448 rather than 640×640.
    pub fn fit_rect(size: [u32; 2], imgsz: u32, stride: u32) -> Self {
        let square = Self::fit(size, [imgsz, imgsz], true);
        let stride = stride.max(1);
        let [uw, uh] = square.unpadded;
        // dw, dh = np.mod(dw, stride), np.mod(dh, stride); halves rounded as round(d - 0.1), round(d + 0.1).
        let pad = |unpadded: u32| {
            let d = (imgsz.saturating_sub(unpadded) % stride) as f64 / 2.0;
            let before = (d - 0.1).round_ties_even().max(0.0) as u32;
            let after = (d + 0.1).round_ties_even().max(0.0) as u32;
            (before, unpadded + before + after)
        };
        let (left, cw) = pad(uw);
        let (top, ch) = pad(uh);
        Self {
            pad_left_top: [left, top],
            canvas: [cw, ch],
            ..square
        }
    }

    /// The letterboxed image and its boxes (scaled by `gain`, shifted by the padding).
    pub fn apply(&self, sample: &Sample) -> Sample {
        let scaled;
        let source = if [sample.image.width(), sample.image.height()] == self.unpadded {
            &sample.image
        } else {
            scaled = resize_bilinear(&sample.image, self.unpadded);
            &scaled
        };
        let [cw, ch] = self.canvas;
        let mut image = RgbImage::from_pixel(cw, ch, image::Rgb([PAD_VALUE; 3]));
        paste(&mut image, source, self.pad_left_top);
        let [px, py] = self.pad_left_top.map(|p| p as f32);
        let boxes = sample
            .boxes
            .iter()
            .map(|b| {
                let [x1, y1, x2, y2] = b.xyxy_px;
                LabelBox {
                    class: b.class,
                    xyxy_px: [
                        x1 * self.gain + px,
                        y1 * self.gain + py,
                        x2 * self.gain + px,
                        y2 * self.gain + py,
                    ],
                }
            })
            .collect();
        Sample { image, boxes }
    }
}

/// Copies `src` into `dst` with its top-left corner at `at`, cropping what falls outside.
pub(crate) fn paste(dst: &mut RgbImage, src: &RgbImage, at: [u32; 2]) {
    let [x0, y0] = at;
    let w = src.width().min(dst.width().saturating_sub(x0)) as usize;
    let h = src.height().min(dst.height().saturating_sub(y0));
    let (dst_w, src_w) = (dst.width() as usize, src.width() as usize);
    let src_raw = src.as_raw();
    let dst_raw: &mut [u8] = dst;
    for y in 0..h as usize {
        let d = ((y0 as usize + y) * dst_w + x0 as usize) * 3;
        let s = y * src_w * 3;
        dst_raw[d..d + w * 3].copy_from_slice(&src_raw[s..s + w * 3]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ultralytics' own `LetterBox(640, auto=True, stride=32)` on these sizes, as printed by
    /// scripts/letterbox_reference.py (ultralytics 8.4.190): three aspect ratios, a square, a downscale that
    /// needs no padding, and an odd padding (15 left, 16 right).
    #[test]
    fn fit_rect_pads_to_the_next_stride_multiple() {
        let cases = [
            // [w, h] → unpadded, pad left/top, canvas
            ([640, 427], [640, 427], [0, 10], [640, 448]),
            ([333, 500], [426, 640], [11, 0], [448, 640]),
            ([1280, 720], [640, 360], [0, 12], [640, 384]),
            ([500, 500], [640, 640], [0, 0], [640, 640]),
            ([810, 1080], [480, 640], [0, 0], [480, 640]),
            ([97, 641], [97, 640], [15, 0], [128, 640]),
        ];
        for (size, unpadded, pad, canvas) in cases {
            let lb = Letterbox::fit_rect(size, 640, 32);
            assert_eq!(
                (lb.unpadded, lb.pad_left_top, lb.canvas),
                (unpadded, pad, canvas),
                "{size:?}"
            );
            assert!(lb.canvas.iter().all(|c| c % 32 == 0));
        }
    }

    #[test]
    fn letterbox_wide_image_pads_top_and_bottom_evenly() {
        let lb = Letterbox::fit([640, 480], [640, 640], false);
        assert_eq!(lb.gain, 1.0);
        assert_eq!(lb.unpadded, [640, 480]);
        assert_eq!(lb.pad_left_top, [0, 80]);
    }

    #[test]
    fn letterbox_odd_padding_puts_extra_pixel_at_bottom_right() {
        // dh = (640 - 427) / 2 = 106.5: top round(106.4) = 106, bottom round(106.6) = 107.
        let lb = Letterbox::fit([640, 427], [640, 640], true);
        assert_eq!(lb.pad_left_top, [0, 106]);
        let lb = Letterbox::fit([333, 500], [640, 640], true);
        assert_eq!(lb.unpadded, [426, 640]);
        assert_eq!(lb.pad_left_top, [107, 0]);
    }

    #[test]
    fn letterbox_no_scaleup_keeps_small_image_size() {
        let lb = Letterbox::fit([320, 200], [640, 640], false);
        assert_eq!(lb.gain, 1.0);
        assert_eq!(lb.pad_left_top, [160, 220]);
        let lb = Letterbox::fit([320, 200], [640, 640], true);
        assert_eq!(lb.gain, 2.0);
        assert_eq!(lb.unpadded, [640, 400]);
    }

    #[test]
    fn letterbox_apply_moves_boxes_with_pixels() {
        let mut image = RgbImage::from_pixel(200, 100, image::Rgb([0, 0, 0]));
        for y in 20..40 {
            for x in 50..90 {
                image.put_pixel(x, y, image::Rgb([255, 0, 0]));
            }
        }
        let sample = Sample {
            image,
            boxes: vec![LabelBox {
                class: 3,
                xyxy_px: [50.0, 20.0, 90.0, 40.0],
            }],
        };
        let lb = Letterbox::fit([200, 100], [64, 64], true);
        let out = lb.apply(&sample);
        assert_eq!(out.image.dimensions(), (64, 64));
        assert_eq!(out.image.get_pixel(0, 0).0, [114; 3]);
        let [x1, y1, x2, y2] = out.boxes[0].xyxy_px;
        let centre = out
            .image
            .get_pixel(((x1 + x2) / 2.0) as u32, ((y1 + y2) / 2.0) as u32);
        assert_eq!(centre.0, [255, 0, 0]);
        assert!((y1 - (16.0 + 20.0 * 0.32)).abs() < 1e-4);
    }
}
