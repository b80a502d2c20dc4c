//! pycocotools' `accumulate` for one category: detections of all images ranked by score, cumulative TP/FP, and
//! precision sampled at 101 recall points after making it monotone.

use std::cmp::Ordering;

use super::matching::{AreaMatches, Outcome};
use super::params::{MAX_DETS, NUM_AREA_RANGES, NUM_IOU_THRESHOLDS, NUM_RECALL_THRESHOLDS};

/// `np.spacing(1)`, added to precision's denominator by pycocotools.
const SPACING_ONE: f64 = f64::EPSILON;

/// Everything `evaluateImg` kept of one image for one category.
#[derive(Debug, Clone)]
pub struct ImageMatches {
    /// Detection scores, best first, at most `MAX_DETS[2]`.
    pub scores: Vec<f64>,
    /// One entry per area range (A index).
    pub per_area: [AreaMatches; NUM_AREA_RANGES],
}

/// One category's slice of pycocotools' `precision` and `recall`; -1 where it has no counted GT.
#[derive(Debug, Clone)]
pub struct CategoryCurves {
    /// `[T, R, A, M]` row-major.
    pub precision: Vec<f64>,
    /// `[T, A, M]` row-major.
    pub recall: Vec<f64>,
}

/// A detection's place in the category-wide ranking: which image (position in `images`) and its rank there.
#[derive(Debug, Clone, Copy)]
pub struct RankedDetection {
    /// Its score.
    pub score: f64,
    /// Index into the `images` slice.
    pub image: u32,
    /// Rank within its image (0 = best).
    pub rank: u32,
}

/// The category-wide ranking: `np.argsort(-scores, kind='mergesort')` over the images' detections concatenated in
/// image order, i.e. a stable sort by descending score. `images` must be in ascending image id order.
pub fn rank_detections(images: &[ImageMatches]) -> Vec<RankedDetection> {
    let mut ranked: Vec<RankedDetection> = images
        .iter()
        .enumerate()
        .flat_map(|(i, image)| {
            image
                .scores
                .iter()
                .enumerate()
                .map(move |(rank, &score)| RankedDetection {
                    score,
                    image: i as u32,
                    rank: rank as u32,
                })
        })
        .collect();
    ranked.sort_by(|a, b| b.score.partial_cmp(&a.score).unwrap_or(Ordering::Equal));
    ranked
}

/// Precision and recall for one category over the images that have its GT or detections (others contribute
/// nothing), given the ranking from [`rank_detections`]. Taking the first maxDet detections per image and
/// filtering the ranking by rank is the same as pycocotools' re-sort of the cut lists, since both sorts are
/// stable.
pub fn accumulate_category(
    images: &[ImageMatches],
    ranked: &[RankedDetection],
    recall_thresholds: &[f64; NUM_RECALL_THRESHOLDS],
) -> CategoryCurves {
    const T: usize = NUM_IOU_THRESHOLDS;
    const R: usize = NUM_RECALL_THRESHOLDS;
    const A: usize = NUM_AREA_RANGES;
    const M: usize = MAX_DETS.len();
    let mut precision = vec![-1.0; T * R * A * M];
    let mut recall = vec![-1.0; T * A * M];
    let mut rc: Vec<f64> = Vec::with_capacity(ranked.len());
    let mut pr: Vec<f64> = Vec::with_capacity(ranked.len());
    for a in 0..A {
        let npig: usize = images.iter().map(|im| im.per_area[a].gt_counted).sum();
        if npig == 0 {
            continue;
        }
        let npig = npig as f64;
        for (m, &max_det) in MAX_DETS.iter().enumerate() {
            for t in 0..T {
                rc.clear();
                pr.clear();
                let (mut tp, mut fp) = (0.0f64, 0.0f64);
                for det in ranked.iter().filter(|d| (d.rank as usize) < max_det) {
                    let image = &images[det.image as usize];
                    let num_dt = image.scores.len();
                    match image.per_area[a].outcomes[t * num_dt + det.rank as usize] {
                        Outcome::TruePositive => tp += 1.0,
                        Outcome::FalsePositive => fp += 1.0,
                        Outcome::Ignored => {}
                    }
                    rc.push(tp / npig);
                    pr.push(tp / (fp + tp + SPACING_ONE));
                }
                recall[(t * A + a) * M + m] = rc.last().copied().unwrap_or(0.0);
                for i in (1..pr.len()).rev() {
                    if pr[i] > pr[i - 1] {
                        pr[i - 1] = pr[i];
                    }
                }
                // np.searchsorted(rc, recThrs, side='left'); points past the end stay 0.
                let mut j = 0;
                for (r, &threshold) in recall_thresholds.iter().enumerate() {
                    while j < rc.len() && rc[j] < threshold {
                        j += 1;
                    }
                    let value = if j < pr.len() { pr[j] } else { 0.0 };
                    precision[((t * R + r) * A + a) * M + m] = value;
                }
            }
        }
    }
    CategoryCurves { precision, recall }
}
