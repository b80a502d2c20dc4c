//! YOLOv8 and YOLO11 detection models, tensor for tensor the networks Ultralytics 8.4.190 builds.

pub mod blocks;
pub mod conv;
pub mod head;
pub mod meta;
pub mod scale;
pub mod weights;
pub mod yolo;

pub use head::{Anchors, Detect, HeadOutput, REG_MAX, STRIDES};
pub use scale::Scale;
pub use yolo::{Layer, Yolo, YoloConfig};
