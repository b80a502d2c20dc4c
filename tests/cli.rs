//! The binary as a user meets it: `info` numbers, bad configs rejected with the key named (exit 2, no panic),
//! and a subcommand that does not exist yet failing loudly instead of pretending.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{assert_user_error, yolo_burn};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("bad.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// The summary line's GFLOPs figure, e.g. `8.9` from "..., 8.9 GFLOPs at 640x640".
fn gflops(summary: &str) -> f64 {
    let before = summary.split(" GFLOPs").next().expect("GFLOPs in summary");
    before
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("number before GFLOPs")
}

#[test]
fn info_prints_ultralytics_parameter_counts_and_gflops() {
    let cases = [("yolov8", "3,157,200", 8.9), ("yolo11", "2,624,080", 6.7)];
    for (arch, params, ultralytics_gflops) in cases {
        let out = yolo_burn(&[
            "info",
            "--config",
            "configs/yolo.toml",
            "--set",
            &format!("model.arch={arch}"),
            "--set",
            "train.imgsz=640",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        let summary = text.lines().last().expect("summary line");
        assert!(
            summary.contains(&format!("{params} parameters")),
            "{summary}"
        );
        let ours = gflops(summary);
        assert!(
            (ours - ultralytics_gflops).abs() / ultralytics_gflops < 0.02,
            "{summary}"
        );
    }
}

#[test]
fn info_loads_weights_and_refuses_a_mismatch() {
    let weights =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/parity/yolov8n.weights.safetensors");
    let weights = weights.to_str().expect("utf-8 path");
    let ok = yolo_burn(&["info", "--set", "model.nc=80", "--weights", weights]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("every key matched"));
    let bad = yolo_burn(&[
        "info",
        "--set",
        "model.nc=80",
        "--set",
        "model.scale=s",
        "--weights",
        weights,
    ]);
    assert_user_error(&bad, &["do not fit the model", "model.scale"]);
}

#[test]
fn unknown_key_is_named_with_a_suggestion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "[train]\nepoch = 3\n");
    let out = yolo_burn(&["info", "--config", config.to_str().expect("utf-8")]);
    assert_user_error(
        &out,
        &["train.epoch", "bad.toml", "did you mean `train.epochs`"],
    );
}

#[test]
fn wrong_type_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "[train]\nepochs = \"ten\"\n");
    let out = yolo_burn(&["info", "--config", config.to_str().expect("utf-8")]);
    assert_user_error(&out, &["train.epochs", "bad.toml", "integer"]);
}

#[test]
fn negative_epochs_are_rejected_from_file_and_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "[train]\nepochs = -3\n");
    let out = yolo_burn(&["train", "--config", config.to_str().expect("utf-8")]);
    assert_user_error(&out, &["train.epochs", "-3", "≥ 1"]);
    let out = yolo_burn(&["train", "--set", "train.epochs=-3"]);
    assert_user_error(&out, &["train.epochs", "--set", "≥ 1"]);
}

#[test]
fn bad_choice_lists_the_allowed_values() {
    let out = yolo_burn(&["info", "--set", "model.arch=yolov5"]);
    assert_user_error(&out, &["model.arch", "yolov8", "yolo11"]);
}

#[test]
fn missing_config_file_is_named() {
    let out = yolo_burn(&["info", "--config", "configs/does-not-exist.toml"]);
    assert_user_error(&out, &["configs/does-not-exist.toml"]);
}

#[test]
fn export_without_weights_says_what_to_pass() {
    let out = yolo_burn(&["export"]);
    assert_user_error(&out, &["no weights", "--weights"]);
}

#[test]
fn every_subcommand_has_help() {
    for command in ["train", "val", "predict", "export", "info", "bench"] {
        let out = yolo_burn(&[command, "--help"]);
        assert!(out.status.success(), "{command} --help: {}", stderr(&out));
        assert!(stdout(&out).contains("Usage: yolo-burn"), "{command}");
    }
}

#[test]
fn data_check_summarises_and_strict_fails_naming_the_file() {
    let coco8 = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/coco8/coco8.yaml");
    let out = yolo_burn(&["data", "check", "--data", coco8.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("train: 4 images") && text.contains("val: 4 images"),
        "{text}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let images = dir.path().join("images/train");
    let labels = dir.path().join("labels/train");
    std::fs::create_dir_all(&images).expect("mkdir");
    std::fs::create_dir_all(&labels).expect("mkdir");
    image::RgbImage::from_pixel(32, 32, image::Rgb([9, 9, 9]))
        .save(images.join("ok.png"))
        .expect("png");
    std::fs::write(images.join("broken.jpg"), b"").expect("write");
    std::fs::write(labels.join("ok.txt"), "0 0.5 0.5 0.2 0.2\n0 0.5 0.5\n").expect("write");
    let yaml = dir.path().join("d.yaml");
    std::fs::write(&yaml, "train: images/train\nnames: [thing]\n").expect("write");
    let data = yaml.to_str().expect("utf-8");

    let lenient = yolo_burn(&["data", "check", "--data", data]);
    assert!(lenient.status.success(), "{}", stderr(&lenient));
    let text = stdout(&lenient);
    assert!(
        text.contains("broken.jpg") && text.contains("ok.txt:2"),
        "{text}"
    );
    assert!(
        text.contains("unreadable image") && text.contains("wrong field count"),
        "{text}"
    );

    let strict = yolo_burn(&["data", "check", "--data", data, "--set", "data.strict=true"]);
    assert_user_error(&strict, &["data.strict = true"]);
    assert!(stderr(&strict).contains("broken.jpg") || stderr(&strict).contains("ok.txt"));
}

/// `val --help` says what `val` does today: both of its modes, and no "not implemented".
#[test]
fn val_help_describes_both_modes() {
    let out = yolo_burn(&["--help"]);
    let help = stdout(&out);
    let val_line = help
        .lines()
        .find(|l| l.trim_start().starts_with("val"))
        .expect("val in the command list");
    assert!(!val_line.contains("not implemented"), "{val_line}");
    let out = yolo_burn(&["val", "--help"]);
    let text = stdout(&out);
    assert!(!text.contains("not implemented"), "{text}");
    assert!(
        text.contains("checkpoint") && text.contains("pycocotools"),
        "{text}"
    );
}
