//! The graph ops of src/kernels/graph.rs (concatenation, residual add, nearest upsampling) in `f16` and `bf16`
//! against Burn's own ops on burn-flex: forward values and gradients, on channel slices, in training and
//! inference, and the types of outputs and gradients.
//!
//! Exact equality everywhere except Burn's upsampling gradient: concatenation and upsampling copy, and the add
//! computes in `f32` and rounds once to the half type, as burn-flex's half add does. The upsampling gradient sums
//! each input pixel's f×f block in `f32` and rounds once; Burn's broadcast backward sums the block in the half
//! type along one axis and then the other, rounding in between, so it may differ by about one unit in the last
//! place (tolerance below). Ours is checked bit for bit against the once-rounded `f32` sum instead.

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use yolo_burn::backend::Cpu;
use yolo_burn::kernels::{
    add_with, cat_with, narrow_channels_with, upsample_nearest_with, Kernels,
};

type Ad = Autodiff<Cpu>;

const HALVES: [DType; 2] = [DType::F16, DType::BF16];

/// Uniform values in `[lo, hi)` from a hash of `(seed, index)`, as in tests/kernels.rs (the backend's RNG is
/// global, and tests run on parallel threads), cast to `dtype`.
fn pseudo<B: Backend, const D: usize>(
    shape: [usize; D],
    seed: u64,
    lo: f32,
    hi: f32,
    dtype: DType,
    device: &B::Device,
) -> Tensor<B, D> {
    let len = shape.iter().product::<usize>();
    let v: Vec<f32> = (0..len as u64)
        .map(|i| {
            let h =
                (i ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let h = (h ^ (h >> 31)).wrapping_mul(0x94D0_49BB_1331_11EB);
            lo + (hi - lo) * ((h >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect();
    Tensor::<B, D>::from_data(TensorData::new(v, shape), device).cast(dtype)
}

/// `t`'s values (exactly: every half value is an `f32`), after checking that `t` is of `dtype`.
fn values<B: Backend, const D: usize>(t: Tensor<B, D>, dtype: DType, what: &str) -> Vec<f32> {
    assert_eq!(t.dtype(), dtype, "{what}: dtype");
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// Concatenations along channels (inputs: a whole tensor, an add of two channel slices, another tensor, a
/// channel slice) and along the last dimension of 3-D tensors (the Detect head's), and the add itself, with
/// their gradients; in training and inference.
#[test]
fn half_concatenation_and_residual_add_match_burn() {
    let device = Default::default();
    for dtype in HALVES {
        let run = |k: Kernels| {
            let wide = pseudo::<Ad, 4>([3, 12, 5, 7], 11, -2.0, 2.0, dtype, &device).require_grad();
            let other = pseudo::<Ad, 4>([3, 4, 5, 7], 12, -2.0, 2.0, dtype, &device).require_grad();
            let half = wide.clone().narrow(1, 6, 6);
            let summed = add_with(k, half.clone(), wide.clone().narrow(1, 0, 6));
            let out = cat_with(
                k,
                vec![wide.clone(), summed.clone(), other.clone(), half],
                1,
            );
            // a weight per output element, so each gradient value is distinct
            let weights = pseudo::<Ad, 4>([3, 28, 5, 7], 13, -1.0, 1.0, dtype, &device);
            let grads = (out.clone() * weights).sum().backward();
            let eval = cat_with(
                k,
                vec![
                    wide.clone().inner().narrow(1, 2, 3),
                    add_with(k, other.clone().inner(), other.clone().inner()),
                ],
                1,
            );
            let eval_add = add_with(
                k,
                wide.clone().inner().narrow(1, 1, 4),
                other.clone().inner(),
            );
            // the Detect head's case: 3-D along the last dimension, one input a slice
            let flat = cat_with(
                k,
                vec![
                    other.clone().reshape([3, 4, 35]),
                    wide.clone().reshape([3, 12, 35]).narrow(1, 4, 4),
                ],
                2,
            );
            let flat_weights = pseudo::<Ad, 3>([3, 4, 70], 14, -1.0, 1.0, dtype, &device);
            let flat_grads = (flat.clone() * flat_weights).sum().backward();
            // chunk: C2f's split, both halves straight into one concatenation
            let parts = other.clone().chunk(2, 1);
            let split = cat_with(k, parts.into_iter().rev().collect(), 1);
            let split_weights = pseudo::<Ad, 4>([3, 4, 5, 7], 15, -1.0, 1.0, dtype, &device);
            let split_grads = (split.clone() * split_weights).sum().backward();
            [
                values(out, dtype, "out"),
                values(summed, dtype, "add out"),
                values(wide.grad(&grads).expect("wide grad"), dtype, "d/dwide"),
                values(other.grad(&grads).expect("other grad"), dtype, "d/dother"),
                values(eval, dtype, "eval out"),
                values(eval_add, dtype, "eval add out"),
                values(flat, dtype, "dim-2 out"),
                values(
                    wide.grad(&flat_grads).expect("wide grad"),
                    dtype,
                    "dim-2 d/dwide",
                ),
                values(
                    other.grad(&flat_grads).expect("other grad"),
                    dtype,
                    "dim-2 d/dother",
                ),
                values(split, dtype, "chunk out"),
                values(
                    other.grad(&split_grads).expect("other grad"),
                    dtype,
                    "chunk d/dother",
                ),
            ]
        };
        let (ours, stock) = (run(Kernels::Fast), run(Kernels::Burn));
        for (what, (a, b)) in [
            "out",
            "add out",
            "d/dwide",
            "d/dother",
            "eval out",
            "eval add out",
            "dim-2 out",
            "dim-2 d/dwide",
            "dim-2 d/dother",
            "chunk out",
            "chunk d/dother",
        ]
        .iter()
        .zip(ours.iter().zip(&stock))
        {
            assert_eq!(a, b, "{dtype:?} {what}");
        }
    }
}

/// C2f's split (`narrow_channels`): a channel range whose tensor is also read whole, so the range's gradient is
/// added into the whole tensor's (ours adds in place, Burn pads with zeros and adds everything); a range read by
/// two ops; a range that is the tensor's only reader (no gradient held yet); C2PSA's two halves. Exact in every
/// type: each element's gradient is the same sum of the same two or three values either way.
#[test]
fn channel_split_gradients_match_burn() {
    let device = Default::default();
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        let run = |k: Kernels| {
            let y = pseudo::<Ad, 4>([2, 8, 3, 5], 21, -2.0, 2.0, dtype, &device).require_grad();
            let lone = pseudo::<Ad, 4>([2, 6, 3, 5], 22, -2.0, 2.0, dtype, &device).require_grad();
            let half = narrow_channels_with(k, y.clone(), 4, 4);
            let block = add_with(k, half.clone(), half);
            let first = narrow_channels_with(k, y.clone(), 0, 4);
            let out = cat_with(
                k,
                vec![
                    y.clone(),
                    block,
                    first,
                    narrow_channels_with(k, lone.clone(), 1, 3),
                ],
                1,
            );
            let weights = pseudo::<Ad, 4>([2, 19, 3, 5], 23, -1.0, 1.0, dtype, &device);
            let grads = (out.clone() * weights).sum().backward();
            let eval = narrow_channels_with(k, y.clone().inner(), 3, 2);
            [
                values(out, dtype, "out"),
                values(y.grad(&grads).expect("y grad"), dtype, "d/dy"),
                values(lone.grad(&grads).expect("lone grad"), dtype, "d/dlone"),
                values(eval, dtype, "eval out"),
            ]
        };
        let (ours, stock) = (run(Kernels::Fast), run(Kernels::Burn));
        for (what, (a, b)) in ["out", "d/dy", "d/dlone", "eval out"]
            .iter()
            .zip(ours.iter().zip(&stock))
        {
            assert_eq!(a, b, "{dtype:?} {what}");
        }
    }
}

/// The gradient our upsampling should give: each input pixel's f×f block of `dout` (`[b, c, h·f, w·f]`,
/// row-major) summed in `f32`, row by row as the kernel does, then rounded once to `dtype`.
fn block_sums(dout: &[f32], [b, c, h, w]: [usize; 4], f: usize, dtype: DType) -> Vec<f32> {
    let wf = w * f;
    let mut sums = Vec::with_capacity(b * c * h * w);
    for plane in dout.chunks_exact(h * f * wf) {
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0f32;
                for r in 0..f {
                    let row = &plane[(y * f + r) * wf + x * f..][..f];
                    acc += row.iter().sum::<f32>();
                }
                sums.push(acc);
            }
        }
    }
    let rounded =
        Tensor::<Cpu, 1>::from_data(TensorData::new(sums, [b * c * h * w]), &Default::default())
            .cast(dtype);
    values(rounded, dtype, "block sums")
}

/// The neck's nearest upsampling on a channel slice: the output exactly, in training and inference; the
/// gradient exactly equal to the once-rounded `f32` block sums, and within one unit in the last place (of the
/// largest value) of Burn's, which rounds twice.
#[test]
fn half_upsampling_matches_burn() {
    let device = Default::default();
    for dtype in HALVES {
        let f = 2;
        let weights = pseudo::<Ad, 4>([2, 3, 10, 14], 22, -1.0, 1.0, dtype, &device);
        let run = |k: Kernels| {
            let wide = pseudo::<Ad, 4>([2, 6, 5, 7], 21, -2.0, 2.0, dtype, &device).require_grad();
            let out = upsample_nearest_with(k, wide.clone().narrow(1, 2, 3), f);
            let grads = (out.clone() * weights.clone()).sum().backward();
            let eval = upsample_nearest_with(k, wide.clone().inner(), 3);
            [
                values(out, dtype, "out"),
                values(wide.grad(&grads).expect("grad"), dtype, "d/dx"),
                values(eval, dtype, "eval out"),
            ]
        };
        let (ours, stock) = (run(Kernels::Fast), run(Kernels::Burn));
        assert_eq!(ours[0], stock[0], "{dtype:?} out");
        assert_eq!(ours[2], stock[2], "{dtype:?} eval out");

        // d/dwide: zero outside channels 2..5, the block sums of the weights inside
        let sums = block_sums(
            &values(weights.clone(), dtype, "weights"),
            [2, 3, 5, 7],
            f,
            dtype,
        );
        let plane = 5 * 7;
        let mut expected = vec![0.0f32; 2 * 6 * plane];
        for (i, image) in sums.chunks_exact(3 * plane).enumerate() {
            expected[(i * 6 + 2) * plane..][..3 * plane].copy_from_slice(image);
        }
        assert_eq!(
            ours[1], expected,
            "{dtype:?} d/dx against the f32 block sums"
        );

        let ulp = match dtype {
            DType::F16 => 2f32.powi(-10),
            _ => 2f32.powi(-7),
        };
        let scale = stock[1].iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let err = ours[1]
            .iter()
            .zip(&stock[1])
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= ulp * scale,
            "{dtype:?} d/dx: max |diff| {err:e}, max {scale:e}"
        );
    }
}

/// Inputs of different float types are handed to Burn's ops untouched: the fast path gives exactly Burn's
/// outcome. On burn-flex 0.21 that is a panic of its own dtype check (`cat: dtype mismatch`, `binary_op: dtype
/// mismatch`, so the test prints those panics), which shows that our ops returned the tensors rather than failing
/// or reading one type's bytes as another's.
#[test]
fn mixed_dtypes_take_burns_ops() {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    let device = Default::default();
    // the output's type and values, or the panic's message
    let outcome = |op: &dyn Fn() -> Tensor<Ad, 4>| {
        catch_unwind(AssertUnwindSafe(|| {
            let t = op();
            let dtype = t.dtype();
            (dtype, values(t, dtype, "mixed"))
        }))
        .map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    };
    for (a_type, b_type) in [
        (DType::F16, DType::F32),
        (DType::BF16, DType::F16),
        (DType::F32, DType::BF16),
    ] {
        let a = pseudo::<Ad, 4>([2, 3, 4, 5], 31, -1.0, 1.0, a_type, &device).require_grad();
        let b = pseudo::<Ad, 4>([2, 3, 4, 5], 32, -1.0, 1.0, b_type, &device);
        let cat = |k: Kernels| outcome(&|| cat_with(k, vec![a.clone(), b.clone()], 1));
        let add = |k: Kernels| outcome(&|| add_with(k, a.clone(), b.clone()));
        for (what, ours, stock) in [
            ("cat", cat(Kernels::Fast), cat(Kernels::Burn)),
            ("add", add(Kernels::Fast), add(Kernels::Burn)),
        ] {
            assert_eq!(ours, stock, "{what} {a_type:?} with {b_type:?}");
            if let Err(message) = ours {
                assert!(
                    message.contains("dtype mismatch"),
                    "{what} {a_type:?} with {b_type:?}: not Burn's dtype check: {message}"
                );
            }
        }
    }
}
