//! Model parity with Ultralytics 8.4.190: every case in the parity folder (../shared/parity, or
//! `$YOLO_BURN_PARITY_DIR`) is discovered by its `TAG.json`, built from its `cfg`, loaded with
//! `TAG.weights.safetensors`, run on `TAG.forward.safetensors`' input in eval mode, and compared output by
//! output.
//!
//! Tolerances (max abs difference): decoded boxes 1e-3 px; class scores, raw box and class logits 1e-4;
//! neck features 1e-4 relative to their largest magnitude. float32 on both sides; the differences come from
//! summation order in convolutions.

mod common;

use std::collections::HashMap;

use burn::tensor::{Tensor, TensorData};
use common::{cases, read_tensors, Array, Case};
use yolo_burn::backend::Cpu;
use yolo_burn::config::Arch;
use yolo_burn::model::weights::{load_ultralytics, save_ultralytics};
use yolo_burn::model::Yolo;

type B = Cpu;

fn load_model(case: &Case) -> Yolo<B> {
    let model = case.model_config().init::<B>(&Default::default());
    load_ultralytics(model, &case.file("weights")).unwrap_or_else(|e| panic!("{}: {e}", case.tag))
}

fn to_array<const D: usize>(t: Tensor<B, D>) -> Array {
    let data = t.into_data().convert::<f32>();
    Array {
        shape: data.shape.to_vec(),
        values: data.to_vec().expect("f32 data"),
    }
}

/// Max abs difference over the channel range `channels` of `[1, C, …]` tensors (or everything when `None`).
fn max_abs_diff(ours: &Array, theirs: &Array, channels: Option<(usize, usize)>) -> f32 {
    assert_eq!(ours.shape, theirs.shape, "shape");
    let per_channel: usize = ours.shape[2..].iter().product();
    let (lo, hi) = channels.unwrap_or((0, ours.shape[1]));
    let mut worst = 0f32;
    for (i, (a, b)) in ours.values.iter().zip(&theirs.values).enumerate() {
        if (lo..hi).contains(&((i / per_channel) % ours.shape[1])) {
            worst = worst.max((a - b).abs());
        }
    }
    worst
}

#[test]
fn model_outputs_match_ultralytics() {
    for case in cases() {
        let model = load_model(&case);
        assert_eq!(
            model.num_parameters(),
            case.json.params,
            "{}: parameter count",
            case.tag
        );

        let reference = read_tensors(&case.file("forward"));
        let Array {
            shape,
            values: input,
        } = reference["input"].clone();
        let shape: [usize; 4] = shape.try_into().expect("input is 4-D");
        let images = Tensor::<B, 4>::from_data(TensorData::new(input, shape), &Default::default());

        let feats = model.features(images);
        for (k, feat) in feats.iter().enumerate() {
            let ours = to_array(feat.clone());
            let theirs = &reference[&format!("out.1.feats.{k}")];
            let scale = theirs.values.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = max_abs_diff(&ours, theirs, None);
            assert!(
                diff <= 1e-4 * scale,
                "{}: feats.{k} max abs diff {diff} (scale {scale})",
                case.tag
            );
        }
        let out = model.head().forward(feats);
        let decoded = to_array(model.head().decode(&out));
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
                max_abs_diff(&to_array(out.boxes), &reference["out.1.boxes"], None),
                1e-4,
            ),
            (
                "class logits",
                max_abs_diff(&to_array(out.scores), &reference["out.1.scores"], None),
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
        let model = load_model(&case);
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
    let model = load_model(&case);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yolo26-style.safetensors");
    let metadata = HashMap::from([("sppf_cv1_act".to_string(), "identity".to_string())]);
    save_ultralytics(&model, &path, &metadata).expect("save");
    let fresh = case.model_config().init::<B>(&Default::default());
    let err = load_ultralytics(fresh, &path).expect_err("an SPPF without activation is not ours");
    assert!(err.to_string().contains("SPPF.cv1"), "{err}");
}
