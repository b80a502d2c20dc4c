//! `export --format burn` (issue #14): the yolov8n parity case (../shared/parity, or `$YOLO_BURN_PARITY_DIR`)
//! exported as a fused Burn record, loaded back, and run on the case's input against the unfused model.
//!
//! Tolerances (max abs difference): boxes 1e-3 px, scores 1e-4 (the model parity test's); folding only
//! reorders the f32 arithmetic. The CLI tests run the binary: the exported file is all `predict` needs.

mod common;

use burn::tensor::{Tensor, TensorData};
use common::{assert_user_error, cases, read_tensors, yolo_burn, Case};
use yolo_burn::backend::Cpu;
use yolo_burn::export::{export_burn, is_fused};
use yolo_burn::model::meta::WeightsMeta;
use yolo_burn::model::weights::load_ultralytics;
use yolo_burn::model::Yolo;

fn case() -> Case {
    let all = cases();
    let first = all.first().expect("a parity case").tag.clone();
    all.into_iter()
        .find(|c| c.tag == "yolov8n")
        .unwrap_or_else(|| panic!("no yolov8n parity case (first: {first})"))
}

fn load(case: &Case, path: &std::path::Path) -> Yolo<Cpu> {
    let model = case.model_config().init::<Cpu>(&Default::default());
    load_ultralytics(model, path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The parity case's Ultralytics flags (its weights carry no metadata).
fn case_sets(case: &Case) -> Vec<String> {
    let config = case.model_config();
    [
        format!("model.arch={}", config.arch),
        format!("model.scale={}", config.scale),
        format!("model.nc={}", config.nc),
    ]
    .into_iter()
    .flat_map(|s| ["--set".to_string(), s])
    .collect()
}

#[test]
fn fused_record_matches_the_unfused_model() {
    let case = case();
    let config = case.model_config();
    let unfused = load(&case, &case.file("weights"));
    let meta = WeightsMeta {
        arch: Some(config.arch),
        scale: Some(config.scale),
        nc: Some(config.nc),
        names: Some((0..config.nc).map(|i| format!("c{i}")).collect()),
        imgsz: Some(640),
    };
    let bytes = export_burn(&unfused, &meta).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("yolov8n.fused.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    assert!(is_fused(&path).unwrap());
    assert!(!is_fused(&case.file("weights")).unwrap());
    assert_eq!(WeightsMeta::read(&path).unwrap(), meta);

    // Every BatchNorm is the identity plus a bias; the convs hold the folded weights.
    let tensors = read_tensors(&path);
    let original = read_tensors(&case.file("weights"));
    let (mut norms, mut changed) = (0, 0);
    for (key, array) in &tensors {
        if let Some(prefix) = key.strip_suffix("bn.weight") {
            norms += 1;
            assert!(array.values.iter().all(|&g| g == 1.0), "{key}");
            let mean = &tensors[&format!("{prefix}bn.running_mean")];
            assert!(mean.values.iter().all(|&m| m == 0.0), "{prefix}");
            let conv = format!("{prefix}conv.weight");
            changed += usize::from(tensors[&conv].values != original[&conv].values);
        }
    }
    assert!(norms > 50, "{norms} BatchNorms");
    assert_eq!(changed, norms);

    let fused = load(&case, &path);
    let reference = read_tensors(&case.file("forward"));
    let input = &reference["input"];
    let images = || {
        Tensor::<Cpu, 4>::from_data(
            TensorData::new(input.values.clone(), input.shape.clone()),
            &Default::default(),
        )
    };
    let ours = fused.predict(images()).into_data().to_vec::<f32>().unwrap();
    let theirs = unfused
        .predict(images())
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(ours.len(), theirs.len());
    let anchors = ours.len() / (4 + config.nc);
    let (mut box_diff, mut score_diff) = (0f32, 0f32);
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        let diff = (a - b).abs();
        if i / anchors < 4 {
            box_diff = box_diff.max(diff);
        } else {
            score_diff = score_diff.max(diff);
        }
    }
    assert!(box_diff < 1e-3, "boxes differ by {box_diff} px");
    assert!(score_diff < 1e-4, "scores differ by {score_diff}");
}

#[test]
fn cli_export_burn_then_predict_with_nothing_else() {
    let case = case();
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("model.fused.safetensors");
    let mut args: Vec<String> = [
        "export",
        "--format",
        "burn",
        "--weights",
        case.file("weights").to_str().unwrap(),
        "--imgsz",
        "64",
        "--output",
        output.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    args.extend(case_sets(&case));
    let out = yolo_burn(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Conv+BN fused"), "{stdout}");
    assert!(is_fused(&output).unwrap());

    let image = dir.path().join("gray.png");
    image::RgbImage::from_pixel(48, 40, image::Rgb([90, 120, 150]))
        .save(&image)
        .expect("png");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_yolo-burn"))
        .args(["predict", "--quiet", "--weights"])
        .arg(&output)
        .arg("--source")
        .arg(&image)
        .current_dir(dir.path())
        .output()
        .expect("run yolo-burn");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 images"), "{stdout}");
    // The file names its model: a contradicting --set is refused as for a checkpoint.
    let out = yolo_burn(&[
        "predict",
        "--weights",
        output.to_str().unwrap(),
        "--source",
        image.to_str().unwrap(),
        "--set",
        "model.scale=s",
    ]);
    assert_user_error(&out, &["model.scale = s", "says n"]);
}

#[test]
fn cli_export_burn_refuses_half_and_onnx_flags() {
    let case = case();
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("m.fused.safetensors");
    for (flags, needles) in [
        (&["--half"][..], &["--half", "f32 only"][..]),
        (&["--opset", "17"], &["--opset", "--format onnx"]),
        (&["--imgsz", "64", "96"], &["--imgsz 64 96", "square"]),
    ] {
        let mut args: Vec<String> = [
            "export",
            "--format",
            "burn",
            "--weights",
            case.file("weights").to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec();
        args.extend(flags.iter().map(|s| s.to_string()));
        args.extend(case_sets(&case));
        assert_user_error(&yolo_burn(&args), needles);
        assert!(!output.exists());
    }
}
