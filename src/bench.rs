//! `yolo-burn bench`: forward and forward+backward throughput of a model on a backend. Timings belong here
//! and in docs/benchmarks.md, never in tests.

pub mod conv_stack;
pub mod loader;
pub mod memory;

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Tensor};
use serde::Serialize;

use crate::amp::{cast_module, compute_dtype, Tensors};
use crate::backend::BackendJob;
use crate::config::Precision;
use crate::model::YoloConfig;

/// What to time.
#[derive(Debug, Clone)]
pub struct ModelBench {
    pub model: YoloConfig,
    pub imgsz: usize,
    pub batch: usize,
    /// Untimed iterations first (allocator and kernel caches warm up).
    pub warmup: usize,
    pub iters: usize,
    /// The model's and the input's float type (fp32, or a half type as the trainer's compute model holds it:
    /// every float tensor, BatchNorm's running statistics included, with the head outputs cast to f32 for the
    /// loss).
    pub precision: Precision,
}

/// Milliseconds per image and images per second, for eval forward and train forward+backward.
#[derive(Debug, Clone, Serialize)]
pub struct ModelBenchResult {
    pub model: String,
    pub imgsz: usize,
    pub batch: usize,
    pub iters: usize,
    pub threads: usize,
    pub precision: String,
    pub forward_ms_per_img: f64,
    pub forward_img_per_s: f64,
    pub train_ms_per_img: f64,
    pub train_img_per_s: f64,
}

impl BackendJob for ModelBench {
    type Output = ModelBenchResult;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> ModelBenchResult {
        B::seed(&device, 0);
        let model = self.model.init::<B>(&device);
        let shape = [self.batch, 3, self.imgsz, self.imgsz];
        let images = Tensor::<B, 4>::random(shape, Distribution::Uniform(0.0, 1.0), &device);
        let dtype = compute_dtype(self.precision);
        let (model, images) = match self.precision {
            Precision::Fp32 => (model, images),
            _ => (
                cast_module(model, dtype, Tensors::for_backend::<B>()),
                crate::kernels::cast(images, dtype),
            ),
        };
        let f32 = burn::tensor::FloatDType::F32;

        // Eval mode: the inner backend, BatchNorm on running statistics, no graph; decoded boxes as Ultralytics'
        // eval forward returns them.
        let eval_model = model.valid();
        let eval_images = images.clone().inner();
        let forward = || {
            let _ = eval_model.predict(eval_images.clone()).sum().into_scalar();
        };
        let forward_s = time(self.warmup, self.iters, forward);

        // Train mode: batch statistics, backward of a scalar touching every head output (as a loss would), the
        // outputs cast to f32 as the trainer casts them for its loss.
        let train_step = || {
            let out = model.forward(images.clone());
            let (boxes, scores) = (
                crate::kernels::cast(out.boxes, f32),
                crate::kernels::cast(out.scores, f32),
            );
            let grads = (boxes.sum() + scores.sum()).backward();
            drop(grads);
        };
        let train_s = time(self.warmup, self.iters, train_step);

        let per_img = |s: f64| s * 1e3 / self.batch as f64;
        ModelBenchResult {
            model: self.model.yaml_name(),
            imgsz: self.imgsz,
            batch: self.batch,
            iters: self.iters,
            threads: rayon_threads(),
            precision: self.precision.as_str().to_string(),
            forward_ms_per_img: per_img(forward_s),
            forward_img_per_s: self.batch as f64 / forward_s,
            train_ms_per_img: per_img(train_s),
            train_img_per_s: self.batch as f64 / train_s,
        }
    }
}

/// Mean seconds per call after `warmup` untimed calls.
fn time(warmup: usize, iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        f();
    }
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_secs_f64() / iters.max(1) as f64
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
