//! Training: Ultralytics' recipe on Burn. The optimizer step over three parameter groups ([`optim`]), the
//! warmup and decay schedule ([`schedule`]), the EMA of the weights ([`ema`]).

pub mod checkpoint;
pub mod ema;
pub mod optim;
pub mod results;
pub mod schedule;
pub mod source;
pub mod trainer;
pub mod validate;

pub use trainer::{read_resume, train, TrainJob, TrainRequest, TrainSummary};
