//! pycocotools' default bbox `Params`: IoU thresholds, recall points, area ranges and detection caps. The
//! thresholds are built as numpy's `linspace` builds them (`i * step + start`, last = stop), so they are the same
//! doubles and `iouThr == .75` finds its row.

/// Number of IoU thresholds (T): .50:.05:.95.
pub const NUM_IOU_THRESHOLDS: usize = 10;
/// Number of recall points (R): 0:.01:1.
pub const NUM_RECALL_THRESHOLDS: usize = 101;
/// Number of area ranges (A): all, small, medium, large.
pub const NUM_AREA_RANGES: usize = 4;
/// Detections kept per image for each recall/precision column (M = 3), sorted as pycocotools sorts them.
pub const MAX_DETS: [usize; 3] = [1, 10, 100];

/// `np.linspace(.5, .95, 10)`: `IOU_THRESHOLDS[t]`.
pub fn iou_thresholds() -> [f64; NUM_IOU_THRESHOLDS] {
    linspace(0.5, 0.95)
}

/// `np.linspace(0, 1, 101)`: the recall points at which precision is sampled.
pub fn recall_thresholds() -> [f64; NUM_RECALL_THRESHOLDS] {
    linspace(0.0, 1.0)
}

fn linspace<const N: usize>(start: f64, stop: f64) -> [f64; N] {
    let step = (stop - start) / (N - 1) as f64;
    let mut out = [0.0; N];
    for (i, v) in out.iter_mut().enumerate() {
        *v = i as f64 * step + start;
    }
    out[N - 1] = stop;
    out
}

/// One of pycocotools' `areaRng` rows; bounds are inclusive at both ends, on the GT annotation's `area`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AreaRange {
    /// `areaRngLbl`: all, small, medium, large.
    pub label: &'static str,
    /// Lower bound, px².
    pub min: f64,
    /// Upper bound, px².
    pub max: f64,
}

impl AreaRange {
    /// pycocotools' test: outside when `area < min or area > max`.
    pub fn excludes(&self, area: f64) -> bool {
        area < self.min || area > self.max
    }
}

/// `[[0, 1e5²], [0, 32²], [32², 96²], [96², 1e5²]]`, in that order (A index).
pub const AREA_RANGES: [AreaRange; NUM_AREA_RANGES] = [
    AreaRange {
        label: "all",
        min: 0.0,
        max: 1e10,
    },
    AreaRange {
        label: "small",
        min: 0.0,
        max: 1024.0,
    },
    AreaRange {
        label: "medium",
        min: 1024.0,
        max: 9216.0,
    },
    AreaRange {
        label: "large",
        min: 9216.0,
        max: 1e10,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_thresholds_match_numpy_linspace() {
        let t = iou_thresholds();
        assert_eq!(t[5], 0.75);
        assert_eq!(t[8], 0.8999999999999999);
        assert_eq!(t[9], 0.95);
    }

    #[test]
    fn recall_thresholds_are_hundredths() {
        let r = recall_thresholds();
        assert_eq!(r[1], 0.01);
        assert_eq!(r[100], 1.0);
    }
}
