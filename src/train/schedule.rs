//! Learning rate, momentum and accumulation per iteration, as Ultralytics' trainer sets them.
//!
//! Outside warmup every group runs at `lr0 · lf(epoch)`, where `lf` is linear `(1 − e/E)(1 − lrf) + lrf` or
//! one-cycle cosine, and momentum is `momentum`. During the first `nw` iterations (global index `ni`) each is
//! interpolated from its warmup start to that value: bias lr from `warmup_bias_lr`, other lrs from 0, momentum
//! from `warmup_momentum`, and the accumulation from 1 to `round(nbs / batch)`.
//!
//! `nw` follows Ultralytics 8.4.190 (`_get_warmup_iterations`): `round(min(warmup_epochs, epochs − 1) · nb)`.
//! Older Ultralytics releases used `max(round(warmup_epochs · nb), 100)`; 8.4.190 dropped the 100-iteration
//! floor and keeps the last epoch out of warmup, so we do too.
//!
//! Source: ultralytics/engine/trainer.py `_setup_scheduler`, `_get_warmup_iterations`, `_do_train`;
//! ultralytics/utils/__init__.py `one_cycle`.

use super::optim::{
    GroupHyper, Method, ParamGroup, ResolvedOptimizer, StepHyper, MUSGD_CLS_LR_GAIN,
};

/// Everything the schedule depends on; fixed for a run (`epochs` may grow when a finished run is extended).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub optimizer: ResolvedOptimizer,
    pub epochs: usize,
    /// Batches per epoch (`nb`).
    pub batches_per_epoch: usize,
    pub warmup_epochs: f64,
    pub warmup_momentum: f64,
    pub lrf: f64,
    pub cos_lr: bool,
    /// `max(round(nbs / batch), 1)`, capped at the run's total batches as Ultralytics caps it.
    pub accumulate: usize,
}

/// The settings of one iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IterationPlan {
    /// Per group, in [`ParamGroup::ALL`] order.
    pub hyper: [GroupHyper; 3],
    /// The same for the parameters MuSGD boosts (Detect's class branch at 3× the learning rate; warmup starts
    /// from the same point); equal to `hyper` for the other methods.
    pub boosted: [GroupHyper; 3],
    /// Step after this many batches since the last step.
    pub accumulate: usize,
}

impl IterationPlan {
    /// What [`super::optim::Optimizer::step`] takes.
    pub fn step_hyper(&self) -> StepHyper {
        StepHyper {
            groups: self.hyper,
            boosted: self.boosted,
        }
    }
}

impl Schedule {
    /// `lf(epoch)`: the factor on `lr0` at 0-based `epoch`.
    pub fn lf(&self, epoch: usize) -> f64 {
        let e = epoch as f64;
        let n = self.epochs as f64;
        if self.cos_lr {
            // one_cycle(1, lrf, epochs): ((1 − cos(x·π/steps)) / 2)·(lrf − 1) + 1
            ((1.0 - (e * std::f64::consts::PI / n).cos()) / 2.0) * (self.lrf - 1.0) + 1.0
        } else {
            (1.0 - e / n).max(0.0) * (1.0 - self.lrf) + self.lrf
        }
    }

    /// Warmup iterations `nw`; 0 means none.
    pub fn warmup_iterations(&self) -> usize {
        let warmup = self.warmup_epochs.min(self.epochs.saturating_sub(1) as f64);
        if warmup > 0.0 {
            (warmup * self.batches_per_epoch as f64).round() as usize
        } else {
            0
        }
    }

    /// The settings at global iteration `ni` (= `i + nb · epoch`) of 0-based `epoch`.
    pub fn at(&self, epoch: usize, ni: usize) -> IterationPlan {
        let opt = &self.optimizer;
        let target_lr = opt.lr0 * self.lf(epoch);
        let nw = self.warmup_iterations();
        let in_warmup = nw > 0 && ni <= nw;
        let interp = |start: f64, end: f64| {
            // np.interp(ni, [0, nw], [start, end])
            start + (end - start) * (ni as f64 / nw as f64)
        };
        let accumulate = if in_warmup {
            // numpy's round() is half-to-even.
            (interp(1.0, self.accumulate as f64).round_ties_even() as usize).max(1)
        } else {
            self.accumulate
        };
        // AdamW groups carry `betas`, not `momentum`: Ultralytics' warmup leaves beta1 alone. SGD-style groups
        // are ramped towards the config's momentum and keep the last value warmup set.
        let momentum_end = opt.warmup_momentum_end.unwrap_or(opt.momentum);
        let momentum = if !opt.method.has_momentum() {
            opt.momentum
        } else if in_warmup {
            interp(self.warmup_momentum, momentum_end)
        } else if nw > 0 {
            momentum_end
        } else {
            opt.momentum
        };
        let plan = |gain: f64| {
            ParamGroup::ALL.map(|group| {
                let decay = match group {
                    ParamGroup::Weight => opt.weight_decay,
                    _ => 0.0,
                };
                let lr = if in_warmup {
                    let lr_start = match group {
                        ParamGroup::Bias => opt.warmup_bias_lr,
                        _ => 0.0,
                    };
                    interp(lr_start, gain * target_lr)
                } else {
                    gain * target_lr
                };
                GroupHyper {
                    lr,
                    momentum,
                    weight_decay: decay,
                }
            })
        };
        let hyper = plan(1.0);
        let boosted = if opt.method == Method::MuSgd {
            plan(MUSGD_CLS_LR_GAIN)
        } else {
            hyper
        };
        IterationPlan {
            hyper,
            boosted,
            accumulate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(method: Method) -> Schedule {
        Schedule {
            optimizer: ResolvedOptimizer {
                method,
                lr0: 0.01,
                momentum: 0.937,
                warmup_momentum_end: None,
                warmup_bias_lr: 0.1,
                weight_decay: 5e-4,
            },
            epochs: 10,
            batches_per_epoch: 50,
            warmup_epochs: 3.0,
            warmup_momentum: 0.8,
            lrf: 0.01,
            cos_lr: false,
            accumulate: 4,
        }
    }

    #[test]
    fn linear_lf_runs_from_one_to_lrf() {
        let s = schedule(Method::Sgd);
        assert_eq!(s.lf(0), 1.0);
        assert!((s.lf(5) - (0.5 * 0.99 + 0.01)).abs() < 1e-12);
        assert!((s.lf(10) - 0.01).abs() < 1e-12);
    }

    #[test]
    fn cosine_lf_runs_from_one_to_lrf() {
        let s = Schedule {
            cos_lr: true,
            ..schedule(Method::Sgd)
        };
        assert!((s.lf(0) - 1.0).abs() < 1e-12);
        assert!((s.lf(5) - (0.5 * (0.01 - 1.0) + 1.0)).abs() < 1e-12);
        assert!((s.lf(10) - 0.01).abs() < 1e-12);
    }

    #[test]
    fn warmup_starts_at_warmup_values_and_lands_on_targets() {
        let s = schedule(Method::Sgd);
        assert_eq!(s.warmup_iterations(), 150);
        let start = s.at(0, 0);
        assert_eq!(start.accumulate, 1);
        assert_eq!(start.hyper[0].lr, 0.0);
        assert_eq!(start.hyper[2].lr, 0.1);
        assert_eq!(start.hyper[0].momentum, 0.8);
        let end = s.at(3, 150);
        assert_eq!(end.accumulate, 4);
        assert!((end.hyper[2].lr - 0.01 * s.lf(3)).abs() < 1e-15);
        assert!((end.hyper[1].momentum - 0.937).abs() < 1e-15);
        assert_eq!(end.hyper[1].weight_decay, 0.0);
        assert_eq!(end.hyper[0].weight_decay, 5e-4);
        let mid = s.at(1, 75);
        assert!((mid.hyper[0].lr - 0.5 * 0.01 * s.lf(1)).abs() < 1e-15);
        // np.interp gives 2.5, which numpy rounds to even.
        assert_eq!(mid.accumulate, 2);
    }

    #[test]
    fn warmup_keeps_the_last_epoch_out() {
        let s = Schedule {
            epochs: 2,
            ..schedule(Method::Sgd)
        };
        assert_eq!(s.warmup_iterations(), 50);
        let s = Schedule {
            epochs: 1,
            ..schedule(Method::Sgd)
        };
        assert_eq!(s.warmup_iterations(), 0);
        assert_eq!(s.at(0, 0).accumulate, 4);
    }

    #[test]
    fn musgd_boosts_the_class_branch_and_ramps_momentum_to_the_config() {
        // auto's MuSGD: built with momentum 0.9, warmup ramps it to the config's 0.937 and leaves it there;
        // the class branch runs at 3× the learning rate from the same warmup start.
        let mut s = schedule(Method::MuSgd);
        s.optimizer.momentum = 0.9;
        s.optimizer.warmup_momentum_end = Some(0.937);
        let start = s.at(0, 0);
        assert_eq!(start.hyper[0].momentum, 0.8);
        assert_eq!(start.boosted[2].lr, start.hyper[2].lr);
        let mid = s.at(1, 75);
        assert!((mid.hyper[0].momentum - (0.8 + 0.137 / 2.0)).abs() < 1e-12);
        assert!((mid.boosted[0].lr - 0.5 * 3.0 * 0.01 * s.lf(1)).abs() < 1e-15);
        let after = s.at(5, 300);
        assert_eq!(after.hyper[1].momentum, 0.937);
        assert!((after.boosted[1].lr - 3.0 * after.hyper[1].lr).abs() < 1e-15);
        // without warmup the momentum the optimizer was built with stays
        let s = Schedule {
            warmup_epochs: 0.0,
            ..s
        };
        assert_eq!(s.at(0, 0).hyper[0].momentum, 0.9);
        // the other methods boost nothing
        let sgd = schedule(Method::Sgd).at(5, 300);
        assert_eq!(sgd.boosted, sgd.hyper);
    }

    #[test]
    fn adamw_warmup_leaves_beta1() {
        let s = schedule(Method::AdamW);
        assert_eq!(s.at(0, 0).hyper[0].momentum, 0.937);
    }
}
