//! The model's graph ops that burn-flex runs slowly, as burn-flex ops with their own backward: concatenation
//! (along channels in C2f, SPPF and the neck's Concat; along anchors in the Detect head), the residual add
//! (Bottleneck) and the neck's nearest-neighbour upsampling (which Burn's ops express as a broadcast that is then
//! copied element by element).
//!
//! Why: burn-flex runs these on the calling thread, and the inputs are often channel slices (C2f's split), which
//! its element-wise ops walk one element at a time through a strided iterator; their gradients (slices of the
//! concatenation's gradient) then make every later gradient sum take that path too. At 2 threads about a third
//! of a YOLOv8n train step was this single-threaded work (docs/benchmarks.md). Here each image's channel runs are
//! copied or added as contiguous slices, images in parallel, and the concatenation hands each input a contiguous
//! gradient.
//!
//! `f32` tensors only (the model's training type here); anything else takes Burn's ops.

use std::any::Any;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};
use burn_flex::{Flex, FlexTensor};

use super::flex::{
    batch_strided, cast, f32s_from_start, flex, from_primitive, primitive, AdFlexTensor,
};
use super::par_vec;

/// The most inputs [`try_cat`] takes (C2f of a YOLOv8x has 1 + 6); more go to Burn's `cat`.
const MAX_CAT: usize = 8;

/// `B`'s tensors as burn-flex ones (plain or under autodiff), all `f32`; otherwise handed back.
enum Downcast<B: Backend, const D: usize> {
    Plain(Vec<FlexTensor>),
    Tracked(Vec<AdFlexTensor>),
    Other(Vec<Tensor<B, D>>),
}

fn downcast<B: Backend, const D: usize>(tensors: Vec<Tensor<B, D>>) -> Downcast<B, D> {
    let prims: Vec<B::FloatTensorPrimitive> = tensors.into_iter().map(primitive).collect();
    let all = |ok: &dyn Fn(&dyn Any) -> bool| prims.iter().all(|p| ok(p as &dyn Any));
    let f32 = |t: &FlexTensor| t.dtype() == DType::F32;
    if all(&|p| p.downcast_ref::<FlexTensor>().is_some_and(f32)) {
        return Downcast::Plain(prims.into_iter().map(same).collect());
    }
    if all(&|p| {
        p.downcast_ref::<AdFlexTensor>()
            .is_some_and(|t| f32(&t.primitive))
    }) {
        return Downcast::Tracked(prims.into_iter().map(same).collect());
    }
    Downcast::Other(prims.into_iter().map(from_primitive).collect())
}

/// `value` as the type it was just checked to be.
fn same<T: 'static, U: 'static>(value: T) -> U {
    cast(value).unwrap_or_else(|_| unreachable!("checked to be this type"))
}

fn dims(t: &FlexTensor) -> [usize; 4] {
    let s = t.layout().shape();
    [s[0], s[1], s[2], s[3]]
}

fn shape(t: &FlexTensor) -> Vec<usize> {
    t.layout().shape().to_vec()
}

fn to_b<B: Backend, const D: usize>(t: FlexTensor) -> Tensor<B, D> {
    from_primitive(same(t))
}

fn ad_to_b<B: Backend, const D: usize>(t: AdFlexTensor) -> Tensor<B, D> {
    from_primitive(same(t))
}

/// `cat(tensors, dim)` for burn-flex `f32` tensors equal in every other dimension; `Err` hands them back.
pub fn try_cat<B: Backend, const D: usize>(
    tensors: Vec<Tensor<B, D>>,
    dim: usize,
) -> Result<Tensor<B, D>, Vec<Tensor<B, D>>> {
    let fits = |shapes: &[Vec<usize>]| {
        (1..=MAX_CAT).contains(&shapes.len())
            && dim < D
            && shapes
                .iter()
                .all(|s| s.len() == D && (0..D).all(|i| i == dim || s[i] == shapes[0][i]))
    };
    match downcast(tensors) {
        Downcast::Plain(ts) if fits(&ts.iter().map(shape).collect::<Vec<_>>()) => {
            Ok(to_b(cat_forward(&ts, dim)))
        }
        Downcast::Tracked(ts)
            if fits(&ts.iter().map(|t| shape(&t.primitive)).collect::<Vec<_>>()) =>
        {
            Ok(ad_to_b(cat_tracked(ts, dim)))
        }
        Downcast::Plain(ts) => Err(ts.into_iter().map(to_b).collect()),
        Downcast::Tracked(ts) => Err(ts.into_iter().map(ad_to_b).collect()),
        Downcast::Other(ts) => Err(ts),
    }
}

/// `t` as runs of `len` values, one per index of the dimensions before `dim`, `stride` apart: a channel
/// slice of an NCHW tensor is read in place (dim 1), anything else made contiguous.
fn runs(t: &FlexTensor, dim: usize) -> (FlexTensor, usize, usize) {
    let s = shape(t);
    let len = s[dim..].iter().product();
    if dim == 1 && s.len() == 4 {
        let (t, stride) = batch_strided(t);
        return (t, stride, len);
    }
    (t.to_contiguous(), len, len)
}

/// The inputs' runs one after another for each index before `dim`, those indices in parallel.
fn cat_forward(ts: &[FlexTensor], dim: usize) -> FlexTensor {
    let mut out_shape = shape(&ts[0]);
    out_shape[dim] = ts.iter().map(|t| shape(t)[dim]).sum();
    let outer: usize = out_shape[..dim].iter().product();
    let parts: Vec<(FlexTensor, usize, usize)> = ts.iter().map(|t| runs(t, dim)).collect();
    let total: usize = parts.iter().map(|p| p.2).sum();
    let (out, _) = par_vec(outer * total, total, |o, dst| {
        let mut at = 0;
        for (t, stride, len) in &parts {
            dst[at..at + len].copy_from_slice(&f32s_from_start(t)[o * stride..][..*len]);
            at += len;
        }
    });
    flex(out, &out_shape)
}

fn cat_tracked(ts: Vec<AdFlexTensor>, dim: usize) -> AdFlexTensor {
    macro_rules! with_n {
        ($($n:literal)*) => {
            match ts.len() {
                $($n => cat_n::<$n>(ts, dim),)*
                _ => unreachable!("try_cat takes 1..=MAX_CAT inputs"),
            }
        };
    }
    with_n!(1 2 3 4 5 6 7 8)
}

fn cat_n<const N: usize>(ts: Vec<AdFlexTensor>, dim: usize) -> AdFlexTensor {
    let out = cat_forward(
        &ts.iter().map(|t| t.primitive.clone()).collect::<Vec<_>>(),
        dim,
    );
    let sizes: [usize; N] = std::array::from_fn(|i| shape(&ts[i].primitive)[dim]);
    let nodes: [_; N] = std::array::from_fn(|i| ts[i].node.clone());
    match CatBackward::<N>
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((sizes, dim), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

#[derive(Debug)]
struct CatBackward<const N: usize>;

impl<const N: usize> Backward<Flex, N> for CatBackward<N> {
    /// Each input's size along the dimension, and the dimension.
    type State = ([usize; N], usize);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (sizes, dim) = ops.state;
        let (dout, stride, _) = runs(&grads.consume::<Flex>(&ops.node), dim);
        let mut grad_shape = shape(&dout);
        let outer: usize = grad_shape[..dim].iter().product();
        let inner: usize = grad_shape[dim + 1..].iter().product();
        let dout = f32s_from_start(&dout);
        let mut first = 0;
        for (node, size) in ops.parents.into_iter().zip(sizes) {
            let (start, len) = (first * inner, size * inner);
            first += size;
            let Some(node) = node else { continue };
            let (grad, _) = par_vec(outer * len, len, |o, g| {
                g.copy_from_slice(&dout[o * stride + start..][..len])
            });
            grad_shape[dim] = size;
            grads.register::<Flex>(node.id, flex(grad, &grad_shape));
        }
    }
}

/// `a + b` for two 4-D burn-flex `f32` tensors of one shape; `Err` hands them back.
pub fn try_add<B: Backend>(
    a: Tensor<B, 4>,
    b: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, (Tensor<B, 4>, Tensor<B, 4>)> {
    if a.dims() != b.dims() {
        return Err((a, b));
    }
    let [a, b] = match downcast(vec![a, b]) {
        Downcast::Plain(ts) => return Ok(to_b(add_forward(&ts[0], &ts[1]))),
        Downcast::Tracked(ts) => two(ts),
        Downcast::Other(ts) => {
            let [a, b] = two(ts);
            return Err((a, b));
        }
    };
    let out = add_forward(&a.primitive, &b.primitive);
    let out = match AddBackward
        .prepare::<NoCheckpointing>([a.node.clone(), b.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Ok(ad_to_b(out))
}

/// The two tensors that went in.
fn two<T>(ts: Vec<T>) -> [T; 2] {
    ts.try_into()
        .unwrap_or_else(|_| unreachable!("two tensors in, two out"))
}

fn add_forward(a: &FlexTensor, b: &FlexTensor) -> FlexTensor {
    let shape = dims(a);
    let [batch, c, h, w] = shape;
    let n = c * h * w;
    let (a, sa) = batch_strided(a);
    let (b, sb) = batch_strided(b);
    let (a, b) = (f32s_from_start(&a), f32s_from_start(&b));
    let (out, _) = par_vec(batch * n, n, |i, o| {
        for ((o, x), y) in o.iter_mut().zip(&a[i * sa..][..n]).zip(&b[i * sb..][..n]) {
            *o = x + y;
        }
    });
    flex(out, &shape)
}

#[derive(Debug)]
struct AddBackward;

impl Backward<Flex, 2> for AddBackward {
    type State = ();

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dout = grads.consume::<Flex>(&ops.node);
        for node in ops.parents.into_iter().flatten() {
            grads.register::<Flex>(node.id, dout.clone());
        }
    }
}

/// Nearest-neighbour upsampling by an integer factor `f` of a 4-D burn-flex `f32` tensor; `Err` hands it back.
pub fn try_upsample<B: Backend>(x: Tensor<B, 4>, f: usize) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    if f == 0 {
        return Err(x);
    }
    match downcast(vec![x]) {
        Downcast::Plain(mut ts) => Ok(to_b(upsample_forward(&ts.remove(0), f))),
        Downcast::Tracked(mut ts) => {
            let x = ts.remove(0);
            let shape = dims(&x.primitive);
            let out = upsample_forward(&x.primitive, f);
            let out = match UpsampleBackward
                .prepare::<NoCheckpointing>([x.node.clone()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish((shape, f), out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            };
            Ok(ad_to_b(out))
        }
        Downcast::Other(mut ts) => Err(ts.remove(0)),
    }
}

/// Each input pixel repeated `f` times along the row, each row `f` times; planes in parallel.
fn upsample_forward(x: &FlexTensor, f: usize) -> FlexTensor {
    let [batch, c, h, w] = dims(x);
    let (x, stride) = batch_strided(x);
    let x = f32s_from_start(&x);
    let (plane_in, plane_out) = (h * w, h * f * w * f);
    let (out, _) = par_vec(batch * c * plane_out, plane_out, |p, dst| {
        // a plane exists only if c > 0
        let src = &x[(p / c) * stride + (p % c) * plane_in..][..plane_in];
        for (row, out_rows) in src
            .chunks_exact(w.max(1))
            .zip(dst.chunks_exact_mut(w * f * f))
        {
            let (first, rest) = out_rows.split_at_mut(w * f);
            for (v, o) in row.iter().zip(first.chunks_exact_mut(f)) {
                o.fill(*v);
            }
            for copy in rest.chunks_exact_mut(w * f) {
                copy.copy_from_slice(first);
            }
        }
    });
    flex(out, &[batch, c, h * f, w * f])
}

#[derive(Debug)]
struct UpsampleBackward;

impl Backward<Flex, 1> for UpsampleBackward {
    /// The input's shape and the factor.
    type State = ([usize; 4], usize);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let ([batch, c, h, w], f) = ops.state;
        let (dout, stride) = batch_strided(&grads.consume::<Flex>(&ops.node));
        let Some(node) = ops.parents.into_iter().flatten().next() else {
            return;
        };
        let dout = f32s_from_start(&dout);
        let (plane_in, plane_out) = (h * w, h * f * w * f);
        // each input pixel's gradient is the sum of its f×f block, added row by row (onto par_vec's zeros)
        let (dx, _) = par_vec(batch * c * plane_in, plane_in, |p, g| {
            let src = &dout[(p / c) * stride + (p % c) * plane_out..][..plane_out];
            for (g_row, block) in g
                .chunks_exact_mut(w.max(1))
                .zip(src.chunks_exact(w * f * f))
            {
                for out_row in block.chunks_exact(w * f) {
                    for (gv, o) in g_row.iter_mut().zip(out_row.chunks_exact(f)) {
                        *gv += o.iter().sum::<f32>();
                    }
                }
            }
        });
        grads.register::<Flex>(node.id, flex(dx, &[batch, c, h, w]));
    }
}
