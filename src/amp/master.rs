//! FP32 master weights around our optimizer, for a model that computes in f16 or bf16.
//!
//! Why: an fp16 weight near 1 cannot take an update smaller than 2^-11 of itself (bf16: 2^-8), so late in
//! training, when `lr · grad` is tiny, half weights stop moving. Micikevicius et al. (2018) keep an FP32 copy
//! that takes every update and is rounded into the compute model after each step; the optimizer state
//! (momentum, Adam's moments) is FP32 too. Here the masters are a second copy of the module in FP32, sharing the
//! compute model's `ParamId`s, so the gradients of the compute model's backward address them directly and
//! `train::optim::Optimizer` steps them exactly as it steps an FP32 model (same slots by path, same clipping).
//!
//! In fp32 there is no second copy: the compute model is its own master and a step is the optimizer's step.
//!
//! BatchNorm running statistics are not parameters: the compute model keeps them (our CPU kernels compute and
//! store them in FP32 whatever the model's type), and [`MasterWeights::fp32_model`] takes them from there.

use std::collections::HashMap;

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::ToElement;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

use super::scaler::{LossScaler, ScalerConfig, ScalerState};
use crate::config::Precision;
use crate::train::optim::{Optimizer, StepHyper, StepOutcome};

/// The float type the compute model runs in.
pub fn compute_dtype(precision: Precision) -> FloatDType {
    match precision {
        Precision::Fp32 => FloatDType::F32,
        Precision::Fp16 => FloatDType::F16,
        Precision::Bf16 => FloatDType::BF16,
    }
}

/// What a checkpoint keeps of the mixed-precision state besides the masters and the optimizer's slots.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AmpState {
    pub scaler: ScalerState,
    /// Optimizer steps skipped for a non-finite gradient, over the whole run.
    pub skipped_steps: u64,
    /// Of those, how many in a row up to now.
    pub consecutive_skips: u64,
}

/// The optimizer with FP32 masters and the loss scaler; see the module doc.
#[derive(Debug)]
pub struct MasterWeights<AB: AutodiffBackend, M> {
    dtype: FloatDType,
    /// The FP32 copy; `None` in fp32.
    master: Option<M>,
    optimizer: Optimizer<AB::InnerBackend>,
    scaler: LossScaler,
    skipped_steps: u64,
    consecutive_skips: u64,
}

impl<AB, M> MasterWeights<AB, M>
where
    AB: AutodiffBackend,
    M: AutodiffModule<AB>,
{
    /// Takes `model` (FP32) as the masters and returns the compute model: `model` itself in fp32, else a copy
    /// with every float tensor cast to the precision's type.
    pub fn new(
        model: M,
        precision: Precision,
        optimizer: Optimizer<AB::InnerBackend>,
        scaler: ScalerConfig,
    ) -> (Self, M) {
        // Before any clone: a clone of a lazily initialised parameter draws its own random values.
        let model = materialize(model);
        let dtype = compute_dtype(precision);
        let (master, compute) = if dtype == FloatDType::F32 {
            (None, model)
        } else {
            let compute = cast_module(model.clone(), dtype, Tensors::for_backend::<AB>());
            (Some(model), compute)
        };
        let wrapper = Self {
            dtype,
            master,
            optimizer,
            scaler: LossScaler::for_precision(scaler, precision),
            skipped_steps: 0,
            consecutive_skips: 0,
        };
        (wrapper, compute)
    }

    pub fn scaler(&self) -> &LossScaler {
        &self.scaler
    }

    pub fn optimizer(&self) -> &Optimizer<AB::InnerBackend> {
        &self.optimizer
    }

    /// The masters, when they are a separate copy (fp16, bf16).
    pub fn masters(&self) -> Option<&M> {
        self.master.as_ref()
    }

    pub fn compute_dtype(&self) -> FloatDType {
        self.dtype
    }

    pub fn state(&self) -> AmpState {
        AmpState {
            scaler: self.scaler.state(),
            skipped_steps: self.skipped_steps,
            consecutive_skips: self.consecutive_skips,
        }
    }

    /// Continues from a checkpoint's [`AmpState`].
    pub fn restore(&mut self, state: AmpState) {
        self.scaler.restore(state.scaler);
        self.skipped_steps = state.skipped_steps;
        self.consecutive_skips = state.consecutive_skips;
    }

    /// Optimizer steps skipped for a non-finite gradient so far.
    pub fn skipped_steps(&self) -> u64 {
        self.skipped_steps
    }

    /// Skipped steps in a row, up to the last step.
    pub fn consecutive_skips(&self) -> u64 {
        self.consecutive_skips
    }

    /// `x` in the compute type (the model's input).
    pub fn to_compute<const D: usize>(&self, x: Tensor<AB, D>) -> Tensor<AB, D> {
        if self.dtype == FloatDType::F32 {
            x
        } else {
            crate::kernels::cast(x, self.dtype)
        }
    }

    /// The loss multiplied by the current scale, ready for backward (unchanged when the scaler is off).
    pub fn scale_loss(&self, loss: Tensor<AB, 1>) -> Tensor<AB, 1> {
        if self.scaler.enabled() {
            loss * self.scaler.scale()
        } else {
            loss
        }
    }

    /// One backward's gradients in FP32, so that accumulation over several batches sums in FP32. Still scaled.
    pub fn grads_to_f32(&self, compute: &M, mut grads: GradientsParams) -> GradientsParams {
        if self.master.is_none() {
            return grads;
        }
        compute.visit(&mut PrepareGrads::<AB> {
            grads: &mut grads,
            inv_scale: 1.0,
            check: false,
            probe: None,
        });
        grads
    }

    /// One optimizer step from the summed gradients of `compute`: unscale in FP32, check that every gradient
    /// is finite (else skip: masters, optimizer state and `compute` unchanged, the scale backs off), clip and
    /// step the masters (`Optimizer::step`), round them into `compute`, and update the scale.
    pub fn step(
        &mut self,
        compute: M,
        grads: GradientsParams,
        hyper: impl Into<StepHyper>,
    ) -> (M, StepOutcome) {
        let Some(master) = self.master.take() else {
            let (compute, outcome) = self.optimizer.step::<AB, M>(compute, grads, hyper);
            self.count(outcome);
            return (compute, outcome);
        };
        let mut grads = grads;
        let mut unscale = PrepareGrads::<AB> {
            grads: &mut grads,
            inv_scale: (1.0f64 / f64::from(self.scaler.scale())) as f32,
            check: true,
            probe: None,
        };
        compute.visit(&mut unscale);
        let finite = unscale
            .probe
            .is_none_or(|p| p.into_scalar().to_f64().is_finite());
        if !finite {
            self.master = Some(master);
            self.scaler.update(true);
            self.count(StepOutcome::SkippedNonFinite);
            return (compute, StepOutcome::SkippedNonFinite);
        }
        let (master, outcome) = self.optimizer.step::<AB, M>(master, grads, hyper);
        let skipped = matches!(outcome, StepOutcome::SkippedNonFinite);
        self.scaler.update(skipped);
        self.count(outcome);
        let compute = if skipped {
            compute
        } else {
            let affine = Tensors::for_backend::<AB>().affine_dtype(self.dtype);
            write_back(compute, &master, self.dtype, None, affine)
        };
        self.master = Some(master);
        (compute, outcome)
    }

    fn count(&mut self, outcome: StepOutcome) {
        match outcome {
            StepOutcome::Applied { .. } => self.consecutive_skips = 0,
            StepOutcome::SkippedNonFinite => {
                self.skipped_steps += 1;
                self.consecutive_skips += 1;
            }
        }
    }

    /// The model as FP32 inference weights: the masters' parameters with the compute model's BatchNorm running
    /// statistics, for the EMA, validation and checkpoints.
    pub fn fp32_model(&self, compute: &M) -> M::InnerModule {
        let Some(master) = &self.master else {
            return compute.valid();
        };
        // `valid` and `from_inner` give fresh running statistics, so the cast below leaves `compute`'s alone
        // (Burn's clones of a module share them, and mapping writes them in place).
        let copy = M::from_inner(compute.valid());
        write_back(
            copy,
            master,
            FloatDType::F32,
            Some(FloatDType::F32),
            FloatDType::F32,
        )
        .valid()
    }
}

/// Whether the path's last field is a BatchNorm running statistic (a `RunningState`, not a parameter).
fn is_running_stat(path: &[String]) -> bool {
    path.last()
        .is_some_and(|f| f == "running_mean" || f == "running_var")
}

/// Whether the path's last field is BatchNorm's scale or shift.
fn is_batch_norm_affine(path: &[String]) -> bool {
    path.last().is_some_and(|f| f == "gamma" || f == "beta")
}

/// Which float tensors of a module [`cast_module`] casts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tensors {
    /// Parameters other than BatchNorm's: its running statistics keep their type and its `gamma` and `beta`
    /// become FP32, as under torch's autocast, where batch_norm takes a half input with FP32 weights (our
    /// kernels do BatchNorm's arithmetic in `f32` either way). Their gradients are then FP32 sums, not sums
    /// rounded to the half type, and the masters' updates reach them unrounded.
    Params,
    /// Parameters and running statistics.
    All,
}

impl Tensors {
    /// What a compute model on `B` casts: our CPU kernels keep BatchNorm in FP32 whatever the input's type;
    /// Burn's stock BatchNorm needs all of it in the input's type.
    pub fn for_backend<B: Backend>() -> Self {
        if crate::kernels::batch_norm_stats_stay_f32::<B>() {
            Tensors::Params
        } else {
            Tensors::All
        }
    }

    /// The type BatchNorm's `gamma` and `beta` take in a compute model of `dtype`.
    fn affine_dtype(self, dtype: FloatDType) -> FloatDType {
        match self {
            Tensors::Params => FloatDType::F32,
            Tensors::All => dtype,
        }
    }
}

/// `module` with every parameter initialised now.
///
/// Why: Burn 0.21 initialises a parameter lazily, on first use, and a clone of a parameter that is not yet
/// initialised initialises on its own, with the next random draw. A freshly built model cloned into the
/// masters and the compute model (or into the EMA) therefore held two different random inits: the compute
/// model took its first step from one, then the write-back replaced it with the other plus that step's update
/// (docs/benchmarks.md, "The masters' init bug"). Ultralytics deep-copies one initialised model instead.
pub fn materialize<B: Backend, M: Module<B>>(module: M) -> M {
    struct Materialize;
    impl<B: Backend> ModuleMapper<B> for Materialize {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, tensor, mapper) = param.consume();
            Param::from_mapped_value(id, tensor, mapper)
        }
    }
    module.map(&mut Materialize)
}

/// The float tensors of `module` that `which` names, cast to `dtype`; ids and `require_grad` kept, each a new
/// leaf.
pub fn cast_module<AB: AutodiffBackend, M: Module<AB>>(
    module: M,
    dtype: FloatDType,
    which: Tensors,
) -> M {
    module.map(&mut ReplaceParams::<AB> {
        path: Vec::new(),
        masters: HashMap::new(),
        dtype,
        stats: (which == Tensors::All).then_some(dtype),
        affine: which.affine_dtype(dtype),
    })
}

/// The masters' values (parameters only) rounded into `compute`.
fn write_back<AB: AutodiffBackend, M: AutodiffModule<AB>>(
    compute: M,
    master: &M,
    dtype: FloatDType,
    stats: Option<FloatDType>,
    affine: FloatDType,
) -> M {
    let mut collect = CollectFlat::<AB> {
        path: Vec::new(),
        found: HashMap::new(),
    };
    master.visit(&mut collect);
    let mut mapper = ReplaceParams::<AB> {
        path: Vec::new(),
        masters: collect.found,
        dtype,
        stats,
        affine,
    };
    compute.map(&mut mapper)
}

/// Every parameter (not running statistic) of an autodiff module, flattened, on the inner backend.
struct CollectFlat<AB: AutodiffBackend> {
    path: Vec<String>,
    found: HashMap<ParamId, Tensor<AB::InnerBackend, 1>>,
}

impl<AB: AutodiffBackend> ModuleVisitor<AB> for CollectFlat<AB> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
        if is_running_stat(&self.path) {
            return;
        }
        let t = param.val().inner();
        let n = t.shape().num_elements();
        self.found.insert(param.id, t.reshape([n]));
    }
}

/// Sets every parameter to its entry in `masters` (flattened, FP32) when there is one, cast to `dtype`
/// (parameters without one are cast as they are), and casts the running statistics to `stats` (`None`: left as
/// they are); ids and `require_grad` kept.
struct ReplaceParams<AB: AutodiffBackend> {
    path: Vec<String>,
    masters: HashMap<ParamId, Tensor<AB::InnerBackend, 1>>,
    dtype: FloatDType,
    stats: Option<FloatDType>,
    /// BatchNorm's `gamma` and `beta`.
    affine: FloatDType,
}

impl<AB: AutodiffBackend> ModuleMapper<AB> for ReplaceParams<AB> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<AB, D>>) -> Param<Tensor<AB, D>> {
        let (target, master) = if is_running_stat(&self.path) {
            match self.stats {
                Some(dtype) => (dtype, None),
                None => return param,
            }
        } else if is_batch_norm_affine(&self.path) {
            (self.affine, self.masters.remove(&param.id))
        } else {
            (self.dtype, self.masters.remove(&param.id))
        };
        let (id, tensor, mapper) = param.consume();
        let require_grad = tensor.is_require_grad();
        let inner = match master {
            Some(master) => master.reshape(tensor.shape()),
            None => tensor.inner(),
        };
        // our cast: burn-flex's converts through a `Vec<f64>` on one thread, and this runs for every parameter
        // after every optimizer step
        let inner = if inner.dtype() == DType::from(target) {
            inner
        } else {
            crate::kernels::cast(inner, target)
        };
        let mut value = Tensor::<AB, D>::from_inner(inner);
        if require_grad {
            value = value.require_grad();
        }
        Param::from_mapped_value(id, value, mapper)
    }
}

/// Casts every gradient to FP32 and multiplies it by `inv_scale` (1 skips the multiply); with `check`, also
/// sums `0 · g` over all of them into `probe`, which is NaN exactly when some gradient holds a NaN or an
/// infinity (torch's `_amp_foreach_non_finite_check_and_unscale_`).
struct PrepareGrads<'a, AB: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    inv_scale: f32,
    check: bool,
    probe: Option<Tensor<AB::InnerBackend, 1>>,
}

impl<AB: AutodiffBackend> ModuleVisitor<AB> for PrepareGrads<'_, AB> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
        let Some(g) = self.grads.remove::<AB::InnerBackend, D>(param.id) else {
            return;
        };
        let g = crate::kernels::cast(g, FloatDType::F32);
        let g = if self.inv_scale == 1.0 {
            g
        } else {
            g * self.inv_scale
        };
        if self.check {
            let zero = (g.clone() * 0.0).sum();
            self.probe = Some(match self.probe.take() {
                Some(p) => p + zero,
                None => zero,
            });
        }
        self.grads.register::<AB::InnerBackend, D>(param.id, g);
    }
}
