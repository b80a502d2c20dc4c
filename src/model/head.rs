//! The decoupled `Detect` head: a box branch (`cv2`, DFL logits) and a class branch (`cv3`) per level, plus
//! DFL decoding to boxes.
//!
//! Source: ultralytics/nn/modules/head.py `Detect` and ultralytics/utils/tal.py `make_anchors`, `dist2bbox`
//! (8.4.190).

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Tensor, TensorData};

use super::conv::{Conv, ConvConfig};
use crate::kernels::{self, conv2d};

/// DFL bins per box side (`reg_max`).
pub const REG_MAX: usize = 16;
/// Strides of the P3, P4 and P5 outputs.
pub const STRIDES: [usize; 3] = [8, 16, 32];

/// Which class branch `Detect` builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClsBranchKind {
    /// YOLOv8 (`legacy = True`): two 3×3 Convs.
    Legacy,
    /// YOLO11: DWConv 3×3 + Conv 1×1, twice.
    DepthWise,
}

/// Builds a [`Detect`] head.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectConfig {
    pub nc: usize,
    /// Input channels of P3, P4, P5.
    pub ch: [usize; 3],
    pub cls_branch: ClsBranchKind,
}

impl DetectConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Detect<B> {
        let c2 = (self.ch[0] / 4).max(16).max(REG_MAX * 4);
        let c3 = self.ch[0].max(self.nc.min(100));
        let box_branch = |&x: &usize| {
            (
                ConvConfig::new(x, c2, 3, 1).init(device),
                ConvConfig::new(c2, c2, 3, 1).init(device),
                Conv2dConfig::new([c2, 4 * REG_MAX], [1, 1]).init(device),
            )
        };
        let cls_branch = |&x: &usize| match self.cls_branch {
            ClsBranchKind::Legacy => ClsBranch::Legacy((
                ConvConfig::new(x, c3, 3, 1).init(device),
                ConvConfig::new(c3, c3, 3, 1).init(device),
                Conv2dConfig::new([c3, self.nc], [1, 1]).init(device),
            )),
            ClsBranchKind::DepthWise => ClsBranch::DepthWise((
                (
                    ConvConfig::depthwise(x, x, 3, 1).init(device),
                    ConvConfig::new(x, c3, 1, 1).init(device),
                ),
                (
                    ConvConfig::depthwise(c3, c3, 3, 1).init(device),
                    ConvConfig::new(c3, c3, 1, 1).init(device),
                ),
                Conv2dConfig::new([c3, self.nc], [1, 1]).init(device),
            )),
        };
        let mut head = Detect {
            cv2: self.ch.iter().map(box_branch).collect(),
            cv3: self.ch.iter().map(cls_branch).collect(),
            dfl: Dfl::init(device),
            nc: self.nc,
        };
        head.bias_init(device);
        head
    }
}

/// The class branch of one level; each tuple mirrors an `nn.Sequential`, so its indices are the checkpoint's.
#[derive(Module, Debug)]
#[allow(clippy::type_complexity, clippy::large_enum_variant)]
pub enum ClsBranch<B: Backend> {
    Legacy((Conv<B>, Conv<B>, Conv2d<B>)),
    DepthWise(((Conv<B>, Conv<B>), (Conv<B>, Conv<B>), Conv2d<B>)),
}

impl<B: Backend> ClsBranch<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match self {
            ClsBranch::Legacy((a, b, c)) => conv2d(c, b.forward(a.forward(x))),
            ClsBranch::DepthWise(((a1, a2), (b1, b2), c)) => {
                conv2d(c, b2.forward(b1.forward(a2.forward(a1.forward(x)))))
            }
        }
    }

    fn last(&mut self) -> &mut Conv2d<B> {
        match self {
            ClsBranch::Legacy((_, _, c)) | ClsBranch::DepthWise((_, _, c)) => c,
        }
    }
}

/// Distribution Focal Loss decoding: the expectation of a softmax over `REG_MAX` bins, as a fixed 1×1 conv
/// whose weight is `0..REG_MAX`. It is a parameter (frozen) because Ultralytics counts and saves it.
#[derive(Module, Debug)]
pub struct Dfl<B: Backend> {
    pub conv: Conv2d<B>,
}

impl<B: Backend> Dfl<B> {
    fn init(device: &B::Device) -> Self {
        let mut conv = Conv2dConfig::new([REG_MAX, 1], [1, 1])
            .with_bias(false)
            .init(device);
        let bins: Vec<f32> = (0..REG_MAX).map(|i| i as f32).collect();
        let weight = Tensor::from_data(TensorData::new(bins, [1, REG_MAX, 1, 1]), device);
        conv.weight = Param::from_tensor(weight).set_require_grad(false);
        Self { conv }
    }

    /// # Shapes
    /// `[B, 4R, A]` → `[B, 4, A]` distances in grid units, sides l, t, r, b.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        crate::kernels::dfl_expectation(x, &self.conv.weight.val())
    }
}

/// Raw head outputs, what the loss consumes.
#[derive(Debug, Clone)]
pub struct HeadOutput<B: Backend> {
    /// `[B, 4R, A]` DFL logits, channel = side·R + bin, sides l, t, r, b.
    pub boxes: Tensor<B, 3>,
    /// `[B, nc, A]` class logits.
    pub scores: Tensor<B, 3>,
    /// `(H, W)` of each level's grid, P3 first.
    pub grids: [[usize; 2]; 3],
}

#[derive(Module, Debug)]
pub struct Detect<B: Backend> {
    pub cv2: Vec<(Conv<B>, Conv<B>, Conv2d<B>)>,
    pub cv3: Vec<ClsBranch<B>>,
    pub dfl: Dfl<B>,
    pub nc: usize,
}

impl<B: Backend> Detect<B> {
    /// Ultralytics' `Detect.bias_init`: box logits start at 2.0, class logits at a prior of about 0.01 objects
    /// per 640-pixel image spread over `nc` classes.
    fn bias_init(&mut self, device: &B::Device) {
        let nc = self.nc;
        for (level, (cv2, cv3)) in self.cv2.iter_mut().zip(self.cv3.iter_mut()).enumerate() {
            cv2.2.bias = Some(Param::from_tensor(Tensor::full([4 * REG_MAX], 2.0, device)));
            let cells = (640.0 / STRIDES[level] as f64).powi(2);
            let prior = (5.0 / nc as f64 / cells).ln();
            cv3.last().bias = Some(Param::from_tensor(Tensor::full([nc], prior, device)));
        }
    }

    /// # Shapes
    /// P3 `[B, c3, H/8, W/8]`, P4, P5 → boxes `[B, 4R, A]`, scores `[B, nc, A]`.
    pub fn forward(&self, feats: [Tensor<B, 4>; 3]) -> HeadOutput<B> {
        let mut boxes = Vec::with_capacity(3);
        let mut scores = Vec::with_capacity(3);
        let mut grids = [[0; 2]; 3];
        for (i, x) in feats.into_iter().enumerate() {
            let [b, _, h, w] = x.dims();
            grids[i] = [h, w];
            let (c1, c2, c3) = &self.cv2[i];
            let box_logits = conv2d(c3, c2.forward(c1.forward(x.clone())));
            boxes.push(box_logits.reshape([b, 4 * REG_MAX, h * w]));
            scores.push(self.cv3[i].forward(x).reshape([b, self.nc, h * w]));
        }
        HeadOutput {
            boxes: kernels::cat(boxes, 2),
            scores: kernels::cat(scores, 2),
            grids,
        }
    }

    /// Ultralytics' inference output: boxes as cx, cy, w, h in input pixels, then sigmoid class scores.
    ///
    /// # Shapes
    /// → `[B, 4 + nc, A]`
    pub fn decode(&self, out: &HeadOutput<B>) -> Tensor<B, 3> {
        let device = out.boxes.device();
        let anchors = Anchors::new(out.grids, &device);
        // A half-precision model's outputs are decoded in f32: pixel coordinates up to 640 keep 2–4 px steps
        // in bf16, and the anchors are f32 tensors. The casts are no-ops for an f32 model.
        let (boxes, scores) = (
            crate::kernels::cast(out.boxes.clone(), FloatDType::F32),
            crate::kernels::cast(out.scores.clone(), FloatDType::F32),
        );
        let dist = self.dfl.forward(boxes);
        let boxes_xywh =
            dist2bbox_xywh(dist, anchors.points_grid.clone()) * anchors.strides.clone();
        Tensor::cat(vec![boxes_xywh, sigmoid(scores)], 1)
    }
}

/// Anchor points in grid units and their strides, in the head's anchor order (P3, P4, P5, each row-major).
#[derive(Debug, Clone)]
pub struct Anchors<B: Backend> {
    /// `[1, 2, A]`: x + 0.5, y + 0.5 in grid cells.
    pub points_grid: Tensor<B, 3>,
    /// `[1, 1, A]`: the stride of each anchor, in pixels.
    pub strides: Tensor<B, 3>,
}

impl<B: Backend> Anchors<B> {
    /// Ultralytics' `make_anchors(feats, strides, 0.5)`.
    pub fn new(grids: [[usize; 2]; 3], device: &B::Device) -> Self {
        let total: usize = grids.iter().map(|[h, w]| h * w).sum();
        let mut xs = Vec::with_capacity(total);
        let mut ys = Vec::with_capacity(total);
        let mut strides = Vec::with_capacity(total);
        for (&[h, w], &stride) in grids.iter().zip(STRIDES.iter()) {
            for y in 0..h {
                for x in 0..w {
                    xs.push(x as f32 + 0.5);
                    ys.push(y as f32 + 0.5);
                    strides.push(stride as f32);
                }
            }
        }
        xs.extend(ys);
        Self {
            points_grid: Tensor::from_data(TensorData::new(xs, [1, 2, total]), device),
            strides: Tensor::from_data(TensorData::new(strides, [1, 1, total]), device),
        }
    }
}

/// Ultralytics' `dist2bbox(distance, anchor_points, xywh=True, dim=1)`.
///
/// # Shapes
/// distances `[B, 4, A]` (l, t, r, b), anchor points `[1, 2, A]` → `[B, 4, A]` (cx, cy, w, h), same unit.
pub fn dist2bbox_xywh<B: Backend>(dist_ltrb: Tensor<B, 3>, points: Tensor<B, 3>) -> Tensor<B, 3> {
    let lt = dist_ltrb.clone().narrow(1, 0, 2);
    let rb = dist_ltrb.narrow(1, 2, 2);
    let x1y1 = points.clone() - lt;
    let x2y2 = points + rb;
    let center = (x1y1.clone() + x2y2.clone()).div_scalar(2.0);
    Tensor::cat(vec![center, x2y2 - x1y1], 1)
}
