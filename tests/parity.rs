//! Model parity with Ultralytics 8.4.190: every case in the parity folder (../shared/parity, or
//! `$YOLO_BURN_PARITY_DIR`) is discovered by its `TAG.json`, built from its `cfg`, loaded with
//! `TAG.weights.safetensors`, run on `TAG.forward.safetensors`' input in eval mode, and compared output by
//! output.
//!
//! Tolerances (max abs difference): decoded boxes 1e-3 px; class scores, raw box and class logits 1e-4;
//! neck features 1e-4 relative to their largest magnitude. float32 on both sides; the differences come from
//! summation order in convolutions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};
use serde::Deserialize;
use yolo_burn::backend::Cpu;
use yolo_burn::config::{Arch, ScaleName};
use yolo_burn::model::weights::{load_ultralytics, save_ultralytics};
use yolo_burn::model::{Yolo, YoloConfig};

type B = Cpu;

#[derive(Deserialize)]
struct CaseJson {
    cfg: String,
    params: usize,
    forward_keys: HashMap<String, Vec<usize>>,
}

struct Case {
    dir: PathBuf,
    tag: String,
    json: CaseJson,
}

impl Case {
    fn file(&self, kind: &str) -> PathBuf {
        self.dir.join(format!("{}.{kind}.safetensors", self.tag))
    }

    /// `yolov8s.yaml` → (yolov8, s); nc from the class-logit output's channels.
    fn model_config(&self) -> YoloConfig {
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

    fn load_model(&self) -> Yolo<B> {
        let model = self.model_config().init::<B>(&Default::default());
        load_ultralytics(model, &self.file("weights"))
            .unwrap_or_else(|e| panic!("{}: {e}", self.tag))
    }
}

fn parity_dir() -> PathBuf {
    match std::env::var_os("YOLO_BURN_PARITY_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/parity"),
    }
}

fn cases() -> Vec<Case> {
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

/// Reads every float tensor of a safetensors file as (shape, values).
fn read_tensors(path: &Path) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
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
            (name, (view.shape().to_vec(), values))
        })
        .collect()
}

fn to_vec<const D: usize>(t: Tensor<B, D>) -> (Vec<usize>, Vec<f32>) {
    let data = t.into_data().convert::<f32>();
    (data.shape.to_vec(), data.to_vec().expect("f32 data"))
}

/// Max abs difference over the channel range `channels` of `[1, C, A]` tensors (or everything when `None`).
fn max_abs_diff(
    ours: &(Vec<usize>, Vec<f32>),
    theirs: &(Vec<usize>, Vec<f32>),
    channels: Option<(usize, usize)>,
) -> f32 {
    assert_eq!(ours.0, theirs.0, "shape");
    let per_channel: usize = ours.0[2..].iter().product();
    let (lo, hi) = channels.unwrap_or((0, ours.0[1]));
    let mut worst = 0f32;
    for (i, (a, b)) in ours.1.iter().zip(&theirs.1).enumerate() {
        let c = (i / per_channel) % ours.0[1];
        if (lo..hi).contains(&c) {
            worst = worst.max((a - b).abs());
        }
    }
    worst
}

#[test]
fn model_outputs_match_ultralytics() {
    for case in cases() {
        let model = case.load_model();
        assert_eq!(
            model.num_parameters(),
            case.json.params,
            "{}: parameter count",
            case.tag
        );

        let reference = read_tensors(&case.file("forward"));
        let (shape, input) = reference["input"].clone();
        let shape: [usize; 4] = shape.try_into().expect("input is 4-D");
        let images = Tensor::<B, 4>::from_data(TensorData::new(input, shape), &Default::default());

        let feats = model.features(images);
        for (k, feat) in feats.iter().enumerate() {
            let ours = to_vec(feat.clone());
            let theirs = &reference[&format!("out.1.feats.{k}")];
            let scale = theirs.1.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = max_abs_diff(&ours, theirs, None);
            assert!(
                diff <= 1e-4 * scale,
                "{}: feats.{k} max abs diff {diff} (scale {scale})",
                case.tag
            );
        }
        let out = model.head().forward(feats);
        let decoded = to_vec(model.head().decode(&out));
        let nc = out.scores.dims()[1];
        let checks = [
            (
                "decoded boxes",
                max_abs_diff(&decoded, &reference["out.0"], Some((0, 4))),
                1e-3,
            ),
            (
                "class scores",
                max_abs_diff(&decoded, &reference["out.0"], Some((4, 4 + nc))),
                1e-4,
            ),
            (
                "box logits",
                max_abs_diff(&to_vec(out.boxes), &reference["out.1.boxes"], None),
                1e-4,
            ),
            (
                "class logits",
                max_abs_diff(&to_vec(out.scores), &reference["out.1.scores"], None),
                1e-4,
            ),
        ];
        for (what, diff, tolerance) in checks {
            println!(
                "{}: {what} max abs diff {diff:.3e} (tolerance {tolerance:.0e})",
                case.tag
            );
            assert!(
                diff <= tolerance,
                "{}: {what} max abs diff {diff} > {tolerance}",
                case.tag
            );
        }
    }
}

#[test]
fn saved_weights_round_trip_to_ultralytics_layout() {
    for case in cases() {
        let model = case.load_model();
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("roundtrip.safetensors");
        save_ultralytics(&model, &out, &HashMap::new()).expect("save");
        let original = std::fs::read(case.file("weights")).expect("read original");
        let saved = std::fs::read(&out).expect("read saved");
        let original = safetensors::SafeTensors::deserialize(&original).expect("original");
        let saved = safetensors::SafeTensors::deserialize(&saved).expect("saved");
        let mut original_keys = original.names();
        let mut saved_keys = saved.names();
        original_keys.sort();
        saved_keys.sort();
        assert_eq!(
            saved_keys, original_keys,
            "{}: same keys as the Ultralytics state_dict",
            case.tag
        );
        for key in original_keys {
            let (a, b) = (
                original.tensor(key).expect("a"),
                saved.tensor(key).expect("b"),
            );
            assert_eq!(a.shape(), b.shape(), "{}: {key} shape", case.tag);
            if a.dtype() == safetensors::Dtype::F32 {
                assert_eq!(a.data(), b.data(), "{}: {key} values", case.tag);
            }
        }
    }
}

#[test]
fn weights_for_another_model_are_refused_with_the_keys() {
    let case = cases().into_iter().next().expect("a case");
    let mut config = case.model_config();
    config.arch = match config.arch {
        Arch::Yolov8 => Arch::Yolo11,
        Arch::Yolo11 => Arch::Yolov8,
    };
    let model = config.init::<B>(&Default::default());
    let err = load_ultralytics(model, &case.file("weights"))
        .expect_err("mismatched weights must be refused");
    let text = err.to_string();
    assert!(
        text.contains("model.") && text.contains("model.arch"),
        "{text}"
    );
}

#[test]
fn checkpoint_without_sppf_activation_is_refused() {
    let case = cases().into_iter().next().expect("a case");
    let model = case.load_model();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yolo26-style.safetensors");
    let metadata = HashMap::from([("sppf_cv1_act".to_string(), "identity".to_string())]);
    save_ultralytics(&model, &path, &metadata).expect("save");
    let fresh = case.model_config().init::<B>(&Default::default());
    let err = load_ultralytics(fresh, &path).expect_err("an SPPF without activation is not ours");
    assert!(err.to_string().contains("SPPF.cv1"), "{err}");
}
