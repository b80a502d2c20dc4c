//! BatchNorm2d followed by an optional SiLU, fused, on contiguous `[B, C, HW]` `f32` slices: batch statistics,
//! the normalised activation, and its backward pass.
//!
//! Why fused: Burn's BatchNorm is six broadcast tensor ops (and as many again in backward), each a full pass
//! over the activation through burn-flex's strided iterator, and that was the largest single cost of a YOLOv8n
//! train step (docs/benchmarks.md). Here the forward is two passes (statistics, then output) and the backward
//! two (sums, then gradient), vectorised, with rayon over the `(b, c)` planes.
//!
//! Statistics follow PyTorch: the output is normalised by the biased batch variance, and the running variance
//! is updated with the unbiased one (Burn's BatchNorm uses the biased one for both).

use multiversion::multiversion;

mod half_in;
pub(super) use half_in::scale_shift_act_rounded;

pub use super::cast::Floats;
use rayon::prelude::*;

/// Per-channel batch statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchStats {
    pub mean: Vec<f32>,
    /// Biased variance (divides by `N`), the one the forward normalises with.
    pub var: Vec<f32>,
    /// `1 / sqrt(var + eps)`.
    pub invstd: Vec<f32>,
    /// Elements per channel, `B · HW`.
    pub count: usize,
}

impl BatchStats {
    /// BatchNorm with these statistics and the affine `gamma`, `beta` as one multiply-add per channel:
    /// `(scale, shift)` with `scale = gamma · invstd`, `shift = beta − mean · scale`.
    pub fn scale_shift(&self, gamma: &[f32], beta: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let scale: Vec<f32> = gamma.iter().zip(&self.invstd).map(|(g, s)| g * s).collect();
        let shift = (0..scale.len())
            .map(|i| beta[i] - self.mean[i] * scale[i])
            .collect();
        (scale, shift)
    }

    /// The unbiased variance PyTorch feeds its running estimate.
    pub fn unbiased_var(&self) -> Vec<f32> {
        let n = self.count as f64;
        let factor = if self.count > 1 { n / (n - 1.0) } else { 1.0 };
        self.var
            .iter()
            .map(|v| (f64::from(*v) * factor) as f32)
            .collect()
    }
}

/// Mean and sum of squared deviations of each `(b, c)` plane, combined per channel with Chan's formula.
pub fn batch_stats(y: &[f32], channels: usize, hw: usize, eps: f64) -> BatchStats {
    let planes: Vec<Moments> = y.par_chunks(hw).map(Moments::of).collect();
    let batch = planes.len() / channels.max(1);
    let per_channel: Vec<Moments> = (0..channels)
        .map(|c| {
            let mut m = Moments::default();
            for b in 0..batch {
                m.merge(planes[b * channels + c]);
            }
            m
        })
        .collect();
    stats_from_moments(&per_channel, eps)
}

/// Each channel's statistics from its moments over the whole batch.
pub fn stats_from_moments(per_channel: &[Moments], eps: f64) -> BatchStats {
    let channels = per_channel.len();
    let mut mean = vec![0.0f32; channels];
    let mut var = vec![0.0f32; channels];
    let mut invstd = vec![0.0f32; channels];
    for (c, m) in per_channel.iter().enumerate() {
        let v = if m.n > 0.0 { m.m2 / m.n } else { 0.0 };
        mean[c] = m.mean as f32;
        var[c] = v as f32;
        invstd[c] = (1.0 / (v + eps).sqrt()) as f32;
    }
    BatchStats {
        mean,
        var,
        invstd,
        count: per_channel.first().map_or(0, |m| m.n as usize),
    }
}

/// Count, mean and sum of squared deviations of some values, in `f64`: what a channel's statistics need, merged
/// part by part (planes, or the blocks of a plane) with Chan et al.'s pairwise formula, which keeps the digits
/// a one-pass `Σx²` would lose.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    pub n: f64,
    pub mean: f64,
    pub m2: f64,
}

impl Moments {
    pub fn of(x: &[f32]) -> Self {
        let (mean, m2) = plane_moments(x);
        Moments {
            n: x.len() as f64,
            mean,
            m2,
        }
    }

    /// `self` becomes the moments of both parts.
    pub fn merge(&mut self, other: Moments) {
        let total = self.n + other.n;
        if total == 0.0 {
            return;
        }
        let delta = other.mean - self.mean;
        self.mean += delta * other.n / total;
        self.m2 += other.m2 + delta * delta * self.n * other.n / total;
        self.n = total;
    }
}

/// `(mean, Σ (x − mean)²)` of one plane; 16 lanes of `f32` partial sums, combined in `f64`.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn plane_moments(x: &[f32]) -> (f64, f64) {
    let n = x.len().max(1) as f64;
    let sum = lane_sum(x, |v| v);
    let mean = sum / n;
    let m = mean as f32;
    let m2 = lane_sum(x, |v| (v - m) * (v - m));
    // The f32 mean leaves a residual Σ(x − m) = sum − n·m; correct M2 for it exactly.
    let residual = sum - n * f64::from(m);
    (mean, m2 - residual * residual / n)
}

#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut lanes = [0.0f32; 16];
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (l, v) in lanes.iter_mut().zip(chunk) {
            *l += f(*v);
        }
    }
    let mut total: f64 = lanes.iter().map(|v| f64::from(*v)).sum();
    total += tail.iter().map(|v| f64::from(f(*v))).sum::<f64>();
    total
}

/// `Σ_{b, hw} y[b, c, hw]` per channel (a bias gradient), summed in `f64` in a fixed order.
pub fn channel_sums(y: &[f32], channels: usize, hw: usize) -> Vec<f32> {
    let planes: Vec<f64> = y.par_chunks(hw).map(|p| lane_sum(p, |v| v)).collect();
    let mut sums = vec![0.0f64; channels];
    for (i, p) in planes.iter().enumerate() {
        sums[i % channels] += p;
    }
    sums.into_iter().map(|v| v as f32).collect()
}

/// `out = act(y · scale[c] + shift[c])` for every plane; `scale`/`shift` fold BatchNorm (batch or running
/// statistics) into one multiply-add.
pub fn scale_shift_act(
    y: &[f32],
    channels: usize,
    hw: usize,
    scale: &[f32],
    shift: &[f32],
    act: bool,
) -> Vec<f32> {
    super::par_vec(y.len(), hw, |i, o| {
        scale_shift_act_plane(y, channels, hw, scale, shift, act, i, o)
    })
    .0
}

/// Elements `at..at + out.len()` of [`scale_shift_act`], which lie in one plane, written into `out`.
#[allow(clippy::too_many_arguments)]
pub fn scale_shift_act_at(
    y: &[f32],
    channels: usize,
    hw: usize,
    scale: &[f32],
    shift: &[f32],
    act: bool,
    at: usize,
    out: &mut [f32],
) {
    let c = (at / hw.max(1)) % channels;
    plane_scale_shift_act(&y[at..][..out.len()], scale[c], shift[c], act, out);
}

/// Plane `i` (of `hw` elements, channel `i % channels`) of [`scale_shift_act`], written into `out`.
#[allow(clippy::too_many_arguments)]
pub fn scale_shift_act_plane(
    y: &[f32],
    channels: usize,
    hw: usize,
    scale: &[f32],
    shift: &[f32],
    act: bool,
    i: usize,
    out: &mut [f32],
) {
    let c = i % channels;
    plane_scale_shift_act(&y[i * hw..][..out.len()], scale[c], shift[c], act, out);
}

/// In place: `y = act(y · scale[c] + shift[c])`.
pub fn scale_shift_act_in_place(
    y: &mut [f32],
    channels: usize,
    hw: usize,
    scale: &[f32],
    shift: &[f32],
    act: bool,
) {
    y.par_chunks_mut(hw).enumerate().for_each(|(i, y)| {
        let c = i % channels;
        plane_scale_shift_act_in_place(y, scale[c], shift[c], act);
    });
}

#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
pub(super) fn plane_scale_shift_act(y: &[f32], scale: f32, shift: f32, act: bool, out: &mut [f32]) {
    if act {
        for (o, y) in out.iter_mut().zip(y) {
            *o = silu(y * scale + shift);
        }
    } else {
        for (o, y) in out.iter_mut().zip(y) {
            *o = y * scale + shift;
        }
    }
}

#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn plane_scale_shift_act_in_place(y: &mut [f32], scale: f32, shift: f32, act: bool) {
    if act {
        for y in y.iter_mut() {
            *y = silu(*y * scale + shift);
        }
    } else {
        for y in y.iter_mut() {
            *y = *y * scale + shift;
        }
    }
}

/// Gradients of `out = act(gamma · (y − mean) · invstd + beta)` with batch statistics.
pub struct BnActGrads {
    /// `d loss / d y`, `[B, C, HW]`.
    pub dy: Vec<f32>,
    pub dgamma: Vec<f32>,
    pub dbeta: Vec<f32>,
}

/// The backward pass of the training-mode forward ([`batch_stats`] then [`scale_shift_act`]), including the
/// gradient through the batch mean and variance.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    y: Floats,
    dout: Floats,
    channels: usize,
    hw: usize,
    stats: &BatchStats,
    gamma: &[f32],
    beta: &[f32],
    act: bool,
) -> BnActGrads {
    let (mut dy, sums) = backward_sums(y, dout, channels, hw, stats, gamma, beta, act);
    dy.par_chunks_mut(hw)
        .enumerate()
        .for_each(|(i, dz)| affine_plane(dz, y, i, hw, sums.coef[i % channels], |_, _| {}));
    BnActGrads {
        dy,
        dgamma: sums.dgamma,
        dbeta: sums.dbeta,
    }
}

/// [`backward`] with `dy` rounded to a half type block by block as pass 2 computes it: for a conv whose
/// gradient GEMMs multiply `bf16` products, which round `dy` to `bf16` when they pack it anyway (as autocast's
/// BatchNorm backward returns a `bf16` gradient), so the `f32` `dy` is never stored and the GEMMs read half the
/// bytes.
#[allow(clippy::too_many_arguments)]
pub fn backward_rounded<H: super::half_gemm::Elem>(
    y: Floats,
    dout: Floats,
    channels: usize,
    hw: usize,
    stats: &BatchStats,
    gamma: &[f32],
    beta: &[f32],
    act: bool,
) -> (Vec<H>, Vec<f32>, Vec<f32>)
where
    [H]: super::half_slice::HalfSlice,
{
    use super::half_slice::HalfSlice;
    let (mut dz, sums) = backward_sums(y, dout, channels, hw, stats, gamma, beta, act);
    // Zeroed by the allocator (fresh pages are zero already), not by a fill pass that every element overwrites.
    let mut dy = bytemuck::zeroed_vec::<H>(dz.len());
    let planes = dz
        .par_chunks_mut(hw.max(1))
        .zip(dy.par_chunks_mut(hw.max(1)));
    planes.enumerate().for_each(|(i, (dz, dy))| {
        affine_plane(dz, y, i, hw, sums.coef[i % channels], |at, block| {
            dy[at..][..block.len()].round_from(block)
        })
    });
    (dy, sums.dgamma, sums.dbeta)
}

/// Pass 2 on plane `i` (`hw` elements): `dz` becomes `dy = a·dz + b·y + c0`, one L1-sized block of `y` widened
/// at a time, and `done(at, block)` sees each finished block (`at`: its offset in the plane) while it is in
/// cache.
fn affine_plane(
    dz: &mut [f32],
    y: Floats,
    i: usize,
    hw: usize,
    (a, b, c0): (f32, f32, f32),
    mut done: impl FnMut(usize, &[f32]),
) {
    let step = y.block_len(hw).max(1);
    for (k, dz) in dz.chunks_mut(step).enumerate() {
        let block = i * hw + k * step..i * hw + k * step + dz.len();
        if !half_in::plane_affine2(dz, y, block.clone(), (a, b, c0)) {
            y.with_f32(block, |y| plane_affine2(dz, y, a, b, c0));
        }
        done(k * step, dz);
    }
}

/// What pass 1 of the backward gives pass 2: per channel `dy = a·dz + b·y + c0`'s coefficients, and the
/// affine's gradients.
struct ChannelSums {
    coef: Vec<(f32, f32, f32)>,
    dgamma: Vec<f32>,
    dbeta: Vec<f32>,
}

/// Pass 1: `dz = dout · act'(z)` (returned), and per channel the sums pass 2 needs.
#[allow(clippy::too_many_arguments)]
fn backward_sums(
    y: Floats,
    dout: Floats,
    channels: usize,
    hw: usize,
    stats: &BatchStats,
    gamma: &[f32],
    beta: &[f32],
    act: bool,
) -> (Vec<f32>, ChannelSums) {
    // y and dout may be half-precision tensors: they are widened a block at a time (`Floats::with_f32`), so
    // the widened copies stay in L1 instead of making a plane's round trip through memory.
    let step = y.block_len(hw);
    let (dz, sums) = super::par_vec(y.len(), hw, |i, dz| {
        let c = i % channels;
        let mut totals = (0.0f64, 0.0f64);
        for (k, dz) in dz.chunks_mut(step.max(1)).enumerate() {
            let block = i * hw + k * step..i * hw + k * step + dz.len();
            let coef = [stats.mean[c], stats.invstd[c], gamma[c], beta[c]];
            let fused = half_in::plane_dz(y, dout, block.clone(), coef, act, dz);
            let (s_dz, s_dzx) = fused.unwrap_or_else(|| {
                y.with_f32(block.clone(), |y| {
                    dout.with_f32(block, |dout| {
                        plane_dz(
                            y,
                            dout,
                            stats.mean[c],
                            stats.invstd[c],
                            gamma[c],
                            beta[c],
                            act,
                            dz,
                        )
                    })
                })
            });
            totals.0 += s_dz;
            totals.1 += s_dzx;
        }
        totals
    });
    let batch = sums.len() / channels.max(1);
    let mut dgamma = vec![0.0f32; channels];
    let mut dbeta = vec![0.0f32; channels];
    let mut coef = vec![(0.0f32, 0.0f32, 0.0f32); channels];
    let n = stats.count.max(1) as f64;
    for c in 0..channels {
        let (mut s_dz, mut s_dzx) = (0.0f64, 0.0f64);
        for b in 0..batch {
            let (a, x) = sums[b * channels + c];
            s_dz += a;
            s_dzx += x;
        }
        dbeta[c] = s_dz as f32;
        dgamma[c] = s_dzx as f32;
        // dy = a·dz + b·y + c0, the standard BatchNorm backward written per channel:
        // a·(dz − Σdz/N − x̂·Σdz·x̂/N) with a = gamma·invstd and x̂ = (y − mean)·invstd.
        let inv = f64::from(stats.invstd[c]);
        let a = f64::from(gamma[c]) * inv;
        let b_coef = -a * inv * s_dzx / n;
        let c0 = -a * s_dz / n - b_coef * f64::from(stats.mean[c]);
        coef[c] = (a as f32, b_coef as f32, c0 as f32);
    }
    (
        dz,
        ChannelSums {
            coef,
            dgamma,
            dbeta,
        },
    )
}

#[allow(clippy::too_many_arguments)]
fn plane_dz(
    y: &[f32],
    dout: &[f32],
    mean: f32,
    invstd: f32,
    gamma: f32,
    beta: f32,
    act: bool,
    dz: &mut [f32],
) -> (f64, f64) {
    if act {
        plane_dz_impl::<true>(y, dout, mean, invstd, gamma, beta, dz)
    } else {
        plane_dz_impl::<false>(y, dout, mean, invstd, gamma, beta, dz)
    }
}

#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn plane_dz_impl<const ACT: bool>(
    y: &[f32],
    dout: &[f32],
    mean: f32,
    invstd: f32,
    gamma: f32,
    beta: f32,
    dz: &mut [f32],
) -> (f64, f64) {
    let grad = |y: f32, dout: f32| {
        let xhat = (y - mean) * invstd;
        let g = if ACT {
            dout * silu_grad(gamma * xhat + beta)
        } else {
            dout
        };
        (g, xhat)
    };
    let mut s_dz = [0.0f32; 16];
    let mut s_dzx = [0.0f32; 16];
    for ((y, dout), dz) in y
        .chunks_exact(16)
        .zip(dout.chunks_exact(16))
        .zip(dz.chunks_exact_mut(16))
    {
        for l in 0..16 {
            let (g, xhat) = grad(y[l], dout[l]);
            dz[l] = g;
            s_dz[l] += g;
            s_dzx[l] += g * xhat;
        }
    }
    let mut total_dz: f64 = s_dz.iter().map(|v| f64::from(*v)).sum();
    let mut total_dzx: f64 = s_dzx.iter().map(|v| f64::from(*v)).sum();
    let full = y.len() - y.len() % 16;
    for i in full..y.len() {
        let (g, xhat) = grad(y[i], dout[i]);
        dz[i] = g;
        total_dz += f64::from(g);
        total_dzx += f64::from(g * xhat);
    }
    (total_dz, total_dzx)
}

#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn plane_affine2(dz_to_dy: &mut [f32], y: &[f32], a: f32, b: f32, c0: f32) {
    for (d, y) in dz_to_dy.iter_mut().zip(y) {
        *d = a * *d + b * y + c0;
    }
}

/// `x · sigmoid(x)`.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// `d silu / dx = s · (1 + x · (1 − s))`, `s = sigmoid(x)`.
#[inline(always)]
pub fn silu_grad(x: f32) -> f32 {
    let s = 1.0 / (1.0 + exp(-x));
    s * (1.0 + x * (1.0 - s))
}

/// `e^x` within 2 ulp on the clamped range, branch-free so that loops calling it vectorise (libm's `expf` is a
/// call per element). Cephes' `expf`: x = n·ln2 + r, a degree-5 polynomial for e^r, and 2^n from the exponent
/// bits. Inputs are clamped to [−87.3, 88.3]: below, e^x is denormal (0 here); above, it overflows f32.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to the nearest integer
    let x = x.clamp(-87.3, 88.3);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    let ni = (t.to_bits() as i32) - (ROUND.to_bits() as i32);
    f32::from_bits(((ni + 127) << 23) as u32) * e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let v = (i as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed.wrapping_mul(40_503));
                ((v >> 8) as f32 / (1u32 << 24) as f32 - 0.3) * 3.0
            })
            .collect()
    }

    #[test]
    fn exp_is_within_two_ulp_of_std() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (exp(x), x.exp());
            assert!(
                (a - b).abs() <= 2.5 * f32::EPSILON * b,
                "exp({x}) = {a}, std {b}"
            );
            x += 0.013;
        }
        assert!(exp(-1000.0) < 1e-37);
        assert!(exp(1000.0).is_finite());
    }

    /// A straightforward f64 BatchNorm+SiLU, and its loss `Σ out · w` for the finite-difference check.
    fn reference(
        y: &[f32],
        c: usize,
        hw: usize,
        gamma: &[f32],
        beta: &[f32],
        eps: f64,
        act: bool,
    ) -> Vec<f64> {
        let b = y.len() / (c * hw);
        let mut out = vec![0.0f64; y.len()];
        for ch in 0..c {
            let idx: Vec<usize> = (0..b)
                .flat_map(|bi| (0..hw).map(move |i| (bi * c + ch) * hw + i))
                .collect();
            let n = idx.len() as f64;
            let mean = idx.iter().map(|&i| f64::from(y[i])).sum::<f64>() / n;
            let var = idx
                .iter()
                .map(|&i| (f64::from(y[i]) - mean).powi(2))
                .sum::<f64>()
                / n;
            for &i in &idx {
                let z = f64::from(gamma[ch]) * (f64::from(y[i]) - mean) / (var + eps).sqrt()
                    + f64::from(beta[ch]);
                out[i] = if act { z / (1.0 + (-z).exp()) } else { z };
            }
        }
        out
    }

    #[test]
    fn forward_and_backward_match_an_f64_reference() {
        let (b, c, hw, eps) = (3, 4, 37, 1e-3);
        let y = values(b * c * hw, 1);
        let gamma = values(c, 2);
        let beta = values(c, 3);
        let w = values(y.len(), 4);
        for act in [true, false] {
            let stats = batch_stats(&y, c, hw, eps);
            let (scale, shift) = stats.scale_shift(&gamma, &beta);
            let out = scale_shift_act(&y, c, hw, &scale, &shift, act);
            let want = reference(&y, c, hw, &gamma, &beta, eps, act);
            for (a, b) in out.iter().zip(&want) {
                assert!(
                    (f64::from(*a) - b).abs() < 1e-5 * (1.0 + b.abs()),
                    "{a} vs {b}"
                );
            }
            let grads = backward(
                Floats::F32(&y),
                Floats::F32(&w),
                c,
                hw,
                &stats,
                &gamma,
                &beta,
                act,
            );
            let loss = |y: &[f32], gamma: &[f32], beta: &[f32]| -> f64 {
                reference(y, c, hw, gamma, beta, eps, act)
                    .iter()
                    .zip(&w)
                    .map(|(o, w)| o * f64::from(*w))
                    .sum()
            };
            let h = 1e-3f32;
            for i in (0..y.len()).step_by(7) {
                let (mut up, mut down) = (y.clone(), y.clone());
                up[i] += h;
                down[i] -= h;
                let fd =
                    (loss(&up, &gamma, &beta) - loss(&down, &gamma, &beta)) / (2.0 * f64::from(h));
                assert!(
                    (f64::from(grads.dy[i]) - fd).abs() < 2e-3 * (1.0 + fd.abs()),
                    "dy[{i}] {} vs {fd}",
                    grads.dy[i]
                );
            }
            for ch in 0..c {
                let (mut gu, mut gd) = (gamma.clone(), gamma.clone());
                gu[ch] += h;
                gd[ch] -= h;
                let fd = (loss(&y, &gu, &beta) - loss(&y, &gd, &beta)) / (2.0 * f64::from(h));
                assert!(
                    (f64::from(grads.dgamma[ch]) - fd).abs() < 2e-3 * (1.0 + fd.abs()),
                    "dgamma {ch}"
                );
                let (mut bu, mut bd) = (beta.clone(), beta.clone());
                bu[ch] += h;
                bd[ch] -= h;
                let fd = (loss(&y, &gamma, &bu) - loss(&y, &gamma, &bd)) / (2.0 * f64::from(h));
                assert!(
                    (f64::from(grads.dbeta[ch]) - fd).abs() < 2e-3 * (1.0 + fd.abs()),
                    "dbeta {ch}"
                );
            }
        }
    }

    /// Half-precision planes longer than one widening block (three blocks and a tail here) give the gradient of
    /// the same values in `f32`: the blocks cover each plane once, in place.
    #[test]
    fn half_planes_are_read_block_by_block() {
        use half::{bf16, f16};
        let (b, c, hw, eps) = (2, 3, 3 * 2048 + 37, 1e-3);
        let wide = values(b * c * hw, 5);
        let dout = values(b * c * hw, 6);
        let gamma = values(c, 7);
        let beta = values(c, 8);
        let bf: (Vec<bf16>, Vec<bf16>) = (
            wide.iter().map(|v| bf16::from_f32(*v)).collect(),
            dout.iter().map(|v| bf16::from_f32(*v)).collect(),
        );
        let hf: (Vec<f16>, Vec<f16>) = (
            wide.iter().map(|v| f16::from_f32(*v)).collect(),
            dout.iter().map(|v| f16::from_f32(*v)).collect(),
        );
        let cases = [
            (
                Floats::Bf16(&bf.0),
                Floats::Bf16(&bf.1),
                bf.0.iter().map(|v| v.to_f32()).collect::<Vec<_>>(),
                bf.1.iter().map(|v| v.to_f32()).collect::<Vec<_>>(),
            ),
            (
                Floats::F16(&hf.0),
                Floats::F16(&hf.1),
                hf.0.iter().map(|v| v.to_f32()).collect(),
                hf.1.iter().map(|v| v.to_f32()).collect(),
            ),
        ];
        for (y, d, y32, d32) in cases {
            let stats = batch_stats(&y32, c, hw, eps);
            let half = backward(y, d, c, hw, &stats, &gamma, &beta, true);
            let full = backward(
                Floats::F32(&y32),
                Floats::F32(&d32),
                c,
                hw,
                &stats,
                &gamma,
                &beta,
                true,
            );
            for (i, (a, b)) in half.dy.iter().zip(&full.dy).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "dy[{i}] {a} vs {b}"
                );
            }
            for (a, b) in half.dgamma.iter().zip(&full.dgamma) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "dgamma {a} vs {b}");
            }
            for (a, b) in half.dbeta.iter().zip(&full.dbeta) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "dbeta {a} vs {b}");
            }
        }
    }
}
