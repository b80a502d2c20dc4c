//! 2-D convolution on contiguous NCHW `f32` slices: forward, input gradient and weight gradient, each an im2col
//! (or, for 1×1 stride-1 convs, no copy at all) followed by one `gemm` call per image and group; stride-1 convs
//! with few channels take one GEMM per kernel tap instead ([`super::taps`]), and narrow weight gradients
//! AVX-512 dot products ([`super::dot`]). Half-precision "same" stride-1 convs skip im2col altogether: the half
//! GEMM reads the image in place ([`half_gemm::ConvRows`], implicit GEMM), and their input gradient is the
//! transposed conv's forward instead of col2im.
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

use super::dot;
use super::half_gemm::{self, Elem, Src};
use super::taps::{self, Wide};

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

    pub(super) fn cin_g(&self) -> usize {
        self.c_in / self.groups
    }

    pub(super) fn cout_g(&self) -> usize {
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
    /// One im2col buffer per thread, grown on demand and kept: no allocation per call once warm. Held as
    /// words and lent as `f32`, `bf16` or `f16` (every bit pattern is a value of each).
    static COL: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    /// The tap GEMMs' second buffer (the output or its gradient on the wide grid), likewise kept.
    static WIDE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// [`backward_input_rounded`]'s one image of `f32` input gradient, likewise kept.
    static DX: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

fn with_col<T: Elem, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    const { assert!(std::mem::size_of::<T>() <= 4 && std::mem::align_of::<T>() <= 4) };
    COL.with(|col| {
        let mut col = col.borrow_mut();
        let words = (len * std::mem::size_of::<T>()).div_ceil(4);
        if col.len() < words {
            col.resize(words, 0);
        }
        // SAFETY: the buffer holds at least `len` `T`s (size and alignment checked above), all initialised, and
        // any bit pattern is a valid `f32`, `bf16` or `f16`; the borrow is exclusive for `f`'s duration.
        let typed = unsafe { std::slice::from_raw_parts_mut(col.as_mut_ptr().cast::<T>(), len) };
        f(typed)
    })
}

/// This thread's two scratch buffers, `a` elements of `T` and `b` of `f32`.
fn with_scratch<T: Elem, R>(a: usize, b: usize, f: impl FnOnce(&mut [T], &mut [f32]) -> R) -> R {
    with_col(a, |col| {
        WIDE.with(|wide| {
            let mut wide = wide.borrow_mut();
            if wide.len() < b {
                wide.resize(b, 0.0);
            }
            f(col, &mut wide[..b])
        })
    })
}

/// A matrix in memory for [`gemm_strided`]: element `(i, j)` at `ptr[i·row + j·col]`.
#[derive(Clone, Copy)]
pub struct Strided<P> {
    pub(super) ptr: P,
    pub(super) row: usize,
    pub(super) col: usize,
}

impl<P> Strided<P> {
    pub(super) fn new(ptr: P, row: usize, col: usize) -> Self {
        Strided { ptr, row, col }
    }
}

/// `dst (+)= lhs · rhs` (`m × k` times `k × n`), overwriting `dst` unless `accumulate`: the `gemm` crate's call
/// with its 19 arguments in the order the formula reads.
///
/// # Safety
/// Every element the shapes and strides address must lie in its operand's allocation, and `dst`'s elements must
/// be distinct and not overlap `lhs` or `rhs`.
pub(super) unsafe fn gemm_strided(
    [m, n, k]: [usize; 3],
    dst: Strided<*mut f32>,
    accumulate: bool,
    lhs: Strided<*const f32>,
    rhs: Strided<*const f32>,
    par: Parallelism,
) {
    // SAFETY: the caller's contract is `gemm`'s.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.ptr,
            dst.col as isize,
            dst.row as isize,
            accumulate,
            lhs.ptr,
            lhs.col as isize,
            lhs.row as isize,
            rhs.ptr,
            rhs.col as isize,
            rhs.row as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// `dst (+)= lhs · rhs` in any mix of float types: `gemm` for `f32` operands, else our half GEMM (which the
/// flex layer calls only where [`half_gemm::available`]).
///
/// # Safety
/// As [`gemm_strided`].
pub(super) unsafe fn matmul(
    dims: [usize; 3],
    dst: Strided<*mut f32>,
    accumulate: bool,
    lhs: Src,
    rhs: Src,
    par: Parallelism,
) {
    // SAFETY: the caller's contract is both GEMMs'.
    unsafe {
        match (lhs, rhs) {
            (Src::F32(a), Src::F32(b)) => gemm_strided(dims, dst, accumulate, a, b, par),
            _ => half_gemm::gemm(
                half_gemm::compute_for(&lhs, &rhs),
                dims,
                dst,
                accumulate,
                lhs,
                rhs,
                par,
            ),
        }
    }
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
pub fn forward<T: Elem>(g: &ConvGeometry, x: &[T], w: &[T]) -> Vec<f32> {
    debug_assert_eq!(x.len(), g.input_len());
    forward_strided(g, x, g.c_in * g.h * g.w, w)
}

/// [`forward`] on images `x[b · batch_stride..][..c_in·h·w]`: a channel slice of a wider NCHW tensor (what
/// C2f's `chunk` produces) is read in place instead of copied.
pub fn forward_strided<T: Elem>(
    g: &ConvGeometry,
    x: &[T],
    batch_stride: usize,
    w: &[T],
) -> Vec<f32> {
    debug_assert_eq!(w.len(), g.weight_len());
    let in_img = g.c_in * g.h * g.w;
    let image = |b: usize| &x[b * batch_stride..][..in_img];
    let out_img = g.c_out * g.out_hw();
    let (per_image, par) = split(g.batch);
    let one = |b: usize, out_b: &mut [f32]| forward_image(g, image(b), w, out_b, par);
    by_image(per_image, g.output_len(), out_img, one)
}

/// A `len`-float result of images `img` floats apart, image `b` written by `one(b, ..)`: images in parallel
/// where [`split`] says so, else one after another (each with its own parallel GEMM).
fn by_image(
    per_image: bool,
    len: usize,
    img: usize,
    one: impl Fn(usize, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    if per_image {
        super::par_vec(len, img, one).0
    } else {
        let mut out = vec![0.0; len];
        out.chunks_mut(img).enumerate().for_each(|(b, o)| one(b, o));
        out
    }
}

fn forward_image<T: Elem>(g: &ConvGeometry, x: &[T], w: &[T], out: &mut [f32], par: Parallelism) {
    let (n, k, m) = (g.out_hw(), g.k(), g.cout_g());
    let in_group = g.cin_g() * g.h * g.w;
    for grp in 0..g.groups {
        let x_g = &x[grp * in_group..][..in_group];
        let w_g = &w[grp * m * k..][..m * k];
        let out_g = &mut out[grp * m * n..][..m * n];
        let run = |col: &[T], out_g: &mut [f32]| {
            // SAFETY: out_g is m×n row-major, w_g m×k row-major, col k×n row-major; the slices are exactly
            // those sizes, so every index the GEMM forms is in bounds.
            unsafe {
                matmul(
                    [m, n, k],
                    Strided::new(out_g.as_mut_ptr(), n, 1),
                    false,
                    T::src(w_g.as_ptr(), k, 1),
                    T::src(col.as_ptr(), n, 1),
                    par,
                )
            }
        };
        if g.is_pointwise() {
            run(x_g, out_g);
        } else if let Some(rows) = implicit(g, x_g).map(Src::Conv) {
            // SAFETY: as `run`, the rhs being x_g's k×n im2col matrix read in place.
            unsafe {
                half_gemm::gemm(
                    half_gemm::compute_for(&T::src(w_g.as_ptr(), k, 1), &rows),
                    [m, n, k],
                    Strided::new(out_g.as_mut_ptr(), n, 1),
                    false,
                    T::src(w_g.as_ptr(), k, 1),
                    rows,
                    par,
                )
            }
        } else if taps_for::<T>(g) {
            let wide = Wide::new(g);
            with_scratch(wide.padded_len(g), wide.out_len(g), |xp, out_wide| {
                taps::pad_input(g, &wide, x_g, xp);
                taps::forward(g, &wide, w_g, xp, out_wide, par);
                taps::narrow(g, &wide, out_wide, out_g);
            });
        } else {
            with_col(k * n, |col: &mut [T]| {
                im2col(g, x_g, col);
                run(col, out_g);
            });
        }
    }
}

/// A finished block of one image's conv output, in `f32`: output channels `c0..c0 + rows` and output pixels
/// `j0..j0 + cols`, row-major with rows `cols` apart.
#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    pub c0: usize,
    pub j0: usize,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [f32],
}

/// `s` as a slice of `U` when `D` is `U` (the kernels' generic gradient type, seen as the one a path needs).
fn as_type<D: 'static, U: 'static>(s: &[D]) -> Option<&[U]> {
    (std::any::TypeId::of::<D>() == std::any::TypeId::of::<U>()).then(|| {
        // SAFETY: D and U are the same type.
        unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<U>(), s.len()) }
    })
}

/// Whether [`forward_image_blocks`] serves this conv and type: a half type the half GEMM reads in place, and
/// enough images for one thread each (with fewer, [`forward`]'s parallel GEMM is the faster way).
pub fn blocks_apply<T: Elem>(g: &ConvGeometry) -> bool {
    std::mem::size_of::<T>() == 2 && half_gemm::available() && split(g.batch).0
}

/// One image's conv output (`x`: the image, `c_in·h·w` elements) handed to `epilogue` one block of at most
/// `half_gemm::gemm_blocks`' width at a time, on this thread, where [`blocks_apply`]. The epilogue consumes
/// each block while it is in cache, so no `f32` copy of the output is ever written.
pub fn forward_image_blocks<T: Elem>(
    g: &ConvGeometry,
    x: &[T],
    w: &[T],
    mut epilogue: impl FnMut(Block<'_>),
) {
    let (n, k, m) = (g.out_hw(), g.k(), g.cout_g());
    let in_group = g.cin_g() * g.h * g.w;
    for grp in 0..g.groups {
        let x_g = &x[grp * in_group..][..in_group];
        let w_g = &w[grp * m * k..][..m * k];
        let lhs = T::src(w_g.as_ptr(), k, 1);
        let mut run = |rhs: Src| {
            // SAFETY: w_g is m×k row-major and rhs x_g's k×n im2col matrix (in place, or `col` below), so every
            // index the GEMM forms is in bounds.
            unsafe {
                half_gemm::gemm_blocks(
                    half_gemm::compute_for(&lhs, &rhs),
                    [m, n, k],
                    lhs,
                    rhs,
                    |j0, cols, data| {
                        epilogue(Block {
                            c0: grp * m,
                            j0,
                            rows: m,
                            cols,
                            data,
                        })
                    },
                )
            }
        };
        if g.is_pointwise() {
            run(T::src(x_g.as_ptr(), n, 1));
        } else if let Some(rows) = implicit(g, x_g) {
            run(Src::Conv(rows));
        } else {
            with_col(k * n, |col: &mut [T]| {
                im2col(g, x_g, col);
                run(T::src(col.as_ptr(), n, 1));
            });
        }
    }
}

/// Whether a conv's im2col matrix can be read in place ([`half_gemm::ConvRows`]): a "same" stride-1 conv with
/// an odd kernel.
fn implicit_applies(g: &ConvGeometry) -> bool {
    let odd = |k: usize| k % 2 == 1 && k <= half_gemm::ConvRows::MAX_K;
    let same = g.stride == [1, 1] && g.out_h() == g.h && g.out_w() == g.w;
    same && odd(g.kh) && odd(g.kw) && !g.is_pointwise()
}

/// One group's image `x` as its im2col matrix read in place, where [`implicit_applies`] and the half GEMM
/// reads `T` in place (`bf16`, `f16`).
fn implicit<T: Elem>(g: &ConvGeometry, x: &[T]) -> Option<half_gemm::ConvRows> {
    implicit_applies(g)
        .then(|| T::conv_rows(x, [g.h, g.w], [g.kh, g.kw]))
        .flatten()
}

/// The input gradient of a "same" stride-1 conv on half tensors as the forward of the transposed conv:
/// `dx = conv(dy, w')` with `w'[ci, co, ky, kx] = w[co, ci, kh−1−ky, kw−1−kx]` and the same padding, `dy` read
/// in place ([`half_gemm::ConvRows`]): as `f32` for `f32` FMAs (exact, as before), rounded to `bf16` once for
/// `bf16` products (what packing `wᵀ · dy` rounded it to), one image at a time by the writer it hands `images`;
/// `images` itself back (`Err`) for any other conv and for `f32` tensors.
///
/// Why: `col2im(wᵀ · dy)` stores a `c_in·kh·kw`-row `f32` matrix and then adds it back into `dx` (col2im and
/// its zeroing were ~5 % of a bf16 YOLOv8n train step); here the GEMM writes `dx` itself. The products are the
/// same; only the order of the `f32` sums differs.
fn backward_input_transposed<T: Elem, D: Elem, R, F: FnOnce(&PerImage) -> R>(
    g: &ConvGeometry,
    w: &[T],
    dy: &[D],
    images: F,
) -> Result<R, F> {
    use super::half_slice::HalfSlice;
    use half_gemm::{Compute, ConvImage, ConvRows};
    // (whether the half GEMM reads T in place: an empty image answers it)
    if !implicit_applies(g) || T::conv_rows(&[], [1, 1], [g.kh, g.kw]).is_none() {
        return Err(images);
    }
    let (m, cin_g) = (g.cout_g(), g.cin_g());
    let (taps, kt) = (g.kh * g.kw, m * g.kh * g.kw);
    let mut w_t = vec![T::ZERO; g.weight_len()];
    for grp in 0..g.groups {
        let (src, dst) = (
            &w[grp * m * cin_g * taps..],
            &mut w_t[grp * m * cin_g * taps..],
        );
        for co in 0..m {
            for ci in 0..cin_g {
                for tap in 0..taps {
                    dst[(ci * m + co) * taps + taps - 1 - tap] =
                        src[(co * cin_g + ci) * taps + tap];
                }
            }
        }
    }
    let w_src = |w_g: &[T]| T::src(w_g.as_ptr(), kt, 1);
    let compute = half_gemm::compute_for(&w_src(&w_t), &w_src(&w_t));
    let bf16_products = matches!(compute, Compute::AmxBf16 | Compute::Bf16Dot);
    let (dy_f32, dy_bf16) = (as_type::<D, f32>(dy), as_type::<D, half::bf16>(dy));
    // A bf16 dy multiplies only as bf16 products; anything else takes the col2im path.
    if dy_f32.is_none() && !(bf16_products && dy_bf16.is_some()) {
        return Err(images);
    }
    let (n, out_img) = (g.out_hw(), g.c_out * g.out_hw());
    let (_, par) = split(g.batch);
    let transposed_image = |image: ConvImage, dx_b: &mut [f32]| {
        for grp in 0..g.groups {
            // SAFETY: the group's m·n elements lie in the image.
            let image = unsafe { image.offset(grp * m * n) };
            let Some(rows) = ConvRows::new(image, m * n, [g.h, g.w], [g.kh, g.kw]) else {
                unreachable!("implicit_applies checked the kernel")
            };
            let w_g = &w_t[grp * cin_g * kt..][..cin_g * kt];
            let dx_g = &mut dx_b[grp * cin_g * n..][..cin_g * n];
            // SAFETY: dx_g is cin_g×n, w_g cin_g×kt row-major, rows the kt×n matrix of dy's group (m channels
            // of n positions); all exactly sized.
            unsafe {
                half_gemm::gemm(
                    compute,
                    [cin_g, n, kt],
                    Strided::new(dx_g.as_mut_ptr(), n, 1),
                    false,
                    w_src(w_g),
                    Src::Conv(rows),
                    par,
                )
            }
        }
    };
    let one = |b: usize, dx_b: &mut [f32]| match (dy_bf16, dy_f32) {
        (Some(dy), _) => transposed_image(ConvImage::Bf16(dy[b * out_img..].as_ptr()), dx_b),
        (None, Some(dy)) if bf16_products => {
            let dy_b = &dy[b * out_img..][..out_img];
            // This thread's im2col buffer holds the rounded dy (the implicit GEMM needs no im2col); every
            // element is written before it is read.
            with_col::<half::bf16, _>(out_img, |dy16| {
                dy16.round_from(dy_b);
                transposed_image(ConvImage::Bf16(dy16.as_ptr()), dx_b)
            })
        }
        (None, Some(dy)) => transposed_image(ConvImage::F32(dy[b * out_img..].as_ptr()), dx_b),
        (None, None) => unreachable!("checked above"),
    };
    Ok(images(&one))
}

/// Writes image `b`'s whole input gradient into the slice (`c_in·h·w` elements).
type PerImage<'a> = dyn Fn(usize, &mut [f32]) + Sync + Send + 'a;

/// `dx[b] = col2im(wᵀ · dy[b])`.
pub fn backward_input<T: Elem, D: Elem>(g: &ConvGeometry, w: &[T], dy: &[D]) -> Vec<f32> {
    let (per_image, _) = split(g.batch);
    let in_img = g.c_in * g.h * g.w;
    backward_input_with(g, w, dy, |one| {
        by_image(per_image, g.input_len(), in_img, one)
    })
}

/// [`backward_input`] rounded to the half type `H` image by image, each image's `f32` gradient (in a reused
/// per-thread buffer) first summed with `held`'s (a gradient the input already has from another reader), as
/// `grad_sum::register_f32` sums them: the same values bit for bit. `None` (nothing computed) where the GEMMs
/// themselves run in parallel (fewer images than threads) or `held` is not `g.input_len()` long.
///
/// Why: the whole `f32` gradient was a fresh allocation (its first-touch page faults and zeroing), written once
/// and read back from memory to be rounded (`round_bf16`/`round_f16` ~1.2–1.6 % of a half train step at 320);
/// here each image is rounded while it is still in L2.
pub fn backward_input_rounded<T: Elem, D: Elem, H: Elem>(
    g: &ConvGeometry,
    w: &[T],
    dy: &[D],
    held: Option<super::cast::Floats>,
) -> Option<Vec<H>>
where
    [H]: super::half_slice::HalfSlice,
{
    use super::half_slice::HalfSlice;
    let (per_image, _) = split(g.batch);
    let in_img = g.c_in * g.h * g.w;
    if !per_image || held.is_some_and(|h| h.len() != g.input_len()) || in_img == 0 {
        return None;
    }
    Some(backward_input_with(g, w, dy, |one| {
        let mut out = bytemuck::zeroed_vec::<H>(g.input_len());
        out.par_chunks_mut(in_img)
            .enumerate()
            .for_each(|(b, out_b)| {
                DX.with(|dx| {
                    let mut dx = dx.borrow_mut();
                    if dx.len() < in_img {
                        dx.resize(in_img, 0.0);
                    }
                    let dx_b = &mut dx[..in_img];
                    // (every path writes all of it; zeroed so that the buffer's last user never leaks in)
                    dx_b.fill(0.0);
                    one(b, dx_b);
                    if let Some(held) = held {
                        held.with_f32(b * in_img..(b + 1) * in_img, |h| {
                            dx_b.iter_mut().zip(h).for_each(|(d, h)| *d += h)
                        });
                    }
                    out_b.round_from(dx_b);
                })
            });
        out
    }))
}

/// The input gradient's per-image writer ([`PerImage`]), handed to `images`, which runs it over the batch.
fn backward_input_with<T: Elem, D: Elem, R>(
    g: &ConvGeometry,
    w: &[T],
    dy: &[D],
    images: impl FnOnce(&PerImage) -> R,
) -> R {
    debug_assert_eq!(dy.len(), g.output_len());
    let images = match backward_input_transposed(g, w, dy, images) {
        Ok(dx) => return dx,
        Err(declined) => declined,
    };
    let out_img = g.c_out * g.out_hw();
    let (_, par) = split(g.batch);
    let one = |b: usize, dx_b: &mut [f32]| {
        backward_input_image(g, w, &dy[b * out_img..][..out_img], dx_b, par)
    };
    images(&one)
}

fn backward_input_image<T: Elem, D: Elem>(
    g: &ConvGeometry,
    w: &[T],
    dy: &[D],
    dx: &mut [f32],
    par: Parallelism,
) {
    let (n, k, m) = (g.out_hw(), g.k(), g.cout_g());
    let in_group = g.cin_g() * g.h * g.w;
    for grp in 0..g.groups {
        let w_g = &w[grp * m * k..][..m * k];
        let dy_g = &dy[grp * m * n..][..m * n];
        let dx_g = &mut dx[grp * in_group..][..in_group];
        // dcol (k×n) = w_gᵀ (k×m) · dy_g (m×n): wᵀ is w read with swapped strides.
        let run = |dcol: &mut [f32]| unsafe {
            // SAFETY: dcol is k×n, w_g m×k (read transposed), dy_g m×n; all exactly sized.
            matmul(
                [k, n, m],
                Strided::new(dcol.as_mut_ptr(), n, 1),
                false,
                T::src(w_g.as_ptr(), 1, k),
                D::src(dy_g.as_ptr(), n, 1),
                par,
            )
        };
        if g.is_pointwise() {
            run(dx_g);
        } else if let Some(dy_g) = as_type::<D, f32>(dy_g).filter(|_| taps_for::<T>(g)) {
            let wide = Wide::new(g);
            with_scratch(
                wide.padded_len(g),
                wide.out_len(g),
                |dxp: &mut [f32], dy_wide| {
                    taps::widen(g, &wide, dy_g, dy_wide);
                    taps::backward_input(g, &wide, w_g, dy_wide, dxp, par);
                    taps::unpad(g, &wide, dxp, dx_g);
                },
            );
        } else {
            with_col(k * n, |dcol: &mut [f32]| {
                run(dcol);
                col2im(g, dcol, dx_g);
            });
        }
    }
}

/// `dw = Σ_b dy[b] · im2col(x[b])ᵀ`, written (not accumulated) into `dw`.
pub fn backward_weight<T: Elem, D: Elem>(g: &ConvGeometry, x: &[T], dy: &[D], dw: &mut [f32]) {
    debug_assert_eq!(x.len(), g.input_len());
    backward_weight_strided(g, x, g.c_in * g.h * g.w, dy, dw);
}

/// [`backward_weight`] on images `x[b · batch_stride..]`, as [`forward_strided`].
pub fn backward_weight_strided<T: Elem, D: Elem>(
    g: &ConvGeometry,
    x: &[T],
    batch_stride: usize,
    dy: &[D],
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

fn backward_weight_image<T: Elem, D: Elem>(
    g: &ConvGeometry,
    x: &[T],
    dy: &[D],
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
        let run = |col: &[T], dw_g: &mut [f32]| unsafe {
            // SAFETY: dw_g is m×k, dy_g m×n, col k×n (read transposed); all exactly sized.
            matmul(
                [m, k, n],
                Strided::new(dw_g.as_mut_ptr(), k, 1),
                accumulate,
                D::src(dy_g.as_ptr(), n, 1),
                T::src(col.as_ptr(), 1, n),
                par,
            )
        };
        let dots = dot::applies(m, k, n);
        let implicit = implicit(g, x_g).filter(|_| !dots);
        if g.is_pointwise() && dots {
            dot::a_bt(m, k, n, dy_g, x_g, dw_g, accumulate);
        } else if g.is_pointwise() {
            run(x_g, dw_g);
        } else if let (Some(x16), Some(dy32), true) = (
            as_type::<T, half::f16>(x_g),
            as_type::<D, f32>(dy_g),
            implicit_applies(g) && m <= WIDEN_MAX_ROWS,
        ) {
            backward_weight_widened(g, x16, dy32, dw_g, accumulate, par);
        } else if let (Some(xb), Some(dy32), true) = (
            as_type::<T, half::bf16>(x_g),
            as_type::<D, f32>(dy_g),
            implicit_applies(g) && dots,
        ) {
            backward_weight_widened(g, xb, dy32, dw_g, accumulate, par);
        } else if let Some(rows) = implicit {
            // colᵀ read in place from the image (no im2col)
            let col_t = Src::Conv(rows.transposed());
            let lhs = D::src(dy_g.as_ptr(), n, 1);
            // SAFETY: as `run`, the rhs being x_g's im2col matrix read transposed in place.
            unsafe {
                half_gemm::gemm(
                    half_gemm::compute_for(&lhs, &col_t),
                    [m, k, n],
                    Strided::new(dw_g.as_mut_ptr(), k, 1),
                    accumulate,
                    lhs,
                    col_t,
                    par,
                )
            }
        } else if let Some(dy_g) = as_type::<D, f32>(dy_g).filter(|_| taps_for::<T>(g)) {
            let wide = Wide::new(g);
            with_scratch(wide.padded_len(g), wide.out_len(g), |xp, dy_wide| {
                taps::pad_input(g, &wide, x_g, xp);
                taps::widen(g, &wide, dy_g, dy_wide);
                taps::backward_weight(g, &wide, xp, dy_wide, dw_g, accumulate, par);
            });
        } else {
            with_col(k * n, |col: &mut [T]| {
                im2col(g, x_g, col);
                if dots {
                    dot::a_bt(m, k, n, dy_g, col, dw_g, accumulate);
                } else {
                    run(col, dw_g);
                }
            });
        }
    }
}

/// The most output channels (per group) for which [`backward_weight_widened`] takes an `f16` conv's weight
/// gradient: with more rows to share each packed value, the implicit GEMM was as fast or faster (80 and 128
/// channels at 40×40 to 10×10, in the same per-layer runs).
const WIDEN_MAX_ROWS: usize = 64;

/// The weight gradient of one group of a half "same" stride-1 conv with an `f32` `dy`, on `f32` copies: the
/// image widened while it is padded for the tap GEMMs (where [`taps::applies`]) or before im2col, then exactly
/// the `f32` route (the `gemm` crate). For `f16` with at most [`WIDEN_MAX_ROWS`] output channels; for `bf16`
/// where the rows are too few for the half GEMM ([`dot::applies`]).
///
/// Why: without AVX512-FP16 both routes multiply in `f32` FMAs, but the implicit GEMM packs `colᵀ` with a 16 × 16
/// transpose per 256 values, each used by only `c_out` rows, and the narrow ones took im2col and dot products:
/// per layer (`cargo bench --bench conv_layers`, YOLOv8n at 320, one thread), 16 → 16 at 80×80 took 4.3 ms
/// against 3.1–3.4 for `f32` (3.3 this way), and a 32 → 32 conv at 80×80 17.2 ms against 14.0. Converting while
/// copying costs no pass of its own. `bf16`'s VDPBF16PS halves the implicit GEMM's multiplies, which wins from
/// 32 channels up, but its 16 → 16 conv took the same im2col and dot products: 3.7 ms against `f32`'s 3.1.
fn backward_weight_widened<H>(
    g: &ConvGeometry,
    x: &[H],
    dy: &[f32],
    dw_g: &mut [f32],
    accumulate: bool,
    par: Parallelism,
) where
    [H]: super::half_slice::HalfSlice,
{
    let (n, k, m) = (g.out_hw(), g.k(), g.cout_g());
    if taps::applies(g) {
        let wide = Wide::new(g);
        with_scratch::<f32, _>(wide.padded_len(g), wide.out_len(g), |xp, dy_wide| {
            taps::pad_input_widened(g, &wide, x, xp);
            taps::widen(g, &wide, dy, dy_wide);
            taps::backward_weight(g, &wide, xp, dy_wide, dw_g, accumulate, par);
        });
        return;
    }
    // the im2col matrix, and the widened image it is copied from in the second buffer
    with_scratch::<f32, _>(k * n, x.len(), |col, wide| {
        use super::half_slice::HalfSlice;
        x.widen_into(wide);
        im2col(g, wide, col);
        // SAFETY: dw_g is m×k, dy m×n, col k×n (read transposed); all exactly sized.
        unsafe {
            gemm_strided(
                [m, k, n],
                Strided::new(dw_g.as_mut_ptr(), k, 1),
                accumulate,
                Strided::new(dy.as_ptr(), n, 1),
                Strided::new(col.as_ptr(), 1, n),
                par,
            )
        }
    });
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
fn im2col<T: Elem>(g: &ConvGeometry, x: &[T], col: &mut [T]) {
    let n = g.out_hw();
    for (r, dst) in col.chunks_exact_mut(n).take(g.k()).enumerate() {
        col_row(g, x, r, dst);
    }
}

/// Row `r = (ci, ky, kx)` of the im2col matrix.
fn col_row<T: Elem>(g: &ConvGeometry, x: &[T], r: usize, dst: &mut [T]) {
    let ow = g.out_w();
    let [sy, sx] = g.stride;
    let [py, px] = g.pad;
    let (ci, ky, kx) = (r / (g.kh * g.kw), r / g.kw % g.kh, r % g.kw);
    let plane = &x[ci * g.h * g.w..][..g.h * g.w];
    let (lo, hi) = valid_range(ow, g.w, sx, kx, px);
    if sx == 1 && sy == 1 && ow == g.w {
        // A "same" conv's row is the plane shifted by (ky − py, kx − px): one copy of the whole run, then the
        // columns that wrapped into the next row zeroed (a copy per output row cost more than the copying at
        // YOLO's 10–40 px deep layers).
        let (oy_lo, oy_hi) = valid_range(g.out_h(), g.h, 1, ky, py);
        if oy_lo >= oy_hi || lo >= hi {
            dst.fill(T::ZERO);
            return;
        }
        let (start, end) = (oy_lo * ow + lo, (oy_hi - 1) * ow + hi);
        let from = (oy_lo + ky - py) * g.w + lo + kx - px;
        dst[..start].fill(T::ZERO);
        dst[start..end].copy_from_slice(&plane[from..from + (end - start)]);
        dst[end..].fill(T::ZERO);
        for out_row in dst.chunks_exact_mut(ow).take(oy_hi).skip(oy_lo) {
            out_row[..lo].fill(T::ZERO);
            out_row[hi..].fill(T::ZERO);
        }
        return;
    }
    for (oy, out_row) in dst.chunks_exact_mut(ow).enumerate() {
        let iy = (oy * sy + ky) as isize - py as isize;
        if iy < 0 || iy >= g.h as isize {
            out_row.fill(T::ZERO);
            continue;
        }
        let src = &plane[iy as usize * g.w..][..g.w];
        out_row[..lo].fill(T::ZERO);
        out_row[hi..].fill(T::ZERO);
        if lo == hi {
            continue;
        }
        let first = lo * sx + kx - px;
        if sx == 1 {
            out_row[lo..hi].copy_from_slice(&src[first..first + (hi - lo)]);
        } else if sx == 2 {
            every_other(&src[first..], &mut out_row[lo..hi]);
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

/// `dst[i] = src[2·i]`: the rows of a stride-2 conv's im2col. `step_by(2)` compiles to one load and store per
/// element; with AVX-512 two loads and one two-source permute give 16 (`f32`) or 32 (`bf16`, `f16`: a pure
/// copy, so the elements move as bits). (im2col's own loops were 6 % of a train step at 640 in perf; its
/// stride-1 rows are already `memcpy`s.)
fn every_other<T: Elem>(src: &[T], dst: &mut [T]) {
    debug_assert!(src.len() + 1 >= 2 * dst.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
    {
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        // SAFETY: AVX-512F/BW are present; the views cover exactly `src` and `dst` (a 4-byte `Elem` is `f32`,
        // a 2-byte one a 16-bit float whose bits move as `u16`), and the lengths are what the kernels check.
        done = unsafe {
            match std::mem::size_of::<T>() {
                4 => every_other_avx512(
                    std::slice::from_raw_parts(s.cast::<f32>(), src.len()),
                    std::slice::from_raw_parts_mut(d.cast::<f32>(), dst.len()),
                ),
                2 => every_other_avx512_u16(
                    std::slice::from_raw_parts(s.cast::<u16>(), src.len()),
                    std::slice::from_raw_parts_mut(d.cast::<u16>(), dst.len()),
                ),
                _ => 0,
            }
        };
    }
    for (d, s) in dst[done..]
        .iter_mut()
        .zip(src.get(2 * done..).unwrap_or_default().iter().step_by(2))
    {
        *d = *s;
    }
}

/// [`every_other`] in blocks of 16 outputs and one masked block for the tail; returns how many outputs it wrote
/// (all of them when `src` holds the `2·len − 1` inputs the caller checks).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn every_other_avx512(src: &[f32], dst: &mut [f32]) -> usize {
    use std::arch::x86_64::*;
    let blocks = (dst.len() / 16).min(src.len() / 32);
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for j in 0..blocks {
        // SAFETY: 32·j + 32 ≤ src.len() and 16·j + 16 ≤ dst.len() by the choice of `blocks`.
        unsafe {
            let lo = _mm512_loadu_ps(src.as_ptr().add(32 * j));
            let hi = _mm512_loadu_ps(src.as_ptr().add(32 * j + 16));
            let v = _mm512_permutex2var_ps(lo, even, hi);
            _mm512_storeu_ps(dst.as_mut_ptr().add(16 * j), v);
        }
    }
    // The tail (YOLO's deep rows are 10–40 wide, mostly tail) with masked loads and stores.
    let rest = (dst.len() - 16 * blocks).min(16);
    let avail = (src.len() - 32 * blocks).min(32);
    if rest > 0 && avail >= 2 * rest - 1 {
        let mask = |n: usize| -> __mmask16 { ((1u32 << n.min(16)) - 1) as __mmask16 };
        // SAFETY: the masks cover `avail` source elements from 32·blocks (inside src) and `rest` outputs.
        unsafe {
            let s = src.as_ptr().add(32 * blocks);
            let lo = _mm512_maskz_loadu_ps(mask(avail), s);
            let hi = _mm512_maskz_loadu_ps(mask(avail.saturating_sub(16)), s.add(16));
            let v = _mm512_permutex2var_ps(lo, even, hi);
            _mm512_mask_storeu_ps(dst.as_mut_ptr().add(16 * blocks), mask(rest), v);
        }
        return 16 * blocks + rest;
    }
    16 * blocks
}

/// [`every_other_avx512`] for 16-bit elements: 32 outputs per block of 64 inputs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn every_other_avx512_u16(src: &[u16], dst: &mut [u16]) -> usize {
    use std::arch::x86_64::*;
    let blocks = (dst.len() / 32).min(src.len() / 64);
    let even = _mm512_set_epi16(
        62, 60, 58, 56, 54, 52, 50, 48, 46, 44, 42, 40, 38, 36, 34, 32, 30, 28, 26, 24, 22, 20, 18,
        16, 14, 12, 10, 8, 6, 4, 2, 0,
    );
    for j in 0..blocks {
        // SAFETY: 64·j + 64 ≤ src.len() and 32·j + 32 ≤ dst.len() by the choice of `blocks`.
        unsafe {
            let lo = _mm512_loadu_si512(src.as_ptr().add(64 * j).cast());
            let hi = _mm512_loadu_si512(src.as_ptr().add(64 * j + 32).cast());
            let v = _mm512_permutex2var_epi16(lo, even, hi);
            _mm512_storeu_si512(dst.as_mut_ptr().add(32 * j).cast(), v);
        }
    }
    let rest = (dst.len() - 32 * blocks).min(32);
    let avail = (src.len() - 64 * blocks).min(64);
    if rest > 0 && avail >= 2 * rest - 1 {
        let mask = |n: usize| -> __mmask32 { ((1u64 << n.min(32)) - 1) as __mmask32 };
        // SAFETY: as in `every_other_avx512`.
        unsafe {
            let s = src.as_ptr().add(64 * blocks);
            let lo = _mm512_maskz_loadu_epi16(mask(avail), s.cast());
            let hi = _mm512_maskz_loadu_epi16(mask(avail.saturating_sub(32)), s.add(32).cast());
            let v = _mm512_permutex2var_epi16(lo, even, hi);
            _mm512_mask_storeu_epi16(dst.as_mut_ptr().add(32 * blocks).cast(), mask(rest), v);
        }
        return 32 * blocks + rest;
    }
    32 * blocks
}

/// The adjoint of [`im2col`]: `dx[ci, iy, ix] = Σ dcol[(ci, ky, kx), (oy, ox)]` over the positions that read it.
///
/// `dcol` is scratch: a "same" conv's rows have the columns that read outside the image zeroed, so that each row
/// adds to the plane as one shifted run (the mirror of [`col_row`]'s copy).
fn col2im(g: &ConvGeometry, dcol: &mut [f32], dx: &mut [f32]) {
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
                let src = &mut dcol[row * n..][..n];
                row += 1;
                let (lo, hi) = valid_range(ow, g.w, sx, kx, px);
                if lo >= hi {
                    continue;
                }
                if sx == 1 && sy == 1 && ow == g.w {
                    let (oy_lo, oy_hi) = valid_range(oh, g.h, 1, ky, py);
                    if oy_lo >= oy_hi {
                        continue;
                    }
                    for in_row in src.chunks_exact_mut(ow).take(oy_hi).skip(oy_lo) {
                        in_row[..lo].fill(0.0);
                        in_row[hi..].fill(0.0);
                    }
                    let (start, end) = (oy_lo * ow + lo, (oy_hi - 1) * ow + hi);
                    let from = (oy_lo + ky - py) * g.w + lo + kx - px;
                    for (d, s) in plane[from..from + (end - start)]
                        .iter_mut()
                        .zip(&src[start..end])
                    {
                        *d += *s;
                    }
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

/// Whether the tap GEMMs take this conv in element type `T`: only `f32`. [`taps::applies`] was measured against
/// the `gemm` crate's im2col GEMM; for `f16`/`bf16` operands (our half GEMM) im2col's single GEMM with `K =
/// c_in·kh·kw` was as fast or faster (YOLOv8n bf16 train step at 320, 2 threads: 23.8–23.9 ms/img against
/// 24.5–25.7 with the taps; fp16 38.9–42.9 against 40.9–44.5): half the copy's bytes, and one pass over the
/// `f32` output instead of one per tap.
fn taps_for<T>(g: &ConvGeometry) -> bool {
    std::mem::size_of::<T>() == 4 && taps::applies(g)
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
            // Through the tap GEMMs (`taps::applies`): 3×3 same-padded, unpadded, 5×5, grouped, one image.
            ConvGeometry { c_in: 16, ..base },
            ConvGeometry {
                c_in: 16,
                pad: [0, 0],
                ..base
            },
            ConvGeometry {
                c_in: 32,
                kh: 5,
                kw: 5,
                pad: [2, 1],
                h: 6,
                w: 5,
                ..base
            },
            ConvGeometry {
                c_in: 32,
                groups: 2,
                ..base
            },
            ConvGeometry {
                c_in: 16,
                batch: 1,
                ..base
            },
        ]
    }

    #[test]
    fn every_other_matches_step_by() {
        let src: Vec<f32> = (0..160u8).map(f32::from).collect();
        let src16: Vec<half::bf16> = src.iter().map(|v| half::bf16::from_f32(*v)).collect();
        for n in 0..=80usize {
            for len in [2 * n, (2 * n).saturating_sub(1)] {
                let mut dst = vec![f32::NAN; n];
                every_other(&src[..len], &mut dst);
                let want: Vec<f32> = src[..len].iter().step_by(2).take(n).copied().collect();
                assert_eq!(dst, want, "n {n} len {len}");
                let mut dst16 = vec![half::bf16::NAN; n];
                every_other(&src16[..len], &mut dst16);
                let want16: Vec<half::bf16> =
                    src16[..len].iter().step_by(2).take(n).copied().collect();
                assert_eq!(dst16, want16, "bf16 n {n} len {len}");
            }
        }
    }

    #[test]
    fn the_grid_covers_both_paths() {
        let taps = geometries().iter().filter(|g| taps::applies(g)).count();
        assert!(taps >= 5 && taps < geometries().len());
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
            let out = forward(&g, &x, &w);
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
            let dx = backward_input(&g, &w, &dy);
            let mut dw = vec![f32::NAN; g.weight_len()];
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

    /// [`backward_input_rounded`] against what it replaces, `round(backward_input + held)` in `f32`: equal bit
    /// for bit, for both half types, with and without a held gradient (f32 or half), through the transposed
    /// path (3×3 stride 1) and col2im (stride 2, pointwise).
    #[test]
    fn rounded_input_gradient_is_the_rounded_f32_one() {
        use super::super::cast::Floats;
        use super::super::half_slice::HalfSlice;
        use half::{bf16, f16};
        fn check<H: Elem + std::fmt::Debug + PartialEq>(
            to: fn(f32) -> H,
            floats: for<'a> fn(&'a [H]) -> Floats<'a>,
        ) where
            [H]: HalfSlice,
        {
            let geometries = [
                (3, [1, 1], [1, 1]),
                (3, [2, 2], [1, 1]),
                (1, [1, 1], [0, 0]),
            ];
            for (k, stride, pad) in geometries {
                let g = ConvGeometry {
                    // at least as many images as threads, so that images run in parallel
                    batch: rayon::current_num_threads().max(5),
                    c_in: 12,
                    h: 9,
                    w: 7,
                    c_out: 16,
                    kh: k,
                    kw: k,
                    stride,
                    pad,
                    groups: 1,
                };
                let value = |i: usize, seed: usize| {
                    ((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0
                };
                let w: Vec<H> = (0..g.weight_len()).map(|i| to(value(i, 1))).collect();
                let dy: Vec<f32> = (0..g.output_len()).map(|i| value(i, 2) * 0.37).collect();
                let held32: Vec<f32> = (0..g.input_len()).map(|i| value(i, 3)).collect();
                let held_h: Vec<H> = held32.iter().map(|v| to(*v)).collect();
                let mut held_h32 = vec![0.0f32; held_h.len()];
                held_h.widen_into(&mut held_h32);
                for (held, add) in [
                    (None, None),
                    (Some(Floats::F32(&held32)), Some(&held32)),
                    (Some(floats(&held_h)), Some(&held_h32)),
                ] {
                    let mut want32 = backward_input(&g, &w, &dy);
                    if let Some(add) = add {
                        want32.iter_mut().zip(add).for_each(|(d, h)| *d += h);
                    }
                    let mut want = vec![to(0.0); want32.len()];
                    want.round_from(&want32);
                    let got = backward_input_rounded::<H, f32, H>(&g, &w, &dy, held)
                        .expect("at least as many images as threads");
                    assert!(got == want, "{g:?}, held {}", add.is_some());
                }
            }
        }
        check::<f16>(f16::from_f32, |v| Floats::F16(v));
        check::<bf16>(bf16::from_f32, |v| Floats::Bf16(v));
    }
}
