//! SPPF's max-pooling (`nn.MaxPool2d(k, 1, k // 2)`, src/kernels/graph/pool.rs) in `f32`, `f16` and `bf16`
//! against a direct transcription of ATen's CPU max-pool: each window padded with −∞ and scanned in row-major
//! order, `val > max || isnan(val)` choosing the element, the gradient added onto the chosen element in output
//! order in `f32` (rounded once to the half type). Exact equality: the forward copies values, and the reference
//! adds the same terms in the same order.
//!
//! The values are multiples of 1/4 in [−2, 2), so most windows hold ties, which is where a different tie rule
//! (the last maximum, or `>=`) would move a gradient; one input holds a NaN. Planes smaller than the window, a
//! channel slice, and inference (no autodiff) are covered. Burn's own path (edge padding, then Burn's max-pool) is
//! checked against ours on tie-free values.

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use yolo_burn::backend::Cpu;
use yolo_burn::kernels::{max_pool_same_with, Kernels};

type Ad = Autodiff<Cpu>;

const DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

/// Uniform values in `[lo, hi)` from a hash of `(seed, index)`, each rounded down to a multiple of `step`
/// (0: not rounded).
fn hashed(len: usize, seed: u64, lo: f32, hi: f32, step: f32) -> Vec<f32> {
    (0..len as u64)
        .map(|i| {
            let h =
                (i ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let h = (h ^ (h >> 31)).wrapping_mul(0x94D0_49BB_1331_11EB);
            let v = lo + (hi - lo) * ((h >> 40) as f32 / (1u64 << 24) as f32);
            if step > 0.0 {
                (v / step).floor() * step
            } else {
                v
            }
        })
        .collect()
}

fn tensor<B: Backend>(v: Vec<f32>, shape: [usize; 4], dtype: DType) -> Tensor<B, 4> {
    Tensor::<B, 4>::from_data(TensorData::new(v, shape), &Default::default()).cast(dtype)
}

fn values<B: Backend>(t: Tensor<B, 4>, dtype: DType, what: &str) -> Vec<f32> {
    assert_eq!(t.dtype(), dtype, "{what}: dtype");
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// `v` rounded to `dtype` (exact for values already of that type).
fn rounded(v: Vec<f32>, dtype: DType) -> Vec<f32> {
    let n = v.len();
    values(tensor::<Cpu>(v, [1, 1, 1, n], dtype), dtype, "rounded")
}

/// ATen's `cpu_max_pool` forward and backward for stride 1, padding k/2: the outputs, and `dout` added onto the
/// chosen elements in output order.
fn aten_max_pool(x: &[f32], dout: &[f32], [b, c, h, w]: [usize; 4], k: usize) -> [Vec<f32>; 2] {
    let p = k as isize / 2;
    let (mut out, mut dx) = (Vec::new(), vec![0f32; x.len()]);
    for plane in 0..b * c {
        let base = plane * h * w;
        for y in 0..h as isize {
            for xo in 0..w as isize {
                let (y0, x0) = ((y - p).max(0), (xo - p).max(0));
                let (y1, x1) = (
                    (y - p + k as isize).min(h as isize),
                    (xo - p + k as isize).min(w as isize),
                );
                let mut at = (y0 * w as isize + x0) as usize;
                let mut best = f32::NEG_INFINITY;
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        let i = (iy * w as isize + ix) as usize;
                        let v = x[base + i];
                        if v > best || v.is_nan() {
                            best = v;
                            at = i;
                        }
                    }
                }
                out.push(best);
                dx[base + at] += dout[base + (y * w as isize + xo) as usize];
            }
        }
    }
    [out, dx]
}

/// Equal, NaN matching NaN.
fn same(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
}

#[test]
fn max_pool_matches_aten_with_ties_small_planes_and_slices() {
    // (input shape, channels taken from 1, k)
    let cases = [
        ([2, 5, 7, 9], 3, 5),
        ([1, 4, 10, 10], 3, 5),
        ([2, 4, 3, 2], 2, 5), // planes smaller than the window
        ([1, 2, 1, 1], 1, 5),
        ([1, 3, 6, 11], 2, 3),
        ([1, 2, 9, 8], 1, 7),
    ];
    for dtype in DTYPES {
        for (n, &([b, c, h, w], take, k)) in cases.iter().enumerate() {
            let mut x = hashed(b * c * h * w, 31 + n as u64, -2.0, 2.0, 0.25);
            if n == 0 {
                // a NaN inside the slice taken below (channel 1 of image 0)
                x[h * w + 2 * w + 3] = f32::NAN;
            }
            let x = rounded(x, dtype);
            let shape = [b, take, h, w];
            let dout = rounded(
                hashed(b * take * h * w, 77 + n as u64, -1.0, 1.0, 0.0),
                dtype,
            );

            let wide = tensor::<Ad>(x.clone(), [b, c, h, w], dtype).require_grad();
            let out = max_pool_same_with(Kernels::Fast, wide.clone().narrow(1, 1, take), k);
            let weights = tensor::<Ad>(dout.clone(), shape, dtype);
            let grads = (out.clone() * weights).sum().backward();
            let out = values(out, dtype, "out");
            let dx = values(wide.grad(&grads).expect("grad"), dtype, "dx");
            let eval = values(
                max_pool_same_with(Kernels::Fast, wide.inner().narrow(1, 1, take), k),
                dtype,
                "eval out",
            );

            // the reference on the slice, its gradient placed back into the wide tensor
            let plane = h * w;
            let slice: Vec<f32> = (0..b)
                .flat_map(|i| x[(i * c + 1) * plane..][..take * plane].to_vec())
                .collect();
            let [want_out, want_dx] = aten_max_pool(&slice, &dout, shape, k);
            let mut want_wide = vec![0f32; x.len()];
            for i in 0..b {
                want_wide[(i * c + 1) * plane..][..take * plane]
                    .copy_from_slice(&want_dx[i * take * plane..][..take * plane]);
            }
            let want_wide = rounded(want_wide, dtype);
            let what = format!("{dtype:?} case {n} k {k}");
            assert!(same(&out, &want_out), "{what}: out");
            assert!(same(&eval, &want_out), "{what}: eval out");
            assert!(same(&dx, &want_wide), "{what}: dx\n{dx:?}\n{want_wide:?}");
            if n == 0 {
                assert!(
                    out.iter().any(|v| v.is_nan()),
                    "{what}: the NaN reached the output"
                );
            }
        }
    }
}

/// Burn's path (edge-padded, Burn's max-pool) and ours agree on tie-free values: outputs exactly, gradients to
/// `f32` rounding (the two may add an element's few terms in another order).
#[test]
fn max_pool_matches_burns_path_without_ties() {
    let shape = [2, 3, 10, 12];
    let run = |kernels: Kernels| {
        let x = tensor::<Ad>(hashed(720, 5, -2.0, 2.0, 0.0), shape, DType::F32).require_grad();
        let weights = tensor::<Ad>(hashed(720, 6, -1.0, 1.0, 0.0), shape, DType::F32);
        let out = max_pool_same_with(kernels, x.clone(), 5);
        let grads = (out.clone() * weights).sum().backward();
        [
            values(out, DType::F32, "out"),
            values(x.grad(&grads).expect("grad"), DType::F32, "dx"),
        ]
    };
    let (ours, stock) = (run(Kernels::Fast), run(Kernels::Burn));
    assert_eq!(ours[0], stock[0], "out");
    for (a, b) in ours[1].iter().zip(&stock[1]) {
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "dx {a} vs {b}");
    }
}
