//! `yolo-burn bench loader`: training-loader throughput (images/s) with mosaic and the default augmentations,
//! compared with Ultralytics' dataloader by `scripts/bench_loader.py` (docs/benchmarks.md).

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::backend::Cpu;
use crate::config::{AugmentSection, CacheMode};
use crate::data::augment::TrainAugment;
use crate::data::loader::{Loader, LoaderConfig, LoaderMode, TrainSchedule};
use crate::data::{read_index, SplitName};
use crate::YoloError;

/// What to time.
#[derive(Debug, Clone)]
pub struct LoaderBench {
    /// The dataset (a descriptor or instances JSON, as `data.dataset`); its train split is loaded.
    pub dataset: PathBuf,
    pub imgsz: usize,
    pub batch: usize,
    pub workers: usize,
    /// Untimed epochs first.
    pub warmup_epochs: usize,
    /// Timed epochs.
    pub epochs: usize,
    /// Also make each batch's f32 image tensor (`Batch::images_tensor`) on the consuming thread.
    pub tensor: bool,
}

/// Images per second over the timed epochs.
#[derive(Debug, Clone, Serialize)]
pub struct LoaderBenchResult {
    pub images: usize,
    pub seconds: f64,
    pub images_per_s: f64,
    pub workers: usize,
    pub imgsz: usize,
    pub batch: usize,
    /// Whether the f32 tensors were made too.
    pub tensor: bool,
}

impl LoaderBench {
    pub fn run(&self) -> Result<LoaderBenchResult, YoloError> {
        let index = read_index(&self.dataset, None, SplitName::Train)?;
        let config = LoaderConfig {
            imgsz: self.imgsz,
            batch: self.batch,
            workers: self.workers,
            seed: 0,
            mode: LoaderMode::Train(TrainSchedule {
                augment: TrainAugment::new(&AugmentSection::default(), self.imgsz)?,
                close_mosaic: 0,
                epochs: self.warmup_epochs + self.epochs,
            }),
            cache: CacheMode::None,
            prefetch: 2,
        };
        let loader = Loader::new(&index, config)?;
        for epoch in 0..self.warmup_epochs {
            for batch in loader.epoch(epoch) {
                batch?;
            }
        }
        let start = Instant::now();
        let mut images = 0;
        for epoch in self.warmup_epochs..self.warmup_epochs + self.epochs {
            for batch in loader.epoch(epoch) {
                let batch = batch?;
                images += batch.len();
                if self.tensor {
                    std::hint::black_box(batch.images_tensor::<Cpu>(&Default::default()));
                }
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        Ok(LoaderBenchResult {
            images,
            seconds,
            images_per_s: images as f64 / seconds,
            workers: self.workers,
            imgsz: self.imgsz,
            batch: self.batch,
            tensor: self.tensor,
        })
    }
}
