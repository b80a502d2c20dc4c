//! The one place where a runtime choice (`train.device`, `--backend`) becomes a concrete Burn backend.
//!
//! Everything else is generic over `B: Backend` / `B: AutodiffBackend`; callers wrap their work in a
//! [`BackendJob`] and hand it to [`dispatch`].

use std::fmt;
use std::str::FromStr;

use burn::backend::Autodiff;
use burn::tensor::backend::AutodiffBackend;

/// The default CPU backend: burn-flex, which measured 10–20× faster than burn-ndarray on a YOLO conv stack
/// (burn-ndarray's input-gradient conv is a scalar loop) and is the only Burn CPU backend that computes in f16.
pub type Cpu = burn::backend::Flex;
/// burn-ndarray, kept for comparison behind the `ndarray` feature.
#[cfg(feature = "ndarray")]
pub type NdArray = burn::backend::NdArray;
/// burn-cuda, behind the `cuda` feature.
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;

/// A backend the binary can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// burn-flex on the CPU (the default).
    Flex,
    /// burn-ndarray on the CPU (feature `ndarray`).
    NdArray,
    /// burn-cuda on GPU `index` (feature `cuda`).
    Cuda(usize),
}

impl BackendChoice {
    /// Names accepted on the command line and in `train.device`.
    pub const ALLOWED: &'static str = "cpu, flex, ndarray, cuda, cuda:N";
}

impl FromStr for BackendChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "cpu" | "flex" => Ok(Self::Flex),
            "ndarray" => Ok(Self::NdArray),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|i| i.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("unknown device `{text}`; allowed: {}", Self::ALLOWED)),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flex => write!(f, "cpu (burn-flex)"),
            Self::NdArray => write!(f, "cpu (burn-ndarray)"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// Work that runs on whichever backend [`dispatch`] picks.
pub trait BackendJob {
    type Output;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output;
}

/// Runs `job` on the chosen backend, or says which cargo feature the binary lacks.
pub fn dispatch<J>(choice: BackendChoice, job: J) -> Result<J::Output, crate::YoloError>
where
    J: BackendJob + Send,
    J::Output: Send,
{
    match choice {
        BackendChoice::Flex => Ok(on_cpu_pool(|| {
            job.run::<Autodiff<Cpu>>(Default::default())
        })),
        #[cfg(feature = "ndarray")]
        BackendChoice::NdArray => Ok(on_cpu_pool(|| {
            job.run::<Autodiff<NdArray>>(Default::default())
        })),
        #[cfg(feature = "cuda")]
        BackendChoice::Cuda(index) => {
            check_cuda_toolkit()?;
            Ok(job.run::<Autodiff<Cuda>>(burn::backend::cuda::CudaDevice::new(index)))
        }
        #[allow(unreachable_patterns)]
        other => Err(crate::YoloError::InvalidConfig(format!(
            "device {other} is not compiled into this binary; rebuild with `cargo build --release --features {}`",
            if matches!(other, BackendChoice::NdArray) { "ndarray" } else { "cuda" }
        ))),
    }
}

/// Runs a CPU job on a thread of rayon's pool, so every parallel loop of the CPU kernels starts on a pool thread
/// instead of waking the pool from outside and sleeping until it finishes. With one thread that hand-off per op
/// was ~6 % of a YOLOv8n train step (`bench` at 320, alternating runs: 104.6 / 120.9 / 106.4 ms per image
/// outside the pool, 98.7 / 95.1 / 99.8 inside); with two, 0–3 %.
///
/// Safe from deadlock because nothing else waits on the pool: the data loader's threads are plain threads
/// that never call rayon (its decoders do not either), so the job blocking on them holds no work they need.
fn on_cpu_pool<R: Send>(job: impl FnOnce() -> R + Send) -> R {
    init_cpu_pool();
    rayon::scope(|_| job())
}

/// Builds rayon's global pool with 8 MiB stacks, if nothing has built it yet (the binary calls this first
/// thing, before any parallel loop would build the default one). A pool thread's stack is otherwise the
/// platform default, 2 MiB, and [`dispatch`] moves the CPU job, which used to have the main thread's 8 MiB,
/// onto one; autodiff's graph walks recurse.
pub fn init_cpu_pool() {
    // `Err` means the pool already exists; it is used as it is.
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(8 << 20)
        .build_global();
}

/// burn-cuda compiles kernels at run time with NVRTC and needs the CUDA headers; without them it panics deep
/// inside cubecl. Check first and say what to set (see docs/GPU.md in the shared reference folder).
#[cfg(feature = "cuda")]
fn check_cuda_toolkit() -> Result<(), crate::YoloError> {
    let candidates = std::env::var_os("CUDA_PATH")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain(["/usr/local/cuda", "/opt/cuda"].map(std::path::PathBuf::from));
    for root in candidates {
        if root.join("include").join("cuda_runtime.h").exists() {
            return Ok(());
        }
    }
    Err(crate::YoloError::InvalidConfig(
        "CUDA headers not found: set CUDA_PATH to a CUDA toolkit (with include/cuda_runtime.h) and put its \
         lib folder on LD_LIBRARY_PATH"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `train.device` is validated by the config's word list and parsed here; the two must not drift apart.
    #[test]
    fn every_device_word_the_config_accepts_parses() {
        for word in crate::config::DEVICE_WORDS {
            assert!(word.parse::<BackendChoice>().is_ok(), "{word}");
        }
    }

    #[test]
    fn device_names_parse() {
        assert_eq!("cpu".parse::<BackendChoice>(), Ok(BackendChoice::Flex));
        assert_eq!(
            "cuda:1".parse::<BackendChoice>(),
            Ok(BackendChoice::Cuda(1))
        );
        assert!("tpu"
            .parse::<BackendChoice>()
            .unwrap_err()
            .contains("allowed"));
    }
}
