//! Non-maximum suppression on plain slices, the one implementation val, predict and export checks share.
//! It follows Ultralytics' `non_max_suppression` (ultralytics/utils/nms.py): confidence filter, optional
//! multi-label expansion, the `max_nms` best candidates, greedy IoU suppression per class (or across classes),
//! and the first `max_det` survivors. Instead of offsetting boxes by `class * max_wh`, class-aware suppression
//! compares classes directly, which is the same partition without the f32 rounding of large offsets.

use rayon::prelude::*;

use crate::config::EvalSection;

/// Whether boxes of different classes suppress each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassMode {
    /// Only boxes of the same class suppress each other (Ultralytics' default).
    Aware,
    /// Any two boxes suppress each other (`agnostic_nms`).
    Agnostic,
}

/// How many labels one anchor can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelMode {
    /// Only the best class per anchor (predict).
    Best,
    /// Every class above `conf` (`multi_label=True`, what Ultralytics' validator uses).
    Multi,
}

/// NMS thresholds; [`NmsConfig::val`] and [`NmsConfig::predict`] give Ultralytics' defaults
/// (ultralytics/cfg/default.yaml: conf 0.001 for val, 0.25 for predict; iou 0.7; max_det 300).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NmsConfig {
    /// Keep candidates with a class score strictly above this.
    pub conf: f32,
    /// Suppress a box whose IoU with a kept box is strictly above this.
    pub iou: f32,
    /// Keep at most this many detections per image.
    pub max_det: usize,
    /// Consider at most this many candidates (highest confidence first) per image; Ultralytics' `max_nms`.
    pub max_nms: usize,
    /// Class-aware or agnostic suppression.
    pub classes: ClassMode,
    /// One or several labels per anchor.
    pub labels: LabelMode,
}

impl NmsConfig {
    /// The validator's settings: conf 0.001, iou 0.7, max_det 300, multi-label, class-aware.
    pub fn val() -> Self {
        Self {
            conf: 0.001,
            iou: 0.7,
            max_det: 300,
            max_nms: 30_000,
            classes: ClassMode::Aware,
            labels: LabelMode::Multi,
        }
    }

    /// The predictor's settings: conf 0.25, iou 0.7, max_det 300, best label, class-aware.
    pub fn predict() -> Self {
        Self {
            conf: 0.25,
            labels: LabelMode::Best,
            ..Self::val()
        }
    }

    /// `[eval]` applied to the validator's settings: what `val` and the trainer's per-epoch validation both
    /// use, so the two cannot disagree (`conf`, `iou`, `max_det`, `agnostic_nms`).
    pub fn val_with(eval: &EvalSection) -> Self {
        Self::val().with_eval(eval, eval.val_conf())
    }

    /// `[eval]` applied to the predictor's settings.
    pub fn predict_with(eval: &EvalSection) -> Self {
        Self::predict().with_eval(eval, eval.predict_conf())
    }

    fn with_eval(self, eval: &EvalSection, conf: f64) -> Self {
        Self {
            conf: conf as f32,
            iou: eval.iou as f32,
            max_det: eval.max_det,
            classes: if eval.agnostic_nms {
                ClassMode::Agnostic
            } else {
                ClassMode::Aware
            },
            ..self
        }
    }
}

impl Default for NmsConfig {
    fn default() -> Self {
        Self::val()
    }
}

/// One kept detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// Box corners in pixels.
    pub xyxy: [f32; 4],
    /// Class score.
    pub conf: f32,
    /// Class index `0..nc`.
    pub class: usize,
}

/// Box IoU as torchvision's `nms` computes it, in f32.
fn iou_xyxy(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area_a = (a[2] - a[0]) * (a[3] - a[1]);
    let area_b = (b[2] - b[0]) * (b[3] - b[1]);
    inter / (area_a + area_b - inter)
}

/// Greedy NMS over candidates: sorts by confidence (stable, highest first), considers the first `max_nms`, and
/// returns the indices of the first `max_det` survivors in confidence order. Stopping at `max_det` gives the
/// same boxes as suppressing everything and cutting, since a box's fate depends only on better boxes.
///
/// # Shapes
/// `boxes_xyxy`, `scores`, `classes`: one entry per candidate (N).
pub fn nms_indices(
    boxes_xyxy: &[[f32; 4]],
    scores: &[f32],
    classes: &[usize],
    config: &NmsConfig,
) -> Vec<usize> {
    let n = boxes_xyxy.len().min(scores.len()).min(classes.len());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order.truncate(config.max_nms);
    let mut kept: Vec<usize> = Vec::with_capacity(config.max_det.min(n));
    for &i in &order {
        if kept.len() >= config.max_det {
            break;
        }
        let suppressed = kept.iter().any(|&k| {
            (config.classes == ClassMode::Agnostic || classes[k] == classes[i])
                && iou_xyxy(&boxes_xyxy[k], &boxes_xyxy[i]) > config.iou
        });
        if !suppressed {
            kept.push(i);
        }
    }
    kept
}

/// Ultralytics' `non_max_suppression` for one image of a decoded head output.
///
/// # Shapes
/// `pred`: `[4 + nc, A]` row-major (channel first, as the Detect head's decoded output per image): rows 0..4 are
/// `cx, cy, w, h` in pixels, rows 4.. the class scores (after sigmoid).
pub fn non_max_suppression(pred: &[f32], nc: usize, config: &NmsConfig) -> Vec<Detection> {
    let channels = 4 + nc;
    if nc == 0 || pred.len() < channels {
        return Vec::new();
    }
    let anchors = pred.len() / channels;
    let at = |c: usize, a: usize| pred[c * anchors + a];
    let mut boxes = Vec::new();
    let mut scores = Vec::new();
    let mut classes = Vec::new();
    let multi = config.labels == LabelMode::Multi && nc > 1;
    for a in 0..anchors {
        let (cx, cy, w, h) = (at(0, a), at(1, a), at(2, a), at(3, a));
        let xyxy = [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0];
        if multi {
            for c in 0..nc {
                let s = at(4 + c, a);
                if s > config.conf {
                    boxes.push(xyxy);
                    scores.push(s);
                    classes.push(c);
                }
            }
        } else {
            let (best_class, best_score) =
                (0..nc)
                    .map(|c| (c, at(4 + c, a)))
                    .fold(
                        (0, f32::NEG_INFINITY),
                        |acc, x| if x.1 > acc.1 { x } else { acc },
                    );
            if best_score > config.conf {
                boxes.push(xyxy);
                scores.push(best_score);
                classes.push(best_class);
            }
        }
    }
    nms_indices(&boxes, &scores, &classes, config)
        .into_iter()
        .map(|i| Detection {
            xyxy: boxes[i],
            conf: scores[i],
            class: classes[i],
        })
        .collect()
}

/// [`non_max_suppression`] over a batch, one image per thread.
///
/// # Shapes
/// `pred`: `[B, 4 + nc, A]` row-major; returns B lists.
pub fn batched_non_max_suppression(
    pred: &[f32],
    batch: usize,
    nc: usize,
    config: &NmsConfig,
) -> Vec<Vec<Detection>> {
    if batch == 0 {
        return Vec::new();
    }
    let per_image = pred.len() / batch;
    pred.par_chunks(per_image.max(1))
        .take(batch)
        .map(|image| non_max_suppression(image, nc, config))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[4 + nc, A]` from per-anchor rows `(cx, cy, w, h, scores...)`.
    fn head(rows: &[Vec<f32>]) -> Vec<f32> {
        let channels = rows[0].len();
        (0..channels)
            .flat_map(|c| rows.iter().map(move |r| r[c]))
            .collect()
    }

    #[test]
    fn nms_overlapping_same_class_keeps_best() {
        let boxes = [[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0]];
        let kept = nms_indices(&boxes, &[0.5, 0.9], &[0, 0], &NmsConfig::val());
        assert_eq!(kept, vec![1]);
    }

    #[test]
    fn eval_section_reaches_val_and_predict_settings() {
        let eval = EvalSection {
            agnostic_nms: true,
            iou: 0.5,
            max_det: 7,
            ..EvalSection::default()
        };
        let val = NmsConfig::val_with(&eval);
        assert_eq!(
            (val.classes, val.iou, val.max_det, val.labels),
            (ClassMode::Agnostic, 0.5, 7, LabelMode::Multi)
        );
        assert_eq!(val.conf, EvalSection::VAL_CONF as f32);
        let predict = NmsConfig::predict_with(&eval);
        assert_eq!(
            (predict.classes, predict.labels),
            (ClassMode::Agnostic, LabelMode::Best)
        );
        assert_eq!(predict.conf, EvalSection::PREDICT_CONF as f32);
    }

    #[test]
    fn nms_overlapping_other_class_kept_unless_agnostic() {
        let boxes = [[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0]];
        let aware = nms_indices(&boxes, &[0.5, 0.9], &[0, 1], &NmsConfig::val());
        assert_eq!(aware, vec![1, 0]);
        let agnostic = NmsConfig {
            classes: ClassMode::Agnostic,
            ..NmsConfig::val()
        };
        assert_eq!(
            nms_indices(&boxes, &[0.5, 0.9], &[0, 1], &agnostic),
            vec![1]
        );
    }

    #[test]
    fn nms_iou_at_threshold_is_kept() {
        // IoU exactly 0.5: suppression needs strictly more.
        let boxes = [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0]];
        let config = NmsConfig {
            iou: 0.5,
            ..NmsConfig::val()
        };
        assert_eq!(nms_indices(&boxes, &[0.9, 0.8], &[0, 0], &config).len(), 2);
    }

    #[test]
    fn nms_max_det_caps_in_score_order() {
        let boxes: Vec<[f32; 4]> = (0..10)
            .map(|i| [i as f32 * 20.0, 0.0, i as f32 * 20.0 + 10.0, 10.0])
            .collect();
        let scores: Vec<f32> = (0..10).map(|i| i as f32 / 10.0).collect();
        let config = NmsConfig {
            max_det: 3,
            ..NmsConfig::val()
        };
        assert_eq!(
            nms_indices(&boxes, &scores, &[0; 10], &config),
            vec![9, 8, 7]
        );
    }

    #[test]
    fn non_max_suppression_multi_label_emits_each_class_above_conf() {
        let pred = head(&[vec![5.0, 5.0, 10.0, 10.0, 0.6, 0.3, 0.0005]]);
        let dets = non_max_suppression(&pred, 3, &NmsConfig::val());
        assert_eq!(dets.len(), 2);
        assert_eq!(dets[0].xyxy, [0.0, 0.0, 10.0, 10.0]);
        assert_eq!((dets[0].class, dets[1].class), (0, 1));
    }

    #[test]
    fn non_max_suppression_predict_takes_best_label_above_conf() {
        let pred = head(&[
            vec![5.0, 5.0, 10.0, 10.0, 0.6, 0.3],
            vec![50.0, 50.0, 10.0, 10.0, 0.2, 0.1],
        ]);
        let dets = non_max_suppression(&pred, 2, &NmsConfig::predict());
        assert_eq!(dets.len(), 1);
        assert_eq!((dets[0].class, dets[0].conf), (0, 0.6));
    }

    #[test]
    fn batched_nms_splits_images() {
        let one = head(&[vec![5.0, 5.0, 10.0, 10.0, 0.9]]);
        let pred: Vec<f32> = one.iter().chain(one.iter()).copied().collect();
        let out = batched_non_max_suppression(&pred, 2, 1, &NmsConfig::val());
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|d| d.len() == 1));
    }
}
