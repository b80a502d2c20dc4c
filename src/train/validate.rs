//! The trainer's view of a validation: the numbers an epoch records (results.csv, checkpoints, fitness), taken
//! from `crate::validate`, which is the same path `yolo-burn val` runs.

use super::checkpoint::ValMetrics;
use crate::validate::Validation;

impl ValMetrics {
    /// Ultralytics' `metrics/*(B)` and `val/*_loss` columns from one validation.
    pub fn from_validation(validation: &Validation) -> Self {
        let [box_loss, cls_loss, dfl_loss] = validation.losses.unwrap_or_default();
        Self {
            precision: validation.metrics.best.precision,
            recall: validation.metrics.best.recall,
            map50: validation.map50().max(0.0),
            map50_95: validation.map50_95().max(0.0),
            box_loss,
            cls_loss,
            dfl_loss,
        }
    }
}
