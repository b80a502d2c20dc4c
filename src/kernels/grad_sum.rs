//! Gradient sums of tensors that several ops read (a C2f half feeds a Bottleneck's conv and its residual add,
//! and the concatenation; a backbone output feeds the next layer and the neck), done by our ops themselves.
//!
//! Why: Burn's autodiff adds a second gradient to the first in `Gradients::register` with the backend's
//! `float_add`, and burn-flex adds `f16` element by element, each element converted through `half` with its own
//! run-time F16C check: about 4 % of an fp16 train step. Here our backward ops take the gradient a node already
//! holds and add theirs to it in parallel, converting blocks on the stack, and a conv adds the held gradient to
//! its `f32` input gradient before rounding that once. The sums are the ones `float_add` computes (`a + b` in
//! `f32`, rounded once to the half type, nearest even); for the conv's `f32` gradient, one rounding fewer.

use burn::backend::autodiff::grads::Gradients;
use burn::tensor::ops::FloatTensorOps;
use burn::tensor::DType;
use burn_flex::{Flex, FlexTensor};
use half::{bf16, f16};
use rayon::prelude::*;

use super::flex::AdFlexTensor;
use super::half_slice::HalfSlice;

/// Elements per parallel task.
const CHUNK: usize = 1 << 15;
/// Elements a half-type sum widens on the stack at a time.
const BLOCK: usize = 256;

/// The key `Gradients::remove` looks a node's gradient up by: a tensor of that node (Burn's key type is not
/// nameable outside burn-autodiff, so the node goes into an empty tensor here).
macro_rules! grad_key {
    ($node:expr) => {{
        let node = $node;
        $crate::kernels::flex::AdFlexTensor {
            primitive: burn_flex::FlexTensor::empty(
                burn::tensor::Shape::new([0]),
                burn::tensor::DType::F32,
            ),
            rc: std::sync::Arc::new(node.id),
            node: node.clone(),
        }
    }};
}
pub(super) use grad_key;

/// Registers `grad` as a gradient of `key`'s node, summed here with any gradient the node already holds.
pub(super) fn register(grads: &mut Gradients, key: &AdFlexTensor, grad: FlexTensor) {
    let sum = match grads.remove::<Flex>(key) {
        Some(held) => add(grad, held),
        None => grad,
    };
    grads.register::<Flex>(key.node.id, sum);
}

/// The gradient `key`'s node holds so far, taken out of `grads` (to be registered again with more added).
pub(super) fn take(grads: &mut Gradients, key: &AdFlexTensor) -> Option<FlexTensor> {
    grads.remove::<Flex>(key)
}

/// `values` (`f32`, row-major) plus whatever gradient `key`'s node holds, rounded once to `dtype` and
/// registered: a conv's input gradient.
pub(super) fn register_f32(
    grads: &mut Gradients,
    key: &AdFlexTensor,
    mut values: Vec<f32>,
    shape: &[usize],
    dtype: DType,
) {
    let held = grads.remove::<Flex>(key).map(|held| held.to_contiguous());
    let fits = |held: &FlexTensor| held.layout().shape().to_vec() == shape;
    // a held gradient of another shape or type (never made by the model) goes through Burn's add below
    let rest = match held {
        Some(held) if !fits(&held) => Some(held),
        Some(held) if held.dtype() == DType::F32 => {
            add_f32_into(&mut values, contiguous::<f32>(&held));
            None
        }
        Some(held) if held.dtype() == DType::F16 => {
            widen_add_into(&mut values, contiguous::<f16>(&held));
            None
        }
        Some(held) if held.dtype() == DType::BF16 => {
            widen_add_into(&mut values, contiguous::<bf16>(&held));
            None
        }
        other => other,
    };
    let grad = super::cast::from_f32(values, shape, dtype);
    let grad = match rest {
        Some(held) => Flex::float_add(grad, held),
        None => grad,
    };
    grads.register::<Flex>(key.node.id, grad);
}

/// The elements of a contiguous tensor of type `T`.
fn contiguous<T: burn::tensor::Element + bytemuck::Pod>(t: &FlexTensor) -> &[T] {
    let start = t.layout().start_offset();
    &t.storage::<T>()[start..start + t.layout().num_elements()]
}

/// `a + b`, in place in whichever of the two this code owns alone; Burn's add when the types or shapes differ.
fn add(a: FlexTensor, b: FlexTensor) -> FlexTensor {
    if a.dtype() != b.dtype() || a.layout().shape() != b.layout().shape() {
        return Flex::float_add(a, b);
    }
    let owned = |t: &FlexTensor| t.is_unique() && t.layout().contiguous_offsets().is_some();
    let (mut dst, src) = if owned(&a) {
        (a, b.to_contiguous())
    } else if owned(&b) {
        (b, a.to_contiguous())
    } else {
        (a.to_contiguous(), b.to_contiguous())
    };
    match dst.dtype() {
        DType::F32 => add_in_place::<f32>(&mut dst, &src, |d, s| {
            d.iter_mut().zip(s).for_each(|(d, s)| *d += s)
        }),
        DType::F16 => add_in_place::<f16>(&mut dst, &src, add_half_into),
        DType::BF16 => add_in_place::<bf16>(&mut dst, &src, add_half_into),
        _ => return Flex::float_add(dst, src),
    }
    dst
}

/// `dst += src` over `dst`'s elements (which `storage_mut` copies first if another tensor shares them).
fn add_in_place<T: burn::tensor::Element + bytemuck::Pod + Send + Sync>(
    dst: &mut FlexTensor,
    src: &FlexTensor,
    add: impl Fn(&mut [T], &[T]) + Sync,
) {
    let (start, end) = dst
        .layout()
        .contiguous_offsets()
        .unwrap_or_else(|| unreachable!("made contiguous above"));
    let src = contiguous::<T>(src);
    let dst = &mut dst.storage_mut::<T>()[start..end];
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| add(d, s));
}

fn add_f32_into(dst: &mut [f32], src: &[f32]) {
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, s)| *d += s));
}

/// `dst += src` with `src` widened a block at a time.
fn widen_add_into<T: Sync>(dst: &mut [f32], src: &[T])
where
    [T]: HalfSlice,
{
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| {
            let mut wide = [0.0f32; BLOCK];
            for (d, s) in d.chunks_mut(BLOCK).zip(s.chunks(BLOCK)) {
                let wide = &mut wide[..s.len()];
                s.widen_into(wide);
                d.iter_mut().zip(wide.iter()).for_each(|(d, w)| *d += w);
            }
        });
}

/// `dst = round(dst + src)`, each sum in `f32`.
pub(super) fn add_half_into<T>(dst: &mut [T], src: &[T])
where
    [T]: HalfSlice,
{
    let (mut x, mut y) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
    for (d, s) in dst.chunks_mut(BLOCK).zip(src.chunks(BLOCK)) {
        let (x, y) = (&mut x[..d.len()], &mut y[..d.len()]);
        d.widen_into(x);
        s.widen_into(y);
        x.iter_mut().zip(y.iter()).for_each(|(x, y)| *x += y);
        d.round_from(x);
    }
}
