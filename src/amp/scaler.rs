//! The dynamic loss scale of fp16 training, with torch.amp.GradScaler's semantics.
//!
//! Why: fp16's smallest subnormal is 2^-24 ≈ 6e-8, and many of a detector's gradients are smaller than that, so
//! they flush to zero in a plain fp16 backward. Multiplying the loss by a large scale before backward lifts them
//! into range; the gradients are divided by it again in FP32 before the optimizer sees them
//! (`super::MasterWeights`). Too large a scale overflows instead, which the finite check finds: that step is
//! skipped and the scale backs off. After `growth_interval` clean steps in a row the scale grows again.
//!
//! The arithmetic is torch's `_amp_update_scale_` (aten/src/ATen/native/cpu/AmpGradScalerKernels.cpp): the
//! scale is an f32, multiplied by the growth or backoff factor in f64 and rounded once to f32 (which matters
//! for factors that are not powers of two); a grown scale that would be infinite is not taken (and the tracker
//! still resets); there is no lower bound. `tests/amp.rs` checks our trajectory against torch's own, recorded
//! by `scripts/make_grad_scaler_case.py`.

use serde::{Deserialize, Serialize};

use crate::config::{Precision, TrainSection};

/// GradScaler's four settings (`init_scale`, `growth_factor`, `backoff_factor`, `growth_interval`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScalerConfig {
    /// The first scale (torch: 2^16).
    pub init_scale: f64,
    /// Multiplies the scale after `growth_interval` clean steps in a row (torch: 2.0).
    pub growth_factor: f64,
    /// Multiplies the scale after a step with a non-finite gradient (torch: 0.5).
    pub backoff_factor: f64,
    /// Clean steps in a row before the scale grows (torch: 2000).
    pub growth_interval: u64,
}

impl Default for ScalerConfig {
    fn default() -> Self {
        Self {
            init_scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
        }
    }
}

impl ScalerConfig {
    /// The `train.amp_*` keys (validated by the config: init > 0, growth > 1, backoff in (0, 1), interval ≥ 1).
    pub fn from_train(train: &TrainSection) -> Self {
        Self {
            init_scale: train.amp_init_scale,
            growth_factor: train.amp_growth_factor,
            backoff_factor: train.amp_backoff_factor,
            growth_interval: train.amp_growth_interval as u64,
        }
    }
}

/// What a checkpoint keeps of the scaler: enough to continue the trajectory exactly.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScalerState {
    /// The current scale (an f32 value, stored widened).
    pub scale: f64,
    /// Clean steps since the last growth or backoff (torch's `_growth_tracker`).
    pub growth_tracker: u64,
}

/// torch.amp.GradScaler's scale and growth tracker. Disabled (fp32, bf16) it always reads 1 and never moves:
/// bf16 has FP32's exponent range, so its gradients do not underflow.
#[derive(Debug, Clone, PartialEq)]
pub struct LossScaler {
    config: ScalerConfig,
    enabled: bool,
    scale: f32,
    growth_tracker: u64,
}

impl LossScaler {
    /// A scaler at `config.init_scale`, enabled or not.
    pub fn new(config: ScalerConfig, enabled: bool) -> Self {
        Self {
            config,
            enabled,
            scale: if enabled {
                config.init_scale as f32
            } else {
                1.0
            },
            growth_tracker: 0,
        }
    }

    /// Enabled exactly for fp16, as Ultralytics' `amp=True` enables GradScaler for fp16 autocast.
    pub fn for_precision(config: ScalerConfig, precision: Precision) -> Self {
        Self::new(config, precision == Precision::Fp16)
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The factor the loss is multiplied by before backward (1 when disabled).
    pub fn scale(&self) -> f32 {
        self.scale
    }

    pub fn growth_tracker(&self) -> u64 {
        self.growth_tracker
    }

    /// After an optimizer step (taken or skipped): back off on `found_inf`, else count the clean step and grow
    /// the scale after `growth_interval` of them. A disabled scaler ignores it.
    pub fn update(&mut self, found_inf: bool) {
        if !self.enabled {
            return;
        }
        if found_inf {
            self.scale = (f64::from(self.scale) * self.config.backoff_factor) as f32;
            self.growth_tracker = 0;
            return;
        }
        let successful = self.growth_tracker + 1;
        if successful >= self.config.growth_interval {
            let grown = (f64::from(self.scale) * self.config.growth_factor) as f32;
            if grown.is_finite() {
                self.scale = grown;
            }
            self.growth_tracker = 0;
        } else {
            self.growth_tracker = successful;
        }
    }

    pub fn state(&self) -> ScalerState {
        ScalerState {
            scale: f64::from(self.scale),
            growth_tracker: self.growth_tracker,
        }
    }

    /// Continues from a checkpoint's [`ScalerState`]; a disabled scaler stays at 1.
    pub fn restore(&mut self, state: ScalerState) {
        if self.enabled {
            self.scale = state.scale as f32;
            self.growth_tracker = state.growth_tracker;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(interval: u64) -> ScalerConfig {
        ScalerConfig {
            growth_interval: interval,
            ..ScalerConfig::default()
        }
    }

    #[test]
    fn scaler_n_clean_steps_double_the_scale() {
        let mut s = LossScaler::new(config(5), true);
        for _ in 0..4 {
            s.update(false);
            assert_eq!(s.scale(), 65536.0);
        }
        s.update(false);
        assert_eq!(s.scale(), 131072.0);
        assert_eq!(s.growth_tracker(), 0);
    }

    #[test]
    fn scaler_overflow_halves_and_resets_the_tracker() {
        let mut s = LossScaler::new(config(3), true);
        s.update(false);
        s.update(false);
        s.update(true);
        assert_eq!(s.scale(), 32768.0);
        assert_eq!(s.growth_tracker(), 0);
        s.update(false);
        s.update(false);
        assert_eq!(s.scale(), 32768.0, "the tracker restarted at the overflow");
        s.update(false);
        assert_eq!(s.scale(), 65536.0);
    }

    #[test]
    fn scaler_disabled_stays_at_one() {
        for precision in [Precision::Fp32, Precision::Bf16] {
            let mut s = LossScaler::for_precision(config(1), precision);
            s.update(false);
            s.update(true);
            assert_eq!(s.scale(), 1.0);
            assert!(!s.enabled());
        }
    }

    #[test]
    fn scaler_growth_that_would_overflow_f32_is_not_taken() {
        let mut s = LossScaler::new(
            ScalerConfig {
                init_scale: f64::from(f32::MAX) / 1.5,
                growth_interval: 1,
                ..ScalerConfig::default()
            },
            true,
        );
        let before = s.scale();
        s.update(false);
        assert_eq!(s.scale(), before);
        assert_eq!(s.growth_tracker(), 0);
    }

    #[test]
    fn scaler_state_round_trips() {
        let mut s = LossScaler::new(config(4), true);
        s.update(true);
        s.update(false);
        let mut t = LossScaler::new(config(4), true);
        t.restore(s.state());
        assert_eq!(s, t);
    }
}
