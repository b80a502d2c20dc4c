//! The CSP blocks of YOLOv8 and YOLO11: Bottleneck, C2f / C3k2 (one struct), C3k, SPPF, and C2PSA with its
//! PSABlock and Attention.
//!
//! Source: ultralytics/nn/modules/block.py (8.4.190). Field names are the checkpoint's key segments (`cv1`,
//! `m`, `attn`, `ffn`, ...), so weights load by name with no per-block rules.

use burn::module::Module;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::conv::{Conv, ConvConfig};
use crate::kernels::{self, cat_channels};

/// Ultralytics' `Bottleneck(c1, c2, shortcut, g, k, e)`: two convs and an optional residual.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BottleneckConfig {
    pub c1: usize,
    pub c2: usize,
    /// Residual connection, used only when `c1 == c2`.
    pub shortcut: bool,
    /// Kernel sizes of `cv1` and `cv2`.
    pub k: [usize; 2],
    /// Hidden channels are `int(c2 * e)`.
    pub e: f64,
}

impl BottleneckConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Bottleneck<B> {
        let hidden = (self.c2 as f64 * self.e) as usize;
        Bottleneck {
            cv1: ConvConfig::new(self.c1, hidden, self.k[0], 1).init(device),
            cv2: ConvConfig::new(hidden, self.c2, self.k[1], 1).init(device),
            add: self.shortcut && self.c1 == self.c2,
        }
    }
}

#[derive(Module, Debug)]
pub struct Bottleneck<B: Backend> {
    pub cv1: Conv<B>,
    pub cv2: Conv<B>,
    pub add: bool,
}

impl<B: Backend> Bottleneck<B> {
    /// # Shapes
    /// `[B, c1, H, W]` → `[B, c2, H, W]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let y = self.cv2.forward(self.cv1.forward(x.clone()));
        if self.add {
            kernels::add(x, y)
        } else {
            y
        }
    }
}

/// Ultralytics' `C3k(c1, c2, n, shortcut, g, e, k)`: a C3 whose bottlenecks have two k×k convs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct C3kConfig {
    pub c1: usize,
    pub c2: usize,
    pub n: usize,
    pub shortcut: bool,
}

impl C3kConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> C3k<B> {
        let hidden = self.c2 / 2; // int(c2 * 0.5)
        let bottleneck = BottleneckConfig {
            c1: hidden,
            c2: hidden,
            shortcut: self.shortcut,
            k: [3, 3],
            e: 1.0,
        };
        C3k {
            cv1: ConvConfig::new(self.c1, hidden, 1, 1).init(device),
            cv2: ConvConfig::new(self.c1, hidden, 1, 1).init(device),
            cv3: ConvConfig::new(2 * hidden, self.c2, 1, 1).init(device),
            m: (0..self.n).map(|_| bottleneck.init(device)).collect(),
        }
    }
}

#[derive(Module, Debug)]
pub struct C3k<B: Backend> {
    pub cv1: Conv<B>,
    pub cv2: Conv<B>,
    pub cv3: Conv<B>,
    pub m: Vec<Bottleneck<B>>,
}

impl<B: Backend> C3k<B> {
    /// # Shapes
    /// `[B, c1, H, W]` → `[B, c2, H, W]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let a = self
            .m
            .iter()
            .fold(self.cv1.forward(x.clone()), |y, b| b.forward(y));
        let b = self.cv2.forward(x);
        self.cv3.forward(cat_channels(vec![a, b]))
    }
}

/// What a C2f-style block stacks after its split: plain Bottlenecks (C2f, small C3k2) or C3k (C3k2 at m/l/x).
// Built once per model and never moved on a hot path, so variant size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum CspInner<B: Backend> {
    Bottleneck(Bottleneck<B>),
    C3k(C3k<B>),
}

impl<B: Backend> CspInner<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match self {
            CspInner::Bottleneck(b) => b.forward(x),
            CspInner::C3k(b) => b.forward(x),
        }
    }
}

/// The two CSP flavours that share C2f's split-and-stack shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CspKind {
    /// YOLOv8's `C2f(c1, c2, n, shortcut)`: Bottleneck(c, c, shortcut, k=(3,3), e=1.0).
    C2f { shortcut: bool },
    /// YOLO11's `C3k2(c1, c2, n, c3k, e)`: Bottleneck(c, c, True, e=0.5), or C3k(c, c, 2, True) when `c3k`.
    C3k2 { c3k: bool, e: f64 },
}

/// Builds a [`C2f`] block (Ultralytics' C2f or C3k2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct C2fConfig {
    pub c1: usize,
    pub c2: usize,
    /// Number of inner blocks, after depth scaling.
    pub n: usize,
    pub kind: CspKind,
}

impl C2fConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> C2f<B> {
        let e = match self.kind {
            CspKind::C2f { .. } => 0.5,
            CspKind::C3k2 { e, .. } => e,
        };
        let c = (self.c2 as f64 * e) as usize;
        let inner = |_| match self.kind {
            CspKind::C2f { shortcut } => CspInner::Bottleneck(
                BottleneckConfig {
                    c1: c,
                    c2: c,
                    shortcut,
                    k: [3, 3],
                    e: 1.0,
                }
                .init(device),
            ),
            CspKind::C3k2 { c3k: true, .. } => CspInner::C3k(
                C3kConfig {
                    c1: c,
                    c2: c,
                    n: 2,
                    shortcut: true,
                }
                .init(device),
            ),
            CspKind::C3k2 { c3k: false, .. } => CspInner::Bottleneck(
                BottleneckConfig {
                    c1: c,
                    c2: c,
                    shortcut: true,
                    k: [3, 3],
                    e: 0.5,
                }
                .init(device),
            ),
        };
        C2f {
            cv1: ConvConfig::new(self.c1, 2 * c, 1, 1).init(device),
            cv2: ConvConfig::new((2 + self.n) * c, self.c2, 1, 1).init(device),
            m: (0..self.n).map(inner).collect(),
            c,
        }
    }
}

/// C2f and C3k2: split `cv1`'s output in two, feed the second half through each inner block in turn, and fuse
/// every intermediate with `cv2`.
#[derive(Module, Debug)]
pub struct C2f<B: Backend> {
    pub cv1: Conv<B>,
    pub cv2: Conv<B>,
    pub m: Vec<CspInner<B>>,
    /// Hidden channels of each half.
    pub c: usize,
}

impl<B: Backend> C2f<B> {
    /// # Shapes
    /// `[B, c1, H, W]` → `[B, c2, H, W]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        // Ultralytics concatenates cv1's two halves and the blocks' outputs; the two halves together are cv1's
        // output itself, so only the second half is split off (the same values, one split fewer to differentiate)
        let y = self.cv1.forward(x);
        let mut last = crate::kernels::narrow_channels(y.clone(), self.c, self.c);
        let mut ys = vec![y];
        for block in &self.m {
            last = block.forward(last);
            ys.push(last.clone());
        }
        self.cv2.forward(cat_channels(ys))
    }
}

/// Ultralytics' `SPPF(c1, c2, k)` as v8/11 build it: three chained k×k max-pools over a 1×1 reduction, concatenated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SppfConfig {
    pub c1: usize,
    pub c2: usize,
    /// Pooling kernel (5 in both yamls).
    pub k: usize,
}

impl SppfConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Sppf<B> {
        let hidden = self.c1 / 2;
        // 8.4's SPPF class builds cv1 with act=False (for YOLO26), but `parse_model` restores SiLU for the
        // v8/11 yaml rows ("Legacy YAML rows predate the unactivated YOLO26 SPPF"), so ours always has it.
        let cv1 = ConvConfig::new(self.c1, hidden, 1, 1);
        Sppf {
            cv1: cv1.init(device),
            cv2: ConvConfig::new(hidden * 4, self.c2, 1, 1).init(device),
            m: MaxPool2dConfig::new([self.k, self.k])
                .with_strides([1, 1])
                .init(),
            pad: self.k / 2,
        }
    }
}

#[derive(Module, Debug)]
pub struct Sppf<B: Backend> {
    pub cv1: Conv<B>,
    pub cv2: Conv<B>,
    /// Unpadded; [`Sppf::pool`] pads first.
    pub m: MaxPool2d,
    pub pad: usize,
}

impl<B: Backend> Sppf<B> {
    /// # Shapes
    /// `[B, c1, H, W]` → `[B, c2, H, W]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let y0 = self.cv1.forward(x);
        let y1 = self.pool(y0.clone());
        let y2 = self.pool(y1.clone());
        let y3 = self.pool(y2.clone());
        self.cv2.forward(cat_channels(vec![y0, y1, y2, y3]))
    }
}

impl<B: Backend> Sppf<B> {
    /// `nn.MaxPool2d(k, 1, k // 2)`, which pads with −∞ (see [`crate::kernels::max_pool_same`]).
    fn pool(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        debug_assert_eq!(self.m.kernel_size[0], 2 * self.pad + 1);
        crate::kernels::max_pool_same(x, 2 * self.pad + 1)
    }
}

/// Ultralytics' `Attention(dim, num_heads, attn_ratio=0.5)`: multi-head self-attention over the H·W positions,
/// with a depth-wise 3×3 positional encoding on the values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionConfig {
    pub dim: usize,
    pub num_heads: usize,
}

impl AttentionConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Attention<B> {
        let head_dim = self.dim / self.num_heads;
        let key_dim = head_dim / 2; // int(head_dim * attn_ratio), attn_ratio 0.5
        let qkv_channels = self.dim + 2 * key_dim * self.num_heads;
        Attention {
            qkv: ConvConfig::new(self.dim, qkv_channels, 1, 1)
                .linear()
                .init(device),
            proj: ConvConfig::new(self.dim, self.dim, 1, 1)
                .linear()
                .init(device),
            pe: ConvConfig::new(self.dim, self.dim, 3, 1)
                .with_groups(self.dim)
                .linear()
                .init(device),
            num_heads: self.num_heads,
            key_dim,
            head_dim,
        }
    }
}

#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    pub qkv: Conv<B>,
    pub proj: Conv<B>,
    pub pe: Conv<B>,
    pub num_heads: usize,
    pub key_dim: usize,
    pub head_dim: usize,
}

impl<B: Backend> Attention<B> {
    /// # Shapes
    /// `[B, C, H, W]` → `[B, C, H, W]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, c, h, w] = x.dims();
        let n = h * w;
        let (nh, kd, hd) = (self.num_heads, self.key_dim, self.head_dim);
        let qkv = self.qkv.forward(x).reshape([b, nh, 2 * kd + hd, n]);
        let q = qkv.clone().narrow(2, 0, kd);
        let k = qkv.clone().narrow(2, kd, kd);
        let v = qkv.narrow(2, 2 * kd, hd);
        let scale = (kd as f64).powf(-0.5);
        // [B, nh, N, N]: row i attends over every position j.
        let attn = softmax(q.mul_scalar(scale).swap_dims(2, 3).matmul(k), 3);
        let out = v.clone().matmul(attn.swap_dims(2, 3)).reshape([b, c, h, w]);
        let pe = self.pe.forward(v.reshape([b, c, h, w]));
        self.proj.forward(out + pe)
    }
}

/// Ultralytics' `PSABlock(c, attn_ratio=0.5, num_heads)`: attention and a 2× feed-forward, both residual.
#[derive(Module, Debug)]
pub struct PsaBlock<B: Backend> {
    pub attn: Attention<B>,
    /// `nn.Sequential(Conv(c, 2c, 1), Conv(2c, c, 1, act=False))`: tuple indices are the checkpoint's.
    pub ffn: (Conv<B>, Conv<B>),
}

impl<B: Backend> PsaBlock<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = x.clone() + self.attn.forward(x);
        x.clone() + self.ffn.1.forward(self.ffn.0.forward(x))
    }
}

/// Builds a [`C2psa`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct C2psaConfig {
    /// Input and output channels (C2PSA asserts they are equal).
    pub c: usize,
    pub n: usize,
}

impl C2psaConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> C2psa<B> {
        let half = self.c / 2;
        let attention = AttentionConfig {
            dim: half,
            num_heads: (half / 64).max(1),
        };
        let block = |_| PsaBlock {
            attn: attention.init(device),
            ffn: (
                ConvConfig::new(half, 2 * half, 1, 1).init(device),
                ConvConfig::new(2 * half, half, 1, 1).linear().init(device),
            ),
        };
        C2psa {
            cv1: ConvConfig::new(self.c, 2 * half, 1, 1).init(device),
            cv2: ConvConfig::new(2 * half, self.c, 1, 1).init(device),
            m: (0..self.n).map(block).collect(),
            c: half,
        }
    }
}

/// Ultralytics' `C2PSA`: a CSP split whose second half goes through PSABlocks.
#[derive(Module, Debug)]
pub struct C2psa<B: Backend> {
    pub cv1: Conv<B>,
    pub cv2: Conv<B>,
    pub m: Vec<PsaBlock<B>>,
    pub c: usize,
}

impl<B: Backend> C2psa<B> {
    /// # Shapes
    /// `[B, C, H, W]` → `[B, C, H, W]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let y = self.cv1.forward(x);
        let a = crate::kernels::narrow_channels(y.clone(), 0, self.c);
        let b = self.m.iter().fold(
            crate::kernels::narrow_channels(y, self.c, self.c),
            |t, block| block.forward(t),
        );
        self.cv2.forward(cat_channels(vec![a, b]))
    }
}
