//! `export --format burn` (issue #14): the model as a Burn record that burn-cuda (a Jetson with no ONNX runtime)
//! and our own `predict`/`val` load as they load any checkpoint, with Conv and BatchNorm folded.
//!
//! The record is a safetensors file in Ultralytics' key layout, which burn-store reads into a [`Yolo`]
//! ([`crate::model::weights::load_ultralytics`]), so the model tree stays the trained one. Every BatchNorm is
//! folded into its conv's weight (w' = w · s, s = γ / √(var + eps)) and left as the identity plus the folded
//! bias: γ = 1, β = β − mean · s, mean = 0, var = 1 − eps, so that `(x − 0) / √(1 − eps + eps) · 1 + β'` is
//! `x + β'`. That keeps one module type for training and inference (no bias-carrying `Conv` variant to train,
//! save or walk) at the cost of one per-channel add, which our CPU kernel folds into the conv anyway. The
//! folding runs in f64 over the state_dict, so each folded weight is the exact value rounded once to f32.
//!
//! The header's metadata (`arch`, `scale`, `nc`, `names`, `imgsz`) describes the model as a checkpoint's does,
//! plus `format = "yolo-burn-fused"`: training refuses such a file ([`refuse_fused`]), whose BatchNorms no
//! longer hold statistics.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use super::ExportError;
use crate::model::conv::BN_EPS;
use crate::model::meta::WeightsMeta;
use crate::model::weights::{read_metadata, ultralytics_bytes};
use crate::model::Yolo;
use crate::YoloError;

/// The metadata key naming what a weights file is, and its value for a fused export.
pub const FORMAT_KEY: &str = "format";
pub const FUSED_FORMAT: &str = "yolo-burn-fused";

/// The default output path: the weights' path with `.fused.safetensors` in place of its extension.
pub fn default_burn_output(weights: &Path) -> PathBuf {
    weights.with_extension("fused.safetensors")
}

/// The bytes of the fused record of `model` (f32): Conv+BN folded as the module doc says, `meta` and
/// `format = "yolo-burn-fused"` in the header.
pub fn export_burn<B: Backend>(
    model: &Yolo<B>,
    meta: &WeightsMeta,
) -> Result<Vec<u8>, ExportError> {
    let model_err = |e: YoloError| ExportError::Model(e.to_string());
    let bytes =
        ultralytics_bytes(model, Path::new("<model>"), &HashMap::new()).map_err(model_err)?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| ExportError::Model(format!("reading the state_dict back: {e}")))?;
    let mut tensors: BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, (v.dtype(), v.shape().to_vec(), v.data().to_vec())))
        .collect();
    let prefixes: Vec<String> = tensors
        .keys()
        .filter_map(|k| k.strip_suffix("bn.running_var").map(str::to_string))
        .collect();
    for prefix in prefixes {
        fold(&mut tensors, &prefix)?;
    }
    let mut metadata = HashMap::new();
    meta.to_metadata(&mut metadata);
    metadata.insert(FORMAT_KEY.into(), FUSED_FORMAT.into());
    let views = tensors
        .iter()
        .map(|(k, (dtype, shape, data))| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|v| (k.clone(), v))
                .map_err(|e| ExportError::Model(format!("{k}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| ExportError::Model(format!("writing the record: {e}")))
}

/// Folds `{prefix}bn.*` into `{prefix}conv.weight` and sets the BatchNorm to the identity plus the bias.
fn fold(
    tensors: &mut BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>,
    prefix: &str,
) -> Result<(), ExportError> {
    let read = |tensors: &BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>, name: &str| {
        let key = format!("{prefix}{name}");
        match tensors.get(&key) {
            Some((Dtype::F32, _, data)) => Ok(data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
                .collect::<Vec<f64>>()),
            Some((dtype, ..)) => Err(ExportError::Model(format!("{key} is {dtype:?}, not F32"))),
            None => Err(ExportError::Model(format!(
                "a BatchNorm at {prefix}bn without {key}"
            ))),
        }
    };
    let [gamma, beta, mean, var, weight] = [
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
        "conv.weight",
    ]
    .map(|name| read(tensors, name));
    let (gamma, beta, mean, var, mut weight) = (gamma?, beta?, mean?, var?, weight?);
    let c2 = gamma.len();
    if [beta.len(), mean.len(), var.len()] != [c2; 3] || c2 == 0 || weight.len() % c2 != 0 {
        return Err(ExportError::Model(format!(
            "{prefix}: BatchNorm of {c2} channels after a conv of {} weights",
            weight.len()
        )));
    }
    let per_out = weight.len() / c2;
    let mut bias = vec![0.0; c2];
    for o in 0..c2 {
        let s = gamma[o] / (var[o] + BN_EPS).sqrt();
        weight[o * per_out..(o + 1) * per_out]
            .iter_mut()
            .for_each(|w| *w *= s);
        bias[o] = beta[o] - mean[o] * s;
    }
    let mut write = |name: &str, values: &[f64]| {
        let bytes = values
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect();
        if let Some(entry) = tensors.get_mut(&format!("{prefix}{name}")) {
            entry.2 = bytes;
        }
    };
    write("conv.weight", &weight);
    write("bn.weight", &vec![1.0; c2]);
    write("bn.bias", &bias);
    write("bn.running_mean", &vec![0.0; c2]);
    write("bn.running_var", &vec![1.0 - BN_EPS; c2]);
    Ok(())
}

/// Whether the safetensors file at `path` is a fused export (its metadata's `format`).
pub fn is_fused(path: &Path) -> Result<bool, YoloError> {
    Ok(read_metadata(path)?
        .get(FORMAT_KEY)
        .is_some_and(|f| f == FUSED_FORMAT))
}

/// An error when `path` is a fused export: its BatchNorms hold no statistics, so it cannot be trained from.
pub fn refuse_fused(path: &Path) -> Result<(), YoloError> {
    if is_fused(path)? {
        return Err(YoloError::WeightsMismatch {
            path: path.into(),
            detail: "an inference-only export (format yolo-burn-fused, BatchNorm folded into the convs): \
                     predict and val run it; train from the checkpoint it was exported from"
                .into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_burn_output_replaces_the_extension() {
        assert_eq!(
            default_burn_output(Path::new("runs/exp/weights/best.safetensors")),
            Path::new("runs/exp/weights/best.fused.safetensors")
        );
    }

    #[test]
    fn refuse_fused_names_the_format_and_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, format: &str| {
            let metadata = HashMap::from([(FORMAT_KEY.to_string(), format.to_string())]);
            let no_tensors: Vec<(String, TensorView)> = Vec::new();
            let path = dir.path().join(name);
            std::fs::write(
                &path,
                safetensors::serialize(no_tensors, Some(metadata)).unwrap(),
            )
            .unwrap();
            path
        };
        let fused = write("a.safetensors", FUSED_FORMAT);
        let err = refuse_fused(&fused).unwrap_err().to_string();
        assert!(
            err.contains("yolo-burn-fused") && err.contains("train from the checkpoint"),
            "{err}"
        );
        refuse_fused(&write("b.safetensors", "other")).unwrap();
    }
}
