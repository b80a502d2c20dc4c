//! The ONNX writer: graph inputs and outputs, the network ([`graph`]), the decoded head ([`head`]), metadata,
//! encoded with prost from `tract_onnx::pb` (Burn 0.21 has no ONNX writer; these are the onnx.proto types of
//! a maintained crate, so no byte is assembled by hand).

pub mod graph;
pub mod head;
pub mod ops;

use burn::tensor::backend::Backend;
use prost::Message;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};
use tract_onnx::pb::{
    type_proto, GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

pub use ops::{FloatType, TENSORRT_85_OPS};

use super::{
    BatchSize, ExportError, ExportHead, ExportOptions, ExportPrecision, ExportedOnnx, IoShape,
};
use crate::model::{Yolo, STRIDES};

/// The name of the dynamic batch dimension.
const BATCH_PARAM: &str = "batch";

/// The ONNX IR version matching an opset: the IR of the onnx release that introduced it (opsets 13 and 14:
/// IR 7, onnx 1.8/1.9; 15 to 17: IR 8, onnx 1.10 to 1.12). TensorRT 8.5 reads IR ≤ 8.
pub fn ir_version(opset: i64) -> i64 {
    if opset <= 14 {
        7
    } else {
        8
    }
}

/// Builds and encodes the graph; `options` are validated already.
pub(super) fn build<B: Backend>(
    model: &Yolo<B>,
    options: &ExportOptions,
) -> Result<ExportedOnnx, ExportError> {
    let float = match options.precision {
        ExportPrecision::Fp32 => FloatType::F32,
        ExportPrecision::Fp16 => FloatType::F16,
    };
    let mut g = ops::GraphBuilder::new(float);
    let [h, w] = options.imgsz;
    let nc = model.head().nc;
    let images = match float {
        FloatType::F32 => "images".to_string(),
        FloatType::F16 => g.cast("images", FloatType::F16.onnx()),
    };
    let mut raw = graph::network(&mut g, model, &images, [h, w])?;
    if float == FloatType::F16 {
        // The decode runs in f32: in f16, coordinates above 512 px are 0.5 px apart and the stride products
        // round to that, while the few ops after the head's logits cost next to nothing either way.
        raw.boxes = g.cast(&raw.boxes, FloatType::F32.onnx());
        raw.scores = g.cast(&raw.scores, FloatType::F32.onnx());
        g.float = FloatType::F32;
    }
    let anchors: usize = raw.grids.iter().map(|[h, w]| h * w).sum();
    let decoded = head::decode(&mut g, &raw);
    head::write_head(&mut g, &decoded, &options.head, nc);

    let batch = match options.batch {
        BatchSize::Static(n) => Dim::Fixed(n),
        BatchSize::Dynamic => Dim::Param(BATCH_PARAM),
    };
    let input = IoShape::new(
        "images",
        "f32",
        vec![batch, Dim::Fixed(3), Dim::Fixed(h), Dim::Fixed(w)],
    );
    let outputs = output_shapes(&options.head, batch, anchors, nc);
    let metadata = metadata(options, nc, [h, w]);
    let graph = GraphProto {
        node: g.nodes,
        name: "yolo-burn".into(),
        initializer: g.initializers,
        input: vec![input.value_info()],
        output: outputs.iter().map(IoShape::value_info).collect(),
        ..Default::default()
    };
    let mut opset_import = vec![OperatorSetIdProto {
        domain: String::new(),
        version: options.opset,
    }];
    if matches!(options.head, ExportHead::Nms(_)) {
        opset_import.push(OperatorSetIdProto {
            domain: head::NMS_DOMAIN.into(),
            version: 1,
        });
    }
    let proto = ModelProto {
        ir_version: ir_version(options.opset),
        opset_import,
        producer_name: "yolo-burn".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        metadata_props: metadata
            .into_iter()
            .map(|(key, value)| StringStringEntryProto { key, value })
            .collect(),
        ..Default::default()
    };
    Ok(ExportedOnnx {
        bytes: proto.encode_to_vec(),
        input,
        outputs,
    })
}

/// A tensor dimension: fixed, or the symbolic batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    Param(&'static str),
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Param(p) => write!(f, "{p}"),
        }
    }
}

impl IoShape {
    fn new(name: &str, dtype: &'static str, dims: Vec<Dim>) -> Self {
        Self {
            name: name.into(),
            dtype,
            dims,
        }
    }

    fn value_info(&self) -> ValueInfoProto {
        let elem_type = match self.dtype {
            "int32" => DataType::Int32,
            _ => DataType::Float,
        } as i32;
        let dim = self
            .dims
            .iter()
            .map(|d| Dimension {
                value: Some(match d {
                    Dim::Fixed(n) => dimension::Value::DimValue(*n as i64),
                    Dim::Param(p) => dimension::Value::DimParam(p.to_string()),
                }),
                ..Default::default()
            })
            .collect();
        ValueInfoProto {
            name: self.name.clone(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type,
                    shape: Some(TensorShapeProto { dim }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// The graph outputs of each head.
fn output_shapes(head: &ExportHead, batch: Dim, anchors: usize, nc: usize) -> Vec<IoShape> {
    let f = Dim::Fixed;
    match head {
        ExportHead::Raw => vec![IoShape::new(
            "output0",
            "f32",
            vec![batch, f(4 + nc), f(anchors)],
        )],
        ExportHead::DeepStream => vec![IoShape::new(
            "output0",
            "f32",
            vec![batch, f(anchors), f(6)],
        )],
        ExportHead::Nms(nms) => vec![
            IoShape::new("num_dets", "int32", vec![batch, f(1)]),
            IoShape::new("det_boxes", "f32", vec![batch, f(nms.max_det), f(4)]),
            IoShape::new("det_scores", "f32", vec![batch, f(nms.max_det)]),
            IoShape::new("det_classes", "int32", vec![batch, f(nms.max_det)]),
        ],
    }
}

/// `metadata_props`: what `val`/`predict` read back from an exported file (keys fixed; see the export issue).
fn metadata(options: &ExportOptions, nc: usize, [h, w]: [usize; 2]) -> Vec<(String, String)> {
    let names = serde_json::to_string(&options.names).unwrap_or_else(|_| "[]".into());
    let strides = STRIDES.map(|s| s.to_string()).join(", ");
    let mut props = vec![
        ("producer", "yolo-burn".to_string()),
        ("version", env!("CARGO_PKG_VERSION").to_string()),
        ("arch", options.arch.to_string()),
        ("scale", options.scale.to_string()),
        ("nc", nc.to_string()),
        ("names", names),
        ("stride", format!("[{strides}]")),
        ("imgsz", format!("[{h}, {w}]")),
        (
            "batch",
            match options.batch {
                BatchSize::Static(n) => n.to_string(),
                BatchSize::Dynamic => "dynamic".into(),
            },
        ),
        ("precision", options.precision.name().into()),
        ("head", options.head.name().into()),
    ];
    if let ExportHead::Nms(nms) = &options.head {
        props.push(("iou", nms.iou.to_string()));
        props.push(("conf", nms.conf.to_string()));
        props.push(("max_det", nms.max_det.to_string()));
    }
    props.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}
