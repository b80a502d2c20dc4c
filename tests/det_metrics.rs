//! Ultralytics' own validation metrics (`src/eval/det_metrics.rs`) against Ultralytics 8.4.190 itself:
//! `match_predictions`' true-positive matrix per image, then `ap_per_class`'s per-class AP at ten IoUs, P, R
//! and F1, and the means `yolo val` prints, on synthetic cases made by `scripts/make_ap_per_class_case.py`.

use serde::Deserialize;
use yolo_burn::eval::det_metrics::{ap_per_class, box_iou, iou_thresholds, match_predictions};

#[derive(Deserialize)]
struct Cases {
    source: String,
    iou_thresholds: Vec<f64>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    images: Vec<Image>,
    classes: Vec<usize>,
    ap: Vec<Vec<f64>>,
    p: Vec<f64>,
    r: Vec<f64>,
    f1: Vec<f64>,
    mp: f64,
    mr: f64,
    map50: f64,
    map: f64,
}

#[derive(Deserialize)]
struct Image {
    gt_xyxy: Vec<[f32; 4]>,
    gt_cls: Vec<usize>,
    pred_xyxy: Vec<[f32; 4]>,
    pred_conf: Vec<f32>,
    pred_cls: Vec<usize>,
    tp: Vec<Vec<bool>>,
}

/// Float64 sums in another order than numpy's: equal to 1e-9.
const TOL: f64 = 1e-9;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= TOL
}

#[test]
fn matches_and_metrics_equal_ultralytics() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ap_per_class.json");
    let cases: Cases = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(cases.source.contains("ultralytics"), "{}", cases.source);
    let thresholds = iou_thresholds();
    for (ours, theirs) in thresholds.iter().zip(&cases.iou_thresholds) {
        assert_eq!(f64::from(*ours), *theirs, "IoU thresholds");
    }
    assert!(cases.cases.len() >= 3);
    for case in &cases.cases {
        let (mut tp, mut conf, mut pred_cls, mut target_cls) = (vec![], vec![], vec![], vec![]);
        for (k, image) in case.images.iter().enumerate() {
            let iou = box_iou(&image.gt_xyxy, &image.pred_xyxy);
            let ours = match_predictions(&image.pred_cls, &image.gt_cls, &iou, &thresholds);
            let theirs: Vec<[bool; 10]> = image
                .tp
                .iter()
                .map(|row| std::array::from_fn(|j| row[j]))
                .collect();
            assert_eq!(ours, theirs, "{} image {k}: true positives", case.name);
            tp.extend(ours);
            conf.extend(&image.pred_conf);
            pred_cls.extend(&image.pred_cls);
            target_cls.extend(&image.gt_cls);
        }
        let m = ap_per_class(&tp, &conf, &pred_cls, &target_cls);
        assert_eq!(m.classes, case.classes, "{}: classes", case.name);
        for (k, (ours, theirs)) in m.ap.iter().zip(&case.ap).enumerate() {
            for (j, (a, b)) in ours.iter().zip(theirs).enumerate() {
                assert!(close(*a, *b), "{} class {k} AP@{j}: {a} vs {b}", case.name);
            }
        }
        for (k, c) in m.best.per_class.iter().enumerate() {
            assert!(close(c.precision, case.p[k]), "{} P[{k}]", case.name);
            assert!(close(c.recall, case.r[k]), "{} R[{k}]", case.name);
            assert!(close(c.f1, case.f1[k]), "{} F1[{k}]", case.name);
        }
        assert!(close(m.best.precision, case.mp), "{} mP", case.name);
        assert!(close(m.best.recall, case.mr), "{} mR", case.name);
        assert!(
            close(m.map50(), case.map50),
            "{} mAP50 {} vs {}",
            case.name,
            m.map50(),
            case.map50
        );
        assert!(
            close(m.map50_95(), case.map),
            "{} mAP50-95 {} vs {}",
            case.name,
            m.map50_95(),
            case.map
        );
    }
}
