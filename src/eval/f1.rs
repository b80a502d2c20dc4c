//! Ultralytics' headline P, R and F1 (`ap_per_class` in ultralytics/utils/metrics.py): per-class precision and
//! recall curves over a 1000-point confidence grid, mean F1 across classes smoothed with a 10% box filter, and
//! every value read at the confidence where that smoothed F1 peaks.

/// One class's ranked detections and its number of labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassHits {
    /// The class's category id.
    pub category_id: i64,
    /// GT boxes that count (non-crowd).
    pub num_labels: usize,
    /// Detection confidences, highest first.
    pub confidences: Vec<f64>,
    /// Whether each detection is a true positive (same length and order as `confidences`).
    pub true_positives: Vec<bool>,
}

/// P, R, F1 of one class at the chosen confidence.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ClassPrf {
    /// The class's category id.
    pub category_id: i64,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
}

/// The best-F1 operating point: Ultralytics' "P" and "R" columns are `precision` and `recall` here.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BestF1 {
    /// The confidence threshold (on the 1000-point grid) where the smoothed mean F1 peaks.
    pub confidence: f64,
    /// Mean precision over classes with labels.
    pub precision: f64,
    /// Mean recall over classes with labels.
    pub recall: f64,
    /// Mean F1 over classes with labels.
    pub f1: f64,
    /// The same per class with labels.
    pub per_class: Vec<ClassPrf>,
}

/// Ultralytics' `eps`.
const EPS: f64 = 1e-16;
/// Points of the confidence grid, `np.linspace(0, 1, 1000)`.
const GRID: usize = 1000;

/// Ultralytics' `ap_per_class` operating point. Classes without labels are skipped (they have no row there);
/// classes with labels but no detections count with P = R = 0.
pub fn best_f1(classes: &[ClassHits]) -> BestF1 {
    let labelled: Vec<&ClassHits> = classes.iter().filter(|c| c.num_labels > 0).collect();
    if labelled.is_empty() {
        return BestF1 {
            confidence: 0.0,
            precision: 0.0,
            recall: 0.0,
            f1: 0.0,
            per_class: Vec::new(),
        };
    }
    let grid: Vec<f64> = (0..GRID)
        .map(|i| {
            if i == GRID - 1 {
                1.0
            } else {
                i as f64 * (1.0 / (GRID - 1) as f64)
            }
        })
        .collect();
    let curves: Vec<(Vec<f64>, Vec<f64>)> =
        labelled.iter().map(|c| class_curves(c, &grid)).collect();
    let f1_of = |p: f64, r: f64| 2.0 * p * r / (p + r + EPS);
    let mean_f1: Vec<f64> = (0..GRID)
        .map(|j| curves.iter().map(|(p, r)| f1_of(p[j], r[j])).sum::<f64>() / curves.len() as f64)
        .collect();
    let smoothed = smooth(&mean_f1, 0.1);
    let mut best = 0;
    for (j, &v) in smoothed.iter().enumerate() {
        if v > smoothed[best] {
            best = j;
        }
    }
    let per_class: Vec<ClassPrf> = labelled
        .iter()
        .zip(&curves)
        .map(|(c, (p, r))| ClassPrf {
            category_id: c.category_id,
            precision: p[best],
            recall: r[best],
            f1: f1_of(p[best], r[best]),
        })
        .collect();
    let n = per_class.len() as f64;
    BestF1 {
        confidence: grid[best],
        precision: per_class.iter().map(|c| c.precision).sum::<f64>() / n,
        recall: per_class.iter().map(|c| c.recall).sum::<f64>() / n,
        f1: per_class.iter().map(|c| c.f1).sum::<f64>() / n,
        per_class,
    }
}

/// Precision and recall of one class at each grid confidence: `np.interp(-x, -conf, curve)` with precision
/// 1 and recall 0 above the highest confidence.
pub(crate) fn class_curves(class: &ClassHits, grid: &[f64]) -> (Vec<f64>, Vec<f64>) {
    if class.confidences.is_empty() {
        return (vec![0.0; grid.len()], vec![0.0; grid.len()]);
    }
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut precision = Vec::with_capacity(class.confidences.len());
    let mut recall = Vec::with_capacity(class.confidences.len());
    for &hit in &class.true_positives {
        if hit {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        recall.push(tp / (class.num_labels as f64 + EPS));
        precision.push(tp / (tp + fp));
    }
    let neg_conf: Vec<f64> = class.confidences.iter().map(|c| -c).collect();
    let p = grid
        .iter()
        .map(|&x| interp(-x, &neg_conf, &precision, 1.0))
        .collect();
    let r = grid
        .iter()
        .map(|&x| interp(-x, &neg_conf, &recall, 0.0))
        .collect();
    (p, r)
}

/// `np.interp(x, xp, fp, left=left)` for ascending `xp`; right of the last point it is `fp[-1]`.
fn interp(x: f64, xp: &[f64], fp: &[f64], left: f64) -> f64 {
    let n = xp.len();
    if x < xp[0] {
        return left;
    }
    if x >= xp[n - 1] {
        return fp[n - 1];
    }
    // Last j with xp[j] <= x; then xp[j] <= x < xp[j + 1].
    let j = xp.partition_point(|&v| v <= x) - 1;
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    slope * (x - xp[j]) + fp[j]
}

/// Ultralytics' `smooth`: a box filter of `round(len * f * 2) // 2 + 1` points, padded with the edge values.
pub(crate) fn smooth(y: &[f64], fraction: f64) -> Vec<f64> {
    let width = (y.len() as f64 * fraction * 2.0).round() as usize / 2 + 1;
    let pad = width / 2;
    let first = y[0];
    let last = y[y.len() - 1];
    let padded: Vec<f64> = std::iter::repeat_n(first, pad)
        .chain(y.iter().copied())
        .chain(std::iter::repeat_n(last, pad))
        .collect();
    padded
        .windows(width)
        .map(|w| w.iter().sum::<f64>() / width as f64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_f1_perfect_detector_is_one() {
        let classes = [ClassHits {
            category_id: 1,
            num_labels: 2,
            confidences: vec![0.9, 0.8],
            true_positives: vec![true, true],
        }];
        let best = best_f1(&classes);
        assert!((best.precision - 1.0).abs() < 1e-9);
        assert!((best.recall - 1.0).abs() < 1e-9);
        assert!(best.confidence <= 0.8);
    }

    #[test]
    fn best_f1_class_without_detections_counts_as_zero() {
        let classes = [
            ClassHits {
                category_id: 1,
                num_labels: 1,
                confidences: vec![0.9],
                true_positives: vec![true],
            },
            ClassHits {
                category_id: 2,
                num_labels: 1,
                confidences: vec![],
                true_positives: vec![],
            },
        ];
        let best = best_f1(&classes);
        assert!((best.recall - 0.5).abs() < 1e-9);
        assert_eq!(best.per_class[1].f1, 0.0);
    }

    #[test]
    fn smooth_keeps_length_and_constant() {
        let y = vec![2.0; 1000];
        let s = smooth(&y, 0.1);
        assert_eq!(s.len(), 1000);
        assert!(s.iter().all(|&v| (v - 2.0).abs() < 1e-12));
    }
}
