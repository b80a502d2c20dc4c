//! Checkpoints: `<project>/<name>/weights/{last,best}.{safetensors,state}`.
//!
//! - `last.safetensors`, `best.safetensors`: the EMA model, in Ultralytics' state_dict layout (keys
//!   `model.<i>.…`, float32, `num_batches_tracked` included), so PyTorch loads it with
//!   `model.load_state_dict(safetensors.torch.load_file(f))` and `yolo-burn info --weights` checks it. The header
//!   metadata holds `epoch` and `fitness`.
//! - `last.state`, `best.state`: everything a resumed run needs, in one self-contained file (the `.safetensors`
//!   beside it is a convenience copy and is not read on resume):
//!
//!   ```text
//!   8 bytes   magic "YBURNCK1"
//!   8 bytes   u64 little-endian: length H of the header
//!   H bytes   postcard header (CheckpointHeader; postcard, not JSON, so every f64 comes back bit-exact): format version, completed epochs, next iteration, last step,
//!             best fitness and epoch, EMA updates, skipped steps, the resolved optimizer, the data seed, the
//!             mixed-precision state (loss scale, growth tracker, skipped steps), the resolved config as TOML, the last epoch's metrics, the
//!             optimizer's per-parameter slots (path, step, lengths), and the three sections below with their
//!             offsets (from the end of the header), lengths and FNV-1a 64 checksums
//!   section   "model": the training model (not the EMA) as Ultralytics-layout safetensors bytes, in FP32: in
//!             fp16/bf16 the master weights (with the compute model's BatchNorm running statistics), from which
//!             a resumed run rounds the compute model again
//!   section   "ema": the EMA model, same layout
//!   section   "optimizer": every slot's first then second moment, f32 little-endian, in header slot order
//!   section   "pending": gradients accumulated since the last step (accumulation spans epoch ends), same way
//!   ```
//!
//! Every file is written to a temporary sibling, fsynced and renamed (`model::weights::write_atomic`), so a
//! kill at any moment leaves either the old or the new file. `.state` is written after `.safetensors`, so a kill
//! between them leaves a `last.safetensors` one epoch newer than `last.state`; resume reads only `.state`.
//!
//! Data order needs no RNG state: every batch is a pure function of (seed, epoch, index), so the seed and the
//! epoch restore it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::optim::{Method, OptimizerRecord, ResolvedOptimizer, SlotRecord};
use crate::amp::AmpState;
use crate::model::weights::write_atomic;
use crate::YoloError;

/// The file magic.
const MAGIC: &[u8; 8] = b"YBURNCK1";
/// Bumped when the header's meaning changes (2: the optimizer records MuSGD and its warmup momentum; 3: the
/// mixed-precision state, and the `model` section holds the FP32 masters).
pub const FORMAT_VERSION: u32 = 3;

/// Metrics of one validation, as results.csv and the checkpoint keep them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ValMetrics {
    pub precision: f64,
    pub recall: f64,
    pub map50: f64,
    pub map50_95: f64,
    pub box_loss: f64,
    pub cls_loss: f64,
    pub dfl_loss: f64,
}

impl ValMetrics {
    /// Ultralytics' fitness: `0.1 · mAP50 + 0.9 · mAP50-95`.
    pub fn fitness(&self) -> f64 {
        0.1 * self.map50 + 0.9 * self.map50_95
    }
}

/// Where the training loop stands, and what it was run with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed (the next epoch to run, 0-based).
    pub epochs_done: usize,
    /// The global batch index `ni` the next batch will have.
    pub next_iteration: usize,
    /// `ni` of the last optimizer step (−1 for none), which decides when the next step falls.
    pub last_opt_step: i64,
    pub best_fitness: Option<f64>,
    /// 1-based epoch of the best fitness (0: none), for early stopping.
    pub best_epoch: usize,
    pub ema_updates: u64,
    /// Steps skipped for a non-finite loss or gradient.
    pub skipped_steps: u64,
    pub optimizer: ResolvedOptimizer,
    /// The data seed (`train.seed`); with the epoch it fixes every batch.
    pub data_seed: u64,
    /// The loss scaler (scale and growth tracker) and the steps skipped for non-finite gradients
    /// (`crate::amp`); in fp32 and bf16 the scale stays 1.
    pub amp: AmpState,
    /// The resolved config (`Config::to_toml_string`).
    pub config_toml: String,
    /// The last validation, if any.
    pub metrics: Option<ValMetrics>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SectionEntry {
    name: String,
    offset: u64,
    len: u64,
    fnv64: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SlotEntry {
    path: String,
    step: u64,
    first: Option<u64>,
    second: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CheckpointHeader {
    format: u32,
    state: TrainState,
    optimizer_method: Method,
    slots: Vec<SlotEntry>,
    pending: Vec<SlotEntry>,
    sections: Vec<SectionEntry>,
}

/// Slot floats in one buffer and their entries.
fn pack(slots: &[SlotRecord]) -> (Vec<SlotEntry>, Vec<u8>) {
    let mut bytes = Vec::new();
    let mut entries = Vec::with_capacity(slots.len());
    for slot in slots {
        for v in [&slot.first, &slot.second].into_iter().flatten() {
            bytes.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        }
        entries.push(SlotEntry {
            path: slot.path.clone(),
            step: slot.step,
            first: slot.first.as_ref().map(|v| v.len() as u64),
            second: slot.second.as_ref().map(|v| v.len() as u64),
        });
    }
    (entries, bytes)
}

/// The inverse of [`pack`].
fn unpack(entries: &[SlotEntry], bytes: &[u8]) -> Option<Vec<SlotRecord>> {
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut at = 0usize;
    let mut take = |n: Option<u64>| -> Option<Option<Vec<f32>>> {
        match n {
            None => Some(None),
            Some(n) => {
                let end = at.checked_add(n as usize)?;
                let v = floats.get(at..end)?.to_vec();
                at = end;
                Some(Some(v))
            }
        }
    };
    let mut slots = Vec::with_capacity(entries.len());
    for e in entries {
        let first = take(e.first)?;
        let second = take(e.second)?;
        slots.push(SlotRecord {
            path: e.path.clone(),
            step: e.step,
            first,
            second,
        });
    }
    Some(slots)
}

/// A whole `.state` file in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub state: TrainState,
    /// The training model, Ultralytics-layout safetensors bytes.
    pub model: Vec<u8>,
    /// The EMA model, same layout.
    pub ema: Vec<u8>,
    pub optimizer: OptimizerRecord,
    /// Gradients summed since the last optimizer step (accumulation spans epoch ends), by parameter path in
    /// `first`; without them a resumed run would step differently.
    pub pending_grads: Vec<SlotRecord>,
}

/// FNV-1a 64: cheap, and enough to tell a damaged file from a good one.
fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Checkpoint {
    /// The file's bytes (see the module doc).
    pub fn to_bytes(&self) -> Result<Vec<u8>, YoloError> {
        let (slots, optimizer) = pack(&self.optimizer.slots);
        let (pending, pending_bytes) = pack(&self.pending_grads);
        let mut sections = Vec::new();
        let mut offset = 0u64;
        for (name, bytes) in [
            ("model", &self.model),
            ("ema", &self.ema),
            ("optimizer", &optimizer),
            ("pending", &pending_bytes),
        ] {
            sections.push(SectionEntry {
                name: name.into(),
                offset,
                len: bytes.len() as u64,
                fnv64: fnv64(bytes),
            });
            offset += bytes.len() as u64;
        }
        let header = CheckpointHeader {
            format: FORMAT_VERSION,
            state: self.state.clone(),
            optimizer_method: self.optimizer.method,
            slots,
            pending,
            sections,
        };
        let header = postcard::to_stdvec(&header).map_err(|e| YoloError::Safetensors {
            path: PathBuf::new(),
            detail: format!("checkpoint header: {e}"),
        })?;
        let mut out = Vec::with_capacity(16 + header.len() + offset as usize);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.model);
        out.extend_from_slice(&self.ema);
        out.extend_from_slice(&optimizer);
        out.extend_from_slice(&pending_bytes);
        Ok(out)
    }

    /// Parses a `.state` file's bytes; `path` is named in errors. Any damage is an error, never a panic.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, YoloError> {
        let bad = |detail: String| YoloError::Safetensors {
            path: path.into(),
            detail: format!("not a usable yolo-burn checkpoint: {detail}"),
        };
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(bad("wrong magic".into()));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[8..16]);
        let header_len = u64::from_le_bytes(len) as usize;
        let body_start = 16usize
            .checked_add(header_len)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| bad("truncated header".into()))?;
        // The format comes first, so an older or newer file is named as such rather than failing to parse.
        let (format, _) = postcard::take_from_bytes::<u32>(&bytes[16..body_start])
            .map_err(|e| bad(format!("header: {e}")))?;
        if format != FORMAT_VERSION {
            return Err(bad(format!(
                "format {format} (this build reads {FORMAT_VERSION}); resume it with the yolo-burn version \
                 that wrote it, or start a new run from its weights (`model.weights`)"
            )));
        }
        let header: CheckpointHeader = postcard::from_bytes(&bytes[16..body_start])
            .map_err(|e| bad(format!("header: {e}")))?;
        let body = &bytes[body_start..];
        let section = |name: &str| -> Result<&[u8], YoloError> {
            let entry = header
                .sections
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| bad(format!("no `{name}` section")))?;
            let start = entry.offset as usize;
            let slice = start
                .checked_add(entry.len as usize)
                .and_then(|end| body.get(start..end))
                .ok_or_else(|| bad(format!("`{name}` section is truncated")))?;
            if fnv64(slice) != entry.fnv64 {
                return Err(bad(format!("`{name}` section checksum mismatch")));
            }
            Ok(slice)
        };
        let model = section("model")?.to_vec();
        let ema = section("ema")?.to_vec();
        let slots = unpack(&header.slots, section("optimizer")?)
            .ok_or_else(|| bad("optimizer slots overrun their section".into()))?;
        let pending_grads = unpack(&header.pending, section("pending")?)
            .ok_or_else(|| bad("pending gradients overrun their section".into()))?;
        Ok(Self {
            state: header.state,
            model,
            ema,
            optimizer: OptimizerRecord {
                method: header.optimizer_method,
                slots,
            },
            pending_grads,
        })
    }

    /// Reads a `.state` file.
    pub fn read(path: &Path) -> Result<Self, YoloError> {
        let bytes = std::fs::read(path).map_err(|source| YoloError::Io {
            path: path.into(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Writes a `.state` file atomically.
    pub fn write(&self, path: &Path) -> Result<(), YoloError> {
        write_atomic(path, &self.to_bytes()?)
    }
}

/// The files of one checkpoint name (`last` or `best`) in a weights folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointPaths {
    /// `<dir>/<name>.safetensors`: the EMA for users.
    pub weights: PathBuf,
    /// `<dir>/<name>.state`: the resume state.
    pub state: PathBuf,
}

impl CheckpointPaths {
    pub fn new(weights_dir: &Path, name: &str) -> Self {
        Self {
            weights: weights_dir.join(format!("{name}.safetensors")),
            state: weights_dir.join(format!("{name}.state")),
        }
    }

    /// What `--resume X` names: `X` may be `…/weights/last`, `…/weights/last.state` or
    /// `…/weights/last.safetensors`, or the run folder (its `weights/last`).
    pub fn from_resume_arg(arg: &Path) -> Self {
        if arg.is_dir() && arg.join("weights").is_dir() {
            return Self::new(&arg.join("weights"), "last");
        }
        let stem = match arg.extension().and_then(|e| e.to_str()) {
            Some("state" | "safetensors") => arg.with_extension(""),
            _ => arg.to_path_buf(),
        };
        let dir = stem.parent().unwrap_or(Path::new(".")).to_path_buf();
        let name = stem
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("last")
            .to_string();
        Self::new(&dir, &name)
    }

    /// The run folder: the parent of the weights folder.
    pub fn run_dir(&self) -> PathBuf {
        self.state
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            state: TrainState {
                epochs_done: 2,
                next_iteration: 20,
                last_opt_step: 19,
                best_fitness: Some(0.25),
                best_epoch: 2,
                ema_updates: 7,
                skipped_steps: 1,
                optimizer: ResolvedOptimizer {
                    method: Method::AdamW,
                    warmup_momentum_end: None,
                    lr0: 0.001,
                    momentum: 0.9,
                    warmup_bias_lr: 0.0,
                    weight_decay: 5e-4,
                },
                data_seed: 3,
                amp: AmpState {
                    scaler: crate::amp::ScalerState {
                        scale: 32768.0,
                        growth_tracker: 17,
                    },
                    skipped_steps: 2,
                    consecutive_skips: 1,
                },
                config_toml: "[train]\nepochs = 3\n".into(),
                metrics: Some(ValMetrics {
                    map50: 0.5,
                    ..ValMetrics::default()
                }),
            },
            model: vec![1, 2, 3],
            ema: vec![4, 5],
            optimizer: OptimizerRecord {
                method: Method::AdamW,
                slots: vec![
                    SlotRecord {
                        path: "a.weight".into(),
                        step: 3,
                        first: Some(vec![1.0, -2.5]),
                        second: Some(vec![0.5, f32::MIN_POSITIVE]),
                    },
                    SlotRecord {
                        path: "b.bias".into(),
                        step: 1,
                        first: None,
                        second: None,
                    },
                ],
            },
            pending_grads: vec![SlotRecord {
                path: "a.weight".into(),
                step: 0,
                first: Some(vec![0.25]),
                second: None,
            }],
        }
    }

    #[test]
    fn checkpoint_round_trips_exactly() {
        let c = sample();
        let bytes = c.to_bytes().unwrap();
        assert_eq!(Checkpoint::from_bytes(&bytes, Path::new("x")).unwrap(), c);
    }

    #[test]
    fn checkpoint_of_another_format_names_both_versions() {
        let mut bytes = sample().to_bytes().unwrap();
        // The header's first byte is the format as a postcard varint (< 128, so one byte).
        bytes[16] = 2;
        let err = Checkpoint::from_bytes(&bytes, Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("format 2 (this build reads 3)"), "{err}");
    }

    #[test]
    fn damaged_checkpoint_is_an_error() {
        let bytes = sample().to_bytes().unwrap();
        for cut in [0, 7, 15, 40, bytes.len() - 1] {
            assert!(Checkpoint::from_bytes(&bytes[..cut], Path::new("x")).is_err());
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let err = Checkpoint::from_bytes(&flipped, Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn resume_arg_forms_name_the_same_files() {
        let want = CheckpointPaths::new(Path::new("runs/a/weights"), "last");
        for arg in [
            "runs/a/weights/last",
            "runs/a/weights/last.state",
            "runs/a/weights/last.safetensors",
        ] {
            assert_eq!(CheckpointPaths::from_resume_arg(Path::new(arg)), want);
        }
        assert_eq!(want.run_dir(), PathBuf::from("runs/a"));
    }

    #[test]
    fn fitness_weights_map50_95() {
        let m = ValMetrics {
            map50: 1.0,
            map50_95: 0.5,
            ..ValMetrics::default()
        };
        assert!((m.fitness() - 0.55).abs() < 1e-12);
    }
}
