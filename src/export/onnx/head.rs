//! The decoded outputs after Detect's branches: DFL, `dist2bbox`, sigmoid (as `Detect::decode`), then one of
//! three output layouts (`raw`, `deepstream`, `nms`).

use tract_onnx::pb::tensor_proto::DataType;

use super::graph::RawHead;
use super::ops::{float, int, string, GraphBuilder, Value};
use crate::export::{ExportHead, NmsOptions};
use crate::model::{Anchors, REG_MAX};

/// The decoded head: boxes in input pixels, in the two forms the heads need, and sigmoid scores.
pub struct Decoded {
    /// `[B, 2, A]` top-left corners, input pixels.
    pub x1y1: Value,
    /// `[B, 2, A]` bottom-right corners, input pixels.
    pub x2y2: Value,
    /// `[B, 4, A]` cx, cy, w, h in input pixels.
    pub xywh: Value,
    /// `[B, nc, A]` class scores after sigmoid.
    pub scores: Value,
}

/// DFL expectation and `dist2bbox`, as `Dfl::forward` and `dist2bbox_xywh`: softmax over the 16 bins, a 1×1
/// conv with weights 0..15 (Ultralytics' DFL module), then corners = anchor ∓ distances, scaled by stride.
pub fn decode(g: &mut GraphBuilder, raw: &RawHead) -> Decoded {
    let a: usize = raw.grids.iter().map(|[h, w]| h * w).sum();
    let (r, a64) = (REG_MAX as i64, a as i64);
    // [B, 4R, A] → [B, 4, R, A] → [B, R, 4, A]: softmax over the bins, then their expectation.
    let bins = g.reshape(&raw.boxes, &[0, 4, r, a64]);
    let bins = g.transpose(&bins, &[0, 2, 1, 3]);
    let probs = g.softmax(&bins, 1);
    let dfl = crate::export::fuse::FusedConv {
        weight: (0..REG_MAX).map(|i| i as f32).collect(),
        weight_shape: [1, REG_MAX, 1, 1],
        bias: vec![0.0],
        stride: [1, 1],
        pads: [0; 4],
        groups: 1,
    };
    let dist = g.conv("model.head.dfl.conv", &probs, &dfl);
    let dist = g.reshape(&dist, &[0, 4, a64]);
    // Anchor points (grid units) and strides, `make_anchors`' order; exact in f16 too (halves below 2048).
    let (points, strides) = anchor_values(raw.grids);
    let points = g.float_const("anchor_points", &[1, 2, a], &points);
    let strides = g.float_const("anchor_strides", &[1, 1, a], &strides);
    let [lt, rb]: [Value; 2] = g.split(&dist, 1, &[2, 2]).try_into().expect("two pieces");
    let x1y1 = g.sub(&points, &lt);
    let x2y2 = g.add(&points, &rb);
    let sum = g.add(&x1y1, &x2y2);
    let two = g.float_const("two", &[], &[2.0]);
    let center = g.div(&sum, &two);
    let wh = g.sub(&x2y2, &x1y1);
    let xywh_grid = g.concat(&[&center, &wh], 1);
    let xywh = g.mul(&xywh_grid, &strides);
    let x1y1 = g.mul(&x1y1, &strides);
    let x2y2 = g.mul(&x2y2, &strides);
    let scores = g.sigmoid(&raw.scores);
    Decoded {
        x1y1,
        x2y2,
        xywh,
        scores,
    }
}

/// `Anchors::new`'s values as flat vectors: `[1, 2, A]` points (x row then y row) and `[1, 1, A]` strides.
fn anchor_values(grids: [[usize; 2]; 3]) -> (Vec<f32>, Vec<f32>) {
    let anchors = Anchors::<crate::backend::Cpu>::new(grids, &Default::default());
    let read = |t: burn::tensor::Tensor<crate::backend::Cpu, 3>| {
        t.into_data().to_vec::<f32>().unwrap_or_default()
    };
    (read(anchors.points_grid), read(anchors.strides))
}

/// Writes the chosen head after `decoded`; the graph outputs are f32 (a Cast closes a graph still in f16) and
/// named `output0`, or `num_dets`, `det_boxes`, `det_scores`, `det_classes`.
pub fn write_head(g: &mut GraphBuilder, decoded: &Decoded, head: &ExportHead, nc: usize) {
    let to_f32 = |g: &mut GraphBuilder, x: &str| -> Value {
        // Identity keeps "one node per output" in the f32 graph, so every output can be renamed the same way.
        match g.float {
            super::ops::FloatType::F32 => g.node("Identity", &[x], 1, vec![]).remove(0),
            super::ops::FloatType::F16 => g.cast(x, DataType::Float as i32),
        }
    };
    match head {
        ExportHead::Raw => {
            let out = g.concat(&[&decoded.xywh, &decoded.scores], 1);
            to_f32(g, &out);
            g.rename_last_output(0, "output0");
        }
        ExportHead::DeepStream => {
            // [B, 6, A] = x1, y1, x2, y2, best score, its class (as a float), then [B, A, 6].
            let score = g.reduce_max_keepdims(&decoded.scores, &[1]);
            let class = g.argmax_keepdims(&decoded.scores, 1);
            let float = g.float.onnx();
            let class = g.cast(&class, float);
            let rows = g.concat(&[&decoded.x1y1, &decoded.x2y2, &score, &class], 1);
            let rows = g.transpose(&rows, &[0, 2, 1]);
            to_f32(g, &rows);
            g.rename_last_output(0, "output0");
        }
        ExportHead::Nms(nms) => {
            let out = g.concat(&[&decoded.xywh, &decoded.scores], 1);
            let out = g.transpose(&out, &[0, 2, 1]);
            let [boxes, scores]: [Value; 2] =
                g.split(&out, 2, &[4, nc]).try_into().expect("two pieces");
            let boxes = to_f32(g, &boxes);
            let scores = to_f32(g, &scores);
            efficient_nms(g, &boxes, &scores, nms);
        }
    }
}

/// TensorRT's `EfficientNMS_TRT` plugin (TensorRT ≥ 8.0): boxes `[B, A, 4]` as cx, cy, w, h
/// (`box_coding` 1), scores `[B, A, nc]` already activated (`score_activation` 0), class-aware NMS. Outputs
/// `num_dets [B, 1]` int32, `det_boxes [B, max, 4]` (x1, y1, x2, y2), `det_scores [B, max]`,
/// `det_classes [B, max]` int32.
///
/// Its domain is `TRT` (declared in the model's opset imports), as `torch.onnx` exporters of this plugin
/// write it: the ONNX checker then skips the unknown op instead of rejecting it, and TensorRT's parser looks
/// any op it has no importer for up in its plugin registry by name, whatever the domain.
fn efficient_nms(g: &mut GraphBuilder, boxes: &str, scores: &str, nms: &NmsOptions) {
    let attrs = vec![
        int("background_class", -1),
        int("box_coding", 1),
        float("iou_threshold", nms.iou as f32),
        int("max_output_boxes", nms.max_det as i64),
        string("plugin_version", "1"),
        int("score_activation", 0),
        float("score_threshold", nms.conf as f32),
    ];
    g.node_in_domain(NMS_DOMAIN, "EfficientNMS_TRT", &[boxes, scores], 4, attrs);
    for (i, name) in ["num_dets", "det_boxes", "det_scores", "det_classes"]
        .iter()
        .enumerate()
    {
        g.rename_last_output(i, name);
    }
}

/// The operator domain of the `EfficientNMS_TRT` node.
pub const NMS_DOMAIN: &str = "TRT";
