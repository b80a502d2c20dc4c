//! `export` (issue #14): every parity case (../shared/parity, or `$YOLO_BURN_PARITY_DIR`) exported as ONNX,
//! run with tract (a runtime that is not ours), and compared with Ultralytics' decoded output `out.0`
//! `[1, 4 + nc, A]`.
//!
//! Tolerances (max abs difference): fp32 boxes 1e-3 px, scores 1e-4 (the model parity test's); fp16 boxes
//! 0.5 px, scores 1e-2 (f16 keeps 11 significant bits: 0.25 px of spacing between 256 and 512). The
//! DeepStream head must give the raw head's boxes as `predict` decodes them; the NMS head is checked
//! structurally (tract has no `EfficientNMS_TRT`) and up to the plugin's inputs numerically. The CLI tests
//! run the binary.

mod common;

use std::collections::HashMap;

use common::{assert_user_error, cases, read_tensors, yolo_burn, Array, Case};
use prost::Message;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;
use yolo_burn::backend::Cpu;
use yolo_burn::export::{
    export_onnx, BatchSize, ExportHead, ExportOptions, ExportPrecision, NmsOptions, TENSORRT_85_OPS,
};
use yolo_burn::model::weights::load_ultralytics;
use yolo_burn::model::Yolo;

fn load_model(case: &Case) -> Yolo<Cpu> {
    let model = case.model_config().init::<Cpu>(&Default::default());
    load_ultralytics(model, &case.file("weights")).unwrap_or_else(|e| panic!("{}: {e}", case.tag))
}

fn options(case: &Case, input: &Array) -> ExportOptions {
    let config = case.model_config();
    ExportOptions {
        opset: 17,
        precision: ExportPrecision::Fp32,
        batch: BatchSize::Static(1),
        imgsz: [input.shape[2], input.shape[3]],
        head: ExportHead::Raw,
        arch: config.arch,
        scale: config.scale,
        names: (0..config.nc).map(|i| format!("c{i}")).collect(),
    }
}

/// Runs an ONNX model with tract on one f32 input; returns every output as f32 (shape, values).
fn run_tract(bytes: &[u8], input: &Array) -> Vec<Array> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .expect("tract reads the model")
        .with_input_fact(0, f32::fact(input.shape.clone()).into())
        .expect("input fact")
        .into_optimized()
        .expect("tract optimises the model")
        .into_runnable()
        .expect("runnable");
    let tensor = Tensor::from_shape(&input.shape, &input.values).expect("input tensor");
    let outputs = model
        .run(tvec!(tensor.into()))
        .expect("tract runs the model");
    outputs
        .iter()
        .map(|t| {
            let t = t.cast_to::<f32>().expect("f32 output");
            Array {
                shape: t.shape().to_vec(),
                values: t
                    .to_plain_array_view::<f32>()
                    .expect("plain f32")
                    .iter()
                    .copied()
                    .collect(),
            }
        })
        .collect()
}

/// Max abs difference of `[1, C, A]` arrays over channels `lo..hi`.
fn channel_diff(ours: &Array, theirs: &Array, (lo, hi): (usize, usize)) -> f32 {
    assert_eq!(ours.shape, theirs.shape, "shape");
    let a = ours.shape[2];
    (lo * a..hi * a).fold(0f32, |m, i| {
        m.max((ours.values[i] - theirs.values[i]).abs())
    })
}

fn decode(bytes: &[u8]) -> ModelProto {
    ModelProto::decode(bytes).expect("valid ModelProto")
}

fn op_types(model: &ModelProto) -> Vec<String> {
    let graph = model.graph.as_ref().expect("graph");
    graph.node.iter().map(|n| n.op_type.clone()).collect()
}

fn metadata(model: &ModelProto) -> HashMap<String, String> {
    model
        .metadata_props
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect()
}

#[test]
fn raw_head_fp32_and_fp16_match_ultralytics_under_tract() {
    for case in cases() {
        let model = load_model(&case);
        let reference = read_tensors(&case.file("forward"));
        let input = &reference["input"];
        let expected = &reference["out.0"];
        let nc = model.head().nc;
        let mut sizes = Vec::new();
        for (precision, box_tol, score_tol) in [
            (ExportPrecision::Fp32, 1e-3, 1e-4),
            (ExportPrecision::Fp16, 0.5, 1e-2),
        ] {
            let opts = ExportOptions {
                precision,
                ..options(&case, input)
            };
            let exported = export_onnx(&model, &opts).unwrap();
            sizes.push(exported.bytes.len());
            let proto = decode(&exported.bytes);
            let graph = proto.graph.as_ref().unwrap();
            let float = match precision {
                ExportPrecision::Fp32 => DataType::Float,
                ExportPrecision::Fp16 => DataType::Float16,
            } as i32;
            // Every learned weight (the DFL's fixed 0..15 belongs to the f32 decode).
            let weights = graph
                .initializer
                .iter()
                .filter(|t| t.name.ends_with(".weight") && !t.name.contains(".dfl."));
            assert!(
                weights.clone().count() > 50,
                "{}: weight initializers",
                case.tag
            );
            assert!(
                weights.clone().all(|t| t.data_type == float),
                "{}: weight dtype",
                case.tag
            );

            let out = &run_tract(&exported.bytes, input)[0];
            let boxes = channel_diff(out, expected, (0, 4));
            let scores = channel_diff(out, expected, (4, 4 + nc));
            println!(
                "{} {}: boxes max abs diff {boxes:.3e} px (tolerance {box_tol}), scores {scores:.3e} \
                 (tolerance {score_tol}), {} bytes",
                case.tag,
                precision.name(),
                exported.bytes.len()
            );
            assert!(
                boxes <= box_tol,
                "{} {}: boxes {boxes}",
                case.tag,
                precision.name()
            );
            assert!(
                scores <= score_tol,
                "{} {}: scores {scores}",
                case.tag,
                precision.name()
            );
            // These random-init models score at most ~2e-4 (Detect's bias prior), so the absolute bound alone
            // is loose: also require 2% of the largest reference score.
            let top = expected.values[4 * out.shape[2]..]
                .iter()
                .fold(0f32, |m, v| m.max(*v));
            assert!(
                scores <= 0.02 * top,
                "{} {}: scores {scores} vs top {top}",
                case.tag,
                precision.name()
            );
        }
        assert!(
            (sizes[1] as f64) < 0.6 * sizes[0] as f64,
            "{}: fp16 file {} bytes vs fp32 {}",
            case.tag,
            sizes[1],
            sizes[0]
        );
    }
}

#[test]
fn deepstream_head_gives_predicts_top_boxes() {
    for case in cases() {
        let model = load_model(&case);
        let reference = read_tensors(&case.file("forward"));
        let input = &reference["input"];
        let opts = ExportOptions {
            head: ExportHead::DeepStream,
            ..options(&case, input)
        };
        let exported = export_onnx(&model, &opts).unwrap();
        let rows = &run_tract(&exported.bytes, input)[0];
        let [_, a, six]: [usize; 3] = rows.shape.clone().try_into().unwrap();
        assert_eq!(six, 6);

        // Our own model's `predict`: [1, 4 + nc, A] decoded, then xywh → xyxy, best class, as predict does.
        let images = burn::tensor::Tensor::<Cpu, 4>::from_data(
            burn::tensor::TensorData::new(input.values.clone(), input.shape.clone()),
            &Default::default(),
        );
        let decoded = model.predict(images).into_data().to_vec::<f32>().unwrap();
        let c = decoded.len() / a;
        let at = |ch: usize, i: usize| decoded[ch * a + i];
        let predicted: Vec<(f32, usize, [f32; 4])> = (0..a)
            .map(|i| {
                let (best, class) = (4..c).fold((f32::MIN, 0), |(m, k), ch| {
                    if at(ch, i) > m {
                        (at(ch, i), ch - 4)
                    } else {
                        (m, k)
                    }
                });
                let (cx, cy, w, h) = (at(0, i), at(1, i), at(2, i), at(3, i));
                (
                    best,
                    class,
                    [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
                )
            })
            .collect();
        let mut order: Vec<usize> = (0..a).collect();
        order.sort_by(|&x, &y| predicted[y].0.total_cmp(&predicted[x].0));
        let mut worst_box = 0f32;
        let mut worst_score = 0f32;
        for &i in order.iter().take(100) {
            let row = &rows.values[i * 6..i * 6 + 6];
            let (score, class, xyxy) = &predicted[i];
            for k in 0..4 {
                worst_box = worst_box.max((row[k] - xyxy[k]).abs());
            }
            worst_score = worst_score.max((row[4] - *score).abs());
            assert_eq!(row[5], *class as f32, "{}: class of anchor {i}", case.tag);
        }
        println!(
            "{} deepstream: top-100 boxes max abs diff {worst_box:.3e} px, scores {worst_score:.3e}",
            case.tag
        );
        assert!(worst_box <= 1e-3, "{}: boxes {worst_box}", case.tag);
        assert!(worst_score <= 1e-5, "{}: scores {worst_score}", case.tag);
    }
}

#[test]
fn nms_head_feeds_efficient_nms_the_raw_head() {
    let case = cases().into_iter().next().expect("a parity case");
    let model = load_model(&case);
    let reference = read_tensors(&case.file("forward"));
    let input = &reference["input"];
    let nms = NmsOptions {
        iou: 0.6,
        conf: 0.3,
        max_det: 100,
    };
    let opts = ExportOptions {
        head: ExportHead::Nms(nms),
        batch: BatchSize::Dynamic,
        ..options(&case, input)
    };
    let exported = export_onnx(&model, &opts).unwrap();
    let mut proto = decode(&exported.bytes);
    let meta = metadata(&proto);
    assert_eq!(meta["head"], "nms");
    assert_eq!(meta["batch"], "dynamic");
    assert_eq!(meta["iou"], "0.6");
    assert_eq!(meta["max_det"], "100");
    let graph = proto.graph.as_mut().unwrap();
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        outputs,
        ["num_dets", "det_boxes", "det_scores", "det_classes"]
    );
    let node = graph.node.pop().unwrap();
    assert_eq!(node.op_type, "EfficientNMS_TRT");
    assert_eq!(node.output, outputs);
    let attr = |name: &str| node.attribute.iter().find(|a| a.name == name).unwrap();
    assert_eq!(attr("max_output_boxes").i, 100);
    assert_eq!(attr("background_class").i, -1);
    assert_eq!(attr("box_coding").i, 1);
    assert_eq!(attr("score_activation").i, 0);
    assert_eq!(attr("plugin_version").s, b"1");
    assert!((attr("iou_threshold").f - 0.6).abs() < 1e-7);
    assert!((attr("score_threshold").f - 0.3).abs() < 1e-7);

    // Cut the plugin off: its two inputs become the outputs, and must be the raw head, transposed.
    graph.output.truncate(2);
    for (o, name) in graph.output.iter_mut().zip(&node.input) {
        o.name = name.clone();
        o.r#type = None;
    }
    let outs = run_tract(&proto.encode_to_vec(), input);
    let expected = &reference["out.0"];
    let (c, a) = (expected.shape[1], expected.shape[2]);
    assert_eq!(outs[0].shape, [1, a, 4]);
    assert_eq!(outs[1].shape, [1, a, c - 4]);
    let mut worst = 0f32;
    for i in 0..a {
        for ch in 0..c {
            let ours = if ch < 4 {
                outs[0].values[i * 4 + ch]
            } else {
                outs[1].values[i * (c - 4) + ch - 4]
            };
            worst = worst.max((ours - expected.values[ch * a + i]).abs());
        }
    }
    println!("{} nms inputs: max abs diff {worst:.3e}", case.tag);
    assert!(worst <= 1e-3, "{}: {worst}", case.tag);
}

#[test]
fn every_variant_uses_only_tensorrt_85_ops() {
    for case in cases() {
        let model = load_model(&case);
        let input = &read_tensors(&case.file("forward"))["input"];
        let nms = ExportHead::Nms(NmsOptions {
            iou: 0.7,
            conf: 0.25,
            max_det: 300,
        });
        for head in [ExportHead::Raw, ExportHead::DeepStream, nms] {
            for precision in [ExportPrecision::Fp32, ExportPrecision::Fp16] {
                for batch in [BatchSize::Static(2), BatchSize::Dynamic] {
                    for opset in [13, 17] {
                        let opts = ExportOptions {
                            head,
                            precision,
                            batch,
                            opset,
                            ..options(&case, input)
                        };
                        let proto = decode(&export_onnx(&model, &opts).unwrap().bytes);
                        let allowed = |op: &str| {
                            TENSORRT_85_OPS.contains(&op)
                                || (head.name() == "nms" && op == "EfficientNMS_TRT")
                        };
                        for op in op_types(&proto) {
                            assert!(allowed(&op), "{} {opts:?}: op {op}", case.tag);
                        }
                        assert_eq!(proto.opset_import[0].version, opset);
                        let graph = proto.graph.unwrap();
                        // f32 in and out whatever the precision inside (int32 for NMS counts and classes).
                        for value in graph.input.iter().chain(&graph.output) {
                            let ty = format!("{:?}", value.r#type);
                            let int = ["num_dets", "det_classes"].contains(&value.name.as_str());
                            let want = if int { "Int32" } else { "Float" };
                            assert!(ty.contains(&format!("elem_type: {want},")), "{ty}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn metadata_names_the_model_and_its_interface() {
    let case = cases().into_iter().next().expect("a parity case");
    let model = load_model(&case);
    let input = &read_tensors(&case.file("forward"))["input"];
    let opts = ExportOptions {
        precision: ExportPrecision::Fp16,
        ..options(&case, input)
    };
    let proto = decode(&export_onnx(&model, &opts).unwrap().bytes);
    let meta = metadata(&proto);
    let config = case.model_config();
    assert_eq!(meta["producer"], "yolo-burn");
    assert_eq!(meta["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(meta["arch"], config.arch.to_string());
    assert_eq!(meta["scale"], config.scale.to_string());
    assert_eq!(meta["nc"], config.nc.to_string());
    assert_eq!(meta["stride"], "[8, 16, 32]");
    assert_eq!(
        meta["imgsz"],
        format!("[{}, {}]", input.shape[2], input.shape[3])
    );
    assert_eq!(meta["batch"], "1");
    assert_eq!(meta["precision"], "fp16");
    assert_eq!(meta["head"], "raw");
    let names: Vec<String> = serde_json::from_str(&meta["names"]).unwrap();
    assert_eq!(names.len(), config.nc);
    assert_eq!(proto.ir_version, 8);
}

/// The `--set`s that describe a parity case's weights (Ultralytics' files carry no metadata).
fn case_sets(case: &Case) -> Vec<String> {
    let config = case.model_config();
    vec![
        "--set".into(),
        format!("model.arch={}", config.arch),
        "--set".into(),
        format!("model.scale={}", config.scale),
        "--set".into(),
        format!("model.nc={}", config.nc),
    ]
}

#[test]
fn cli_export_writes_the_file_and_prints_its_interface() {
    let case = cases().into_iter().next().expect("a parity case");
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("model.onnx");
    let mut args: Vec<String> = vec![
        "export".into(),
        "--weights".into(),
        case.file("weights").display().to_string(),
        "--imgsz".into(),
        "320".into(),
        "256".into(),
        "--head".into(),
        "deepstream".into(),
        "--half".into(),
        "--output".into(),
        output.display().to_string(),
    ];
    args.extend(case_sets(&case));
    let out = yolo_burn(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        output.display().to_string().as_str(),
        "head deepstream",
        "precision fp16",
        "opset 17",
        "images f32 [1, 3, 320, 256]",
        "output0 f32 [1, 1680, 6]",
    ] {
        assert!(stdout.contains(needle), "stdout lacks {needle:?}: {stdout}");
    }
    let proto = decode(&std::fs::read(&output).unwrap());
    assert_eq!(metadata(&proto)["head"], "deepstream");
}

#[test]
fn cli_export_refuses_bad_options_with_the_allowed_values() {
    let case = cases().into_iter().next().expect("a parity case");
    let weights = case.file("weights").display().to_string();
    let refusals: [(&[&str], &[&str]); 4] = [
        (&["--opset", "18"], &["--opset 18", "use 13 to 17"]),
        (&["--opset", "11"], &["--opset 11", "use 13 to 17"]),
        (&["--imgsz", "330"], &["--imgsz 330 330", "multiple of 32"]),
        (&["--set", "export.opset=12"], &["export.opset", "13 to 17"]),
    ];
    for (extra, needles) in refusals {
        let mut args: Vec<String> = vec!["export".into(), "--weights".into(), weights.clone()];
        args.extend(case_sets(&case));
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = yolo_burn(&args);
        assert_user_error(&out, needles);
    }
    // A class count that contradicts nothing but is wrong for the file: the weights refuse to load.
    let out = yolo_burn(&[
        "export",
        "--weights",
        &weights,
        "--set",
        "model.arch=yolo11",
        "--set",
        "model.scale=n",
    ]);
    assert_user_error(&out, &[&weights]);
}
