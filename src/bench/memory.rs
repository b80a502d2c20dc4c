//! `yolo-burn bench memory`: the bytes of one training step in a precision, as the trainer runs it (compute
//! model, FP32 masters and optimizer state through `amp::MasterWeights`, loss scaling, FP32 gradient
//! accumulation), and the process's peak memory. One precision per process, so that each peak is its own;
//! docs/benchmarks.md compares fp32, fp16 and bf16 side by side.

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, FloatDType, Tensor};
use serde::Serialize;

use crate::amp::{MasterWeights, ScalerConfig};
use crate::backend::BackendJob;
use crate::config::Precision;
use crate::model::{HeadOutput, YoloConfig};
use crate::train::optim::{GroupHyper, Method, Optimizer};

/// What to measure.
#[derive(Debug, Clone)]
pub struct MemoryBench {
    pub model: YoloConfig,
    pub imgsz: usize,
    pub batch: usize,
    pub precision: Precision,
    /// Training steps (forward, backward, optimizer step); the optimizer's state exists from the first.
    pub steps: usize,
}

/// Bytes by kind, and the process's peak resident memory.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryBenchResult {
    pub model: String,
    pub imgsz: usize,
    pub batch: usize,
    pub precision: String,
    /// The compute model's parameters and running statistics, in their float type.
    pub param_bytes: u64,
    /// The FP32 master copy (0 in fp32, where the compute model is the master).
    pub master_bytes: u64,
    /// The gradients one backward returns, in the compute type.
    pub grad_bytes: u64,
    /// Those gradients summed in FP32 for accumulation (0 in fp32, where they are the same tensors).
    pub grad_f32_bytes: u64,
    /// The optimizer's FP32 state (SGD momentum) after the steps.
    pub optimizer_bytes: u64,
    /// Heap in use after the forward pass minus before it (the input batch, already in the compute type,
    /// not counted): what the autodiff graph keeps for backward (glibc's `mallinfo2`; `None` elsewhere).
    pub activation_bytes: Option<u64>,
    /// The process's peak resident set (`getrusage` `ru_maxrss`; `None` off Linux with glibc).
    pub peak_rss_bytes: Option<u64>,
    /// Images per second over the steps after the first (all of them when there is one), for
    /// scripts/gpu_check.sh; the CPU's speed comparisons are `bench` and scripts/bench_cpu_forward.py.
    pub train_img_per_s: f64,
    /// Optimizer steps skipped for non-finite gradients (fp16 backs off from 2^16 at first).
    pub skipped_steps: u64,
}

impl BackendJob for MemoryBench {
    type Output = MemoryBenchResult;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> MemoryBenchResult {
        B::seed(&device, 0);
        let model = self.model.init::<B>(&device);
        let optimizer = Optimizer::new(Method::Sgd, 10.0);
        let (mut amp, mut model) =
            MasterWeights::new(model, self.precision, optimizer, ScalerConfig::default());
        let shape = [self.batch, 3, self.imgsz, self.imgsz];
        let hyper = GroupHyper {
            lr: 1e-3,
            momentum: 0.9,
            weight_decay: 5e-4,
        };
        let mut activation_bytes = None;
        let mut grad_bytes = 0;
        let mut grad_f32_bytes = 0;
        let steps = self.steps.max(1);
        let mut timed = std::time::Duration::ZERO;
        for step in 0..steps {
            let started = std::time::Instant::now();
            // A fresh f32 batch each step, cast as the trainer casts the loader's (the f32 copy is not kept).
            let images = Tensor::<B, 4>::random(shape, Distribution::Uniform(0.0, 1.0), &device);
            let images = amp.to_compute(images);
            let before = heap_in_use();
            let out = model.forward(images);
            let after = heap_in_use();
            activation_bytes = before.zip(after).map(|(b, a)| a.saturating_sub(b));
            // A loss that touches every output, in f32 as the trainer's; means keep the scaled gradients of
            // fp16 in range.
            let HeadOutput { boxes, scores, .. } = out;
            let loss = crate::kernels::cast(boxes, FloatDType::F32).mean()
                + crate::kernels::cast(scores, FloatDType::F32).mean();
            let grads = GradientsParams::from_grads(amp.scale_loss(loss).backward(), &model);
            grad_bytes = grads_bytes(&model, &grads);
            let grads = amp.grads_to_f32(&model, grads);
            grad_f32_bytes = if amp.masters().is_some() {
                grads_bytes(&model, &grads)
            } else {
                0
            };
            let mut accumulator = GradientsAccumulator::new();
            accumulator.accumulate(&model, grads);
            let (stepped, _) = amp.step(model, accumulator.grads(), [hyper; 3]);
            model = stepped;
            if step > 0 || steps == 1 {
                timed += started.elapsed();
            }
        }
        let timed_steps = if steps == 1 { 1 } else { steps - 1 };
        MemoryBenchResult {
            model: self.model.yaml_name(),
            imgsz: self.imgsz,
            batch: self.batch,
            precision: self.precision.to_string(),
            param_bytes: module_bytes(&model.valid()),
            master_bytes: amp.masters().map_or(0, |m| module_bytes(&m.valid())),
            grad_bytes,
            grad_f32_bytes,
            optimizer_bytes: amp
                .optimizer()
                .to_record()
                .slots
                .iter()
                .map(|s| {
                    [&s.first, &s.second]
                        .into_iter()
                        .flatten()
                        .map(|v| 4 * v.len() as u64)
                        .sum::<u64>()
                })
                .sum(),
            activation_bytes,
            peak_rss_bytes: peak_rss(),
            train_img_per_s: (timed_steps * self.batch) as f64 / timed.as_secs_f64().max(1e-9),
            skipped_steps: amp.skipped_steps(),
        }
    }
}

/// Bytes of every float tensor of a module, in its own type.
fn module_bytes<B: Backend, M: Module<B>>(module: &M) -> u64 {
    struct Sum(u64);
    impl<B: Backend> ModuleVisitor<B> for Sum {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let t = param.val();
            self.0 += (t.shape().num_elements() * t.dtype().size()) as u64;
        }
    }
    let mut sum = Sum(0);
    module.visit(&mut sum);
    sum.0
}

/// Bytes of the gradients `grads` holds for `module`'s parameters.
fn grads_bytes<AB: AutodiffBackend, M: AutodiffModule<AB>>(
    module: &M,
    grads: &GradientsParams,
) -> u64 {
    struct Sum<'a>(u64, &'a GradientsParams);
    impl<AB: AutodiffBackend> ModuleVisitor<AB> for Sum<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
            if let Some(g) = self.1.get::<AB::InnerBackend, D>(param.id) {
                self.0 += (g.shape().num_elements() * g.dtype().size()) as u64;
            }
        }
    }
    let mut sum = Sum(0, grads);
    module.visit(&mut sum);
    sum.0
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap_in_use() -> Option<u64> {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let info = unsafe { libc::mallinfo2() };
    Some((info.uordblks + info.hblkhd) as u64)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap_in_use() -> Option<u64> {
    None
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn peak_rss() -> Option<u64> {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0;
    ok.then(|| usage.ru_maxrss as u64 * 1024)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn peak_rss() -> Option<u64> {
    None
}
