//! COCO evaluation parity with pycocotools 2.0.11: the two shared reference vectors
//! (../shared/datasets/coco-eval-vectors, see its README.txt) and the edge cases under tests/data/coco_eval/
//! made by scripts/make_coco_eval_cases.py. Every stat and every per-category AP must agree to 1e-6.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use yolo_burn::eval::coco::{evaluate, read_detections, CocoEvaluation, CocoGroundTruth};

const TOLERANCE: f64 = 1e-6;

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/coco-eval-vectors")
}

fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/coco_eval")
}

fn run(gt: &Path, dt: &Path) -> CocoEvaluation {
    let gt = CocoGroundTruth::from_path(gt).expect("ground truth");
    let dts = read_detections(dt, &gt).expect("detections");
    evaluate(&gt, &dts)
}

fn assert_close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= TOLERANCE,
        "{what}: got {got:.17}, pycocotools {want:.17}"
    );
}

fn assert_stats(case: &str, got: &[f64; 12], want: &[f64]) {
    assert_eq!(want.len(), 12, "{case}: expected file has 12 stats");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_close(&format!("{case} stat {i}"), *g, *w);
    }
}

fn per_category(eval: &CocoEvaluation) -> BTreeMap<i64, f64> {
    eval.categories
        .iter()
        .map(|c| c.id)
        .zip(eval.per_category_ap.iter().copied())
        .collect()
}

#[derive(Deserialize)]
struct CocoapiExpected {
    stats: BTreeMap<String, f64>,
    #[serde(rename = "per_category_all_maxDets100")]
    per_category: BTreeMap<String, CocoapiCategory>,
    #[serde(rename = "AP_per_iou_threshold_all_maxDets100")]
    ap_per_iou: BTreeMap<String, f64>,
}

#[derive(Deserialize)]
struct CocoapiCategory {
    #[serde(rename = "AP")]
    ap: f64,
    #[serde(rename = "AP50")]
    ap50: f64,
    #[serde(rename = "AP75")]
    ap75: f64,
}

/// Mean of the defined precision values of one category at one IoU threshold (area all, maxDets 100).
fn category_ap_at(eval: &CocoEvaluation, k: usize, t: usize) -> f64 {
    let values: Vec<f64> = (0..101).map(|r| eval.precision_at(t, r, k, 0, 2)).collect();
    yolo_burn::eval::coco::summary::mean_of_defined(&values)
}

#[test]
fn cocoapi_val2014_100_matches_pycocotools() {
    let dir = vectors().join("cocoapi-val2014-100");
    let eval = run(
        &dir.join("instances_val2014_100.json"),
        &dir.join("instances_val2014_fakebbox100_results.json"),
    );
    let text =
        std::fs::read_to_string(dir.join("expected_pycocotools_bbox.json")).expect("expected");
    let expected: CocoapiExpected = serde_json::from_str(&text).expect("parse expected");
    // The file's keys are in pycocotools' order once sorted by how summarize() lists them.
    let order = [
        "AP@[.50:.95]_all_100",
        "AP@.50_all_100",
        "AP@.75_all_100",
        "AP_small",
        "AP_medium",
        "AP_large",
        "AR_all_maxDets1",
        "AR_all_maxDets10",
        "AR_all_maxDets100",
        "AR_small",
        "AR_medium",
        "AR_large",
    ];
    let want: Vec<f64> = order.iter().map(|k| expected.stats[*k]).collect();
    assert_stats("cocoapi", &eval.stats.0, &want);
    assert_eq!(
        eval.stats.0[0], want[0],
        "AP is bit-identical to pycocotools"
    );

    for (t, (label, want)) in expected.ap_per_iou.iter().enumerate() {
        let values: Vec<f64> = (0..101)
            .flat_map(|r| (0..eval.num_categories()).map(move |k| (r, k)))
            .map(|(r, k)| eval.precision_at(t, r, k, 0, 2))
            .collect();
        let got = yolo_burn::eval::coco::summary::mean_of_defined(&values);
        assert_close(&format!("AP@{label}"), got, *want);
    }

    let got = per_category(&eval);
    assert_eq!(got.len(), 80);
    for (id, want) in &expected.per_category {
        let id: i64 = id.parse().expect("category id");
        let k = eval
            .categories
            .iter()
            .position(|c| c.id == id)
            .expect("category");
        assert_close(&format!("category {id} AP"), got[&id], want.ap);
        assert_close(
            &format!("category {id} AP50"),
            category_ap_at(&eval, k, 0),
            want.ap50,
        );
        assert_close(
            &format!("category {id} AP75"),
            category_ap_at(&eval, k, 5),
            want.ap75,
        );
    }
}

#[derive(Deserialize)]
struct Detectron2Expected {
    experiments: BTreeMap<String, Detectron2Experiment>,
}

#[derive(Deserialize)]
struct Detectron2Experiment {
    stats: Vec<f64>,
}

#[test]
fn detectron2_tiny_matches_pycocotools() {
    let dir = vectors().join("detectron2-tiny-val2017");
    let eval = run(&dir.join("gt.json"), &dir.join("dt.json"));
    let text =
        std::fs::read_to_string(dir.join("expected_pycocotools_bbox.json")).expect("expected");
    let expected: Detectron2Expected = serde_json::from_str(&text).expect("parse expected");
    assert_stats(
        "detectron2 full",
        &eval.stats.0,
        &expected.experiments["full"].stats,
    );
}

/// What scripts/make_coco_eval_cases.py writes next to each case's gt.json and dt.json.
#[derive(Deserialize)]
struct CaseExpected {
    description: String,
    stats: Vec<f64>,
    #[serde(rename = "per_category_AP")]
    per_category_ap: BTreeMap<String, f64>,
}

fn check_case(name: &str) {
    let dir = cases().join(name);
    let eval = run(&dir.join("gt.json"), &dir.join("dt.json"));
    let text = std::fs::read_to_string(dir.join("expected.json")).expect("expected");
    let expected: CaseExpected = serde_json::from_str(&text).expect("parse expected");
    println!("{name}: {}", expected.description);
    assert_stats(name, &eval.stats.0, &expected.stats);
    let got = per_category(&eval);
    assert_eq!(
        got.len(),
        expected.per_category_ap.len(),
        "{name}: categories"
    );
    for (id, want) in &expected.per_category_ap {
        let id: i64 = id.parse().expect("category id");
        assert_close(&format!("{name} category {id}"), got[&id], *want);
    }
}

#[test]
fn crowd_matches_pycocotools() {
    check_case("crowd");
}

#[test]
fn empty_images_match_pycocotools() {
    check_case("empty_images");
}

#[test]
fn over_100_detections_per_image_match_pycocotools() {
    check_case("many_detections");
}

#[test]
fn tied_scores_match_pycocotools() {
    check_case("ties");
}

#[test]
fn categories_without_gt_match_pycocotools() {
    check_case("missing_categories");
}

#[test]
fn random_mixture_matches_pycocotools() {
    check_case("random_mixture");
}

#[test]
fn dataset_index_as_ground_truth_scores_perfect_detections_as_one() {
    use yolo_burn::data::{read_index, SplitName};
    use yolo_burn::eval::coco::{evaluate, CocoGroundTruth, DetectionBox};
    let yaml = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/datasets/coco128/coco128.yaml");
    let index = read_index(&yaml, None, SplitName::Train).expect("coco128");
    let gt = CocoGroundTruth::from_index(&index);
    assert_eq!(gt.image_ids.len(), 128);
    assert_eq!(gt.annotations.len(), 929);
    let detections: Vec<DetectionBox> = gt
        .annotations
        .iter()
        .map(|a| DetectionBox {
            image_id: a.image_id,
            category_id: a.category_id,
            bbox_xywh: a.bbox_xywh,
            score: 0.9,
        })
        .collect();
    let stats = evaluate(&gt, &detections).report();
    let ap = stats.stats.0;
    assert!(
        (ap[0] - 1.0).abs() < 1e-12 && (ap[1] - 1.0).abs() < 1e-12,
        "{ap:?}"
    );
}
