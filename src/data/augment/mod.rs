//! Training augmentation on `u8` RGB images, before any tensor, following Ultralytics 8.4's `v8_transforms`:
//! mosaic → random perspective → HSV → flip up-down → flip left-right. Validation images are only letterboxed.
//!
//! Every random choice comes from the [`SampleRng`] of (seed, epoch, image), so a sample does not depend on
//! the worker that makes it. One difference from Ultralytics, for that reason: its mosaic takes the three other
//! images from a buffer of recently loaded images, whose content depends on worker timing; ours takes them from a
//! fixed pool of images (the loader's group of consecutive batches in the epoch order, see `loader`).
//!
//! `mixup` (and Ultralytics' `cutmix`, `copy_paste`) are not implemented: a config with `mixup > 0` is refused.

pub mod color;
pub mod letterbox;
pub mod mosaic;
pub mod perspective;
pub mod resize;

use image::RgbImage;

use crate::config::AugmentSection;
use crate::data::rng::SampleRng;
use crate::YoloError;

pub use color::{HsvGains, HsvLut};
pub use letterbox::Letterbox;
pub use perspective::{box_candidates, BoxCandidates, PerspectiveRange, Warp};

/// Grey of padding and of pixels warped in from outside (Ultralytics' 114).
pub const PAD_VALUE: u8 = 114;

/// `x` truncated towards zero and clamped to `0..=255`, as `x as u8` gives, but as a plain conversion
/// instruction, which vectorises, where `as` saturates with compares that do not. Exact for every finite `x` in
/// `-1.0 < x < 256.0`, the range of our pixel arithmetic; any other value (NaN included) still gives a byte.
#[inline(always)]
// not `clamp`: it passes a NaN through, and a NaN must not reach `to_int_unchecked`
#[allow(clippy::manual_clamp)]
pub(crate) fn trunc_to_byte(x: f32) -> u8 {
    // f32::max returns the other operand for a NaN, so this is finite and in 0..=255 whatever x is.
    let x = x.max(0.0).min(255.0);
    // SAFETY: x is finite and within 0..=255, so its truncation is representable as an i32.
    unsafe { x.to_int_unchecked::<i32>() as u8 }
}

/// A box on the current image of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelBox {
    /// Contiguous class index.
    pub class: u32,
    /// Corners in pixels of the sample's image.
    pub xyxy_px: [f32; 4],
}

impl LabelBox {
    /// The box on its image flipped left-right, the image `w` pixels wide.
    pub fn mirrored(self, w: f32) -> Self {
        let [x1, y1, x2, y2] = self.xyxy_px;
        Self {
            class: self.class,
            xyxy_px: [w - x2, y1, w - x1, y2],
        }
    }
}

/// An image and its boxes, in that image's pixels, at any step of the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub image: RgbImage,
    pub boxes: Vec<LabelBox>,
}

impl Sample {
    /// `[w, h]` of the image.
    pub fn size(&self) -> [u32; 2] {
        [self.image.width(), self.image.height()]
    }

    /// Ultralytics' `RandomFlip(direction="horizontal")` applied.
    pub fn flip_lr(&mut self) {
        image::imageops::flip_horizontal_in_place(&mut self.image);
        let w = self.image.width() as f32;
        for b in &mut self.boxes {
            *b = b.mirrored(w);
        }
    }

    /// Ultralytics' `RandomFlip(direction="vertical")` applied.
    pub fn flip_ud(&mut self) {
        image::imageops::flip_vertical_in_place(&mut self.image);
        let h = self.image.height() as f32;
        for b in &mut self.boxes {
            let [x1, y1, x2, y2] = b.xyxy_px;
            b.xyxy_px = [x1, h - y2, x2, h - y1];
        }
    }
}

/// The training pipeline's settings: `[augment]` plus the square output size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainAugment {
    /// Output side in pixels (`train.imgsz`).
    pub imgsz: u32,
    /// Probability of a 4-image mosaic; 0 once `close_mosaic` applies.
    pub mosaic: f64,
    pub perspective: PerspectiveRange,
    pub hsv: HsvGains,
    /// Probability of an up-down flip.
    pub flipud: f64,
    /// Probability of a left-right flip.
    pub fliplr: f64,
}

impl TrainAugment {
    /// The pipeline of `[augment]` at `imgsz`; refuses what is not implemented (`mixup > 0`).
    pub fn new(augment: &AugmentSection, imgsz: usize) -> Result<Self, YoloError> {
        if augment.mixup > 0.0 {
            return Err(YoloError::InvalidConfig(format!(
                "augment.mixup = {} is not supported yet; set augment.mixup = 0.0 (Ultralytics' default)",
                augment.mixup
            )));
        }
        Ok(Self {
            imgsz: imgsz as u32,
            mosaic: augment.mosaic,
            perspective: PerspectiveRange::from(augment),
            hsv: HsvGains {
                hue: augment.hsv_h,
                saturation: augment.hsv_s,
                value: augment.hsv_v,
            },
            flipud: augment.flipud,
            fliplr: augment.fliplr,
        })
    }

    /// The pipeline of the last `close_mosaic` epochs: no mosaic, the rest unchanged (Ultralytics'
    /// `YOLODataset.close_mosaic`).
    pub fn without_mosaic(self) -> Self {
        Self {
            mosaic: 0.0,
            ..self
        }
    }

    /// One training sample: `pool[own]` (with up to three other `pool` images if the mosaic is drawn), warped,
    /// coloured and flipped, `imgsz` square.
    ///
    /// Without mosaic the resized image is warped directly onto the `imgsz` square with its centre at the
    /// (translated) centre: the same geometry as letterboxing first, which Ultralytics 8.4 folds into
    /// `RandomPerspective` (its matrix `C` centres the image, `T` moves it to the output centre).
    ///
    /// # Shapes
    /// `pool` images: resized so the long side is `imgsz` (`resize::resize_long_side`); output `[imgsz, imgsz]`.
    pub fn apply(&self, pool: &[Sample], own: usize, rng: &mut SampleRng) -> Sample {
        let s = self.imgsz;
        let use_mosaic = rng.unit() <= self.mosaic && self.mosaic > 0.0;
        // the draws in Ultralytics' order (warp, HSV, up-down, left-right), the left-right flip done by the warp
        let draw_rest = |rng: &mut SampleRng| {
            let lut = self.hsv.active().then(|| self.hsv.draw(rng));
            (lut, rng.chance(self.flipud), rng.chance(self.fliplr))
        };
        let (warped, lut, flip_ud) = if use_mosaic {
            let partners = [
                rng.below(pool.len()),
                rng.below(pool.len()),
                rng.below(pool.len()),
            ];
            let tiles = [
                &pool[own],
                &pool[partners[0]],
                &pool[partners[1]],
                &pool[partners[2]],
            ];
            let (canvas, boxes) = mosaic::mosaic4(tiles, s, rng);
            let warp = self.perspective.draw(canvas.size(), s, rng);
            let (lut, flip_ud, flip_lr) = draw_rest(rng);
            let src = perspective::Source::Mosaic(&canvas);
            (warp.apply_source(src, &boxes, s, flip_lr), lut, flip_ud)
        } else {
            let warp = self.perspective.draw(pool[own].size(), s, rng);
            let (lut, flip_ud, flip_lr) = draw_rest(rng);
            (warp.apply_mirrored(&pool[own], s, flip_lr), lut, flip_ud)
        };
        // HSV is per pixel and the flips move whole pixels and boxes, so this order gives the same sample
        let mut out = warped;
        if let Some(lut) = lut {
            lut.apply(&mut out.image);
        }
        if flip_ud {
            out.flip_ud();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunc_to_byte_is_as_u8_in_range_and_safe_outside() {
        for x in [0.0f32, 0.4, 0.99, 1.0, 113.7, 254.999, 255.0, -0.5, -0.0] {
            assert_eq!(trunc_to_byte(x), x as u8, "{x}");
        }
        assert_eq!(trunc_to_byte(f32::NAN), 0);
        assert_eq!(trunc_to_byte(1e9), 255);
        assert_eq!(trunc_to_byte(-1e9), 0);
        assert_eq!(trunc_to_byte(f32::INFINITY), 255);
    }

    #[test]
    fn train_augment_refuses_mixup() {
        let augment = AugmentSection {
            mixup: 0.1,
            ..AugmentSection::default()
        };
        let err = TrainAugment::new(&augment, 640).unwrap_err().to_string();
        assert!(err.contains("augment.mixup"), "{err}");
    }

    #[test]
    fn flips_move_boxes_with_pixels() {
        let mut image = RgbImage::new(10, 6);
        image.put_pixel(1, 2, image::Rgb([255, 0, 0]));
        let mut sample = Sample {
            image,
            boxes: vec![LabelBox {
                class: 0,
                xyxy_px: [1.0, 2.0, 2.0, 3.0],
            }],
        };
        sample.flip_lr();
        assert_eq!(sample.boxes[0].xyxy_px, [8.0, 2.0, 9.0, 3.0]);
        assert_eq!(sample.image.get_pixel(8, 2).0, [255, 0, 0]);
        sample.flip_ud();
        assert_eq!(sample.boxes[0].xyxy_px, [8.0, 3.0, 9.0, 4.0]);
        assert_eq!(sample.image.get_pixel(8, 3).0, [255, 0, 0]);
    }
}
