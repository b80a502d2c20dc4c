//! Task-aligned assignment: which anchors learn which ground-truth box, and how soft their class targets are.
//!
//! Feng et al., "TOOD: Task-aligned One-stage Object Detection", <https://arxiv.org/abs/2108.07755>.
//! Source: ultralytics/utils/tal.py `TaskAlignedAssigner`, `bbox2dist` (8.4.190), with the settings
//! ultralytics/utils/loss.py `v8DetectionLoss` gives it. Anchor points come from [`crate::model::Anchors`]
//! (`make_anchors`).
//!
//! The whole assignment is a function of detached values: it decides targets, it is not differentiated.

use burn::config::Config;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, IndexingUpdateOp, Int, Tensor};

use super::iou::{bbox_iou_xyxy, BoxesXyxy, IouKind};

/// Margin by which an anchor centre must lie inside a box (`select_candidates_in_gts(eps=1e-9)`).
const INSIDE_EPS: f64 = 1e-9;

/// Settings of the [`TaskAlignedAssigner`]. Defaults are what `v8DetectionLoss.__init__` passes (the class's own
/// defaults, topk 13 and alpha 1.0, are not used for detection).
#[derive(Config, Debug)]
pub struct TaskAlignedAssignerConfig {
    /// Candidates kept per ground-truth box, by alignment metric (`tal_topk`).
    #[config(default = 10)]
    pub topk: usize,
    /// Exponent of the class score in the alignment metric `score^alpha · CIoU^beta`.
    #[config(default = 0.5)]
    pub alpha: f64,
    /// Exponent of the CIoU in the alignment metric.
    #[config(default = 6.0)]
    pub beta: f64,
    /// Keeps the metric normalisation finite when a box has no positive anchor.
    #[config(default = 1e-9)]
    pub eps: f64,
    /// Boxes narrower or shorter than this (pixels) are widened to it, about their centre, when looking for anchor
    /// centres inside them, so tiny objects still get candidates. Ultralytics' `stride_val`, the second stride.
    #[config(default = 16.0)]
    pub min_side_px: f64,
}

impl TaskAlignedAssignerConfig {
    pub fn init(&self) -> TaskAlignedAssigner {
        TaskAlignedAssigner {
            topk: self.topk,
            alpha: self.alpha,
            beta: self.beta,
            eps: self.eps,
            min_side_px: self.min_side_px,
        }
    }
}

/// See the module doc; built by [`TaskAlignedAssignerConfig::init`].
#[derive(Debug, Clone)]
pub struct TaskAlignedAssigner {
    topk: usize,
    alpha: f64,
    beta: f64,
    eps: f64,
    min_side_px: f64,
}

/// Ground-truth boxes padded to the same count `M` per image (Ultralytics' `preprocess` output).
#[derive(Debug, Clone)]
pub struct GroundTruth<B: Backend> {
    /// `[B, M]` class ids; 0 in padding.
    pub labels: Tensor<B, 2, Int>,
    /// `[B, M, 4]` boxes in input pixels; 0 in padding.
    pub boxes_xyxy_px: Tensor<B, 3>,
    /// `[B, M]` true for real boxes (Ultralytics: coordinate sum > 0).
    pub mask: Tensor<B, 2, Bool>,
}

/// Per (box, anchor) pair values of the candidates, zero elsewhere.
struct PairMetrics<B: Backend> {
    /// `[B, M, A]` CIoU clamped at 0.
    overlaps: Tensor<B, 3>,
    /// `[B, M, A]` `score^alpha · overlap^beta`.
    align_metric: Tensor<B, 3>,
}

/// What each anchor must learn.
#[derive(Debug, Clone)]
pub struct AssignedTargets<B: Backend> {
    /// `[B, A, 4]` the assigned box in input pixels (meaningless where `fg_mask` is false).
    pub target_bboxes_xyxy_px: Tensor<B, 3>,
    /// `[B, A, nc]` one-hot of the assigned class, scaled by the normalised alignment metric; 0 off foreground.
    pub target_scores: Tensor<B, 3>,
    /// `[B, A]` anchors that learn a box.
    pub fg_mask: Tensor<B, 2, Bool>,
    /// `[B, A]` index of the assigned box within its image (0 off foreground).
    pub target_gt_idx: Tensor<B, 2, Int>,
}

impl TaskAlignedAssigner {
    /// Ultralytics' `TaskAlignedAssigner.forward`.
    ///
    /// Steps: anchors whose centre lies inside a box (tiny boxes widened, see
    /// [`TaskAlignedAssignerConfig::min_side_px`]) are its candidates; each candidate gets the metric
    /// `score(class of box)^alpha · max(CIoU, 0)^beta`; each box keeps its `topk` best candidates; an anchor kept by
    /// several boxes goes to the box it overlaps most (among all boxes it is a candidate of); the one-hot class
    /// target is scaled by `metric · (box's best CIoU) / (box's best metric)`.
    ///
    /// Two places where torch leaves the result to the sort order, and what we do: a box with fewer than `topk`
    /// positive-metric candidates gets exactly those (torch also picks some of the zero-metric anchors, which
    /// get a zero target score and so no loss weight); equal metrics at the `topk`-th place keep all tied anchors.
    ///
    /// # Shapes
    /// - `pd_scores`: `[B, nc, A]` class probabilities (after sigmoid), in the head's layout
    /// - `pd_bboxes_xyxy_px`: `[B, A, 4]` decoded predictions in input pixels
    /// - `anchors_px`: `[A, 2]` anchor centres x, y in input pixels
    /// - `gt`: `M` boxes per image
    pub fn assign<B: Backend>(
        &self,
        pd_scores: Tensor<B, 3>,
        pd_bboxes_xyxy_px: Tensor<B, 3>,
        anchors_px: Tensor<B, 2>,
        gt: &GroundTruth<B>,
    ) -> AssignedTargets<B> {
        let pd_scores = pd_scores.detach();
        let pd_bboxes_xyxy_px = pd_bboxes_xyxy_px.detach();
        let device = pd_scores.device();
        let [b, nc, a] = pd_scores.dims();
        let [_, m] = gt.labels.dims();
        if m == 0 {
            return AssignedTargets {
                target_bboxes_xyxy_px: Tensor::zeros([b, a, 4], &device),
                target_scores: Tensor::zeros([b, a, nc], &device),
                fg_mask: Tensor::<B, 2, Int>::zeros([b, a], &device).bool(),
                target_gt_idx: Tensor::zeros([b, a], &device),
            };
        }
        let mask_gt = gt.mask.clone().unsqueeze_dim::<3>(2).expand([b, m, a]);

        // Candidates: anchor centres inside a (valid) box. [B, M, A]
        let candidates = self.candidates_in_gts(anchors_px, gt).bool_and(mask_gt);

        // CIoU and alignment metric of the candidate pairs, zero elsewhere. [B, M, A]
        let PairMetrics {
            overlaps,
            align_metric,
        } = self.candidate_metrics(pd_scores, pd_bboxes_xyxy_px, gt, candidates);

        // Each box's top-k candidates. [B, M, A]
        let k = self.topk.min(a);
        // A full sort: Burn 0.21 has no `topk` under autodiff, nor `argtopk` on burn-flex.
        let kth_best = align_metric
            .clone()
            .sort_descending(2)
            .narrow(2, k - 1, 1)
            .expand([b, m, a]);
        let mask_pos = align_metric
            .clone()
            .greater_equal(kth_best)
            .bool_and(align_metric.clone().greater_elem(0.0));

        // `select_highest_overlaps`: an anchor kept by several boxes goes to its highest-CIoU box.
        let kept_by_several = mask_pos
            .clone()
            .int()
            .sum_dim(1)
            .greater_elem(1)
            .expand([b, m, a]);
        let best_box = overlaps.clone().argmax(1).expand([b, m, a]);
        let box_ids = Tensor::<B, 1, Int>::arange(0..m as i64, &device)
            .reshape([1, m, 1])
            .expand([b, m, a]);
        let mask_pos = mask_pos.mask_where(kept_by_several, box_ids.equal(best_box));
        let mask_pos_f = mask_pos.float();
        let (fg, target_gt_idx) = mask_pos_f.clone().max_dim_with_indices(1);
        let fg_mask = fg.greater_elem(0.5).reshape([b, a]);
        let target_gt_idx: Tensor<B, 2, Int> = target_gt_idx.reshape([b, a]);

        // `get_targets`. [B, A], [B, A, 4]
        let target_labels = gt.labels.clone().gather(1, target_gt_idx.clone());
        let target_bboxes_xyxy_px = gt.boxes_xyxy_px.clone().gather(
            1,
            target_gt_idx
                .clone()
                .unsqueeze_dim::<3>(2)
                .expand([b, a, 4]),
        );
        // Normalise: each box's best positive anchor gets the box's best CIoU as its score target. [B, A, 1]
        let align_metric = align_metric * mask_pos_f.clone();
        let pos_align_metrics = align_metric.clone().max_dim(2);
        let pos_overlaps = (overlaps * mask_pos_f).max_dim(2);
        let norm_align_metric = (align_metric * pos_overlaps
            / pos_align_metrics.add_scalar(self.eps))
        .max_dim(1)
        .reshape([b, a, 1]);

        // The one-hot class target times that value, in one scatter (the value is 0 off foreground). [B, A, nc]
        let target_scores = Tensor::zeros([b, a, nc], &device).scatter(
            2,
            target_labels.unsqueeze_dim::<3>(2),
            norm_align_metric,
            IndexingUpdateOp::Add,
        );
        AssignedTargets {
            target_bboxes_xyxy_px,
            target_scores,
            fg_mask,
            target_gt_idx,
        }
    }

    /// Ultralytics' `get_box_metrics`: CIoU (clamped at 0) and `score^alpha · CIoU^beta` of each candidate pair.
    /// Like Ultralytics, only the candidate pairs are computed (a few percent of all `B·M·A`), which needs their
    /// indices on the host: one synchronisation per batch.
    ///
    /// # Shapes
    /// scores `[B, nc, A]`, predictions `[B, A, 4]`, `gt` `M` boxes, candidates `[B, M, A]` → two `[B, M, A]`
    fn candidate_metrics<B: Backend>(
        &self,
        pd_scores: Tensor<B, 3>,
        pd_bboxes_xyxy_px: Tensor<B, 3>,
        gt: &GroundTruth<B>,
        candidates: Tensor<B, 3, Bool>,
    ) -> PairMetrics<B> {
        let [b, m, a] = candidates.dims();
        let [_, nc, _] = pd_scores.dims();
        let device = pd_scores.device();
        let zeros = Tensor::<B, 1>::zeros([b * m * a], &device);
        // Flat pair index (b·M + m)·A + a of each candidate. [K]
        let pairs = candidates.reshape([b * m * a]).nonzero().into_iter().next();
        let Some(pairs) = pairs.filter(|p| p.dims()[0] > 0) else {
            let zeros = zeros.reshape([b, m, a]);
            return PairMetrics {
                overlaps: zeros.clone(),
                align_metric: zeros,
            };
        };
        let gt_row = pairs.clone().div_scalar(a as i64); // b·M + m
        let anchor = pairs.clone().remainder_scalar(a as i64);
        let batch = pairs.clone().div_scalar((m * a) as i64);
        let pd_row = batch.clone().mul_scalar(a as i64) + anchor.clone(); // b·A + a

        let gt_boxes = gt
            .boxes_xyxy_px
            .clone()
            .reshape([b * m, 4])
            .select(0, gt_row.clone());
        let pd_boxes = pd_bboxes_xyxy_px.reshape([b * a, 4]).select(0, pd_row);
        let overlaps = bbox_iou_xyxy(
            BoxesXyxy::from_last_dim(gt_boxes),
            BoxesXyxy::from_last_dim(pd_boxes),
            IouKind::Ciou,
        )
        .clamp_min(0.0)
        .reshape([-1]);
        let labels = gt.labels.clone().reshape([b * m]).select(0, gt_row);
        // Index (b·nc + label)·A + a into the head-layout scores.
        let scores = pd_scores.reshape([b * nc * a]).select(
            0,
            (batch.mul_scalar(nc as i64) + labels).mul_scalar(a as i64) + anchor,
        );
        let score_term = if self.alpha == 0.5 {
            scores.sqrt() // torch's pow(0.5) is a sqrt
        } else {
            scores.powf_scalar(self.alpha)
        };
        let align = score_term * overlaps.clone().powf_scalar(self.beta);
        let scatter = |values: Tensor<B, 1>| {
            zeros
                .clone()
                .select_assign(0, pairs.clone(), values, IndexingUpdateOp::Add)
                .reshape([b, m, a])
        };
        PairMetrics {
            overlaps: scatter(overlaps),
            align_metric: scatter(align),
        }
    }

    /// Ultralytics' `select_candidates_in_gts`: anchor centres strictly inside each box, after widening sides
    /// shorter than `min_side_px` (valid boxes only) to it about the box centre.
    ///
    /// # Shapes
    /// `anchors_px` `[A, 2]`, `gt` `M` boxes → `[B, M, A]`
    fn candidates_in_gts<B: Backend>(
        &self,
        anchors_px: Tensor<B, 2>,
        gt: &GroundTruth<B>,
    ) -> Tensor<B, 3, Bool> {
        let [a, _] = anchors_px.dims();
        let mask = gt.mask.clone().unsqueeze_dim::<3>(2);
        let boxes = BoxesXyxy::from_last_dim(gt.boxes_xyxy_px.clone());
        // Round-trip through centre and size like xyxy2xywh → xywh2xyxy, so the edges match to the bit.
        let widen = |lo: Tensor<B, 3>, hi: Tensor<B, 3>| {
            let center = (lo.clone() + hi.clone()).div_scalar(2.0);
            let size = hi - lo;
            let tiny = size
                .clone()
                .lower_elem(self.min_side_px)
                .bool_and(mask.clone());
            let size = size.mask_fill(tiny, self.min_side_px);
            let half = size.div_scalar(2.0);
            (center.clone() - half.clone(), center + half)
        };
        let (x1, x2) = widen(boxes.x1, boxes.x2);
        let (y1, y2) = widen(boxes.y1, boxes.y2);
        let ax = anchors_px.clone().narrow(1, 0, 1).reshape([1, 1, a]);
        let ay = anchors_px.narrow(1, 1, 1).reshape([1, 1, a]);
        (ax.clone() - x1)
            .greater_elem(INSIDE_EPS)
            .bool_and((ay.clone() - y1).greater_elem(INSIDE_EPS))
            .bool_and((x2 - ax).greater_elem(INSIDE_EPS))
            .bool_and((y2 - ay).greater_elem(INSIDE_EPS))
    }
}

/// Ultralytics' `dist2bbox(distance, anchor_points, xywh=False)` in the loss's anchor-major layout.
///
/// # Shapes
/// distances `[B, A, 4]` (l, t, r, b), points `[1, A, 2]` (x, y), same unit → `[B, A, 4]` (xyxy)
pub fn dist2bbox_xyxy<B: Backend>(dist_ltrb: Tensor<B, 3>, points: Tensor<B, 3>) -> Tensor<B, 3> {
    let lt = dist_ltrb.clone().narrow(2, 0, 2);
    let rb = dist_ltrb.narrow(2, 2, 2);
    Tensor::cat(vec![points.clone() - lt, points + rb], 2)
}

/// Ultralytics' `bbox2dist(anchor_points, bbox, reg_max)`: distances from each anchor to its box's sides, clamped
/// to `[0, max_bin - 0.01]` so that the DFL target always has a right-hand bin (`max_bin` = `reg_max - 1`).
///
/// # Shapes
/// points `[1, A, 2]` (x, y), boxes `[B, A, 4]` (xyxy), same unit → `[B, A, 4]` (l, t, r, b)
pub fn bbox2dist_ltrb<B: Backend>(
    points: Tensor<B, 3>,
    boxes_xyxy: Tensor<B, 3>,
    max_bin: usize,
) -> Tensor<B, 3> {
    let x1y1 = boxes_xyxy.clone().narrow(2, 0, 2);
    let x2y2 = boxes_xyxy.narrow(2, 2, 2);
    Tensor::cat(vec![points.clone() - x1y1, x2y2 - points], 2).clamp(0.0, max_bin as f64 - 0.01)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    type B = crate::backend::Cpu;

    /// A 4×4 grid of anchors at stride 8 (centres 4, 12, 20, 28 px), two images.
    fn anchors() -> Tensor<B, 2> {
        let mut xy = Vec::new();
        for y in 0..4 {
            for x in 0..4 {
                xy.extend([x as f32 * 8.0 + 4.0, y as f32 * 8.0 + 4.0]);
            }
        }
        Tensor::from_data(TensorData::new(xy, [16, 2]), &Default::default())
    }

    fn ground_truth(boxes: &[[f32; 4]], labels: &[i64], valid: &[bool]) -> GroundTruth<B> {
        let m = labels.len();
        let device = Default::default();
        let flat: Vec<f32> = boxes.iter().flatten().copied().collect();
        GroundTruth {
            labels: Tensor::from_data(TensorData::new(labels.to_vec(), [1, m]), &device),
            boxes_xyxy_px: Tensor::from_data(TensorData::new(flat, [1, m, 4]), &device),
            mask: Tensor::from_data(TensorData::new(valid.to_vec(), [1, m]), &device),
        }
    }

    /// Every anchor predicts the same 16×16 box around itself with score 0.5 for both classes.
    fn predictions() -> (Tensor<B, 3>, Tensor<B, 3>) {
        let a = anchors();
        let boxes =
            Tensor::cat(vec![a.clone().sub_scalar(8.0), a.add_scalar(8.0)], 1).unsqueeze_dim(0);
        (Tensor::full([1, 2, 16], 0.5, &Default::default()), boxes)
    }

    fn assigner(topk: usize) -> TaskAlignedAssigner {
        TaskAlignedAssignerConfig::new().with_topk(topk).init()
    }

    fn fg(t: &AssignedTargets<B>) -> Vec<bool> {
        t.fg_mask.clone().into_data().to_vec().expect("bool")
    }

    #[test]
    fn assigner_no_gt_gives_zero_fg() {
        let (scores, boxes) = predictions();
        let gt = GroundTruth::<B> {
            labels: Tensor::zeros([1, 0], &Default::default()),
            boxes_xyxy_px: Tensor::zeros([1, 0, 4], &Default::default()),
            mask: Tensor::<B, 2, Int>::zeros([1, 0], &Default::default()).bool(),
        };
        let t = assigner(10).assign(scores, boxes, anchors(), &gt);
        assert!(fg(&t).iter().all(|&f| !f));
        assert_eq!(t.target_scores.sum().into_scalar(), 0.0);
    }

    #[test]
    fn assigner_padding_only_gives_zero_fg() {
        let (scores, boxes) = predictions();
        let gt = ground_truth(&[[0.0; 4]], &[0], &[false]);
        let t = assigner(10).assign(scores, boxes, anchors(), &gt);
        assert!(fg(&t).iter().all(|&f| !f));
        assert_eq!(t.target_scores.sum().into_scalar(), 0.0);
    }

    #[test]
    fn assigner_keeps_topk_inside_the_box() {
        let (scores, boxes) = predictions();
        // Covers the 3×3 anchors with centres 4..20 px around (12, 12); topk 5 keeps the centre anchor and its
        // four edge neighbours (tied), whose predicted boxes are closest to the box.
        let gt = ground_truth(&[[0.0, 0.0, 24.0, 24.0]], &[1], &[true]);
        let t = assigner(5).assign(scores, boxes, anchors(), &gt);
        let fg = fg(&t);
        let kept: Vec<usize> = (0..16).filter(|&i| fg[i]).collect();
        assert_eq!(kept, vec![1, 4, 5, 6, 9]);
        // The best anchor's class-1 target is the box's best CIoU: concentric, same aspect, so the IoU 16²/24².
        let scores: Vec<f32> = t.target_scores.into_data().to_vec().expect("f32");
        assert!(
            (scores[5 * 2 + 1] - 256.0 / 576.0).abs() < 1e-4,
            "{scores:?}"
        );
        assert_eq!(scores.iter().step_by(2).sum::<f32>(), 0.0);
    }

    #[test]
    fn candidates_tiny_box_is_widened_to_reach_anchors() {
        // 2×2 px box between anchor centres; widened to 16 px about (15, 15) it holds the centres 12 and 20.
        let gt = ground_truth(
            &[[14.0, 14.0, 16.0, 16.0], [14.0, 14.0, 16.0, 16.0]],
            &[0, 0],
            &[true, false],
        );
        let inside: Vec<bool> = assigner(10)
            .candidates_in_gts(anchors(), &gt)
            .into_data()
            .to_vec()
            .expect("bool");
        let valid: Vec<usize> = (0..16).filter(|&i| inside[i]).collect();
        assert_eq!(valid, vec![5, 6, 9, 10]);
        assert!(inside[16..].iter().all(|&x| !x), "padding is not widened");
    }

    #[test]
    fn assigner_shared_anchor_goes_to_the_higher_overlap() {
        let (scores, boxes) = predictions();
        // Both boxes contain anchor (12, 12), whose predicted box is (4, 4, 20, 20): box 1 matches it exactly.
        let gt = ground_truth(
            &[[0.0, 0.0, 26.0, 26.0], [4.0, 4.0, 20.0, 20.0]],
            &[0, 1],
            &[true, true],
        );
        let t = assigner(10).assign(scores, boxes, anchors(), &gt);
        let idx: Vec<i64> = t
            .target_gt_idx
            .into_data()
            .convert::<i64>()
            .to_vec()
            .expect("i64");
        assert_eq!(idx[5], 1);
    }

    #[test]
    fn bbox2dist_clamps_below_the_last_bin() {
        let points = Tensor::<B, 3>::from_data(
            TensorData::new(vec![10.0f32, 10.0], [1, 1, 2]),
            &Default::default(),
        );
        let boxes = Tensor::<B, 3>::from_data(
            TensorData::new(vec![12.0f32, 0.0, 40.0, 11.0], [1, 1, 4]),
            &Default::default(),
        );
        let d: Vec<f32> = bbox2dist_ltrb(points, boxes, 15)
            .into_data()
            .to_vec()
            .expect("f32");
        let want = [0.0, 10.0, 14.99, 1.0];
        for (a, b) in d.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{d:?}");
        }
    }
}
