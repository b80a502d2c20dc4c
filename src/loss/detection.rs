//! `v8DetectionLoss`: the loss YOLOv8 and YOLO11 detectors train with.
//!
//! Source: ultralytics/utils/loss.py `v8DetectionLoss`, `BboxLoss` (8.4.190). Per batch: pad the targets per
//! image, decode the predicted boxes, assign targets ([`super::tal`]), then
//! - cls: BCE-with-logits of every anchor and class against the soft target scores,
//! - box: `1 - CIoU` of each foreground anchor's box, weighted by its target score,
//! - dfl: DFL of each foreground anchor's side distributions, weighted the same way,
//!
//! each summed and divided by `target_scores_sum` (at least 1), then multiplied by its gain. The trainer
//! back-propagates `(box + cls + dfl) · batch_size`.

use burn::config::Config;
use burn::tensor::activation::{log_sigmoid, sigmoid};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use super::dfl::{dfl_loss, dist_expectation};
use super::iou::{bbox_iou_xyxy, BoxesXyxy, IouKind};
use super::tal::{
    bbox2dist_ltrb, dist2bbox_xyxy, GroundTruth, TaskAlignedAssigner, TaskAlignedAssignerConfig,
};
use crate::model::{Anchors, HeadOutput, REG_MAX, STRIDES};
use crate::YoloError;

/// Builds a [`DetectionLoss`]. Gains are Ultralytics' defaults (ultralytics/cfg/default.yaml `box`, `cls`, `dfl`).
#[derive(Config, Debug)]
pub struct DetectionLossConfig {
    /// Weight of the CIoU box loss.
    #[config(default = 7.5)]
    pub box_gain: f64,
    /// Weight of the BCE class loss.
    #[config(default = 0.5)]
    pub cls_gain: f64,
    /// Weight of the distribution focal loss.
    #[config(default = 1.5)]
    pub dfl_gain: f64,
    /// The target assigner's settings.
    #[config(default = "TaskAlignedAssignerConfig::new()")]
    pub assigner: TaskAlignedAssignerConfig,
}

impl DetectionLossConfig {
    pub fn init(&self) -> DetectionLoss {
        DetectionLoss {
            box_gain: self.box_gain,
            cls_gain: self.cls_gain,
            dfl_gain: self.dfl_gain,
            assigner: self.assigner.init(),
        }
    }
}

/// See the module doc; built by [`DetectionLossConfig::init`].
#[derive(Debug, Clone)]
pub struct DetectionLoss {
    box_gain: f64,
    cls_gain: f64,
    dfl_gain: f64,
    assigner: TaskAlignedAssigner,
}

/// A batch's ground truth in Ultralytics' batch format (`batch_idx`, `cls`, `bboxes`), one entry per object,
/// grouped by image as the collate function leaves them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Targets {
    /// Image of each object within the batch.
    pub batch_idx: Vec<usize>,
    /// Class id of each object.
    pub cls: Vec<usize>,
    /// Each object's box: centre x, centre y, width, height, as fractions of the input width and height.
    pub bboxes_cxcywh_norm: Vec<[f32; 4]>,
}

/// The three loss terms, each gain-scaled and normalised by `target_scores_sum`, not multiplied by the batch
/// size: what Ultralytics prints and writes to results.csv.
///
/// # Shapes
/// each `[1]`
#[derive(Debug, Clone)]
pub struct LossParts<B: Backend> {
    pub box_loss: Tensor<B, 1>,
    pub cls_loss: Tensor<B, 1>,
    pub dfl_loss: Tensor<B, 1>,
}

/// What [`DetectionLoss::forward`] returns.
#[derive(Debug, Clone)]
pub struct LossOutput<B: Backend> {
    /// `[1]` `(box + cls + dfl) · batch_size`, what the trainer back-propagates.
    pub total: Tensor<B, 1>,
    pub parts: LossParts<B>,
}

impl DetectionLoss {
    /// Ultralytics' `v8DetectionLoss.loss`. Gradients reach `out.boxes` and `out.scores`; the assignment sees
    /// detached values only. The input size is the P3 grid times 8, as Ultralytics derives it.
    ///
    /// # Shapes
    /// `out`: boxes `[B, 4R, A]`, scores `[B, nc, A]`; `targets`: N objects
    pub fn forward<B: Backend>(
        &self,
        out: &HeadOutput<B>,
        targets: &Targets,
    ) -> Result<LossOutput<B>, YoloError> {
        let [b, channels, a] = out.boxes.dims();
        let [_, nc, _] = out.scores.dims();
        if channels != 4 * REG_MAX {
            return Err(YoloError::InvalidConfig(format!(
                "the head gives {channels} box channels; the loss needs 4 x reg_max = {}",
                4 * REG_MAX
            )));
        }
        let device = out.boxes.device();
        let image_hw_px = out.grids[0].map(|cells| (cells * STRIDES[0]) as f32);

        // Class logits and the class terms stay in the head's layout, where they are contiguous; the box logits
        // go anchor-major as in Ultralytics, because burn-flex's softmax over the last dimension is ~3× faster.
        let pred_dist = out
            .boxes
            .clone()
            .swap_dims(1, 2)
            .reshape([b, a, 4, REG_MAX]); // [B, A, 4, R]
        let pred_scores = out.scores.clone(); // [B, nc, A]
        let anchors = Anchors::new(out.grids, &device);
        let points_grid = anchors.points_grid.swap_dims(1, 2); // [1, A, 2]
        let strides = anchors.strides.swap_dims(1, 2); // [1, A, 1]

        let gt = ground_truth(targets, b, nc, image_hw_px, &device)?;
        let pred_bboxes_grid =
            dist2bbox_xyxy(dist_expectation(pred_dist.clone()), points_grid.clone());
        let assigned = self.assigner.assign(
            sigmoid(pred_scores.clone().detach()),
            pred_bboxes_grid.clone().detach() * strides.clone(),
            (points_grid.clone() * strides.clone()).reshape([a, 2]),
            &gt,
        );
        let target_scores = assigned.target_scores; // [B, A, nc]
        let target_scores_sum = target_scores.clone().sum().clamp_min(1.0);

        // BCE with logits: (1 - z)·x - log σ(x), torch's stable form.
        let bce = target_scores.clone().swap_dims(1, 2).neg().add_scalar(1.0) * pred_scores.clone()
            - log_sigmoid(pred_scores);
        let cls_loss = bce.sum() / target_scores_sum.clone();

        // Box terms. Off the foreground the target scores, hence the weights, are 0. [B, A, 1]
        let weight = target_scores.sum_dim(2);
        let target_bboxes_grid = assigned.target_bboxes_xyxy_px / strides;
        let ciou = bbox_iou_xyxy(
            BoxesXyxy::from_last_dim(pred_bboxes_grid),
            BoxesXyxy::from_last_dim(target_bboxes_grid.clone()),
            IouKind::Ciou,
        );
        let box_loss =
            (ciou.neg().add_scalar(1.0) * weight.clone()).sum() / target_scores_sum.clone();
        let target_ltrb = bbox2dist_ltrb(points_grid, target_bboxes_grid, REG_MAX - 1);
        let dfl = (dfl_loss(pred_dist, target_ltrb) * weight).sum() / target_scores_sum;

        let parts = LossParts {
            box_loss: box_loss.mul_scalar(self.box_gain),
            cls_loss: cls_loss.mul_scalar(self.cls_gain),
            dfl_loss: dfl.mul_scalar(self.dfl_gain),
        };
        let total = (parts.box_loss.clone() + parts.cls_loss.clone() + parts.dfl_loss.clone())
            .mul_scalar(b as f64);
        Ok(LossOutput { total, parts })
    }
}

/// Ultralytics' `v8DetectionLoss.preprocess`: the objects of each image, in order, padded with zeros to the
/// largest count `M`, boxes scaled to pixels and turned into corners.
fn ground_truth<B: Backend>(
    targets: &Targets,
    batch_size: usize,
    nc: usize,
    [h, w]: [f32; 2],
    device: &B::Device,
) -> Result<GroundTruth<B>, YoloError> {
    let n = targets.batch_idx.len();
    if targets.cls.len() != n || targets.bboxes_cxcywh_norm.len() != n {
        return Err(YoloError::InvalidTargets(format!(
            "{n} image indices, {} classes and {} boxes; each object needs all three",
            targets.cls.len(),
            targets.bboxes_cxcywh_norm.len()
        )));
    }
    let mut counts = vec![0usize; batch_size];
    for (i, (&image, &class)) in targets.batch_idx.iter().zip(&targets.cls).enumerate() {
        if image >= batch_size {
            return Err(YoloError::InvalidTargets(format!(
                "object {i} belongs to image {image}, but the batch has {batch_size} images"
            )));
        }
        if class >= nc {
            return Err(YoloError::InvalidTargets(format!(
                "object {i} has class {class}, but the model has {nc} classes (0..{})",
                nc - 1
            )));
        }
        if targets.bboxes_cxcywh_norm[i].iter().any(|v| !v.is_finite()) {
            return Err(YoloError::InvalidTargets(format!(
                "object {i} has a non-finite box {:?}",
                targets.bboxes_cxcywh_norm[i]
            )));
        }
        counts[image] += 1;
    }
    let m = counts.iter().copied().max().unwrap_or(0);
    let mut labels = vec![0i64; batch_size * m];
    let mut boxes = vec![0f32; batch_size * m * 4];
    let mut valid = vec![false; batch_size * m];
    let mut filled = vec![0usize; batch_size];
    for ((&image, &class), &[cx, cy, bw, bh]) in targets
        .batch_idx
        .iter()
        .zip(&targets.cls)
        .zip(&targets.bboxes_cxcywh_norm)
    {
        let slot = image * m + filled[image];
        filled[image] += 1;
        let (cx, cy, half_w, half_h) = (cx * w, cy * h, bw * w / 2.0, bh * h / 2.0);
        let corners = [cx - half_w, cy - half_h, cx + half_w, cy + half_h];
        labels[slot] = class as i64;
        boxes[slot * 4..slot * 4 + 4].copy_from_slice(&corners);
        // Ultralytics marks real boxes by a positive coordinate sum.
        valid[slot] = corners.iter().sum::<f32>() > 0.0;
    }
    Ok(GroundTruth {
        labels: Tensor::<B, 2, Int>::from_data(TensorData::new(labels, [batch_size, m]), device),
        boxes_xyxy_px: Tensor::from_data(TensorData::new(boxes, [batch_size, m, 4]), device),
        mask: Tensor::<B, 2, Bool>::from_data(TensorData::new(valid, [batch_size, m]), device),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Autodiff;

    type B = Autodiff<crate::backend::Cpu>;

    /// A 64×64 input (A = 64 + 16 + 4 anchors), two images, 3 classes, uniform logits.
    fn head_output() -> (HeadOutput<B>, Tensor<B, 3>, Tensor<B, 3>) {
        let device = Default::default();
        let boxes = Tensor::<B, 3>::zeros([2, 4 * REG_MAX, 84], &device).require_grad();
        let scores = Tensor::<B, 3>::full([2, 3, 84], -2.0, &device).require_grad();
        let out = HeadOutput {
            boxes: boxes.clone(),
            scores: scores.clone(),
            grids: [[8, 8], [4, 4], [2, 2]],
        };
        (out, boxes, scores)
    }

    fn one_box() -> Targets {
        Targets {
            batch_idx: vec![1],
            cls: vec![2],
            bboxes_cxcywh_norm: vec![[0.5, 0.5, 0.5, 0.25]],
        }
    }

    #[test]
    fn loss_without_targets_is_class_loss_only() {
        let (out, boxes, _) = head_output();
        let loss = DetectionLossConfig::new()
            .init()
            .forward(&out, &Targets::default())
            .expect("loss");
        assert_eq!(loss.parts.box_loss.clone().into_scalar(), 0.0);
        assert_eq!(loss.parts.dfl_loss.clone().into_scalar(), 0.0);
        // Every logit is -2 and every target 0: BCE = softplus(-2), summed, divided by max(0, 1), times 0.5.
        let bce = (1.0 + (-2f64).exp()).ln();
        let want = 0.5 * bce * (2 * 3 * 84) as f64;
        let cls = loss.parts.cls_loss.clone().into_scalar() as f64;
        assert!((cls - want).abs() < 1e-3 * want, "{cls} vs {want}");
        let total = loss.total.clone().into_scalar() as f64;
        assert!(
            (total - 2.0 * cls).abs() < 1e-3 * total,
            "total is the sum times the batch size"
        );
        let grads = loss.total.backward();
        let grad = boxes.grad(&grads).map(|g| g.abs().sum().into_scalar());
        assert!(
            grad.unwrap_or(0.0) == 0.0,
            "no box gradient without targets"
        );
    }

    #[test]
    fn loss_with_a_target_has_all_three_terms() {
        let (out, boxes, scores) = head_output();
        let loss = DetectionLossConfig::new()
            .init()
            .forward(&out, &one_box())
            .expect("loss");
        for (name, part) in [
            ("box", &loss.parts.box_loss),
            ("cls", &loss.parts.cls_loss),
            ("dfl", &loss.parts.dfl_loss),
        ] {
            let v = part.clone().into_scalar();
            assert!(v.is_finite() && v > 0.0, "{name}_loss {v}");
        }
        let grads = loss.total.backward();
        let grad_boxes = boxes.grad(&grads).expect("box gradient");
        // Image 0 has no object: its box logits get no gradient; image 1's do.
        let image_sums: Vec<f32> = grad_boxes
            .abs()
            .sum_dim(2)
            .sum_dim(1)
            .into_data()
            .to_vec()
            .expect("f32");
        assert_eq!(image_sums[0], 0.0);
        assert!(image_sums[1] > 0.0);
        assert!(scores.grad(&grads).is_some());
    }

    #[test]
    fn loss_refuses_a_class_beyond_the_head() {
        let (out, _, _) = head_output();
        let mut targets = one_box();
        targets.cls[0] = 3;
        let err = DetectionLossConfig::new()
            .init()
            .forward(&out, &targets)
            .expect_err("class 3 of 3");
        assert!(err.to_string().contains("class 3"), "{err}");
    }

    #[test]
    fn loss_refuses_an_image_beyond_the_batch() {
        let (out, _, _) = head_output();
        let mut targets = one_box();
        targets.batch_idx[0] = 2;
        let err = DetectionLossConfig::new()
            .init()
            .forward(&out, &targets)
            .expect_err("image 2 of 2");
        assert!(err.to_string().contains("image 2"), "{err}");
    }

    #[test]
    fn loss_refuses_ragged_targets() {
        let (out, _, _) = head_output();
        let mut targets = one_box();
        targets.cls.push(0);
        assert!(DetectionLossConfig::new()
            .init()
            .forward(&out, &targets)
            .is_err());
    }
}
