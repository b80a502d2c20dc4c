//! The YOLOv8 detection loss, as Ultralytics 8.4.190 computes it: task-aligned assignment, CIoU and DFL box
//! losses, BCE class loss.
//!
//! - [`iou`]: IoU, GIoU, DIoU, CIoU (`ultralytics/utils/metrics.py`)
//! - [`tal`]: the assigner and its anchor/box geometry (`ultralytics/utils/tal.py`)
//! - [`dfl`]: Distribution Focal Loss and its decoding (`ultralytics/utils/loss.py` `DFLoss`)
//! - [`detection`]: `v8DetectionLoss`, which puts them together

pub mod detection;
pub mod dfl;
pub mod iou;
pub mod tal;

pub use detection::{DetectionLoss, DetectionLossConfig, LossOutput, LossParts, Targets};
pub use iou::{bbox_iou_xyxy, BoxesXyxy, IouKind};
pub use tal::{AssignedTargets, GroundTruth, TaskAlignedAssigner, TaskAlignedAssignerConfig};
