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

use super::f1::{best_f1, class_curves, BestF1, ClassHits};

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
    let (mrec, mpre) = envelope(recall, precision);
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

/// Labels per class (`np.unique(target_cls, return_counts=True)`) and each class's predictions, highest
/// confidence first (`np.argsort(-conf)`).
type ByClass = (
    std::collections::BTreeMap<usize, usize>,
    std::collections::HashMap<usize, Vec<usize>>,
);

fn group_by_class(conf: &[f32], pred_cls: &[usize], target_cls: &[usize]) -> ByClass {
    let mut order: Vec<usize> = (0..conf.len()).collect();
    order.sort_by(|&a, &b| conf[b].total_cmp(&conf[a]));
    let mut labels = std::collections::BTreeMap::<usize, usize>::new();
    for &t in target_cls {
        *labels.entry(t).or_insert(0) += 1;
    }
    let mut by_class = std::collections::HashMap::<usize, Vec<usize>>::new();
    for &i in &order {
        by_class.entry(pred_cls[i]).or_default().push(i);
    }
    (labels, by_class)
}

/// One class's cumulative recall and precision at IoU threshold `j`, over its predictions `mine` in confidence
/// order (`tpc / (n_l + eps)`, `tpc / (tpc + fpc)`).
fn pr_points(mine: &[usize], tp: &[[bool; 10]], j: usize, n_l: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut tpc, mut fpc) = (0f64, 0f64);
    let mut recall = Vec::with_capacity(mine.len());
    let mut precision = Vec::with_capacity(mine.len());
    for &i in mine {
        if tp[i][j] {
            tpc += 1.0;
        } else {
            fpc += 1.0;
        }
        recall.push(tpc / (n_l as f64 + 1e-16));
        precision.push(tpc / (tpc + fpc));
    }
    (recall, precision)
}

/// `ap_per_class(tp, conf, pred_cls, target_cls)` over the whole split's predictions (`tp` from
/// [`match_predictions`] per image, concatenated) and every label's class.
pub fn ap_per_class(
    tp: &[[bool; 10]],
    conf: &[f32],
    pred_cls: &[usize],
    target_cls: &[usize],
) -> DetMetrics {
    let (labels, mut by_class) = group_by_class(conf, pred_cls, target_cls);
    let classes: Vec<usize> = labels.keys().copied().collect();
    let mut ap = Vec::with_capacity(classes.len());
    let mut hits = Vec::with_capacity(classes.len());
    for (&c, &n_l) in &labels {
        let mine = by_class.remove(&c).unwrap_or_default();
        let mut class_ap = [0.0; 10];
        if !mine.is_empty() {
            for (j, ap_j) in class_ap.iter_mut().enumerate() {
                let (recall, precision) = pr_points(&mine, tp, j, n_l);
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

/// The curves `ap_per_class` hands to its plots (`PR_curve.png`, `F1_curve.png`, `P_curve.png`,
/// `R_curve.png`), one row per class with labels, from the same grouping and envelope as [`ap_per_class`].
#[derive(Debug, Clone, PartialEq)]
pub struct DetCurves {
    /// `np.linspace(0, 1, 1000)`: the recall axis of `precision_at_recall`, the confidence axis of the others.
    pub x: Vec<f64>,
    /// Classes with labels, ascending (as [`DetMetrics::classes`]).
    pub classes: Vec<usize>,
    /// AP at IoU 0.5 per class.
    pub ap50: Vec<f64>,
    /// `prec_values`: the IoU-0.5 precision envelope at each recall of `x` (zeros for a class without
    /// predictions).
    ///
    /// # Shapes
    /// `[nc][1000]`, as the three below.
    pub precision_at_recall: Vec<Vec<f64>>,
    /// `p_curve`: precision at each confidence of `x` (1 above a class's highest confidence).
    pub precision: Vec<Vec<f64>>,
    /// `r_curve`: recall at each confidence of `x`.
    pub recall: Vec<Vec<f64>>,
    /// `f1_curve`: `2·p·r / (p + r + 1e-16)`.
    pub f1: Vec<Vec<f64>>,
}

/// `compute_ap`'s `mrec` and `mpre`: recall `[0, r…, r_last, 1]` against precision `[1, p…, 0, 0]`, the
/// precision then made its running maximum from the right (the envelope). Shared with the plotted curves.
fn envelope(recall: &[f64], precision: &[f64]) -> (Vec<f64>, Vec<f64>) {
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
    (mrec, mpre)
}

/// The plotted curves of `ap_per_class` (`x`, `prec_values`, `p_curve`, `r_curve`, `f1_curve`) over the same
/// inputs as [`ap_per_class`].
pub fn det_curves(
    tp: &[[bool; 10]],
    conf: &[f32],
    pred_cls: &[usize],
    target_cls: &[usize],
) -> DetCurves {
    const EPS: f64 = 1e-16;
    let x = linspace01(1000);
    let (labels, mut by_class) = group_by_class(conf, pred_cls, target_cls);
    let mut curves = DetCurves {
        x: x.clone(),
        classes: labels.keys().copied().collect(),
        ap50: Vec::with_capacity(labels.len()),
        precision_at_recall: Vec::with_capacity(labels.len()),
        precision: Vec::with_capacity(labels.len()),
        recall: Vec::with_capacity(labels.len()),
        f1: Vec::with_capacity(labels.len()),
    };
    for (&c, &n_l) in &labels {
        let mine = by_class.remove(&c).unwrap_or_default();
        if mine.is_empty() {
            curves.ap50.push(0.0);
            for rows in [
                &mut curves.precision_at_recall,
                &mut curves.precision,
                &mut curves.recall,
                &mut curves.f1,
            ] {
                rows.push(vec![0.0; x.len()]);
            }
            continue;
        }
        let (recall, precision) = pr_points(&mine, tp, 0, n_l);
        curves.ap50.push(compute_ap(&recall, &precision));
        let (mrec, mpre) = envelope(&recall, &precision);
        curves
            .precision_at_recall
            .push(x.iter().map(|&v| interp(v, &mrec, &mpre)).collect());
        let hits = ClassHits {
            category_id: c as i64,
            num_labels: n_l,
            confidences: mine.iter().map(|&i| f64::from(conf[i])).collect(),
            true_positives: mine.iter().map(|&i| tp[i][0]).collect(),
        };
        let (p, r) = class_curves(&hits, &x);
        curves.f1.push(
            p.iter()
                .zip(&r)
                .map(|(p, r)| 2.0 * p * r / (p + r + EPS))
                .collect(),
        );
        curves.precision.push(p);
        curves.recall.push(r);
    }
    curves
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

    #[test]
    fn det_curves_agree_with_ap_per_class() {
        // Class 0: a hit then a miss; class 1: labels but no predictions; class 2: predictions but no labels.
        let tp = [[true; 10], [false; 10], [false; 10]];
        let conf = [0.9f32, 0.4, 0.8];
        let pred_cls = [0, 0, 2];
        let target_cls = [0, 0, 1];
        let metrics = ap_per_class(&tp, &conf, &pred_cls, &target_cls);
        let curves = det_curves(&tp, &conf, &pred_cls, &target_cls);
        assert_eq!(curves.classes, metrics.classes);
        assert_eq!(curves.ap50[0], metrics.ap[0][0]);
        assert_eq!(curves.x.len(), 1000);
        // Precision 1 up to recall 0.5, then the envelope's sentinel drop.
        assert_eq!(curves.precision_at_recall[0][0], 1.0);
        assert_eq!(curves.precision_at_recall[0][400], 1.0);
        assert!(curves.precision_at_recall[1].iter().all(|&p| p == 0.0));
        // Between the two confidences np.interp runs P from 1 down to 0.5; R stays 0.5.
        let (c0, c1, x) = (f64::from(0.9f32), f64::from(0.4f32), curves.x[500]);
        let p = 1.0 - 0.5 * (c0 - x) / (c0 - c1);
        assert!((curves.precision[0][500] - p).abs() < 1e-12);
        assert!((curves.recall[0][500] - 0.5).abs() < 1e-12);
        assert!((curves.f1[0][500] - p / (p + 0.5)).abs() < 1e-12);
        // Above the highest confidence: P = 1 (np.interp's left), R = 0.
        assert_eq!(
            (curves.precision[0][999], curves.recall[0][999]),
            (1.0, 0.0)
        );
    }
}
