//! The closed sets of words a config value may take (`arch = "yolo11"`, `precision = "bf16"`, …).
//!
//! Each enum is written in TOML as its lowercase name (or Ultralytics' spelling, e.g. `"SGD"`), is read
//! case-insensitively, and lists its allowed values in errors through [`NAMES`](Arch::NAMES).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A word that is not one of an enum's allowed values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`: expected one of {}", quote_list(.allowed))]
pub struct ParseChoiceError {
    /// What was being parsed ("arch", "precision", …).
    pub what: &'static str,
    /// The word given.
    pub value: String,
    /// Every accepted word, in its canonical spelling.
    pub allowed: &'static [&'static str],
}

/// `"a", "b", "c"`: the allowed values as they would be written in TOML.
pub(crate) fn quote_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Defines a fieldless enum whose TOML form is a fixed word per variant, with `ALL`, `NAMES`, `as_str`,
/// `Display`, case-insensitive `FromStr`, and serde as that word.
macro_rules! choice_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            /// The TOML word of every variant, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text,)+];

            /// The word written in TOML for this variant.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseChoiceError;

            /// Case-insensitive: `"SGD"`, `"sgd"` and `"Sgd"` are the same optimizer.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.trim();
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(s))
                    .ok_or_else(|| ParseChoiceError {
                        what: $what,
                        value: s.to_string(),
                        allowed: $name::NAMES,
                    })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let word = String::deserialize(deserializer)?;
                word.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

choice_enum! {
    /// The model family: the backbone/neck/head layout of `ultralytics/cfg/models/v8/yolov8.yaml` or
    /// `ultralytics/cfg/models/11/yolo11.yaml`.
    #[derive(Default)]
    pub enum Arch ("arch") {
        /// YOLOv8: C2f blocks, SPPF (Ultralytics 8.0, 2023).
        #[default]
        Yolov8 => "yolov8",
        /// YOLO11: C3k2 blocks, SPPF + C2PSA (Ultralytics 8.3, 2024).
        Yolo11 => "yolo11",
    }
}

choice_enum! {
    /// The model size: a row `[depth, width, max_channels]` of the `scales:` table in the model yaml.
    #[derive(Default)]
    pub enum ScaleName ("scale") {
        /// nano
        #[default]
        N => "n",
        /// small
        S => "s",
        /// medium
        M => "m",
        /// large
        L => "l",
        /// extra large
        X => "x",
    }
}

choice_enum! {
    /// The float type of the model's forward and backward pass (the optimizer's master weights stay FP32).
    #[derive(Default)]
    pub enum Precision ("precision") {
        /// 32-bit floats everywhere.
        #[default]
        Fp32 => "fp32",
        /// IEEE half precision, with dynamic loss scaling (torch.amp.GradScaler semantics).
        Fp16 => "fp16",
        /// bfloat16: FP32's range, so no loss scaling is needed.
        Bf16 => "bf16",
    }
}

choice_enum! {
    /// Which implementation runs the model's `Conv` blocks on the CPU (see `kernels`).
    #[derive(Default)]
    pub enum Kernels ("kernels") {
        /// Ours (src/kernels) on burn-flex in fp32; Burn's modules on other backends and float types.
        #[default]
        Fast => "fast",
        /// Burn's `Conv2d`, `BatchNorm` and `silu` as shipped, for comparison.
        Burn => "burn",
    }
}

choice_enum! {
    /// The optimizer, spelled as in Ultralytics' `optimizer=` (read case-insensitively).
    #[derive(Default)]
    pub enum OptimizerKind ("optimizer") {
        /// Ultralytics' rule (ultralytics/engine/trainer.py `build_optimizer`): AdamW with a fitted lr for
        /// short runs (≤ 10 000 iterations), MuSGD with lr 0.01 otherwise; `lr0` and `momentum` are then ignored.
        #[default]
        Auto => "auto",
        /// SGD with Nesterov momentum.
        Sgd => "SGD",
        /// Adam with decoupled weight decay.
        Adamw => "AdamW",
        /// Ultralytics' MuSGD: Muon's orthogonalised update plus SGD on conv weights, SGD elsewhere.
        MuSgd => "MuSGD",
    }
}

choice_enum! {
    /// Where decoded training images are kept between epochs. Ultralytics' `cache=False/True` are accepted
    /// as `"none"`/`"ram"`.
    #[derive(Default)]
    pub enum CacheMode ("cache") {
        /// Decode images from their files; training keeps Ultralytics' buffer of the last
        /// `min(images, batch · 8, 1000)` decoded images for its mosaics.
        #[default]
        None => "none",
        /// Keep decoded, resized images in memory.
        Ram => "ram",
        /// Keep decoded, resized images as raw files beside the dataset.
        Disk => "disk",
    }
}

choice_enum! {
    /// The dataset split that `val` evaluates.
    #[derive(Default)]
    pub enum Split ("split") {
        /// The dataset's `train` images.
        Train => "train",
        /// The dataset's `val` images.
        #[default]
        Val => "val",
        /// The dataset's `test` images.
        Test => "test",
    }
}

choice_enum! {
    /// The file format that `export` writes.
    #[derive(Default)]
    pub enum ExportFormat ("format") {
        /// An ONNX graph (Conv+BN fused), for onnxruntime, TensorRT and DeepStream.
        #[default]
        Onnx => "onnx",
        /// A Burn record (safetensors, Conv+BN folded, f32) that `predict` and `val` load, for burn-cuda
        /// without ONNX.
        Burn => "burn",
    }
}

/// The words `train.device` accepts (what `backend::BackendChoice` parses), besides `cuda:N` and a bare GPU
/// index `N`.
pub const DEVICE_WORDS: &[&str] = &["cpu", "flex", "ndarray", "cuda", "gpu"];

/// `train.device` in its canonical spelling: lowercase, and a bare GPU index `N` (Ultralytics' `device=0`) as
/// `cuda:N`. `None` if it is not a device.
pub(crate) fn canonical_device(text: &str) -> Option<String> {
    let word = text.trim().to_ascii_lowercase();
    let is_index = |digits: &str| {
        !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && digits.parse::<usize>().is_ok()
    };
    let cuda_n = word.strip_prefix("cuda:").is_some_and(is_index);
    if DEVICE_WORDS.contains(&word.as_str()) || cuda_n {
        Some(word)
    } else if is_index(&word) {
        Some(format!("cuda:{word}"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choice_names_round_trip_through_from_str() {
        for arch in Arch::ALL {
            assert_eq!(arch.to_string().parse::<Arch>(), Ok(*arch));
        }
        for scale in ScaleName::ALL {
            assert_eq!(scale.to_string().parse::<ScaleName>(), Ok(*scale));
        }
        for kind in OptimizerKind::ALL {
            assert_eq!(kind.as_str().parse::<OptimizerKind>(), Ok(*kind));
        }
    }

    #[test]
    fn choice_from_str_ignores_case() {
        assert_eq!("sgd".parse::<OptimizerKind>(), Ok(OptimizerKind::Sgd));
        assert_eq!("ADAMW".parse::<OptimizerKind>(), Ok(OptimizerKind::Adamw));
        assert_eq!("YOLO11".parse::<Arch>(), Ok(Arch::Yolo11));
        assert_eq!("X".parse::<ScaleName>(), Ok(ScaleName::X));
    }

    #[test]
    fn choice_unknown_word_lists_allowed_values() {
        let err = "yolov5".parse::<Arch>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown arch `yolov5`: expected one of \"yolov8\", \"yolo11\""
        );
    }

    #[test]
    fn canonical_device_accepts_backend_words_and_index() {
        assert_eq!(canonical_device("cpu").as_deref(), Some("cpu"));
        assert_eq!(canonical_device("NdArray").as_deref(), Some("ndarray"));
        assert_eq!(canonical_device("CUDA").as_deref(), Some("cuda"));
        assert_eq!(canonical_device("cuda:3").as_deref(), Some("cuda:3"));
        assert_eq!(canonical_device("1").as_deref(), Some("cuda:1"));
        assert_eq!(canonical_device("cuda:"), None);
        assert_eq!(canonical_device("mps"), None);
        assert_eq!(canonical_device("cuda:-1"), None);
    }
}
