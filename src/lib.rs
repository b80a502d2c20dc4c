//! yolo-burn: train, evaluate and export YOLOv8 and YOLO11 detectors on Burn.
//!
//! The data path and each module's room are described in docs/ARCHITECTURE.md of the shared reference folder;
//! the short version: `config` → `model` (+ `model::weights` for Ultralytics checkpoints) → `backend` picks the
//! concrete Burn backend in one place.

pub mod amp;
pub mod backend;
pub mod bench;
pub mod config;
pub mod data;
pub mod error;
pub mod eval;
pub mod export;
pub mod kernels;
pub mod loss;
pub mod model;
pub mod plots;
pub mod predict;
pub mod runs;
pub mod train;
pub mod validate;

pub use error::YoloError;
