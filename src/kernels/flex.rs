//! The `Conv` block (conv → BatchNorm → optional SiLU) as one burn-flex op, with its own backward on
//! `Autodiff<Flex>`: Burn's backend-extension pattern, reached without changing the model's `B: Backend` bounds.
//!
//! Why downcast: the model is generic over any backend, and only burn-flex (plain, or under autodiff) has these
//! kernels. [`try_conv_bn_act`] looks at the concrete tensor primitive behind `B`; when it is burn-flex's, with
//! a geometry the kernels cover, it runs them, and otherwise hands the tensors back untouched for the stock
//! path.
//!
//! Half precision: `f16` and `bf16` inputs and weights are read in their own type by im2col (or in place, for
//! 3×3 stride-1 convs), and converted only while [`half_gemm`] packs them (bf16 multiplied on AMX tiles or with
//! `VDPBF16PS` where the CPU has them, `f16` widened with F16C and multiplied in `f32`), always accumulating in
//! `f32`. Where images run one per thread, a half conv's `f32` output never reaches memory: the GEMM hands each
//! cache-sized block to [`bn_blocks`], which takes BatchNorm's moments from it and rounds it (training), or
//! normalises, activates and rounds it (inference). What the backward keeps (the input and the conv output
//! before BatchNorm) stays in the caller's type, so a half-precision model holds half the activation memory of
//! an `f32` one. Where the conv's gradients multiply `bf16` products, BatchNorm's backward writes `dy` in `bf16`
//! (the GEMMs would round it as they pack it anyway). On a CPU without AVX-512 (`half_gemm::available` false)
//! half tensors are widened to `f32` at the op's boundary and `gemm` multiplies them, as before.

use std::any::Any;
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::backend::{Backend, BackendTypes};
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use burn_flex::{Flex, FlexTensor};

use half::{bf16, f16};

use super::bn_act::{self, BatchStats, Floats};
use super::bn_blocks;
use super::conv::{self, ConvGeometry};
use super::grad_sum::{self, grad_key};
use super::half_gemm;

/// burn-flex's float primitive under autodiff (the type is not exported by name).
pub(super) type AdFlexTensor = <Autodiff<Flex> as BackendTypes>::FloatTensorPrimitive;

/// Whether `B` is burn-flex, plain or under autodiff: the backends these kernels run on.
pub(super) fn is_flex<B: Backend>() -> bool {
    let id = std::any::TypeId::of::<B::FloatTensorPrimitive>();
    id == std::any::TypeId::of::<FlexTensor>() || id == std::any::TypeId::of::<AdFlexTensor>()
}

/// Moves `value` into type `U` when `T` is `U`, else hands it back.
pub(super) fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let boxed: Box<dyn Any> = Box::new(value);
    match boxed.downcast::<U>() {
        Ok(u) => Ok(*u),
        Err(boxed) => match boxed.downcast::<T>() {
            Ok(t) => Err(*t),
            Err(_) => unreachable!("a Box<dyn Any> made from a T downcasts to T"),
        },
    }
}

pub(super) fn primitive<B: Backend, const D: usize>(t: Tensor<B, D>) -> B::FloatTensorPrimitive {
    t.into_primitive().tensor()
}

pub(super) fn from_primitive<B: Backend, const D: usize>(
    p: B::FloatTensorPrimitive,
) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

/// A contiguous `f32` tensor: no copy when it already is one.
fn contiguous(t: &FlexTensor) -> FlexTensor {
    widen(t.to_contiguous())
}

/// The float types the kernels take: `f32`, and the half types they widen.
pub(super) fn supported(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F16 | DType::BF16)
}

fn widen(t: FlexTensor) -> FlexTensor {
    super::cast::to_f32(&t)
}

/// Whether a half tensor reaches the conv kernels in its own type (else it is widened to `f32` first).
fn half_in_place(dtype: DType) -> bool {
    matches!(dtype, DType::F16 | DType::BF16) && half_gemm::available()
}

/// [`batch_strided`] for the conv kernels: a half tensor stays in its type where [`half_in_place`].
fn conv_view(t: &FlexTensor) -> (FlexTensor, usize) {
    if half_in_place(t.dtype()) {
        batch_strided_as_is(t)
    } else {
        batch_strided(t)
    }
}

/// A weight for the conv kernels: contiguous, in the input's half type where [`half_in_place`] and the two
/// types agree, else `f32`.
fn conv_weight(w: &FlexTensor, x_dtype: DType) -> FlexTensor {
    if half_in_place(x_dtype) && w.dtype() == x_dtype {
        w.to_contiguous()
    } else {
        contiguous(w)
    }
}

/// The elements of `t` (of type `E`) from its first to the end of its storage.
fn from_start<E: burn::tensor::Element + bytemuck::Pod>(t: &FlexTensor) -> &[E] {
    &t.storage::<E>()[t.layout().start_offset()..]
}

/// The elements of a contiguous `t` of type `E`.
fn elems<E: burn::tensor::Element + bytemuck::Pod>(t: &FlexTensor) -> &[E] {
    let start = t.layout().start_offset();
    &t.storage::<E>()[start..start + t.layout().num_elements()]
}

/// The conv output of `x` (from [`conv_view`], images `x_stride` apart) and `w` (from [`conv_weight`]). A pair
/// of different types (an `f32` weight under a half input, which the model never makes) multiplies in `f32`.
fn conv_forward(g: &ConvGeometry, x: &FlexTensor, x_stride: usize, w: &FlexTensor) -> Vec<f32> {
    match (x.dtype(), w.dtype()) {
        (DType::BF16, DType::BF16) => {
            conv::forward_strided(g, from_start::<bf16>(x), x_stride, elems::<bf16>(w))
        }
        (DType::F16, DType::F16) => {
            conv::forward_strided(g, from_start::<f16>(x), x_stride, elems::<f16>(w))
        }
        (DType::F32, DType::F32) => conv::forward_strided(g, f32s_from_start(x), x_stride, f32s(w)),
        _ => {
            let (x, x_stride) = batch_strided(x);
            conv::forward_strided(g, f32s_from_start(&x), x_stride, f32s(&contiguous(w)))
        }
    }
}

/// `dx` from the saved weight (any float type) and `dy`.
fn conv_backward_input<D: half_gemm::Elem>(g: &ConvGeometry, w: &FlexTensor, dy: &[D]) -> Vec<f32> {
    let w = conv_weight(w, w.dtype());
    match w.dtype() {
        DType::BF16 => conv::backward_input(g, elems::<bf16>(&w), dy),
        DType::F16 => conv::backward_input(g, elems::<f16>(&w), dy),
        _ => conv::backward_input(g, f32s(&w), dy),
    }
}

/// `dw` from the saved input (any float type, any view) and `dy`.
fn conv_backward_weight<D: half_gemm::Elem>(
    g: &ConvGeometry,
    x: &FlexTensor,
    dy: &[D],
    dw: &mut [f32],
) {
    let (x, x_stride) = conv_view(x);
    match x.dtype() {
        DType::BF16 => conv::backward_weight_strided(g, from_start::<bf16>(&x), x_stride, dy, dw),
        DType::F16 => conv::backward_weight_strided(g, from_start::<f16>(&x), x_stride, dy, dw),
        _ => conv::backward_weight_strided(g, f32s_from_start(&x), x_stride, dy, dw),
    }
}

/// A contiguous tensor's values for the plane-wise kernels, in their own float type.
fn floats(t: &FlexTensor) -> Floats<'_> {
    Floats::of(t).unwrap_or_else(|| unreachable!("a contiguous f32, f16 or bf16 tensor"))
}

/// Half values (row-major `shape`) as a tensor of their type.
fn half_data<H: burn::tensor::Element>(values: Vec<H>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

/// `values` (f32, row-major `shape`) as a tensor of `dtype`.
fn narrow(values: Vec<f32>, shape: &[usize], dtype: DType) -> FlexTensor {
    super::cast::from_f32(values, shape, dtype)
}

/// An NCHW tensor whose images are contiguous but may sit apart (a channel slice): the tensor itself and the
/// distance between images, or a contiguous copy in the same float type when the layout is anything else.
pub(super) fn batch_strided_as_is(t: &FlexTensor) -> (FlexTensor, usize) {
    let layout = t.layout();
    let dims = layout.shape().to_vec();
    let strides = layout.strides();
    if dims.len() == 4 {
        let [_, c, h, w] = [dims[0], dims[1], dims[2], dims[3]];
        let inner = strides[3] == 1 && strides[2] == w as isize && strides[1] == (h * w) as isize;
        if inner && strides[0] >= (c * h * w) as isize {
            return (t.clone(), strides[0] as usize);
        }
    }
    let stride = dims.iter().skip(1).product();
    (t.to_contiguous(), stride)
}

/// [`batch_strided_as_is`] in `f32`: a half tensor is widened into a contiguous copy.
pub(super) fn batch_strided(t: &FlexTensor) -> (FlexTensor, usize) {
    if t.dtype() == DType::F32 {
        return batch_strided_as_is(t);
    }
    let stride = t.layout().shape().iter().skip(1).product();
    (contiguous(t), stride)
}

/// From the tensor's first element to the end of its storage (for [`batch_strided`] views).
pub(super) fn f32s_from_start(t: &FlexTensor) -> &[f32] {
    &t.storage::<f32>()[t.layout().start_offset()..]
}

pub(super) fn f32s(t: &FlexTensor) -> &[f32] {
    let len = t.layout().num_elements();
    let start = t.layout().start_offset();
    &t.storage::<f32>()[start..start + len]
}

pub(super) fn flex(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

fn to_vec<B: Backend>(t: Tensor<B, 1>) -> Option<Vec<f32>> {
    t.into_data().convert::<f32>().to_vec::<f32>().ok()
}

/// The geometry of `conv` on an input of `shape`, when our kernels cover it (symmetric explicit padding or
/// none, dilation 1, and a bias exactly when `with_bias`).
fn geometry<B: Backend>(
    conv: &Conv2d<B>,
    shape: &[usize],
    with_bias: bool,
) -> Option<ConvGeometry> {
    let [batch, c_in, h, w] = <[usize; 4]>::try_from(shape).ok()?;
    let pad = match conv.padding {
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            [top, left]
        }
        _ => return None,
    };
    let [c_out, cin_g, kh, kw] = conv.weight.shape().dims::<4>();
    let g = ConvGeometry {
        batch,
        c_in,
        h,
        w,
        c_out,
        kh,
        kw,
        stride: conv.stride,
        pad,
        groups: conv.groups,
    };
    let fits = conv.dilation == [1, 1]
        && conv.bias.is_some() == with_bias
        && g.groups >= 1
        && c_in == cin_g * g.groups
        && c_out % g.groups == 0
        && h + 2 * pad[0] >= kh
        && w + 2 * pad[1] >= kw
        && g.stride[0] >= 1
        && g.stride[1] >= 1;
    fits.then_some(g)
}

/// Runs the fused block when `x`'s backend is burn-flex in `f32`; `Err(x)` otherwise.
pub fn try_conv_bn_act<B: Backend>(
    conv: &Conv2d<B>,
    bn: &BatchNorm<B>,
    act: bool,
    x: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let Some(g) = geometry(conv, &x.dims(), false) else {
        return Err(x);
    };
    let device = x.device();
    let x_prim = primitive(x);
    let x_prim = match cast::<B::FloatTensorPrimitive, FlexTensor>(x_prim) {
        Ok(x) if supported(x.dtype()) => {
            return Ok(eval(conv, bn, act, g, x));
        }
        Ok(x) => {
            return Err(from_primitive(
                cast(x).unwrap_or_else(|_| unreachable!("the same type")),
            ))
        }
        Err(other) => other,
    };
    match cast::<B::FloatTensorPrimitive, AdFlexTensor>(x_prim) {
        Ok(x) if supported(x.primitive.dtype()) => Ok(train(conv, bn, act, g, x, &device)),
        Ok(x) => Err(from_primitive(
            cast(x).unwrap_or_else(|_| unreachable!("the same type")),
        )),
        Err(other) => Err(from_primitive(other)),
    }
}

/// Inference: the conv, then BatchNorm on its running statistics and SiLU in one pass over the output.
fn eval<B: Backend>(
    conv: &Conv2d<B>,
    bn: &BatchNorm<B>,
    act: bool,
    g: ConvGeometry,
    x: FlexTensor,
) -> Tensor<B, 4> {
    let dtype = x.dtype();
    let w = conv_weight(&param_flex(conv.weight.val()), dtype);
    let (x, x_stride) = conv_view(&x);
    let c = g.c_out;
    let (gamma, beta) = (values(bn.gamma.val(), c), values(bn.beta.val(), c));
    let (mean, var) = (
        values(bn.running_mean.value(), c),
        values(bn.running_var.value(), c),
    );
    let scale: Vec<f32> = (0..c)
        .map(|i| (f64::from(gamma[i]) / (f64::from(var[i]) + bn.epsilon).sqrt()) as f32)
        .collect();
    let shift: Vec<f32> = (0..c).map(|i| beta[i] - mean[i] * scale[i]).collect();
    let shape = [g.batch, c, g.out_h(), g.out_w()];
    let blocks = |x: &FlexTensor, w: &FlexTensor| match (x.dtype(), w.dtype()) {
        (DType::BF16, DType::BF16) if conv::blocks_apply::<bf16>(&g) => {
            let (x, w) = (from_start::<bf16>(x), elems::<bf16>(w));
            Some(half_data(
                bn_blocks::eval(&g, x, x_stride, w, &scale, &shift, act),
                &shape,
            ))
        }
        (DType::F16, DType::F16) if conv::blocks_apply::<f16>(&g) => {
            let (x, w) = (from_start::<f16>(x), elems::<f16>(w));
            Some(half_data(
                bn_blocks::eval(&g, x, x_stride, w, &scale, &shift, act),
                &shape,
            ))
        }
        _ => None,
    };
    let out = blocks(&x, &w).unwrap_or_else(|| {
        let mut y = conv_forward(&g, &x, x_stride, &w);
        bn_act::scale_shift_act_in_place(&mut y, c, g.out_hw(), &scale, &shift, act);
        narrow(y, &shape, dtype)
    });
    from_primitive(cast(out).unwrap_or_else(|_| unreachable!("B's primitive is FlexTensor here")))
}

/// A parameter's burn-flex tensor, whether the model is on `Flex` or `Autodiff<Flex>`.
fn param_flex<B: Backend, const D: usize>(t: Tensor<B, D>) -> FlexTensor {
    match cast::<B::FloatTensorPrimitive, FlexTensor>(primitive(t)) {
        Ok(t) => t,
        Err(p) => match cast::<B::FloatTensorPrimitive, AdFlexTensor>(p) {
            Ok(t) => t.primitive,
            Err(_) => unreachable!("the input was burn-flex, so the model's parameters are too"),
        },
    }
}

fn values<B: Backend>(t: Tensor<B, 1>, len: usize) -> Vec<f32> {
    to_vec(t)
        .filter(|v| v.len() == len)
        .unwrap_or_else(|| vec![0.0; len])
}

/// What the backward pass of the fused block needs.
#[derive(Debug, Clone)]
struct ConvBnActState {
    /// The input: in `f32`, as [`batch_strided`] gave it; in a half type, as the caller gave it.
    x: FlexTensor,
    w: FlexTensor,
    /// The conv output before BatchNorm, in the input's float type.
    y: FlexTensor,
    stats: Arc<BatchStats>,
    gamma: Arc<Vec<f32>>,
    beta: Arc<Vec<f32>>,
    geometry: ConvGeometry,
    act: bool,
    /// The caller's float types of x, w and the BatchNorm affine, for the gradients.
    dtypes: [DType; 3],
}

#[derive(Debug)]
struct ConvBnActBackward;

impl Backward<Flex, 4> for ConvBnActBackward {
    type State = ConvBnActState;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_gamma, node_beta] = ops.parents;
        let dout = grads.consume::<Flex>(&ops.node).to_contiguous();
        let s = ops.state;
        let g = s.geometry;
        let [x_dtype, w_dtype, bn_dtype] = s.dtypes;
        // y and dout are read plane by plane in their own type (no f32 copy of either), then freed before the
        // conv gradients allocate theirs.
        let (y, dout_f) = (floats(&s.y), floats(&dout));
        let (c, hw) = (g.c_out, g.out_hw());
        let (gamma, beta) = (&s.gamma, &s.beta);
        // The conv's gradient GEMMs round dy to bf16 as they pack it when they multiply bf16 products: then
        // BatchNorm's backward rounds it as it writes it instead, and the GEMMs read half the bytes.
        let bf16_dy = x_dtype == DType::BF16
            && w_dtype == DType::BF16
            && half_in_place(DType::BF16)
            && half_gemm::bf16_compute() != half_gemm::Compute::F32Fma;
        let (dy, dgamma, dbeta) = if bf16_dy {
            let (dy, dgamma, dbeta) =
                bn_act::backward_rounded::<bf16>(y, dout_f, c, hw, &s.stats, gamma, beta, s.act);
            (Dy::Bf16(dy), dgamma, dbeta)
        } else {
            let bn = bn_act::backward(y, dout_f, c, hw, &s.stats, gamma, beta, s.act);
            (Dy::F32(bn.dy), bn.dgamma, bn.dbeta)
        };
        drop(dout);
        drop(s.y);
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, narrow(dgamma, &[g.c_out], bn_dtype));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, narrow(dbeta, &[g.c_out], bn_dtype));
        }
        // A half input's gradient rounded image by image as the GEMMs finish it, summed there with what the
        // input already holds; else (an f32 input, or a case it declines) the f32 gradient is rounded below.
        let key_x = node_x.as_ref().map(|node| grad_key!(node));
        let mut dx_done = false;
        if let (Some(key), DType::F16 | DType::BF16) = (&key_x, x_dtype) {
            let held = grads.get::<Flex>(key).map(|held| held.to_contiguous());
            let rounded = match &dy {
                Dy::F32(dy) => dx_rounded(&g, &s.w, dy, held.as_ref(), x_dtype),
                Dy::Bf16(dy) => dx_rounded(&g, &s.w, dy, held.as_ref(), x_dtype),
            };
            if let Some(dx) = rounded {
                drop(held);
                let _ = grads.remove::<Flex>(key);
                grads.register::<Flex>(key.node.id, dx);
                dx_done = true;
            }
        }
        let wanted = [node_x.is_some() && !dx_done, node_w.is_some()];
        let [dx, dw] = match &dy {
            Dy::F32(dy) => conv_grads(&g, &s.x, &s.w, dy, wanted),
            Dy::Bf16(dy) => conv_grads(&g, &s.x, &s.w, dy, wanted),
        };
        drop(dy);
        if let (Some(node), Some(dx)) = (node_x, dx) {
            let shape = [g.batch, g.c_in, g.h, g.w];
            grad_sum::register_f32(grads, &grad_key!(&node), dx, &shape, x_dtype);
        }
        if let (Some(node), Some(dw)) = (node_w, dw) {
            let shape = s.w.layout().shape().to_vec();
            grads.register::<Flex>(node.id, narrow(dw, &shape, w_dtype));
        }
    }
}

/// The conv's input gradient in the input's half type `dtype`, with `held` (the input's gradient so far, of its
/// shape) added: [`conv::backward_input_rounded`]. `None` for an `f32` input, weights of another type, a held
/// gradient it cannot read in place, or where that declines.
fn dx_rounded<D: half_gemm::Elem>(
    g: &ConvGeometry,
    w: &FlexTensor,
    dy: &[D],
    held: Option<&FlexTensor>,
    dtype: DType,
) -> Option<FlexTensor> {
    let shape = [g.batch, g.c_in, g.h, g.w];
    let held = match held {
        Some(h) if h.layout().shape().to_vec() != shape => return None,
        Some(h) => Some(Floats::of(h)?),
        None => None,
    };
    if !half_in_place(dtype) {
        return None;
    }
    let w = conv_weight(w, dtype);
    match (dtype, w.dtype()) {
        (DType::F16, DType::F16) => {
            conv::backward_input_rounded::<f16, D, f16>(g, elems::<f16>(&w), dy, held)
                .map(|dx| half_data(dx, &shape))
        }
        (DType::BF16, DType::BF16) => {
            conv::backward_input_rounded::<bf16, D, bf16>(g, elems::<bf16>(&w), dy, held)
                .map(|dx| half_data(dx, &shape))
        }
        _ => None,
    }
}

/// BatchNorm's input gradient, in the type the conv's gradient GEMMs read.
enum Dy {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
}

/// The conv's input and weight gradients from `dy`, each where `wanted`.
fn conv_grads<D: half_gemm::Elem>(
    g: &ConvGeometry,
    x: &FlexTensor,
    w: &FlexTensor,
    dy: &[D],
    [want_dx, want_dw]: [bool; 2],
) -> [Option<Vec<f32>>; 2] {
    let dx = want_dx.then(|| conv_backward_input(g, w, dy));
    let dw = want_dw.then(|| {
        let mut dw = vec![0.0f32; g.weight_len()];
        conv_backward_weight(g, x, dy, &mut dw);
        dw
    });
    [dx, dw]
}

/// Training: batch statistics, the running statistics updated as PyTorch does, and a graph node whose
/// backward is [`ConvBnActBackward`].
fn train<B: Backend>(
    conv: &Conv2d<B>,
    bn: &BatchNorm<B>,
    act: bool,
    g: ConvGeometry,
    x: AdFlexTensor,
    device: &B::Device,
) -> Tensor<B, 4> {
    let w = match cast::<B::FloatTensorPrimitive, AdFlexTensor>(primitive(conv.weight.val())) {
        Ok(w) => w,
        Err(_) => unreachable!("the input was Autodiff<Flex>, so the weight is too"),
    };
    let gamma = ad(bn.gamma.val());
    let beta = ad(bn.beta.val());
    let dtypes = [
        x.primitive.dtype(),
        w.primitive.dtype(),
        gamma.primitive.dtype(),
    ];
    let (xc, x_stride) = conv_view(&x.primitive);
    let wc = conv_weight(&w.primitive, dtypes[0]);
    let c = g.c_out;
    let hw = g.out_hw();
    let gamma_v = contiguous(&gamma.primitive);
    let beta_v = contiguous(&beta.primitive);
    let (gamma_v, beta_v) = (f32s(&gamma_v).to_vec(), f32s(&beta_v).to_vec());
    let out_shape = [g.batch, c, g.out_h(), g.out_w()];
    let eps = bn.epsilon;
    let blocks = |x: &FlexTensor, w: &FlexTensor| {
        fn t<H: burn::tensor::Element>(
            t: bn_blocks::Train<H>,
            shape: &[usize],
        ) -> (FlexTensor, FlexTensor, BatchStats) {
            (half_data(t.out, shape), half_data(t.y, shape), t.stats)
        }
        match (x.dtype(), w.dtype()) {
            (DType::BF16, DType::BF16) if conv::blocks_apply::<bf16>(&g) => {
                let (x, w) = (from_start::<bf16>(x), elems::<bf16>(w));
                let r = bn_blocks::train(&g, x, x_stride, w, &gamma_v, &beta_v, eps, act);
                Some(t(r, &out_shape))
            }
            (DType::F16, DType::F16) if conv::blocks_apply::<f16>(&g) => {
                let (x, w) = (from_start::<f16>(x), elems::<f16>(w));
                let r = bn_blocks::train(&g, x, x_stride, w, &gamma_v, &beta_v, eps, act);
                Some(t(r, &out_shape))
            }
            _ => None,
        }
    };
    let (out, y, stats) = blocks(&xc, &wc).unwrap_or_else(|| {
        let y = conv_forward(&g, &xc, x_stride, &wc);
        let stats = bn_act::batch_stats(&y, c, hw, eps);
        let (scale, shift) = stats.scale_shift(&gamma_v, &beta_v);
        // In a half type each block is rounded as it is computed (no f32 copy of the whole output), and so is
        // the conv output the backward keeps.
        let (out, y) =
            super::cast::planes_and_source_in(dtypes[0], &out_shape, hw, y, |y, at, o| {
                bn_act::scale_shift_act_at(y, c, hw, &scale, &shift, act, at, o)
            });
        (out, y, stats)
    });
    let saved_x = saved_input(xc, &x.primitive);

    update_running(bn, &stats, device);

    let nodes = [
        x.node.clone(),
        w.node.clone(),
        gamma.node.clone(),
        beta.node.clone(),
    ];
    let out = match ConvBnActBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            ConvBnActState {
                x: saved_x,
                w: saved_input(wc, &w.primitive),
                y,
                stats: Arc::new(stats),
                gamma: Arc::new(gamma_v),
                beta: Arc::new(beta_v),
                geometry: g,
                act,
                dtypes,
            },
            out,
        ),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    from_primitive(
        cast(out).unwrap_or_else(|_| unreachable!("B's primitive is Autodiff<Flex>'s here")),
    )
}

/// What a backward keeps of an input or a weight: the `f32` view the forward read (no copy), or the
/// half-precision tensor as given, which the backward widens again, rather than its `f32` copy at twice the
/// bytes.
fn saved_input(widened: FlexTensor, given: &FlexTensor) -> FlexTensor {
    if given.dtype() == DType::F32 {
        widened
    } else {
        given.clone()
    }
}

fn ad<B: Backend>(t: Tensor<B, 1>) -> AdFlexTensor {
    match cast::<B::FloatTensorPrimitive, AdFlexTensor>(primitive(t)) {
        Ok(t) => t,
        Err(_) => unreachable!("the input was Autodiff<Flex>, so the parameters are too"),
    }
}

/// PyTorch's update: `running = (1 − m)·running + m·batch`, with the unbiased batch variance.
fn update_running<B: Backend>(bn: &BatchNorm<B>, stats: &BatchStats, device: &B::Device) {
    let c = stats.mean.len();
    let m = bn.momentum as f32;
    let blend = |running: Vec<f32>, batch: &[f32]| -> Tensor<B, 1> {
        let v: Vec<f32> = running
            .iter()
            .zip(batch)
            .map(|(r, b)| (1.0 - m) * r + m * b)
            .collect();
        Tensor::from_data(TensorData::new(v, [c]), device)
    };
    let mean = blend(values(bn.running_mean.value_sync(), c), &stats.mean);
    let var = blend(
        values(bn.running_var.value_sync(), c),
        &stats.unbiased_var(),
    );
    bn.running_mean.update(mean);
    bn.running_var.update(var);
}

/// `conv(x) + bias` (the Detect head's last 1×1 convs) when `x`'s backend is burn-flex; `Err(x)` otherwise.
pub fn try_conv_bias<B: Backend>(
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let (Some(g), Some(bias)) = (geometry(conv, &x.dims(), true), conv.bias.as_ref()) else {
        return Err(x);
    };
    let x_prim = primitive(x);
    let x_prim = match cast::<B::FloatTensorPrimitive, FlexTensor>(x_prim) {
        Ok(x) if supported(x.dtype()) => {
            let dtype = x.dtype();
            let w = conv_weight(&param_flex(conv.weight.val()), dtype);
            let b = contiguous(&param_flex(bias.val()));
            let y = conv_bias_forward(&g, &x, &w, &b);
            let out = narrow(y, &[g.batch, g.c_out, g.out_h(), g.out_w()], dtype);
            return Ok(from_primitive(
                cast(out).unwrap_or_else(|_| unreachable!("B's primitive is FlexTensor")),
            ));
        }
        Ok(x) => {
            return Err(from_primitive(
                cast(x).unwrap_or_else(|_| unreachable!("the same type")),
            ))
        }
        Err(other) => other,
    };
    let x = match cast::<B::FloatTensorPrimitive, AdFlexTensor>(x_prim) {
        Ok(x) if supported(x.primitive.dtype()) => x,
        Ok(x) => {
            return Err(from_primitive(
                cast(x).unwrap_or_else(|_| unreachable!("the same type")),
            ))
        }
        Err(other) => return Err(from_primitive(other)),
    };
    let w = match cast::<B::FloatTensorPrimitive, AdFlexTensor>(primitive(conv.weight.val())) {
        Ok(w) => w,
        Err(_) => unreachable!("the input was Autodiff<Flex>, so the weight is too"),
    };
    let b = ad(bias.val());
    let dtypes = [
        x.primitive.dtype(),
        w.primitive.dtype(),
        b.primitive.dtype(),
    ];
    let (xc, x_stride) = conv_view(&x.primitive);
    let wc = conv_weight(&w.primitive, dtypes[0]);
    let y = conv_bias_forward_strided(&g, &xc, x_stride, &wc, &contiguous(&b.primitive));
    let out = narrow(y, &[g.batch, g.c_out, g.out_h(), g.out_w()], dtypes[0]);
    let saved_x = saved_input(xc, &x.primitive);
    let nodes = [x.node.clone(), w.node.clone(), b.node.clone()];
    let out = match ConvBiasBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            ConvBiasState {
                x: saved_x,
                w: saved_input(wc, &w.primitive),
                geometry: g,
                dtypes,
            },
            out,
        ),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Ok(from_primitive(cast(out).unwrap_or_else(|_| {
        unreachable!("B's primitive is Autodiff<Flex>'s here")
    })))
}

fn conv_bias_forward(g: &ConvGeometry, x: &FlexTensor, w: &FlexTensor, b: &FlexTensor) -> Vec<f32> {
    let (x, x_stride) = conv_view(x);
    conv_bias_forward_strided(g, &x, x_stride, w, b)
}

fn conv_bias_forward_strided(
    g: &ConvGeometry,
    x: &FlexTensor,
    x_stride: usize,
    w: &FlexTensor,
    b: &FlexTensor,
) -> Vec<f32> {
    let mut y = conv_forward(g, x, x_stride, w);
    let ones = vec![1.0f32; g.c_out];
    bn_act::scale_shift_act_in_place(&mut y, g.c_out, g.out_hw(), &ones, f32s(b), false);
    y
}

#[derive(Debug, Clone)]
struct ConvBiasState {
    /// The input, as [`ConvBnActState::x`].
    x: FlexTensor,
    w: FlexTensor,
    geometry: ConvGeometry,
    /// The caller's float types of x, w and the bias.
    dtypes: [DType; 3],
}

#[derive(Debug)]
struct ConvBiasBackward;

impl Backward<Flex, 3> for ConvBiasBackward {
    type State = ConvBiasState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let dout = contiguous(&grads.consume::<Flex>(&ops.node));
        let dy = f32s(&dout);
        let s = ops.state;
        let g = s.geometry;
        let [x_dtype, w_dtype, b_dtype] = s.dtypes;
        if let Some(node) = node_b {
            let db = bn_act::channel_sums(dy, g.c_out, g.out_hw());
            grads.register::<Flex>(node.id, narrow(db, &[g.c_out], b_dtype));
        }
        if let Some(node) = node_x {
            let dx = conv_backward_input(&g, &s.w, dy);
            let shape = [g.batch, g.c_in, g.h, g.w];
            grad_sum::register_f32(grads, &grad_key!(&node), dx, &shape, x_dtype);
        }
        if let Some(node) = node_w {
            let mut dw = vec![0.0f32; g.weight_len()];
            conv_backward_weight(&g, &s.x, dy, &mut dw);
            let shape = s.w.layout().shape().to_vec();
            grads.register::<Flex>(node.id, narrow(dw, &shape, w_dtype));
        }
    }
}
