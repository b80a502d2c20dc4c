//! Images in, boxes out: letterbox, forward, NMS, and boxes mapped back to original-image pixels. The one
//! inference path shared by `predict`, `val` and validation during training.

pub mod onnx;
pub mod run;
pub mod sources;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use image::RgbImage;

use crate::data::augment::{Letterbox, Sample};
use crate::data::loader::{Batch, Placement};
use crate::eval::nms::{batched_non_max_suppression, Detection, NmsConfig};
use crate::model::{HeadOutput, Yolo, STRIDES};
use crate::YoloError;
use onnx::OnnxModel;

/// The model's largest stride: rectangular inputs are padded to multiples of it.
const MAX_STRIDE: u32 = STRIDES[2] as u32;

/// What turns an image batch into decoded predictions `[B, 4 + nc, A]`: the Burn model, or an exported ONNX
/// file run by tract (so that `val` measures the deployed file). Borrowed: the trainer validates its EMA in place.
pub enum DetectModel<'a, B: Backend> {
    Burn(&'a Yolo<B>),
    /// Fixed input size: images are letterboxed into its canvas, never into a per-batch rectangle.
    Onnx(&'a OnnxModel),
}

impl<'a, B: Backend> From<&'a Yolo<B>> for DetectModel<'a, B> {
    fn from(model: &'a Yolo<B>) -> Self {
        Self::Burn(model)
    }
}

/// A validation batch's detections per image (model-input pixels), with the Burn head's raw outputs (for the
/// validation losses) when the model is the Burn one.
pub type BatchDetections<B> = (Vec<Vec<Detection>>, Option<HeadOutput<B>>);

/// A model in eval mode with its input size and NMS settings.
pub struct Detector<'a, B: Backend> {
    pub model: DetectModel<'a, B>,
    /// Square input size for single images (`train.imgsz`) of the Burn model; loader batches bring their own
    /// shape, and an ONNX model has its own.
    pub imgsz: usize,
    pub nms: NmsConfig,
}

impl<B: Backend> Detector<'_, B> {
    /// Detections of a validation batch, in original-image pixels (the batch's `placements` undo the resize and
    /// letterbox).
    pub fn detect_batch(
        &self,
        batch: &Batch,
        device: &B::Device,
    ) -> Result<Vec<Vec<Detection>>, YoloError> {
        Ok(self
            .detect_batch_with_head(batch, device)?
            .0
            .into_iter()
            .zip(&batch.placements)
            .map(|(dets, placement)| unplace(dets, placement))
            .collect())
    }

    /// Detections of a validation batch in model-input pixels, unclipped (where Ultralytics' validator matches
    /// them to labels), with the raw head outputs for validation losses (the Burn model only: an ONNX graph
    /// ends decoded). [`unplace`] maps them back.
    pub fn detect_batch_with_head(
        &self,
        batch: &Batch,
        device: &B::Device,
    ) -> Result<BatchDetections<B>, YoloError> {
        match &self.model {
            DetectModel::Burn(model) => {
                let out = model.forward(batch.images_tensor::<B>(device));
                let raw = self.nms(model.head().decode(&out));
                Ok((raw, Some(out)))
            }
            DetectModel::Onnx(model) => {
                let floats: Vec<f32> = batch
                    .images
                    .iter()
                    .map(|&v| f32::from(v) * (1.0 / 255.0))
                    .collect();
                let [n, _, h, w] = batch.shape;
                let [cw, ch] = model.canvas();
                if [w, h] != [cw as usize, ch as usize] {
                    return Err(YoloError::InvalidConfig(format!(
                        "a {w}×{h} batch for an ONNX model whose input is {cw}×{ch}: validate it with \
                         square batches of its size"
                    )));
                }
                let values = model.predict(&floats, n)?;
                Ok((self.nms_values(&values, n, model.meta().nc), None))
            }
        }
    }

    /// Detections of whole images, in their own pixels. As Ultralytics' predictor: for the Burn model, when
    /// every image gets the same rectangle, each is letterboxed into the smallest multiple of the stride (32)
    /// that holds it scaled to `imgsz` (`LetterBox(auto=True)`); otherwise into the `imgsz`×`imgsz` square. An
    /// ONNX model's input is fixed, so every image is letterboxed into it (`auto=False`, as Ultralytics does
    /// for a fixed-shape export).
    pub fn detect_images(
        &self,
        images: Vec<RgbImage>,
        device: &B::Device,
    ) -> Result<Vec<Vec<Detection>>, YoloError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let sizes: Vec<[u32; 2]> = images.iter().map(|i| [i.width(), i.height()]).collect();
        let ([cw, ch], letterboxes) = match &self.model {
            DetectModel::Onnx(model) => {
                let canvas = model.canvas();
                let boxes = sizes
                    .iter()
                    .map(|&s| Letterbox::fit(s, canvas, true))
                    .collect();
                (canvas, boxes)
            }
            DetectModel::Burn(_) => {
                let side = self.imgsz as u32;
                let rects: Vec<Letterbox> = sizes
                    .iter()
                    .map(|&s| Letterbox::fit_rect(s, side, MAX_STRIDE))
                    .collect();
                if rects.iter().all(|r| r.canvas == rects[0].canvas) {
                    (rects[0].canvas, rects)
                } else {
                    let square = sizes
                        .iter()
                        .map(|&s| Letterbox::fit(s, [side, side], true))
                        .collect();
                    ([side, side], square)
                }
            }
        };
        let plane = (cw * ch) as usize;
        let mut data = vec![0f32; images.len() * 3 * plane];
        let mut placements = Vec::with_capacity(images.len());
        for ((image, out), (size, letterbox)) in images
            .into_iter()
            .zip(data.chunks_exact_mut(3 * plane))
            .zip(sizes.into_iter().zip(letterboxes))
        {
            let boxed = letterbox.apply(&Sample {
                image,
                boxes: Vec::new(),
            });
            for (i, p) in boxed.image.as_raw().chunks_exact(3).enumerate() {
                for c in 0..3 {
                    out[c * plane + i] = f32::from(p[c]) / 255.0;
                }
            }
            placements.push(Placement {
                original_size: size,
                gain: predict_gain(size, letterbox.unpadded),
                pad_px: letterbox.pad_left_top.map(|p| p as f32),
            });
        }
        let n = placements.len();
        let raw = match &self.model {
            DetectModel::Burn(model) => {
                let shape = [n, 3, ch as usize, cw as usize];
                let tensor = Tensor::from_data(TensorData::new(data, shape), device);
                self.nms(model.predict(tensor))
            }
            DetectModel::Onnx(model) => {
                let values = model.predict(&data, n)?;
                self.nms_values(&values, n, model.meta().nc)
            }
        };
        Ok(raw
            .into_iter()
            .zip(&placements)
            .map(|(dets, placement)| unplace(dets, placement))
            .collect())
    }

    /// # Shapes
    /// `pred`: `[B, 4 + nc, A]` decoded.
    fn nms(&self, pred: Tensor<B, 3>) -> Vec<Vec<Detection>> {
        let [batch, channels, _] = pred.dims();
        let values: Vec<f32> = pred
            .into_data()
            .convert::<f32>()
            .to_vec()
            .unwrap_or_default();
        self.nms_values(&values, batch, channels - 4)
    }

    /// # Shapes
    /// `values`: `[batch, 4 + nc, A]` decoded, row-major.
    fn nms_values(&self, values: &[f32], batch: usize, nc: usize) -> Vec<Vec<Detection>> {
        batched_non_max_suppression(values, batch, nc, &self.nms)
    }
}

/// The predictor's per-axis gain for an image of `size` scaled to `unpadded`: Ultralytics' `scale_boxes`
/// without `ratio_pad` divides by `new_w / w0` and `new_h / h0`, the rounded sides, not by the letterbox's ratio.
fn predict_gain(size: [u32; 2], unpadded: [u32; 2]) -> [f32; 2] {
    [0, 1].map(|a| (f64::from(unpadded[a]) / f64::from(size[a].max(1))) as f32)
}

/// Maps detections from model-input pixels back to the original image (Ultralytics' `scale_boxes`), clipped.
pub fn unplace(detections: Vec<Detection>, placement: &Placement) -> Vec<Detection> {
    let [w, h] = placement.original_size.map(|v| v as f32);
    let [px, py] = placement.pad_px;
    let [gx, gy] = placement.gain.map(|g| g.max(f32::MIN_POSITIVE));
    detections
        .into_iter()
        .map(|d| {
            let [x1, y1, x2, y2] = d.xyxy;
            let xyxy = [
                ((x1 - px) / gx).clamp(0.0, w),
                ((y1 - py) / gy).clamp(0.0, h),
                ((x2 - px) / gx).clamp(0.0, w),
                ((y2 - py) / gy).clamp(0.0, h),
            ];
            Detection { xyxy, ..d }
        })
        .collect()
}

/// Maps a box from original-image to model-input pixels, the inverse of [`unplace`] without its clipping.
pub fn place(xyxy: [f32; 4], placement: &Placement) -> [f32; 4] {
    let [px, py] = placement.pad_px;
    let [gx, gy] = placement.gain;
    let [x1, y1, x2, y2] = xyxy;
    [x1 * gx + px, y1 * gy + py, x2 * gx + px, y2 * gy + py]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unplace_inverts_the_letterbox() {
        // A 200×100 image letterboxed into 64×64: gain 0.32, 16 px of padding above and below.
        let letterbox = Letterbox::fit([200, 100], [64, 64], true);
        let placement = Placement {
            original_size: [200, 100],
            gain: [letterbox.gain; 2],
            pad_px: letterbox.pad_left_top.map(|p| p as f32),
        };
        let original = [20.0f32, 10.0, 120.0, 90.0];
        let boxed = original.map(|v| v * letterbox.gain);
        let boxed = [
            boxed[0],
            boxed[1] + placement.pad_px[1],
            boxed[2],
            boxed[3] + placement.pad_px[1],
        ];
        let back = unplace(
            vec![Detection {
                xyxy: boxed,
                conf: 0.9,
                class: 1,
            }],
            &placement,
        );
        for (a, b) in back[0].xyxy.iter().zip(original) {
            assert!((a - b).abs() < 1e-3, "{:?} vs {original:?}", back[0].xyxy);
        }
    }
}
