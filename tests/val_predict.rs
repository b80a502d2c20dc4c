//! `val` on a checkpoint and `predict` on images, end to end through the binary, with the imported
//! Ultralytics parity weights (random init, so the numbers are near zero, but every detection counts).

use std::path::Path;

mod common;
use common::{shared, yolo_burn};

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn val_predictions_json_reevaluates_to_the_printed_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gt = shared("datasets/coco-json/instances_train2017_coco128.json");
    let weights = shared("parity/yolov8n.weights.safetensors");
    let set = |kv: String| ["--set".to_string(), kv];
    let mut args: Vec<String> = vec![
        "val".into(),
        "--weights".into(),
        weights.display().to_string(),
    ];
    for kv in [
        format!("data.dataset={}", gt.display()),
        format!(
            "data.images={}",
            shared("datasets/coco128/images/train2017").display()
        ),
        format!("train.project={}", dir.path().display()),
        "train.imgsz=160".into(),
        "model.nc=80".into(),
        // Random-init class scores sit near 1e-5: a lower threshold keeps 300 detections per image.
        "eval.conf=0.000001".into(),
    ] {
        args.extend(set(kv));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = yolo_burn(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        printed.contains("Class") && printed.contains("person"),
        "{printed}"
    );
    let run = dir.path().join("val");
    for file in [
        "predictions.json",
        "metrics.json",
        "PR_curve.png",
        "confusion_matrix.png",
    ] {
        assert!(run.join(file).exists(), "{file} missing");
    }
    let predictions: serde_json::Value =
        serde_json::from_str(&text(&run.join("predictions.json"))).expect("json");
    assert!(predictions.as_array().expect("array").len() > 1000);

    let again = yolo_burn(&[
        "val",
        "--gt",
        gt.to_str().expect("utf-8"),
        "--predictions",
        run.join("predictions.json").to_str().expect("utf-8"),
        "--json",
    ]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let reevaluated: serde_json::Value = serde_json::from_slice(&again.stdout).expect("json");
    let metrics: serde_json::Value =
        serde_json::from_str(&text(&run.join("metrics.json"))).expect("json");
    assert_eq!(
        reevaluated, metrics["coco"],
        "re-evaluating predictions.json must give exactly val's numbers"
    );
    // And the text val printed is pycocotools' summary of those numbers.
    let ap = reevaluated["AP"].as_f64().expect("AP");
    assert!(
        printed.contains(&format!("maxDets=100 ] = {ap:.3}")),
        "{printed}"
    );
}

#[test]
fn predict_writes_images_json_and_txt_in_original_pixels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("images");
    std::fs::create_dir_all(&source).expect("mkdir");
    for entry in std::fs::read_dir(shared("datasets/coco8/images/val")).expect("coco8") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, source.join(path.file_name().expect("name"))).expect("copy");
    }
    let weights = shared("parity/yolov8n.weights.safetensors");
    let project = format!("train.project={}", dir.path().join("runs").display());
    let run = |source: &Path| {
        yolo_burn(&[
            "predict",
            "--quiet",
            "--save-txt",
            "--weights",
            weights.to_str().expect("utf-8"),
            "--source",
            source.to_str().expect("utf-8"),
            "--set",
            &project,
            "--set",
            "model.nc=80",
            "--set",
            "train.imgsz=256",
            "--set",
            "eval.conf=0.000001",
        ])
    };
    let out = run(&source);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results = dir.path().join("runs/predict");
    let mut checked = 0;
    for entry in std::fs::read_dir(&source).expect("sources") {
        let path = entry.expect("entry").path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("stem")
            .to_string();
        let (w, h) = image::image_dimensions(&path).expect("size");
        let annotated = image::image_dimensions(results.join(path.file_name().expect("name")))
            .expect("annotated");
        assert_eq!(annotated, (w, h), "annotated copy keeps the original size");
        let json: serde_json::Value =
            serde_json::from_str(&text(&results.join(format!("{stem}.json")))).expect("json");
        let detections = json.as_array().expect("array");
        assert!(!detections.is_empty());
        let txt = text(&results.join("labels").join(format!("{stem}.txt")));
        assert_eq!(txt.lines().count(), detections.len());
        for (det, line) in detections.iter().zip(txt.lines()) {
            let b = &det["box"];
            let [x1, y1, x2, y2] =
                ["x1", "y1", "x2", "y2"].map(|k| b[k].as_f64().expect("coordinate"));
            assert!(
                0.0 <= x1
                    && x1 <= x2
                    && x2 <= f64::from(w)
                    && 0.0 <= y1
                    && y1 <= y2
                    && y2 <= f64::from(h)
            );
            // The txt line is the same box normalised by the original size.
            let v: Vec<f64> = line
                .split(' ')
                .skip(1)
                .map(|t| t.parse().expect("number"))
                .collect();
            assert!(
                (v[0] * f64::from(w) - (x1 + x2) / 2.0).abs() < 0.01,
                "{line} vs {b}"
            );
            assert!(
                (v[3] * f64::from(h) - (y2 - y1)).abs() < 0.01,
                "{line} vs {b}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 4);

    // An unreadable source is named, exit 2, and the readable ones are still written.
    std::fs::write(source.join("broken.jpg"), b"not an image").expect("write");
    let out = run(&source);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("broken.jpg") && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(
        dir.path()
            .join("runs/predict2")
            .read_dir()
            .expect("second run")
            .count()
            >= 8
    );
    let missing = yolo_burn(&[
        "predict",
        "--source",
        "/nonexistent/*.jpg",
        "--weights",
        weights.to_str().expect("utf-8"),
    ]);
    assert_eq!(missing.status.code(), Some(2));
}
