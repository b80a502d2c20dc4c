//! Ultralytics' own detection metrics, what `yolo val` prints and writes to results.csv: predictions matched to
//! labels per image at ten IoU thresholds (`BaseValidator.match_predictions`), then per-class AP by
//! `compute_ap` (the precision envelope sampled at 101 recall points and integrated with the trapezoid rule)
//! and P, R at the best smoothed mean F1 (`ap_per_class`, [`super::f1::best_f1`]).
//!
//! These are not pycocotools' numbers (`super::coco`): COCO ignores crowd regions, uses area ranges and averages
//! 101 precision samples; Ultralytics integrates its envelope with two sentinels (a perfect class scores
//! 0.995). `val` prints both.
//!
//! Sources: ultralytics/engine/validator.py `match_predictions` (its greedy path), ultralytics/utils/metrics.py `box_iou`,
//! `compute_ap`, `ap_per_class` (8.4.190); `tests/data/ap_per_class.json` holds their outputs on synthetic
//! cases (`scripts/make_ap_per_class_case.py`).

use super::f1::{best_f1, BestF1, ClassHits};

/// `torch.linspace(0.5, 0.95, 10)` in float32, as the validator's `iouv`: each value is 0.5 + 0.05·i rounded
/// once to f32 (checked against torch's in `tests/det_metrics.rs`).
pub fn iou_thresholds() -> [f32; 10] {
    std::array::from_fn(|i| (0.5 + 0.05 * i as f64) as f32)
}

/// `box_iou(labels, preds)` in float32 as torch computes it: `[M][N]`, `inter / (area1 + area2 − inter + 1e-7)`.
pub fn box_iou(labels: &[[f32; 4]], preds: &[[f32; 4]]) -> Vec<Vec<f32>> {
    labels
        .iter()
        .map(|a| {
            preds
                .iter()
                .map(|b| {
                    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
                    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
                    let inter = w * h;
                    let area_a = (a[2] - a[0]) * (a[3] - a[1]);
                    let area_b = (b[2] - b[0]) * (b[3] - b[1]);
                    inter / (area_a + area_b - inter + 1e-7)
                })
                .collect()
        })
        .collect()
}

/// `match_predictions` (8.4.190's greedy path): which predictions are true positives at each threshold.
/// Predictions are taken in the given order, which must be descending confidence (NMS's); at each threshold
/// independently, a prediction claims the not yet claimed label of its class with the highest IoU (the lowest
/// label index on a tie) when that IoU reaches the threshold.
///
/// # Shapes
/// `iou`: `[M labels][N predictions]`; returns `[N][10]`.
pub fn match_predictions(
    pred_cls: &[usize],
    label_cls: &[usize],
    iou: &[Vec<f32>],
    thresholds: &[f32; 10],
) -> Vec<[bool; 10]> {
    let n = pred_cls.len();
    let mut correct = vec![[false; 10]; n];
    let lowest = thresholds.iter().copied().fold(f32::INFINITY, f32::min);
    // iou · (same class): wrong-class pairs count as IoU 0.
    let masked = |l: usize, p: usize| {
        if label_cls[l] == pred_cls[p] {
            iou[l][p]
        } else {
            0.0
        }
    };
    let mut claimed = vec![[false; 10]; iou.len()];
    for (p, row) in correct.iter_mut().enumerate() {
        if !(0..iou.len()).any(|l| masked(l, p) >= lowest) {
            continue;
        }
        for (t, &threshold) in thresholds.iter().enumerate() {
            // available.argmax(0): the first label with the highest unclaimed IoU (0 when claimed).
            let mut best = (0usize, f32::NEG_INFINITY);
            for (l, label_claims) in claimed.iter().enumerate() {
                let available = if label_claims[t] { 0.0 } else { masked(l, p) };
                if available > best.1 {
                    best = (l, available);
                }
            }
            row[t] = best.1 >= threshold;
            if row[t] {
                claimed[best.0][t] = true;
            }
        }
    }
    correct
}

/// `np.linspace(0, 1, n)`.
fn linspace01(n: usize) -> Vec<f64> {
    let step = 1.0 / (n - 1) as f64;
    (0..n)
        .map(|i| if i == n - 1 { 1.0 } else { i as f64 * step })
        .collect()
}

/// `np.interp(x, xp, fp)` for non-decreasing `xp` (repeated points allowed, as numpy's C code treats them).
fn interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    let n = xp.len();
    if x < xp[0] {
        return fp[0];
    }
    if x > xp[n - 1] {
        return fp[n - 1];
    }
    // The last j with xp[j] <= x.
    let j = xp.partition_point(|&v| v <= x) - 1;
    if j == n - 1 || xp[j] == x {
        return fp[j];
    }
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    let y = slope * (x - xp[j]) + fp[j];
    if y.is_nan() {
        let y = slope * (x - xp[j + 1]) + fp[j + 1];
        if y.is_nan() && fp[j] == fp[j + 1] {
            return fp[j];
        }
        return y;
    }
    y
}

/// `compute_ap(recall, precision)`: the precision envelope, sampled at 101 recall points (`np.interp`, which
/// at a repeated recall takes the last point's value) and integrated (`np.trapezoid`).
pub fn compute_ap(recall: &[f64], precision: &[f64]) -> f64 {
    // Sentinels: recall [0, r…, r_last, 1] against precision [1, p…, 0, 0].
    let mut mrec = Vec::with_capacity(recall.len() + 3);
    mrec.push(0.0);
    mrec.extend_from_slice(recall);
    mrec.push(recall.last().copied().unwrap_or(1.0));
    mrec.push(1.0);
    let mut mpre = Vec::with_capacity(precision.len() + 3);
    mpre.push(1.0);
    mpre.extend_from_slice(precision);
    mpre.push(0.0);
    mpre.push(0.0);
    for i in (0..mpre.len() - 1).rev() {
        mpre[i] = mpre[i].max(mpre[i + 1]);
    }
    let x = linspace01(101);
    let y: Vec<f64> = x.iter().map(|&v| interp(v, &mrec, &mpre)).collect();
    x.windows(2)
        .zip(y.windows(2))
        .map(|(x, y)| (x[1] - x[0]) * (y[0] + y[1]) / 2.0)
        .sum()
}

/// Ultralytics' per-class results for the classes that have labels.
#[derive(Debug, Clone, PartialEq)]
pub struct DetMetrics {
    /// Classes with labels, ascending (`np.unique(target_cls)`).
    pub classes: Vec<usize>,
    /// AP at each IoU threshold, per class in `classes` order.
    pub ap: Vec<[f64; 10]>,
    /// P, R, F1 at the best smoothed mean F1 (per class in `classes` order, `category_id` = class).
    pub best: BestF1,
}

impl DetMetrics {
    /// `mAP50`: mean over classes of AP at IoU 0.5 (0 without classes).
    pub fn map50(&self) -> f64 {
        mean(self.ap.iter().map(|a| a[0]))
    }

    /// `mAP50-95`: mean over classes and thresholds.
    pub fn map50_95(&self) -> f64 {
        mean(self.ap.iter().map(|a| a.iter().sum::<f64>() / 10.0))
    }

    /// A class's AP50 and AP50-95, if it has labels.
    pub fn class_ap(&self, class: usize) -> Option<(f64, f64)> {
        let k = self.classes.iter().position(|&c| c == class)?;
        Some((self.ap[k][0], self.ap[k].iter().sum::<f64>() / 10.0))
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// `ap_per_class(tp, conf, pred_cls, target_cls)` over the whole split's predictions (`tp` from
/// [`match_predictions`] per image, concatenated) and every label's class.
pub fn ap_per_class(
    tp: &[[bool; 10]],
    conf: &[f32],
    pred_cls: &[usize],
    target_cls: &[usize],
) -> DetMetrics {
    let mut order: Vec<usize> = (0..conf.len()).collect();
    // np.argsort(-conf): highest confidence first.
    order.sort_by(|&a, &b| conf[b].total_cmp(&conf[a]));
    // np.unique(target_cls, return_counts=True), and each class's predictions in confidence order.
    let mut labels = std::collections::BTreeMap::<usize, usize>::new();
    for &t in target_cls {
        *labels.entry(t).or_insert(0) += 1;
    }
    let mut by_class = std::collections::HashMap::<usize, Vec<usize>>::new();
    for &i in &order {
        by_class.entry(pred_cls[i]).or_default().push(i);
    }
    let classes: Vec<usize> = labels.keys().copied().collect();
    let mut ap = Vec::with_capacity(classes.len());
    let mut hits = Vec::with_capacity(classes.len());
    for (&c, &n_l) in &labels {
        let mine = by_class.remove(&c).unwrap_or_default();
        let mut class_ap = [0.0; 10];
        if !mine.is_empty() {
            for (j, ap_j) in class_ap.iter_mut().enumerate() {
                let (mut tpc, mut fpc) = (0f64, 0f64);
                let mut recall = Vec::with_capacity(mine.len());
                let mut precision = Vec::with_capacity(mine.len());
                for &i in &mine {
                    if tp[i][j] {
                        tpc += 1.0;
                    } else {
                        fpc += 1.0;
                    }
                    recall.push(tpc / (n_l as f64 + 1e-16));
                    precision.push(tpc / (tpc + fpc));
                }
                *ap_j = compute_ap(&recall, &precision);
            }
        }
        ap.push(class_ap);
        hits.push(ClassHits {
            category_id: c as i64,
            num_labels: n_l,
            confidences: mine.iter().map(|&i| f64::from(conf[i])).collect(),
            true_positives: mine.iter().map(|&i| tp[i][0]).collect(),
        });
    }
    DetMetrics {
        classes,
        ap,
        best: best_f1(&hits),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_torch_linspace() {
        let t = iou_thresholds();
        assert_eq!(t[0], 0.5);
        assert_eq!(t[9], 0.95);
        assert!((t[4] - 0.7).abs() < 1e-6);
    }

    /// Ultralytics' well-known 0.995 for a perfect class: `np.interp` at recall 1 lands on the appended
    /// sentinels (precision 0), which takes the last trapezoid to half height.
    #[test]
    fn perfect_predictions_give_ap_0_995() {
        let ap = compute_ap(&[0.5, 1.0], &[1.0, 1.0]);
        assert!((ap - 0.995).abs() < 1e-12, "{ap}");
    }

    #[test]
    fn one_label_keeps_one_prediction() {
        // Two predictions on one label: only one is a true positive at every threshold.
        let iou = vec![vec![0.9f32, 0.8]];
        let tp = match_predictions(&[0, 0], &[0], &iou, &iou_thresholds());
        assert_eq!(tp[0][0] as u8 + tp[1][0] as u8, 1);
        // The other class never matches.
        let tp = match_predictions(&[1, 1], &[0], &iou, &iou_thresholds());
        assert!(tp.iter().all(|r| r.iter().all(|&b| !b)));
    }
}
