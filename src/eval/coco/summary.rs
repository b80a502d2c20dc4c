//! pycocotools' `summarize()`: the 12 numbers everyone quotes, averaged as numpy averages them (pairwise
//! summation, so the last bits agree too), and printed in its exact layout.

use std::fmt::Write as _;

use super::params::{
    AREA_RANGES, MAX_DETS, NUM_AREA_RANGES, NUM_IOU_THRESHOLDS, NUM_RECALL_THRESHOLDS,
};

/// The JSON keys of the 12 stats, in pycocotools' `stats` order.
pub const STAT_KEYS: [&str; 12] = [
    "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
];

/// Which slice of precision (AP) or recall (AR) one stat averages.
struct StatSpec {
    precision: bool,
    /// IoU threshold index, or all.
    iou: Option<usize>,
    area: usize,
    max_det: usize,
}

const fn spec(precision: bool, iou: Option<usize>, area: usize, max_det: usize) -> StatSpec {
    StatSpec {
        precision,
        iou,
        area,
        max_det,
    }
}

/// `_summarizeDets`: IoU index 0 is .50 and 5 is .75; maxDet index 2 is 100.
const SPECS: [StatSpec; 12] = [
    spec(true, None, 0, 2),
    spec(true, Some(0), 0, 2),
    spec(true, Some(5), 0, 2),
    spec(true, None, 1, 2),
    spec(true, None, 2, 2),
    spec(true, None, 3, 2),
    spec(false, None, 0, 0),
    spec(false, None, 0, 1),
    spec(false, None, 0, 2),
    spec(false, None, 1, 2),
    spec(false, None, 2, 2),
    spec(false, None, 3, 2),
];

/// The 12 summary stats, pycocotools' `COCOeval.stats`; -1 where nothing was defined.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SummaryStats(pub [f64; 12]);

impl SummaryStats {
    /// `_summarizeDets` over `precision [T, R, K, A, M]` and `recall [T, K, A, M]` with `num_categories` = K.
    pub fn from_arrays(precision: &[f64], recall: &[f64], num_categories: usize) -> Self {
        const R: usize = NUM_RECALL_THRESHOLDS;
        const A: usize = NUM_AREA_RANGES;
        const M: usize = MAX_DETS.len();
        let k_count = num_categories;
        let mut stats = [0.0; 12];
        for (stat, s) in stats.iter_mut().zip(SPECS.iter()) {
            let thresholds: Vec<usize> = match s.iou {
                Some(t) => vec![t],
                None => (0..NUM_IOU_THRESHOLDS).collect(),
            };
            let mut values = Vec::new();
            for &t in &thresholds {
                if s.precision {
                    for r in 0..R {
                        for k in 0..k_count {
                            values.push(
                                precision
                                    [(((t * R + r) * k_count + k) * A + s.area) * M + s.max_det],
                            );
                        }
                    }
                } else {
                    for k in 0..k_count {
                        values.push(recall[((t * k_count + k) * A + s.area) * M + s.max_det]);
                    }
                }
            }
            *stat = mean_of_defined(&values);
        }
        SummaryStats(stats)
    }

    /// The 12 lines `summarize()` prints, each ending in a newline.
    pub fn to_pycocotools_text(&self) -> String {
        let mut out = String::new();
        for (value, s) in self.0.iter().zip(SPECS.iter()) {
            let (title, kind) = if s.precision {
                ("Average Precision", "(AP)")
            } else {
                ("Average Recall", "(AR)")
            };
            let iou = match s.iou {
                None => "0.50:0.95",
                Some(0) => "0.50",
                Some(_) => "0.75",
            };
            let _ = writeln!(
                out,
                " {title:<18} {kind} @[ IoU={iou:<9} | area={:>6} | maxDets={:>3} ] = {value:.3}",
                AREA_RANGES[s.area].label, MAX_DETS[s.max_det]
            );
        }
        out
    }
}

/// What `val --json` prints: the 12 stats under short keys (AP, AP50, ... ARl) and AP@[.50:.95] per category id.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoReport {
    /// pycocotools' `stats`, in [`STAT_KEYS`] order.
    pub stats: SummaryStats,
    /// `(category id, AP)` in category id order; -1 where undefined.
    pub per_category_ap: Vec<(i64, f64)>,
}

impl serde::Serialize for CocoReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct PerCategory<'a>(&'a [(i64, f64)]);
        impl serde::Serialize for PerCategory<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_map(self.0.iter().map(|(id, ap)| (id.to_string(), ap)))
            }
        }
        let mut map = serializer.serialize_map(Some(STAT_KEYS.len() + 1))?;
        for (key, value) in STAT_KEYS.iter().zip(self.stats.0.iter()) {
            map.serialize_entry(key, value)?;
        }
        map.serialize_entry("per_category_AP", &PerCategory(&self.per_category_ap))?;
        map.end()
    }
}

/// `np.mean(s[s > -1])`, or -1 when nothing is above -1.
pub fn mean_of_defined(values: &[f64]) -> f64 {
    let defined: Vec<f64> = values.iter().copied().filter(|&v| v > -1.0).collect();
    if defined.is_empty() {
        -1.0
    } else {
        pairwise_sum(&defined) / defined.len() as f64
    }
}

/// numpy's `pairwise_sum` for float64 (8 accumulators up to 128 values, halves above), so means match numpy's
/// to the last bit.
pub fn pairwise_sum(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 8 {
        values.iter().fold(0.0, |acc, &v| acc + v)
    } else if n <= 128 {
        let mut r = [0.0; 8];
        r.copy_from_slice(&values[..8]);
        let full = n - n % 8;
        let mut i = 8;
        while i < full {
            for j in 0..8 {
                r[j] += values[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &values[full..] {
            res += v;
        }
        res
    } else {
        let mut half = n / 2;
        half -= half % 8;
        pairwise_sum(&values[..half]) + pairwise_sum(&values[half..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_of_defined_all_undefined_is_minus_one() {
        assert_eq!(mean_of_defined(&[-1.0, -1.0]), -1.0);
        assert_eq!(mean_of_defined(&[]), -1.0);
    }

    #[test]
    fn pairwise_sum_large_input_matches_exact_sum_of_integers() {
        let values: Vec<f64> = (0..1000).map(f64::from).collect();
        assert_eq!(pairwise_sum(&values), 499_500.0);
    }

    #[test]
    fn summary_text_matches_pycocotools_layout() {
        let text = SummaryStats([0.5045806987249628; 12]).to_pycocotools_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.505"
        );
        assert_eq!(
            lines[1],
            " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.505"
        );
        assert_eq!(
            lines[6],
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.505"
        );
        assert_eq!(
            lines[9],
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.505"
        );
    }
}
