//! `val` and `predict` on an exported ONNX file (issue #14, "run what you export"), run with tract.
//!
//! Tiny hand-written graphs (tract's `pb` types) stand in for exports: their `output0` is a constant per image,
//! so the boxes that come out are known exactly, through the letterbox and back. They check both heads, static
//! and dynamic batches (a static batch of 2 over 3 images pads the last chunk), and the refusals: a file
//! without our metadata, the `nms` head, and a `model.nc` that contradicts the file. The last test exports the
//! parity weights with `yolo_burn::export` and compares `predict`'s boxes with the Burn model's.

mod common;

use std::path::Path;

use common::{assert_user_error, shared, yolo_burn};
use prost::Message;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};
use tract_onnx::pb::{
    attribute_proto::AttributeType, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

/// Two classes; three anchors, in the 64×64 input's pixels: a class-1 box (score 0.9), a class-0 box (0.8), and
/// one under every threshold.
const NAMES: [&str; 2] = ["cat", "dog"];
/// cx, cy, w, h, score of class 0, score of class 1, per anchor.
const ANCHORS: [[f32; 6]; 3] = [
    [32.0, 32.0, 20.0, 10.0, 0.0, 0.9],
    [10.0, 30.0, 8.0, 8.0, 0.8, 0.0],
    [50.0, 50.0, 4.0, 4.0, 1e-4, 0.0],
];

/// What the tiny graph is: its head and batch, and whether it carries our metadata.
struct Tiny {
    head: &'static str,
    /// `None`: a dynamic (`dim_param`) batch.
    batch: Option<usize>,
    metadata: bool,
}

/// The constant output of one image: `[1, 6, 3]` for `raw`, `[1, 3, 6]` for `deepstream`.
fn constant(head: &str) -> (Vec<i64>, Vec<f32>) {
    if head == "deepstream" {
        let rows = ANCHORS.iter().flat_map(|&[cx, cy, w, h, c0, c1]| {
            let (score, class) = if c1 > c0 { (c1, 1.0) } else { (c0, 0.0) };
            [
                cx - w / 2.0,
                cy - h / 2.0,
                cx + w / 2.0,
                cy + h / 2.0,
                score,
                class,
            ]
        });
        (vec![1, 3, 6], rows.collect())
    } else {
        let values = (0..6).flat_map(|c| ANCHORS.iter().map(move |a| a[c]));
        (vec![1, 6, 3], values.collect())
    }
}

fn tensor_type(dims: Vec<dimension::Value>) -> Option<TypeProto> {
    Some(TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: DataType::Float as i32,
            shape: Some(TensorShapeProto {
                dim: dims
                    .into_iter()
                    .map(|v| Dimension {
                        value: Some(v),
                        ..Default::default()
                    })
                    .collect(),
            }),
        })),
        ..Default::default()
    })
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        name: output.into(),
        op_type: op.into(),
        attribute,
        ..Default::default()
    }
}

/// `output0 = constant + 0 · mean(images)`: the batch dimension follows the input, the values do not.
fn tiny_onnx(spec: &Tiny) -> Vec<u8> {
    let batch = match spec.batch {
        Some(b) => dimension::Value::DimValue(b as i64),
        None => dimension::Value::DimParam("batch".into()),
    };
    let (const_dims, const_values) = constant(spec.head);
    let out_dims: Vec<dimension::Value> = std::iter::once(batch.clone())
        .chain(
            const_dims[1..]
                .iter()
                .map(|&d| dimension::Value::DimValue(d)),
        )
        .collect();
    let f32_tensor = |name: &str, dims: Vec<i64>, values: Vec<f32>| TensorProto {
        name: name.into(),
        dims,
        data_type: DataType::Float as i32,
        float_data: values,
        ..Default::default()
    };
    let graph = GraphProto {
        name: "tiny".into(),
        node: vec![
            node(
                "ReduceMean",
                &["images"],
                "mean",
                vec![AttributeProto {
                    name: "axes".into(),
                    r#type: AttributeType::Ints as i32,
                    ints: vec![1, 2, 3],
                    ..Default::default()
                }],
            ),
            node("Reshape", &["mean", "shape3"], "mean3", vec![]),
            node("Mul", &["mean3", "zero"], "nothing", vec![]),
            node("Add", &["nothing", "anchors"], "output0", vec![]),
        ],
        initializer: vec![
            f32_tensor("zero", vec![], vec![0.0]),
            f32_tensor("anchors", const_dims, const_values),
            TensorProto {
                name: "shape3".into(),
                dims: vec![3],
                data_type: DataType::Int64 as i32,
                int64_data: vec![-1, 1, 1],
                ..Default::default()
            },
        ],
        input: vec![ValueInfoProto {
            name: "images".into(),
            r#type: tensor_type(vec![
                batch,
                dimension::Value::DimValue(3),
                dimension::Value::DimValue(64),
                dimension::Value::DimValue(64),
            ]),
            ..Default::default()
        }],
        output: vec![ValueInfoProto {
            name: "output0".into(),
            r#type: tensor_type(out_dims),
            ..Default::default()
        }],
        ..Default::default()
    };
    let names = serde_json::to_string(&NAMES).expect("names");
    let batch = spec.batch.map_or("dynamic".into(), |b| b.to_string());
    let metadata = [
        ("producer", "yolo-burn"),
        ("version", "0.1.0"),
        ("arch", "yolov8"),
        ("scale", "n"),
        ("nc", "2"),
        ("names", names.as_str()),
        ("stride", "[8, 16, 32]"),
        ("imgsz", "[64, 64]"),
        ("batch", batch.as_str()),
        ("precision", "fp32"),
        ("head", spec.head),
    ];
    let model = ModelProto {
        ir_version: 7,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        producer_name: "yolo-burn".into(),
        graph: Some(graph),
        metadata_props: if spec.metadata {
            metadata
                .iter()
                .map(|(k, v)| StringStringEntryProto {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect()
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    model.encode_to_vec()
}

fn write_tiny(dir: &Path, spec: &Tiny) -> String {
    let path = dir.join(format!(
        "{}-{}-{}.onnx",
        spec.head,
        spec.batch.map_or("dyn".into(), |b| b.to_string()),
        spec.metadata
    ));
    std::fs::write(&path, tiny_onnx(spec)).expect("write onnx");
    path.display().to_string()
}

/// A plain grey PNG of `w`×`h`.
fn write_png(path: &Path, w: u32, h: u32) {
    image::RgbImage::from_pixel(w, h, image::Rgb([114, 90, 60]))
        .save(path)
        .expect("png");
}

fn run_ok(args: &[&str]) -> String {
    let out = yolo_burn(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn predict_maps_the_graphs_boxes_back_through_the_letterbox() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 64×32 into the 64×64 input: gain 1, 16 px of padding above (the rect-auto shape would be 64×32).
    let image = dir.path().join("wide.png");
    write_png(&image, 64, 32);
    for (i, spec) in [
        Tiny {
            head: "raw",
            batch: Some(1),
            metadata: true,
        },
        Tiny {
            head: "deepstream",
            batch: None,
            metadata: true,
        },
    ]
    .iter()
    .enumerate()
    {
        let weights = write_tiny(dir.path(), spec);
        let name = format!("p{i}");
        let project = format!("train.project={}", dir.path().display());
        run_ok(&[
            "predict",
            "--quiet",
            "--weights",
            &weights,
            "--source",
            image.to_str().expect("utf-8"),
            "--name",
            &name,
            "--set",
            &project,
        ]);
        let json = std::fs::read_to_string(dir.path().join(&name).join("wide.json")).expect("json");
        let dets: Vec<serde_json::Value> = serde_json::from_str(&json).expect("parse");
        let got: Vec<(String, f64, [f64; 4])> = dets
            .iter()
            .map(|d| {
                let b = &d["box"];
                let v = |k: &str| b[k].as_f64().expect("number");
                (
                    d["name"].as_str().expect("name").to_string(),
                    d["confidence"].as_f64().expect("conf"),
                    [v("x1"), v("y1"), v("x2"), v("y2")],
                )
            })
            .collect();
        let want = [
            ("dog", 0.9, [22.0, 11.0, 42.0, 21.0]),
            ("cat", 0.8, [6.0, 10.0, 14.0, 18.0]),
        ];
        assert_eq!(got.len(), want.len(), "{}: {got:?}", spec.head);
        for ((name, conf, xyxy), (wname, wconf, wxyxy)) in got.iter().zip(want) {
            assert_eq!(name, wname, "{}", spec.head);
            assert!((conf - wconf).abs() < 1e-6, "{}: {got:?}", spec.head);
            for (a, b) in xyxy.iter().zip(wxyxy) {
                assert!((a - b).abs() < 1e-4, "{}: {got:?}", spec.head);
            }
        }
    }
}

/// A YOLO-txt dataset of three 64×64 images, each with the graph's class-1 box as its label.
fn tiny_dataset(dir: &Path) -> std::path::PathBuf {
    let images = dir.join("data/images/val");
    let labels = dir.join("data/labels/val");
    std::fs::create_dir_all(&images).expect("mkdir");
    std::fs::create_dir_all(&labels).expect("mkdir");
    for stem in ["a", "b", "c"] {
        write_png(&images.join(format!("{stem}.png")), 64, 64);
        std::fs::write(
            labels.join(format!("{stem}.txt")),
            "1 0.5 0.5 0.3125 0.15625\n",
        )
        .expect("label");
    }
    let yaml = dir.join("data/tiny.yaml");
    std::fs::write(
        &yaml,
        format!(
            "path: {}\ntrain: images/val\nval: images/val\nnames:\n  0: cat\n  1: dog\n",
            dir.join("data").display()
        ),
    )
    .expect("yaml");
    yaml
}

#[test]
fn val_runs_the_graph_in_fixed_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = tiny_dataset(dir.path());
    let dataset = format!("data.dataset={}", yaml.display());
    let project = format!("train.project={}", dir.path().display());
    // Static 2 over 3 images (the last chunk padded), and dynamic with train.batch = 2, on both heads.
    for (i, (head, batch)) in [("raw", Some(2)), ("raw", None), ("deepstream", Some(2))]
        .into_iter()
        .enumerate()
    {
        let weights = write_tiny(
            dir.path(),
            &Tiny {
                head,
                batch,
                metadata: true,
            },
        );
        let name = format!("v{i}");
        let printed = run_ok(&[
            "val",
            "--weights",
            &weights,
            "--name",
            &name,
            "--set",
            &dataset,
            "--set",
            &project,
            "--set",
            "train.batch=2",
            "--set",
            "train.workers=1",
        ]);
        assert!(printed.contains("64x64"), "{printed}");
        let metrics: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(&name).join("metrics.json")).expect("metrics"),
        )
        .expect("json");
        let map = metrics["ultralytics"]["mAP50-95"].as_f64().expect("map");
        // Each label is the class-1 box exactly: AP 1 at every IoU threshold (class 0 has no labels).
        assert!((map - 0.995).abs() < 1e-3, "{head} {batch:?}: {metrics}");
        let predictions: Vec<serde_json::Value> = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(&name).join("predictions.json"))
                .expect("predictions"),
        )
        .expect("json");
        // Two boxes over val's conf per image, none from the padding.
        assert_eq!(predictions.len(), 6, "{head} {batch:?}");
    }
}

#[test]
fn a_file_without_our_metadata_or_with_the_nms_head_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("x.png");
    write_png(&image, 32, 32);
    let project = format!("train.project={}", dir.path().display());
    let predict = |weights: &str, extra: &[&str]| {
        let mut args = vec![
            "predict",
            "--quiet",
            "--weights",
            weights,
            "--source",
            image.to_str().expect("utf-8"),
            "--set",
            &project,
        ];
        args.extend_from_slice(extra);
        yolo_burn(&args)
    };
    let foreign = write_tiny(
        dir.path(),
        &Tiny {
            head: "raw",
            batch: Some(1),
            metadata: false,
        },
    );
    assert_user_error(
        &predict(&foreign, &[]),
        &[
            "was not written by yolo-burn export (no metadata)",
            "export it with `yolo-burn export`",
        ],
    );
    let nms = write_tiny(
        dir.path(),
        &Tiny {
            head: "nms",
            batch: Some(1),
            metadata: true,
        },
    );
    assert_user_error(&predict(&nms, &[]), &["EfficientNMS_TRT", "raw"]);
    let raw = write_tiny(
        dir.path(),
        &Tiny {
            head: "raw",
            batch: Some(1),
            metadata: true,
        },
    );
    assert_user_error(
        &predict(&raw, &["--set", "model.nc=3"]),
        &["model.nc = 3", "says 2"],
    );
}

/// The parity weights exported (raw head, at the rectangle the Burn predictor picks for the image) give the
/// same boxes through tract as through the Burn model.
#[test]
fn exported_parity_weights_predict_the_burn_models_boxes() {
    use yolo_burn::backend::Cpu;
    use yolo_burn::config::{Arch, ScaleName};
    use yolo_burn::data::augment::Letterbox;
    use yolo_burn::eval::nms::NmsConfig;
    use yolo_burn::export::{export_onnx, BatchSize, ExportHead, ExportOptions, ExportPrecision};
    use yolo_burn::model::weights::load_ultralytics;
    use yolo_burn::model::YoloConfig;
    use yolo_burn::predict::onnx::OnnxModel;
    use yolo_burn::predict::{DetectModel, Detector};

    let weights = shared("parity/yolov8n.weights.safetensors");
    let source = shared("datasets/coco8/images/val/000000000036.jpg");
    let image = yolo_burn::data::image::load_rgb(&source).expect("image");
    let imgsz = 160;
    let [w, h] = Letterbox::fit_rect([image.width(), image.height()], imgsz, 32).canvas;
    let device = Default::default();
    let config = YoloConfig::new(Arch::Yolov8, ScaleName::N, 80);
    let model = load_ultralytics(config.init::<Cpu>(&device), &weights).expect("weights");
    let exported = export_onnx(
        &model,
        &ExportOptions {
            opset: 17,
            precision: ExportPrecision::Fp32,
            batch: BatchSize::Static(1),
            imgsz: [h as usize, w as usize],
            head: ExportHead::Raw,
            arch: Arch::Yolov8,
            scale: ScaleName::N,
            names: (0..80).map(|i| format!("c{i}")).collect(),
        },
    )
    .expect("export");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yolov8n.onnx");
    std::fs::write(&path, &exported.bytes).expect("write");
    let onnx = OnnxModel::load(&path).expect("load the export");
    let detect = |model: DetectModel<Cpu>, conf: f32| {
        Detector {
            model,
            imgsz: imgsz as usize,
            nms: NmsConfig {
                conf,
                ..NmsConfig::predict()
            },
        }
        .detect_images(vec![image.clone()], &device)
        .expect("detect")
        .pop()
        .expect("one image")
    };
    // Random-init weights score ~1e-5, many within 1e-6 of each other: the threshold goes in the widest gap
    // between the Burn model's scores, so that no score sits on it.
    let mut scores: Vec<f32> = detect(DetectModel::Burn(&model), 1e-7)
        .iter()
        .map(|d| d.conf)
        .collect();
    scores.sort_by(|a, b| b.total_cmp(a));
    let k = (5..scores.len().min(60))
        .max_by(|&i, &j| (scores[i - 1] - scores[i]).total_cmp(&(scores[j - 1] - scores[j])))
        .expect("enough detections");
    let conf = (scores[k - 1] + scores[k]) / 2.0;
    let burn = detect(DetectModel::Burn(&model), conf);
    let ours = detect(DetectModel::Onnx(&onnx), conf);
    assert!(burn.len() >= 5, "{}", burn.len());
    assert_eq!(burn.len(), ours.len());
    // Matched by box rather than by rank: near-equal scores may swap places.
    for a in &burn {
        let close = ours.iter().any(|b| {
            a.class == b.class
                && (a.conf - b.conf).abs() < 1e-5
                && a.xyxy.iter().zip(b.xyxy).all(|(x, y)| (x - y).abs() < 1e-3)
        });
        assert!(close, "{a:?} has no match in {ours:?}");
    }
}
