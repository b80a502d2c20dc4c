//! Ultralytics checkpoints as safetensors: load a `DetectionModel.state_dict()` (keys `model.<i>.…`) into a
//! [`Yolo`], and save a [`Yolo`] back to the same keys so PyTorch can `load_state_dict(strict=True)` it.
//!
//! Our module tree mirrors Ultralytics' (see `yolo.rs`), so the only translation is burn-store's
//! PyTorch adapter (BatchNorm `weight`/`bias` ↔ `gamma`/`beta`) and skipping our enum variant names.
//! `scripts/ultralytics_to_safetensors.py` makes such a file from a `.pt`.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use burn::tensor::backend::Backend;
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use safetensors::tensor::{Dtype, TensorView};

use super::Yolo;
use crate::YoloError;

/// The BatchNorm batch counter PyTorch keeps in every state_dict; it has no effect on the model.
const NUM_BATCHES_TRACKED: &str = "num_batches_tracked";

/// Reads the `__metadata__` of a safetensors file from its header alone (the first 8 + n bytes), so that a
/// large checkpoint is not read whole just to be described.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>, YoloError> {
    use std::io::Read;
    let io = |source| YoloError::Io {
        path: path.into(),
        source,
    };
    let bad = |detail: String| YoloError::Safetensors {
        path: path.into(),
        detail,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(io)?;
    let len = u64::from_le_bytes(len);
    if len > 100_000_000 {
        return Err(bad(format!(
            "header of {len} bytes: not a safetensors file"
        )));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(io)?;
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__", default)]
        metadata: HashMap<String, String>,
    }
    let header: Header =
        serde_json::from_slice(&header).map_err(|e| bad(format!("header: {e}")))?;
    Ok(header.metadata)
}

/// Metadata that scripts/ultralytics_to_safetensors.py writes: the activation SPPF's `cv1` really has.
const META_SPPF_CV1_ACT: &str = "sppf_cv1_act";

/// Loads an Ultralytics-layout safetensors state_dict into `model`.
///
/// Fails, listing the keys, when any model tensor is missing from the file, when the file has a tensor the
/// model lacks (other than BatchNorm's `num_batches_tracked`), or when a shape differs.
pub fn load_ultralytics<B: Backend>(model: Yolo<B>, path: &Path) -> Result<Yolo<B>, YoloError> {
    // YOLOv8/11 always have SiLU there; only YOLO26-style SPPF rows drop it, and we do not build those.
    if read_metadata(path)?
        .get(META_SPPF_CV1_ACT)
        .is_some_and(|act| act != "silu")
    {
        let detail = "SPPF.cv1 has no activation (a YOLO26-style checkpoint); yolo-burn builds YOLOv8 and YOLO11";
        return Err(YoloError::WeightsMismatch {
            path: path.into(),
            detail: detail.into(),
        });
    }
    let store = SafetensorsStore::from_file(path);
    load_from_store(model, store, path)
}

/// [`load_ultralytics`] from the bytes of a safetensors file (what [`ultralytics_bytes`] made); `name` is the
/// path named in errors. Checkpoints embed the training model and its EMA this way.
pub fn load_ultralytics_bytes<B: Backend>(
    model: Yolo<B>,
    bytes: Vec<u8>,
    name: &Path,
) -> Result<Yolo<B>, YoloError> {
    load_from_store(model, SafetensorsStore::from_bytes(Some(bytes)), name)
}

fn load_from_store<B: Backend>(
    model: Yolo<B>,
    store: SafetensorsStore,
    path: &Path,
) -> Result<Yolo<B>, YoloError> {
    let mut model = model;
    let mut store = store
        .with_from_adapter(PyTorchToBurnAdapter)
        .skip_enum_variants(true)
        .allow_partial(true)
        .validate(false);
    let result = model
        .load_from(&mut store)
        .map_err(|e| YoloError::Safetensors {
            path: path.into(),
            detail: e.to_string(),
        })?;
    let applied: std::collections::HashSet<&str> =
        result.applied.iter().map(String::as_str).collect();
    let unused: Vec<&String> = result
        .unused
        .iter()
        .filter(|k| !k.ends_with(NUM_BATCHES_TRACKED) && !applied_as_burn_norm(k, &applied))
        .collect();
    let mut problems = Vec::new();
    if !result.missing.is_empty() {
        let keys: Vec<&str> = result.missing.iter().map(|(k, _)| k.as_str()).collect();
        problems.push(format!(
            "{} model tensors missing from the file: {}",
            keys.len(),
            preview(&keys)
        ));
    }
    if !unused.is_empty() {
        let keys: Vec<&str> = unused.iter().map(|k| k.as_str()).collect();
        problems.push(format!(
            "{} file tensors the model does not have: {}",
            keys.len(),
            preview(&keys)
        ));
    }
    if !result.errors.is_empty() {
        let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        let errors: Vec<&str> = errors.iter().map(String::as_str).collect();
        problems.push(format!(
            "{} tensors do not fit: {}",
            errors.len(),
            preview(&errors)
        ));
    }
    if problems.is_empty() {
        Ok(model)
    } else {
        let hint = "check model.arch, model.scale and model.nc against the checkpoint";
        Err(YoloError::WeightsMismatch {
            path: path.into(),
            detail: format!("{}; {hint}", problems.join("; ")),
        })
    }
}

/// burn-store 0.21 loads a BatchNorm's PyTorch `weight`/`bias` into `gamma`/`beta` through the adapter's
/// alternative names, yet still lists the PyTorch keys as unused. Such a key was used exactly when its Burn twin
/// was applied.
fn applied_as_burn_norm(key: &str, applied: &std::collections::HashSet<&str>) -> bool {
    let twin =
        |suffix: &str, burn: &str| key.strip_suffix(suffix).map(|stem| format!("{stem}{burn}"));
    [twin(".weight", ".gamma"), twin(".bias", ".beta")]
        .into_iter()
        .flatten()
        .any(|t| applied.contains(t.as_str()))
}

fn preview(keys: &[&str]) -> String {
    const SHOWN: usize = 8;
    let mut text = keys
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > SHOWN {
        text.push_str(&format!(", … ({} more)", keys.len() - SHOWN));
    }
    text
}

/// Saves `model` as an Ultralytics-layout safetensors state_dict (float32, plus an int64 zero
/// `num_batches_tracked` per BatchNorm so a strict PyTorch load accepts it). `metadata` goes into the header.
///
/// The file is written to a temporary sibling, synced, then renamed, so an interrupted save never leaves a
/// half-written file under `path`.
pub fn save_ultralytics<B: Backend>(
    model: &Yolo<B>,
    path: &Path,
    metadata: &HashMap<String, String>,
) -> Result<(), YoloError> {
    let bytes = ultralytics_bytes(model, path, metadata)?;
    write_atomic(path, &bytes)
}

/// The bytes [`save_ultralytics`] writes; `path` is only named in errors.
pub fn ultralytics_bytes<B: Backend>(
    model: &Yolo<B>,
    path: &Path,
    metadata: &HashMap<String, String>,
) -> Result<Vec<u8>, YoloError> {
    let snapshots = model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true);
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> =
        Vec::with_capacity(snapshots.len() * 2);
    for snapshot in &snapshots {
        let key = snapshot.full_path();
        let data = snapshot
            .to_data()
            .map(|d| d.convert::<f32>())
            .map_err(|e| YoloError::Safetensors {
                path: path.into(),
                detail: format!("{key}: {e}"),
            })?;
        let shape = data.shape.to_vec();
        if let Some(prefix) = key.strip_suffix("running_var") {
            tensors.push((
                format!("{prefix}{NUM_BATCHES_TRACKED}"),
                Dtype::I64,
                vec![],
                0i64.to_le_bytes().to_vec(),
            ));
        }
        tensors.push((key, Dtype::F32, shape, data.into_bytes().to_vec()));
    }
    let views = tensors
        .iter()
        .map(|(k, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (k.clone(), v))
                .map_err(|e| YoloError::Safetensors {
                    path: path.into(),
                    detail: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, Some(metadata.clone())).map_err(|e| YoloError::Safetensors {
        path: path.into(),
        detail: e.to_string(),
    })
}

/// The state_dict keys [`save_ultralytics`] writes for `model`, in Ultralytics' naming, `num_batches_tracked`
/// included.
pub fn state_dict_keys<B: Backend>(model: &Yolo<B>) -> Vec<String> {
    let snapshots = model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true);
    let mut keys = Vec::with_capacity(snapshots.len() * 2);
    for snapshot in snapshots {
        let key = snapshot.full_path();
        if let Some(prefix) = key.strip_suffix("running_var") {
            keys.push(format!("{prefix}{NUM_BATCHES_TRACKED}"));
        }
        keys.push(key);
    }
    keys
}

/// Writes `bytes` to a temp file beside `path`, fsyncs it, and renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), YoloError> {
    let io = |source| YoloError::Io {
        path: path.into(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // tempfile's default mode is 0600; results, plots and weights are for other users and tools too, so ask
    // for 0644 (the umask still applies), what `std::fs::write` would give.
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn write_atomic_gives_the_mode_a_plain_write_gives() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (atomic, plain) = (dir.path().join("a"), dir.path().join("b"));
        write_atomic(&atomic, b"x").unwrap();
        std::fs::write(&plain, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&atomic), mode(&plain));
        assert_eq!(std::fs::read(&atomic).unwrap(), b"x");
    }
}
