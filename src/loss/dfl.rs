//! Distribution Focal Loss: each box side is predicted as a distribution over `REG_MAX` integer distances, and
//! learns the two bins around the target distance, weighted by closeness.
//!
//! Li et al., "Generalized Focal Loss", <https://arxiv.org/abs/2006.04388>.
//! Source: ultralytics/utils/loss.py `DFLoss` and `v8DetectionLoss.bbox_decode` (8.4.190).

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

/// The expected distance of each side: softmax over the bins, then the mean bin index (`bbox_decode`).
///
/// # Shapes
/// `[B, A, 4, R]` logits → `[B, A, 4]` distances l, t, r, b in grid units
pub fn dist_expectation<B: Backend>(pred_dist: Tensor<B, 4>) -> Tensor<B, 3> {
    let [b, a, sides, r] = pred_dist.dims();
    let bins = Tensor::<B, 1, Int>::arange(0..r as i64, &pred_dist.device())
        .float()
        .reshape([1, 1, 1, r]);
    (softmax(pred_dist, 3) * bins)
        .sum_dim(3)
        .reshape([b, a, sides])
}

/// `DFLoss.__call__`: the cross-entropy against the two bins that bracket each target distance, weighted
/// linearly, averaged over the four sides. Targets are clamped to `[0, R - 1 - 0.01]` first, so the right bin
/// always exists (the caller's `bbox2dist` clamps the same way).
///
/// # Shapes
/// logits `[B, A, 4, R]`, target distances `[B, A, 4]` (grid units) → `[B, A, 1]`
pub fn dfl_loss<B: Backend>(pred_dist: Tensor<B, 4>, target_ltrb: Tensor<B, 3>) -> Tensor<B, 3> {
    let [b, a, sides, r] = pred_dist.dims();
    let target = target_ltrb.detach().clamp(0.0, r as f64 - 1.0 - 0.01);
    let left: Tensor<B, 3, Int> = target.clone().int(); // truncation = floor, the targets are >= 0
    let right = left.clone().add_scalar(1);
    let weight_left = right.clone().float() - target;
    let weight_right = weight_left.clone().neg().add_scalar(1.0);
    let logp = log_softmax(pred_dist, 3);
    let logp_left = logp
        .clone()
        .gather(3, left.unsqueeze_dim::<4>(3))
        .reshape([b, a, sides]);
    let logp_right = logp
        .gather(3, right.unsqueeze_dim::<4>(3))
        .reshape([b, a, sides]);
    (logp_left * weight_left + logp_right * weight_right)
        .neg()
        .mean_dim(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    type B = crate::backend::Cpu;

    #[test]
    fn dist_expectation_of_uniform_logits_is_the_middle_bin() {
        let d = dist_expectation(Tensor::<B, 4>::zeros([1, 2, 4, 16], &Default::default()));
        let d: Vec<f32> = d.into_data().to_vec().expect("f32");
        assert!(d.iter().all(|&v| (v - 7.5).abs() < 1e-5), "{d:?}");
    }

    #[test]
    fn dfl_integer_target_is_the_cross_entropy_of_its_bin() {
        // Uniform logits: -log(1/16) whatever the target.
        let logits = Tensor::<B, 4>::zeros([1, 1, 4, 16], &Default::default());
        let target = Tensor::<B, 3>::from_data(
            TensorData::new(vec![0.0f32, 3.0, 7.25, 20.0], [1, 1, 4]),
            &Default::default(),
        );
        let loss: f32 = dfl_loss(logits, target).into_scalar();
        assert!((loss - 16f32.ln()).abs() < 1e-5, "{loss}");
    }

    #[test]
    fn dfl_peaked_at_the_target_is_nearly_zero() {
        let mut logits = vec![-30.0f32; 64];
        for side in 0..4 {
            logits[side * 16 + 5] = 30.0;
        }
        let logits =
            Tensor::<B, 4>::from_data(TensorData::new(logits, [1, 1, 4, 16]), &Default::default());
        let target = Tensor::<B, 3>::full([1, 1, 4], 5.0, &Default::default());
        let loss: f32 = dfl_loss(logits, target).into_scalar();
        assert!(loss.abs() < 1e-5, "{loss}");
    }
}
