//! The six sections of a config file, one struct each, with their defaults and the rule every key obeys.
//!
//! Defaults are Ultralytics 8.4's `ultralytics/cfg/default.yaml` unless a field's doc says otherwise. Each
//! section's `KEYS` table lists its keys in file order with the kind and range that `schema` checks; a test in
//! `config` keeps the tables and the structs in step.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::choices::{
    Arch, CacheMode, ExportFormat, Kernels, OptimizerKind, Precision, ScaleName, Split,
};
use super::schema::{KeySpec, Kind, Limit};

/// `[model]`: which network to build and where its first weights come from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// The family: `"yolov8"` or `"yolo11"` (Ultralytics' `model=yolov8n.yaml` names both family and size).
    pub arch: Arch,
    /// The size, `"n"` to `"x"`: selects `[depth, width, max_channels]` from the model yaml's `scales:`.
    pub scale: ScaleName,
    /// Number of classes. `None` (key omitted): taken from the dataset's `nc`/`names`, as Ultralytics does.
    pub nc: Option<usize>,
    /// An Ultralytics-layout safetensors file (keys `model.<i>.…`) to initialise from, like `model=yolov8n.pt`.
    /// `None`: random initialisation. A relative path resolves against the current directory.
    pub weights: Option<PathBuf>,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            arch: Arch::Yolov8,
            scale: ScaleName::N,
            nc: None,
            weights: None,
        }
    }
}

impl ModelSection {
    pub(crate) const KEYS: &'static [KeySpec] = &[
        KeySpec::new("arch", Kind::choice(Arch::NAMES)),
        KeySpec::new("scale", Kind::choice(ScaleName::NAMES)),
        KeySpec::optional("nc", Kind::at_least(1), "taken from the dataset"),
        KeySpec::optional("weights", Kind::Path, "random initialisation"),
    ];
}

/// `[data]`: the dataset and how it is read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// The dataset descriptor: a yolo-burn `.toml`, an Ultralytics `.yaml`, or a COCO/Objects365 instances
    /// `.json`. Relative paths resolve against the current working directory, as Ultralytics' `data=`.
    /// Default: `datasets/shapes.toml`, the small dataset embedded in the binary (not in default.yaml).
    pub dataset: PathBuf,
    /// Image folder of a COCO / Objects365 instances `.json` dataset (their `file_name`s are relative to it).
    /// `None`: the format's usual place beside the JSON (`images/<split>`, `../images/<split>`, …).
    /// Ignored for `.yaml`/`.toml` datasets, whose descriptor says where images are.
    pub images: Option<PathBuf>,
    /// `true`: any unreadable image or malformed label line is an error. `false` (Ultralytics' behaviour):
    /// the image is skipped with a warning and counted in the dataset summary. Not in default.yaml.
    pub strict: bool,
    /// Keep decoded images between epochs: `"none"`, `"ram"` or `"disk"` (default.yaml `cache: False`;
    /// `false`/`true` are read as `"none"`/`"ram"`).
    pub cache: CacheMode,
    /// Fraction of the training images used, in (0, 1] (default.yaml `fraction: 1.0`).
    pub fraction: f64,
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            dataset: PathBuf::from("datasets/shapes.toml"),
            images: None,
            strict: false,
            cache: CacheMode::None,
            fraction: 1.0,
        }
    }
}

impl DataSection {
    pub(crate) const KEYS: &'static [KeySpec] = &[
        KeySpec::new("dataset", Kind::Path),
        KeySpec::optional(
            "images",
            Kind::Path,
            "the format's usual folder beside the JSON",
        ),
        KeySpec::new("strict", Kind::Bool),
        KeySpec::new(
            "cache",
            Kind::choice_or_bool(CacheMode::NAMES, ["none", "ram"]),
        ),
        KeySpec::new("fraction", Kind::float(Limit::Excl(0.0), Limit::Incl(1.0))),
    ];
}

/// `[train]`: the training run, its optimizer, schedule and loss gains.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    /// Number of passes over the training set (default.yaml `epochs: 100`).
    pub epochs: usize,
    /// Images per batch (default.yaml `batch: 16`; Ultralytics' AutoBatch `-1` is not supported).
    pub batch: usize,
    /// Square input size in pixels, a multiple of the largest stride 32 (default.yaml `imgsz: 640`).
    pub imgsz: usize,
    /// Seed of every random generator: weights init, shuffling, augmentation (default.yaml `seed: 0`).
    pub seed: u64,
    /// Data-loader threads that decode and augment images (default.yaml `workers: 8`).
    pub workers: usize,
    /// Where to run, parsed by `backend::BackendChoice`: `"cpu"` (= `"flex"`, burn-flex), `"ndarray"`,
    /// `"cuda"` (= `"gpu"`, the first GPU) or `"cuda:N"`; Ultralytics' `device=0` is read as `"cuda:0"`.
    /// Stored lowercase. Default `"cpu"` (default.yaml leaves it empty to pick a GPU when one exists).
    pub device: String,
    /// Forward/backward float type: `"fp32"`, `"fp16"` or `"bf16"`. Default `"fp32"`; Ultralytics'
    /// `amp: True` corresponds to `"fp16"` on CUDA.
    pub precision: Precision,
    /// CPU implementation of the conv blocks: `"fast"` (ours, src/kernels) or `"burn"` (Burn's stock modules).
    /// Not in Ultralytics. Default `"fast"`.
    pub kernels: Kernels,
    /// Parent folder of runs: a run writes `<project>/<name>/` (default.yaml: empty, meaning `runs/detect`).
    pub project: PathBuf,
    /// Run folder name under `project`; an existing one gets a numeric suffix unless `exist_ok`
    /// (default.yaml: empty, meaning `train`).
    pub name: String,
    /// Reuse `<project>/<name>/` when it exists instead of suffixing the name (default.yaml `exist_ok: False`).
    pub exist_ok: bool,
    /// Continue `<project>/<name>/weights/last` with its optimizer, scaler and epoch (default.yaml `resume: False`).
    pub resume: bool,
    /// `"auto"`, `"SGD"`, `"AdamW"` or `"MuSGD"` (default.yaml `optimizer: auto`).
    pub optimizer: OptimizerKind,
    /// Initial learning rate (default.yaml `lr0: 0.01`; 1e-3 is usual for AdamW).
    pub lr0: f64,
    /// Final learning rate as a fraction of `lr0`, reached at the last epoch (default.yaml `lrf: 0.01`).
    pub lrf: f64,
    /// SGD momentum, or AdamW's beta1 (default.yaml `momentum: 0.937`).
    pub momentum: f64,
    /// Weight decay on conv weights; BatchNorm and biases get none (default.yaml `weight_decay: 0.0005`).
    pub weight_decay: f64,
    /// Epochs of linear warmup, fractions allowed (default.yaml `warmup_epochs: 3.0`).
    pub warmup_epochs: f64,
    /// Momentum at the start of warmup, raised linearly to `momentum` (default.yaml `warmup_momentum: 0.8`).
    pub warmup_momentum: f64,
    /// Bias learning rate at the start of warmup, lowered linearly to the scheduled lr
    /// (default.yaml `warmup_bias_lr: 0.1`).
    pub warmup_bias_lr: f64,
    /// Cosine instead of linear decay from `lr0` to `lr0 * lrf` (default.yaml `cos_lr: False`).
    pub cos_lr: bool,
    /// Nominal batch size: gradients accumulate over `round(nbs / batch)` batches and weight decay is scaled
    /// by `batch * accumulate / nbs` (default.yaml `nbs: 64`).
    pub nbs: usize,
    /// Stop after this many epochs without a better fitness; 0 never stops early (default.yaml `patience: 100`).
    pub patience: usize,
    /// Turn mosaic off for this many final epochs; 0 keeps it to the end (default.yaml `close_mosaic: 10`).
    pub close_mosaic: usize,
    /// Gain of the CIoU box loss (default.yaml `box: 7.5`).
    #[serde(rename = "box")]
    pub box_gain: f64,
    /// Gain of the BCE classification loss (default.yaml `cls: 0.5`).
    #[serde(rename = "cls")]
    pub cls_gain: f64,
    /// Gain of the distribution focal loss (default.yaml `dfl: 1.5`).
    #[serde(rename = "dfl")]
    pub dfl_gain: f64,
    /// Clip the global gradient norm to this value before each step (ultralytics/engine/trainer.py
    /// `optimizer_step`: `clip_grad_norm_(max_norm=10.0)`; not in default.yaml).
    pub max_grad_norm: f64,
    /// Evaluate on the val split after every epoch; `false` evaluates only after the last (default.yaml `val: True`).
    pub val: bool,
    /// Also keep a checkpoint every this many epochs; -1 or 0 disables (default.yaml `save_period: -1`).
    pub save_period: i64,
    /// Rectangular (aspect-preserving, minimally padded) batches, which turn mosaic off
    /// (default.yaml `rect: False`).
    pub rect: bool,
    /// Train every class as one class 0 (default.yaml `single_cls: False`).
    pub single_cls: bool,
    /// Initial fp16 loss scale (torch.amp.GradScaler `init_scale=2**16`; not in default.yaml).
    pub amp_init_scale: f64,
    /// Double the fp16 loss scale after this many steps without overflow (torch.amp.GradScaler
    /// `growth_interval=2000`; not in default.yaml).
    pub amp_growth_interval: usize,
    /// Multiplies the fp16 loss scale after `amp_growth_interval` clean steps, > 1 (torch.amp.GradScaler
    /// `growth_factor=2.0`; not in default.yaml).
    pub amp_growth_factor: f64,
    /// Multiplies the fp16 loss scale after a step with a non-finite gradient, in (0, 1) (torch.amp.GradScaler
    /// `backoff_factor=0.5`; not in default.yaml).
    pub amp_backoff_factor: f64,
    /// Stop the run with an error after this many optimizer steps in a row skipped for non-finite gradients
    /// (a diverging learning rate, or NaN in the data), leaving `weights/last` at the last good state. Not in
    /// Ultralytics, which skips forever. Default 200.
    pub amp_skip_limit: usize,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch: 16,
            imgsz: 640,
            seed: 0,
            workers: 8,
            device: "cpu".to_string(),
            precision: Precision::Fp32,
            kernels: Kernels::Fast,
            project: PathBuf::from("runs"),
            name: "train".to_string(),
            exist_ok: false,
            resume: false,
            optimizer: OptimizerKind::Auto,
            lr0: 0.01,
            lrf: 0.01,
            momentum: 0.937,
            weight_decay: 0.0005,
            warmup_epochs: 3.0,
            warmup_momentum: 0.8,
            warmup_bias_lr: 0.1,
            cos_lr: false,
            nbs: 64,
            patience: 100,
            close_mosaic: 10,
            box_gain: 7.5,
            cls_gain: 0.5,
            dfl_gain: 1.5,
            max_grad_norm: 10.0,
            val: true,
            save_period: -1,
            rect: false,
            single_cls: false,
            amp_init_scale: 65536.0,
            amp_growth_interval: 2000,
            amp_growth_factor: 2.0,
            amp_backoff_factor: 0.5,
            amp_skip_limit: 200,
        }
    }
}

impl TrainSection {
    pub(crate) const KEYS: &'static [KeySpec] = &[
        KeySpec::new("epochs", Kind::at_least(1)),
        KeySpec::new("batch", Kind::at_least(1)),
        KeySpec::new("imgsz", Kind::ImgSize),
        KeySpec::new("seed", Kind::at_least(0)),
        KeySpec::new("workers", Kind::at_least(0)),
        KeySpec::new("device", Kind::Device),
        KeySpec::new("precision", Kind::choice(Precision::NAMES)),
        KeySpec::new("kernels", Kind::choice(Kernels::NAMES)),
        KeySpec::new("project", Kind::Path),
        KeySpec::new("name", Kind::Text),
        KeySpec::new("exist_ok", Kind::Bool),
        KeySpec::new("resume", Kind::Bool),
        KeySpec::new("optimizer", Kind::choice(OptimizerKind::NAMES)),
        KeySpec::new("lr0", Kind::float(Limit::Excl(0.0), Limit::Open)),
        KeySpec::new("lrf", Kind::float(Limit::Excl(0.0), Limit::Incl(1.0))),
        KeySpec::new("momentum", Kind::float(Limit::Incl(0.0), Limit::Excl(1.0))),
        KeySpec::new("weight_decay", Kind::NON_NEGATIVE),
        KeySpec::new("warmup_epochs", Kind::NON_NEGATIVE),
        KeySpec::new(
            "warmup_momentum",
            Kind::float(Limit::Incl(0.0), Limit::Excl(1.0)),
        ),
        KeySpec::new("warmup_bias_lr", Kind::NON_NEGATIVE),
        KeySpec::new("cos_lr", Kind::Bool),
        KeySpec::new("nbs", Kind::at_least(1)),
        KeySpec::new("patience", Kind::at_least(0)),
        KeySpec::new("close_mosaic", Kind::at_least(0)),
        KeySpec::new("box", Kind::NON_NEGATIVE),
        KeySpec::new("cls", Kind::NON_NEGATIVE),
        KeySpec::new("dfl", Kind::NON_NEGATIVE),
        KeySpec::new("max_grad_norm", Kind::float(Limit::Excl(0.0), Limit::Open)),
        KeySpec::new("val", Kind::Bool),
        KeySpec::new("save_period", Kind::at_least(-1)),
        KeySpec::new("rect", Kind::Bool),
        KeySpec::new("single_cls", Kind::Bool),
        KeySpec::new("amp_init_scale", Kind::float(Limit::Excl(0.0), Limit::Open)),
        KeySpec::new("amp_growth_interval", Kind::at_least(1)),
        KeySpec::new(
            "amp_growth_factor",
            Kind::float(Limit::Excl(1.0), Limit::Open),
        ),
        KeySpec::new(
            "amp_backoff_factor",
            Kind::float(Limit::Excl(0.0), Limit::Excl(1.0)),
        ),
        KeySpec::new("amp_skip_limit", Kind::at_least(1)),
    ];
}

/// `[augment]`: training-time augmentation, all on `u8` images before collation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentSection {
    /// Hue gain: the hue shifts by up to ± this fraction (default.yaml `hsv_h: 0.015`).
    pub hsv_h: f64,
    /// Saturation gain: saturation is multiplied by up to 1 ± this (default.yaml `hsv_s: 0.7`).
    pub hsv_s: f64,
    /// Value (brightness) gain: value is multiplied by up to 1 ± this (default.yaml `hsv_v: 0.4`).
    pub hsv_v: f64,
    /// Random rotation of up to ± this many degrees (default.yaml `degrees: 0.0`).
    pub degrees: f64,
    /// Random translation of up to ± this fraction of the image size (default.yaml `translate: 0.1`).
    pub translate: f64,
    /// Random zoom by a factor in [1 - scale, 1 + scale] (default.yaml `scale: 0.5`).
    pub scale: f64,
    /// Random shear of up to ± this many degrees (default.yaml `shear: 0.0`).
    pub shear: f64,
    /// Random perspective distortion, Ultralytics' range 0–0.001 (default.yaml `perspective: 0.0`).
    pub perspective: f64,
    /// Probability of an up-down flip (default.yaml `flipud: 0.0`).
    pub flipud: f64,
    /// Probability of a left-right flip (default.yaml `fliplr: 0.5`).
    pub fliplr: f64,
    /// Probability of a 4-image mosaic (default.yaml `mosaic: 1.0`).
    pub mosaic: f64,
    /// Probability of blending in a second mosaic (default.yaml `mixup: 0.0`).
    pub mixup: f64,
}

impl Default for AugmentSection {
    fn default() -> Self {
        Self {
            hsv_h: 0.015,
            hsv_s: 0.7,
            hsv_v: 0.4,
            degrees: 0.0,
            translate: 0.1,
            scale: 0.5,
            shear: 0.0,
            perspective: 0.0,
            flipud: 0.0,
            fliplr: 0.5,
            mosaic: 1.0,
            mixup: 0.0,
        }
    }
}

impl AugmentSection {
    pub(crate) const KEYS: &'static [KeySpec] = &[
        KeySpec::new("hsv_h", Kind::UNIT),
        KeySpec::new("hsv_s", Kind::UNIT),
        KeySpec::new("hsv_v", Kind::UNIT),
        KeySpec::new("degrees", Kind::float(Limit::Incl(0.0), Limit::Incl(180.0))),
        KeySpec::new("translate", Kind::UNIT),
        KeySpec::new("scale", Kind::float(Limit::Incl(0.0), Limit::Excl(1.0))),
        KeySpec::new("shear", Kind::float(Limit::Incl(0.0), Limit::Excl(90.0))),
        KeySpec::new(
            "perspective",
            Kind::float(Limit::Incl(0.0), Limit::Incl(0.001)),
        ),
        KeySpec::new("flipud", Kind::UNIT),
        KeySpec::new("fliplr", Kind::UNIT),
        KeySpec::new("mosaic", Kind::UNIT),
        KeySpec::new("mixup", Kind::UNIT),
    ];
}

/// `[eval]`: how predictions are filtered before COCO evaluation (also used by `predict`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSection {
    /// Minimum confidence kept before NMS. `None` (key omitted): 0.001 for `val`, 0.25 for `predict`,
    /// as default.yaml's empty `conf:`.
    pub conf: Option<f64>,
    /// NMS IoU threshold (default.yaml `iou: 0.7`).
    pub iou: f64,
    /// Maximum detections kept per image (default.yaml `max_det: 300`).
    pub max_det: usize,
    /// Class-agnostic NMS: boxes of different classes also suppress each other (default.yaml `agnostic_nms: False`).
    pub agnostic_nms: bool,
    /// Dataset split that `val` evaluates: `"train"`, `"val"` or `"test"` (default.yaml `split: val`).
    pub split: Split,
    /// Rectangular validation batches (Ultralytics' validator default); `false` letterboxes every image into the
    /// `imgsz` square, as a fixed-size exported file needs, so the two can be compared on equal terms.
    pub rect: bool,
}

impl Default for EvalSection {
    fn default() -> Self {
        Self {
            conf: None,
            iou: 0.7,
            max_det: 300,
            agnostic_nms: false,
            split: Split::Val,
            rect: true,
        }
    }
}

impl EvalSection {
    /// `conf` when omitted, for `val` (ultralytics/models/yolo/detect/val.py).
    pub const VAL_CONF: f64 = 0.001;
    /// `conf` when omitted, for `predict` (ultralytics/engine/predictor.py).
    pub const PREDICT_CONF: f64 = 0.25;

    pub(crate) const KEYS: &'static [KeySpec] = &[
        KeySpec::optional("conf", Kind::UNIT, "0.001 for val, 0.25 for predict"),
        KeySpec::new("iou", Kind::float(Limit::Excl(0.0), Limit::Incl(1.0))),
        KeySpec::new("max_det", Kind::at_least(1)),
        KeySpec::new("agnostic_nms", Kind::Bool),
        KeySpec::new("split", Kind::choice(Split::NAMES)),
        KeySpec::new("rect", Kind::Bool),
    ];

    /// The confidence threshold for `val`.
    pub fn val_conf(&self) -> f64 {
        self.conf.unwrap_or(Self::VAL_CONF)
    }

    /// The confidence threshold for `predict`.
    pub fn predict_conf(&self) -> f64 {
        self.conf.unwrap_or(Self::PREDICT_CONF)
    }
}

/// `[export]`: the deployable file written by `export`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExportSection {
    /// Output format: `"onnx"`, or `"burn"` (a fused safetensors Burn record) (default.yaml `format: torchscript`).
    pub format: ExportFormat,
    /// Write fp16 weights and activations (default.yaml `half: False`).
    pub half: bool,
    /// ONNX opset version, 13 to 17: 13 is the first with `Split` sizes as an input (what the exporter writes),
    /// 17 the last TensorRT 8.5 reads (default.yaml leaves it empty for the newest).
    pub opset: usize,
    /// A dynamic batch axis (default.yaml `dynamic: False`); the image size stays fixed, as TensorRT engines for
    /// Jetson are built for one size. There is no `simplify`: the exporter writes the folded graph directly.
    pub dynamic: bool,
    /// Input size of the exported graph; `None` (key omitted): `train.imgsz`.
    pub imgsz: Option<usize>,
}

impl Default for ExportSection {
    fn default() -> Self {
        Self {
            format: ExportFormat::Onnx,
            half: false,
            opset: 17,
            dynamic: false,
            imgsz: None,
        }
    }
}

impl ExportSection {
    pub(crate) const KEYS: &'static [KeySpec] = &[
        KeySpec::new("format", Kind::choice(ExportFormat::NAMES)),
        KeySpec::new("half", Kind::Bool),
        KeySpec::new("opset", Kind::between(13, 17)),
        KeySpec::new("dynamic", Kind::Bool),
        KeySpec::optional("imgsz", Kind::ImgSize, "train.imgsz"),
    ];

    /// The export input size: `imgsz`, else `train_imgsz`.
    pub fn imgsz_or(&self, train_imgsz: usize) -> usize {
        self.imgsz.unwrap_or(train_imgsz)
    }
}
