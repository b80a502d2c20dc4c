//! Per-layer times of the conv kernels (`yolo_burn::kernels::conv`): forward, input gradient and weight gradient
//! of each 3×3 stride-1 conv shape of a YOLOv8n train step at 320 px (batch 8), in f32 and in f16 and bf16 (the
//! half tensors in memory, the upstream gradient in f32 as BatchNorm's backward hands it over), best of 5 runs
//! each, the precisions alternated layer by layer so that machine noise hits each alike.
//!
//! Why: the train-step benchmark (`yolo-burn bench`) sums ~60 convs of 20 shapes; a change that helps some shapes
//! and hurts others shows only here. `f16` weight gradients with at most 64 output channels take the `f32` route
//! (`conv::backward_weight_widened`) on the strength of this table (docs/benchmarks.md).
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo bench --bench conv_layers
//! ```

use std::time::Instant;

use half::{bf16, f16};
use yolo_burn::kernels::conv::{self, ConvGeometry};
use yolo_burn::kernels::half_gemm::{self, Elem};

/// `(c_in, c_out, size)` of YOLOv8n's 3×3 stride-1 convs at 320 px (C2f bottlenecks and the Detect head).
const SHAPES: [(usize, usize, usize); 14] = [
    (16, 16, 80),
    (32, 32, 40),
    (64, 64, 40),
    (64, 64, 20),
    (64, 64, 10),
    (64, 80, 40),
    (80, 80, 40),
    (80, 80, 20),
    (80, 80, 10),
    (128, 128, 10),
    (128, 64, 20),
    (128, 80, 20),
    (256, 64, 10),
    (256, 80, 10),
];

/// Best of 5 timed calls after one untimed, in ms.
fn best(mut f: impl FnMut()) -> f64 {
    f();
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::MAX, f64::min)
}

/// Forward, input gradient and weight gradient of `g` with `x` and `w` in type `T`.
fn times<T: Elem>(
    g: &ConvGeometry,
    to: fn(f32) -> T,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
) -> [f64; 3] {
    let x: Vec<T> = x.iter().map(|v| to(*v)).collect();
    let w: Vec<T> = w.iter().map(|v| to(*v)).collect();
    let mut dw = vec![0.0f32; g.weight_len()];
    [
        best(|| drop(std::hint::black_box(conv::forward(g, &x, &w)))),
        best(|| drop(std::hint::black_box(conv::backward_input(g, &w, dy)))),
        best(|| conv::backward_weight(g, &x, dy, &mut dw)),
    ]
}

fn main() {
    if !half_gemm::available() {
        eprintln!("no AVX-512 here: half tensors are widened to f32 before the kernels; nothing to compare");
        return;
    }
    let value = |i: usize, seed: usize| ((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0;
    println!("| conv | size | forward f32 / f16 / bf16 ms | input grad. f32 / f16 / bf16 | weight grad. f32 / f16 / bf16 |");
    println!("| --- | --- | --- | --- | --- |");
    let mut total = [[0.0; 3]; 3];
    for (c_in, c_out, size) in SHAPES {
        let g = ConvGeometry {
            batch: 8,
            c_in,
            h: size,
            w: size,
            c_out,
            kh: 3,
            kw: 3,
            stride: [1, 1],
            pad: [1, 1],
            groups: 1,
        };
        let x: Vec<f32> = (0..g.input_len()).map(|i| value(i, 1)).collect();
        let w: Vec<f32> = (0..g.weight_len()).map(|i| value(i, 2) * 0.1).collect();
        let dy: Vec<f32> = (0..g.output_len()).map(|i| value(i, 3) * 0.01).collect();
        let t = [
            times::<f32>(&g, |v| v, &x, &w, &dy),
            times::<f16>(&g, f16::from_f32, &x, &w, &dy),
            times::<bf16>(&g, bf16::from_f32, &x, &w, &dy),
        ];
        let cell = |op: usize| format!("{:.2} / {:.2} / {:.2}", t[0][op], t[1][op], t[2][op]);
        println!(
            "| {c_in} → {c_out} | {size}×{size} | {} | {} | {} |",
            cell(0),
            cell(1),
            cell(2)
        );
        for (p, row) in t.iter().enumerate() {
            for (op, v) in row.iter().enumerate() {
                total[p][op] += v;
            }
        }
    }
    let cell = |op: usize| {
        format!(
            "{:.1} / {:.1} / {:.1}",
            total[0][op], total[1][op], total[2][op]
        )
    };
    println!("| total | | {} | {} | {} |", cell(0), cell(1), cell(2));
}
