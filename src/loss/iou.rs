//! Box overlap: IoU and its generalised, distance and complete variants, as Ultralytics' `bbox_iou` computes them.
//!
//! Source: ultralytics/utils/metrics.py `bbox_iou` (8.4.190). Its quirks are kept on purpose, because the
//! assigner's choices and the box loss depend on them: in the xyxy form only the *heights* get `eps` added
//! (`h = y2 - y1 + eps`, widths get none), and CIoU's trade-off weight `alpha` is computed without gradient.
//! CIoU: Zheng et al., "Distance-IoU Loss", <https://arxiv.org/abs/1911.08287>.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Ultralytics' `bbox_iou` default `eps`.
pub const IOU_EPS: f64 = 1e-7;

/// Which overlap [`bbox_iou_xyxy`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IouKind {
    /// Intersection over union.
    Iou,
    /// IoU minus the share of the enclosing box that the union leaves empty.
    Giou,
    /// IoU minus the squared centre distance over the enclosing box's squared diagonal.
    Diou,
    /// DIoU minus an aspect-ratio consistency term; what the box loss and the assigner use.
    Ciou,
}

/// Boxes as corner coordinates, one tensor per coordinate, so that two sets broadcast against each other
/// (`[B, M, 1]` against `[B, 1, A]` gives every pair).
#[derive(Debug, Clone)]
pub struct BoxesXyxy<B: Backend, const D: usize> {
    pub x1: Tensor<B, D>,
    pub y1: Tensor<B, D>,
    pub x2: Tensor<B, D>,
    pub y2: Tensor<B, D>,
}

impl<B: Backend, const D: usize> BoxesXyxy<B, D> {
    /// Splits a tensor whose last dimension holds x1, y1, x2, y2.
    ///
    /// # Shapes
    /// `[..., 4]` → four `[..., 1]`
    pub fn from_last_dim(boxes_xyxy: Tensor<B, D>) -> Self {
        let last = D - 1;
        Self {
            x1: boxes_xyxy.clone().narrow(last, 0, 1),
            y1: boxes_xyxy.clone().narrow(last, 1, 1),
            x2: boxes_xyxy.clone().narrow(last, 2, 1),
            y2: boxes_xyxy.narrow(last, 3, 1),
        }
    }
}

/// Ultralytics' `bbox_iou(box1, box2, xywh=False, …)`: the overlap of `box1` and `box2`, element by element after
/// broadcasting. The arguments are not symmetric in the last float bits (see the module doc), so pass them in
/// Ultralytics' order: the assigner passes (gt, pred), the box loss (pred, target).
///
/// # Shapes
/// any two broadcastable coordinate shapes → their broadcast shape
pub fn bbox_iou_xyxy<B: Backend, const D: usize>(
    box1: BoxesXyxy<B, D>,
    box2: BoxesXyxy<B, D>,
    kind: IouKind,
) -> Tensor<B, D> {
    let BoxesXyxy {
        x1: b1_x1,
        y1: b1_y1,
        x2: b1_x2,
        y2: b1_y2,
    } = box1;
    let BoxesXyxy {
        x1: b2_x1,
        y1: b2_y1,
        x2: b2_x2,
        y2: b2_y2,
    } = box2;
    let w1 = b1_x2.clone() - b1_x1.clone();
    let h1 = (b1_y2.clone() - b1_y1.clone()).add_scalar(IOU_EPS);
    let w2 = b2_x2.clone() - b2_x1.clone();
    let h2 = (b2_y2.clone() - b2_y1.clone()).add_scalar(IOU_EPS);

    let inter_w = (b1_x2.clone().min_pair(b2_x2.clone()) - b1_x1.clone().max_pair(b2_x1.clone()))
        .clamp_min(0.0);
    let inter_h = (b1_y2.clone().min_pair(b2_y2.clone()) - b1_y1.clone().max_pair(b2_y1.clone()))
        .clamp_min(0.0);
    let inter = inter_w * inter_h;
    let union =
        (w1.clone() * h1.clone() + w2.clone() * h2.clone() - inter.clone()).add_scalar(IOU_EPS);
    let iou = inter / union.clone();
    if kind == IouKind::Iou {
        return iou;
    }

    // The smallest enclosing box.
    let cw = b1_x2.clone().max_pair(b2_x2.clone()) - b1_x1.clone().min_pair(b2_x1.clone());
    let ch = b1_y2.clone().max_pair(b2_y2.clone()) - b1_y1.clone().min_pair(b2_y1.clone());
    if kind == IouKind::Giou {
        let c_area = (cw * ch).add_scalar(IOU_EPS);
        return iou - (c_area.clone() - union) / c_area;
    }

    let c2 = (cw.square() + ch.square()).add_scalar(IOU_EPS);
    let rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2).square()
        + (b2_y1 + b2_y2 - b1_y1 - b1_y2).square())
    .div_scalar(4.0);
    let diou = iou.clone() - rho2 / c2;
    if kind == IouKind::Diou {
        return diou;
    }

    let v = ((w2 / h2).atan() - (w1 / h1).atan())
        .square()
        .mul_scalar(4.0 / std::f64::consts::PI.powi(2));
    // Ultralytics computes alpha under `torch.no_grad()`.
    let alpha = (v.clone() / (iou.neg().add_scalar(1.0) + v.clone()).add_scalar(IOU_EPS)).detach();
    diou - v * alpha
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    type B = crate::backend::Cpu;

    fn boxes(rows: &[[f32; 4]]) -> BoxesXyxy<B, 2> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let t =
            Tensor::<B, 2>::from_data(TensorData::new(flat, [rows.len(), 4]), &Default::default());
        BoxesXyxy::from_last_dim(t)
    }

    fn values(t: Tensor<B, 2>) -> Vec<f32> {
        t.into_data().to_vec().expect("f32")
    }

    #[test]
    fn ciou_identical_boxes_is_one() {
        let b = [[10.0, 20.0, 50.0, 80.0], [0.0, 0.0, 3.0, 1.0]];
        for kind in [IouKind::Iou, IouKind::Giou, IouKind::Diou, IouKind::Ciou] {
            for v in values(bbox_iou_xyxy(boxes(&b), boxes(&b), kind)) {
                assert!((v - 1.0).abs() < 1e-5, "{kind:?}: {v}");
            }
        }
    }

    #[test]
    fn iou_half_overlap_is_one_third() {
        let v = values(bbox_iou_xyxy(
            boxes(&[[0.0, 0.0, 2.0, 2.0]]),
            boxes(&[[1.0, 0.0, 3.0, 2.0]]),
            IouKind::Iou,
        ));
        assert!((v[0] - 1.0 / 3.0).abs() < 1e-5, "{v:?}");
    }

    #[test]
    fn ciou_disjoint_boxes_is_negative() {
        // Same shape (v = 0), so CIoU = DIoU = 0 - centre distance² / diagonal² = -(4²)/(6² + 2²).
        let v = values(bbox_iou_xyxy(
            boxes(&[[0.0, 0.0, 2.0, 2.0]]),
            boxes(&[[4.0, 0.0, 6.0, 2.0]]),
            IouKind::Ciou,
        ));
        assert!((v[0] + 16.0 / 40.0).abs() < 1e-5, "{v:?}");
    }

    #[test]
    fn giou_disjoint_boxes_counts_the_gap() {
        // Union 8, enclosing box 12: 0 - (12 - 8) / 12.
        let v = values(bbox_iou_xyxy(
            boxes(&[[0.0, 0.0, 2.0, 2.0]]),
            boxes(&[[4.0, 0.0, 6.0, 2.0]]),
            IouKind::Giou,
        ));
        assert!((v[0] + 1.0 / 3.0).abs() < 1e-5, "{v:?}");
    }
}
