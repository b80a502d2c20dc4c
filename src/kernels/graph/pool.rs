//! SPPF's `nn.MaxPool2d(k, 1, k // 2)` as one burn-flex op with its own backward.
//!
//! Why: burn-flex 0.21 runs 2-D max-pooling through its generic 3-D pool, one scalar window at a time with
//! index arithmetic per element, and a half tensor also needs its edges repeated by concatenation first (Burn's
//! edge padding writes into an `f32` canvas). At 320 px the three pools of YOLOv8n's SPPF and their backward
//! were 5–6 % of a train step in every precision (perf, docs/benchmarks.md), on 10×10 maps.
//!
//! Semantics are PyTorch's: the window is padded with −∞, the output is the window's maximum, and its gradient
//! goes to the window's first maximum in row-major order (a NaN wins, and a later NaN wins over an earlier one:
//! `val > max || isnan(val)`, as ATen's CPU kernel). Clamping the window's coordinates to the plane gives the same
//! maximum and the same element, because a clamped window only repeats its edge element where the padding was,
//! in scan order. The window is separable: each row's maximum over k columns first (first occurrence), then the
//! maximum of k of those (first row), which is the row-major first occurrence over the whole window.
//!
//! Forward values are copies, exact in every type. The gradient of each input element is the sum of the output
//! gradients that chose it, added in `f32` in output order and rounded once to the half type (torch adds in the
//! half type, rounding at each add). `scripts/check_pool_torch.py` checks the rule that tests/kernels_pool.rs
//! transcribes against PyTorch itself, on tie-heavy values: the same outputs and the same chosen elements.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};
use burn_flex::{Flex, FlexTensor};
use half::{bf16, f16};
use rayon::prelude::*;

use super::super::flex::batch_strided_as_is;
use super::{ad_to_b, dims, downcast, grad_key, grad_sum, in_dtype, to_b, Downcast, Elem};

/// The widest window whose offsets fit the `u8` that the backward keeps per output element.
const MAX_K: usize = 15;

/// `nn.MaxPool2d(k, stride=1, padding=k // 2)` of a 4-D burn-flex tensor (`f32`, `f16` or `bf16`) for an odd
/// `k` ≤ 15; `Err` hands it back.
pub fn try_max_pool_same<B: Backend>(
    x: Tensor<B, 4>,
    k: usize,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    if k.is_multiple_of(2) || k > MAX_K {
        return Err(x);
    }
    match downcast(vec![x]) {
        Downcast::Plain(mut ts) => Ok(to_b(forward(&ts.remove(0), k, false).0)),
        Downcast::Tracked(mut ts) => {
            let x = ts.remove(0);
            let shape = dims(&x.primitive);
            let (out, at) = forward(&x.primitive, k, true);
            let dtype = out.dtype();
            let out = match MaxPoolBackward
                .prepare::<NoCheckpointing>([x.node.clone()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish((shape, k, dtype, at), out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            };
            Ok(ad_to_b(out))
        }
        Downcast::Other(mut ts) => Err(ts.remove(0)),
    }
}

/// The pooled tensor, and where `offsets`: each output's chosen element as its offset `i·k + j` in the window.
fn forward(x: &FlexTensor, k: usize, offsets: bool) -> (FlexTensor, Vec<u8>) {
    with_elem!(x.dtype(), T => forward_of::<T>(x, k, offsets))
}

fn forward_of<T: Elem>(x: &FlexTensor, k: usize, offsets: bool) -> (FlexTensor, Vec<u8>) {
    let [batch, c, h, w] = dims(x);
    let (x, stride) = batch_strided_as_is(x);
    let x = T::from_start(&x);
    let plane = h * w;
    let len = batch * c * plane;
    let mut out = vec![T::ZERO; len];
    // kept only when the backward needs it; one byte per output element
    let mut at = vec![0u8; len];
    if plane > 0 {
        out.par_chunks_mut(plane)
            .zip(at.par_chunks_mut(plane))
            .enumerate()
            .for_each(|(p, (out, at))| {
                let src = &x[(p / c) * stride + (p % c) * plane..][..plane];
                let mut scratch = Vec::new();
                let src = T::widened(src, &mut scratch);
                T::accumulate(out, |out| pool_plane(src, [h, w], k, out, at));
            });
    }
    if !offsets {
        at = Vec::new();
    }
    (T::tensor(out, &[batch, c, h, w]), at)
}

/// One `h`×`w` plane: each output's window maximum into `out`, its offset in the window into `at`.
///
/// Both passes run along a row with no index arithmetic per element (an edge-repeated copy of the row, then
/// whole rows of row maxima), so the compare-and-select loops vectorise.
fn pool_plane(x: &[f32], [h, w]: [usize; 2], k: usize, out: &mut [f32], at: &mut [u8]) {
    let p = k / 2;
    let mut padded = vec![0f32; w + 2 * p];
    // the maximum over each row's k-column windows, and its column offset (as u32: one lane width with f32)
    let mut row_max = vec![0f32; h * w];
    let mut row_at = vec![0u32; h * w];
    for ((src, m), a) in x
        .chunks_exact(w)
        .zip(row_max.chunks_exact_mut(w))
        .zip(row_at.chunks_exact_mut(w))
    {
        padded[..p].fill(src[0]);
        padded[p..p + w].copy_from_slice(src);
        padded[p + w..].fill(src[w - 1]);
        m.copy_from_slice(&padded[..w]);
        a.fill(0);
        for j in 1..k {
            take_greater(&padded[j..j + w], j as u32, m, a);
        }
    }
    let mut m = vec![0f32; w];
    let mut a = vec![0u32; w];
    for y in 0..h {
        let row = |i: usize| (y + i).saturating_sub(p).min(h - 1) * w;
        m.copy_from_slice(&row_max[row(0)..][..w]);
        a.copy_from_slice(&row_at[row(0)..][..w]);
        for i in 1..k {
            let r = row(i);
            let (vals, offs) = (&row_max[r..r + w], &row_at[r..r + w]);
            for c in 0..w {
                let (v, off) = (vals[c], (i * k) as u32 + offs[c]);
                let take = v > m[c] || v.is_nan();
                m[c] = if take { v } else { m[c] };
                a[c] = if take { off } else { a[c] };
            }
        }
        out[y * w..][..w].copy_from_slice(&m);
        for (o, &a) in at[y * w..][..w].iter_mut().zip(&a) {
            *o = a as u8;
        }
    }
}

/// `m`, `a` ← `v`, `off` where `v` is greater (or NaN): ATen's max-pool rule, lane by lane.
fn take_greater(v: &[f32], off: u32, m: &mut [f32], a: &mut [u32]) {
    for ((&v, m), a) in v.iter().zip(m.iter_mut()).zip(a.iter_mut()) {
        let take = v > *m || v.is_nan();
        *m = if take { v } else { *m };
        *a = if take { off } else { *a };
    }
}

#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<Flex, 1> for MaxPoolBackward {
    /// The input's shape, `k`, the float type, and each output's offset in its window.
    type State = ([usize; 4], usize, DType, Vec<u8>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (shape, k, dtype, at) = ops.state;
        let dout = in_dtype(grads.consume::<Flex>(&ops.node), dtype);
        let Some(node) = ops.parents.into_iter().flatten().next() else {
            return;
        };
        let dx = with_elem!(dtype, T => backward_of::<T>(&dout, shape, k, &at));
        grad_sum::register(grads, &grad_key!(&node), dx);
    }
}

/// Each output's gradient added onto the input element its window chose; planes in parallel.
fn backward_of<T: Elem>(
    dout: &FlexTensor,
    [batch, c, h, w]: [usize; 4],
    k: usize,
    at: &[u8],
) -> FlexTensor {
    let (dout, stride) = batch_strided_as_is(dout);
    let dout = T::from_start(&dout);
    let plane = h * w;
    let p = k / 2;
    let mut dx = vec![T::ZERO; batch * c * plane];
    if plane > 0 {
        dx.par_chunks_mut(plane)
            .zip(at.par_chunks(plane))
            .enumerate()
            .for_each(|(q, (g, at))| {
                let src = &dout[(q / c) * stride + (q % c) * plane..][..plane];
                let mut scratch = Vec::new();
                let src = T::widened(src, &mut scratch);
                T::accumulate(g, |g| {
                    for y in 0..h {
                        for x in 0..w {
                            let o = at[y * w + x] as usize;
                            let r = (y + o / k).saturating_sub(p).min(h - 1);
                            let col = (x + o % k).saturating_sub(p).min(w - 1);
                            g[r * w + col] += src[y * w + x];
                        }
                    }
                });
            });
    }
    T::tensor(dx, &[batch, c, h, w])
}
