//! `yolo-burn val --gt --predictions` end to end: the pycocotools text and `--json` on the cocoapi reference
//! vector, and clean exit-2 errors naming the bad file.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{assert_user_error, yolo_burn};

use serde_json::Value;

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/datasets/coco-eval-vectors/cocoapi-val2014-100")
}

fn val(args: &[&std::ffi::OsStr]) -> Output {
    let mut all: Vec<&std::ffi::OsStr> = vec!["val".as_ref()];
    all.extend_from_slice(args);
    yolo_burn(&all)
}

fn gt() -> PathBuf {
    vectors().join("instances_val2014_100.json")
}

fn results() -> PathBuf {
    vectors().join("instances_val2014_fakebbox100_results.json")
}

#[test]
fn val_json_matches_pycocotools_numbers() {
    let out = val(&[
        "--gt".as_ref(),
        gt().as_os_str(),
        "--predictions".as_ref(),
        results().as_os_str(),
        "--json".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let text = std::fs::read_to_string(vectors().join("expected_pycocotools_bbox.json"))
        .expect("expected");
    let expected: Value = serde_json::from_str(&text).expect("parse expected");
    let pairs = [
        ("AP", "AP@[.50:.95]_all_100"),
        ("AP50", "AP@.50_all_100"),
        ("AP75", "AP@.75_all_100"),
        ("APs", "AP_small"),
        ("APm", "AP_medium"),
        ("APl", "AP_large"),
        ("AR1", "AR_all_maxDets1"),
        ("AR10", "AR_all_maxDets10"),
        ("AR100", "AR_all_maxDets100"),
        ("ARs", "AR_small"),
        ("ARm", "AR_medium"),
        ("ARl", "AR_large"),
    ];
    for (ours, theirs) in pairs {
        let g = got[ours].as_f64().expect(ours);
        let w = expected["stats"][theirs].as_f64().expect(theirs);
        assert!((g - w).abs() <= 1e-6, "{ours}: {g} vs {w}");
    }
    let per_category = got["per_category_AP"].as_object().expect("per_category_AP");
    let want = expected["per_category_all_maxDets100"]
        .as_object()
        .expect("per category");
    // The reference lists the 76 categories with GT or detections; the other 4 of the 80 are -1.
    assert_eq!(per_category.len(), 80);
    for (id, value) in per_category {
        if !want.contains_key(id) {
            assert_eq!(
                value.as_f64(),
                Some(-1.0),
                "category {id} has neither GT nor detections"
            );
        }
    }
    for (id, entry) in want {
        let g = per_category[id].as_f64().expect("AP");
        let w = entry["AP"].as_f64().expect("AP");
        assert!((g - w).abs() <= 1e-6, "category {id}: {g} vs {w}");
    }
}

#[test]
fn val_text_is_pycocotools_summary() {
    let out = val(&[
        "--gt".as_ref(),
        gt().as_os_str(),
        "--predictions".as_ref(),
        results().as_os_str(),
    ]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 12);
    assert_eq!(
        lines[0],
        " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.505"
    );
    assert_eq!(
        lines[11],
        " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.564"
    );
}

fn assert_clean_failure(out: &Output, names: &str) {
    assert_user_error(out, &[names]);
}

#[test]
fn val_missing_gt_exits_2_naming_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing_instances.json");
    let out = val(&[
        "--gt".as_ref(),
        missing.as_os_str(),
        "--predictions".as_ref(),
        results().as_os_str(),
    ]);
    assert_clean_failure(&out, "missing_instances.json");
}

#[test]
fn val_malformed_predictions_exits_2_naming_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("broken_results.json");
    std::fs::write(&bad, "[{\"image_id\": 42, \"bbox\": [1, 2").expect("write");
    let out = val(&[
        "--gt".as_ref(),
        gt().as_os_str(),
        "--predictions".as_ref(),
        bad.as_os_str(),
    ]);
    assert_clean_failure(&out, "broken_results.json");
}

#[test]
fn val_dangling_image_id_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("dangling.json");
    std::fs::write(
        &bad,
        r#"[{"image_id": 999999, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}]"#,
    )
    .expect("write");
    let out = val(&[
        "--gt".as_ref(),
        gt().as_os_str(),
        "--predictions".as_ref(),
        bad.as_os_str(),
    ]);
    assert_clean_failure(&out, "image_id 999999");
}

#[test]
fn val_of_a_model_without_weights_says_how_to_give_them() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/yolo.toml");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/coco8/coco8.yaml");
    let data = format!("data.dataset={}", data.display());
    let out = val(&[
        "--config".as_ref(),
        config.as_os_str(),
        "--set".as_ref(),
        data.as_ref(),
    ]);
    assert_clean_failure(&out, "--weights");
}
