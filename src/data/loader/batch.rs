//! A collated batch: the images as one CHW byte buffer and the targets in Ultralytics' `(batch_idx, cls, cx,
//! cy, w, h)` rows. Tensors are made here, from a batch, and nowhere earlier in `data`.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::data::augment::Sample;
use crate::loss::detection::Targets;

/// How an image was placed in the model input: `input_px = original_px · gain + pad_px`, per axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Original size `[w, h]` (after EXIF orientation).
    pub original_size: [u32; 2],
    /// Scale from original to input pixels, `[x, y]`. Per axis, as Ultralytics' `scale_boxes` maps boxes back:
    /// the resized sides are rounded (or ceiled) separately, so a single gain is off by up to half a pixel over
    /// the image.
    pub gain: [f32; 2],
    /// Left and top padding, input pixels.
    pub pad_px: [f32; 2],
}

/// One batch, ready for the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// RGB bytes, CHW per image, images one after another. Bytes, as Ultralytics' collated `uint8` batch: a
    /// quarter of the memory (and of the copy to a GPU) of floats; [`Batch::images_tensor`] scales to 0..1.
    ///
    /// # Shapes
    /// `[B, 3, H, W]` flattened (`shape`).
    pub images: Vec<u8>,
    /// `[B, 3, H, W]`.
    pub shape: [usize; 4],
    /// One row per object: image index in the batch, class, then centre x, centre y, width, height as fractions
    /// of W and H. Crowd boxes are never here.
    ///
    /// # Shapes
    /// `[N, 6]`
    pub targets: Vec<[f32; 6]>,
    /// Image files, in batch order.
    pub paths: Vec<PathBuf>,
    /// Image ids (COCO `image_id`), in batch order.
    pub ids: Vec<u64>,
    /// Validation only (empty in training): where each image sits, to map predictions back.
    pub placements: Vec<Placement>,
}

impl Batch {
    /// Collates samples of one size `[w, h]` into a batch.
    pub(crate) fn collate(
        samples: &[Sample],
        paths: Vec<PathBuf>,
        ids: Vec<u64>,
        placements: Vec<Placement>,
    ) -> Self {
        let [w, h] = samples.first().map(|s| s.size()).unwrap_or([0, 0]);
        let (w, h) = (w as usize, h as usize);
        let plane = w * h;
        let mut images = vec![0u8; samples.len() * 3 * plane];
        let mut targets = Vec::new();
        for (b, (sample, out)) in samples
            .iter()
            .zip(images.chunks_exact_mut(3 * plane))
            .enumerate()
        {
            let (r, rest) = out.split_at_mut(plane);
            let (g, bl) = rest.split_at_mut(plane);
            let packed = sample.image.as_raw();
            #[cfg(target_arch = "x86_64")]
            let (packed, r, g, bl) = {
                let done = crate::data::vbmi::split_planes(packed, [&mut *r, &mut *g, &mut *bl]);
                (
                    &packed[3 * done..],
                    &mut r[done..],
                    &mut g[done..],
                    &mut bl[done..],
                )
            };
            for (((p, r), g), bl) in packed.chunks_exact(3).zip(r).zip(g).zip(bl) {
                (*r, *g, *bl) = (p[0], p[1], p[2]);
            }
            for bx in &sample.boxes {
                let [x1, y1, x2, y2] = bx.xyxy_px;
                targets.push([
                    b as f32,
                    bx.class as f32,
                    (x1 + x2) / 2.0 / w as f32,
                    (y1 + y2) / 2.0 / h as f32,
                    (x2 - x1) / w as f32,
                    (y2 - y1) / h as f32,
                ]);
            }
        }
        Self {
            images,
            shape: [samples.len(), 3, h, w],
            targets,
            paths,
            ids,
            placements,
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }

    /// The images as a float tensor in 0..1 (Ultralytics' `preprocess_batch`: `img.float() / 255`).
    ///
    /// # Shapes
    /// `[B, 3, H, W]`
    pub fn images_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 4> {
        let floats: Vec<f32> = self
            .images
            .iter()
            .map(|&v| f32::from(v) * (1.0 / 255.0))
            .collect();
        Tensor::from_data(TensorData::new(floats, self.shape), device)
    }

    /// The targets as a tensor.
    ///
    /// # Shapes
    /// `[N, 6]`: batch_idx, cls, cx, cy, w, h (normalised)
    pub fn targets_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        let flat: Vec<f32> = self.targets.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(flat, [self.targets.len(), 6]), device)
    }

    /// The targets in the loss's host layout.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::augment::LabelBox;
    use image::RgbImage;

    #[test]
    fn collate_writes_chw_and_normalised_targets() {
        let sample = |v: u8| Sample {
            image: RgbImage::from_pixel(4, 2, image::Rgb([v, 0, 255])),
            boxes: vec![LabelBox {
                class: 5,
                xyxy_px: [0.0, 0.0, 2.0, 1.0],
            }],
        };
        let batch = Batch::collate(&[sample(0), sample(255)], vec![], vec![], vec![]);
        assert_eq!(batch.shape, [2, 3, 2, 4]);
        assert_eq!(batch.images[0], 0);
        assert_eq!(batch.images[8 * 2], 255); // image 0, blue plane
        assert_eq!(batch.images[24], 255); // image 1, red plane
        assert_eq!(batch.targets[1], [1.0, 5.0, 0.25, 0.25, 0.5, 0.5]);
        let device = Default::default();
        let t = batch.targets_tensor::<crate::backend::Cpu>(&device);
        assert_eq!(t.dims(), [2, 6]);
        let im = batch.images_tensor::<crate::backend::Cpu>(&device);
        assert_eq!(im.dims(), [2, 3, 2, 4]);
        let values = im.into_data().to_vec::<f32>().expect("f32");
        assert_eq!(values[8 * 2], 1.0);
        assert_eq!(values[24], 1.0);
        assert_eq!(values[8], 0.0); // image 0, green plane
    }
}
