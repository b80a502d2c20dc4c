//! The library's error type. The binary wraps it with `anyhow` context; nothing here panics on user input.

use std::path::PathBuf;

/// Everything the library can refuse, each variant naming what the user must fix.
#[derive(Debug, thiserror::Error)]
pub enum YoloError {
    /// A config file or `--set` override is malformed; the message names the key and the allowed values.
    #[error("{0}")]
    InvalidConfig(String),
    /// A weights file does not fit the model built from the config.
    #[error("weights {path} do not fit the model: {detail}")]
    WeightsMismatch { path: PathBuf, detail: String },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A batch's targets are inconsistent (lengths, image index, class id, or a non-finite box).
    #[error("invalid targets: {0}")]
    InvalidTargets(String),
    /// A dataset item is bad and `data.strict = true` (or the dataset as a whole is unusable).
    #[error("{path}{}: {detail}", line.map(|l| format!(":{l}")).unwrap_or_default(), path = path.display())]
    Dataset {
        path: PathBuf,
        line: Option<usize>,
        detail: String,
    },
    /// Training stopped because too many optimizer steps in a row had non-finite gradients.
    #[error("{0}")]
    Diverged(String),
    /// A safetensors file could not be parsed or written.
    #[error("{path}: {detail}")]
    Safetensors { path: PathBuf, detail: String },
    /// A picture (a plot, an annotated image) could not be drawn.
    #[error("drawing {what}: {detail}")]
    Plot { what: String, detail: String },
    /// An exported ONNX file cannot be run by `val`/`predict` (not ours, the `nms` head, or a graph tract
    /// refuses).
    #[error(transparent)]
    Onnx(#[from] crate::predict::onnx::OnnxError),
}
