//! Ultralytics' `Conv`: Conv2d (no bias) → BatchNorm2d → SiLU, and its depth-wise variant `DWConv`.
//!
//! Source: ultralytics/nn/modules/conv.py. BatchNorm uses eps 1e-3 and momentum 0.03, which
//! `initialize_weights` in ultralytics/utils/torch_utils.py sets on every model built from a yaml.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// BatchNorm epsilon of every Ultralytics model (`initialize_weights`).
pub const BN_EPS: f64 = 1e-3;
/// BatchNorm momentum of every Ultralytics model (`initialize_weights`), in PyTorch's convention.
pub const BN_MOMENTUM: f64 = 0.03;

/// Builds a [`Conv`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvConfig {
    /// Input channels.
    pub c1: usize,
    /// Output channels.
    pub c2: usize,
    /// Square kernel size; padding is `k / 2` (Ultralytics' `autopad` for odd kernels, dilation 1).
    pub k: usize,
    /// Stride.
    pub s: usize,
    /// Groups: 1 for a dense conv, `gcd(c1, c2)` for `DWConv`.
    pub g: usize,
    /// SiLU after BatchNorm (`act=True`), or none (`act=False`).
    pub act: bool,
}

impl ConvConfig {
    /// A dense conv with SiLU, Ultralytics' `Conv(c1, c2, k, s)`.
    pub fn new(c1: usize, c2: usize, k: usize, s: usize) -> Self {
        Self {
            c1,
            c2,
            k,
            s,
            g: 1,
            act: true,
        }
    }

    /// Ultralytics' `DWConv(c1, c2, k, s)`: groups = gcd(c1, c2).
    pub fn depthwise(c1: usize, c2: usize, k: usize, s: usize) -> Self {
        Self {
            g: gcd(c1, c2),
            ..Self::new(c1, c2, k, s)
        }
    }

    /// Same conv without the activation (`act=False`).
    pub fn linear(self) -> Self {
        Self { act: false, ..self }
    }

    /// Same conv with the given groups.
    pub fn with_groups(self, g: usize) -> Self {
        Self { g, ..self }
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> Conv<B> {
        let pad = self.k / 2;
        let conv = Conv2dConfig::new([self.c1, self.c2], [self.k, self.k])
            .with_stride([self.s, self.s])
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_groups(self.g)
            .with_bias(false)
            .init(device);
        let bn = BatchNormConfig::new(self.c2)
            .with_epsilon(BN_EPS)
            .with_momentum(BN_MOMENTUM)
            .init(device);
        Conv {
            conv,
            bn,
            act: self.act,
        }
    }
}

/// Conv2d → BatchNorm2d → optional SiLU. Field names are the checkpoint's (`conv`, `bn`).
#[derive(Module, Debug)]
pub struct Conv<B: Backend> {
    pub conv: Conv2d<B>,
    pub bn: BatchNorm<B>,
    pub act: bool,
}

impl<B: Backend> Conv<B> {
    /// # Shapes
    /// `[B, c1, H, W]` → `[B, c2, H / s, W / s]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        crate::kernels::conv_bn_act(&self.conv, &self.bn, self.act, x)
    }
}

pub(crate) fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
