//! `f16`/`bf16` ⇄ `f32` for the kernels' op boundaries, in parallel and straight through.
//!
//! Why not burn-flex's `float_cast`: it converts element by element through a `Vec<f64>` on the calling thread,
//! so every half-precision conv paid a serial pass and a transient buffer four times the half tensor's size
//! (at 640 px, batch 16, 210 MB for the stem's output alone), which set the peak memory of an fp16 step. Here
//! slices convert through `half_slice` (AVX-512 where the CPU has it, else the `half` crate), rounding to
//! nearest even as burn-flex does, so the values are the same (bf16: subnormal inputs become zero).

use super::half_slice::HalfSlice;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, Tensor, TensorData};
use burn_flex::{Flex, FlexTensor};
use half::{bf16, f16};

use super::flex::{cast, f32s, from_primitive, primitive, supported, AdFlexTensor};
use super::grad_sum::{self, grad_key};
use super::{par_vec, par_vec2_of, par_vec_of};

/// Elements per parallel chunk: large enough to amortise the task, small enough to split a layer's tensor.
const CHUNK: usize = 1 << 16;
/// Elements of a half plane widened at a time by the plane-wise passes: two or three such `f32` blocks fit in
/// L1 with the pass's output.
const WIDE_BLOCK: usize = 2048;

/// `src` (a half type) widened to `f32`, chunks in parallel.
fn widen_all<T: Sync>(src: &[T]) -> Vec<f32>
where
    [T]: HalfSlice,
{
    par_vec(src.len(), CHUNK, |i, out| {
        src[i * CHUNK..][..out.len()].widen_into(out)
    })
    .0
}

/// `values` rounded to a half type (nearest even), chunks in parallel.
fn narrow_all<T: bytemuck::Pod + Default + Send + Sync>(values: &[f32]) -> Vec<T>
where
    [T]: HalfSlice,
{
    par_vec_of(values.len(), CHUNK, T::default(), |i, out| {
        out.round_from(&values[i * CHUNK..][..out.len()])
    })
    .0
}

/// `t`'s values as a contiguous `f32` tensor (no copy when it already is one).
pub(super) fn to_f32(t: &FlexTensor) -> FlexTensor {
    let t = t.to_contiguous();
    let shape = t.layout().shape().to_vec();
    let widened = match Floats::of(&t) {
        Some(Floats::F16(v)) => widen_all(v),
        Some(Floats::Bf16(v)) => widen_all(v),
        _ => return t,
    };
    FlexTensor::from_data(TensorData::new(widened, shape))
}

/// `values` (row-major, `shape`) as a tensor of `dtype`: `f32` as they are, `f16`/`bf16` rounded to nearest
/// even.
pub(super) fn from_f32(values: Vec<f32>, shape: &[usize], dtype: DType) -> FlexTensor {
    match dtype {
        DType::F16 | DType::BF16 => from_f32_slice(&values, shape, dtype),
        _ => FlexTensor::from_data(TensorData::new(values, shape.to_vec())),
    }
}

/// [`from_f32`] from borrowed values.
fn from_f32_slice(values: &[f32], shape: &[usize], dtype: DType) -> FlexTensor {
    let data = match dtype {
        DType::F16 => TensorData::new(narrow_all::<f16>(values), shape.to_vec()),
        DType::BF16 => TensorData::new(narrow_all::<bf16>(values), shape.to_vec()),
        _ => TensorData::new(values.to_vec(), shape.to_vec()),
    };
    FlexTensor::from_data(data)
}

/// `t` in `to` (f32, f16 or bf16), through our conversions.
fn convert(t: &FlexTensor, to: DType) -> FlexTensor {
    if t.dtype() == to {
        return t.clone();
    }
    let wide = to_f32(t);
    if to == DType::F32 {
        wide
    } else {
        from_f32_slice(f32s(&wide), &wide.layout().shape().to_vec(), to)
    }
}

/// `x` cast to `dtype` when `x` is a burn-flex tensor (plain or under autodiff) of a float type the kernels
/// take, with a backward that casts the gradient back the same way; `Err(x)` otherwise (Burn's cast then).
pub fn try_cast<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    dtype: FloatDType,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    let to = DType::from(dtype);
    if !supported(to) {
        return Err(x);
    }
    if x.dtype() == to {
        return Ok(x);
    }
    let p = match cast::<B::FloatTensorPrimitive, FlexTensor>(primitive(x)) {
        Ok(t) if supported(t.dtype()) => {
            return Ok(from_primitive(same(convert(&t, to))));
        }
        Ok(t) => return Err(from_primitive(same(t))),
        Err(p) => p,
    };
    let t = match cast::<B::FloatTensorPrimitive, AdFlexTensor>(p) {
        Ok(t) if supported(t.primitive.dtype()) => t,
        Ok(t) => return Err(from_primitive(same(t))),
        Err(p) => return Err(from_primitive(p)),
    };
    let from = t.primitive.dtype();
    let out = convert(&t.primitive, to);
    let out = match CastBackward
        .prepare::<NoCheckpointing>([t.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(from, out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Ok(from_primitive(same(out)))
}

/// `value` as the type it is known to be.
fn same<T: 'static, U: 'static>(value: T) -> U {
    cast(value).unwrap_or_else(|_| unreachable!("the same type"))
}

#[derive(Debug)]
struct CastBackward;

impl Backward<Flex, 1> for CastBackward {
    /// The input's float type, which its gradient takes.
    type State = DType;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dout = grads.consume::<Flex>(&ops.node);
        if let Some(node) = ops.parents.into_iter().flatten().next() {
            grad_sum::register(grads, &grad_key!(&node), convert(&dout, ops.state));
        }
    }
}

/// A contiguous float tensor's values in their own type, read plane by plane as `f32` without widening the
/// whole tensor first.
#[derive(Debug, Clone, Copy)]
pub enum Floats<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    Bf16(&'a [bf16]),
}

impl<'a> Floats<'a> {
    /// The values of `t`, which must be contiguous (`None` otherwise, or for another type).
    pub(super) fn of(t: &'a FlexTensor) -> Option<Self> {
        if !t.layout().is_contiguous() {
            return None;
        }
        let n = t.layout().num_elements();
        let start = t.layout().start_offset();
        Some(match t.dtype() {
            DType::F32 => Floats::F32(&t.storage::<f32>()[start..start + n]),
            DType::F16 => Floats::F16(&t.storage::<f16>()[start..start + n]),
            DType::BF16 => Floats::Bf16(&t.storage::<bf16>()[start..start + n]),
            _ => return None,
        })
    }

    pub fn len(&self) -> usize {
        match self {
            Floats::F32(v) => v.len(),
            Floats::F16(v) => v.len(),
            Floats::Bf16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many elements of a plane of `plane` to hand [`Floats::with_f32`] at a time: the whole plane in
    /// `f32` (read in place, and the sums over it keep their order), else a block whose widened copy fits in L1.
    pub fn block_len(&self, plane: usize) -> usize {
        match self {
            Floats::F32(_) => plane,
            _ => plane.min(WIDE_BLOCK),
        }
    }

    /// `f` of elements `range` as `f32`: the slice itself in `f32`, else a widened copy of just that range
    /// (in a reused per-thread buffer).
    pub fn with_f32<R>(&self, range: std::ops::Range<usize>, f: impl FnOnce(&[f32]) -> R) -> R {
        match self {
            Floats::F32(v) => f(&v[range]),
            Floats::F16(v) => with_scratch(range.len(), |out| {
                v[range].widen_into(out);
                f(out)
            }),
            Floats::Bf16(v) => with_scratch(range.len(), |out| {
                v[range].widen_into(out);
                f(out)
            }),
        }
    }
}

thread_local! {
    /// Plane-sized `f32` buffers for the half-precision paths, reused instead of allocated per plane (a conv
    /// layer has batch × channels planes per pass).
    static SCRATCH: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `f` of a `len`-float buffer taken from this thread's pool (nested calls take different buffers). Its
/// values are whatever the last user left: every caller overwrites all of it before reading.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let result = f(&mut buf[..len]);
    SCRATCH.with(|s| s.borrow_mut().push(buf));
    result
}

/// Two tensors of `dtype` and `shape`: one whose `f32` values `write(source, at, out)` gives (elements `at..at +
/// out.len()`, never across a plane of `plane` elements), and `source` itself (a conv output that the backward
/// keeps). Planes run in parallel. In a half type each block of a plane is computed in
/// `f32` and rounded at once, and the same block of `source` is rounded while it is still in cache: no `f32`
/// copy of the output, and no second pass over `source`.
pub(super) fn planes_and_source_in(
    dtype: DType,
    shape: &[usize],
    plane: usize,
    source: Vec<f32>,
    write: impl Fn(&[f32], usize, &mut [f32]) + Sync + Send,
) -> (FlexTensor, FlexTensor) {
    fn rounded<T: bytemuck::Pod + Default + Send + Sync>(
        plane: usize,
        source: &[f32],
        write: impl Fn(&[f32], usize, &mut [f32]) + Sync + Send,
    ) -> (Vec<T>, Vec<T>)
    where
        [T]: HalfSlice,
    {
        let step = plane.clamp(1, WIDE_BLOCK);
        par_vec2_of(source.len(), plane.max(1), T::default(), |i, out, kept| {
            let start = i * plane.max(1);
            for (k, (out, kept)) in out.chunks_mut(step).zip(kept.chunks_mut(step)).enumerate() {
                let at = start + k * step;
                with_scratch(out.len(), |wide| {
                    write(source, at, wide);
                    out.round_from(wide)
                });
                kept.round_from(&source[at..][..kept.len()]);
            }
        })
    }
    let n: usize = shape.iter().product();
    let (out, kept) = match dtype {
        DType::F16 => {
            let (out, kept) = rounded::<f16>(plane, &source, write);
            (
                TensorData::new(out, shape.to_vec()),
                TensorData::new(kept, shape.to_vec()),
            )
        }
        DType::BF16 => {
            let (out, kept) = rounded::<bf16>(plane, &source, write);
            (
                TensorData::new(out, shape.to_vec()),
                TensorData::new(kept, shape.to_vec()),
            )
        }
        _ => {
            let out = par_vec(n, plane.max(1), |i, o| write(&source, i * plane.max(1), o)).0;
            (
                TensorData::new(out, shape.to_vec()),
                TensorData::new(source, shape.to_vec()),
            )
        }
    };
    (FlexTensor::from_data(out), FlexTensor::from_data(kept))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::ops::FloatTensorOps;
    use burn::tensor::FloatDType;

    /// The epilogue's two outputs, planes longer than one block and a short last plane: each element is
    /// `write`'s value and `source`'s, rounded once, exactly as rounding whole tensors gives.
    #[test]
    fn planes_and_source_equal_whole_tensor_rounding() {
        let (planes, plane) = (3, 2 * WIDE_BLOCK + 5);
        let shape = [planes, plane];
        let source: Vec<f32> = (0..planes * plane)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 37.0)
            .collect();
        let f = |v: f32, at: usize| v * 1.5 - (at % 11) as f32;
        let want: Vec<f32> = source.iter().enumerate().map(|(i, v)| f(*v, i)).collect();
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let (out, kept) =
                planes_and_source_in(dtype, &shape, plane, source.clone(), |s, at, o| {
                    for (j, o) in o.iter_mut().enumerate() {
                        *o = f(s[at + j], at + j);
                    }
                });
            let as_f32 = |t: &FlexTensor| to_f32(t).into_data().to_vec::<f32>().unwrap();
            let round = |v: &[f32]| as_f32(&from_f32(v.to_vec(), &shape, dtype));
            assert_eq!(out.dtype(), dtype);
            assert_eq!(kept.dtype(), dtype);
            assert_eq!(as_f32(&out), round(&want), "{dtype:?} output");
            assert_eq!(as_f32(&kept), round(&source), "{dtype:?} source");
        }
    }

    /// Under autodiff, `try_cast` gives Burn's cast's values and gradient (in the input's type), both ways.
    #[test]
    fn tracked_cast_equals_burn_cast_with_its_gradient() {
        use burn::backend::Autodiff;
        type Ad = Autodiff<Flex>;
        let device = Default::default();
        let values: Vec<f32> = (0..300).map(|i| (i as f32 - 150.0) * 0.37).collect();
        for (from, to) in [
            (FloatDType::F32, FloatDType::F16),
            (FloatDType::F16, FloatDType::F32),
            (FloatDType::BF16, FloatDType::F32),
            (FloatDType::F32, FloatDType::BF16),
            (FloatDType::F16, FloatDType::BF16),
        ] {
            let run = |ours: bool| {
                let x =
                    Tensor::<Ad, 2>::from_data(TensorData::new(values.clone(), [10, 30]), &device)
                        .cast(from)
                        .require_grad();
                let y = if ours {
                    try_cast(x.clone(), to).unwrap_or_else(|_| panic!("flex takes {from:?}"))
                } else {
                    x.clone().cast(to)
                };
                assert_eq!(y.dtype(), DType::from(to));
                let w = Tensor::<Ad, 2>::from_data(
                    TensorData::new(
                        (0..300).map(|i| i as f32 * 0.01).collect::<Vec<_>>(),
                        [10, 30],
                    ),
                    &device,
                )
                .cast(to);
                let grads = (y.clone() * w).sum().backward();
                let g = x.grad(&grads).unwrap();
                assert_eq!(g.dtype(), DType::from(from));
                (
                    y.into_data().as_bytes().to_vec(),
                    g.into_data().as_bytes().to_vec(),
                )
            };
            assert_eq!(run(true), run(false), "{from:?} -> {to:?}");
        }
    }

    /// Same bits as burn-flex's own cast, both ways, over values spanning the half types' normal, subnormal,
    /// overflowing and tie-rounding ranges, across several chunks.
    #[test]
    fn casts_equal_burn_flex_float_cast() {
        let n = 3 * CHUNK + 123;
        let values: Vec<f32> = (0..n)
            .map(|i| {
                let x = (i as f32 * 0.618_034).fract() - 0.5;
                x * 2f32.powi((i % 48) as i32 - 30)
            })
            .chain([65504.0, 65520.0, 1e9, -1e-9, f32::NAN, f32::INFINITY])
            .collect();
        let shape = [values.len()];
        for (dtype, float_dtype) in [
            (DType::F16, FloatDType::F16),
            (DType::BF16, FloatDType::BF16),
        ] {
            let ours = from_f32(values.clone(), &shape, dtype);
            let theirs = Flex::float_cast(
                FlexTensor::from_data(TensorData::new(values.clone(), shape)),
                float_dtype,
            );
            assert_eq!(ours.dtype(), dtype);
            let bits = |t: FlexTensor| t.into_data().as_bytes().to_vec();
            assert_eq!(
                bits(ours.clone()),
                bits(theirs.clone()),
                "{dtype:?} narrowing"
            );
            let back_ours = to_f32(&ours);
            let back_theirs = Flex::float_cast(theirs, FloatDType::F32);
            assert_eq!(bits(back_ours), bits(back_theirs), "{dtype:?} widening");
        }
    }
}
