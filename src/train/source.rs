//! Where the training loop gets its batches: the [`BatchSource`] trait, and [`LetterboxSource`], a minimal
//! source of our own (decode once into RAM, letterbox to `imgsz`, Ultralytics' shuffle per (seed, epoch), a
//! left-right flip per (seed, epoch, image)).
//!
//! Why a trait: the augmenting loader of `data::loader` (mosaic, HSV, perspective, worker threads) is written on
//! another branch; the loop only needs "the batches of epoch e, in a fixed order", so it is written against
//! this trait and either source plugs in. Every batch must be a pure function of (seed, epoch, index) so that a
//! resumed run sees the same data.

use std::sync::Arc;

use image::RgbImage;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

use crate::data::image::load_rgb;
use crate::data::Index;
use crate::loss::Targets;
use crate::YoloError;

/// How an image sits in its batch: `input_px = original_px · gain + pad_px`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub gain: f32,
    pub pad_px: [f32; 2],
}

/// One collated batch.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceBatch {
    /// RGB 0..1, `[B, 3, H, W]` row-major.
    pub images: Vec<f32>,
    pub shape: [usize; 4],
    /// `(batch_idx, cls, cx, cy, w, h)`, box normalised to the input size.
    pub targets: Vec<[f32; 6]>,
    /// Position of each image in the source's index.
    pub index_positions: Vec<usize>,
    pub placements: Vec<Placement>,
}

impl SourceBatch {
    /// The targets in the loss's layout.
    pub fn loss_targets(&self) -> Targets {
        Targets {
            batch_idx: self.targets.iter().map(|t| t[0] as usize).collect(),
            cls: self.targets.iter().map(|t| t[1] as usize).collect(),
            bboxes_cxcywh_norm: self
                .targets
                .iter()
                .map(|t| [t[2], t[3], t[4], t[5]])
                .collect(),
        }
    }
}

/// The batches of each epoch, in a fixed order.
pub trait BatchSource: Send + Sync {
    /// Batches per epoch (`nb`).
    fn batches_per_epoch(&self) -> usize;
    /// The `i`-th batch of 0-based `epoch`.
    fn batch(&self, epoch: usize, i: usize) -> Result<SourceBatch, YoloError>;
}

/// Train (shuffled, flipped) or validation (in order, untouched).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SourceMode {
    Train {
        seed: u64,
        /// Probability of a left-right flip.
        fliplr: f64,
    },
    Val,
}

/// See the module doc.
pub struct LetterboxSource {
    images: Vec<Arc<RgbImage>>,
    /// Per image: `(class, x1, y1, x2, y2)` in original pixels, crowd boxes left out.
    boxes: Vec<Vec<(u32, [f32; 4])>>,
    placements: Vec<Placement>,
    imgsz: usize,
    batch: usize,
    mode: SourceMode,
}

/// Ultralytics' letterbox padding colour.
const PAD_VALUE: u8 = 114;

impl LetterboxSource {
    /// Decodes every image of `index` (in parallel) and keeps them.
    pub fn new(
        index: &Index,
        imgsz: usize,
        batch: usize,
        mode: SourceMode,
    ) -> Result<Self, YoloError> {
        let images = index
            .images
            .par_iter()
            .map(|record| {
                let image = load_rgb(&record.path).map_err(|e| YoloError::Dataset {
                    path: record.path.clone(),
                    line: None,
                    detail: e.to_string(),
                })?;
                Ok(Arc::new(letterbox(&image, imgsz).0))
            })
            .collect::<Result<Vec<_>, YoloError>>()?;
        let boxes = index
            .images
            .iter()
            .map(|r| {
                r.boxes
                    .iter()
                    .filter(|b| !b.crowd)
                    .map(|b| (b.class, b.xyxy_px))
                    .collect()
            })
            .collect();
        let placements: Vec<Placement> = index
            .images
            .iter()
            .map(|r| placement(r.size, imgsz))
            .collect();
        let mut boxes: Vec<Vec<(u32, [f32; 4])>> = boxes;
        // Boxes to input pixels once.
        for (boxes, p) in boxes.iter_mut().zip(&placements) {
            for (_, b) in boxes.iter_mut() {
                *b = [
                    b[0] * p.gain + p.pad_px[0],
                    b[1] * p.gain + p.pad_px[1],
                    b[2] * p.gain + p.pad_px[0],
                    b[3] * p.gain + p.pad_px[1],
                ];
            }
        }
        Ok(Self {
            images,
            boxes,
            placements,
            imgsz,
            batch: batch.max(1),
            mode,
        })
    }

    /// The order of 0-based `epoch`: a seeded shuffle for training, the index order for validation.
    fn order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.images.len()).collect();
        if let SourceMode::Train { seed, .. } = self.mode {
            let mut rng =
                StdRng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            for i in (1..order.len()).rev() {
                let j = rng.random_range(0..=i);
                order.swap(i, j);
            }
        }
        order
    }
}

impl BatchSource for LetterboxSource {
    fn batches_per_epoch(&self) -> usize {
        self.images.len().div_ceil(self.batch)
    }

    fn batch(&self, epoch: usize, i: usize) -> Result<SourceBatch, YoloError> {
        let order = self.order(epoch);
        let members: Vec<usize> = order
            .iter()
            .skip(i * self.batch)
            .take(self.batch)
            .copied()
            .collect();
        let s = self.imgsz;
        let plane = s * s;
        let mut images = vec![0f32; members.len() * 3 * plane];
        let mut targets = Vec::new();
        for (b, &pos) in members.iter().enumerate() {
            let flip = match self.mode {
                SourceMode::Train { seed, fliplr } => {
                    let mut rng = StdRng::seed_from_u64(
                        seed.wrapping_add(0x5851_F42D_4C95_7F2D)
                            ^ ((epoch as u64) << 32 | pos as u64),
                    );
                    rng.random::<f64>() < fliplr
                }
                SourceMode::Val => false,
            };
            let image = &self.images[pos];
            let out = &mut images[b * 3 * plane..(b + 1) * 3 * plane];
            for (x, y, px) in image.enumerate_pixels() {
                let x = if flip { s - 1 - x as usize } else { x as usize };
                let at = y as usize * s + x;
                for c in 0..3 {
                    out[c * plane + at] = f32::from(px.0[c]) / 255.0;
                }
            }
            for &(class, [x1, y1, x2, y2]) in &self.boxes[pos] {
                let (x1, x2) = if flip {
                    (s as f32 - x2, s as f32 - x1)
                } else {
                    (x1, x2)
                };
                let (w, h) = (x2 - x1, y2 - y1);
                if w < 2.0 || h < 2.0 {
                    continue;
                }
                let n = s as f32;
                targets.push([
                    b as f32,
                    class as f32,
                    (x1 + w / 2.0) / n,
                    (y1 + h / 2.0) / n,
                    w / n,
                    h / n,
                ]);
            }
        }
        Ok(SourceBatch {
            shape: [members.len(), 3, s, s],
            images,
            targets,
            placements: members.iter().map(|&p| self.placements[p]).collect(),
            index_positions: members,
        })
    }
}

/// Where an image of `size` `[w, h]` lands in an `imgsz` square: scaled so its long side fits, centred.
fn placement(size: [u32; 2], imgsz: usize) -> Placement {
    let [w, h] = size.map(|v| v.max(1) as f32);
    let gain = imgsz as f32 / w.max(h);
    let (nw, nh) = ((w * gain).round(), (h * gain).round());
    Placement {
        gain,
        pad_px: [
            ((imgsz as f32 - nw) / 2.0).floor(),
            ((imgsz as f32 - nh) / 2.0).floor(),
        ],
    }
}

/// The image scaled into an `imgsz` square (bilinear), padded with grey 114.
fn letterbox(image: &RgbImage, imgsz: usize) -> (RgbImage, Placement) {
    let p = placement([image.width(), image.height()], imgsz);
    let nw = ((image.width() as f32 * p.gain).round() as u32).max(1);
    let nh = ((image.height() as f32 * p.gain).round() as u32).max(1);
    let resized = if (nw, nh) == (image.width(), image.height()) {
        image.clone()
    } else {
        image::imageops::resize(image, nw, nh, image::imageops::FilterType::Triangle)
    };
    let mut out = RgbImage::from_pixel(imgsz as u32, imgsz as u32, image::Rgb([PAD_VALUE; 3]));
    image::imageops::overlay(&mut out, &resized, p.pad_px[0] as i64, p.pad_px[1] as i64);
    (out, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_centres_the_short_side() {
        let p = placement([200, 100], 64);
        assert!((p.gain - 0.32).abs() < 1e-6);
        assert_eq!(p.pad_px, [0.0, 16.0]);
    }
}
