//! Parity-case discovery shared by the tests/parity*.rs files: every `TAG.json` in ../shared/parity, or in
//! `$YOLO_BURN_PARITY_DIR`, is one case; its tensors are read as f32.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use yolo_burn::config::{Arch, ScaleName};
use yolo_burn::model::YoloConfig;

/// The part of `TAG.json` the tests read.
#[derive(Deserialize)]
pub struct CaseJson {
    pub cfg: String,
    pub params: usize,
    pub forward_keys: HashMap<String, Vec<usize>>,
    pub loss: Option<LossJson>,
    pub grad_norm_params_train_mode: Option<f64>,
}

/// `TAG.json` "loss": gain-scaled, normalised, not multiplied by the batch size.
#[derive(Deserialize, Debug, Clone, Copy)]
pub struct LossJson {
    pub box_loss: f64,
    pub cls_loss: f64,
    pub dfl_loss: f64,
}

pub struct Case {
    pub dir: PathBuf,
    pub tag: String,
    pub json: CaseJson,
}

impl Case {
    pub fn file(&self, kind: &str) -> PathBuf {
        self.dir.join(format!("{}.{kind}.safetensors", self.tag))
    }

    /// `yolov8s.yaml` → (yolov8, s); nc from the class-logit output's channels.
    pub fn model_config(&self) -> YoloConfig {
        let stem = self.json.cfg.trim_end_matches(".yaml");
        let (family, scale) = stem.split_at(stem.len() - 1);
        let arch: Arch = family
            .parse()
            .unwrap_or_else(|e| panic!("{}: cfg {}: {e}", self.tag, self.json.cfg));
        let scale: ScaleName = scale
            .parse()
            .unwrap_or_else(|e| panic!("{}: cfg {}: {e}", self.tag, self.json.cfg));
        let nc = self.json.forward_keys["out.1.scores"][1];
        YoloConfig::new(arch, scale, nc)
    }
}

pub fn parity_dir() -> PathBuf {
    match std::env::var_os("YOLO_BURN_PARITY_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/parity"),
    }
}

pub fn cases() -> Vec<Case> {
    let dir = parity_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "parity folder {} unreadable ({e}); set YOLO_BURN_PARITY_DIR",
            dir.display()
        )
    });
    let mut cases: Vec<Case> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read case json");
            let json: CaseJson =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let tag = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("utf-8 tag")
                .to_string();
            Case {
                dir: dir.clone(),
                tag,
                json,
            }
        })
        .collect();
    cases.sort_by(|a, b| a.tag.cmp(&b.tag));
    assert!(
        !cases.is_empty(),
        "no TAG.json parity case in {}",
        dir.display()
    );
    cases
}

/// A tensor read from a safetensors file, as f32.
#[derive(Debug, Clone)]
pub struct Array {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Reads every float tensor of a safetensors file.
pub fn read_tensors(path: &Path) -> HashMap<String, Array> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    file.tensors()
        .into_iter()
        .filter(|(_, view)| view.dtype() == safetensors::Dtype::F32)
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let shape = view.shape().to_vec();
            (name, Array { shape, values })
        })
        .collect()
}

/// Max abs difference of two equally shaped value lists.
pub fn max_abs_diff(ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len(), "length");
    ours.iter()
        .zip(theirs)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
}

/// A path inside the shared reference folder beside the checkout (`../shared`).
pub fn shared(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(path)
}

/// Runs the `yolo-burn` binary from the repository root.
pub fn yolo_burn<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_yolo-burn"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run yolo-burn")
}

/// A user error: exit code 2, one `yolo-burn:` line naming every needle, and no Rust panic.
pub fn assert_user_error(out: &std::process::Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit code; stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.starts_with("yolo-burn: "), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    }
}
