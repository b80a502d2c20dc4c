//! Evaluation without a model: NMS on raw boxes, COCO mAP with pycocotools' semantics, Ultralytics' own
//! metrics (matching, AP, best-F1 point) and confusion matrix. Nothing here knows about training state or tensors.

pub mod coco;
pub mod confusion;
pub mod det_metrics;
pub mod f1;
pub mod nms;
