//! Our CPU kernels: the `Conv` block (conv → BatchNorm → SiLU) as one op for burn-flex, forward and backward.
//!
//! Burn's stock CPU path spends most of a YOLOv8n train step outside the multiplications: BatchNorm's broadcast
//! ops walk a strided iterator, and the conv converts layouts around every GEMM (docs/benchmarks.md, issue #6).
//! [`conv_bn_act`] runs our kernels on burn-flex (f32, and f16/bf16 through `half_gemm` with f32 accumulation)
//! and Burn's modules everywhere else; `train.kernels = "burn"` (or [`select`]) keeps the stock path for
//! comparison.

pub mod bn_act;
mod bn_blocks;
mod cast;
pub mod conv;
mod dfl;
mod dot;
mod flex;
mod grad_sum;
mod graph;
pub mod half_gemm;
pub mod half_slice;
mod taps;

use std::sync::atomic::{AtomicBool, Ordering};

use burn::nn::conv::Conv2d;
use burn::nn::BatchNorm;
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

pub use crate::config::Kernels;

/// Process-wide, because the model's forward has no place to carry it; set once by the CLI from the config.
static STOCK: AtomicBool = AtomicBool::new(false);

/// Chooses the implementation for every later [`conv_bn_act`].
pub fn select(kernels: Kernels) {
    STOCK.store(kernels == Kernels::Burn, Ordering::Relaxed);
}

pub fn selected() -> Kernels {
    if STOCK.load(Ordering::Relaxed) {
        Kernels::Burn
    } else {
        Kernels::Fast
    }
}

/// Whether the conv blocks of a model on `B` run our kernels, which compute BatchNorm's statistics in `f32` and
/// keep its running statistics in `f32` whatever the model's float type (Burn's stock `BatchNorm` keeps them in
/// the input's type instead).
pub fn batch_norm_stats_stay_f32<B: Backend>() -> bool {
    selected() == Kernels::Fast && flex::is_flex::<B>()
}

/// `x` in `dtype` with the selected kernels: ours on burn-flex (parallel, F16C where present, no `f64`
/// intermediate: burn-flex's own cast converts through a `Vec<f64>` on one thread), Burn's otherwise. The
/// values are the same either way (round to nearest even); the gradient is cast back to `x`'s type.
pub fn cast<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    dtype: burn::tensor::FloatDType,
) -> Tensor<B, D> {
    let x = match selected() {
        Kernels::Fast => match cast::try_cast(x, dtype) {
            Ok(y) => return y,
            Err(x) => x,
        },
        Kernels::Burn => x,
    };
    x.cast(dtype)
}

/// `act(bn(conv(x)))` with the selected kernels. In training (an autodiff backend) BatchNorm uses batch
/// statistics and updates its running ones; otherwise the running ones.
///
/// # Shapes
/// `[B, c1, H, W]` → `[B, c2, H / s, W / s]`
pub fn conv_bn_act<B: Backend>(
    conv: &Conv2d<B>,
    bn: &BatchNorm<B>,
    act: bool,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    conv_bn_act_with(selected(), conv, bn, act, x)
}

/// [`conv_bn_act`] with an explicit choice, for tests that compare the two.
pub fn conv_bn_act_with<B: Backend>(
    kernels: Kernels,
    conv: &Conv2d<B>,
    bn: &BatchNorm<B>,
    act: bool,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let x = match kernels {
        Kernels::Fast => match flex::try_conv_bn_act(conv, bn, act, x) {
            Ok(y) => return y,
            Err(x) => x,
        },
        Kernels::Burn => x,
    };
    let y = bn.forward(conv.forward(x));
    if act {
        silu(y)
    } else {
        y
    }
}

/// `conv(x) + bias` with the selected kernels: the Detect head's last 1×1 convs, which have a bias and no
/// BatchNorm.
///
/// # Shapes
/// `[B, c1, H, W]` → `[B, c2, H / s, W / s]`
pub fn conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    conv2d_with(selected(), conv, x)
}

/// [`conv2d`] with an explicit choice, for tests that compare the two.
pub fn conv2d_with<B: Backend>(
    kernels: Kernels,
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let x = match kernels {
        Kernels::Fast => match flex::try_conv_bias(conv, x) {
            Ok(y) => return y,
            Err(x) => x,
        },
        Kernels::Burn => x,
    };
    conv.forward(x)
}

/// `cat(tensors, dim)` with the selected kernels: ours for burn-flex `f32`, `f16` and `bf16` tensors (runs
/// copied in parallel, a contiguous gradient for each input, channel slices read in place), Burn's otherwise.
pub fn cat<B: Backend, const D: usize>(tensors: Vec<Tensor<B, D>>, dim: usize) -> Tensor<B, D> {
    cat_with(selected(), tensors, dim)
}

/// [`cat`] along channels, the model's most common case (C2f, SPPF, the neck's Concat).
///
/// # Shapes
/// `[B, c_i, H, W]` each → `[B, Σ c_i, H, W]`
pub fn cat_channels<B: Backend>(tensors: Vec<Tensor<B, 4>>) -> Tensor<B, 4> {
    cat(tensors, 1)
}

/// Channels `start..start + len` of `x` (C2f's split), as Burn's `narrow`; with our kernels its gradient is
/// added into the one the whole tensor already has ([`graph::try_narrow_channels`]).
pub fn narrow_channels<B: Backend>(x: Tensor<B, 4>, start: usize, len: usize) -> Tensor<B, 4> {
    narrow_channels_with(selected(), x, start, len)
}

/// [`narrow_channels`] with an explicit choice, for tests that compare the two.
pub fn narrow_channels_with<B: Backend>(
    kernels: Kernels,
    x: Tensor<B, 4>,
    start: usize,
    len: usize,
) -> Tensor<B, 4> {
    let x = match kernels {
        Kernels::Fast => match graph::try_narrow_channels(x, start, len) {
            Ok(y) => return y,
            Err(x) => x,
        },
        Kernels::Burn => x,
    };
    x.narrow(1, start, len)
}

/// [`cat`] with an explicit choice, for tests that compare the two.
pub fn cat_with<B: Backend, const D: usize>(
    kernels: Kernels,
    tensors: Vec<Tensor<B, D>>,
    dim: usize,
) -> Tensor<B, D> {
    let tensors = match kernels {
        Kernels::Fast => match graph::try_cat(tensors, dim) {
            Ok(y) => return y,
            Err(tensors) => tensors,
        },
        Kernels::Burn => tensors,
    };
    Tensor::cat(tensors, dim)
}

/// The Detect head's DFL decoding with the selected kernels: per anchor and side, the expectation of a softmax
/// over the side's `R` bins with the weights `bins` (Ultralytics' fixed `0..R` 1×1 conv). Ours for plain
/// burn-flex `f32` logits (inference), Burn's softmax and conv otherwise.
///
/// # Shapes
/// logits `[B, 4·R, A]`, bins `[1, R, 1, 1]` → `[B, 4, A]`
pub fn dfl_expectation<B: Backend>(x: Tensor<B, 3>, bins: &Tensor<B, 4>) -> Tensor<B, 3> {
    dfl_expectation_with(selected(), x, bins)
}

/// [`dfl_expectation`] with an explicit choice, for tests that compare the two.
pub fn dfl_expectation_with<B: Backend>(
    kernels: Kernels,
    x: Tensor<B, 3>,
    bins: &Tensor<B, 4>,
) -> Tensor<B, 3> {
    let x = match kernels {
        Kernels::Fast => match dfl::try_expectation(x, bins) {
            Ok(y) => return y,
            Err(x) => x,
        },
        Kernels::Burn => x,
    };
    let [b, _, a] = x.dims();
    let r = bins.dims()[1];
    let probs = burn::tensor::activation::softmax(x.reshape([b, 4, r, a]).swap_dims(1, 2), 1);
    // The fixed bins follow the input's float type (a half model's bins are half; `decode` runs in f32).
    let weight = bins
        .clone()
        .cast(burn::tensor::FloatDType::from(probs.dtype()));
    burn::tensor::module::conv2d(
        probs,
        weight,
        None,
        burn::tensor::ops::ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
    )
    .reshape([b, 4, a])
}

/// `a + b` of one shape with the selected kernels (the residual of a Bottleneck).
///
/// # Shapes
/// `[B, C, H, W]` twice → `[B, C, H, W]`
pub fn add<B: Backend>(a: Tensor<B, 4>, b: Tensor<B, 4>) -> Tensor<B, 4> {
    add_with(selected(), a, b)
}

/// [`add`] with an explicit choice, for tests that compare the two.
pub fn add_with<B: Backend>(kernels: Kernels, a: Tensor<B, 4>, b: Tensor<B, 4>) -> Tensor<B, 4> {
    let (a, b) = match kernels {
        Kernels::Fast => match graph::try_add(a, b) {
            Ok(y) => return y,
            Err(pair) => pair,
        },
        Kernels::Burn => (a, b),
    };
    a + b
}

/// SPPF's `nn.MaxPool2d(k, 1, k // 2)` for an odd `k`, with the selected kernels.
///
/// # Shapes
/// `[B, C, H, W]` → `[B, C, H, W]`
pub fn max_pool_same<B: Backend>(x: Tensor<B, 4>, k: usize) -> Tensor<B, 4> {
    max_pool_same_with(selected(), x, k)
}

/// [`max_pool_same`] with an explicit choice, for tests that compare the two.
///
/// Burn's path: PyTorch pads max-pooling with −∞; burn-flex 0.21 pads with zeros, which differs wherever a
/// border window is all negative (8.4's SPPF `cv1` has no activation, so that happens). Repeating the edge gives
/// exactly the −∞ result: the repeated value already lies in every border window.
pub fn max_pool_same_with<B: Backend>(kernels: Kernels, x: Tensor<B, 4>, k: usize) -> Tensor<B, 4> {
    let x = match kernels {
        Kernels::Fast => match graph::try_max_pool_same(x, k) {
            Ok(y) => return y,
            Err(x) => x,
        },
        Kernels::Burn => x,
    };
    let p = k / 2;
    let padded = if x.dtype() == burn::tensor::DType::F32 || p == 0 {
        x.pad((p, p, p, p), burn::tensor::ops::PadMode::Edge)
    } else {
        // Burn 0.21's edge padding assigns into an f32 canvas whatever the input's type (burn-flex panics on
        // a half-precision input), so half tensors repeat their edges by concatenation: the same values.
        let edges = |x: Tensor<B, 4>, dim: usize| {
            let n = x.dims()[dim];
            let first = x.clone().narrow(dim, 0, 1).repeat_dim(dim, p);
            let last = x.clone().narrow(dim, n - 1, 1).repeat_dim(dim, p);
            Tensor::cat(vec![first, x, last], dim)
        };
        edges(edges(x, 2), 3)
    };
    burn::tensor::module::max_pool2d(padded, [k, k], [1, 1], [0, 0], [1, 1], false)
}

/// Nearest-neighbour upsampling by `f` with the selected kernels (the neck's `Upsample`).
///
/// # Shapes
/// `[B, C, H, W]` → `[B, C, H·f, W·f]`
pub fn upsample_nearest<B: Backend>(x: Tensor<B, 4>, f: usize) -> Tensor<B, 4> {
    upsample_nearest_with(selected(), x, f)
}

/// [`upsample_nearest`] with an explicit choice, for tests that compare the two.
pub fn upsample_nearest_with<B: Backend>(
    kernels: Kernels,
    x: Tensor<B, 4>,
    f: usize,
) -> Tensor<B, 4> {
    let x = match kernels {
        Kernels::Fast => match graph::try_upsample(x, f) {
            Ok(y) => return y,
            Err(x) => x,
        },
        Kernels::Burn => x,
    };
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1])
        .expand([b, c, h, f, w, f])
        .reshape([b, c, h * f, w * f])
}

/// A `len`-float vector written by `write(i, chunk)` in parallel, chunk `i` being floats
/// `i·chunk .. min((i+1)·chunk, len)`; with what each call returned, in chunk order.
///
/// Why not `vec![0.0; len]` and then the parallel writes: that zeroes the whole buffer on the calling thread while
/// the pool waits, which perf put at 3.4 % of a YOLOv8n train step (320, 2 threads), all of it serial. Here each
/// chunk is zeroed by the thread about to write it, while the chunk is in that core's cache.
pub(crate) fn par_vec<R: Send>(
    len: usize,
    chunk: usize,
    write: impl Fn(usize, &mut [f32]) -> R + Sync + Send,
) -> (Vec<f32>, Vec<R>) {
    par_vec_of(len, chunk, 0.0, write)
}

/// `c` filled with `value`, as a slice of `T`. An all-zero `value` (`0.0` in each float type here) is one
/// `memset`, which runs with the CPU's widest stores, where `fill` compiles to the baseline target's SSE2 loop
/// (such loops were the hottest of a bf16 step's inlined closures; the step's time changed within noise).
fn init_with<T: bytemuck::Pod>(c: &mut [std::mem::MaybeUninit<T>], value: T) -> &mut [T] {
    if bytemuck::bytes_of(&value).iter().all(|b| *b == 0) {
        // SAFETY: zero bytes are a valid `T` (`Pod`); the pointer covers `c.len()` elements.
        unsafe { std::ptr::write_bytes(c.as_mut_ptr(), 0, c.len()) };
    } else {
        c.fill(std::mem::MaybeUninit::new(value));
    }
    // SAFETY: every element of `c` was initialised above, and `T` has the layout of `MaybeUninit<T>`.
    unsafe { &mut *(c as *mut [std::mem::MaybeUninit<T>] as *mut [T]) }
}

/// [`par_vec`] for any plain element type, each chunk first filled with `zero`.
pub(crate) fn par_vec_of<T: bytemuck::Pod + Send + Sync, R: Send>(
    len: usize,
    chunk: usize,
    zero: T,
    write: impl Fn(usize, &mut [T]) -> R + Sync + Send,
) -> (Vec<T>, Vec<R>) {
    use rayon::prelude::*;
    let mut v = Vec::<T>::with_capacity(len);
    let results = v.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .map(|(i, c)| write(i, init_with(c, zero)))
        .collect();
    // SAFETY: the chunks cover `0..len`, and each was initialised before its `write`.
    unsafe { v.set_len(len) };
    (v, results)
}

/// [`par_vec_of`] for two vectors of one length, filled chunk by chunk together (`write(i, a, b)` gets chunk
/// `i` of each).
pub(crate) fn par_vec2_of<T: bytemuck::Pod + Send + Sync>(
    len: usize,
    chunk: usize,
    zero: T,
    write: impl Fn(usize, &mut [T], &mut [T]) + Sync + Send,
) -> (Vec<T>, Vec<T>) {
    use rayon::prelude::*;
    let init = |c| init_with(c, zero);
    let (mut a, mut b) = (Vec::<T>::with_capacity(len), Vec::<T>::with_capacity(len));
    a.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .zip(b.spare_capacity_mut()[..len].par_chunks_mut(chunk.max(1)))
        .enumerate()
        .for_each(|(i, (ca, cb))| write(i, init(ca), init(cb)));
    // SAFETY: the chunks cover `0..len` of both, and each was initialised before its `write`.
    unsafe {
        a.set_len(len);
        b.set_len(len);
    }
    (a, b)
}
