//! The Detect head's DFL decoding in one pass: for each anchor and side, the expectation of a softmax over the
//! side's bins, `Σ wᵢ·e^(xᵢ − m) / Σ e^(xᵢ − m)` with `w` the DFL conv's fixed weights (`0..16`).
//!
//! Why: Burn's ops run it as a softmax over a non-last dimension (burn-flex swaps the dimensions and copies the
//! tensor through a strided iterator, element by element, on the calling thread) and then a 1×1 conv through
//! burn-flex's generic conv (another reshape and copy), on 16 × 4 × 8400 logits per image at 640 px; with this
//! kernel a YOLOv8n inference forward takes 0.91–0.93× as long (docs/benchmarks.md). Here the bins of a side
//! are 16 rows of anchors, read in place, anchors vectorised and (image, side) pairs in parallel.
//!
//! Inference only: the plain burn-flex `f32` tensors that `Detect::decode` hands it (a half model's outputs are
//! cast to `f32` first); anything else, and a tensor that autodiff tracks, takes Burn's ops.

use std::any::Any;

use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, Tensor};
use burn_flex::FlexTensor;

use super::bn_act::exp;
use super::flex::{f32s, flex, from_primitive, primitive};
use super::graph::same;
use super::par_vec;

/// Anchors done at a time: the running max, sums and a row of exponentials stay in L1.
const BLOCK: usize = 512;

/// `[B, 4·R, A]` logits and the `[1, R, 1, 1]` bin weights → `[B, 4, A]` expectations, on plain burn-flex `f32`
/// tensors; `Err` hands `x` back.
pub fn try_expectation<B: Backend>(
    x: Tensor<B, 3>,
    bins: &Tensor<B, 4>,
) -> Result<Tensor<B, 3>, Tensor<B, 3>> {
    let [batch, channels, anchors] = x.dims();
    let r = bins.dims()[1];
    if r == 0 || channels != 4 * r || bins.dims().iter().product::<usize>() != r {
        return Err(x);
    }
    let p = primitive(x);
    let Some(logits) = plain_f32(&p) else {
        return Err(from_primitive(p));
    };
    // A half model keeps its bins in the half type (exact: 0..16); the sums here are `f32`.
    let weights = primitive(bins.clone().cast(FloatDType::F32));
    let Some(weights) = plain_f32(&weights) else {
        return Err(from_primitive(p));
    };
    let weights = f32s(&weights.to_contiguous()).to_vec();
    let logits = logits.to_contiguous();
    let out = expectation(f32s(&logits), &weights, anchors);
    Ok(from_primitive(same(flex(out, &[batch, 4, anchors]))))
}

fn plain_f32<P: 'static>(p: &P) -> Option<&FlexTensor> {
    (p as &dyn Any)
        .downcast_ref::<FlexTensor>()
        .filter(|t| t.dtype() == DType::F32)
}

/// Row-major `[B·4, R, A]` logits → `[B·4, A]` expectations over the `R = weights.len()` bins.
fn expectation(logits: &[f32], weights: &[f32], anchors: usize) -> Vec<f32> {
    let r = weights.len();
    let sides = logits.len() / (r * anchors).max(1);
    par_vec(sides * anchors, anchors.max(1), |s, out| {
        let side = &logits[s * r * anchors..][..r * anchors];
        let mut max = [0.0f32; BLOCK];
        let mut sum = [0.0f32; BLOCK];
        let mut dot = [0.0f32; BLOCK];
        for (k, out) in out.chunks_mut(BLOCK).enumerate() {
            let (at, n) = (k * BLOCK, out.len());
            let bin = |i: usize| &side[i * anchors + at..][..n];
            let (max, sum, dot) = (&mut max[..n], &mut sum[..n], &mut dot[..n]);
            max.copy_from_slice(bin(0));
            for i in 1..r {
                for (m, &x) in max.iter_mut().zip(bin(i)) {
                    *m = m.max(x);
                }
            }
            sum.fill(0.0);
            dot.fill(0.0);
            for (i, &w) in weights.iter().enumerate() {
                for (((s, d), &m), &x) in sum.iter_mut().zip(dot.iter_mut()).zip(&*max).zip(bin(i))
                {
                    let e = exp(x - m);
                    *s += e;
                    *d += w * e;
                }
            }
            for ((o, &s), &d) in out.iter_mut().zip(&*sum).zip(&*dot) {
                *o = d / s;
            }
        }
    })
    .0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{dfl_expectation_with, Kernels};
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::TensorData;

    fn logits(len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761) >> 8) as f32 / (1u32 << 24) as f32 * 8.0
                    - 4.0
            })
            .collect()
    }

    /// The dispatch: `f32` logits take this kernel with the bins in `f32` or in a half model's `bf16` (a
    /// `bf16` model's decode once fell back to Burn's ops unnoticed), and agree with Burn's softmax and 1×1 conv
    /// to 1e-5 (of distances up to 15); half logits and tracked tensors take Burn's ops.
    #[test]
    fn f32_logits_take_the_kernel_and_agree_with_burn() {
        let device = Default::default();
        let (b, r, a) = (2, 16, 300);
        let x = Tensor::<Flex, 3>::from_data(
            TensorData::new(logits(b * 4 * r * a), [b, 4 * r, a]),
            &device,
        );
        let bins: Vec<f32> = (0..r).map(|i| i as f32).collect();
        let bins = Tensor::<Flex, 4>::from_data(TensorData::new(bins, [1, r, 1, 1]), &device);
        let want = dfl_expectation_with(Kernels::Burn, x.clone(), &bins)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        for bins in [bins.clone(), bins.clone().cast(FloatDType::BF16)] {
            let got = try_expectation(x.clone(), &bins).expect("f32 logits take the kernel");
            let got = got.into_data().to_vec::<f32>().unwrap();
            let worst = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs())
                .fold(0.0f32, f32::max);
            assert!(worst <= 1e-5, "max abs diff {worst}");
        }
        assert!(try_expectation(x.clone().cast(FloatDType::BF16), &bins).is_err());
        let tracked = Tensor::<Autodiff<Flex>, 3>::from_data(x.into_data(), &device);
        let tracked_bins = Tensor::<Autodiff<Flex>, 4>::from_data(bins.into_data(), &device);
        assert!(try_expectation(tracked, &tracked_bins).is_err());
    }

    /// Against an f64 softmax-then-dot reference, over logits from −30 to 30 (a side's bins spread by up to 60,
    /// so most exponentials underflow to nothing next to the max) and a length with a short last block.
    /// Tolerance 2e-6 relative to the largest weight (15): f32 sums of 16 terms, each exponential within 2 ulp.
    #[test]
    fn matches_an_f64_softmax_expectation() {
        let (r, anchors, sides) = (16, BLOCK + 37, 3);
        let weights: Vec<f32> = (0..r).map(|i| i as f32).collect();
        let logits: Vec<f32> = (0..sides * r * anchors)
            .map(|i| {
                let v = (i as u32).wrapping_mul(2_654_435_761) >> 8;
                (v as f32 / (1u32 << 24) as f32 - 0.5) * 60.0 / (1 + i % 5) as f32
            })
            .collect();
        let got = expectation(&logits, &weights, anchors);
        for s in 0..sides {
            for a in 0..anchors {
                let x: Vec<f64> = (0..r)
                    .map(|i| f64::from(logits[(s * r + i) * anchors + a]))
                    .collect();
                let m = x.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
                let want = e.iter().enumerate().map(|(i, e)| i as f64 * e).sum::<f64>()
                    / e.iter().sum::<f64>();
                let diff = (f64::from(got[s * anchors + a]) - want).abs();
                assert!(
                    diff <= 2e-6 * 15.0,
                    "side {s} anchor {a}: {} vs {want}",
                    got[s * anchors + a]
                );
            }
        }
    }
}
