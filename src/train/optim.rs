//! The optimizer step of Ultralytics' trainer: SGD (Nesterov), AdamW or MuSGD over three parameter groups,
//! global-norm gradient clipping, and Ultralytics' `optimizer=auto` rule.
//!
//! Why our own step and not Burn's `Sgd`/`AdamW`: Ultralytics changes each group's learning rate and momentum
//! on every iteration of warmup, and gives the three groups different weight decay. Burn's optimizers take one
//! learning rate per step and fix momentum and decay at construction. So the step is written here, as
//! `torch.optim.SGD` / `torch.optim.AdamW` compute it, over the parameters that Burn's [`ModuleMapper`] walks,
//! with the gradients Burn's [`GradientsParams`] gives (and Burn's `GradientsAccumulator` sums across
//! accumulated batches). The state is kept per parameter *path* (e.g. `model.2.m.0.cv1.conv.weight`), not per
//! `ParamId`, because ids are random per process and a resumed run must find its state again. All state and
//! arithmetic is FP32 on the inner (non-autodiff) backend.
//!
//! Sources: ultralytics/engine/trainer.py `build_optimizer`, `optimizer_step` (8.4.190); ultralytics/optim/muon.py;
//! torch/optim/sgd.py, torch/optim/adamw.py; torch/nn/utils/clip_grad.py `clip_grad_norm_`.

use std::collections::HashMap;

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::ToElement;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::config::{OptimizerKind, TrainSection};

/// AdamW's `eps` (torch default).
const ADAM_EPS: f64 = 1e-8;
/// AdamW's beta2 as Ultralytics sets it: `betas=(momentum, 0.999)`.
const ADAM_BETA2: f64 = 0.999;
/// `optimizer=auto` picks MuSGD above this many iterations, AdamW at or below.
const AUTO_MUSGD_ITERATIONS: usize = 10_000;
/// MuSGD's weights of its two halves, as `build_optimizer` passes them: `partial(MuSGD, muon=0.2, sgd=1.0)`.
const MUSGD_MUON: f64 = 0.2;
const MUSGD_SGD: f64 = 1.0;
/// MuSGD gives the Detect head's class branch (`cv3`) three times the learning rate (`build_optimizer`).
pub const MUSGD_CLS_LR_GAIN: f64 = 3.0;

/// The parameter groups of Ultralytics' `build_optimizer`, in the order of results.csv's `lr/pg0..2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParamGroup {
    /// pg0: conv and linear weights, with weight decay.
    Weight,
    /// pg1: BatchNorm weights (`gamma`), no decay.
    Norm,
    /// pg2: every bias (conv biases and BatchNorm `beta`), no decay.
    Bias,
}

impl ParamGroup {
    /// The three groups in results.csv order.
    pub const ALL: [ParamGroup; 3] = [ParamGroup::Weight, ParamGroup::Norm, ParamGroup::Bias];

    /// The group of a parameter from its field name, as Ultralytics decides it: a name containing "bias" (our
    /// BatchNorm `beta` is PyTorch's `bias`) first, then a norm layer's weight (`gamma`), else a weight.
    pub fn of(field: &str) -> ParamGroup {
        match field {
            "beta" => ParamGroup::Bias,
            f if f.contains("bias") => ParamGroup::Bias,
            "gamma" => ParamGroup::Norm,
            _ => ParamGroup::Weight,
        }
    }

    /// Index into [`GroupHyper`] arrays.
    pub fn index(self) -> usize {
        match self {
            ParamGroup::Weight => 0,
            ParamGroup::Norm => 1,
            ParamGroup::Bias => 2,
        }
    }
}

/// Which update rule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    /// `torch.optim.SGD(momentum, nesterov=True)`.
    Sgd,
    /// `torch.optim.AdamW(betas=(momentum, 0.999), eps=1e-8)`.
    AdamW,
    /// Ultralytics' `MuSGD(muon=0.2, sgd=1.0)`: conv weights get Muon's orthogonalised update plus SGD, every
    /// other parameter SGD; the Detect head's class branch runs at 3× the learning rate.
    MuSgd,
}

impl Method {
    /// Whether warmup ramps the groups' `momentum`: torch's SGD-style groups have that key, Adam's have `betas`.
    pub fn has_momentum(self) -> bool {
        matches!(self, Method::Sgd | Method::MuSgd)
    }
}

/// The optimizer a run uses once `optimizer = "auto"` is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResolvedOptimizer {
    pub method: Method,
    /// Initial learning rate of every group (`lr0`, or the `auto` fit).
    pub lr0: f64,
    /// SGD momentum / AdamW beta1 as the optimizer is built.
    pub momentum: f64,
    /// Where warmup takes an SGD-style momentum, when that differs from `momentum`: Ultralytics' warmup
    /// interpolates towards the config's `momentum` (0.937) even when `auto` built the optimizer with 0.9.
    /// `None` means `momentum`.
    pub warmup_momentum_end: Option<f64>,
    /// Bias learning rate at the start of warmup (`auto` sets it to 0, as Ultralytics does).
    pub warmup_bias_lr: f64,
    /// Weight decay of pg0, already scaled by `batch · accumulate / nbs`.
    pub weight_decay: f64,
}

impl ResolvedOptimizer {
    /// Ultralytics' `_setup_train` + `build_optimizer`: decay scaled by `batch · accumulate / nbs`; `auto` is
    /// AdamW with `lr = round(0.002 · 5 / (4 + nc), 6)` and momentum 0.9 when `iterations ≤ 10 000`, else
    /// MuSGD with lr 0.01 and momentum 0.9. `iterations = ceil(images / max(batch, nbs)) · epochs`.
    pub fn new(train: &TrainSection, nc: usize, train_images: usize) -> Self {
        let accumulate = nominal_accumulate(train);
        let weight_decay =
            train.weight_decay * train.batch as f64 * accumulate as f64 / train.nbs as f64;
        let iterations = train_images.div_ceil(train.batch.max(train.nbs).max(1)) * train.epochs;
        let (method, lr0, momentum, warmup_bias_lr) = match train.optimizer {
            OptimizerKind::Auto => {
                let lr_fit = (0.002 * 5.0 / (4.0 + nc as f64) * 1e6).round() / 1e6;
                if iterations > AUTO_MUSGD_ITERATIONS {
                    (Method::MuSgd, 0.01, 0.9, 0.0)
                } else {
                    (Method::AdamW, lr_fit, 0.9, 0.0)
                }
            }
            OptimizerKind::Sgd => (Method::Sgd, train.lr0, train.momentum, train.warmup_bias_lr),
            OptimizerKind::MuSgd => (
                Method::MuSgd,
                train.lr0,
                train.momentum,
                train.warmup_bias_lr,
            ),
            OptimizerKind::Adamw => (
                Method::AdamW,
                train.lr0,
                train.momentum,
                train.warmup_bias_lr,
            ),
        };
        let warmup_momentum_end =
            (method.has_momentum() && momentum != train.momentum).then_some(train.momentum);
        Self {
            method,
            lr0,
            momentum,
            warmup_momentum_end,
            warmup_bias_lr,
            weight_decay,
        }
    }
}

/// `max(round(nbs / batch), 1)`: batches whose gradients are summed before one step, after warmup.
pub fn nominal_accumulate(train: &TrainSection) -> usize {
    ((train.nbs as f64 / train.batch.max(1) as f64).round() as usize).max(1)
}

/// One group's settings for one step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GroupHyper {
    pub lr: f64,
    /// SGD momentum, or AdamW beta1 (which Ultralytics' warmup leaves alone: Adam groups have no `momentum`).
    pub momentum: f64,
    pub weight_decay: f64,
}

/// The hyperparameters of one step: per group, and per group for the parameters MuSGD boosts (the Detect
/// head's class branch; equal to `groups` for the other methods).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepHyper {
    pub groups: [GroupHyper; 3],
    pub boosted: [GroupHyper; 3],
}

impl From<[GroupHyper; 3]> for StepHyper {
    fn from(groups: [GroupHyper; 3]) -> Self {
        Self {
            groups,
            boosted: groups,
        }
    }
}

/// Whether MuSGD boosts the parameter at `path`: it lies in the `cv3` (class branch) of the `Detect` layer.
pub fn is_cls_branch(path: &str) -> bool {
    let mut segments = path.split('.');
    segments.any(|s| s == "Detect") && segments.next() == Some("cv3")
}

/// What [`Optimizer::step`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepOutcome {
    /// Parameters updated; the gradient norm before clipping.
    Applied { grad_norm: f64 },
    /// The gradients held a NaN or infinity: nothing changed.
    SkippedNonFinite,
}

/// Per-parameter state: torch's `momentum_buffer` (SGD), `exp_avg`, `exp_avg_sq`, `step` (AdamW), or MuSGD's
/// `momentum_buffer` (Muon's, or SGD's for parameters without Muon) and `momentum_buffer_SGD`.
#[derive(Debug, Clone)]
struct Slot<B: Backend> {
    step: u64,
    first: Option<Tensor<B, 1>>,
    second: Option<Tensor<B, 1>>,
}

/// A [`Slot`] as plain numbers, for checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotRecord {
    pub path: String,
    pub step: u64,
    pub first: Option<Vec<f32>>,
    pub second: Option<Vec<f32>>,
}

/// The optimizer's whole state, for checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerRecord {
    pub method: Method,
    pub slots: Vec<SlotRecord>,
}

/// SGD or AdamW with per-group hyperparameters; see the module doc.
#[derive(Debug)]
pub struct Optimizer<B: Backend> {
    method: Method,
    max_grad_norm: f64,
    slots: HashMap<String, Slot<B>>,
}

impl<B: Backend> Optimizer<B> {
    pub fn new(method: Method, max_grad_norm: f64) -> Self {
        Self {
            method,
            max_grad_norm,
            slots: HashMap::new(),
        }
    }

    pub fn method(&self) -> Method {
        self.method
    }

    /// One optimizer step on `module` with the summed gradients `grads`: `clip_grad_norm_(max_norm)` over
    /// every parameter's gradient, then the update of each parameter with its group's `hyper`.
    /// Non-finite gradients skip the step and leave module and state untouched.
    pub fn step<AB, M>(
        &mut self,
        module: M,
        mut grads: GradientsParams,
        hyper: impl Into<StepHyper>,
    ) -> (M, StepOutcome)
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<AB>,
    {
        let mut collector = GradCollector::<AB> {
            grads: &mut grads,
            path: Vec::new(),
            found: Vec::new(),
            _backend: std::marker::PhantomData,
        };
        module.visit(&mut collector);
        let found = std::mem::take(&mut collector.found);
        let sum_sq = found
            .iter()
            .map(|g| g.grad.clone().square().sum())
            .reduce(|a, b| a + b);
        let Some(sum_sq) = sum_sq else {
            return (module, StepOutcome::Applied { grad_norm: 0.0 });
        };
        let grad_norm = sum_sq.into_scalar().to_f64().sqrt();
        if !grad_norm.is_finite() {
            return (module, StepOutcome::SkippedNonFinite);
        }
        // torch: clip_coef = max_norm / (total_norm + 1e-6), clamped to 1, multiplied into every grad.
        let clip = (self.max_grad_norm / (grad_norm + 1e-6)).min(1.0);
        let mut by_id: HashMap<ParamId, FoundGrad<B>> =
            found.into_iter().map(|g| (g.id, g)).collect();
        let mut mapper = StepMapper::<AB> {
            optimizer: self,
            found: &mut by_id,
            clip,
            hyper: hyper.into(),
        };
        let module = module.map(&mut mapper);
        (module, StepOutcome::Applied { grad_norm })
    }

    /// Updates one flattened parameter; `dims` is its shape, which decides whether MuSGD applies Muon (2-D
    /// and 4-D parameters, as `build_optimizer` decides).
    fn update(
        &mut self,
        path: &str,
        param: Tensor<B, 1>,
        grad: Tensor<B, 1>,
        hyper: GroupHyper,
        dims: &[usize],
    ) -> Tensor<B, 1> {
        let slot = self.slots.entry(path.to_string()).or_insert(Slot {
            step: 0,
            first: None,
            second: None,
        });
        slot.step += 1;
        match self.method {
            Method::Sgd => sgd(&mut slot.first, param, grad, hyper, hyper.lr),
            Method::MuSgd if matches!(dims.len(), 2 | 4) => {
                // MuSGD.step with use_muon: p −= lr·0.2·muon_update(g, buf); then SGD with lr·1.0 on its own
                // buffer, its weight decay read from the already-moved p.
                let device = param.device();
                let grad_vec = to_vec(&grad);
                let mut momentum = slot
                    .first
                    .take()
                    .map(|t| to_vec(&t))
                    .unwrap_or_else(|| vec![0.0; grad_vec.len()]);
                let ortho =
                    super::muon::muon_update(&grad_vec, &mut momentum, hyper.momentum as f32, dims);
                let n = ortho.len();
                slot.first = Some(Tensor::from_data(TensorData::new(momentum, [n]), &device));
                let ortho = Tensor::<B, 1>::from_data(TensorData::new(ortho, [n]), &device);
                let param = param - ortho * (hyper.lr * MUSGD_MUON);
                sgd(&mut slot.second, param, grad, hyper, hyper.lr * MUSGD_SGD)
            }
            Method::MuSgd => sgd(&mut slot.first, param, grad, hyper, hyper.lr),
            Method::AdamW => {
                // torch.optim.AdamW: p = p·(1 − lr·wd); m = β1·m + (1 − β1)·g; v = β2·v + (1 − β2)·g²;
                // p = p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + eps).
                let beta1 = hyper.momentum;
                let param = if hyper.weight_decay != 0.0 {
                    param * (1.0 - hyper.lr * hyper.weight_decay)
                } else {
                    param
                };
                let m = match slot.first.take() {
                    Some(m) => m * beta1 + grad.clone() * (1.0 - beta1),
                    None => grad.clone() * (1.0 - beta1),
                };
                let v = match slot.second.take() {
                    Some(v) => v * ADAM_BETA2 + grad.square() * (1.0 - ADAM_BETA2),
                    None => grad.square() * (1.0 - ADAM_BETA2),
                };
                let t = slot.step as i32;
                let bias1 = 1.0 - beta1.powi(t);
                let bias2_sqrt = (1.0 - ADAM_BETA2.powi(t)).sqrt();
                let denom = v.clone().sqrt() / bias2_sqrt + ADAM_EPS;
                let update = m.clone() / denom * (hyper.lr / bias1);
                slot.first = Some(m);
                slot.second = Some(v);
                param - update
            }
        }
    }

    /// The state as plain numbers, sorted by path.
    pub fn to_record(&self) -> OptimizerRecord {
        let vec = |t: &Option<Tensor<B, 1>>| t.as_ref().map(to_vec);
        let mut slots: Vec<SlotRecord> = self
            .slots
            .iter()
            .map(|(path, slot)| SlotRecord {
                path: path.clone(),
                step: slot.step,
                first: vec(&slot.first),
                second: vec(&slot.second),
            })
            .collect();
        slots.sort_by(|a, b| a.path.cmp(&b.path));
        OptimizerRecord {
            method: self.method,
            slots,
        }
    }

    /// Restores the state of [`Optimizer::to_record`].
    pub fn load_record(&mut self, record: OptimizerRecord, device: &B::Device) {
        let tensor = |v: Option<Vec<f32>>| {
            v.map(|v| {
                let n = v.len();
                Tensor::from_data(TensorData::new(v, [n]), device)
            })
        };
        self.method = record.method;
        self.slots = record
            .slots
            .into_iter()
            .map(|s| {
                (
                    s.path,
                    Slot {
                        step: s.step,
                        first: tensor(s.first),
                        second: tensor(s.second),
                    },
                )
            })
            .collect();
    }
}

/// torch.optim.SGD's step (nesterov, dampening 0) with learning rate `lr` and momentum buffer `buf`:
/// d = g + wd·p; buf = μ·buf + d (buf = d at first); d = d + μ·buf; p = p − lr·d. MuSGD's SGD half is the
/// same arithmetic (its zero-initialised buffer gives buf = d at the first step too).
fn sgd<B: Backend>(
    buf: &mut Option<Tensor<B, 1>>,
    param: Tensor<B, 1>,
    grad: Tensor<B, 1>,
    hyper: GroupHyper,
    lr: f64,
) -> Tensor<B, 1> {
    let d = if hyper.weight_decay != 0.0 {
        grad + param.clone() * hyper.weight_decay
    } else {
        grad
    };
    let next = match buf.take() {
        Some(b) => b * hyper.momentum + d.clone(),
        None => d.clone(),
    };
    let d = d + next.clone() * hyper.momentum;
    *buf = Some(next);
    param - d * lr
}

fn to_vec<B: Backend>(t: &Tensor<B, 1>) -> Vec<f32> {
    t.to_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap_or_default()
}

/// A parameter's gradient, flattened.
struct FoundGrad<B: Backend> {
    id: ParamId,
    path: String,
    grad: Tensor<B, 1>,
}

/// Takes every parameter's gradient out of `GradientsParams`, flattened, with its path.
struct GradCollector<'a, AB: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    path: Vec<String>,
    found: Vec<FoundGrad<AB::InnerBackend>>,
    _backend: std::marker::PhantomData<AB>,
}

impl<AB: AutodiffBackend> ModuleVisitor<AB> for GradCollector<'_, AB> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
        if let Some(grad) = self.grads.remove::<AB::InnerBackend, D>(param.id) {
            let n = grad.shape().num_elements();
            self.found.push(FoundGrad {
                id: param.id,
                path: self.path.join("."),
                grad: grad.reshape([n]),
            });
        }
    }
}

/// Replaces every parameter that has a gradient with its updated value.
struct StepMapper<'a, AB: AutodiffBackend> {
    optimizer: &'a mut Optimizer<AB::InnerBackend>,
    found: &'a mut HashMap<ParamId, FoundGrad<AB::InnerBackend>>,
    clip: f64,
    hyper: StepHyper,
}

impl<AB: AutodiffBackend> ModuleMapper<AB> for StepMapper<'_, AB> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<AB, D>>) -> Param<Tensor<AB, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(found) = self.found.remove(&id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let field = found.path.rsplit('.').next().unwrap_or_default();
        let group = ParamGroup::of(field).index();
        let hyper = if is_cls_branch(&found.path) {
            self.hyper.boosted[group]
        } else {
            self.hyper.groups[group]
        };
        let shape = tensor.shape();
        let require_grad = tensor.is_require_grad();
        let n = shape.num_elements();
        let grad = if self.clip < 1.0 {
            found.grad * self.clip
        } else {
            found.grad
        };
        let dims = tensor.dims();
        let updated =
            self.optimizer
                .update(&found.path, tensor.inner().reshape([n]), grad, hyper, &dims);
        let mut tensor = Tensor::<AB, D>::from_inner(updated.reshape(shape));
        if require_grad {
            tensor = tensor.require_grad();
        }
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// Takes the gradients out of `grads` as records by parameter path (in `first`), to save them.
pub fn grads_to_records<AB, M>(module: &M, grads: &mut GradientsParams) -> Vec<SlotRecord>
where
    AB: AutodiffBackend,
    M: AutodiffModule<AB>,
{
    let mut collector = GradCollector::<AB> {
        grads,
        path: Vec::new(),
        found: Vec::new(),
        _backend: std::marker::PhantomData,
    };
    module.visit(&mut collector);
    let mut records: Vec<SlotRecord> = collector
        .found
        .into_iter()
        .map(|g| SlotRecord {
            path: g.path,
            step: 0,
            first: Some(
                g.grad
                    .into_data()
                    .convert::<f32>()
                    .to_vec::<f32>()
                    .unwrap_or_default(),
            ),
            second: None,
        })
        .collect();
    records.sort_by(|a, b| a.path.cmp(&b.path));
    records
}

/// The inverse of [`grads_to_records`] for `module`'s parameter ids.
pub fn grads_from_records<AB, M>(
    module: &M,
    records: Vec<SlotRecord>,
    device: &AB::Device,
) -> GradientsParams
where
    AB: AutodiffBackend,
    M: AutodiffModule<AB>,
{
    struct Restore<'a, AB: AutodiffBackend> {
        by_path: HashMap<String, Vec<f32>>,
        path: Vec<String>,
        out: GradientsParams,
        device: &'a AB::Device,
    }
    impl<AB: AutodiffBackend> ModuleVisitor<AB> for Restore<'_, AB> {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
            if let Some(values) = self.by_path.remove(&self.path.join(".")) {
                let shape = param.shape();
                let grad = Tensor::<AB::InnerBackend, 1>::from_data(
                    TensorData::new(values, [shape.num_elements()]),
                    self.device,
                )
                .reshape(shape);
                self.out.register::<AB::InnerBackend, D>(param.id, grad);
            }
        }
    }
    let mut restore = Restore::<AB> {
        by_path: records
            .into_iter()
            .filter_map(|r| r.first.map(|f| (r.path, f)))
            .collect(),
        path: Vec::new(),
        out: GradientsParams::new(),
        device,
    };
    module.visit(&mut restore);
    restore.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Autodiff;
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};

    type Inner = crate::backend::Cpu;
    type Ad = Autodiff<Inner>;

    #[derive(Module, Debug)]
    struct Tiny<B: Backend> {
        lin: Linear<B>,
    }

    fn tiny(w: f32, b: f32) -> Tiny<Ad> {
        let device = Default::default();
        let mut lin = LinearConfig::new(1, 1).init::<Ad>(&device);
        lin.weight = Param::from_tensor(Tensor::from_data([[w]], &device));
        lin.bias = Some(Param::from_tensor(Tensor::from_data([b], &device)));
        Tiny { lin }
    }

    fn grads_of(model: &Tiny<Ad>, x: f32) -> GradientsParams {
        let device = Default::default();
        let y = model
            .lin
            .forward(Tensor::<Ad, 2>::from_data([[x]], &device));
        GradientsParams::from_grads(y.sum().backward(), model)
    }

    fn value(model: &Tiny<Ad>) -> (f32, f32) {
        let w = model.lin.weight.val().into_scalar();
        let b = model
            .lin
            .bias
            .as_ref()
            .map(|b| b.val().into_scalar())
            .unwrap_or_default();
        (w, b)
    }

    fn hyper(lr: f64, momentum: f64, wd: f64) -> [GroupHyper; 3] {
        [
            GroupHyper {
                lr,
                momentum,
                weight_decay: wd,
            },
            GroupHyper {
                lr,
                momentum,
                weight_decay: 0.0,
            },
            GroupHyper {
                lr,
                momentum,
                weight_decay: 0.0,
            },
        ]
    }

    #[test]
    fn param_group_follows_ultralytics_names() {
        assert_eq!(ParamGroup::of("weight"), ParamGroup::Weight);
        assert_eq!(ParamGroup::of("gamma"), ParamGroup::Norm);
        assert_eq!(ParamGroup::of("beta"), ParamGroup::Bias);
        assert_eq!(ParamGroup::of("bias"), ParamGroup::Bias);
    }

    #[test]
    fn sgd_nesterov_two_steps_match_torch() {
        // y = w·x + b with x = 2: dy/dw = 2, dy/db = 1. torch.optim.SGD(lr=0.1, momentum=0.9, nesterov=True,
        // weight_decay=0.5 on w). Step 1: d_w = 2 + 0.5·1 = 2.5, buf = 2.5, d = 2.5 + 0.9·2.5 = 4.75,
        // w = 1 − 0.475 = 0.525. Step 2: d_w = 2 + 0.2625 = 2.2625, buf = 0.9·2.5 + 2.2625 = 4.5125,
        // d = 2.2625 + 4.06125 = 6.32375, w = 0.525 − 0.632375 = −0.107375.
        let mut opt = Optimizer::<Inner>::new(Method::Sgd, 10.0);
        let mut model = tiny(1.0, 0.0);
        for _ in 0..2 {
            let grads = grads_of(&model, 2.0);
            model = opt.step(model, grads, hyper(0.1, 0.9, 0.5)).0;
        }
        let (w, b) = value(&model);
        assert!((w - -0.107375).abs() < 1e-6, "w = {w}");
        // bias: d = 1, buf 1, step 0.19 → −0.19; then buf 1.9, d = 1 + 1.71 = 2.71 → −0.19 − 0.271 = −0.461
        assert!((b - -0.461).abs() < 1e-6, "b = {b}");
    }

    #[test]
    fn adamw_first_step_moves_by_lr() {
        // First Adam step moves each parameter by lr·sign(g) (up to eps), after decoupled decay.
        let mut opt = Optimizer::<Inner>::new(Method::AdamW, 10.0);
        let model = tiny(1.0, 0.0);
        let grads = grads_of(&model, 2.0);
        let (model, outcome) = opt.step(model, grads, hyper(0.01, 0.9, 0.1));
        assert!(matches!(outcome, StepOutcome::Applied { .. }));
        let (w, b) = value(&model);
        assert!((w - (1.0 * (1.0 - 0.001) - 0.01)).abs() < 1e-6, "w = {w}");
        assert!((b - -0.01).abs() < 1e-6, "b = {b}");
    }

    #[test]
    fn clipping_scales_to_max_norm() {
        // grads (2, 1) have norm √5; clipped to 1 they are (2, 1)/√5; plain SGD (momentum 0) with lr 1 moves
        // the parameters by exactly the clipped gradient.
        let mut opt = Optimizer::<Inner>::new(Method::Sgd, 1.0);
        let model = tiny(0.0, 0.0);
        let grads = grads_of(&model, 2.0);
        let (model, outcome) = opt.step(model, grads, hyper(1.0, 0.0, 0.0));
        let StepOutcome::Applied { grad_norm } = outcome else {
            panic!("step skipped")
        };
        assert!((grad_norm - 5f64.sqrt()).abs() < 1e-6);
        let (w, b) = value(&model);
        let s = 5f32.sqrt() + 1e-6;
        assert!((w + 2.0 / s).abs() < 1e-5 && (b + 1.0 / s).abs() < 1e-5);
    }

    #[test]
    fn non_finite_gradient_skips_step() {
        let mut opt = Optimizer::<Inner>::new(Method::Sgd, 10.0);
        let model = tiny(1.0, 0.5);
        let grads = grads_of(&model, f32::NAN);
        let (model, outcome) = opt.step(model, grads, hyper(0.1, 0.9, 0.0));
        assert_eq!(outcome, StepOutcome::SkippedNonFinite);
        assert_eq!(value(&model), (1.0, 0.5));
        assert!(opt.to_record().slots.is_empty());
    }

    #[test]
    fn record_round_trip_continues_identically() {
        let mut a = Optimizer::<Inner>::new(Method::AdamW, 10.0);
        let mut model_a = tiny(1.0, 0.0);
        let grads = grads_of(&model_a, 2.0);
        model_a = a.step(model_a, grads, hyper(0.01, 0.9, 0.1)).0;
        let mut b = Optimizer::<Inner>::new(Method::Sgd, 10.0);
        b.load_record(a.to_record(), &Default::default());
        let (w, bias) = value(&model_a);
        let mut model_b = tiny(w, bias);
        for _ in 0..2 {
            let ga = grads_of(&model_a, 2.0);
            model_a = a.step(model_a, ga, hyper(0.01, 0.9, 0.1)).0;
            let gb = grads_of(&model_b, 2.0);
            model_b = b.step(model_b, gb, hyper(0.01, 0.9, 0.1)).0;
        }
        assert_eq!(value(&model_a), value(&model_b));
    }

    /// One parameter of the MuSGD case: name, shape, group ("muon", "bn" or "bias"), boosted.
    type CaseParam = (String, Vec<usize>, String, bool);

    /// tests/data/musgd.safetensors, made by scripts/make_musgd_case.py from Ultralytics 8.4.190's MuSGD.
    fn musgd_case() -> (Vec<u8>, Vec<CaseParam>) {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/musgd.safetensors");
        let bytes = std::fs::read(path).expect("tests/data/musgd.safetensors");
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("header");
        let params = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("params"))
            .expect("params metadata")
            .clone();
        (bytes, serde_json::from_str(&params).expect("params json"))
    }

    fn case_tensor(bytes: &[u8], name: &str) -> Vec<f32> {
        let st = safetensors::SafeTensors::deserialize(bytes).expect("safetensors");
        let view = st.tensor(name).expect(name);
        view.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    /// Runs the case's three MuSGD steps through [`Optimizer::update`] and returns the largest difference from
    /// the reference `prefix` ("f32" or "bf16"), and the largest movement of any parameter.
    fn musgd_max_error(prefix: &str) -> (f32, f32) {
        let (bytes, params) = musgd_case();
        let device = Default::default();
        let mut opt = Optimizer::<Inner>::new(Method::MuSgd, 10.0);
        let mut values: Vec<Vec<f32>> = params
            .iter()
            .map(|(name, ..)| case_tensor(&bytes, &format!("{prefix}.{name}.init")))
            .collect();
        let init = values.clone();
        let (mut err, mut moved) = (0f32, 0f32);
        for step in 0..3 {
            for (i, (name, dims, kind, boosted)) in params.iter().enumerate() {
                let hyper = GroupHyper {
                    lr: 0.01 * if *boosted { MUSGD_CLS_LR_GAIN } else { 1.0 },
                    momentum: 0.9,
                    weight_decay: if kind == "muon" { 5e-4 } else { 0.0 },
                };
                let grad = case_tensor(&bytes, &format!("{prefix}.{name}.grad{step}"));
                let n = grad.len();
                let tensor =
                    |v: Vec<f32>| Tensor::<Inner, 1>::from_data(TensorData::new(v, [n]), &device);
                let updated =
                    opt.update(name, tensor(values[i].clone()), tensor(grad), hyper, dims);
                values[i] = to_vec(&updated);
                let want = case_tensor(&bytes, &format!("{prefix}.{name}.step{step}"));
                for ((got, want), start) in values[i].iter().zip(&want).zip(&init[i]) {
                    err = err.max((got - want).abs());
                    moved = moved.max((want - start).abs());
                }
            }
        }
        (err, moved)
    }

    #[test]
    fn musgd_matches_ultralytics() {
        // Ultralytics' MuSGD with its Newton-Schulz in f32 (what we compute): equal to f32 rounding. The
        // parameters move by up to ~3e-2 over the three steps, so 1e-6 is five orders below the update.
        let (err, moved) = musgd_max_error("f32");
        assert!(moved > 1e-2, "the case barely moves: {moved}");
        assert!(err < 1e-6, "max |ours - ultralytics(f32)| = {err}");
        // Ultralytics' code as shipped rounds Newton-Schulz to bf16, which alone moves the result by ~2e-4.
        let (err, _) = musgd_max_error("bf16");
        assert!(err < 1e-3, "max |ours - ultralytics(bf16)| = {err}");
    }

    #[test]
    fn musgd_boosts_only_the_detect_class_branch() {
        let device = Default::default();
        let model = crate::model::YoloConfig::new(
            crate::config::Arch::Yolov8,
            crate::config::ScaleName::N,
            4,
        )
        .init::<Inner>(&device);
        struct Paths(Vec<String>, Vec<String>);
        impl ModuleVisitor<Inner> for Paths {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.1.push(name.to_string());
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.1.pop();
            }
            fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<Inner, D>>) {
                let path = self.1.join(".");
                // BatchNorm's running statistics are params too, but never trained
                if !path.ends_with("running_mean") && !path.ends_with("running_var") {
                    self.0.push(path);
                }
            }
        }
        let mut paths = Paths(Vec::new(), Vec::new());
        model.visit(&mut paths);
        let boosted: Vec<&String> = paths.0.iter().filter(|p| is_cls_branch(p)).collect();
        // 3 levels × (2 Conv blocks × conv weight, BN gamma, beta + the last conv's weight and bias)
        assert_eq!(boosted.len(), 3 * (2 * 3 + 2), "{boosted:?}");
        assert!(boosted.iter().all(|p| p.contains(".cv3.")), "{boosted:?}");
    }

    #[test]
    fn auto_picks_adamw_with_fitted_lr_for_short_runs() {
        let train = TrainSection {
            epochs: 30,
            batch: 16,
            ..TrainSection::default()
        };
        let resolved = ResolvedOptimizer::new(&train, 6, 800);
        assert_eq!(resolved.method, Method::AdamW);
        assert_eq!(resolved.lr0, 0.001);
        assert_eq!(resolved.momentum, 0.9);
        assert_eq!(resolved.warmup_bias_lr, 0.0);
        // accumulate 4, decay 5e-4 · 16 · 4 / 64
        assert!((resolved.weight_decay - 5e-4).abs() < 1e-12);
        let long = TrainSection {
            epochs: 300,
            ..TrainSection::default()
        };
        let long = ResolvedOptimizer::new(&long, 80, 118_287);
        assert_eq!(long.method, Method::MuSgd);
        assert_eq!((long.lr0, long.momentum), (0.01, 0.9));
        // warmup still takes momentum to the config's 0.937, as Ultralytics' does
        assert_eq!(long.warmup_momentum_end, Some(0.937));
    }
}
