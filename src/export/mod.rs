//! `export`: the inference graph of a trained model written as ONNX that TensorRT 8.5+ and DeepStream read as
//! is (issue #14): Conv and BatchNorm folded, SiLU as `x · sigmoid(x)`, only the operators of
//! [`TENSORRT_85_OPS`], and one of three output heads. `--format burn` writes a Burn record of the folded
//! model instead ([`export_burn`], module `record`).
//!
//! The entry is [`export_onnx`]; [`ExportOptions::validate`] refuses what TensorRT or the graph cannot take,
//! each error naming the option and its allowed values.

mod fuse;
pub mod onnx;
mod record;

use std::path::Path;

use burn::tensor::backend::Backend;

pub use fuse::{fuse_conv_bn, plain_conv, FusedConv};
pub use onnx::{ir_version, Dim, TENSORRT_85_OPS};
pub use record::{
    default_burn_output, export_burn, is_fused, refuse_fused, FORMAT_KEY, FUSED_FORMAT,
};

use crate::config::{Arch, ScaleName};
use crate::model::Yolo;

/// Opsets we write: 13 is the first with `Split` sizes as an input (what our builders emit); 17 is the last
/// TensorRT 8.5 reads, and the last where `ReduceMax` takes its axes as an attribute.
pub const OPSETS: std::ops::RangeInclusive<i64> = 13..=17;

/// What `export` can refuse.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// An option is out of range; the message names it and the allowed values.
    #[error("{0}")]
    InvalidOption(String),
    /// The model could not be walked (a structure the exporter does not know, an unreadable tensor).
    #[error("cannot export the model: {0}")]
    Model(String),
}

/// Element type of weights and computation inside the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportPrecision {
    Fp32,
    /// f16 initializers and compute; the input and outputs stay f32 (Cast nodes at both ends).
    Fp16,
}

impl ExportPrecision {
    /// The `precision` metadata value.
    pub fn name(self) -> &'static str {
        match self {
            ExportPrecision::Fp32 => "fp32",
            ExportPrecision::Fp16 => "fp16",
        }
    }
}

/// The batch dimension of the input and outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSize {
    Static(usize),
    /// A symbolic `batch` dimension; TensorRT then needs an optimisation profile.
    Dynamic,
}

/// The NMS thresholds baked into the `EfficientNMS_TRT` node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NmsOptions {
    /// IoU above which a lower-scored box of the same class is suppressed.
    pub iou: f64,
    /// Minimum class score kept.
    pub conf: f64,
    /// Detections kept per image (the outputs' second dimension).
    pub max_det: usize,
}

/// What the graph outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExportHead {
    /// `output0 [B, 4 + nc, A]`: cx, cy, w, h in input pixels, then sigmoid class scores (Ultralytics' own).
    Raw,
    /// `output0 [B, A, 6]`: x1, y1, x2, y2, best class score, its class index as a float: what
    /// DeepStream-Yolo's `NvDsInferParseYoloE` reads (its `NvDsInferParseYolo` reads cx, cy, w, h in the versions
    /// checked; docs/jetson.md says how to tell).
    DeepStream,
    /// Raw boxes and scores through TensorRT's `EfficientNMS_TRT` plugin: `num_dets`, `det_boxes`,
    /// `det_scores`, `det_classes`.
    Nms(NmsOptions),
}

impl ExportHead {
    /// The `head` metadata value and CLI name.
    pub fn name(&self) -> &'static str {
        match self {
            ExportHead::Raw => "raw",
            ExportHead::DeepStream => "deepstream",
            ExportHead::Nms(_) => "nms",
        }
    }
}

/// How to export, and what the metadata says about the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    /// ONNX opset, in [`OPSETS`].
    pub opset: i64,
    pub precision: ExportPrecision,
    pub batch: BatchSize,
    /// Input `[H, W]`, multiples of 32.
    pub imgsz: [usize; 2],
    pub head: ExportHead,
    /// For the metadata: the model's family and size, and its class names (one per class).
    pub arch: Arch,
    pub scale: ScaleName,
    pub names: Vec<String>,
}

impl ExportOptions {
    /// Refuses what the exporter or TensorRT 8.5 cannot take, naming the option and the allowed values.
    pub fn validate(&self) -> Result<(), ExportError> {
        let bad = |msg: String| Err(ExportError::InvalidOption(msg));
        if !OPSETS.contains(&self.opset) {
            return bad(format!(
                "--opset {} is not supported: use 13 to 17 (13 is the first with Split sizes as an input, 17 the \
                 last TensorRT 8.5 reads)",
                self.opset
            ));
        }
        for side in self.imgsz {
            if side < 32 || side % 32 != 0 {
                let [h, w] = self.imgsz;
                return bad(format!(
                    "--imgsz {h} {w}: each side must be a multiple of 32 (the model's largest stride) and at \
                     least 32; use 640 or another multiple of 32"
                ));
            }
        }
        if self.batch == BatchSize::Static(0) {
            return bad("--batch 0: use 1 or more, or --dynamic".into());
        }
        if let ExportHead::Nms(nms) = &self.head {
            if !(0.0..=1.0).contains(&nms.iou) {
                return bad(format!("--iou {}: use a value from 0 to 1", nms.iou));
            }
            if !(0.0..=1.0).contains(&nms.conf) {
                return bad(format!("--conf {}: use a value from 0 to 1", nms.conf));
            }
            // EfficientNMS_TRT's top-k runs in one CUDA block: TensorRT caps max_output_boxes at 4096.
            if !(1..=4096).contains(&nms.max_det) {
                return bad(format!("--max-det {}: use 1 to 4096", nms.max_det));
            }
        }
        Ok(())
    }
}

/// A graph input or output as written: name, element type and dimensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoShape {
    pub name: String,
    /// `"f32"` or `"int32"`.
    pub dtype: &'static str,
    pub dims: Vec<Dim>,
}

impl std::fmt::Display for IoShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dims: Vec<String> = self.dims.iter().map(Dim::to_string).collect();
        write!(f, "{} {} [{}]", self.name, self.dtype, dims.join(", "))
    }
}

/// An encoded ONNX model and its interface.
#[derive(Debug, Clone)]
pub struct ExportedOnnx {
    /// The serialized `ModelProto`.
    pub bytes: Vec<u8>,
    pub input: IoShape,
    pub outputs: Vec<IoShape>,
}

/// Writes `model` as an ONNX graph. The model's weights are read as they are (eval-mode BatchNorm: running
/// statistics), so any backend works.
///
/// # Shapes
/// input `images [B, 3, H, W]` f32 in 0..1 → the outputs of [`ExportHead`], A = Σ (H/s)·(W/s) over s = 8, 16, 32.
pub fn export_onnx<B: Backend>(
    model: &Yolo<B>,
    options: &ExportOptions,
) -> Result<ExportedOnnx, ExportError> {
    options.validate()?;
    if options.names.len() != model.head().nc {
        return Err(ExportError::InvalidOption(format!(
            "{} class names for a model of {} classes",
            options.names.len(),
            model.head().nc
        )));
    }
    onnx::build(model, options)
}

/// The default output path: the weights' path with `.onnx` (`.fp16.onnx` for fp16) in place of its extension.
pub fn default_output(weights: &Path, precision: ExportPrecision) -> std::path::PathBuf {
    weights.with_extension(match precision {
        ExportPrecision::Fp32 => "onnx",
        ExportPrecision::Fp16 => "fp16.onnx",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ExportOptions {
        ExportOptions {
            opset: 17,
            precision: ExportPrecision::Fp32,
            batch: BatchSize::Static(1),
            imgsz: [640, 640],
            head: ExportHead::Raw,
            arch: Arch::Yolov8,
            scale: ScaleName::N,
            names: vec!["a".into()],
        }
    }

    #[test]
    fn validate_opset_outside_13_to_17_names_the_range() {
        for opset in [12, 18] {
            let err = ExportOptions { opset, ..options() }.validate().unwrap_err();
            assert!(err.to_string().contains("use 13 to 17"), "{err}");
        }
        for opset in OPSETS {
            ExportOptions { opset, ..options() }.validate().unwrap();
        }
    }

    #[test]
    fn validate_imgsz_not_multiple_of_32_is_refused() {
        for imgsz in [[640, 650], [0, 640], [16, 16]] {
            let err = ExportOptions { imgsz, ..options() }.validate().unwrap_err();
            assert!(err.to_string().contains("multiple of 32"), "{err}");
        }
    }

    #[test]
    fn default_output_replaces_the_extension() {
        let p = Path::new("runs/exp/weights/best.safetensors");
        assert_eq!(
            default_output(p, ExportPrecision::Fp32),
            Path::new("runs/exp/weights/best.onnx")
        );
        assert_eq!(
            default_output(p, ExportPrecision::Fp16),
            Path::new("runs/exp/weights/best.fp16.onnx")
        );
    }

    #[test]
    fn ir_version_follows_the_onnx_release_of_each_opset() {
        assert_eq!(OPSETS.map(ir_version).collect::<Vec<_>>(), [7, 7, 8, 8, 8]);
    }
}
