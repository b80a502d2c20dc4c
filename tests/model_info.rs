//! Every scale of both architectures against Ultralytics 8.4.190's own summary
//! (tests/data/ultralytics_model_info.json, made by scripts/model_info_reference.py): parameter count exactly,
//! the state_dict key set's size exactly, and GFLOPs at 640 within 2% (the bound; we count as thop does,
//! so the difference is expected to be far smaller).

use std::collections::BTreeMap;

use serde::Deserialize;
use yolo_burn::backend::Cpu;
use yolo_burn::config::{Arch, ScaleName};
use yolo_burn::model::weights::state_dict_keys;
use yolo_burn::model::YoloConfig;

#[derive(Deserialize)]
struct Reference {
    models: BTreeMap<String, ModelInfo>,
}

#[derive(Deserialize)]
struct ModelInfo {
    nc: usize,
    params: usize,
    gflops_640: f64,
    state_dict_keys_with_num_batches_tracked: usize,
}

fn reference() -> Reference {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/ultralytics_model_info.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("reference json")).expect("parse")
}

#[test]
fn every_scale_matches_ultralytics_summary() {
    let reference = reference();
    assert_eq!(
        reference.models.len(),
        10,
        "five scales of two architectures"
    );
    for (name, info) in &reference.models {
        let (family, scale) = name.split_at(name.len() - 1);
        let arch: Arch = family.parse().expect("arch");
        let scale: ScaleName = scale.parse().expect("scale");
        let model = YoloConfig::new(arch, scale, info.nc).init::<Cpu>(&Default::default());
        assert_eq!(model.num_parameters(), info.params, "{name}: parameters");
        let keys = state_dict_keys(&model);
        assert_eq!(
            keys.len(),
            info.state_dict_keys_with_num_batches_tracked,
            "{name}: state_dict keys"
        );
        let gflops = model.gflops([640, 640]);
        let relative = (gflops - info.gflops_640).abs() / info.gflops_640;
        println!(
            "{name}: {} params, {gflops:.4} GFLOPs vs {:.4} ({:.3}%)",
            info.params,
            info.gflops_640,
            100.0 * relative
        );
        assert!(
            relative < 0.02,
            "{name}: {gflops} GFLOPs vs Ultralytics {}",
            info.gflops_640
        );
    }
}
