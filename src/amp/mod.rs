//! Mixed precision: the network computes in f16 or bf16 while the loss scale, the master weights and the
//! optimizer state stay FP32 (Micikevicius et al., 2018, "Mixed Precision Training"). Burn has no automatic
//! mixed precision of its own (tracel-ai/burn#5696), so it lives here, between the trainer and the optimizer:
//!
//! - [`LossScaler`] (`scaler.rs`): torch.amp.GradScaler's dynamic loss scale, for fp16;
//! - [`MasterWeights`] (`master.rs`): FP32 masters around `train::optim::Optimizer` (SGD, AdamW, MuSGD):
//!   unscale, finite check, clip, step, and the masters rounded back into the compute model.
//!
//! What stays FP32 on purpose, and why (docs/benchmarks.md has the measurements):
//! - BatchNorm's batch statistics, normalisation and running statistics: a variance summed over a whole batch
//!   of activations in half precision loses most of its digits (our CPU kernels widen each conv output to f32
//!   for this and store the running statistics in f32);
//! - the loss and the assigner: the head's outputs are cast to f32 first, so IoUs, the DFL softmax and the BCE
//!   sums run in f32, as autocast runs `binary_cross_entropy_with_logits` and reductions in f32;
//! - the gradient accumulation over `nbs`, the unscale, the clipping norm and the optimizer step;
//! - the EMA, validation and the saved weights (`weights/last`, `weights/best`), built from the masters.
//!
//! This module knows nothing of YOLO, the loss or the data: it works on any Burn module.

pub mod master;
pub mod scaler;

pub use master::{cast_module, compute_dtype, AmpState, MasterWeights, Tensors};
pub use scaler::{LossScaler, ScalerConfig, ScalerState};

use crate::backend::BackendChoice;
use crate::config::Precision;
use crate::YoloError;

/// Refuses a precision the backend cannot compute in, naming the two keys and the device that can.
pub fn check_backend(device: BackendChoice, precision: Precision) -> Result<(), YoloError> {
    match (device, precision) {
        (BackendChoice::NdArray, Precision::Fp16 | Precision::Bf16) => {
            Err(YoloError::InvalidConfig(format!(
                "train.precision = \"{precision}\" cannot run on train.device = \"ndarray\": burn-ndarray has no \
                 f16 or bf16 tensors; use train.device = \"cpu\" (burn-flex) or \"cuda\", or train.precision = \
                 \"fp32\""
            )))
        }
        _ => Ok(()),
    }
}

/// Refuses loss-scaler settings that would be ignored: the scaler runs only in fp16, so a non-default
/// `train.amp_*` scaler key with another precision is an error naming the key, rather than accepted and ignored.
pub fn check_scaler_keys(train: &crate::config::TrainSection) -> Result<(), YoloError> {
    if train.precision == Precision::Fp16 {
        return Ok(());
    }
    let defaults = crate::config::TrainSection::default();
    let set = [
        (
            "amp_init_scale",
            train.amp_init_scale != defaults.amp_init_scale,
        ),
        (
            "amp_growth_factor",
            train.amp_growth_factor != defaults.amp_growth_factor,
        ),
        (
            "amp_backoff_factor",
            train.amp_backoff_factor != defaults.amp_backoff_factor,
        ),
        (
            "amp_growth_interval",
            train.amp_growth_interval != defaults.amp_growth_interval,
        ),
    ];
    match set.iter().find(|(_, changed)| *changed) {
        Some((key, _)) => Err(YoloError::InvalidConfig(format!(
            "train.{key} is set, but the loss scaler runs only with train.precision = \"fp16\" (this run is \"{}\"): \
             remove train.{key} or use train.precision = \"fp16\"",
            train.precision
        ))),
        None => Ok(()),
    }
}

/// One line for the run header: the precision, and whether this device has a fast path for it.
pub fn describe(device: BackendChoice, precision: Precision) -> String {
    let fast = match (device, precision) {
        (_, Precision::Fp32) => return "precision fp32".to_string(),
        (BackendChoice::Cuda(_), _) => "tensor cores (WMMA, f32 accumulation) on CUDA".to_string(),
        (_, p) => cpu_half_support(p),
    };
    let scaling = match precision {
        Precision::Fp16 => "dynamic loss scaling",
        _ => "no loss scaling (bf16 has FP32's range)",
    };
    format!("precision {precision} with FP32 master weights, {scaling}; {fast}")
}

/// Whether this CPU multiplies the half type natively; without it the kernels widen to f32, so half precision
/// saves memory here, not time.
fn cpu_half_support(precision: Precision) -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let (native, what) = match precision {
            Precision::Bf16 => (
                std::arch::is_x86_feature_detected!("avx512bf16"),
                "AVX512_BF16",
            ),
            _ => (
                std::arch::is_x86_feature_detected!("avx512fp16"),
                "AVX512-FP16",
            ),
        };
        if native {
            format!("this CPU has {what}, but our kernels still widen to f32: it saves memory, not time")
        } else {
            format!("this CPU has no {what}: it saves memory, not time")
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = precision;
        "no native half-precision path on this CPU: it saves memory, not time".to_string()
    }
}
