//! Conv + BatchNorm folding for inference: one convolution with a bias instead of a convolution and a
//! normalisation, as Ultralytics' `fuse_conv_and_bn` (ultralytics/utils/torch_utils.py) does before export.
//!
//! With s = γ / √(var + eps): w' = w · s (per output channel), b' = β − mean · s (+ b · s for a biased conv).
//! The arithmetic runs in f64, so the folded weights are the exact values rounded once to f32.

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::ExportError;
use crate::model::conv::Conv;

/// A convolution ready to be written: weights `[c2, c1 / groups, kh, kw]` (row-major, PyTorch's layout), a
/// bias per output channel, and its geometry.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedConv {
    pub weight: Vec<f32>,
    pub weight_shape: [usize; 4],
    pub bias: Vec<f32>,
    /// Strides along H and W.
    pub stride: [usize; 2],
    /// ONNX `pads`: top, left, bottom, right.
    pub pads: [usize; 4],
    pub groups: usize,
}

/// Folds an Ultralytics `Conv` (Conv2d without bias, BatchNorm in eval mode: running statistics).
pub fn fuse_conv_bn<B: Backend>(conv: &Conv<B>) -> Result<FusedConv, ExportError> {
    let mut fused = plain_conv(&conv.conv)?;
    let BatchNorm {
        gamma,
        beta,
        running_mean,
        running_var,
        epsilon,
        ..
    } = &conv.bn;
    let gamma = values(gamma.val())?;
    let beta = values(beta.val())?;
    let mean = values(running_mean.value())?;
    let var = values(running_var.value())?;
    let c2 = fused.weight_shape[0];
    if [gamma.len(), beta.len(), mean.len(), var.len()] != [c2; 4] {
        return Err(ExportError::Model(format!(
            "BatchNorm of {} channels after a conv with {c2} outputs",
            gamma.len()
        )));
    }
    let per_out = fused.weight.len() / c2;
    for o in 0..c2 {
        let s = gamma[o] as f64 / (var[o] as f64 + epsilon).sqrt();
        for w in &mut fused.weight[o * per_out..(o + 1) * per_out] {
            *w = (*w as f64 * s) as f32;
        }
        let b = fused.bias[o] as f64;
        fused.bias[o] = (beta[o] as f64 + (b - mean[o] as f64) * s) as f32;
    }
    Ok(fused)
}

/// A plain Conv2d (the head's last 1×1 convs, which have a bias and no BatchNorm); a missing bias is zeros.
pub fn plain_conv<B: Backend>(conv: &Conv2d<B>) -> Result<FusedConv, ExportError> {
    let weight_t = conv.weight.val();
    let weight_shape = weight_t.dims();
    let weight = values(weight_t)?;
    let bias = match &conv.bias {
        Some(b) => values(b.val())?,
        None => vec![0.0; weight_shape[0]],
    };
    if conv.dilation != [1, 1] {
        return Err(ExportError::Model(format!(
            "a conv with dilation {:?} (ours are all 1)",
            conv.dilation
        )));
    }
    let [kh, kw] = conv.kernel_size;
    let pads = match conv.padding {
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Same => [kh / 2, kw / 2, kh / 2, kw / 2],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [top, left, bottom, right],
    };
    Ok(FusedConv {
        weight,
        weight_shape,
        bias,
        stride: conv.stride,
        pads,
        groups: conv.groups,
    })
}

/// A tensor's values as f32 (whatever the backend stores).
fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>, ExportError> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| ExportError::Model(format!("reading a weight tensor: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;
    use crate::model::conv::ConvConfig;
    use burn::module::{Param, RunningState};
    use burn::tensor::TensorData;

    #[test]
    fn fuse_conv_bn_matches_conv_then_batchnorm() {
        let device = Default::default();
        let mut conv = ConvConfig::new(2, 3, 3, 1).linear().init::<Cpu>(&device);
        let t = |v: Vec<f32>| Tensor::<Cpu, 1>::from_data(TensorData::new(v, [3]), &device);
        conv.bn.gamma = Param::from_tensor(t(vec![0.5, 2.0, -1.0]));
        conv.bn.beta = Param::from_tensor(t(vec![0.1, -0.2, 0.3]));
        conv.bn.running_mean = RunningState::new(t(vec![0.4, 0.0, -0.6]));
        conv.bn.running_var = RunningState::new(t(vec![1.5, 0.25, 4.0]));
        let fused = fuse_conv_bn(&conv).unwrap();
        assert_eq!(fused.weight_shape, [3, 2, 3, 3]);
        assert_eq!(fused.pads, [1; 4]);
        // Channel 1: s = 2 / sqrt(0.25 + 1e-3); b' = -0.2 - 0 * s.
        let w = values(conv.conv.weight.val()).unwrap();
        let s = 2.0 / (0.25f64 + 1e-3).sqrt();
        assert!((fused.weight[18] as f64 - w[18] as f64 * s).abs() < 1e-6);
        assert!((fused.bias[1] + 0.2).abs() < 1e-7);
        // Channel 2: b' = 0.3 + 0.6 * (-1 / sqrt(4.001)).
        let b2 = 0.3 + 0.6 * (-1.0 / (4.0f64 + 1e-3).sqrt());
        assert!((fused.bias[2] as f64 - b2).abs() < 1e-6);
    }
}
