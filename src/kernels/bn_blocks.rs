//! The half-precision forward of the Conv block (conv → BatchNorm → optional SiLU) on the conv's output as the
//! GEMM finishes it, one cache-sized block at a time ([`conv::forward_image_blocks`]).
//!
//! Why: the unfused forward wrote the whole conv output in `f32`, read it back for the batch statistics, and
//! read it again to normalise and round: three passes over a tensor twice the half output's size, on the
//! largest activations of the network. Here each block is consumed while it is in L2 — in training its
//! moments are taken and it is rounded into the kept conv output; in inference it is normalised, activated and
//! rounded into the output — and only half tensors reach memory.
//!
//! Training normalises the rounded conv output, as autocast does (a half conv returns a half tensor and
//! BatchNorm reads that); the statistics still come from the `f32` accumulators, merged in a fixed order, so a
//! run is deterministic for a given thread count.

use super::bn_act::{self, BatchStats, Moments};
use super::conv::{self, ConvGeometry};
use super::half_gemm::Elem;
use super::half_slice::HalfSlice;
use super::par_vec_of;

/// Elements of a plane normalised at a time from a half tensor: the widened input and the `f32` output fit in L1.
const BLOCK: usize = 2048;

/// What the training forward returns: the activation, the conv output the backward keeps (both `[B, C, HW]`
/// in the half type), and the batch statistics.
pub struct Train<H> {
    pub out: Vec<H>,
    pub y: Vec<H>,
    pub stats: BatchStats,
}

/// Training: the conv of images `x[b · x_stride..]` with `w`, BatchNorm on the batch statistics with `gamma`
/// and `beta`, and SiLU when `act`. Where [`conv::blocks_apply`].
#[allow(clippy::too_many_arguments)]
pub fn train<H: Elem>(
    g: &ConvGeometry,
    x: &[H],
    x_stride: usize,
    w: &[H],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    act: bool,
) -> Train<H>
where
    [H]: HalfSlice,
{
    let (c, hw) = (g.c_out, g.out_hw());
    let in_img = g.c_in * g.h * g.w;
    let (y, moments) = par_vec_of(g.output_len(), c * hw, H::ZERO, |b, y| {
        let mut moments = vec![Moments::default(); c];
        conv::forward_image_blocks(g, &x[b * x_stride..][..in_img], w, |block| {
            for r in 0..block.rows {
                let ch = block.c0 + r;
                let row = &block.data[r * block.cols..][..block.cols];
                moments[ch].merge(Moments::of(row));
                y[ch * hw + block.j0..][..block.cols].round_from(row);
            }
        });
        moments
    });
    let per_channel: Vec<Moments> = (0..c)
        .map(|ch| {
            let mut m = Moments::default();
            for image in &moments {
                m.merge(image[ch]);
            }
            m
        })
        .collect();
    let stats = bn_act::stats_from_moments(&per_channel, eps);
    let (scale, shift) = stats.scale_shift(gamma, beta);
    let out = par_vec_of(y.len(), hw.max(1), H::ZERO, |p, out| {
        let ch = p % c;
        let plane = &y[p * hw..][..hw];
        if bn_act::scale_shift_act_rounded(plane, scale[ch], shift[ch], act, out) {
            return;
        }
        let mut wide = [0.0f32; BLOCK];
        let mut act_out = [0.0f32; BLOCK];
        for (src, dst) in plane.chunks(BLOCK).zip(out.chunks_mut(BLOCK)) {
            let n = src.len();
            src.widen_into(&mut wide[..n]);
            bn_act::plane_scale_shift_act(&wide[..n], scale[ch], shift[ch], act, &mut act_out[..n]);
            dst.round_from(&act_out[..n]);
        }
    })
    .0;
    Train { out, y, stats }
}

/// Inference: `act(conv(x, w) · scale[c] + shift[c])` (BatchNorm on its running statistics folded into `scale`
/// and `shift`), each block normalised and rounded as the GEMM finishes it. Where [`conv::blocks_apply`].
pub fn eval<H: Elem>(
    g: &ConvGeometry,
    x: &[H],
    x_stride: usize,
    w: &[H],
    scale: &[f32],
    shift: &[f32],
    act: bool,
) -> Vec<H>
where
    [H]: HalfSlice,
{
    let (c, hw) = (g.c_out, g.out_hw());
    let in_img = g.c_in * g.h * g.w;
    par_vec_of(g.output_len(), c * hw, H::ZERO, |b, out| {
        let mut act_out = [0.0f32; BLOCK];
        conv::forward_image_blocks(g, &x[b * x_stride..][..in_img], w, |block| {
            for r in 0..block.rows {
                let ch = block.c0 + r;
                let row = &block.data[r * block.cols..][..block.cols];
                let dst = &mut out[ch * hw + block.j0..][..block.cols];
                if bn_act::scale_shift_act_rounded(row, scale[ch], shift[ch], act, dst) {
                    continue;
                }
                for (src, dst) in row.chunks(BLOCK).zip(dst.chunks_mut(BLOCK)) {
                    let n = src.len();
                    bn_act::plane_scale_shift_act(
                        src,
                        scale[ch],
                        shift[ch],
                        act,
                        &mut act_out[..n],
                    );
                    dst.round_from(&act_out[..n]);
                }
            }
        });
    })
    .0
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    fn geometries() -> Vec<(&'static str, ConvGeometry)> {
        let g = |c_in, c_out, hw, k, stride, groups| ConvGeometry {
            batch: 3,
            c_in,
            h: hw,
            w: hw,
            c_out,
            kh: k,
            kw: k,
            stride: [stride; 2],
            pad: [k / 2; 2],
            groups,
        };
        // More output pixels than one GEMM block (1536) with a short last block, and channel counts off the
        // 8-row register tile.
        vec![
            ("3x3 stride 1 (implicit GEMM)", g(5, 7, 41, 3, 1, 1)),
            ("1x1 (pointwise)", g(16, 9, 40, 1, 1, 1)),
            ("3x3 stride 2 (im2col)", g(4, 6, 81, 3, 2, 1)),
            ("3x3 stride 1, 2 groups", g(4, 6, 41, 3, 1, 2)),
        ]
    }

    fn values<H: Elem>(n: usize, seed: usize, from: fn(f32) -> H) -> Vec<H> {
        (0..n)
            .map(|i| from((((i * 7919 + seed * 104729) % 2003) as f32 - 1001.0) / 700.0))
            .collect()
    }

    fn widen<H: Elem>(v: &[H]) -> Vec<f32>
    where
        [H]: HalfSlice,
    {
        let mut out = vec![0.0; v.len()];
        v.widen_into(&mut out);
        out
    }

    fn round<H: Elem>(v: &[f32]) -> Vec<H>
    where
        [H]: HalfSlice,
    {
        let mut out = vec![H::ZERO; v.len()];
        out.round_from(v);
        out
    }

    /// The block forward equals the unfused one, `conv::forward` then the plane-wise passes: the kept conv
    /// output and both activations bit for bit (the same GEMM, rounded once; the epilogue's reciprocal sigmoid
    /// falls back to the division wherever the rounding could tell them apart), and the batch statistics to
    /// 1e-6 of the channel's standard deviation (mean) and of the variance (the same moments, merged over blocks
    /// instead of planes).
    fn matches_unfused<H: Elem + PartialEq + std::fmt::Debug>(from: fn(f32) -> H)
    where
        [H]: HalfSlice,
    {
        for (name, g) in geometries() {
            assert!(
                conv::blocks_apply::<H>(&g),
                "{name}: the block path must run"
            );
            let x = values(g.input_len(), 1, from);
            let w = values(g.weight_len(), 2, from);
            let (c, hw) = (g.c_out, g.out_hw());
            let gamma: Vec<f32> = (0..c).map(|i| 0.5 + i as f32 / 10.0).collect();
            let beta: Vec<f32> = (0..c).map(|i| i as f32 / 7.0 - 0.3).collect();
            let in_img = g.c_in * g.h * g.w;
            let y32 = conv::forward(&g, &x, &w);
            let want = bn_act::batch_stats(&y32, c, hw, 1e-3);
            for act in [true, false] {
                let t = train(&g, &x, in_img, &w, &gamma, &beta, 1e-3, act);
                assert_eq!(t.y, round::<H>(&y32), "{name}: kept conv output");
                for i in 0..c {
                    // A mean near zero is known to the data's scale, not its own.
                    let std = want.var[i].sqrt();
                    let (a, b) = (t.stats.mean[i], want.mean[i]);
                    assert!((a - b).abs() <= 1e-6 * std, "{name}: mean[{i}] {a} vs {b}");
                    let (a, b) = (t.stats.var[i], want.var[i]);
                    assert!((a - b).abs() <= 1e-6 * b, "{name}: var[{i}] {a} vs {b}");
                }
                assert_eq!(t.stats.count, want.count);
                let (scale, shift) = t.stats.scale_shift(&gamma, &beta);
                let normalised = bn_act::scale_shift_act(&widen(&t.y), c, hw, &scale, &shift, act);
                assert_eq!(t.out, round::<H>(&normalised), "{name}: training output");
                let e = eval(&g, &x, in_img, &w, &scale, &shift, act);
                let unfused = bn_act::scale_shift_act(&y32, c, hw, &scale, &shift, act);
                assert_eq!(e, round::<H>(&unfused), "{name}: inference output");
            }
        }
    }

    /// On a 2-thread pool: with at least as many images as threads, the block path runs (asserted).
    fn on_two_threads(f: impl FnOnce() + Send) {
        if !crate::kernels::half_gemm::available() {
            eprintln!("skipped: this CPU has no AVX-512, so the block forward never runs");
            return;
        }
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build();
        pool.expect("a 2-thread pool").install(f);
    }

    #[test]
    fn bf16_blocks_match_the_unfused_forward() {
        on_two_threads(|| matches_unfused::<bf16>(bf16::from_f32));
    }

    #[test]
    fn f16_blocks_match_the_unfused_forward() {
        on_two_threads(|| matches_unfused::<f16>(f16::from_f32));
    }
}
