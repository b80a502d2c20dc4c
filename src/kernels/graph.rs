//! The model's graph ops that burn-flex runs slowly, as burn-flex ops with their own backward: concatenation
//! (along channels in C2f, SPPF and the neck's Concat; along anchors in the Detect head), the residual add
//! (Bottleneck), the neck's nearest-neighbour upsampling (which Burn's ops express as a broadcast that is then
//! copied element by element) and C2f's channel split (whose gradient goes into the concatenation's in place);
//! SPPF's max-pooling is in [`pool`]. Their gradients are summed through [`super::grad_sum`].
//!
//! Why: burn-flex runs these on the calling thread, and the inputs are often channel slices (C2f's split), which
//! its element-wise ops walk one element at a time through a strided iterator; their gradients (slices of the
//! concatenation's gradient) then make every later gradient sum take that path too. At 2 threads about a third
//! of a YOLOv8n train step was this single-threaded work (docs/benchmarks.md). Here each image's channel runs are
//! copied or added as contiguous slices, images in parallel, and the concatenation hands each input a contiguous
//! gradient.
//!
//! Float types: `f32`, `f16` and `bf16`, all inputs of one call in the same one (anything else takes Burn's ops).
//! A half-precision model gets the same speed-up as an `f32` one, so the ops work on the half values as burn-flex
//! stores them, never on an `f32` copy of a whole tensor (that would double the bytes these memory-bound copies
//! move). Concatenation and upsampling are copies, bit-exact in every type; the add and the upsampling's
//! gradient (a sum of f·f values) compute in `f32` and round once to the half type, nearest even, which is what
//! burn-flex's own half-precision add does. Gradients take their input's type.

use std::any::Any;

use super::half_slice::HalfSlice;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensorOps;
use burn::tensor::{DType, Tensor, TensorData};
use burn_flex::{Flex, FlexTensor};
use half::{bf16, f16};

use super::flex::{batch_strided_as_is, cast, flex, from_primitive, primitive, AdFlexTensor};
use super::grad_sum::{self, grad_key};
use super::par_vec_of;
use rayon::prelude::*;

/// The most inputs [`try_cat`] takes (C2f of a YOLOv8x has 1 + 6); more go to Burn's `cat`.
const MAX_CAT: usize = 8;

/// A float type as burn-flex stores it, with the little arithmetic these ops need. The copies are generic over
/// it; `f32` keeps its direct loops (every `f32` method below compiles to what the ops did before they took half
/// types), and the half types convert slices with `half`'s F16C path where the CPU has it.
trait Elem: bytemuck::Pod + Send + Sync + 'static {
    const ZERO: Self;

    /// From `t`'s first element to the end of its storage (for [`batch_strided_as_is`] views).
    fn from_start(t: &FlexTensor) -> &[Self];

    /// All of `t`'s storage, copied first if another tensor shares it.
    fn storage_mut(t: &mut FlexTensor) -> &mut [Self];

    fn tensor(values: Vec<Self>, shape: &[usize]) -> FlexTensor;

    /// `out = a + b`, each sum computed in `f32` and rounded once, as burn-flex's own add does.
    fn add(a: &[Self], b: &[Self], out: &mut [Self]);

    /// `out = out + b`, as [`Elem::add`].
    fn add_assign(out: &mut [Self], b: &[Self]);

    /// `values` in `f32`: themselves, or widened into `scratch` (which the caller reuses, so a row costs no
    /// allocation).
    fn widened<'a>(values: &'a [Self], scratch: &'a mut Vec<f32>) -> &'a [f32];

    /// `out` as the `f32` sums that `sum` adds up onto zeros: `out` itself in `f32`, else `f32` accumulators
    /// rounded once into `out` at the end.
    fn accumulate(out: &mut [Self], sum: impl FnOnce(&mut [f32]));
}

impl Elem for f32 {
    const ZERO: Self = 0.0;

    fn from_start(t: &FlexTensor) -> &[Self] {
        &t.storage::<f32>()[t.layout().start_offset()..]
    }

    fn storage_mut(t: &mut FlexTensor) -> &mut [Self] {
        t.storage_mut::<f32>()
    }

    fn tensor(values: Vec<Self>, shape: &[usize]) -> FlexTensor {
        flex(values, shape)
    }

    fn add(a: &[Self], b: &[Self], out: &mut [Self]) {
        for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
            *o = x + y;
        }
    }

    fn add_assign(out: &mut [Self], b: &[Self]) {
        for (o, y) in out.iter_mut().zip(b) {
            *o += y;
        }
    }

    fn widened<'a>(values: &'a [Self], _: &'a mut Vec<f32>) -> &'a [f32] {
        values
    }

    fn accumulate(out: &mut [Self], sum: impl FnOnce(&mut [f32])) {
        sum(out)
    }
}

/// Values per block that the half types' add widens on the stack.
const ADD_BLOCK: usize = 256;

macro_rules! half_elem {
    ($t:ty) => {
        impl Elem for $t {
            const ZERO: Self = <$t>::ZERO;

            fn from_start(t: &FlexTensor) -> &[Self] {
                &t.storage::<$t>()[t.layout().start_offset()..]
            }

            fn storage_mut(t: &mut FlexTensor) -> &mut [Self] {
                t.storage_mut::<$t>()
            }

            fn tensor(values: Vec<Self>, shape: &[usize]) -> FlexTensor {
                FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
            }

            fn add(a: &[Self], b: &[Self], out: &mut [Self]) {
                let (mut x, mut y) = ([0.0f32; ADD_BLOCK], [0.0f32; ADD_BLOCK]);
                for ((o, a), b) in out
                    .chunks_mut(ADD_BLOCK)
                    .zip(a.chunks(ADD_BLOCK))
                    .zip(b.chunks(ADD_BLOCK))
                {
                    let (x, y) = (&mut x[..o.len()], &mut y[..o.len()]);
                    a.widen_into(x);
                    b.widen_into(y);
                    for (x, y) in x.iter_mut().zip(y.iter()) {
                        *x += y;
                    }
                    o.round_from(x);
                }
            }

            fn add_assign(out: &mut [Self], b: &[Self]) {
                grad_sum::add_half_into(out, b)
            }

            fn widened<'a>(values: &'a [Self], scratch: &'a mut Vec<f32>) -> &'a [f32] {
                scratch.resize(values.len(), 0.0);
                values.widen_into(&mut scratch[..values.len()]);
                &scratch[..values.len()]
            }

            fn accumulate(out: &mut [Self], sum: impl FnOnce(&mut [f32])) {
                let mut acc = vec![0.0f32; out.len()];
                sum(&mut acc);
                out.round_from(&acc);
            }
        }
    };
}

half_elem!(f16);
half_elem!(bf16);

/// `$body` with `$t` the element type of `$dtype`, which must be one that [`kernel_dtype`] accepts.
macro_rules! with_elem {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            DType::F32 => {
                type $t = f32;
                $body
            }
            DType::F16 => {
                type $t = f16;
                $body
            }
            DType::BF16 => {
                type $t = bf16;
                $body
            }
            other => unreachable!("{other:?} was checked to be f32, f16 or bf16"),
        }
    };
}

mod pool;
pub use pool::try_max_pool_same;

/// The float types these ops take.
fn kernel_dtype(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F16 | DType::BF16)
}

/// `B`'s tensors as burn-flex ones (plain or under autodiff), all of one float type that [`kernel_dtype`]
/// accepts; otherwise handed back.
enum Downcast<B: Backend, const D: usize> {
    Plain(Vec<FlexTensor>),
    Tracked(Vec<AdFlexTensor>),
    Other(Vec<Tensor<B, D>>),
}

fn downcast<B: Backend, const D: usize>(tensors: Vec<Tensor<B, D>>) -> Downcast<B, D> {
    let prims: Vec<B::FloatTensorPrimitive> = tensors.into_iter().map(primitive).collect();
    // every primitive's float type when all are of one tensor type, then whether that is one float type we take
    let dtypes = |of: &dyn Fn(&dyn Any) -> Option<DType>| {
        prims
            .iter()
            .map(|p| of(p as &dyn Any))
            .collect::<Option<Vec<_>>>()
    };
    let one_kernel_dtype = |dtypes: Option<Vec<DType>>| {
        dtypes.is_some_and(|d| {
            d.first()
                .is_some_and(|&first| kernel_dtype(first) && d.iter().all(|&t| t == first))
        })
    };
    if one_kernel_dtype(dtypes(&|p| {
        p.downcast_ref::<FlexTensor>().map(FlexTensor::dtype)
    })) {
        return Downcast::Plain(prims.into_iter().map(same).collect());
    }
    if one_kernel_dtype(dtypes(&|p| {
        p.downcast_ref::<AdFlexTensor>()
            .map(|t| t.primitive.dtype())
    })) {
        return Downcast::Tracked(prims.into_iter().map(same).collect());
    }
    Downcast::Other(prims.into_iter().map(from_primitive).collect())
}

/// `value` as the type it was just checked to be.
pub(super) fn same<T: 'static, U: 'static>(value: T) -> U {
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

/// `grad` in `dtype`, the type of the input it is the gradient of. Burn's autodiff hands an op the gradient in
/// its output's type, which is already `dtype` here, so this is a guard (through Burn's cast) rather than a path
/// that runs.
fn in_dtype(grad: FlexTensor, dtype: DType) -> FlexTensor {
    if grad.dtype() == dtype {
        grad
    } else {
        Flex::float_cast(grad, dtype.into())
    }
}

/// `cat(tensors, dim)` for burn-flex tensors of one float type (`f32`, `f16` or `bf16`), equal in every other
/// dimension; `Err` hands them back.
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
        let (t, stride) = batch_strided_as_is(t);
        return (t, stride, len);
    }
    (t.to_contiguous(), len, len)
}

/// The inputs' runs one after another for each index before `dim`, those indices in parallel.
fn cat_forward(ts: &[FlexTensor], dim: usize) -> FlexTensor {
    with_elem!(ts[0].dtype(), T => cat_forward_of::<T>(ts, dim))
}

fn cat_forward_of<T: Elem>(ts: &[FlexTensor], dim: usize) -> FlexTensor {
    let mut out_shape = shape(&ts[0]);
    out_shape[dim] = ts.iter().map(|t| shape(t)[dim]).sum();
    let outer: usize = out_shape[..dim].iter().product();
    let parts: Vec<(FlexTensor, usize, usize)> = ts.iter().map(|t| runs(t, dim)).collect();
    let total: usize = parts.iter().map(|p| p.2).sum();
    let (out, _) = par_vec_of(outer * total, total, T::ZERO, |o, dst| {
        let mut at = 0;
        for (t, stride, len) in &parts {
            dst[at..at + len].copy_from_slice(&T::from_start(t)[o * stride..][..*len]);
            at += len;
        }
    });
    T::tensor(out, &out_shape)
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
    let dtype = out.dtype();
    match CatBackward::<N>
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((sizes, dim, dtype), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

#[derive(Debug)]
struct CatBackward<const N: usize>;

impl<const N: usize> Backward<Flex, N> for CatBackward<N> {
    /// Each input's size along the dimension, the dimension, and the inputs' float type.
    type State = ([usize; N], usize, DType);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (sizes, dim, dtype) = ops.state;
        let dout = in_dtype(grads.consume::<Flex>(&ops.node), dtype);
        let (dout, stride, _) = runs(&dout, dim);
        let mut grad_shape = shape(&dout);
        let outer: usize = grad_shape[..dim].iter().product();
        let inner: usize = grad_shape[dim + 1..].iter().product();
        let mut first = 0;
        for (node, size) in ops.parents.into_iter().zip(sizes) {
            let (start, len) = (first * inner, size * inner);
            first += size;
            let Some(node) = node else { continue };
            grad_shape[dim] = size;
            let grad = with_elem!(dtype, T => {
                let dout = T::from_start(&dout);
                let (grad, _) = par_vec_of(outer * len, len, T::ZERO, |o, g| {
                    g.copy_from_slice(&dout[o * stride + start..][..len])
                });
                T::tensor(grad, &grad_shape)
            });
            grad_sum::register(grads, &grad_key!(&node), grad);
        }
    }
}

/// `a + b` for two 4-D burn-flex tensors of one shape and one float type (`f32`, `f16` or `bf16`); `Err` hands
/// them back.
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
    let dtype = out.dtype();
    let out = match AddBackward
        .prepare::<NoCheckpointing>([a.node.clone(), b.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(dtype, out),
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
    with_elem!(a.dtype(), T => add_forward_of::<T>(a, b))
}

fn add_forward_of<T: Elem>(a: &FlexTensor, b: &FlexTensor) -> FlexTensor {
    let shape = dims(a);
    let [batch, c, h, w] = shape;
    let n = c * h * w;
    let (a, sa) = batch_strided_as_is(a);
    let (b, sb) = batch_strided_as_is(b);
    let (a, b) = (T::from_start(&a), T::from_start(&b));
    let (out, _) = par_vec_of(batch * n, n, T::ZERO, |i, o| {
        T::add(&a[i * sa..][..n], &b[i * sb..][..n], o)
    });
    T::tensor(out, &shape)
}

#[derive(Debug)]
struct AddBackward;

impl Backward<Flex, 2> for AddBackward {
    /// The inputs' float type.
    type State = DType;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dout = in_dtype(grads.consume::<Flex>(&ops.node), ops.state);
        for node in ops.parents.into_iter().flatten() {
            grad_sum::register(grads, &grad_key!(&node), dout.clone());
        }
    }
}

/// Channels `start..start + len` of a 4-D burn-flex tensor (`f32`, `f16` or `bf16`), as a view like Burn's
/// `narrow`; `Err` hands it back.
///
/// Why our own: C2f splits its `cv1` output and also concatenates all of it, so the output gets two gradients.
/// Burn's slice backward writes the half's gradient into a zero tensor of the whole shape, which
/// `Gradients::register` then adds to the concatenation's gradient: a full-size add (element by element in
/// `f16`) mostly of zeros. Here the half's gradient is added into the held gradient's channel range in place.
pub fn try_narrow_channels<B: Backend>(
    x: Tensor<B, 4>,
    start: usize,
    len: usize,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    if start + len > x.dims()[1] {
        return Err(x);
    }
    match downcast(vec![x]) {
        Downcast::Plain(mut ts) => Ok(to_b(ts.remove(0).narrow(1, start, len))),
        Downcast::Tracked(mut ts) => {
            let x = ts.remove(0);
            let shape = dims(&x.primitive);
            let out = x.primitive.narrow(1, start, len);
            let dtype = out.dtype();
            let out = match NarrowBackward
                .prepare::<NoCheckpointing>([x.node.clone()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish((shape, start, dtype), out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            };
            Ok(ad_to_b(out))
        }
        Downcast::Other(mut ts) => Err(ts.remove(0)),
    }
}

#[derive(Debug)]
struct NarrowBackward;

impl Backward<Flex, 1> for NarrowBackward {
    /// The input's shape, the first channel, and the float type.
    type State = ([usize; 4], usize, DType);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (shape, start, dtype) = ops.state;
        let dout = in_dtype(grads.consume::<Flex>(&ops.node), dtype);
        let Some(node) = ops.parents.into_iter().flatten().next() else {
            return;
        };
        let key = grad_key!(&node);
        let held = grad_sum::take(grads, &key);
        let dx = with_elem!(dtype, T => narrow_backward_of::<T>(&dout, held, shape, start, dtype));
        grads.register::<Flex>(node.id, dx);
    }
}

/// The input's gradient: `held` (the gradient its other readers gave, when there is one of this type and
/// shape) with `dout` added into channels `start..`, else `dout` there and zeros elsewhere.
fn narrow_backward_of<T: Elem>(
    dout: &FlexTensor,
    held: Option<FlexTensor>,
    shape: [usize; 4],
    start: usize,
    dtype: DType,
) -> FlexTensor {
    let [batch, c, h, w] = shape;
    let len = dims(dout)[1];
    let run = len * h * w;
    let first = start * h * w;
    let (dout, stride) = batch_strided_as_is(dout);
    let dout = T::from_start(&dout);
    let image = c * h * w;
    match held {
        Some(held) if held.dtype() == dtype && held.layout().shape().to_vec() == shape => {
            let mut g = held.to_contiguous();
            let (begin, end) = g
                .layout()
                .contiguous_offsets()
                .unwrap_or_else(|| unreachable!("made contiguous"));
            T::storage_mut(&mut g)[begin..end]
                .par_chunks_mut(image.max(1))
                .enumerate()
                .for_each(|(i, img)| {
                    T::add_assign(&mut img[first..][..run], &dout[i * stride..][..run])
                });
            g
        }
        held => {
            let (out, _) = par_vec_of(batch * image, image, T::ZERO, |i, img| {
                img[first..][..run].copy_from_slice(&dout[i * stride..][..run])
            });
            let g = T::tensor(out, &shape);
            match held {
                Some(held) => Flex::float_add(g, held),
                None => g,
            }
        }
    }
}

/// Nearest-neighbour upsampling by an integer factor `f` of a 4-D burn-flex tensor (`f32`, `f16` or `bf16`);
/// `Err` hands it back.
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
            let dtype = out.dtype();
            let out = match UpsampleBackward
                .prepare::<NoCheckpointing>([x.node.clone()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish((shape, f, dtype), out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            };
            Ok(ad_to_b(out))
        }
        Downcast::Other(mut ts) => Err(ts.remove(0)),
    }
}

/// Each input pixel repeated `f` times along the row, each row `f` times; planes in parallel.
fn upsample_forward(x: &FlexTensor, f: usize) -> FlexTensor {
    with_elem!(x.dtype(), T => upsample_forward_of::<T>(x, f))
}

fn upsample_forward_of<T: Elem>(x: &FlexTensor, f: usize) -> FlexTensor {
    let [batch, c, h, w] = dims(x);
    let (x, stride) = batch_strided_as_is(x);
    let x = T::from_start(&x);
    let (plane_in, plane_out) = (h * w, h * f * w * f);
    let (out, _) = par_vec_of(batch * c * plane_out, plane_out, T::ZERO, |p, dst| {
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
    T::tensor(out, &[batch, c, h * f, w * f])
}

#[derive(Debug)]
struct UpsampleBackward;

impl Backward<Flex, 1> for UpsampleBackward {
    /// The input's shape, the factor, and the input's float type.
    type State = ([usize; 4], usize, DType);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (shape, f, dtype) = ops.state;
        let dout = in_dtype(grads.consume::<Flex>(&ops.node), dtype);
        let Some(node) = ops.parents.into_iter().flatten().next() else {
            return;
        };
        let dx = with_elem!(dtype, T => upsample_backward_of::<T>(&dout, shape, f));
        grad_sum::register(grads, &grad_key!(&node), dx);
    }
}

/// Each input pixel's gradient: the sum of its f×f block of `dout`, in `f32` (added row by row onto zeros),
/// rounded once in a half type; planes in parallel.
fn upsample_backward_of<T: Elem>(
    dout: &FlexTensor,
    [batch, c, h, w]: [usize; 4],
    f: usize,
) -> FlexTensor {
    let (dout, stride) = batch_strided_as_is(dout);
    let dout = T::from_start(&dout);
    let (plane_in, plane_out) = (h * w, h * f * w * f);
    let (dx, _) = par_vec_of(batch * c * plane_in, plane_in, T::ZERO, |p, g| {
        let src = &dout[(p / c) * stride + (p % c) * plane_out..][..plane_out];
        let mut scratch = Vec::new();
        T::accumulate(g, |g| {
            for (g_row, block) in g
                .chunks_exact_mut(w.max(1))
                .zip(src.chunks_exact(w * f * f))
            {
                for out_row in block.chunks_exact(w * f) {
                    let out_row = T::widened(out_row, &mut scratch);
                    for (gv, o) in g_row.iter_mut().zip(out_row.chunks_exact(f)) {
                        *gv += o.iter().sum::<f32>();
                    }
                }
            }
        });
    });
    T::tensor(dx, &[batch, c, h, w])
}
