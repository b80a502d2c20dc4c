//! pycocotools' `computeIoU` and `evaluateImg` for one image and one category: the crowd-aware box IoU, then the
//! greedy matching of score-sorted detections to GT at each IoU threshold, for one area range.

use super::json::{DetectionBox, GtBox};
use super::params::{AreaRange, NUM_IOU_THRESHOLDS};

/// What one detection counts as at one IoU threshold, after matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    /// Matched a crowd or out-of-range GT, or unmatched and itself out of the area range: neither hit nor miss.
    Ignored,
    /// Matched a GT that counts.
    TruePositive,
    /// Matched nothing (or, as in pycocotools, a GT whose id is 0) and is in range.
    FalsePositive,
}

/// Box IoU as maskUtils' `bbIou` computes it, in f64 and in its order of operations. For a crowd GT the union is
/// the detection's own area, so a detection inside a crowd region scores 1.
///
/// # Shapes
/// Both boxes `[x, y, w, h]` in pixels.
pub fn bbox_iou_xywh(dt: &[f64; 4], gt: &[f64; 4], gt_is_crowd: bool) -> f64 {
    let w = (dt[2] + dt[0]).min(gt[2] + gt[0]) - dt[0].max(gt[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (dt[3] + dt[1]).min(gt[3] + gt[1]) - dt[1].max(gt[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let inter = w * h;
    let dt_area = dt[2] * dt[3];
    let union = if gt_is_crowd {
        dt_area
    } else {
        dt_area + gt[2] * gt[3] - inter
    };
    inter / union
}

/// `computeIoU`: IoU of every detection (already score-sorted and cut) with every GT in file order.
///
/// # Shapes
/// Returns `[D, G]` row-major (`d * G + g`); empty when either side is.
pub fn iou_matrix(dts: &[&DetectionBox], gts: &[&GtBox]) -> Vec<f64> {
    let mut ious = Vec::with_capacity(dts.len() * gts.len());
    for dt in dts {
        for gt in gts {
            ious.push(bbox_iou_xywh(&dt.bbox_xywh, &gt.bbox_xywh, gt.iscrowd));
        }
    }
    ious
}

/// `evaluateImg`'s result for one area range.
#[derive(Debug, Clone)]
pub struct AreaMatches {
    /// `[T, D]` row-major: the outcome of detection `d` at IoU threshold `t`.
    pub outcomes: Vec<Outcome>,
    /// GT boxes that count (not crowd, area in range): this image's share of `npig`.
    pub gt_counted: usize,
}

/// `evaluateImg` for one area range. `dts` are score-sorted (stable) and cut to the largest maxDet, `ious` is
/// [`iou_matrix`] of them against `gts` in file order.
///
/// GT are visited non-ignored first (a stable sort on the ignore flag); each detection, best score first, takes
/// the highest-IoU GT at or above the threshold that is free (or crowd), and stops looking at ignored GT once it
/// holds a real one.
pub fn match_image(
    dts: &[&DetectionBox],
    gts: &[&GtBox],
    ious: &[f64],
    area: &AreaRange,
    iou_thresholds: &[f64; NUM_IOU_THRESHOLDS],
) -> AreaMatches {
    let num_gt = gts.len();
    let num_dt = dts.len();
    let gt_ignored: Vec<bool> = gts
        .iter()
        .map(|g| g.iscrowd || area.excludes(g.area))
        .collect();
    // GT order: counted first, each group in file order.
    let gt_order: Vec<usize> = (0..num_gt)
        .filter(|&g| !gt_ignored[g])
        .chain((0..num_gt).filter(|&g| gt_ignored[g]))
        .collect();
    let gt_counted = gt_ignored.iter().filter(|&&ig| !ig).count();
    let dt_out_of_range: Vec<bool> = dts.iter().map(|d| area.excludes(d.area())).collect();

    let mut outcomes = Vec::with_capacity(NUM_IOU_THRESHOLDS * num_dt);
    let mut gt_taken = vec![false; num_gt];
    for &threshold in iou_thresholds {
        gt_taken.iter_mut().for_each(|taken| *taken = false);
        for d in 0..num_dt {
            let mut best_iou = threshold.min(1.0 - 1e-10);
            let mut best: Option<usize> = None;
            if num_gt > 0 {
                for (rank, &g) in gt_order.iter().enumerate() {
                    if gt_taken[rank] && !gts[g].iscrowd {
                        continue;
                    }
                    if let Some(b) = best {
                        if !gt_ignored[gt_order[b]] && gt_ignored[g] {
                            break;
                        }
                    }
                    let iou = ious[d * num_gt + g];
                    if iou < best_iou {
                        continue;
                    }
                    best_iou = iou;
                    best = Some(rank);
                }
            }
            // pycocotools stores the matched GT's id and later tests it for truth, so id 0 reads as unmatched.
            let (matched_id, ignored_by_match) = match best {
                Some(rank) => {
                    gt_taken[rank] = true;
                    let g = gt_order[rank];
                    (gts[g].id, gt_ignored[g])
                }
                None => (0, false),
            };
            let ignored = ignored_by_match || (matched_id == 0 && dt_out_of_range[d]);
            outcomes.push(if ignored {
                Outcome::Ignored
            } else if matched_id != 0 {
                Outcome::TruePositive
            } else {
                Outcome::FalsePositive
            });
        }
    }
    AreaMatches {
        outcomes,
        gt_counted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::coco::params::{iou_thresholds, AREA_RANGES};

    fn gt(id: i64, bbox: [f64; 4], iscrowd: bool) -> GtBox {
        GtBox {
            id,
            image_id: 1,
            category_id: 1,
            bbox_xywh: bbox,
            area: bbox[2] * bbox[3],
            iscrowd,
        }
    }

    fn dt(bbox: [f64; 4], score: f64) -> DetectionBox {
        DetectionBox {
            image_id: 1,
            category_id: 1,
            bbox_xywh: bbox,
            score,
        }
    }

    #[test]
    fn bbox_iou_crowd_divides_by_detection_area() {
        let d = [0.0, 0.0, 10.0, 10.0];
        let g = [0.0, 0.0, 100.0, 100.0];
        assert_eq!(bbox_iou_xywh(&d, &g, true), 1.0);
        assert_eq!(bbox_iou_xywh(&d, &g, false), 0.01);
    }

    #[test]
    fn bbox_iou_touching_boxes_is_zero() {
        assert_eq!(
            bbox_iou_xywh(&[0.0, 0.0, 1.0, 1.0], &[1.0, 0.0, 1.0, 1.0], false),
            0.0
        );
    }

    #[test]
    fn match_crowd_absorbs_many_detections() {
        let gts = [gt(1, [0.0, 0.0, 100.0, 100.0], true)];
        let dts = [
            dt([0.0, 0.0, 10.0, 10.0], 0.9),
            dt([20.0, 20.0, 10.0, 10.0], 0.8),
        ];
        let g: Vec<&GtBox> = gts.iter().collect();
        let d: Vec<&DetectionBox> = dts.iter().collect();
        let ious = iou_matrix(&d, &g);
        let m = match_image(&d, &g, &ious, &AREA_RANGES[0], &iou_thresholds());
        assert!(m.outcomes.iter().all(|&o| o == Outcome::Ignored));
        assert_eq!(m.gt_counted, 0);
    }

    #[test]
    fn match_second_detection_on_taken_gt_is_false_positive() {
        let gts = [gt(1, [0.0, 0.0, 10.0, 10.0], false)];
        let dts = [
            dt([0.0, 0.0, 10.0, 10.0], 0.9),
            dt([0.0, 0.0, 10.0, 10.0], 0.8),
        ];
        let g: Vec<&GtBox> = gts.iter().collect();
        let d: Vec<&DetectionBox> = dts.iter().collect();
        let ious = iou_matrix(&d, &g);
        let m = match_image(&d, &g, &ious, &AREA_RANGES[0], &iou_thresholds());
        assert_eq!(m.outcomes[0], Outcome::TruePositive);
        assert_eq!(m.outcomes[1], Outcome::FalsePositive);
    }
}
