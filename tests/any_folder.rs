//! The binary works from any folder with no config file (built-in defaults, the embedded dataset drawn where it
//! runs), and `predict`, `info` and `val` take the model from the weights' own metadata: no `--set` needed, and
//! a `--set` that contradicts the weights is refused naming both values.

mod common;
use common::assert_user_error;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yolo-burn"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run yolo-burn")
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}: {stderr}",
        out.status.code()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn first_image(dir: &Path) -> Option<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "png" || e == "jpg") {
                return Some(path);
            }
        }
    }
    None
}

#[test]
fn empty_folder_info_data_check_train_predict_need_no_config() {
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path();

    let info = ok(&run(here, &["info"]));
    assert!(info.contains("summary (80 classes"), "{info}");

    let check = ok(&run(here, &["data", "check"]));
    assert!(check.contains("train: 800 images"), "{check}");
    assert!(here.join("datasets/shapes.toml").exists());

    ok(&run(
        here,
        &[
            "train",
            "--quiet",
            "--set",
            "train.epochs=1",
            "--set",
            "train.imgsz=64",
            "--set",
            "train.batch=8",
            "--set",
            "data.fraction=0.05",
        ],
    ));
    let best = here.join("runs/train/weights/best.safetensors");
    assert!(best.exists(), "no {}", best.display());
    let best = best.to_str().unwrap();

    // The weights say yolov8n, 6 classes (with names), imgsz 64: nothing else is needed.
    let info = ok(&run(here, &["info", "--weights", best]));
    assert!(
        info.contains("summary (6 classes, from the weights)"),
        "{info}"
    );
    assert!(info.contains("at 64x64"), "{info}");
    let image = first_image(&here.join("datasets")).expect("a drawn image");
    let predicted = ok(&run(
        here,
        &[
            "predict",
            "--quiet",
            "--weights",
            best,
            "--source",
            image.to_str().unwrap(),
        ],
    ));
    assert!(predicted.contains("1 images"), "{predicted}");
    let validated = ok(&run(here, &["val", "--weights", best]));
    assert!(validated.contains("Average Precision"), "{validated}");
    assert!(
        validated.contains("at imgsz 64 (rect batches), 6 classes"),
        "the weights' size: {validated}"
    );

    // A choice that contradicts the weights is refused, naming the key and both values.
    let out = run(
        here,
        &[
            "predict",
            "--weights",
            best,
            "--source",
            image.to_str().unwrap(),
            "--set",
            "model.scale=s",
        ],
    );
    assert_user_error(&out, &["model.scale = s", "says n", best]);
    let out = run(here, &["info", "--weights", best, "--set", "model.nc=3"]);
    assert_user_error(&out, &["model.nc = 3", "says 6"]);

    // val, predict and info run where train.device says, as train does: here a backend this build may lack.
    let image = image.to_str().unwrap();
    for args in [
        vec!["info", "--weights", best],
        vec!["predict", "--quiet", "--weights", best, "--source", image],
        vec!["val", "--weights", best],
    ] {
        let mut args = args;
        args.extend(["--set", "train.device=ndarray"]);
        let out = run(here, &args);
        if cfg!(feature = "ndarray") {
            ok(&out);
        } else {
            assert_user_error(&out, &["burn-ndarray", "--features ndarray"]);
        }
    }
}
