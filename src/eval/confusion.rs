//! Ultralytics' detection confusion matrix (`ConfusionMatrix.process_batch` in ultralytics/utils/metrics.py):
//! class-agnostic matching of confident detections to GT by IoU, one match per GT and per detection, highest IoU
//! first; unmatched GT land in the background row, unmatched detections in the background column.

use std::collections::HashMap;

use rayon::prelude::*;

use super::coco::{CocoGroundTruth, DetectionBox};

/// Thresholds of the confusion matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfusionConfig {
    /// Detections with confidence strictly above this count (Ultralytics: 0.25).
    pub conf: f64,
    /// A GT and a detection match when their IoU is strictly above this (Ultralytics: 0.45).
    pub iou: f64,
}

impl Default for ConfusionConfig {
    fn default() -> Self {
        Self {
            conf: 0.25,
            iou: 0.45,
        }
    }
}

/// Counts of (predicted, true) class pairs; index `nc` is background.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfusionMatrix {
    /// The category ids of rows and columns `0..nc` (sorted), background excluded.
    pub category_ids: Vec<i64>,
    /// `[nc + 1, nc + 1]` row-major: row = predicted class, column = true class.
    pub counts: Vec<u64>,
}

/// A box with a class index, in `[x1, y1, x2, y2]` pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassBox {
    /// Corners.
    pub xyxy: [f64; 4],
    /// Class index `0..nc`.
    pub class: usize,
    /// Confidence (1 for GT).
    pub conf: f64,
}

impl ConfusionMatrix {
    /// An all-zero matrix over these category ids.
    pub fn new(category_ids: Vec<i64>) -> Self {
        let n = category_ids.len() + 1;
        Self {
            category_ids,
            counts: vec![0; n * n],
        }
    }

    /// Number of classes, background excluded.
    pub fn nc(&self) -> usize {
        self.category_ids.len()
    }

    /// The count at (predicted row, true column).
    pub fn get(&self, predicted: usize, truth: usize) -> u64 {
        self.counts[predicted * (self.nc() + 1) + truth]
    }

    fn add(&mut self, predicted: usize, truth: usize) {
        let n = self.nc() + 1;
        self.counts[predicted * n + truth] += 1;
    }

    /// The matrix over a COCO evaluation's boxes: non-crowd GT (Ultralytics' COCO conversion drops crowd) and
    /// detections of the ground truth's categories, image by image in parallel.
    pub fn from_coco(
        gt: &CocoGroundTruth,
        detections: &[DetectionBox],
        config: &ConfusionConfig,
    ) -> Self {
        let category_ids: Vec<i64> = gt.categories.iter().map(|c| c.id).collect();
        let class_of: HashMap<i64, usize> = category_ids
            .iter()
            .enumerate()
            .map(|(k, &id)| (id, k))
            .collect();
        let image_of: HashMap<i64, usize> = gt
            .image_ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i))
            .collect();
        let to_xyxy = |b: &[f64; 4]| [b[0], b[1], b[0] + b[2], b[1] + b[3]];
        let mut per_image: Vec<(Vec<ClassBox>, Vec<ClassBox>)> =
            vec![(Vec::new(), Vec::new()); gt.image_ids.len()];
        for g in gt.annotations.iter().filter(|g| !g.iscrowd) {
            if let (Some(&i), Some(&class)) =
                (image_of.get(&g.image_id), class_of.get(&g.category_id))
            {
                per_image[i].0.push(ClassBox {
                    xyxy: to_xyxy(&g.bbox_xywh),
                    class,
                    conf: 1.0,
                });
            }
        }
        for d in detections {
            if let (Some(&i), Some(&class)) =
                (image_of.get(&d.image_id), class_of.get(&d.category_id))
            {
                per_image[i].1.push(ClassBox {
                    xyxy: to_xyxy(&d.bbox_xywh),
                    class,
                    conf: d.score,
                });
            }
        }
        let empty = Self::new(category_ids);
        per_image
            .par_iter()
            .fold(
                || empty.clone(),
                |mut matrix, (gts, dts)| {
                    matrix.process_image(dts, gts, config);
                    matrix
                },
            )
            .reduce(
                || empty.clone(),
                |mut a, b| {
                    a.counts
                        .iter_mut()
                        .zip(&b.counts)
                        .for_each(|(x, y)| *x += y);
                    a
                },
            )
    }

    /// `process_batch` for one image: `detections` of any confidence (filtered here), `gts` with conf ignored.
    pub fn process_image(
        &mut self,
        detections: &[ClassBox],
        gts: &[ClassBox],
        config: &ConfusionConfig,
    ) {
        let background = self.nc();
        let dets: Vec<&ClassBox> = detections.iter().filter(|d| d.conf > config.conf).collect();
        if gts.is_empty() {
            for d in &dets {
                self.add(d.class, background);
            }
            return;
        }
        // (gt, det, iou) over IoU > threshold, in row-major order as torch.where gives them.
        let mut matches: Vec<(usize, usize, f64)> = Vec::new();
        for (gi, g) in gts.iter().enumerate() {
            for (di, d) in dets.iter().enumerate() {
                let iou = box_iou_xyxy(&g.xyxy, &d.xyxy);
                if iou > config.iou {
                    matches.push((gi, di, iou));
                }
            }
        }
        // Highest IoU first; keep each detection's best, then each GT's best.
        let by_iou_desc = |a: &(usize, usize, f64), b: &(usize, usize, f64)| b.2.total_cmp(&a.2);
        matches.sort_by(by_iou_desc);
        let mut det_used = vec![false; dets.len()];
        matches.retain(|m| !std::mem::replace(&mut det_used[m.1], true));
        let mut gt_used = vec![false; gts.len()];
        matches.retain(|m| !std::mem::replace(&mut gt_used[m.0], true));
        let mut det_of_gt = vec![None; gts.len()];
        let mut det_matched = vec![false; dets.len()];
        for &(gi, di, _) in &matches {
            det_of_gt[gi] = Some(di);
            det_matched[di] = true;
        }
        for (gi, g) in gts.iter().enumerate() {
            match det_of_gt[gi] {
                Some(di) => self.add(dets[di].class, g.class),
                None => self.add(background, g.class),
            }
        }
        for (di, d) in dets.iter().enumerate() {
            if !det_matched[di] {
                self.add(d.class, background);
            }
        }
    }
}

/// Ultralytics' `box_iou`: intersection over union with 1e-7 added to the union.
fn box_iou_xyxy(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area_a = (a[2] - a[0]) * (a[3] - a[1]);
    let area_b = (b[2] - b[0]) * (b[3] - b[1]);
    inter / (area_a + area_b - inter + 1e-7)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(xyxy: [f64; 4], class: usize, conf: f64) -> ClassBox {
        ClassBox { xyxy, class, conf }
    }

    #[test]
    fn confusion_wrong_class_low_conf_and_missed_gt() {
        let mut m = ConfusionMatrix::new(vec![1, 2]);
        let gts = [
            b([0.0, 0.0, 10.0, 10.0], 0, 1.0),
            b([50.0, 50.0, 60.0, 60.0], 1, 1.0),
        ];
        let dets = [
            b([0.0, 0.0, 10.0, 10.0], 1, 0.9),
            b([50.0, 50.0, 60.0, 60.0], 1, 0.1),
            b([90.0, 90.0, 99.0, 99.0], 0, 0.8),
        ];
        m.process_image(&dets, &gts, &ConfusionConfig::default());
        assert_eq!(m.get(1, 0), 1, "class 0 predicted as 1");
        assert_eq!(
            m.get(2, 1),
            1,
            "class 1 missed (its detection is below conf)"
        );
        assert_eq!(m.get(0, 2), 1, "a class-0 detection on background");
        assert_eq!(m.counts.iter().sum::<u64>(), 3);
    }

    #[test]
    fn confusion_no_gt_all_detections_are_background() {
        let mut m = ConfusionMatrix::new(vec![7]);
        m.process_image(
            &[b([0.0, 0.0, 1.0, 1.0], 0, 0.5)],
            &[],
            &ConfusionConfig::default(),
        );
        assert_eq!(m.get(0, 1), 1);
    }
}
