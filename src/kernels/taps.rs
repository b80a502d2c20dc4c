//! Stride-1 convolutions without im2col: one GEMM per kernel tap, reading a zero-padded copy of the input in
//! place.
//!
//! Why: im2col copies the input `kh·kw` times (and col2im sums it back). Where a conv has few input channels,
//! or planes so large that the copy leaves the cache, that copy and the GEMM's packing of it are a large share
//! of the conv (measured per layer: see [`applies`]). With the input padded to a "wide" plane of
//! `(h + 2·pad_y) × (w + 2·pad_x)`, the input rows that tap `(ky, kx)` reads for output position
//! `p = oy·W + ox` (`W` the padded width) are at `p + ky·W + kx`: a plain strided matrix the GEMM packs
//! itself. The output is computed on the same wide grid; its last `W − ow` columns of each row are junk (they
//! read across a row end) and are dropped (forward) or given a zero gradient (backward), so they never reach a
//! result.

use gemm::Parallelism;

use super::conv::{matmul, ConvGeometry, Strided};
use super::half_gemm::Elem;

/// The wide-grid sizes of one convolution group.
#[derive(Debug, Clone, Copy)]
pub(super) struct Wide {
    /// Padded input width, and the row pitch of every wide buffer.
    pitch: usize,
    /// One padded input plane: `(h + 2·pad_y) · pitch`.
    plane: usize,
    /// Output positions on the wide grid: `oh · pitch`.
    n: usize,
}

/// Reads past a padded plane's end by at most `kw − 1` elements (junk columns of the last row): this much
/// zeroed slack follows the last plane.
fn slack(g: &ConvGeometry) -> usize {
    g.kw
}

impl Wide {
    pub(super) fn new(g: &ConvGeometry) -> Self {
        let pitch = g.w + 2 * g.pad[1];
        Wide {
            pitch,
            plane: (g.h + 2 * g.pad[0]) * pitch,
            n: g.out_h() * pitch,
        }
    }

    /// The padded copy of `cin_g` planes, with its slack.
    pub(super) fn padded_len(&self, g: &ConvGeometry) -> usize {
        g.cin_g() * self.plane + slack(g)
    }

    /// `c_out/groups` planes on the wide output grid.
    pub(super) fn out_len(&self, g: &ConvGeometry) -> usize {
        g.cout_g() * self.n
    }

    fn tap_offset(&self, g: &ConvGeometry, tap: usize) -> usize {
        (tap / g.kw) * self.pitch + tap % g.kw
    }
}

/// When the tap GEMMs beat im2col: stride 1, a real kernel window, and 16 to 32 input channels per group, or up
/// to 80 on planes of 80×80 and more. Measured per layer on YOLOv8n (`bench` with a per-conv timer, one
/// thread): at 320, with 16 or 32 channels the taps took 0.36–0.88× im2col's time (the weight gradient of the
/// 16-channel bottleneck 0.36×); with 64 or more they were even at 40×40 and up to 1.2× slower at 20×20 and
/// 10×10, where the junk columns are 10–20 % more work and im2col's single larger GEMM packs better. At 640,
/// the 64- and 80-channel convs on 80×80 took ~0.75× im2col's time (there a whole image's im2col is 14 MiB).
/// Fewer than 16 channels make each tap's GEMM mostly loads and stores of its output.
pub(super) fn applies(g: &ConvGeometry) -> bool {
    let c = g.cin_g();
    g.stride == [1, 1]
        && g.kh * g.kw > 1
        && ((16..=32).contains(&c) || (c <= 80 && g.out_hw() >= 80 * 80))
}

/// `xp[c] = x[c]` framed by `pad` zeros, `pitch` wide; then zeroed slack.
pub(super) fn pad_input<T: Elem>(g: &ConvGeometry, wide: &Wide, x: &[T], xp: &mut [T]) {
    pad_input_with(g, wide, x, xp, T::ZERO, |src, dst| dst.copy_from_slice(src));
}

/// [`pad_input`] of a half image into an `f32` copy, each row widened as it is copied.
pub(super) fn pad_input_widened<H>(g: &ConvGeometry, wide: &Wide, x: &[H], xp: &mut [f32])
where
    [H]: super::half_slice::HalfSlice,
{
    use super::half_slice::HalfSlice;
    pad_input_with(g, wide, x, xp, 0.0, |src, dst| src.widen_into(dst));
}

/// [`pad_input`] with each image row written into its padded row by `copy(src, dst)`.
fn pad_input_with<S, T: Copy>(
    g: &ConvGeometry,
    wide: &Wide,
    x: &[S],
    xp: &mut [T],
    zero: T,
    copy: impl Fn(&[S], &mut [T]),
) {
    let [py, px] = g.pad;
    let (h, w) = (g.h, g.w);
    let (planes, tail) = xp.split_at_mut(xp.len() - slack(g));
    tail.fill(zero);
    for (dst, src) in planes
        .chunks_exact_mut(wide.plane)
        .zip(x.chunks_exact(h * w))
    {
        let (top, rest) = dst.split_at_mut(py * wide.pitch);
        top.fill(zero);
        let (mid, bottom) = rest.split_at_mut(h * wide.pitch);
        bottom.fill(zero);
        for (row, src_row) in mid.chunks_exact_mut(wide.pitch).zip(src.chunks_exact(w)) {
            row[..px].fill(zero);
            copy(src_row, &mut row[px..px + w]);
            row[px + w..].fill(zero);
        }
    }
}

/// `wide[c, oy, ox] = dense[c, oy, ox]` for `ox < ow`, zero in the junk columns.
pub(super) fn widen(g: &ConvGeometry, wide: &Wide, dense: &[f32], out: &mut [f32]) {
    let ow = g.out_w();
    for (dst, src) in out.chunks_exact_mut(wide.pitch).zip(dense.chunks_exact(ow)) {
        dst[..ow].copy_from_slice(src);
        dst[ow..].fill(0.0);
    }
}

/// `dense[c, oy, ox] = wide[c, oy, ox]` for `ox < ow`.
pub(super) fn narrow(g: &ConvGeometry, wide: &Wide, src: &[f32], dense: &mut [f32]) {
    let ow = g.out_w();
    for (dst, src) in dense.chunks_exact_mut(ow).zip(src.chunks_exact(wide.pitch)) {
        dst.copy_from_slice(&src[..ow]);
    }
}

/// `dx[c, iy, ix] = dxp[c, iy + pad_y, ix + pad_x]`: the padded gradient's interior.
pub(super) fn unpad(g: &ConvGeometry, wide: &Wide, dxp: &[f32], dx: &mut [f32]) {
    let [py, px] = g.pad;
    for (dst, src) in dx
        .chunks_exact_mut(g.h * g.w)
        .zip(dxp.chunks_exact(wide.plane))
    {
        let rows = src[py * wide.pitch..].chunks_exact(wide.pitch);
        for (d, s) in dst.chunks_exact_mut(g.w).zip(rows) {
            d.copy_from_slice(&s[px..px + g.w]);
        }
    }
}

/// `out_wide = Σ_t w[:, :, t] · xp[:, t + p]` for one group: `w_g` is `[cout_g, cin_g·kh·kw]`.
pub(super) fn forward<T: Elem>(
    g: &ConvGeometry,
    wide: &Wide,
    w_g: &[T],
    xp: &[T],
    out_wide: &mut [f32],
    par: Parallelism,
) {
    let (m, k, taps) = (g.cout_g(), g.cin_g(), g.kh * g.kw);
    let kk = k * taps;
    debug_assert!(xp.len() >= k * wide.plane + slack(g) && w_g.len() == m * kk);
    debug_assert_eq!(out_wide.len(), m * wide.n);
    for t in 0..taps {
        let off = wide.tap_offset(g, t);
        // SAFETY: dst is m × n row-major (exactly out_wide). lhs element (co, ci) is w_g[co·kk + ci·taps + t],
        // the largest index (m−1)·kk + (k−1)·taps + t < m·kk. rhs element (ci, p) is xp[off + ci·plane + p]
        // with p < n = oh·pitch; the largest is off + (k−1)·plane + n − 1 ≤ k·plane + kw − 2, within the
        // slack (see `slack`).
        unsafe {
            matmul(
                [m, wide.n, k],
                Strided::new(out_wide.as_mut_ptr(), wide.n, 1),
                t > 0,
                T::src(w_g.as_ptr().add(t), kk, taps),
                T::src(xp.as_ptr().add(off), wide.plane, 1),
                par,
            )
        }
    }
}

/// `dxp[:, t + p] += w[:, :, t]ᵀ · dy_wide` over the taps, into a zeroed padded gradient `dxp`.
pub(super) fn backward_input<T: Elem>(
    g: &ConvGeometry,
    wide: &Wide,
    w_g: &[T],
    dy_wide: &[f32],
    dxp: &mut [f32],
    par: Parallelism,
) {
    let (m, k, taps) = (g.cout_g(), g.cin_g(), g.kh * g.kw);
    let kk = k * taps;
    debug_assert!(dxp.len() >= k * wide.plane + slack(g) && w_g.len() == m * kk);
    debug_assert_eq!(dy_wide.len(), m * wide.n);
    dxp.fill(0.0);
    for t in 0..taps {
        let off = wide.tap_offset(g, t);
        // SAFETY: dst element (ci, p) is dxp[off + ci·plane + p], bounded as the forward's rhs; distinct (ci, p)
        // never alias because n < plane. lhs element (ci, co) is w_g[co·kk + ci·taps + t]; rhs (co, p) is
        // dy_wide[co·n + p].
        unsafe {
            matmul(
                [k, wide.n, m],
                Strided::new(dxp.as_mut_ptr().add(off), wide.plane, 1),
                true,
                T::src(w_g.as_ptr().add(t), taps, kk),
                f32::src(dy_wide.as_ptr(), wide.n, 1),
                par,
            )
        }
    }
}

/// `dw[:, :, t] (+)= dy_wide · xp[:, t + p]ᵀ` for one group and image. The junk columns of `dy_wide` are zero,
/// so what the taps read there adds nothing.
pub(super) fn backward_weight<T: Elem>(
    g: &ConvGeometry,
    wide: &Wide,
    xp: &[T],
    dy_wide: &[f32],
    dw_g: &mut [f32],
    accumulate: bool,
    par: Parallelism,
) {
    let (m, k, taps) = (g.cout_g(), g.cin_g(), g.kh * g.kw);
    let kk = k * taps;
    debug_assert!(xp.len() >= k * wide.plane + slack(g));
    debug_assert_eq!(dw_g.len(), m * kk);
    for t in 0..taps {
        let off = wide.tap_offset(g, t);
        // SAFETY: dst element (co, ci) is dw_g[co·kk + ci·taps + t] < m·kk; lhs (co, p) is dy_wide[co·n + p];
        // rhs (p, ci) is xp[off + ci·plane + p], bounded as in `forward`.
        unsafe {
            matmul(
                [m, k, wide.n],
                Strided::new(dw_g.as_mut_ptr().add(t), kk, taps),
                accumulate,
                f32::src(dy_wide.as_ptr(), wide.n, 1),
                T::src(xp.as_ptr().add(off), 1, wide.plane),
                par,
            )
        }
    }
}
