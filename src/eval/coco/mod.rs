//! COCO bbox evaluation with pycocotools' semantics (`COCOeval(gt, dt, 'bbox')`, default params): same
//! matching, same ranking of tied scores, same 101-point precision, same -1 for undefined cells, and the same
//! 12 stats to the last bit in the common case. Images and categories are evaluated in parallel with rayon.
//!
//! Split as pycocotools is: [`json`] (COCO and loadRes), [`matching`] (computeIoU, evaluateImg),
//! [`accumulate`] (accumulate), [`summary`] (summarize); [`evaluate`] ties them together and adds Ultralytics'
//! best-F1 point and confusion matrix.

pub mod accumulate;
pub mod error;
pub mod json;
pub mod matching;
pub mod params;
pub mod summary;

use std::collections::HashMap;

use rayon::prelude::*;

pub use error::CocoError;
pub use json::{read_detections, Category, CocoGroundTruth, DetectionBox, GtBox};
pub use summary::{CocoReport, SummaryStats, STAT_KEYS};

use super::confusion::{ConfusionConfig, ConfusionMatrix};
use super::f1::{best_f1, BestF1, ClassHits};
use accumulate::{accumulate_category, rank_detections, CategoryCurves, ImageMatches};
use matching::{iou_matrix, match_image, AreaMatches, Outcome};
use params::{
    iou_thresholds, recall_thresholds, AREA_RANGES, MAX_DETS, NUM_AREA_RANGES, NUM_IOU_THRESHOLDS,
    NUM_RECALL_THRESHOLDS,
};

/// Everything one evaluation produces.
#[derive(Debug, Clone)]
pub struct CocoEvaluation {
    /// pycocotools' `stats`.
    pub stats: SummaryStats,
    /// The ground truth's categories, sorted by id: the K axis of the arrays below.
    pub categories: Vec<Category>,
    /// AP@[.50:.95], area all, maxDets 100, per category (K); -1 for a category without counted GT.
    pub per_category_ap: Vec<f64>,
    /// pycocotools' `eval['precision']`, `[T, R, K, A, M]` row-major; -1 where undefined.
    pub precision: Vec<f64>,
    /// pycocotools' `eval['recall']`, `[T, K, A, M]` row-major; -1 where undefined.
    pub recall: Vec<f64>,
    /// Ultralytics' P, R and F1 at the confidence that maximises mean F1, at IoU 0.5.
    pub best_f1: BestF1,
    /// Ultralytics' confusion matrix (IoU 0.45, conf 0.25) over the same boxes.
    pub confusion: ConfusionMatrix,
}

impl CocoEvaluation {
    /// Number of categories (K).
    pub fn num_categories(&self) -> usize {
        self.categories.len()
    }

    /// `precision[t, r, k, a, m]`.
    pub fn precision_at(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> f64 {
        let kk = self.num_categories();
        self.precision[(((t * NUM_RECALL_THRESHOLDS + r) * kk + k) * NUM_AREA_RANGES + a)
            * MAX_DETS.len()
            + m]
    }

    /// The stats and per-category AP, as `val --json` prints them.
    pub fn report(&self) -> CocoReport {
        CocoReport {
            stats: self.stats,
            per_category_ap: self
                .categories
                .iter()
                .map(|c| c.id)
                .zip(self.per_category_ap.iter().copied())
                .collect(),
        }
    }

    /// `recall[t, k, a, m]`.
    pub fn recall_at(&self, t: usize, k: usize, a: usize, m: usize) -> f64 {
        let kk = self.num_categories();
        self.recall[((t * kk + k) * NUM_AREA_RANGES + a) * MAX_DETS.len() + m]
    }
}

/// One category's share of the work, computed on its own thread.
struct CategoryResult {
    curves: CategoryCurves,
    hits: ClassHits,
}

/// Evaluate `detections` against `gt` as `COCOeval(gt, gt.loadRes(dt), 'bbox')` with default params, then
/// `evaluate(); accumulate(); summarize()`. Annotations and detections of categories (or images) the ground truth
/// does not list are left out, as pycocotools' `getAnnIds` leaves them out.
pub fn evaluate(gt: &CocoGroundTruth, detections: &[DetectionBox]) -> CocoEvaluation {
    let image_index: HashMap<i64, u32> = gt
        .image_ids
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i as u32))
        .collect();
    let category_index: HashMap<i64, u32> = gt
        .categories
        .iter()
        .enumerate()
        .map(|(k, c)| (c.id, k as u32))
        .collect();
    let key = |image_id: i64, category_id: i64| {
        Some((
            *category_index.get(&category_id)?,
            *image_index.get(&image_id)?,
        ))
    };
    // (category, image, position in file): grouped per category, then per image, file order kept within.
    let mut gt_keys: Vec<(u32, u32, u32)> = gt
        .annotations
        .iter()
        .enumerate()
        .filter_map(|(i, g)| key(g.image_id, g.category_id).map(|(k, im)| (k, im, i as u32)))
        .collect();
    gt_keys.sort_unstable();
    let mut dt_keys: Vec<(u32, u32, u32)> = detections
        .iter()
        .enumerate()
        .filter_map(|(i, d)| key(d.image_id, d.category_id).map(|(k, im)| (k, im, i as u32)))
        .collect();
    dt_keys.sort_unstable();

    let num_categories = gt.categories.len();
    let split = |keys: &[(u32, u32, u32)]| -> Vec<std::ops::Range<usize>> {
        (0..num_categories as u32)
            .map(|k| {
                let start = keys.partition_point(|e| e.0 < k);
                let end = keys.partition_point(|e| e.0 <= k);
                start..end
            })
            .collect()
    };
    let gt_ranges = split(&gt_keys);
    let dt_ranges = split(&dt_keys);

    let results: Vec<CategoryResult> = (0..num_categories)
        .into_par_iter()
        .map(|k| {
            evaluate_category(
                &gt.annotations,
                detections,
                &gt_keys[gt_ranges[k].clone()],
                &dt_keys[dt_ranges[k].clone()],
                gt.categories[k].id,
            )
        })
        .collect();

    let (precision, recall) = assemble(&results);
    let per_category_ap = (0..num_categories)
        .map(|k| {
            let mut values = Vec::with_capacity(NUM_IOU_THRESHOLDS * NUM_RECALL_THRESHOLDS);
            for t in 0..NUM_IOU_THRESHOLDS {
                for r in 0..NUM_RECALL_THRESHOLDS {
                    values.push(
                        results[k].curves.precision[((t * NUM_RECALL_THRESHOLDS + r)
                            * NUM_AREA_RANGES)
                            * MAX_DETS.len()
                            + 2],
                    );
                }
            }
            summary::mean_of_defined(&values)
        })
        .collect();
    let stats = SummaryStats::from_arrays(&precision, &recall, num_categories);
    let hits: Vec<ClassHits> = results.into_iter().map(|r| r.hits).collect();
    CocoEvaluation {
        stats,
        categories: gt.categories.clone(),
        per_category_ap,
        precision,
        recall,
        best_f1: best_f1(&hits),
        confusion: ConfusionMatrix::from_coco(gt, detections, &ConfusionConfig::default()),
    }
}

/// Lay the per-category curves into pycocotools' `[T, R, K, A, M]` and `[T, K, A, M]` arrays.
fn assemble(results: &[CategoryResult]) -> (Vec<f64>, Vec<f64>) {
    const T: usize = NUM_IOU_THRESHOLDS;
    const R: usize = NUM_RECALL_THRESHOLDS;
    const AM: usize = NUM_AREA_RANGES * MAX_DETS.len();
    let kk = results.len();
    let mut precision = vec![-1.0; T * R * kk * AM];
    let mut recall = vec![-1.0; T * kk * AM];
    for (k, result) in results.iter().enumerate() {
        for t in 0..T {
            for r in 0..R {
                let src = (t * R + r) * AM;
                let dst = ((t * R + r) * kk + k) * AM;
                precision[dst..dst + AM].copy_from_slice(&result.curves.precision[src..src + AM]);
            }
            let dst = (t * kk + k) * AM;
            recall[dst..dst + AM].copy_from_slice(&result.curves.recall[t * AM..(t + 1) * AM]);
        }
    }
    (precision, recall)
}

/// Match every image of one category (computeIoU + evaluateImg for each area range) and accumulate.
fn evaluate_category(
    annotations: &[GtBox],
    detections: &[DetectionBox],
    gt_keys: &[(u32, u32, u32)],
    dt_keys: &[(u32, u32, u32)],
    category_id: i64,
) -> CategoryResult {
    let thresholds = iou_thresholds();
    let max_det = MAX_DETS[MAX_DETS.len() - 1];
    let mut images = Vec::new();
    let (mut gi, mut di) = (0, 0);
    while gi < gt_keys.len() || di < dt_keys.len() {
        let image = match (gt_keys.get(gi), dt_keys.get(di)) {
            (Some(g), Some(d)) => g.1.min(d.1),
            (Some(g), None) => g.1,
            (None, Some(d)) => d.1,
            (None, None) => break,
        };
        let mut gts: Vec<&GtBox> = Vec::new();
        while gi < gt_keys.len() && gt_keys[gi].1 == image {
            gts.push(&annotations[gt_keys[gi].2 as usize]);
            gi += 1;
        }
        let mut dts: Vec<&DetectionBox> = Vec::new();
        while di < dt_keys.len() && dt_keys[di].1 == image {
            dts.push(&detections[dt_keys[di].2 as usize]);
            di += 1;
        }
        // np.argsort(-score, kind='mergesort'), then the first maxDets[-1].
        dts.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        dts.truncate(max_det);
        let ious = iou_matrix(&dts, &gts);
        let per_area: [AreaMatches; NUM_AREA_RANGES] =
            std::array::from_fn(|a| match_image(&dts, &gts, &ious, &AREA_RANGES[a], &thresholds));
        images.push(ImageMatches {
            scores: dts.iter().map(|d| d.score).collect(),
            per_area,
        });
    }
    let ranked = rank_detections(&images);
    let curves = accumulate_category(&images, &ranked, &recall_thresholds());
    // Ultralytics-style hits: IoU 0.5, area all, up to 100 per image, crowd-matched detections left out.
    let mut hits = ClassHits {
        category_id,
        num_labels: images.iter().map(|im| im.per_area[0].gt_counted).sum(),
        confidences: Vec::new(),
        true_positives: Vec::new(),
    };
    for det in &ranked {
        let image = &images[det.image as usize];
        match image.per_area[0].outcomes[det.rank as usize] {
            Outcome::Ignored => {}
            outcome => {
                hits.confidences.push(det.score);
                hits.true_positives.push(outcome == Outcome::TruePositive);
            }
        }
    }
    CategoryResult { curves, hits }
}
