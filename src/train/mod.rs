//! Training: Ultralytics' recipe on Burn.
//!
//! - [`optim`]: the optimizer step (SGD Nesterov / AdamW / MuSGD) over three parameter groups, clipping, `auto`
//! - [`muon`]: MuSGD's Newton-Schulz orthogonalised momentum
//! - [`schedule`]: warmup, linear or cosine decay, the accumulation ramp
//! - [`ema`]: the EMA of the weights, and the finite-weights check
//! - [`checkpoint`]: `weights/{last,best}.{safetensors,state}` and their format
//! - [`results`]: the run folder, results.csv, results.png
//! - [`validate`]: an epoch's metrics from `crate::validate` (the path `yolo-burn val` runs) on the EMA
//! - [`trainer`]: the loop, resume, and the [`TrainJob`] the binary dispatches

pub mod checkpoint;
pub mod ema;
pub mod muon;
pub mod optim;
pub mod results;
pub mod schedule;
pub mod trainer;
pub mod validate;

pub use trainer::{read_resume, train, TrainJob, TrainRequest, TrainSummary};
