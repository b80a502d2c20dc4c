//! 2-D convolution on contiguous NCHW `f32` slices: forward, input gradient and weight gradient, each an im2col
//! (or, for 1×1 stride-1 convs, no copy at all) followed by one `gemm` call per image and group.
//!
//! Why not Burn's: burn-flex converts to NHWC and back around every conv and computes the input gradient as a
//! transposed conv through the same path; on YOLO's shapes that costs more than the GEMMs themselves
//! (docs/benchmarks.md). Here the GEMM reads NCHW directly, because a row of the im2col matrix is a run of
//! output positions, which is what NCHW stores contiguously.
//!
//! Threads: images run in parallel (rayon), each GEMM on one thread; with fewer images than threads the GEMM
//! itself is parallel instead. The im2col buffer is per thread and reused across calls.

use std::cell::RefCell;

use gemm::{gemm, Parallelism};
use rayon::prelude::*;

/// The geometry of one convolution (square-or-not kernel, symmetric padding, dilation 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub groups: usize,
}

impl ConvGeometry {
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad[0] - self.kh) / self.stride[0] + 1
    }

    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad[1] - self.kw) / self.stride[1] + 1
    }

    /// Output positions per image and channel.
    pub fn out_hw(&self) -> usize {
        self.out_h() * self.out_w()
    }

    fn cin_g(&self) -> usize {
        self.c_in / self.groups
    }

    fn cout_g(&self) -> usize {
        self.c_out / self.groups
    }

    /// Rows of the im2col matrix of one group: `cin_g · kh · kw`.
    fn k(&self) -> usize {
        self.cin_g() * self.kh * self.kw
    }

    /// A 1×1, stride-1, unpadded conv reads its input as the im2col matrix itself.
    fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.pad == [0, 0]
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.c_in * self.h * self.w
    }

    pub fn weight_len(&self) -> usize {
        self.c_out * self.k()
    }

    pub fn output_len(&self) -> usize {
        self.batch * self.c_out * self.out_hw()
    }
}

thread_local! {
    /// One im2col buffer per thread, grown on demand and kept: no allocation per call once warm.
    static COL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

fn with_col<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    COL.with(|col| {
        let mut col = col.borrow_mut();
        if col.len() < len {
            col.resize(len, 0.0);
        }
        f(&mut col[..len])
    })
}

/// Images in parallel when there are enough of them, else one image at a time with a parallel GEMM.
fn split(batch: usize) -> (bool, Parallelism) {
    let threads = rayon::current_num_threads();
    if batch >= threads || threads == 1 {
        (true, Parallelism::None)
    } else {
        (false, Parallelism::Rayon(threads))
    }
}

/// `out[b] = w · im2col(x[b])`: `out` is `[B, c_out, oh·ow]`, `w` is `[c_out, c_in/groups, kh, kw]`.
pub fn forward(g: &ConvGeometry, x: &[f32], w: &[f32], out: &mut [f32]) {
    debug_assert_eq!(x.len(), g.input_len());
    forward_strided(g, x, g.c_in * g.h * g.w, w, out);
}

/// [`forward`] on images `x[b · batch_stride..][..c_in·h·w]`: a channel slice of a wider NCHW tensor (what
/// C2f's `chunk` produces) is read in place instead of copied.
pub fn forward_strided(
    g: &ConvGeometry,
    x: &[f32],
    batch_stride: usize,
    w: &[f32],
    out: &mut [f32],
) {
    debug_assert_eq!(w.len(), g.weight_len());
    debug_assert_eq!(out.len(), g.output_len());
    let in_img = g.c_in * g.h * g.w;
    let image = |b: usize| &x[b * batch_stride..][..in_img];
    let out_img = g.c_out * g.out_hw();
    let (per_image, par) = split(g.batch);
    let one = |(b, out_b): (usize, &mut [f32])| forward_image(g, image(b), w, out_b, par);
    if per_image {
        out.par_chunks_mut(out_img).enumerate().for_each(one);
    } else {
        out.chunks_mut(out_img).enumerate().for_each(one);
    }
}

fn forward_image(g: &ConvGeometry, x: &[f32], w: &[f32], out: &mut [f32], par: Parallelism) {
    let (n, k, m) = (g.out_hw(), g.k(), g.cout_g());
    let in_group = g.cin_g() * g.h * g.w;
    for grp in 0..g.groups {
        let x_g = &x[grp * in_group..][..in_group];
        let w_g = &w[grp * m * k..][..m * k];
        let out_g = &mut out[grp * m * n..][..m * n];
        let run = |col: &[f32], out_g: &mut [f32]| {
            // SAFETY: out_g is m×n row-major, w_g m×k row-major, col k×n row-major; the slices are exactly
            // those sizes, so every index the GEMM forms is in bounds.
            unsafe {
                gemm(
                    m,
                    n,
                    k,
                    out_g.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    w_g.as_ptr(),
                    1,
                    k as isize,
                    col.as_ptr(),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                )
            }
        };
        if g.is_pointwise() {
            run(x_g, out_g);
        } else {
            with_col(k * n, |col| {
                im2col(g, x_g, col);
                run(col, out_g);
            });
        }
    }
}

/// `dx[b] = col2im(wᵀ · dy[b])`.
pub fn backward_input(g: &ConvGeometry, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    debug_assert_eq!(dx.len(), g.input_len());
    debug_assert_eq!(dy.len(), g.output_len());
    let in_img = g.c_in * g.h * g.w;
    let out_img = g.c_out * g.out_hw();
    let (per_image, par) = split(g.batch);
    let one = |(dx_b, dy_b): (&mut [f32], &[f32])| backward_input_image(g, w, dy_b, dx_b, par);
    if per_image {
        dx.par_chunks_mut(in_img)
            .zip(dy.par_chunks(out_img))
            .for_each(one);
    } else {
        dx.chunks_mut(in_img).zip(dy.chunks(out_img)).for_each(one);
    }
}

fn backward_input_image(g: &ConvGeometry, w: &[f32], dy: &[f32], dx: &mut [f32], par: Parallelism) {
    let (n, k, m) = (g.out_hw(), g.k(), g.cout_g());
    let in_group = g.cin_g() * g.h * g.w;
    for grp in 0..g.groups {
        let w_g = &w[grp * m * k..][..m * k];
        let dy_g = &dy[grp * m * n..][..m * n];
        let dx_g = &mut dx[grp * in_group..][..in_group];
        // dcol (k×n) = w_gᵀ (k×m) · dy_g (m×n): wᵀ is w read with swapped strides.
        let run = |dcol: &mut [f32]| unsafe {
            // SAFETY: dcol is k×n, w_g m×k (read transposed), dy_g m×n; all exactly sized.
            gemm(
                k,
                n,
                m,
                dcol.as_mut_ptr(),
                1,
                n as isize,
                false,
                w_g.as_ptr(),
                k as isize,
                1,
                dy_g.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                par,
            )
        };
        if g.is_pointwise() {
            run(dx_g);
        } else {
            with_col(k * n, |dcol| {
                run(dcol);
                col2im(g, dcol, dx_g);
            });
        }
    }
}

/// `dw = Σ_b dy[b] · im2col(x[b])ᵀ`, written (not accumulated) into `dw`.
pub fn backward_weight(g: &ConvGeometry, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    debug_assert_eq!(x.len(), g.input_len());
    backward_weight_strided(g, x, g.c_in * g.h * g.w, dy, dw);
}

/// [`backward_weight`] on images `x[b · batch_stride..]`, as [`forward_strided`].
pub fn backward_weight_strided(
    g: &ConvGeometry,
    x: &[f32],
    batch_stride: usize,
    dy: &[f32],
    dw: &mut [f32],
) {
    debug_assert_eq!(dw.len(), g.weight_len());
    let in_img = g.c_in * g.h * g.w;
    let image = |b: usize| &x[b * batch_stride..][..in_img];
    let out_img = g.c_out * g.out_hw();
    let (per_image, par) = split(g.batch);
    if per_image {
        // A fixed split of the images into one run per thread, each accumulated in its own buffer, and the
        // buffers summed in order: the result depends on the thread count only, never on rayon's scheduling,
        // so training is bit-for-bit reproducible (tests/train_resume.rs).
        let runs = rayon::current_num_threads().clamp(1, g.batch.max(1));
        let per_run = g.batch.div_ceil(runs);
        let parts: Vec<Vec<f32>> = (0..runs)
            .into_par_iter()
            .map(|r| {
                let mut part = vec![0.0f32; dw.len()];
                let images = r * per_run..((r + 1) * per_run).min(g.batch);
                for b in images.clone() {
                    let dy_b = &dy[b * out_img..][..out_img];
                    backward_weight_image(
                        g,
                        image(b),
                        dy_b,
                        &mut part,
                        b > images.start,
                        Parallelism::None,
                    );
                }
                part
            })
            .collect();
        let mut parts = parts.into_iter();
        match parts.next() {
            Some(first) => dw.copy_from_slice(&first),
            None => dw.fill(0.0),
        }
        for part in parts {
            dw.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
        }
    } else {
        dw.fill(0.0);
        for (b, dy_b) in dy.chunks(out_img).enumerate() {
            backward_weight_image(g, image(b), dy_b, dw, b > 0, par);
        }
    }
}

fn backward_weight_image(
    g: &ConvGeometry,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    accumulate: bool,
    par: Parallelism,
) {
    let (n, k, m) = (g.out_hw(), g.k(), g.cout_g());
    let in_group = g.cin_g() * g.h * g.w;
    for grp in 0..g.groups {
        let x_g = &x[grp * in_group..][..in_group];
        let dy_g = &dy[grp * m * n..][..m * n];
        let dw_g = &mut dw[grp * m * k..][..m * k];
        // dw_g (m×k) += dy_g (m×n) · colᵀ (n×k): colᵀ is col read with swapped strides.
        let run = |col: &[f32], dw_g: &mut [f32]| unsafe {
            // SAFETY: dw_g is m×k, dy_g m×n, col k×n (read transposed); all exactly sized.
            gemm(
                m,
                k,
                n,
                dw_g.as_mut_ptr(),
                1,
                k as isize,
                accumulate,
                dy_g.as_ptr(),
                1,
                n as isize,
                col.as_ptr(),
                n as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                par,
            )
        };
        if g.is_pointwise() {
            run(x_g, dw_g);
        } else {
            with_col(k * n, |col| {
                im2col(g, x_g, col);
                run(col, dw_g);
            });
        }
    }
}

/// The output columns `ox` whose input column `ox·s + kx − pad` lies in `[0, w)`, as `lo..hi`.
fn valid_range(out: usize, input: usize, stride: usize, k: usize, pad: usize) -> (usize, usize) {
    // ox·s + k − pad ≥ 0  ⇔  ox ≥ ceil((pad − k) / s)
    let lo = if pad > k {
        (pad - k).div_ceil(stride)
    } else {
        0
    };
    // ox·s + k − pad ≤ input − 1  ⇔  ox ≤ (input − 1 + pad − k) / s
    let hi = if input + pad > k {
        ((input - 1 + pad - k) / stride + 1).min(out)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// `col[(ci, ky, kx), (oy, ox)] = x[ci, oy·s + ky − p, ox·s + kx − p]`, zero outside the image.
fn im2col(g: &ConvGeometry, x: &[f32], col: &mut [f32]) {
    let (oh, ow) = (g.out_h(), g.out_w());
    let n = oh * ow;
    let [sy, sx] = g.stride;
    let [py, px] = g.pad;
    let mut row = 0;
    for ci in 0..g.cin_g() {
        let plane = &x[ci * g.h * g.w..][..g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let dst = &mut col[row * n..][..n];
                row += 1;
                let (lo, hi) = valid_range(ow, g.w, sx, kx, px);
                for oy in 0..oh {
                    let out_row = &mut dst[oy * ow..][..ow];
                    let iy = (oy * sy + ky) as isize - py as isize;
                    if iy < 0 || iy >= g.h as isize {
                        out_row.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * g.w..][..g.w];
                    out_row[..lo].fill(0.0);
                    out_row[hi..].fill(0.0);
                    if lo == hi {
                        continue;
                    }
                    let first = lo * sx + kx - px;
                    if sx == 1 {
                        out_row[lo..hi].copy_from_slice(&src[first..first + (hi - lo)]);
                    } else {
                        for (d, s) in out_row[lo..hi]
                            .iter_mut()
                            .zip(src[first..].iter().step_by(sx))
                        {
                            *d = *s;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: `dx[ci, iy, ix] = Σ dcol[(ci, ky, kx), (oy, ox)]` over the positions that read it.
fn col2im(g: &ConvGeometry, dcol: &[f32], dx: &mut [f32]) {
    let (oh, ow) = (g.out_h(), g.out_w());
    let n = oh * ow;
    let [sy, sx] = g.stride;
    let [py, px] = g.pad;
    dx.fill(0.0);
    let mut row = 0;
    for ci in 0..g.cin_g() {
        let plane = &mut dx[ci * g.h * g.w..][..g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let src = &dcol[row * n..][..n];
                row += 1;
                let (lo, hi) = valid_range(ow, g.w, sx, kx, px);
                if lo >= hi {
                    continue;
                }
                for oy in 0..oh {
                    let iy = (oy * sy + ky) as isize - py as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    let in_row = &src[oy * ow..][..ow];
                    let dst = &mut plane[iy as usize * g.w..][..g.w];
                    let first = lo * sx + kx - px;
                    if sx == 1 {
                        for (d, s) in dst[first..first + (hi - lo)]
                            .iter_mut()
                            .zip(&in_row[lo..hi])
                        {
                            *d += *s;
                        }
                    } else {
                        for (d, s) in dst[first..].iter_mut().step_by(sx).zip(&in_row[lo..hi]) {
                            *d += *s;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one multiply-add at a time.
    fn naive_forward(g: &ConvGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
        let (oh, ow) = (g.out_h(), g.out_w());
        let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
        let mut out = vec![0.0; g.output_len()];
        for b in 0..g.batch {
            for co in 0..g.c_out {
                let grp = co / cout_g;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = 0.0f64;
                        for ci in 0..cin_g {
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    let iy = (oy * g.stride[0] + ky) as isize - g.pad[0] as isize;
                                    let ix = (ox * g.stride[1] + kx) as isize - g.pad[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let c = grp * cin_g + ci;
                                    let xv = x[((b * g.c_in + c) * g.h + iy as usize) * g.w
                                        + ix as usize];
                                    let wv = w[((co * cin_g + ci) * g.kh + ky) * g.kw + kx];
                                    acc += f64::from(xv) * f64::from(wv);
                                }
                            }
                        }
                        out[((b * g.c_out + co) * oh + oy) * ow + ox] = acc as f32;
                    }
                }
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let v = (i as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed.wrapping_mul(40_503));
                (v >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    fn geometries() -> Vec<ConvGeometry> {
        let base = ConvGeometry {
            batch: 3,
            c_in: 4,
            h: 7,
            w: 9,
            c_out: 6,
            kh: 3,
            kw: 3,
            stride: [1, 1],
            pad: [1, 1],
            groups: 1,
        };
        vec![
            base,
            ConvGeometry {
                stride: [2, 2],
                ..base
            },
            ConvGeometry {
                kh: 1,
                kw: 1,
                pad: [0, 0],
                ..base
            },
            ConvGeometry { groups: 2, ..base },
            ConvGeometry {
                groups: 2,
                c_out: 4,
                stride: [2, 2],
                ..base
            },
            ConvGeometry {
                kh: 5,
                kw: 5,
                pad: [2, 2],
                h: 4,
                w: 3,
                ..base
            },
            ConvGeometry { batch: 1, ..base },
        ]
    }

    fn assert_close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    #[test]
    fn forward_matches_the_definition() {
        for g in geometries() {
            let x = values(g.input_len(), 1);
            let w = values(g.weight_len(), 2);
            let mut out = vec![f32::NAN; g.output_len()];
            forward(&g, &x, &w, &mut out);
            assert_close(&out, &naive_forward(&g, &x, &w), &format!("{g:?}"));
        }
    }

    /// ⟨forward(x), dy⟩ is linear in x and w, so its gradient is exactly backward_input(dy) and
    /// backward_weight(dy): compare with the naive forward at unit vectors.
    #[test]
    fn gradients_are_the_adjoints_of_forward() {
        for g in geometries() {
            let x = values(g.input_len(), 3);
            let w = values(g.weight_len(), 4);
            let dy = values(g.output_len(), 5);
            let mut dx = vec![f32::NAN; g.input_len()];
            let mut dw = vec![f32::NAN; g.weight_len()];
            backward_input(&g, &w, &dy, &mut dx);
            backward_weight(&g, &x, &dy, &mut dw);
            let dot = |out: &[f32]| -> f64 {
                out.iter()
                    .zip(&dy)
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum()
            };
            for i in (0..x.len()).step_by(5) {
                let mut e = vec![0.0; x.len()];
                e[i] = 1.0;
                let want = dot(&naive_forward(&g, &e, &w)) as f32;
                assert!(
                    (dx[i] - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "{g:?} dx[{i}] {} vs {want}",
                    dx[i]
                );
            }
            for i in 0..w.len() {
                let mut e = vec![0.0; w.len()];
                e[i] = 1.0;
                let want = dot(&naive_forward(&g, &x, &e)) as f32;
                assert!(
                    (dw[i] - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "{g:?} dw[{i}] {} vs {want}",
                    dw[i]
                );
            }
        }
    }
}
