//! The whole detector: Ultralytics' layer list (`model.0` … `model.22/23`) built from a per-architecture table,
//! and run the way `parse_model`'s `from` indices route it.
//!
//! Keeping the layers in one `Vec` indexed like Ultralytics' `model.model` makes every checkpoint key
//! (`model.<i>.<field>…`) a path in our module tree, so weights import needs no renaming rules.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::blocks::{C2f, C2fConfig, C2psa, C2psaConfig, CspKind, Sppf, SppfConfig};
use super::conv::{Conv, ConvConfig};
use super::head::{ClsBranchKind, Detect, DetectConfig, HeadOutput};
use super::scale::Scale;
use crate::config::{Arch, ScaleName};
use crate::kernels::cat_channels;

/// One row of a model yaml, with nominal (unscaled) channels and repeats.
#[derive(Debug, Clone, Copy, PartialEq)]
enum LayerSpec {
    Conv {
        c2: usize,
        k: usize,
        s: usize,
    },
    /// `C2f` (YOLOv8) or `C3k2` (YOLO11), `n` repeats.
    Csp {
        c2: usize,
        n: usize,
        kind: CspKind,
    },
    Sppf {
        c2: usize,
    },
    C2psa {
        c2: usize,
        n: usize,
    },
    /// `nn.Upsample(None, 2, "nearest")`.
    Upsample,
    /// `Concat` of the previous layer's output and layer `other`'s, on channels.
    Concat {
        other: usize,
    },
    /// `Detect` over the outputs of three layers (P3, P4, P5).
    Detect {
        from: [usize; 3],
    },
}

const fn c2f(c2: usize, n: usize, shortcut: bool) -> LayerSpec {
    LayerSpec::Csp {
        c2,
        n,
        kind: CspKind::C2f { shortcut },
    }
}

const fn c3k2(c2: usize, n: usize, c3k: bool, e: f64) -> LayerSpec {
    LayerSpec::Csp {
        c2,
        n,
        kind: CspKind::C3k2 { c3k, e },
    }
}

const fn conv(c2: usize, k: usize, s: usize) -> LayerSpec {
    LayerSpec::Conv { c2, k, s }
}

/// ultralytics/cfg/models/v8/yolov8.yaml (8.4.190), backbone then head.
const YOLOV8_LAYERS: [LayerSpec; 23] = [
    conv(64, 3, 2),
    conv(128, 3, 2),
    c2f(128, 3, true),
    conv(256, 3, 2),
    c2f(256, 6, true),
    conv(512, 3, 2),
    c2f(512, 6, true),
    conv(1024, 3, 2),
    c2f(1024, 3, true),
    LayerSpec::Sppf { c2: 1024 },
    LayerSpec::Upsample,
    LayerSpec::Concat { other: 6 },
    c2f(512, 3, false),
    LayerSpec::Upsample,
    LayerSpec::Concat { other: 4 },
    c2f(256, 3, false),
    conv(256, 3, 2),
    LayerSpec::Concat { other: 12 },
    c2f(512, 3, false),
    conv(512, 3, 2),
    LayerSpec::Concat { other: 9 },
    c2f(1024, 3, false),
    LayerSpec::Detect { from: [15, 18, 21] },
];

/// ultralytics/cfg/models/11/yolo11.yaml (8.4.190), backbone then head.
const YOLO11_LAYERS: [LayerSpec; 24] = [
    conv(64, 3, 2),
    conv(128, 3, 2),
    c3k2(256, 2, false, 0.25),
    conv(256, 3, 2),
    c3k2(512, 2, false, 0.25),
    conv(512, 3, 2),
    c3k2(512, 2, true, 0.5),
    conv(1024, 3, 2),
    c3k2(1024, 2, true, 0.5),
    LayerSpec::Sppf { c2: 1024 },
    LayerSpec::C2psa { c2: 1024, n: 2 },
    LayerSpec::Upsample,
    LayerSpec::Concat { other: 6 },
    c3k2(512, 2, false, 0.5),
    LayerSpec::Upsample,
    LayerSpec::Concat { other: 4 },
    c3k2(256, 2, false, 0.5),
    conv(256, 3, 2),
    LayerSpec::Concat { other: 13 },
    c3k2(512, 2, false, 0.5),
    conv(512, 3, 2),
    LayerSpec::Concat { other: 10 },
    c3k2(1024, 2, true, 0.5),
    LayerSpec::Detect { from: [16, 19, 22] },
];

fn layer_table(arch: Arch) -> &'static [LayerSpec] {
    match arch {
        Arch::Yolov8 => &YOLOV8_LAYERS,
        Arch::Yolo11 => &YOLO11_LAYERS,
    }
}

/// Builds a [`Yolo`] detector.
#[derive(Debug, Clone, PartialEq)]
pub struct YoloConfig {
    pub arch: Arch,
    pub scale: ScaleName,
    /// Number of classes.
    pub nc: usize,
}

impl YoloConfig {
    /// The model Ultralytics 8.4.190 builds from `yolov8{scale}.yaml` / `yolo11{scale}.yaml` with `nc` classes.
    pub fn new(arch: Arch, scale: ScaleName, nc: usize) -> Self {
        Self { arch, scale, nc }
    }

    /// Ultralytics' yaml name for this model, e.g. `yolov8n.yaml`.
    pub fn yaml_name(&self) -> String {
        format!("{}{}.yaml", self.arch, self.scale)
    }

    /// Output channels of every layer, as `parse_model` computes them.
    fn channels(&self) -> Vec<usize> {
        let scale = Scale::of(self.arch, self.scale);
        let mut ch: Vec<usize> = Vec::new();
        for spec in layer_table(self.arch) {
            let prev = ch.last().copied().unwrap_or(3);
            ch.push(match *spec {
                LayerSpec::Conv { c2, .. } | LayerSpec::Csp { c2, .. } => scale.channels(c2),
                LayerSpec::Sppf { c2 } | LayerSpec::C2psa { c2, .. } => scale.channels(c2),
                LayerSpec::Upsample => prev,
                LayerSpec::Concat { other } => prev + ch[other],
                LayerSpec::Detect { .. } => 0,
            });
        }
        ch
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> Yolo<B> {
        let scale = Scale::of(self.arch, self.scale);
        let table = layer_table(self.arch);
        let ch = self.channels();
        let mut keep = vec![false; table.len()];
        let mut layers = Vec::with_capacity(table.len());
        for (i, spec) in table.iter().enumerate() {
            let c1 = if i == 0 { 3 } else { ch[i - 1] };
            let layer = match *spec {
                LayerSpec::Conv { k, s, .. } => {
                    Layer::Conv(ConvConfig::new(c1, ch[i], k, s).init(device))
                }
                LayerSpec::Csp { n, kind, .. } => {
                    let kind = match kind {
                        CspKind::C3k2 { c3k, e } => CspKind::C3k2 {
                            c3k: c3k || scale.c3k,
                            e,
                        },
                        other => other,
                    };
                    Layer::Csp(
                        C2fConfig {
                            c1,
                            c2: ch[i],
                            n: scale.repeats(n),
                            kind,
                        }
                        .init(device),
                    )
                }
                LayerSpec::Sppf { .. } => Layer::Sppf(
                    SppfConfig {
                        c1,
                        c2: ch[i],
                        k: 5,
                    }
                    .init(device),
                ),
                LayerSpec::C2psa { n, .. } => Layer::C2psa(
                    C2psaConfig {
                        c: c1,
                        n: scale.repeats(n),
                    }
                    .init(device),
                ),
                LayerSpec::Upsample => Layer::Upsample(2),
                LayerSpec::Concat { other } => {
                    keep[other] = true;
                    Layer::Concat(other)
                }
                LayerSpec::Detect { from } => {
                    from.iter().for_each(|&f| keep[f] = true);
                    let cls_branch = match self.arch {
                        Arch::Yolov8 => ClsBranchKind::Legacy,
                        Arch::Yolo11 => ClsBranchKind::DepthWise,
                    };
                    let head = DetectConfig {
                        nc: self.nc,
                        ch: from.map(|f| ch[f]),
                        cls_branch,
                    };
                    Layer::Detect(head.init(device))
                }
            };
            layers.push(layer);
        }
        let head_from = table.iter().find_map(|s| match s {
            LayerSpec::Detect { from } => Some(from.to_vec()),
            _ => None,
        });
        Yolo {
            model: layers,
            keep,
            head_from: head_from.unwrap_or_default(),
        }
    }
}

/// One entry of Ultralytics' `model.model` list.
#[derive(Module, Debug)]
pub enum Layer<B: Backend> {
    Conv(Conv<B>),
    Csp(C2f<B>),
    Sppf(Sppf<B>),
    C2psa(C2psa<B>),
    /// Nearest-neighbour upsampling by this integer factor.
    Upsample(usize),
    /// Concatenate with this earlier layer's output.
    Concat(usize),
    Detect(Detect<B>),
}

/// A YOLOv8 or YOLO11 detector. `model` is indexed exactly as Ultralytics' `DetectionModel.model`.
#[derive(Module, Debug)]
pub struct Yolo<B: Backend> {
    pub model: Vec<Layer<B>>,
    /// Layers whose outputs a later Concat or Detect reads.
    keep: Vec<bool>,
    /// The three layers Detect reads (P3, P4, P5).
    head_from: Vec<usize>,
}

impl<B: Backend> Yolo<B> {
    /// Runs the network up to the raw head outputs (what the loss consumes). In train mode (an autodiff backend)
    /// BatchNorm uses batch statistics; on a plain backend it uses running statistics.
    ///
    /// # Shapes
    /// `[B, 3, H, W]` (RGB 0..1, H and W multiples of 32) → boxes `[B, 4R, A]`, scores `[B, nc, A]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> HeadOutput<B> {
        self.head().forward(self.features(images))
    }

    /// Runs backbone and neck: the P3, P4 and P5 maps that Detect reads.
    ///
    /// # Shapes
    /// `[B, 3, H, W]` → `[B, c3, H/8, W/8]`, `[B, c4, H/16, W/16]`, `[B, c5, H/32, W/32]`
    pub fn features(&self, images: Tensor<B, 4>) -> [Tensor<B, 4>; 3] {
        let mut saved: Vec<Option<Tensor<B, 4>>> = vec![None; self.model.len()];
        let mut x = images;
        for (i, layer) in self.model.iter().enumerate() {
            x = match layer {
                Layer::Conv(m) => m.forward(x),
                Layer::Csp(m) => m.forward(x),
                Layer::Sppf(m) => m.forward(x),
                Layer::C2psa(m) => m.forward(x),
                Layer::Upsample(f) => upsample_nearest(x, *f),
                Layer::Concat(other) => cat_channels(vec![x, take(&saved, *other)]),
                Layer::Detect(_) => break,
            };
            if self.keep[i] {
                saved[i] = Some(x.clone());
            }
        }
        [0, 1, 2].map(|level| take(&saved, self.head_from[level]))
    }

    /// The indices of the three layers Detect reads (P3, P4, P5), for walks over `model` outside `features`
    /// (the ONNX exporter's).
    pub fn head_from(&self) -> &[usize] {
        &self.head_from
    }

    /// The Detect head (the last layer).
    pub fn head(&self) -> &Detect<B> {
        match self.model.last() {
            Some(Layer::Detect(head)) => head,
            _ => unreachable!("every layer table ends with Detect"),
        }
    }

    /// Forward and decode, Ultralytics' eval-mode `y`: cx, cy, w, h in input pixels, then class scores.
    ///
    /// # Shapes
    /// `[B, 3, H, W]` → `[B, 4 + nc, A]`
    pub fn predict(&self, images: Tensor<B, 4>) -> Tensor<B, 3> {
        let out = self.forward(images);
        self.head().decode(&out)
    }

    /// Parameter count as Ultralytics reports it: every weight, bias and BN affine (DFL's frozen conv
    /// included), no BN running statistics.
    pub fn num_parameters(&self) -> usize {
        parameter_count(self)
    }

    /// Forward GFLOPs at `[h, w]`, counted as Ultralytics' `get_flops` (thop 2.2) does: two FLOPs per
    /// multiply-accumulate of each convolution (biases not counted) and of the attention matmuls, plus thop's
    /// four operations per BatchNorm element.
    pub fn gflops(&self, [h, w]: [usize; 2]) -> f64 {
        let mut hw = [h, w];
        let mut out_hw = Vec::with_capacity(self.model.len());
        let mut macs = 0u64;
        for layer in &self.model {
            match layer {
                Layer::Conv(m) => {
                    let s = m.conv.stride[0];
                    hw = [hw[0].div_ceil(s), hw[1].div_ceil(s)];
                    macs += module_macs(m, hw);
                }
                Layer::Csp(m) => macs += module_macs(m, hw),
                Layer::Sppf(m) => macs += module_macs(m, hw),
                Layer::C2psa(m) => {
                    let n = (hw[0] * hw[1]) as u64;
                    let attention: u64 = m
                        .m
                        .iter()
                        .map(|b| {
                            (b.attn.num_heads * (b.attn.key_dim + b.attn.head_dim)) as u64 * n * n
                        })
                        .sum();
                    macs += module_macs(m, hw) + attention;
                }
                Layer::Upsample(f) => hw = [hw[0] * f, hw[1] * f],
                Layer::Concat(_) => {}
                Layer::Detect(head) => {
                    let mut anchors = 0;
                    for (level, &from) in self.head_from.iter().enumerate() {
                        let level_hw: [usize; 2] = out_hw[from];
                        macs += module_macs(&head.cv2[level], level_hw)
                            + module_macs(&head.cv3[level], level_hw);
                        anchors += level_hw[0] * level_hw[1];
                    }
                    // DFL: a 16→1 1×1 conv over 4·A positions.
                    macs += (head.dfl.conv.weight.shape().num_elements() * 4 * anchors) as u64;
                }
            }
            out_hw.push(hw);
        }
        2.0 * macs as f64 / 1e9
    }
}

/// Parameters of any module as Ultralytics counts them (BatchNorm running statistics excluded).
pub fn parameter_count<B: Backend, M: Module<B>>(module: &M) -> usize {
    let mut counter = ParamCounter::default();
    module.visit(&mut counter);
    counter.params
}

fn take<B: Backend>(saved: &[Option<Tensor<B, 4>>], index: usize) -> Tensor<B, 4> {
    saved[index]
        .clone()
        .unwrap_or_else(|| unreachable!("layer {index} output is kept for later layers"))
}

/// `nn.Upsample(scale_factor=f, mode="nearest")`, with the selected kernels (`kernels::upsample_nearest`).
///
/// # Shapes
/// `[B, C, H, W]` → `[B, C, f·H, f·W]`
pub fn upsample_nearest<B: Backend>(x: Tensor<B, 4>, f: usize) -> Tensor<B, 4> {
    crate::kernels::upsample_nearest(x, f)
}

/// thop's operation count of every convolution and BatchNorm inside `module` at output resolution `hw`: a 4-D
/// weight does `numel` MACs per output pixel, a BatchNorm four operations per element.
fn module_macs<B: Backend, M: Module<B>>(module: &M, [h, w]: [usize; 2]) -> u64 {
    let mut counter = ParamCounter::default();
    module.visit(&mut counter);
    ((counter.conv_weights + 4 * counter.bn_channels) * h * w) as u64
}

/// Counts parameters by walking the module tree, skipping BatchNorm running statistics (which Burn visits as
/// tensors but Ultralytics does not count as parameters).
#[derive(Default)]
struct ParamCounter {
    path: Vec<String>,
    params: usize,
    conv_weights: usize,
    bn_channels: usize,
}

impl<B: Backend> ModuleVisitor<B> for ParamCounter {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let n = param.shape().num_elements();
        match self.path.last().map(String::as_str) {
            Some("running_mean" | "running_var") => {}
            Some("gamma") => {
                self.params += n;
                self.bn_channels += n;
            }
            _ => {
                self.params += n;
                if D == 4 {
                    self.conv_weights += n;
                }
            }
        }
    }
}
