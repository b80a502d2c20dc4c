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

/// The conv kernels on half-precision operands (`src/kernels/half_gemm.rs`: bf16 through each micro-kernel the
/// CPU runs, forced in turn: AMX tiles, `VDPBF16PS`, f32 FMAs on widened values; f16 always the last) against an
/// `f64` convolution of
/// the same values, for the forward and both gradients, over geometries that take each path: im2col (the
/// 3×3 stride-1 convs with 16–32 channels, which take the tap GEMMs in f32 but im2col in the half types, where
/// it measured faster; stride 2; 5×5 with 8 channels; more positions than one packed column block), an f16
/// weight gradient on f32 copies (at most 64 output channels: through the taps or im2col, with several images
/// per thread so that each run accumulates) and through the implicit GEMM (70), pointwise,
/// groups, a narrow weight gradient through the dot-product kernel, a channel slice of a wider tensor
/// (`forward_strided`), and shapes whose rows (`c_out`, `c_in·kh·kw` not multiples of 8), columns (positions not multiples of 32) and depths
/// (odd `k`) leave partial register tiles, masked stores and half-filled bf16 pairs.
///
/// Two value sets per geometry. First, values exactly representable in bf16 and f16 with few bits, so every
/// product and every partial sum is exact in `f32`: tolerance `|ours − f64| ≤ 1e-5 · Σ |terms|` per element,
/// which a dropped or duplicated term (off by ~Σ|terms| / K ≥ 2e-4 · Σ|terms| for the largest K here, 2 × 2304
/// weight-gradient terms) or a dropped tail lane (off by the whole sum) fails. Checked by mutation: masking the
/// last live lane out of `half_gemm`'s contiguous stores fails the im2col forward (stride 2, 13×15); dropping the
/// last column of its strided stores fails the taps' weight gradient. Measured: 0 (exact) for every kernel.
///
/// Second, the same x and w spread over 2^-4..2^4 (still exact in both types, but the f32 sums round) and an
/// arbitrary `f32` upstream gradient `dy`, as BatchNorm's backward hands it over. Products of bf16 operands
/// (VDPBF16PS) round `dy` to bf16 first, a relative error of at most 2^-8 per term (bf16 has 8 significant
/// bits), so both gradients of the bf16-product kernels are held to `4e-3 · Σ|terms|`; everything else to
/// `1e-5 · Σ|terms|`. Measured on this grid (largest error / Σ|terms|): AMX forward 1.7e-7, input gradient
/// 3.2e-3, weight gradient 1.4e-3; `VDPBF16PS` 4.1e-7, 3.2e-3, 1.4e-3; bf16 and f16 on f32 FMAs (widened while
/// packing) 3.4e-7, 2.4e-7, 1.7e-7. Mutation: dropping the last live column of the AMX kernel's buffered
/// stores fails it.
#[test]
fn half_kernels_match_an_f64_reference() {
    use half::{bf16, f16};
    use yolo_burn::kernels::conv::{self, ConvGeometry};
    use yolo_burn::kernels::half_gemm;
    if !half_gemm::available() {
        eprintln!(
            "no AVX-512 here: half tensors are widened to f32 before the kernels, nothing to test"
        );
        return;
    }
    let base = ConvGeometry {
        batch: 2,
        c_in: 16,
        h: 9,
        w: 11,
        c_out: 24,
        kh: 3,
        kw: 3,
        stride: [1, 1],
        pad: [1, 1],
        groups: 1,
    };
    let grid = [
        // 3×3 stride 1 with 16 and 32 channels (the tap GEMMs' shapes in f32), odd c_out
        base,
        ConvGeometry {
            c_in: 32,
            c_out: 13,
            h: 7,
            w: 37,
            ..base
        },
        // im2col: stride 2, and 5×5 with 8 channels (k = 200); odd sizes
        ConvGeometry {
            stride: [2, 2],
            c_in: 8,
            h: 13,
            w: 15,
            ..base
        },
        ConvGeometry {
            c_in: 8,
            c_out: 9,
            kh: 5,
            kw: 5,
            pad: [2, 2],
            ..base
        },
        // 3 input channels: k = 27, odd; a narrow weight gradient (16 × 27 over 1,024 positions) takes the
        // dot-product kernel
        ConvGeometry {
            c_in: 3,
            c_out: 16,
            h: 64,
            w: 64,
            stride: [2, 2],
            ..base
        },
        // pointwise, and a deep pointwise (k = 256, several packed blocks in f32)
        ConvGeometry {
            kh: 1,
            kw: 1,
            pad: [0, 0],
            c_out: 40,
            ..base
        },
        ConvGeometry {
            kh: 1,
            kw: 1,
            pad: [0, 0],
            c_in: 256,
            c_out: 17,
            h: 5,
            w: 7,
            ..base
        },
        // groups (YOLO11's depthwise conv), and 2 groups through the taps
        ConvGeometry {
            c_in: 16,
            c_out: 16,
            groups: 16,
            ..base
        },
        ConvGeometry {
            c_in: 32,
            c_out: 32,
            groups: 2,
            ..base
        },
        // one image: the GEMM itself runs in parallel
        ConvGeometry { batch: 1, ..base },
        // more images than threads (up to 4): each thread's run adds a second image's weight gradient to the
        // first's, through the taps (16 channels) and through im2col (40)
        ConvGeometry { batch: 5, ..base },
        ConvGeometry {
            batch: 5,
            c_in: 40,
            h: 6,
            w: 7,
            ..base
        },
        // more positions than one packed block of columns (NC = 1536), k = 288 over two depth blocks
        ConvGeometry {
            c_in: 32,
            c_out: 16,
            h: 40,
            w: 41,
            ..base
        },
        // 16 → 16 over 1,056 positions, 3 images: a bf16 weight gradient too narrow for the half GEMM takes the
        // f32 route (`conv::backward_weight_widened`), accumulating a second image on 1 or 2 threads
        ConvGeometry {
            batch: 3,
            c_in: 16,
            c_out: 16,
            h: 32,
            w: 33,
            ..base
        },
        // more than 64 output channels: an f16 weight gradient keeps the implicit GEMM (64 or fewer take the
        // f32 route, `conv::backward_weight_widened`)
        ConvGeometry {
            c_in: 24,
            c_out: 70,
            h: 6,
            w: 9,
            ..base
        },
        // deep: k = 2304 in the forward, 2 × 100 weight-gradient terms per image
        ConvGeometry {
            c_in: 256,
            c_out: 64,
            h: 10,
            w: 10,
            ..base
        },
    ];
    // Values exact in bf16 and f16 (8 significant bits, small exponent range).
    let exact = |len: usize, seed: usize| -> Vec<f32> {
        (0..len)
            .map(|i| {
                let v = (i * 7919 + seed * 104_729) % 509;
                (v as f32 - 254.0) / 256.0
            })
            .collect()
    };
    // Still exact in bf16 and f16, but spread over 2^-4..2^4, so the f32 sums round.
    let spread = |len: usize, seed: usize| -> Vec<f32> {
        exact(len, seed)
            .iter()
            .enumerate()
            .map(|(i, v)| v * (((i * 31 + seed * 17) % 9) as f32 - 4.0).exp2())
            .collect()
    };
    // Any f32 (24 significant bits): the upstream gradient as BatchNorm's backward hands it over.
    let any = |len: usize, seed: usize| -> Vec<f32> {
        (0..len)
            .map(|i| {
                let h = ((i as u64) ^ (seed as u64) << 32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                ((h >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 3.0
            })
            .collect()
    };
    // Every bf16 micro-kernel this CPU runs (each forced in turn), then f16 (always f32 FMAs).
    use half_gemm::Compute;
    let kernels: Vec<Compute> = [Compute::AmxBf16, Compute::Bf16Dot, Compute::F32Fma]
        .into_iter()
        .filter(|c| half_gemm::force(Some(*c)))
        .collect();
    let slots = kernels.len() + 1;
    // worst error / Σ|terms|: [exact, spread][bf16 per kernel.., f16][forward, input gradient, weight gradient]
    let mut worst = vec![vec![[0.0f64; 3]; slots]; 2];
    for (set, g) in grid.iter().flat_map(|g| [(0, *g), (1, *g)]) {
        let (oh, ow) = (g.out_h(), g.out_w());
        let (cin_g, cout_g) = (g.c_in / g.groups, g.c_out / g.groups);
        // x as a channel slice: images `extra` channels apart
        let extra = 3;
        let stride = (g.c_in + extra) * g.h * g.w;
        let values = |len, seed| {
            if set == 0 {
                exact(len, seed)
            } else {
                spread(len, seed)
            }
        };
        let wide = values(g.batch * stride, 1);
        let x: Vec<f32> = (0..g.batch)
            .flat_map(|b| wide[b * stride..][..g.c_in * g.h * g.w].to_vec())
            .collect();
        let w = values(g.weight_len(), 2);
        let dy = if set == 0 {
            exact(g.output_len(), 3)
        } else {
            any(g.output_len(), 3)
        };
        let x_at = |b: usize, c: usize, iy: isize, ix: isize| -> Option<f64> {
            (iy >= 0 && ix >= 0 && iy < g.h as isize && ix < g.w as isize)
                .then(|| f64::from(x[((b * g.c_in + c) * g.h + iy as usize) * g.w + ix as usize]))
        };
        // f64 reference: out[b, co, oy, ox] and its per-element Σ|terms|; dx and dw the same way.
        let mut out = vec![(0.0f64, 0.0f64); g.output_len()];
        let mut dx = vec![(0.0f64, 0.0f64); g.input_len()];
        let mut dw = vec![(0.0f64, 0.0f64); g.weight_len()];
        for b in 0..g.batch {
            for co in 0..g.c_out {
                let grp = co / cout_g;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let o = ((b * g.c_out + co) * oh + oy) * ow + ox;
                        let d = f64::from(dy[o]);
                        for ci in 0..cin_g {
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    let iy = (oy * g.stride[0] + ky) as isize - g.pad[0] as isize;
                                    let ix = (ox * g.stride[1] + kx) as isize - g.pad[1] as isize;
                                    let c = grp * cin_g + ci;
                                    let Some(xv) = x_at(b, c, iy, ix) else {
                                        continue;
                                    };
                                    let wi = ((co * cin_g + ci) * g.kh + ky) * g.kw + kx;
                                    let wv = f64::from(w[wi]);
                                    let add = |acc: &mut (f64, f64), t: f64| {
                                        acc.0 += t;
                                        acc.1 += t.abs();
                                    };
                                    add(&mut out[o], xv * wv);
                                    let xi =
                                        ((b * g.c_in + c) * g.h + iy as usize) * g.w + ix as usize;
                                    add(&mut dx[xi], wv * d);
                                    add(&mut dw[wi], xv * d);
                                }
                            }
                        }
                    }
                }
            }
        }
        let mut check = |got: &[f32], want: &[(f64, f64)], what: &str, slot: [usize; 2]| {
            // bf16 products round the f32 `dy` to bf16 (a relative 2^-8 per term at most); everything else is exact
            // products summed in f32.
            let bf16_products = kernels.get(slot[0]).is_some_and(|c| *c != Compute::F32Fma);
            let tol = if bf16_products && slot[1] > 0 && set == 1 {
                4e-3
            } else {
                1e-5
            };
            assert_eq!(got.len(), want.len());
            for (i, (v, (sum, scale))) in got.iter().zip(want).enumerate() {
                let err = (f64::from(*v) - sum).abs();
                let w = &mut worst[set][slot[0]][slot[1]];
                *w = w.max(err / scale.max(1e-30));
                assert!(
                    err <= tol * scale + 1e-30,
                    "{what} {g:?} (value set {set}): element {i} = {v}, f64 {sum} (Σ|terms| {scale})"
                );
            }
        };
        fn run<T: half_gemm::Elem>(
            g: &ConvGeometry,
            to: impl Fn(f32) -> T,
            wide: &[f32],
            stride: usize,
            w: &[f32],
            dy: &[f32],
        ) -> [Vec<f32>; 3] {
            let wide: Vec<T> = wide.iter().map(|v| to(*v)).collect();
            let w: Vec<T> = w.iter().map(|v| to(*v)).collect();
            let x: Vec<T> = (0..g.batch)
                .flat_map(|b| wide[b * stride..][..g.c_in * g.h * g.w].to_vec())
                .collect();
            let out = conv::forward_strided(g, &wide, stride, &w);
            assert_eq!(out, conv::forward(g, &x, &w), "forward_strided vs forward");
            let dx = conv::backward_input(g, &w, dy);
            let mut dw = vec![f32::NAN; g.weight_len()];
            conv::backward_weight_strided(g, &wide, stride, dy, &mut dw);
            [out, dx, dw]
        }
        let mut results = Vec::new();
        for (slot, compute) in kernels.iter().enumerate() {
            assert!(half_gemm::force(Some(*compute)));
            let got = run(&g, bf16::from_f32, &wide, stride, &w, &dy);
            results.push((slot, format!("bf16 ({compute:?})"), got));
        }
        half_gemm::force(None);
        let got = run(&g, f16::from_f32, &wide, stride, &w, &dy);
        results.push((kernels.len(), "f16".to_string(), got));
        for (slot, t, [o, dxs, dws]) in results {
            check(&o, &out, &format!("{t} forward"), [slot, 0]);
            check(&dxs, &dx, &format!("{t} input gradient"), [slot, 1]);
            check(&dws, &dw, &format!("{t} weight gradient"), [slot, 2]);
        }
    }
    for (set, name) in [(0, "exact sums"), (1, "rounded sums, f32 dy")] {
        for (t, [f, dx, dw]) in worst[set].iter().enumerate() {
            let dtype = kernels
                .get(t)
                .map_or("f16".to_string(), |c| format!("bf16 ({c:?})"));
            eprintln!(
                "{name}, {dtype}: largest error / Σ|terms|: forward {f:.1e}, input gradient {dx:.1e}, \
                 weight gradient {dw:.1e}"
            );
        }
    }
}
