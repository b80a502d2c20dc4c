//! Ultralytics' `ModelEMA`: an exponential moving average of every floating-point tensor of the model (weights
//! and BatchNorm running statistics alike), updated after each optimizer step, and what validation and the saved
//! checkpoints use.
//!
//! The decay ramps up, `0.9999 · (1 − e^(−updates / 2000))`, so the first updates mostly copy the model. Weights
//! that are not finite never reach the average: [`ModelEma::update`] checks first and refuses.
//!
//! Source: ultralytics/utils/torch_utils.py `ModelEMA` (8.4.190).

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::ToElement;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::model::Yolo;

/// The largest decay (`decay`).
pub const EMA_DECAY: f64 = 0.9999;
/// Updates over which the decay ramps up (`tau`).
pub const EMA_TAU: f64 = 2000.0;

/// The average and how many updates made it.
#[derive(Debug, Clone)]
pub struct ModelEma<B: Backend> {
    /// The averaged model; run it with the backend's inference (running-statistics) BatchNorm. Burn's clones
    /// of a module share its BatchNorm running statistics, which updates write in place, so build it from a
    /// fresh copy (`AutodiffModule::valid`) and do not keep clones of it across updates.
    pub model: Yolo<B>,
    /// Updates so far (Ultralytics' `updates`, saved in checkpoints).
    pub updates: u64,
}

/// Why an update was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the model has non-finite weights; the EMA was not updated")]
pub struct NonFiniteWeights;

impl<B: Backend> ModelEma<B> {
    /// Starts the average at `model` (a copy), with `updates` already done (0 for a new run).
    pub fn new(model: Yolo<B>, updates: u64) -> Self {
        Self { model, updates }
    }

    /// The decay of update number `updates`.
    pub fn decay(updates: u64) -> f64 {
        EMA_DECAY * (1.0 - (-(updates as f64) / EMA_TAU).exp())
    }

    /// `ema = d · ema + (1 − d) · model` for every float tensor, after checking that `model` is finite.
    pub fn update(&mut self, model: &Yolo<B>) -> Result<(), NonFiniteWeights> {
        if !all_finite(model) {
            return Err(NonFiniteWeights);
        }
        self.updates += 1;
        let d = Self::decay(self.updates);
        let mut collector = TensorsByPath::<B>::default();
        model.visit(&mut collector);
        let mut mapper = Lerp {
            source: collector.tensors,
            path: Vec::new(),
            decay: d,
        };
        self.model = self.model.clone().map(&mut mapper);
        Ok(())
    }
}

/// Whether every float tensor of `module` (parameters and running statistics) is finite, with one read-back:
/// `x · 0` is 0 for finite `x` and NaN for NaN or ±∞, so the sum over all tensors is NaN exactly when one is.
pub fn all_finite<B: Backend, M: Module<B>>(module: &M) -> bool {
    struct Probe<B: Backend> {
        sum: Option<Tensor<B, 1>>,
    }
    impl<B: Backend> ModuleVisitor<B> for Probe<B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let zero = (param.val() * 0.0).sum();
            self.sum = Some(match self.sum.take() {
                Some(s) => s + zero,
                None => zero,
            });
        }
    }
    let mut probe = Probe::<B> { sum: None };
    module.visit(&mut probe);
    probe
        .sum
        .is_none_or(|s| s.into_scalar().to_f64().is_finite())
}

/// Every float tensor of a module, flattened, by path.
struct TensorsByPath<B: Backend> {
    path: Vec<String>,
    tensors: HashMap<String, Tensor<B, 1>>,
}

impl<B: Backend> Default for TensorsByPath<B> {
    fn default() -> Self {
        Self {
            path: Vec::new(),
            tensors: HashMap::new(),
        }
    }
}

impl<B: Backend> ModuleVisitor<B> for TensorsByPath<B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.tensors.insert(self.path.join("."), t.reshape([n]));
    }
}

/// Moves each tensor towards the same path's tensor of the source model.
struct Lerp<B: Backend> {
    source: HashMap<String, Tensor<B, 1>>,
    path: Vec<String>,
    decay: f64,
}

impl<B: Backend> ModuleMapper<B> for Lerp<B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let tensor = match self.source.remove(&self.path.join(".")) {
            Some(source) => {
                let shape = tensor.shape();
                tensor * self.decay + source.reshape(shape) * (1.0 - self.decay)
            }
            None => tensor,
        };
        Param::from_mapped_value(id, tensor, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Arch, ScaleName};
    use crate::model::YoloConfig;

    type B = crate::backend::Cpu;

    fn first_weight(model: &Yolo<B>) -> f32 {
        let mut c = TensorsByPath::<B>::default();
        model.visit(&mut c);
        let key = c
            .tensors
            .keys()
            .filter(|k| k.starts_with("model.0.") && k.ends_with("conv.weight"))
            .min()
            .cloned()
            .unwrap();
        c.tensors[&key].clone().slice(0..1).into_scalar()
    }

    #[test]
    fn decay_ramps_from_zero_to_max() {
        assert_eq!(ModelEma::<B>::decay(0), 0.0);
        assert!((ModelEma::<B>::decay(2000) - 0.9999 * (1.0 - (-1f64).exp())).abs() < 1e-15);
        assert!(ModelEma::<B>::decay(1_000_000) > 0.9998);
    }

    #[test]
    fn update_moves_towards_the_model_and_counts() {
        let device = Default::default();
        let config = YoloConfig::new(Arch::Yolov8, ScaleName::N, 2);
        let a = config.init::<B>(&device);
        let b = config.init::<B>(&device);
        let (wa, wb) = (first_weight(&a), first_weight(&b));
        let mut ema = ModelEma::new(a, 0);
        ema.update(&b).unwrap();
        let d = ModelEma::<B>::decay(1) as f32;
        let expected = wa * d + wb * (1.0 - d);
        assert!((first_weight(&ema.model) - expected).abs() < 1e-6);
        assert_eq!(ema.updates, 1);
    }

    #[test]
    fn non_finite_model_is_refused() {
        let device = Default::default();
        let config = YoloConfig::new(Arch::Yolov8, ScaleName::N, 2);
        let good = config.init::<B>(&device);
        let before = first_weight(&good);
        let mut ema = ModelEma::new(good.clone(), 0);
        struct Poison;
        impl ModuleMapper<B> for Poison {
            fn map_float<const D: usize>(&mut self, p: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
                let (id, t, m) = p.consume();
                Param::from_mapped_value(id, t * f32::NAN, m)
            }
        }
        // A fresh model: clones share BatchNorm running statistics, which `map` writes in place.
        let bad = config.init::<B>(&device).map(&mut Poison);
        assert!(!all_finite(&bad));
        assert_eq!(ema.update(&bad), Err(NonFiniteWeights));
        assert_eq!(ema.updates, 0);
        assert_eq!(first_weight(&ema.model), before);
        assert!(all_finite(&ema.model));
    }
}
