//! Our conv-block kernels (src/kernels) against Burn's stock `Conv2d` → `BatchNorm` → `silu`, on burn-flex:
//! outputs, the four gradients, the running statistics, and inference, over a grid of shapes, strides, groups
//! and batch sizes.
//!
//! Tolerance: `max |ours − stock| ≤ 1e-4 · max |stock|` per tensor (the summation orders differ: im2col GEMM
//! and two-pass statistics here, NHWC GEMM and broadcast ops there).

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Param, RunningState};
use burn::nn::conv::Conv2dConfig;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use yolo_burn::backend::Cpu;
use yolo_burn::kernels::{conv2d_with, conv_bn_act_with, Kernels};
use yolo_burn::model::conv::{Conv, ConvConfig};

type Ad = Autodiff<Cpu>;

#[derive(Debug, Clone, Copy)]
struct Case {
    batch: usize,
    c1: usize,
    c2: usize,
    k: usize,
    s: usize,
    g: usize,
    hw: [usize; 2],
    act: bool,
}

fn cases() -> Vec<Case> {
    let base = Case {
        batch: 2,
        c1: 8,
        c2: 16,
        k: 3,
        s: 1,
        g: 1,
        hw: [12, 10],
        act: true,
    };
    vec![
        base,
        Case { s: 2, ..base },
        Case { k: 1, ..base },
        Case {
            k: 1,
            act: false,
            batch: 3,
            ..base
        },
        Case {
            batch: 1,
            hw: [7, 9],
            s: 2,
            ..base
        },
        Case {
            batch: 5,
            c1: 3,
            c2: 16,
            hw: [16, 16],
            s: 2,
            ..base
        },
        // YOLO11's DWConv: groups = gcd(c1, c2).
        Case {
            c1: 16,
            c2: 16,
            g: 16,
            ..base
        },
        Case {
            c1: 8,
            c2: 16,
            g: 8,
            s: 2,
            ..base
        },
        Case {
            g: 2,
            act: false,
            ..base
        },
        // SPPF/C2f sizes at the bottom of the pyramid.
        Case {
            batch: 4,
            c1: 32,
            c2: 64,
            hw: [2, 2],
            ..base
        },
        Case {
            batch: 3,
            c1: 24,
            c2: 8,
            k: 5,
            hw: [6, 5],
            ..base
        },
        // Stride-1 convs with 16–32 channels run one GEMM per kernel tap (src/kernels/taps.rs).
        Case { c1: 16, ..base },
        // Narrow weight gradients over ≥ 1024 positions are AVX-512 dot products (src/kernels/dot.rs): the
        // stem's 3 → 16 stride-2 conv, and a 1×1 conv.
        Case {
            c1: 3,
            hw: [64, 64],
            s: 2,
            ..base
        },
        Case {
            k: 1,
            hw: [32, 32],
            ..base
        },
    ]
}

/// Uniform values in `[lo, hi)` from a hash of `(seed, index)`: the backend's RNG is global, and the tests of
/// this file run on parallel threads.
fn pseudo<B: Backend, const D: usize>(
    shape: [usize; D],
    seed: u64,
    lo: f32,
    hi: f32,
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
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// A `Conv` with pseudo-random weights, BatchNorm affine and running statistics: the same for the same seed.
fn block<B: Backend>(case: Case, seed: u64, device: &B::Device) -> Conv<B> {
    let mut config = ConvConfig::new(case.c1, case.c2, case.k, case.s).with_groups(case.g);
    if !case.act {
        config = config.linear();
    }
    let mut conv = config.init::<B>(device);
    let c = case.c2;
    let bound = 1.0 / ((case.c1 / case.g * case.k * case.k) as f32).sqrt();
    let w_shape = [c, case.c1 / case.g, case.k, case.k];
    conv.conv.weight = Param::from_tensor(pseudo(w_shape, seed, -bound, bound, device));
    conv.bn.gamma = Param::from_tensor(pseudo([c], seed + 1, 0.5, 1.5, device));
    conv.bn.beta = Param::from_tensor(pseudo([c], seed + 2, -0.5, 0.5, device));
    conv.bn.running_mean = RunningState::new(pseudo([c], seed + 3, -0.2, 0.2, device));
    conv.bn.running_var = RunningState::new(pseudo([c], seed + 4, 0.5, 2.0, device));
    conv
}

fn input<B: Backend>(case: Case, device: &B::Device) -> Tensor<B, 4> {
    let [h, w] = case.hw;
    pseudo([case.batch, case.c1, h, w], 1234, -2.0, 2.0, device)
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

fn assert_close(ours: &[f32], stock: &[f32], what: &str, case: Case) {
    assert_within(1e-4, ours, stock, what, case);
}

fn assert_within(tolerance: f32, ours: &[f32], stock: &[f32], what: &str, case: Case) {
    assert_eq!(ours.len(), stock.len(), "{what} {case:?}");
    let scale = stock.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
    let err = ours
        .iter()
        .zip(stock)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        ours.iter().all(|v| v.is_finite()) && err <= tolerance * scale,
        "{what} {case:?}: max abs diff {err:e} vs max |stock| {scale:e}"
    );
}

/// Output, d/dx, d/dw, d/dgamma, d/dbeta of `Σ out · r` for a fixed random `r`, and the running statistics.
struct Trained {
    out: Vec<f32>,
    dx: Vec<f32>,
    dw: Vec<f32>,
    dgamma: Vec<f32>,
    dbeta: Vec<f32>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
}

fn train_step(kernels: Kernels, case: Case, x: Tensor<Ad, 4>) -> Trained {
    train_step_in(DType::F32, kernels, case, x)
}

/// `t` in `dtype` as a new leaf tensor (a cast inside the graph could not become a parameter).
fn leaf<B: Backend, const D: usize>(t: Tensor<B, D>, dtype: DType) -> Tensor<B, D> {
    let device = t.device();
    Tensor::from_data(t.into_data(), (&device, dtype))
}

/// The block's parameters (all four) and `x` in `dtype`.
fn cast_block<B: Backend>(mut conv: Conv<B>, dtype: DType) -> Conv<B> {
    if dtype != DType::F32 {
        conv.conv.weight = Param::from_tensor(leaf(conv.conv.weight.val(), dtype));
        conv.bn.gamma = Param::from_tensor(leaf(conv.bn.gamma.val(), dtype));
        conv.bn.beta = Param::from_tensor(leaf(conv.bn.beta.val(), dtype));
    }
    conv
}

fn train_step_in(dtype: DType, kernels: Kernels, case: Case, x: Tensor<Ad, 4>) -> Trained {
    let device = Default::default();
    let conv = cast_block(block::<Ad>(case, 7, &device), dtype);
    let x = x.cast(dtype).require_grad();
    let out = conv_bn_act_with(kernels, &conv.conv, &conv.bn, conv.act, x.clone());
    let r = pseudo::<Ad, 4>(out.dims(), 99, -1.0, 1.0, &device).cast(dtype);
    let grads = (out.clone() * r).sum().backward();
    let grad = |t: Tensor<Ad, 1>| values(t.grad(&grads).expect("a gradient"));
    Trained {
        out: values(out),
        dx: values(x.grad(&grads).expect("d/dx")),
        dw: values(conv.conv.weight.val().grad(&grads).expect("d/dw")),
        dgamma: grad(conv.bn.gamma.val()),
        dbeta: grad(conv.bn.beta.val()),
        running_mean: values(conv.bn.running_mean.value_sync()),
        running_var: values(conv.bn.running_var.value_sync()),
    }
}

#[test]
fn training_forward_and_gradients_match_burn() {
    let device = Default::default();
    for case in cases() {
        let x = input::<Ad>(case, &device);
        let ours = train_step(Kernels::Fast, case, x.clone());
        let stock = train_step(Kernels::Burn, case, x);
        assert_close(&ours.out, &stock.out, "out", case);
        assert_close(&ours.dx, &stock.dx, "d/dx", case);
        assert_close(&ours.dw, &stock.dw, "d/dw", case);
        assert_close(&ours.dgamma, &stock.dgamma, "d/dgamma", case);
        assert_close(&ours.dbeta, &stock.dbeta, "d/dbeta", case);
        assert_close(
            &ours.running_mean,
            &stock.running_mean,
            "running_mean",
            case,
        );
        // PyTorch (and we) feed the unbiased batch variance to the running estimate; Burn feeds the biased one.
        // running = 0.97·r0 + 0.03·var, so undo Burn's blend, rescale its var by N/(N−1), and blend again.
        let conv = block::<Cpu>(case, 7, &device);
        let r0 = values(conv.bn.running_var.value());
        let [h, w] = case.hw;
        let pad = case.k / 2;
        let count = case.batch
            * ((h + 2 * pad - case.k) / case.s + 1)
            * ((w + 2 * pad - case.k) / case.s + 1);
        let unbias = count as f32 / (count as f32 - 1.0).max(1.0);
        let expected: Vec<f32> = stock
            .running_var
            .iter()
            .zip(&r0)
            .map(|(s, r0)| {
                let var = (s - 0.97 * r0) / 0.03;
                0.97 * r0 + 0.03 * var * unbias
            })
            .collect();
        assert_close(&ours.running_var, &expected, "running_var", case);
    }
}

#[test]
fn inference_matches_burn() {
    let device = Default::default();
    for case in cases() {
        let conv = block::<Cpu>(case, 11, &device);
        let x = input::<Cpu>(case, &device);
        let run = |k| {
            values(conv_bn_act_with(
                k,
                &conv.conv,
                &conv.bn,
                conv.act,
                x.clone(),
            ))
        };
        assert_close(&run(Kernels::Fast), &run(Kernels::Burn), "eval out", case);
        // The inner model of an autodiff one (what validation runs) takes the same path.
        let ad = block::<Ad>(case, 11, &device).valid();
        let run_valid = |k| values(conv_bn_act_with(k, &ad.conv, &ad.bn, ad.act, x.clone()));
        assert_close(
            &run_valid(Kernels::Fast),
            &run_valid(Kernels::Burn),
            "valid() out",
            case,
        );
    }
}

/// A channel slice of a wider tensor (what C2f's `chunk` hands the next conv) is not contiguous in memory.
#[test]
fn strided_input_matches_burn() {
    let device = Default::default();
    let case = Case {
        batch: 3,
        c1: 8,
        c2: 8,
        k: 3,
        s: 1,
        g: 1,
        hw: [9, 11],
        act: true,
    };
    let wide = pseudo::<Cpu, 4>([3, 16, 9, 11], 5, -2.0, 2.0, &device);
    let x = wide.narrow(1, 8, 8);
    let conv = block::<Cpu>(case, 3, &device);
    let run = |k| {
        values(conv_bn_act_with(
            k,
            &conv.conv,
            &conv.bn,
            conv.act,
            x.clone(),
        ))
    };
    assert_close(
        &run(Kernels::Fast),
        &run(Kernels::Burn),
        "strided eval out",
        case,
    );
    let ours = train_step(Kernels::Fast, case, Tensor::from_inner(x.clone()));
    let stock = train_step(Kernels::Burn, case, Tensor::from_inner(x));
    assert_close(&ours.dx, &stock.dx, "strided d/dx", case);
    assert_close(&ours.dw, &stock.dw, "strided d/dw", case);
}

/// f16 and bf16 blocks (parameters, input and upstream gradient in the half type) against the f32 block, within
/// 1e-2 of the largest f32 value: the kernels widen to f32 and accumulate there, so the error is the rounding of
/// the inputs and outputs.
#[test]
fn half_precision_is_within_1e_2_of_f32() {
    let device = Default::default();
    for dtype in [DType::F16, DType::BF16] {
        for case in cases().into_iter().take(7) {
            let x = input::<Ad>(case, &device);
            let full = train_step(Kernels::Fast, case, x.clone());
            let half = train_step_in(dtype, Kernels::Fast, case, x);
            let what = |t: &str| format!("{dtype:?} {t}");
            assert_within(1e-2, &half.out, &full.out, &what("out"), case);
            assert_within(1e-2, &half.dx, &full.dx, &what("d/dx"), case);
            assert_within(1e-2, &half.dw, &full.dw, &what("d/dw"), case);
            assert_within(1e-2, &half.dgamma, &full.dgamma, &what("d/dgamma"), case);
            assert_within(1e-2, &half.dbeta, &full.dbeta, &what("d/dbeta"), case);

            let conv = block::<Cpu>(case, 11, &device);
            let x = input::<Cpu>(case, &device);
            let full = values(conv_bn_act_with(
                Kernels::Fast,
                &conv.conv,
                &conv.bn,
                conv.act,
                x.clone(),
            ));
            let conv = cast_block(conv, dtype);
            let out =
                conv_bn_act_with(Kernels::Fast, &conv.conv, &conv.bn, conv.act, x.cast(dtype));
            assert_eq!(out.dtype(), dtype);
            assert_within(1e-2, &values(out), &full, &what("eval out"), case);
        }
    }
}

/// The Detect head's last convs: 1×1 with a bias, no BatchNorm; output and the three gradients, and inference.
#[test]
fn conv_with_bias_matches_burn() {
    let device = Default::default();
    for (batch, c1, c2, hw) in [(2, 16, 64, [8, 6]), (3, 32, 80, [4, 4]), (1, 8, 5, [3, 7])] {
        let case = Case {
            batch,
            c1,
            c2,
            k: 1,
            s: 1,
            g: 1,
            hw,
            act: false,
        };
        let build = || {
            let mut conv = Conv2dConfig::new([c1, c2], [1, 1]).init::<Ad>(&device);
            conv.weight = Param::from_tensor(pseudo([c2, c1, 1, 1], 21, -0.3, 0.3, &device));
            conv.bias = Some(Param::from_tensor(pseudo([c2], 22, -1.0, 1.0, &device)));
            conv
        };
        let run = |kernels| {
            let conv = build();
            let x = input::<Ad>(case, &device).require_grad();
            let out = conv2d_with(kernels, &conv, x.clone());
            let r = pseudo::<Ad, 4>(out.dims(), 23, -1.0, 1.0, &device);
            let grads = (out.clone() * r).sum().backward();
            let bias = conv.bias.as_ref().expect("a bias").val();
            [
                values(out),
                values(x.grad(&grads).expect("d/dx")),
                values(conv.weight.val().grad(&grads).expect("d/dw")),
                values(bias.grad(&grads).expect("d/db")),
            ]
        };
        let (ours, stock) = (run(Kernels::Fast), run(Kernels::Burn));
        for (what, (a, b)) in ["out", "d/dx", "d/dw", "d/db"]
            .iter()
            .zip(ours.iter().zip(&stock))
        {
            assert_close(a, b, what, case);
        }
        let conv = build().valid();
        let x = input::<Cpu>(case, &device);
        let eval = |k| values(conv2d_with(k, &conv, x.clone()));
        assert_close(&eval(Kernels::Fast), &eval(Kernels::Burn), "eval out", case);
    }
}

/// Channel concatenation and the residual add (src/kernels/graph.rs) against Burn's `cat` and `+`: outputs and
/// every input's gradient, in training and inference, with inputs that are channel slices of a wider tensor
/// (C2f's split) and a slice used twice (its gradients summed). Exact: both only copy and add.
#[test]
fn concatenation_and_residual_add_match_burn() {
    use yolo_burn::kernels::{add_with, cat_with};
    let device = Default::default();
    let run = |k: Kernels| {
        let wide = pseudo::<Ad, 4>([3, 12, 5, 7], 11, -2.0, 2.0, &device).require_grad();
        let other = pseudo::<Ad, 4>([3, 4, 5, 7], 12, -2.0, 2.0, &device).require_grad();
        let half = wide.clone().narrow(1, 6, 6);
        let summed = add_with(k, half.clone(), wide.clone().narrow(1, 0, 6));
        let out = cat_with(k, vec![wide.clone(), summed, other.clone(), half], 1);
        // a weight per output element, so each gradient value is distinct
        let weights = pseudo::<Ad, 4>([3, 28, 5, 7], 13, -1.0, 1.0, &device);
        let grads = (out.clone() * weights).sum().backward();
        let eval = cat_with(
            k,
            vec![
                wide.clone().inner().narrow(1, 2, 3),
                add_with(k, other.clone().inner(), other.clone().inner()),
            ],
            1,
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
        let flat_grads = (flat.clone() * pseudo::<Ad, 3>([3, 4, 70], 14, -1.0, 1.0, &device))
            .sum()
            .backward();
        [
            values(out),
            values(wide.grad(&grads).expect("wide grad")),
            values(other.grad(&grads).expect("other grad")),
            values(eval),
            values(flat),
            values(wide.grad(&flat_grads).expect("wide grad")),
            values(other.grad(&flat_grads).expect("other grad")),
        ]
    };
    let (ours, stock) = (run(Kernels::Fast), run(Kernels::Burn));
    for (what, (a, b)) in [
        "out",
        "d/dwide",
        "d/dother",
        "eval out",
        "dim-2 out",
        "dim-2 d/dwide",
        "dim-2 d/dother",
    ]
    .iter()
    .zip(ours.iter().zip(&stock))
    {
        assert_eq!(a, b, "{what}");
    }
}

/// The neck's nearest-neighbour upsampling against Burn's broadcast: the output exactly, the gradient (each
/// input pixel's sum over its 2×2 block, summed in another order there) within 1e-6 of its largest value; on a
/// channel slice, in training and inference.
#[test]
fn upsampling_matches_burn() {
    use yolo_burn::kernels::upsample_nearest_with;
    let device = Default::default();
    let run = |k: Kernels| {
        let wide = pseudo::<Ad, 4>([2, 6, 5, 7], 21, -2.0, 2.0, &device).require_grad();
        let out = upsample_nearest_with(k, wide.clone().narrow(1, 2, 3), 2);
        let weights = pseudo::<Ad, 4>([2, 3, 10, 14], 22, -1.0, 1.0, &device);
        let grads = (out.clone() * weights).sum().backward();
        let eval = upsample_nearest_with(k, wide.clone().inner(), 3);
        [
            values(out),
            values(wide.grad(&grads).expect("grad")),
            values(eval),
        ]
    };
    let (ours, stock) = (run(Kernels::Fast), run(Kernels::Burn));
    assert_eq!(ours[0], stock[0], "out");
    assert_eq!(ours[2], stock[2], "eval out");
    let scale = stock[1].iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let err = ours[1]
        .iter()
        .zip(&stock[1])
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        err <= 1e-6 * scale,
        "gradient: max |diff| {err:e}, max {scale:e}"
    );
}
