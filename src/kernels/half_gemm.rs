//! `dst (+)= lhs · rhs` with `f32`, `bf16` or `f16` operands (any mix) and `f32` accumulation: the conv
//! kernels' GEMM for half-precision tensors.
//!
//! Why our own: the `gemm` crate has no `bf16` type, and its `f16` GEMM widens while packing and writes an `f16`
//! result (no `f32` output for BatchNorm's statistics, no `f32` accumulation across the tap GEMMs). Widening
//! whole tensors at the op's boundary and multiplying in `f32` ran bf16 at 0.57–0.74× of our fp32
//! (docs/benchmarks.md). Here the operands stay in their own type in memory and are converted while they are
//! packed, one cache-sized block at a time, and the multiplication runs in one of three micro-kernels:
//!
//! - [`Compute::AmxBf16`] (Intel AMX-BF16: Sapphire Rapids and later; the `amx` module): `bf16` operands as
//!   below, multiplied on tiles by `TDPBF16PS`, whose `B` operand is exactly the pair layout packed here. Where
//!   the OS grants it, it comes first: on such a CPU `VDPBF16PS` is slower than `f32` FMAs.
//! - [`Compute::Bf16Dot`] (AVX512_BF16, Zen 4 and Intel Cooper Lake / Sapphire Rapids): both operands rounded
//!   to `bf16` (nearest even) and packed in `VDPBF16PS`'s pair layout, each instruction 32 products summed
//!   into 16 `f32` lanes, twice an `f32` FMA's work. The rounding is exactly what `torch.autocast`'s bf16 conv
//!   does to its `f32` inputs. Like every `VDPBF16PS` user, subnormal inputs count as zero.
//! - [`Compute::F32Fma`] (AVX-512F): both operands widened to `f32` (F16C's `VCVTPH2PS` for `f16`) and
//!   multiplied with FMAs. This is the `f16` path (AVX512-FP16 accumulates in `f16`, and `amx-fp16` is not on
//!   our machines), and the `bf16` path on AVX-512 CPUs without AVX512_BF16: the values are the tensors' own,
//!   so the result is the `f32` product of the half inputs.
//!
//! Without AVX-512 the flex layer widens at the op boundary and calls `gemm` (`available` is false).
//!
//! Layout: BLIS's loops. `rhs` is packed in `NC × KC` blocks of `NR`-column panels, `lhs` in `MC × KC` blocks of
//! `MR`-row panels, and an `MR × NR` tile of `dst` is accumulated in registers over one `KC` block.

use gemm::Parallelism;
use half::{bf16, f16};

use super::conv::Strided;

#[cfg(target_arch = "x86_64")]
mod amx;

/// Rows of a register tile.
const MR: usize = 8;
/// Columns of a register tile: two 16-lane vectors.
const NR: usize = 32;
/// Depth of a packed block, in `k` elements (even). A `bf16` rhs panel is `KC · NR · 2` bytes: 16 KiB, so it
/// stays in the 32 KiB L1 beside the `lhs` panel streaming past it from L2 (at 24 KiB the two overflowed L1).
const KC_BF16: usize = 256;
/// The same for `f32` panels (`KC · NR · 4` bytes).
const KC_F32: usize = 128;
/// Rows of a packed `lhs` block (in L2).
const MC: usize = 128;
/// Columns of a packed `rhs` block.
const NC: usize = 1536;

/// Which micro-kernel multiplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compute {
    /// AMX's `TDPBF16PS` on `bf16` tiles (`amx` module).
    AmxBf16,
    /// `VDPBF16PS` on `bf16` pairs.
    Bf16Dot,
    /// `f32` FMAs on widened operands.
    F32Fma,
}

/// Whether any micro-kernel runs on this CPU (AVX-512F and BW).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether [`Compute::Bf16Dot`] runs on this CPU.
pub fn bf16_dot_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        available() && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether [`Compute::AmxBf16`] runs in this process.
pub fn amx_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        amx::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The micro-kernel for operands of these types: `bf16` products wherever a `bf16` operand meets no `f16` one
/// and the CPU has them (AMX tiles first), `f32` FMAs otherwise (an `f16` value rounded to `bf16` would lose 3
/// of its bits).
pub fn compute_for(lhs: &Src, rhs: &Src) -> Compute {
    let has = |f: fn(&Src) -> bool| f(lhs) || f(rhs);
    let bf16 = |s: &Src| {
        matches!(s, Src::Bf16(_))
            || matches!(s, Src::Conv(c) if matches!(c.image, ConvImage::Bf16(_)))
    };
    let f16 = |s: &Src| {
        matches!(s, Src::F16(_))
            || matches!(s, Src::Conv(c) if matches!(c.image, ConvImage::F16(_)))
    };
    if !has(bf16) || has(f16) {
        Compute::F32Fma
    } else if let Some(forced) = forced() {
        forced
    } else if amx_available() {
        Compute::AmxBf16
    } else if bf16_dot_available() {
        Compute::Bf16Dot
    } else {
        Compute::F32Fma
    }
}

/// [`force`]'s choice: 0 none, 1 AMX, 2 `VDPBF16PS`, 3 FMAs.
static FORCED: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Makes every later GEMM of `bf16` operands run on `compute` (`None`: the fastest this CPU has), process-wide,
/// so that tests and benchmarks can reach each micro-kernel on one machine. Returns false (and changes
/// nothing) when `compute` cannot run here.
pub fn force(compute: Option<Compute>) -> bool {
    let runs = match compute {
        None | Some(Compute::F32Fma) => true,
        Some(Compute::Bf16Dot) => bf16_dot_available(),
        Some(Compute::AmxBf16) => amx_available(),
    };
    if runs {
        let code = match compute {
            None => 0,
            Some(Compute::AmxBf16) => 1,
            Some(Compute::Bf16Dot) => 2,
            Some(Compute::F32Fma) => 3,
        };
        FORCED.store(code, std::sync::atomic::Ordering::Relaxed);
    }
    runs
}

fn forced() -> Option<Compute> {
    match FORCED.load(std::sync::atomic::Ordering::Relaxed) {
        1 => Some(Compute::AmxBf16),
        2 => Some(Compute::Bf16Dot),
        3 => Some(Compute::F32Fma),
        _ => None,
    }
}

/// The micro-kernel `bf16` operands get now (forced or the fastest here).
pub fn bf16_compute() -> Compute {
    let one = bf16::ZERO;
    let src = Src::Bf16(Strided::new(&one, 1, 1));
    compute_for(&src, &src)
}

/// An operand in memory, in its own float type.
#[derive(Clone, Copy)]
pub enum Src {
    F32(Strided<*const f32>),
    Bf16(Strided<*const bf16>),
    F16(Strided<*const f16>),
    /// A "same" conv's im2col matrix, read in place from the image: only ever a GEMM's `rhs`.
    Conv(ConvRows),
}

/// The im2col matrix of a stride-1 convolution that keeps the image's size (`kh`, `kw` odd, padding half the
/// kernel), read from the image in place: row `(c, ky, kx)`, column `oy·w + ox` is `x[c, oy + ky − py, ox + kx −
/// px]`, zero outside the image (implicit GEMM).
///
/// Why: writing the im2col buffer and reading it back (plus zeroing its border columns) was ~8 % of a bf16
/// YOLOv8n train step (perf, docs/benchmarks.md); YOLO's 3×3 stride-1 convs are all of this kind. Each packed
/// row is now one masked load from the image at the row's shift: the mask drops the lanes whose column wraps
/// into the neighbouring image row or whose row lies outside the image.
#[derive(Clone, Copy)]
pub struct ConvRows {
    pub(super) image: ConvImage,
    /// Read as the transpose (`colᵀ`: row `oy·w + ox`, column `(c, ky, kx)`): the weight gradient's `rhs`.
    pub(super) transposed: bool,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) kh: usize,
    pub(super) kw: usize,
}

/// The image behind [`ConvRows`], in its own type: `bf16` or `f16` activations, or an `f32` upstream gradient
/// (the input gradient's transposed conv).
#[derive(Clone, Copy)]
pub enum ConvImage {
    Bf16(*const bf16),
    F16(*const f16),
    F32(*const f32),
}

impl ConvImage {
    /// The image from its element `elems` on.
    ///
    /// # Safety
    /// `elems` lies in the image.
    pub(super) unsafe fn offset(self, elems: usize) -> Self {
        // SAFETY: the caller's.
        unsafe {
            match self {
                ConvImage::Bf16(p) => ConvImage::Bf16(p.add(elems)),
                ConvImage::F16(p) => ConvImage::F16(p.add(elems)),
                ConvImage::F32(p) => ConvImage::F32(p.add(elems)),
            }
        }
    }

    /// Element `i` in `f32`.
    ///
    /// # Safety
    /// `i` lies in the image.
    unsafe fn f32_at(&self, i: usize) -> f32 {
        // SAFETY: the caller's.
        unsafe {
            match self {
                ConvImage::Bf16(p) => (*p.add(i)).to_f32(),
                ConvImage::F16(p) => (*p.add(i)).to_f32(),
                ConvImage::F32(p) => *p.add(i),
            }
        }
    }
}

impl ConvRows {
    /// The widest kernel the packer's per-tap masks hold.
    pub const MAX_K: usize = 15;

    /// The rows of an image of `len` elements (`c × h × w`, contiguous) for a `kh × kw` "same" conv; `None`
    /// for a kernel this does not cover (even or wider than [`Self::MAX_K`]).
    pub fn new(
        image: ConvImage,
        len: usize,
        [h, w]: [usize; 2],
        [kh, kw]: [usize; 2],
    ) -> Option<Self> {
        let odd = |k: usize| k % 2 == 1 && k <= Self::MAX_K;
        (odd(kh) && odd(kw) && h > 0 && w > 0 && len.is_multiple_of(h * w)).then_some(ConvRows {
            image,
            transposed: false,
            h,
            w,
            kh,
            kw,
        })
    }

    /// The same matrix read as its transpose (`colᵀ`).
    pub fn transposed(self) -> Self {
        ConvRows {
            transposed: !self.transposed,
            ..self
        }
    }

    /// Element `(i, j)` in `f32`: `(r, j)` of the im2col matrix, or `(j, r)` when [`Self::transposed`].
    ///
    /// # Safety
    /// `(i, j)` lies in the matrix (its channel in the image, its position below `h·w`).
    unsafe fn at(&self, i: usize, j: usize) -> f32 {
        let (r, j) = if self.transposed { (j, i) } else { (i, j) };
        let (c, ky, kx) = (r / (self.kh * self.kw), r / self.kw % self.kh, r % self.kw);
        let iy = (j / self.w + ky).checked_sub(self.kh / 2);
        let ix = (j % self.w + kx).checked_sub(self.kw / 2);
        match (iy, ix) {
            (Some(iy), Some(ix)) if iy < self.h && ix < self.w => {
                // SAFETY: the caller's: channel c lies in the image, and (iy, ix) in its plane.
                unsafe { self.image.f32_at((c * self.h + iy) * self.w + ix) }
            }
            _ => 0.0,
        }
    }
}

// SAFETY: `Src` is a read-only view; callers of `gemm` guarantee the memory outlives the call and is not
// written meanwhile, so sharing it across the GEMM's threads is sound.
unsafe impl Send for Src {}
unsafe impl Sync for Src {}

/// The float types an operand may have.
pub trait Elem: bytemuck::Pod + Send + Sync + 'static {
    const ZERO: Self;
    fn src(ptr: *const Self, row: usize, col: usize) -> Src;

    /// [`ConvRows`] of `x` where the half GEMM reads this type in place (`bf16`, `f16`; `f32` convs run on
    /// `gemm`).
    fn conv_rows(_x: &[Self], _hw: [usize; 2], _k: [usize; 2]) -> Option<ConvRows> {
        None
    }
}

impl Elem for f32 {
    const ZERO: Self = 0.0;
    fn src(ptr: *const Self, row: usize, col: usize) -> Src {
        Src::F32(Strided::new(ptr, row, col))
    }
}

impl Elem for bf16 {
    const ZERO: Self = bf16::ZERO;
    fn src(ptr: *const Self, row: usize, col: usize) -> Src {
        Src::Bf16(Strided::new(ptr, row, col))
    }

    fn conv_rows(x: &[Self], hw: [usize; 2], k: [usize; 2]) -> Option<ConvRows> {
        ConvRows::new(ConvImage::Bf16(x.as_ptr()), x.len(), hw, k)
    }
}

impl Elem for f16 {
    const ZERO: Self = f16::ZERO;
    fn src(ptr: *const Self, row: usize, col: usize) -> Src {
        Src::F16(Strided::new(ptr, row, col))
    }

    fn conv_rows(x: &[Self], hw: [usize; 2], k: [usize; 2]) -> Option<ConvRows> {
        ConvRows::new(ConvImage::F16(x.as_ptr()), x.len(), hw, k)
    }
}

impl Src {
    /// Element `(i, j)` as `f32`.
    ///
    /// # Safety
    /// `(i, j)` lies in the operand.
    #[inline(always)]
    unsafe fn f32_at(&self, i: usize, j: usize) -> f32 {
        // SAFETY: the caller's.
        unsafe {
            match self {
                Src::F32(s) => *s.ptr.add(i * s.row + j * s.col),
                Src::Bf16(s) => (*s.ptr.add(i * s.row + j * s.col)).to_f32(),
                Src::F16(s) => (*s.ptr.add(i * s.row + j * s.col)).to_f32(),
                Src::Conv(c) => c.at(i, j),
            }
        }
    }

    /// Element `(i, j)` rounded to `bf16` (nearest even), as bits.
    ///
    /// # Safety
    /// `(i, j)` lies in the operand.
    #[inline(always)]
    unsafe fn bf16_at(&self, i: usize, j: usize) -> u16 {
        // SAFETY: the caller's.
        unsafe {
            match self {
                Src::Bf16(s) => (*s.ptr.add(i * s.row + j * s.col)).to_bits(),
                _ => bf16::from_f32(self.f32_at(i, j)).to_bits(),
            }
        }
    }

    /// The element strides `(row, col)`; none for [`Src::Conv`] (its rows are shifted views of one plane).
    fn strides(&self) -> (usize, usize) {
        match self {
            Src::F32(s) => (s.row, s.col),
            Src::Bf16(s) => (s.row, s.col),
            Src::F16(s) => (s.row, s.col),
            Src::Conv(_) => (usize::MAX, usize::MAX),
        }
    }

    /// Whether the elements of a row are adjacent.
    fn rows_contiguous(&self) -> bool {
        self.strides().1 == 1
    }
}

/// `dst (+)= lhs · rhs` (`m × k` times `k × n`), overwriting `dst` unless `accumulate`.
///
/// # Safety
/// As `conv::gemm_strided`: every element the shapes and strides address lies in its operand's allocation, and
/// `dst`'s elements are distinct and overlap neither operand. [`available`] must be true.
pub unsafe fn gemm(
    compute: Compute,
    [m, n, k]: [usize; 3],
    dst: Strided<*mut f32>,
    accumulate: bool,
    lhs: Src,
    rhs: Src,
    par: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    let threads = match par {
        Parallelism::Rayon(t) if n >= 2 * NR => t.max(1),
        _ => 1,
    };
    let dst = SendPtr(dst);
    let run = |cols: std::ops::Range<usize>| {
        let d = dst.get();
        // SAFETY: each run writes only its own columns of `dst`, from its first; the rest is the caller's
        // contract.
        unsafe {
            let own = Strided::new(d.ptr.add(cols.start * d.col), d.row, d.col);
            gemm_cols(compute, [m, n, k], cols, own, accumulate, lhs, rhs)
        }
    };
    if threads == 1 {
        run(0..n);
    } else {
        let per = n.div_ceil(threads).div_ceil(NR) * NR;
        rayon::scope(|s| {
            for t in 0..threads {
                let cols = (t * per).min(n)..((t + 1) * per).min(n);
                if !cols.is_empty() {
                    s.spawn(move |_| run(cols));
                }
            }
        });
    }
}

#[derive(Clone, Copy)]
struct SendPtr(Strided<*mut f32>);
// SAFETY: the runs of one `gemm` write disjoint columns.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// A method call, so that closures capture the whole `Send` wrapper rather than its raw field.
    fn get(&self) -> Strided<*mut f32> {
        self.0
    }
}

thread_local! {
    static PACK_A: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
    static PACK_B: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// [`gemm_blocks`]'s `f32` block.
    static BLOCK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `dst = lhs · rhs` one block of at most `NC` columns at a time, each handed to `epilogue(j0, cols, block)`
/// (`block`: the `m × cols` outputs of columns `j0..j0 + cols`, row-major) while it is still in cache, on this
/// thread. The caller's pass over the block (BatchNorm statistics, the activation, rounding to a half type)
/// then reads it from L2, and no `f32` output the size of the whole product is ever written.
///
/// # Safety
/// As [`gemm`] for `lhs` and `rhs`.
pub unsafe fn gemm_blocks(
    compute: Compute,
    [m, n, k]: [usize; 3],
    lhs: Src,
    rhs: Src,
    mut epilogue: impl FnMut(usize, usize, &[f32]),
) {
    if m == 0 || n == 0 {
        return;
    }
    BLOCK.with(|block| {
        let mut block = block.borrow_mut();
        let len = m * NC.min(n);
        if block.len() < len {
            block.resize(len, 0.0);
        }
        let mut j0 = 0;
        while j0 < n {
            let cols = NC.min(n - j0);
            let dst = Strided::new(block.as_mut_ptr(), cols, 1);
            // SAFETY: `block` holds `m × cols` elements with rows `cols` apart; the operands are the caller's.
            unsafe { gemm_cols(compute, [m, n, k], j0..j0 + cols, dst, false, lhs, rhs) };
            epilogue(j0, cols, &block[..m * cols]);
            j0 += cols;
        }
    });
}

/// [`gemm`] for the columns `cols`, on this thread: `dst` points at the first of them (column `cols.start`).
unsafe fn gemm_cols(
    compute: Compute,
    [m, _n, k]: [usize; 3],
    cols: std::ops::Range<usize>,
    dst: Strided<*mut f32>,
    accumulate: bool,
    lhs: Src,
    rhs: Src,
) {
    #[cfg(target_arch = "x86_64")]
    if compute == Compute::AmxBf16 && k > 0 {
        // SAFETY: the caller's; `compute_for` picks AmxBf16 only where `amx::available`.
        unsafe { amx::gemm_cols([m, _n, k], cols, dst, accumulate, lhs, rhs) };
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..cols.len() {
                    // SAFETY: (i, cols.start + j) is in dst.
                    unsafe { *dst.ptr.add(i * dst.row + j * dst.col) = 0.0 };
                }
            }
        }
        return;
    }
    let kc = match compute {
        Compute::AmxBf16 | Compute::Bf16Dot => KC_BF16,
        Compute::F32Fma => KC_F32,
    };
    // One packed element (u32) holds a bf16 pair or an f32.
    let per_k = match compute {
        Compute::AmxBf16 | Compute::Bf16Dot => 2,
        Compute::F32Fma => 1,
    };
    PACK_A.with(|pa| {
        PACK_B.with(|pb| {
            let (mut pa, mut pb) = (pa.borrow_mut(), pb.borrow_mut());
            let a_len = MC.div_ceil(MR) * MR * kc / per_k;
            let b_len = NC.div_ceil(NR) * NR * kc / per_k;
            if pa.len() < a_len {
                pa.resize(a_len, 0);
            }
            if pb.len() < b_len {
                pb.resize(b_len, 0);
            }
            let mut j0 = cols.start;
            while j0 < cols.end {
                let nc = NC.min(cols.end - j0);
                let mut p0 = 0;
                while p0 < k {
                    let kb = kc.min(k - p0);
                    let steps = kb.div_ceil(per_k);
                    // SAFETY: the block lies in rhs; pb holds NC/NR panels of `steps · NR` words.
                    unsafe { pack_b(compute, &rhs, p0, kb, j0, nc, steps, &mut pb) };
                    let load = accumulate || p0 > 0;
                    let mut i0 = 0;
                    while i0 < m {
                        let mc = MC.min(m - i0);
                        // SAFETY: as for pack_b.
                        unsafe { pack_a(compute, &lhs, i0, mc, p0, kb, &mut pa) };
                        for (jp, jr) in (0..nc).step_by(NR).enumerate() {
                            let b = pb[jp * steps * NR..].as_ptr();
                            for (ip, ir) in (0..mc).step_by(MR).enumerate() {
                                let a = pa[ip * steps * MR..].as_ptr();
                                let tile = Tile {
                                    ptr: dst.ptr.add(
                                        (i0 + ir) * dst.row + (j0 + jr - cols.start) * dst.col,
                                    ),
                                    row: dst.row,
                                    col: dst.col,
                                    rows: MR.min(mc - ir),
                                    cols: NR.min(nc - jr),
                                    load,
                                };
                                // SAFETY: the panels hold `steps` packed steps; the tile lies in dst.
                                unsafe { kernel(compute, steps, a, b, tile) };
                            }
                        }
                        i0 += mc;
                    }
                    p0 += kb;
                }
                j0 += nc;
            }
        })
    });
}

/// Where a register tile goes: `rows × cols` elements of `dst` from `ptr`, added to what is there when `load`.
#[derive(Clone, Copy)]
struct Tile {
    ptr: *mut f32,
    row: usize,
    col: usize,
    rows: usize,
    cols: usize,
    load: bool,
}

/// Packs `lhs[i0..i0+mc, p0..p0+kb]` into `MR`-row panels: word `(panel, step, r)` at
/// `panel·steps·MR + step·MR + r`. A `bf16` word is the pair `(k = 2·step, 2·step + 1)`, the first in the low
/// half; rows and depths past the block are zero.
unsafe fn pack_a(
    compute: Compute,
    lhs: &Src,
    i0: usize,
    mc: usize,
    p0: usize,
    kb: usize,
    out: &mut [u32],
) {
    let per_k = if compute == Compute::F32Fma { 1 } else { 2 };
    let steps = kb.div_ceil(per_k);
    for (ip, ir) in (0..mc).step_by(MR).enumerate() {
        let panel = &mut out[ip * steps * MR..][..steps * MR];
        let rows = MR.min(mc - ir);
        #[cfg(target_arch = "x86_64")]
        {
            let (row, col) = lhs.strides();
            if col == 1 {
                // SAFETY: the panel's rows and kb columns lie in lhs; AVX-512F/BW (and, for Bf16Dot,
                // AVX512_BF16) are present.
                unsafe { x86::pack_a_rows(compute, lhs, i0 + ir, rows, p0, kb, panel) };
                continue;
            }
            if row == 1 && rows == MR {
                // SAFETY: as above.
                unsafe { x86::pack_a_cols(compute, lhs, i0 + ir, p0, kb, panel) };
                continue;
            }
        }
        for r in 0..MR {
            let i = i0 + ir + r;
            let live = ir + r < mc;
            for s in 0..steps {
                // SAFETY: only elements inside the block are read.
                panel[s * MR + r] = unsafe {
                    match (live, compute) {
                        (false, _) => 0,
                        (true, Compute::F32Fma) => lhs.f32_at(i, p0 + s).to_bits(),
                        (true, Compute::AmxBf16 | Compute::Bf16Dot) => {
                            let lo = lhs.bf16_at(i, p0 + 2 * s);
                            let hi = if 2 * s + 1 < kb {
                                lhs.bf16_at(i, p0 + 2 * s + 1)
                            } else {
                                0
                            };
                            u32::from(lo) | (u32::from(hi) << 16)
                        }
                    }
                };
            }
        }
    }
}

/// Packs `rhs[p0..p0+kb, j0..j0+nc]` into `NR`-column panels: word `(panel, step, c)` at
/// `panel·panel_steps·NR + step·NR + c`, pairs as in [`pack_a`]; columns and depths past the block (up to
/// `panel_steps`, at least the block's steps) are zero.
#[allow(clippy::too_many_arguments)]
unsafe fn pack_b(
    compute: Compute,
    rhs: &Src,
    p0: usize,
    kb: usize,
    j0: usize,
    nc: usize,
    panel_steps: usize,
    out: &mut [u32],
) {
    let per_k = if compute == Compute::F32Fma { 1 } else { 2 };
    let steps = kb.div_ceil(per_k);
    let compute = if compute == Compute::AmxBf16 {
        Compute::Bf16Dot
    } else {
        compute
    };
    for (jp, jr) in (0..nc).step_by(NR).enumerate() {
        let panel = &mut out[jp * panel_steps * NR..][..panel_steps * NR];
        panel[steps * NR..].fill(0);
        let panel = &mut panel[..steps * NR];
        let width = NR.min(nc - jr);
        #[cfg(target_arch = "x86_64")]
        if let Src::Conv(rows) = rhs {
            // SAFETY: the block's rows lie in the image's matrix and its columns in the plane; AVX-512F/BW are
            // present (`available`).
            match (compute, rows.image, rows.transposed) {
                (Compute::Bf16Dot, ConvImage::Bf16(_), false) => unsafe {
                    x86::pack_conv_bf16(rows, p0, kb, j0 + jr, width, panel);
                    continue;
                },
                (Compute::F32Fma, _, false) => unsafe {
                    x86::pack_conv_f32(rows, p0, kb, j0 + jr, width, panel);
                    continue;
                },
                (Compute::Bf16Dot, ConvImage::Bf16(_), true) => unsafe {
                    x86::pack_conv_t(true, rows, p0, kb, j0 + jr, width, panel);
                    continue;
                },
                (Compute::F32Fma, _, true) => unsafe {
                    x86::pack_conv_t(false, rows, p0, kb, j0 + jr, width, panel);
                    continue;
                },
                // bf16 products of a wider image: the scalar words below round it
                _ => {}
            }
        }
        #[cfg(target_arch = "x86_64")]
        if width == NR && rhs.rows_contiguous() {
            // SAFETY: the panel's NR columns and kb rows lie in rhs; AVX-512F/BW are present (`available`).
            unsafe { x86::pack_rows(compute, rhs, p0, kb, j0 + jr, panel) };
            continue;
        }
        #[cfg(target_arch = "x86_64")]
        if width == NR && rhs.strides().0 == 1 && rhs.strides().1 < (i32::MAX as usize) / NR {
            // SAFETY: as above; the gather offsets (`c · col` for c < NR) fit an i32.
            unsafe { x86::pack_cols(compute, rhs, p0, kb, j0 + jr, panel) };
            continue;
        }
        // Row pairs of a transposed operand (the weight gradient's im2col read as `colᵀ`) are adjacent
        // in memory: read them as one.
        for s in 0..steps {
            let words = &mut panel[s * NR..][..NR];
            for (c, word) in words.iter_mut().enumerate() {
                let j = j0 + jr + c;
                // SAFETY: only elements inside the block are read.
                *word = unsafe {
                    match (c < width, compute) {
                        (false, _) => 0,
                        (true, Compute::F32Fma) => rhs.f32_at(p0 + s, j).to_bits(),
                        (true, Compute::AmxBf16 | Compute::Bf16Dot) => {
                            let lo = rhs.bf16_at(p0 + 2 * s, j);
                            let hi = if 2 * s + 1 < kb {
                                rhs.bf16_at(p0 + 2 * s + 1, j)
                            } else {
                                0
                            };
                            u32::from(lo) | (u32::from(hi) << 16)
                        }
                    }
                };
            }
        }
    }
}

/// One register tile over `steps` packed steps.
unsafe fn kernel(compute: Compute, steps: usize, a: *const u32, b: *const u32, tile: Tile) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller's; `gemm` runs only where `available` (and for Bf16Dot, `bf16_dot_available`).
    unsafe {
        // A panel's last tile with at most 16 live columns (a 10×10 or 20×20 feature map's 100 or 400
        // positions) multiplies only the vector that holds them.
        let narrow = tile.cols <= NR / 2;
        match (compute, narrow) {
            (Compute::AmxBf16 | Compute::Bf16Dot, false) => x86::tile_bf16::<2>(steps, a, b, tile),
            (Compute::AmxBf16 | Compute::Bf16Dot, true) => x86::tile_bf16::<1>(steps, a, b, tile),
            (Compute::F32Fma, false) => x86::tile_f32::<2>(steps, a, b, tile),
            (Compute::F32Fma, true) => x86::tile_f32::<1>(steps, a, b, tile),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (compute, steps, a, b, tile);
        unreachable!("`available` is false off x86_64");
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Compute, ConvImage, ConvRows, Src, Tile, MR, NR};

    /// The accumulators of one tile: `MR` rows of two 16-lane vectors.
    pub(super) type Acc = [[__m512; 2]; MR];

    /// The tile's first `V` (1 or 2) vectors of columns, summed over `steps` and stored (or added) into `dst`
    /// by [`store`], inlined so that the accumulators go from registers to `dst` (a separate call returned them
    /// through the stack: 16 stores and 16 loads a tile).
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn tile_bf16<const V: usize>(
        steps: usize,
        a: *const u32,
        b: *const u32,
        t: Tile,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for s in 0..steps {
            // SAFETY: the panels hold `steps · NR` and `steps · MR` words.
            unsafe {
                let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(s * NR).cast()));
                let b1 = std::mem::transmute::<__m512i, __m512bh>(if V == 2 {
                    _mm512_loadu_si512(b.add(s * NR + 16).cast())
                } else {
                    _mm512_setzero_si512()
                });
                for (r, row) in acc.iter_mut().enumerate() {
                    let av: __m512bh =
                        std::mem::transmute(_mm512_set1_epi32(*a.add(s * MR + r) as i32));
                    row[0] = _mm512_dpbf16_ps(row[0], av, b0);
                    if V == 2 {
                        row[1] = _mm512_dpbf16_ps(row[1], av, b1);
                    }
                }
            }
        }
        // SAFETY: the caller's: the tile lies in dst.
        unsafe { store(acc, t) }
    }

    /// As [`tile_bf16`], in `f32` FMAs.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile_f32<const V: usize>(
        steps: usize,
        a: *const u32,
        b: *const u32,
        t: Tile,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for s in 0..steps {
            // SAFETY: as in `tile_bf16`.
            unsafe {
                let b0 = _mm512_loadu_ps(b.add(s * NR).cast());
                let b1 = if V == 2 {
                    _mm512_loadu_ps(b.add(s * NR + 16).cast())
                } else {
                    _mm512_setzero_ps()
                };
                for (r, row) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(f32::from_bits(*a.add(s * MR + r)));
                    row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                    if V == 2 {
                        row[1] = _mm512_fmadd_ps(av, b1, row[1]);
                    }
                }
            }
        }
        // SAFETY: as in `tile_bf16`.
        unsafe { store(acc, t) }
    }

    /// Writes (or adds) the tile's live rows and columns into `dst`. No `target_feature` of its own (which would
    /// forbid `inline(always)`): it is only ever inlined into the AVX-512 tiles above.
    #[inline(always)]
    unsafe fn store(acc: Acc, t: Tile) {
        if t.rows == MR && t.col == 1 {
            // The common tile: all rows, contiguous columns. A constant row count, so the loop unrolls and the
            // accumulators never leave their registers.
            let mask = |v: usize| -> __mmask16 {
                let live = t.cols.saturating_sub(16 * v).min(16);
                if live == 16 {
                    !0
                } else {
                    (1u16 << live) - 1
                }
            };
            let masks = [mask(0), mask(1)];
            for (r, row) in acc.iter().enumerate() {
                for (v, lanes) in row.iter().enumerate() {
                    if masks[v] == 0 {
                        continue;
                    }
                    // SAFETY: the tile's rows × cols elements lie in dst; masked-off lanes are not touched.
                    unsafe {
                        let p = t.ptr.add(r * t.row + 16 * v);
                        let value = if t.load {
                            _mm512_add_ps(*lanes, _mm512_maskz_loadu_ps(masks[v], p))
                        } else {
                            *lanes
                        };
                        _mm512_mask_storeu_ps(p, masks[v], value);
                    }
                }
            }
            return;
        }
        // SAFETY: the caller's.
        unsafe { store_partial(acc, t) }
    }

    /// [`store`] for a tile with fewer than `MR` rows or strided columns (rare: an edge of the output, or a
    /// transposed one); out of line, so that only this path makes the accumulators' array live in memory.
    #[inline(never)]
    #[target_feature(enable = "avx512f")]
    unsafe fn store_partial(acc: Acc, t: Tile) {
        for (r, row) in acc.iter().enumerate().take(t.rows) {
            // SAFETY: the tile's rows × cols elements lie in dst.
            unsafe {
                let base = t.ptr.add(r * t.row);
                if t.col == 1 {
                    for (v, lanes) in row.iter().enumerate() {
                        let live = t.cols.saturating_sub(16 * v).min(16);
                        if live == 0 {
                            break;
                        }
                        let mask: __mmask16 = if live == 16 { !0 } else { (1u16 << live) - 1 };
                        let p = base.add(16 * v);
                        let value = if t.load {
                            _mm512_add_ps(*lanes, _mm512_maskz_loadu_ps(mask, p))
                        } else {
                            *lanes
                        };
                        _mm512_mask_storeu_ps(p, mask, value);
                    }
                } else {
                    let mut vals = [0.0f32; 32];
                    _mm512_storeu_ps(vals.as_mut_ptr(), row[0]);
                    _mm512_storeu_ps(vals.as_mut_ptr().add(16), row[1]);
                    for (c, v) in vals.iter().enumerate().take(t.cols) {
                        let p = base.add(c * t.col);
                        *p = if t.load { *p + v } else { *v };
                    }
                }
            }
        }
    }

    /// Where each row of a [`ConvRows`] block reads: its rows from `p0` in order, each as the lane mask of
    /// the pixels inside the image and the element offset of lane 0 (which may lie outside the image).
    struct RowWalk {
        row_ok: [u32; ConvRows::MAX_K],
        col_ok: [u32; ConvRows::MAX_K],
        /// (channel, ky, kx) of the next row
        at: [usize; 3],
        dims: [usize; 4],
        j: isize,
    }

    impl RowWalk {
        #[target_feature(enable = "avx512f,avx512bw")]
        unsafe fn new(rows: &ConvRows, p0: usize, j: usize, width: usize) -> Self {
            let (h, w, kh, kw) = (rows.h, rows.w, rows.kh, rows.kw);
            // SAFETY: AVX-512F/BW are present (the caller's).
            let (row_ok, col_ok) = unsafe { lane_masks(j, width, [h, w], [kh, kw]) };
            let taps = kh * kw;
            RowWalk {
                row_ok,
                col_ok,
                at: [p0 / taps, p0 / kw % kh, p0 % kw],
                dims: [h, w, kh, kw],
                j: j as isize,
            }
        }

        /// The next row's mask and lane-0 offset.
        #[inline(always)]
        fn next(&mut self) -> (u32, isize) {
            let [h, w, kh, kw] = self.dims;
            let [c, ky, kx] = self.at;
            let mask = self.row_ok[ky] & self.col_ok[kx];
            let offset = self.j
                + (c * h * w) as isize
                + (ky as isize - (kh / 2) as isize) * w as isize
                + kx as isize
                - (kw / 2) as isize;
            self.at = match (kx + 1 == kw, ky + 1 == kh) {
                (false, _) => [c, ky, kx + 1],
                (true, false) => [c, ky + 1, 0],
                (true, true) => [c + 1, 0, 0],
            };
            (mask, offset)
        }
    }

    /// A panel of `rows[p0..p0+kb, j..j+width]` of a `bf16` image as `bf16` pairs (zero past `width` and
    /// past the block), each row one masked load of the image at the row's shift.
    ///
    /// # Safety
    /// The block's rows lie in the image's matrix, `j + width ≤ h·w`, `width ≤ NR`, and `panel` holds the
    /// block's `kb.div_ceil(2) · NR` words. AVX-512F/BW are present.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn pack_conv_bf16(
        rows: &ConvRows,
        p0: usize,
        kb: usize,
        j: usize,
        width: usize,
        panel: &mut [u32],
    ) {
        let ConvImage::Bf16(image) = rows.image else {
            unreachable!("the caller checked for a bf16 image")
        };
        // SAFETY: the caller's.
        let mut walk = unsafe { RowWalk::new(rows, p0, j, width) };
        let mut next = || {
            let (mask, offset) = walk.next();
            // SAFETY: the mask keeps exactly the lanes whose pixel lies in the image (the row's channel is in
            // it); masked-off lanes are not read, so the unmasked address may lie outside.
            unsafe { _mm512_maskz_loadu_epi16(mask, image.wrapping_offset(offset).cast()) }
        };
        for s in 0..kb.div_ceil(2) {
            let r0 = next();
            let r1 = if 2 * s + 1 < kb {
                next()
            } else {
                _mm512_setzero_si512()
            };
            // SAFETY: the panel holds this step's NR words.
            unsafe {
                let (lo, hi) = interleave(r0, r1);
                let out = panel.as_mut_ptr().add(s * NR);
                _mm512_storeu_si512(out.cast(), lo);
                _mm512_storeu_si512(out.add(16).cast(), hi);
            }
        }
    }

    /// [`pack_conv_bf16`] for `f32` FMAs: each row widened to `f32` words (an `f16` image with F16C's
    /// conversion), one `k` per step.
    ///
    /// # Safety
    /// As [`pack_conv_bf16`], with `panel` holding `kb · NR` words.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn pack_conv_f32(
        rows: &ConvRows,
        p0: usize,
        kb: usize,
        j: usize,
        width: usize,
        panel: &mut [u32],
    ) {
        // SAFETY: the caller's.
        let mut walk = unsafe { RowWalk::new(rows, p0, j, width) };
        for s in 0..kb {
            let (mask, offset) = walk.next();
            let (lo, hi) = (mask as u16, (mask >> 16) as u16);
            // SAFETY: as in `pack_conv_bf16`: only the image's pixels are read; the panel holds this step.
            unsafe {
                let (a, b) = match rows.image {
                    ConvImage::F32(p) => {
                        let p = p.wrapping_offset(offset);
                        (
                            _mm512_maskz_loadu_ps(lo, p),
                            _mm512_maskz_loadu_ps(hi, p.wrapping_add(16)),
                        )
                    }
                    ConvImage::F16(p) => {
                        let v = _mm512_maskz_loadu_epi16(mask, p.wrapping_offset(offset).cast());
                        (
                            _mm512_cvtph_ps(_mm512_castsi512_si256(v)),
                            _mm512_cvtph_ps(_mm512_extracti64x4_epi64::<1>(v)),
                        )
                    }
                    ConvImage::Bf16(p) => {
                        let v = _mm512_maskz_loadu_epi16(mask, p.wrapping_offset(offset).cast());
                        let widen = |h: __m256i| {
                            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
                        };
                        (
                            widen(_mm512_castsi512_si256(v)),
                            widen(_mm512_extracti64x4_epi64::<1>(v)),
                        )
                    }
                };
                let out = panel.as_mut_ptr().add(s * NR).cast::<f32>();
                _mm512_storeu_ps(out, a);
                _mm512_storeu_ps(out.add(16), b);
            }
        }
    }

    /// A panel of the transposed matrix (`colᵀ`: steps are positions, columns rows `(c, ky, kx)`)
    /// `rows[p0..p0+kb, j..j+width]`, as `bf16` pairs (`pairs`, a `bf16` image) or `f32` words: for 16 steps
    /// at a time, each column's positions are one masked load of the image at the column's shift, and a
    /// 16×16 register transpose turns 16 columns into 16 steps (the weight gradient's `rhs`, without im2col).
    ///
    /// # Safety
    /// The block's positions lie below `h·w`, its columns are rows of the image's matrix, `width ≤ NR`, and
    /// `panel` holds the block's steps (`kb.div_ceil(2)` for pairs, else `kb`) of `NR` words. AVX-512F/BW
    /// are present.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn pack_conv_t(
        pairs: bool,
        rows: &ConvRows,
        p0: usize,
        kb: usize,
        j: usize,
        width: usize,
        panel: &mut [u32],
    ) {
        let (h, w, kh, kw) = (rows.h, rows.w, rows.kh, rows.kw);
        // each column's tap (ky, kx) and the offset of its pixel for position 0 (may lie outside the image)
        let taps = kh * kw;
        let cols: [(usize, usize, isize); NR] = std::array::from_fn(|c| {
            let r = j + c.min(width.saturating_sub(1));
            let (ci, ky, kx) = (r / taps, r / kw % kh, r % kw);
            let shift = (ci * h * w) as isize
                + (ky as isize - (kh / 2) as isize) * w as isize
                + kx as isize
                - (kw / 2) as isize;
            (ky, kx, shift)
        });
        let per = if pairs { 2 } else { 1 };
        let steps = kb.div_ceil(per);
        for start in (0..steps).step_by(16) {
            let q = p0 + per * start;
            let live = (kb - per * start).min(16 * per);
            // SAFETY: AVX-512F/BW are present (the caller's).
            let (row_ok, col_ok) = unsafe { lane_masks(q, live, [h, w], [kh, kw]) };
            for half in 0..NR / 16 {
                // A loop in this function rather than `array::from_fn`'s closure, which LLVM inlined in some
                // builds and not in others (a call per vector: ~1.5 % of a bf16 train step when it did not).
                let mut v = [_mm512_setzero_si512(); 16];
                for (cc, v) in v.iter_mut().enumerate() {
                    let c = 16 * half + cc;
                    if c >= width {
                        continue;
                    }
                    let (ky, kx, shift) = cols[c];
                    let mask = row_ok[ky] & col_ok[kx];
                    let at = q as isize + shift;
                    // SAFETY: the mask keeps exactly the lanes whose pixel lies in the image; masked-off
                    // lanes are not read.
                    *v = unsafe {
                        match rows.image {
                            ConvImage::Bf16(p) if pairs => {
                                _mm512_maskz_loadu_epi16(mask, p.wrapping_offset(at).cast())
                            }
                            ConvImage::Bf16(p) => _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(
                                _mm512_castsi512_si256(_mm512_maskz_loadu_epi16(
                                    mask,
                                    p.wrapping_offset(at).cast(),
                                )),
                            )),
                            ConvImage::F16(p) => {
                                _mm512_castps_si512(_mm512_cvtph_ps(_mm512_castsi512_si256(
                                    _mm512_maskz_loadu_epi16(mask, p.wrapping_offset(at).cast()),
                                )))
                            }
                            ConvImage::F32(p) => _mm512_castps_si512(_mm512_maskz_loadu_ps(
                                mask as u16,
                                p.wrapping_offset(at),
                            )),
                        }
                    };
                }
                // SAFETY: AVX-512F is present; the panel holds steps start .. steps.
                unsafe {
                    let out = panel.as_mut_ptr().add(start * NR + 16 * half);
                    for (t, step) in transpose_16x16(&v).iter().enumerate().take(steps - start) {
                        _mm512_storeu_si512(out.add(t * NR).cast(), *step);
                    }
                }
            }
        }
    }

    /// For the 32 columns `j..j+32` of a [`ConvRows`] matrix (`oy·w + ox`), which read a pixel inside the image
    /// at each tap row `ky` (bit `l` of the first array's entry `ky`: `0 ≤ oy + ky − kh/2 < h`) and tap column
    /// `kx` (the second's: `0 ≤ ox + kx − kw/2 < w`); lanes from `width` on are clear in both.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn lane_masks(
        j: usize,
        width: usize,
        [h, w]: [usize; 2],
        [kh, kw]: [usize; 2],
    ) -> ([u32; ConvRows::MAX_K], [u32; ConvRows::MAX_K]) {
        let (mut row_ok, mut col_ok) = ([0u32; ConvRows::MAX_K], [0u32; ConvRows::MAX_K]);
        let live = if width >= 32 {
            u32::MAX
        } else {
            (1u32 << width) - 1
        };
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        for half in 0..2 {
            let q = _mm512_add_epi32(_mm512_set1_epi32((j + 16 * half) as i32), lanes);
            // oy = ⌊q / w⌋ in f32: exact, as (q + ½)/w lies at least ½/w from an integer and q < 2^24 (the
            // division's error is below q/w · 2^-24)
            let qf = _mm512_add_ps(_mm512_cvtepi32_ps(q), _mm512_set1_ps(0.5));
            let oy = _mm512_cvttps_epi32(_mm512_div_ps(qf, _mm512_set1_ps(w as f32)));
            let ox = _mm512_sub_epi32(q, _mm512_mullo_epi32(oy, _mm512_set1_epi32(w as i32)));
            for (ky, ok) in row_ok.iter_mut().enumerate().take(kh) {
                let iy = _mm512_add_epi32(oy, _mm512_set1_epi32(ky as i32 - (kh / 2) as i32));
                let inside = _mm512_cmplt_epu32_mask(iy, _mm512_set1_epi32(h as i32));
                *ok |= u32::from(inside) << (16 * half);
            }
            for (kx, ok) in col_ok.iter_mut().enumerate().take(kw) {
                let ix = _mm512_add_epi32(ox, _mm512_set1_epi32(kx as i32 - (kw / 2) as i32));
                let inside = _mm512_cmplt_epu32_mask(ix, _mm512_set1_epi32(w as i32));
                *ok |= u32::from(inside) << (16 * half);
            }
        }
        for ok in &mut row_ok {
            *ok &= live;
        }
        (row_ok, col_ok)
    }

    /// 16 words of each of `MR` = 8 rows (`v[r]`) as 16 steps of a packed `lhs` panel (word `(step, r)` at
    /// `step·MR + r`): output vector `q` holds steps `2q` and `2q + 1`. Three rounds of two-source permutes
    /// (pairs of rows, then quads, then all eight) instead of 128 scalar stores.
    #[target_feature(enable = "avx512f")]
    unsafe fn transpose_8x16(v: &[__m512i; MR]) -> [__m512i; 8] {
        let pairs_lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let pairs_hi =
            _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        let quads_lo = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
        let quads_hi = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
        let eights_lo = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
        let eights_hi = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
        // pairs[x][p]: rows 2p and 2p + 1 side by side, at steps 8x .. 8x + 8
        let pairs: [[__m512i; 4]; 2] = std::array::from_fn(|x| {
            let idx = if x == 0 { pairs_lo } else { pairs_hi };
            std::array::from_fn(|p| _mm512_permutex2var_epi32(v[2 * p], idx, v[2 * p + 1]))
        });
        // quads[x][q][y]: rows 4q .. 4q + 4, at steps 8x + 4y .. + 4
        let quads: [[[__m512i; 2]; 2]; 2] = std::array::from_fn(|x| {
            std::array::from_fn(|q| {
                let (a, b) = (pairs[x][2 * q], pairs[x][2 * q + 1]);
                [
                    _mm512_permutex2var_epi64(a, quads_lo, b),
                    _mm512_permutex2var_epi64(a, quads_hi, b),
                ]
            })
        });
        // all 8 rows at steps 2q, 2q + 1, for q = 4x + 2y + z
        std::array::from_fn(|q| {
            let (x, y, z) = (q / 4, q / 2 % 2, q % 2);
            let idx = if z == 0 { eights_lo } else { eights_hi };
            _mm512_permutex2var_epi64(quads[x][0][y], idx, quads[x][1][y])
        })
    }

    /// 16 words of each of 16 columns (`v[c]`) as 16 steps of 16 words (step `t` holds word `t` of every
    /// column): [`transpose_8x16`] of each half, then the halves' 256-bit rows side by side.
    #[target_feature(enable = "avx512f")]
    unsafe fn transpose_16x16(v: &[__m512i; 16]) -> [__m512i; 16] {
        let (lo, hi): (&[__m512i; 8], &[__m512i; 8]) = (
            v[..8].try_into().expect("8 of 16"),
            v[8..].try_into().expect("8 of 16"),
        );
        // SAFETY: AVX-512F is enabled here.
        let (a, b) = unsafe { (transpose_8x16(lo), transpose_8x16(hi)) };
        std::array::from_fn(|t| {
            let q = t / 2;
            if t % 2 == 0 {
                _mm512_shuffle_i64x2::<0x44>(a[q], b[q])
            } else {
                _mm512_shuffle_i64x2::<0xEE>(a[q], b[q])
            }
        })
    }

    /// Writes [`transpose_8x16`]'s 16 steps from `out`.
    ///
    /// # Safety
    /// `out` holds `16 · MR` words.
    #[target_feature(enable = "avx512f")]
    unsafe fn store_steps(steps: [__m512i; 8], out: *mut u32) {
        for (q, v) in steps.iter().enumerate() {
            // SAFETY: the caller's.
            unsafe { _mm512_storeu_si512(out.add(16 * q).cast(), *v) };
        }
    }

    /// Pair-interleaves 32 bf16 of row `r0` with 32 of row `r1` (each zmm of 32 u16): the low 16 columns'
    /// pairs, then the high 16's.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn interleave(r0: __m512i, r1: __m512i) -> (__m512i, __m512i) {
        let lo = _mm512_set_epi16(
            47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6, 37, 5, 36,
            4, 35, 3, 34, 2, 33, 1, 32, 0,
        );
        let hi = _mm512_set_epi16(
            63, 31, 62, 30, 61, 29, 60, 28, 59, 27, 58, 26, 57, 25, 56, 24, 55, 23, 54, 22, 53, 21,
            52, 20, 51, 19, 50, 18, 49, 17, 48, 16,
        );
        (
            _mm512_permutex2var_epi16(r0, lo, r1),
            _mm512_permutex2var_epi16(r0, hi, r1),
        )
    }

    /// 32 values of one row from `(i, j)` as bf16 bits (zero when `i` is past the block: `live` false).
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn row_bf16(src: &Src, i: usize, j: usize, live: bool) -> __m512i {
        if !live {
            return _mm512_setzero_si512();
        }
        // SAFETY: the caller's: 32 elements from (i, j) lie in the row.
        unsafe {
            match src {
                Src::Bf16(s) => _mm512_loadu_si512(s.ptr.add(i * s.row + j).cast()),
                Src::F32(s) => {
                    let p = s.ptr.add(i * s.row + j);
                    let pair = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(p.add(16)), _mm512_loadu_ps(p));
                    std::mem::transmute::<__m512bh, __m512i>(pair)
                }
                Src::Conv(_) => unreachable!("a Conv rhs is packed by pack_conv"),
                Src::F16(s) => {
                    let p = s.ptr.add(i * s.row + j);
                    let lo = _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
                    let hi = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(16).cast()));
                    std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo))
                }
            }
        }
    }

    /// 16 values of one row from `(i, j)` as f32.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn row_f32(src: &Src, i: usize, j: usize) -> __m512 {
        // SAFETY: the caller's: 16 elements from (i, j) lie in the row.
        unsafe {
            match src {
                Src::F32(s) => _mm512_loadu_ps(s.ptr.add(i * s.row + j)),
                Src::Bf16(s) => {
                    let h = _mm256_loadu_si256(s.ptr.add(i * s.row + j).cast());
                    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
                }
                Src::Conv(_) => unreachable!("a Conv rhs is packed by pack_conv"),
                Src::F16(s) => _mm512_cvtph_ps(_mm256_loadu_si256(s.ptr.add(i * s.row + j).cast())),
            }
        }
    }

    /// A full `NR`-column panel of `rhs[p0..p0+kb, j..j+NR]`, rows contiguous, with vector loads.
    pub(super) unsafe fn pack_rows(
        compute: Compute,
        rhs: &Src,
        p0: usize,
        kb: usize,
        j: usize,
        panel: &mut [u32],
    ) {
        // SAFETY: the caller's.
        unsafe {
            match compute {
                Compute::AmxBf16 | Compute::Bf16Dot => pack_rows_bf16(rhs, p0, kb, j, panel),
                Compute::F32Fma => pack_rows_f32(rhs, p0, kb, j, panel),
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn pack_rows_bf16(rhs: &Src, p0: usize, kb: usize, j: usize, panel: &mut [u32]) {
        for s in 0..kb.div_ceil(2) {
            // SAFETY: rows p0 + 2s (and p0 + 2s + 1 when inside the block) hold NR elements from j.
            unsafe {
                let r0 = row_bf16(rhs, p0 + 2 * s, j, true);
                let r1 = row_bf16(rhs, p0 + 2 * s + 1, j, 2 * s + 1 < kb);
                let (lo, hi) = interleave(r0, r1);
                let out = panel.as_mut_ptr().add(s * NR);
                _mm512_storeu_si512(out.cast(), lo);
                _mm512_storeu_si512(out.add(16).cast(), hi);
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn pack_rows_f32(rhs: &Src, p0: usize, kb: usize, j: usize, panel: &mut [u32]) {
        for s in 0..kb {
            // SAFETY: row p0 + s holds NR elements from j.
            unsafe {
                let out = panel.as_mut_ptr().add(s * NR).cast::<f32>();
                _mm512_storeu_ps(out, row_f32(rhs, p0 + s, j));
                _mm512_storeu_ps(out.add(16), row_f32(rhs, p0 + s, j + 16));
            }
        }
    }

    /// Scalar words of `src` at `(i, p)` as packed for `compute` (the pair `(p, p + 1)` for Bf16Dot, zero past
    /// `end`).
    #[inline(always)]
    pub(super) unsafe fn word(compute: Compute, src: &Src, i: usize, p: usize, end: usize) -> u32 {
        // SAFETY: the caller's: (i, p) lies in src, and (i, p + 1) when p + 1 < end.
        unsafe {
            match compute {
                Compute::F32Fma => src.f32_at(i, p).to_bits(),
                Compute::AmxBf16 | Compute::Bf16Dot => {
                    let hi = if p + 1 < end {
                        src.bf16_at(i, p + 1)
                    } else {
                        0
                    };
                    u32::from(src.bf16_at(i, p)) | (u32::from(hi) << 16)
                }
            }
        }
    }

    /// An `MR`-row panel of `lhs[i..i+rows, p0..p0+kb]` whose rows are contiguous: 16 words of one row from one
    /// vector load and conversion, written down the panel's column `r`.
    pub(super) unsafe fn pack_a_rows(
        compute: Compute,
        lhs: &Src,
        i: usize,
        rows: usize,
        p0: usize,
        kb: usize,
        panel: &mut [u32],
    ) {
        // SAFETY: the caller's.
        unsafe {
            match compute {
                Compute::AmxBf16 | Compute::Bf16Dot => {
                    pack_a_rows_bf16(lhs, i, rows, p0, kb, panel)
                }
                Compute::F32Fma => pack_a_rows_f32(lhs, i, rows, p0, kb, panel),
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn pack_a_rows_bf16(
        lhs: &Src,
        i: usize,
        rows: usize,
        p0: usize,
        kb: usize,
        panel: &mut [u32],
    ) {
        let steps = kb.div_ceil(2);
        // full panels: 16 steps of all MR rows at a time, transposed in registers
        let mut start = 0;
        while rows == MR && 2 * (start + 16) <= kb {
            // SAFETY: 32 elements of each row from p0 + 2·start lie in the block; the panel holds these steps.
            unsafe {
                let v = std::array::from_fn(|r| row_bf16(lhs, i + r, p0 + 2 * start, true));
                store_steps(transpose_8x16(&v), panel.as_mut_ptr().add(start * MR));
            }
            start += 16;
        }
        let mut words = [0u32; 16];
        for r in 0..MR {
            if r >= rows {
                for s in 0..steps {
                    panel[s * MR + r] = 0;
                }
                continue;
            }
            let mut s = start;
            while 2 * (s + 16) <= kb {
                // SAFETY: 32 elements of row i + r from p0 + 2s lie in the block.
                unsafe {
                    let v = row_bf16(lhs, i + r, p0 + 2 * s, true);
                    _mm512_storeu_si512(words.as_mut_ptr().cast(), v);
                }
                for (t, w) in words.iter().enumerate() {
                    panel[(s + t) * MR + r] = *w;
                }
                s += 16;
            }
            for s in s..steps {
                // SAFETY: inside the block.
                panel[s * MR + r] =
                    unsafe { word(Compute::Bf16Dot, lhs, i + r, p0 + 2 * s, p0 + kb) };
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn pack_a_rows_f32(
        lhs: &Src,
        i: usize,
        rows: usize,
        p0: usize,
        kb: usize,
        panel: &mut [u32],
    ) {
        let mut start = 0;
        while rows == MR && start + 16 <= kb {
            // SAFETY: 16 elements of each row from p0 + start lie in the block; the panel holds these steps.
            unsafe {
                let v =
                    std::array::from_fn(|r| _mm512_castps_si512(row_f32(lhs, i + r, p0 + start)));
                store_steps(transpose_8x16(&v), panel.as_mut_ptr().add(start * MR));
            }
            start += 16;
        }
        let mut words = [0.0f32; 16];
        for r in 0..MR {
            if r >= rows {
                for s in 0..kb {
                    panel[s * MR + r] = 0;
                }
                continue;
            }
            let mut s = start;
            while s + 16 <= kb {
                // SAFETY: 16 elements of row i + r from p0 + s lie in the block.
                unsafe { _mm512_storeu_ps(words.as_mut_ptr(), row_f32(lhs, i + r, p0 + s)) };
                for (t, w) in words.iter().enumerate() {
                    panel[(s + t) * MR + r] = w.to_bits();
                }
                s += 16;
            }
            for s in s..kb {
                // SAFETY: inside the block.
                panel[s * MR + r] = unsafe { lhs.f32_at(i + r, p0 + s).to_bits() };
            }
        }
    }

    /// A full `MR`-row panel of `lhs[i..i+MR, p0..p0+kb]` whose columns are contiguous (a transposed weight):
    /// one short vector load per depth.
    pub(super) unsafe fn pack_a_cols(
        compute: Compute,
        lhs: &Src,
        i: usize,
        p0: usize,
        kb: usize,
        panel: &mut [u32],
    ) {
        // SAFETY: the caller's.
        unsafe {
            match compute {
                Compute::AmxBf16 | Compute::Bf16Dot => pack_a_cols_bf16(lhs, i, p0, kb, panel),
                Compute::F32Fma => pack_a_cols_f32(lhs, i, p0, kb, panel),
            }
        }
    }

    /// `MR` (8) consecutive elements of a column from `(i, p)`, as bf16 bits.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn col8_bf16(src: &Src, i: usize, p: usize) -> __m128i {
        // SAFETY: the caller's: 8 elements from (i, p) down the column lie in src.
        unsafe {
            match src {
                Src::Bf16(s) => _mm_loadu_si128(s.ptr.add(i + p * s.col).cast()),
                Src::F32(s) => std::mem::transmute::<__m128bh, __m128i>(_mm256_cvtneps_pbh(
                    _mm256_loadu_ps(s.ptr.add(i + p * s.col)),
                )),
                Src::Conv(_) => unreachable!("a Conv rhs is packed by pack_conv"),
                Src::F16(s) => std::mem::transmute::<__m128bh, __m128i>(_mm256_cvtneps_pbh(
                    _mm256_cvtph_ps(_mm_loadu_si128(s.ptr.add(i + p * s.col).cast())),
                )),
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn pack_a_cols_bf16(lhs: &Src, i: usize, p0: usize, kb: usize, panel: &mut [u32]) {
        for s in 0..kb.div_ceil(2) {
            // SAFETY: columns p0 + 2s (and p0 + 2s + 1 inside the block) hold 8 elements from row i.
            unsafe {
                let e0 = col8_bf16(lhs, i, p0 + 2 * s);
                let e1 = if 2 * s + 1 < kb {
                    col8_bf16(lhs, i, p0 + 2 * s + 1)
                } else {
                    _mm_setzero_si128()
                };
                let out = panel.as_mut_ptr().add(s * MR);
                _mm_storeu_si128(out.cast(), _mm_unpacklo_epi16(e0, e1));
                _mm_storeu_si128(out.add(4).cast(), _mm_unpackhi_epi16(e0, e1));
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn pack_a_cols_f32(lhs: &Src, i: usize, p0: usize, kb: usize, panel: &mut [u32]) {
        for s in 0..kb {
            // SAFETY: column p0 + s holds 8 elements from row i.
            unsafe {
                let v = match lhs {
                    Src::F32(a) => _mm256_loadu_ps(a.ptr.add(i + (p0 + s) * a.col)),
                    Src::Bf16(a) => {
                        let h = _mm_loadu_si128(a.ptr.add(i + (p0 + s) * a.col).cast());
                        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
                    }
                    Src::Conv(_) => unreachable!("a Conv rhs is packed by pack_conv"),
                    Src::F16(a) => {
                        _mm256_cvtph_ps(_mm_loadu_si128(a.ptr.add(i + (p0 + s) * a.col).cast()))
                    }
                };
                _mm256_storeu_ps(panel.as_mut_ptr().add(s * MR).cast(), v);
            }
        }
    }

    /// A full `NR`-column panel of `rhs[p0..p0+kb, j..j+NR]` whose columns are contiguous (the weight
    /// gradient's `colᵀ`): gathers across the 32 columns, one per 16 words. A `bf16` pair `(p, p + 1)` of a
    /// column is one 32-bit word in memory, so it is gathered whole.
    pub(super) unsafe fn pack_cols(
        compute: Compute,
        rhs: &Src,
        p0: usize,
        kb: usize,
        j: usize,
        panel: &mut [u32],
    ) {
        // SAFETY: the caller's.
        unsafe {
            match compute {
                Compute::AmxBf16 | Compute::Bf16Dot => pack_cols_bf16(rhs, p0, kb, j, panel),
                Compute::F32Fma => pack_cols_f32(rhs, p0, kb, j, panel),
            }
        }
    }

    /// Offsets `c · col` of 16 columns from `c0`.
    #[target_feature(enable = "avx512f")]
    unsafe fn column_offsets(c0: usize, col: usize) -> __m512i {
        let base = _mm512_set1_epi32(col as i32);
        let c = _mm512_add_epi32(
            _mm512_set1_epi32(c0 as i32),
            _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        );
        _mm512_mullo_epi32(c, base)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn pack_cols_bf16(rhs: &Src, p0: usize, kb: usize, j: usize, panel: &mut [u32]) {
        let steps = kb.div_ceil(2);
        let col = rhs.strides().1;
        // SAFETY: `c · col` for c < NR fits an i32 (the caller's check).
        let offs = unsafe { [column_offsets(0, col), column_offsets(16, col)] };
        // The last pair of an odd block has one element: no 32-bit read there.
        let full = kb / 2;
        // a bf16 operand (im2col read as colᵀ): each column's pairs are adjacent words of one row, so 16
        // steps of 16 columns are 16 row loads and a register transpose, not 16 gathers
        let mut start = 0;
        if let Src::Bf16(b) = rhs {
            while start + 16 <= full {
                for h in 0..NR / 16 {
                    // SAFETY: 32 elements from p0 + 2·start of each of the 16 columns lie in the block; the
                    // panel holds these 16 steps.
                    unsafe {
                        let base = b.ptr.add(p0 + 2 * start + (j + 16 * h) * b.col);
                        let v =
                            std::array::from_fn(|c| _mm512_loadu_si512(base.add(c * b.col).cast()));
                        let out = panel.as_mut_ptr().add(start * NR + 16 * h);
                        for (t, step) in transpose_16x16(&v).iter().enumerate() {
                            _mm512_storeu_si512(out.add(t * NR).cast(), *step);
                        }
                    }
                }
                start += 16;
            }
        }
        for s in start..full {
            let p = p0 + 2 * s;
            // SAFETY: elements (p, j + c) and (p + 1, j + c) lie in the block for every c < NR.
            unsafe {
                let out = panel.as_mut_ptr().add(s * NR);
                for (h, off) in offs.iter().enumerate() {
                    let v = match rhs {
                        Src::Bf16(b) => _mm512_i32gather_epi32::<2>(
                            *off,
                            b.ptr.add(p + j * b.col).cast::<i32>(),
                        ),
                        Src::F32(b) => {
                            let base = b.ptr.add(p + j * b.col);
                            let lo = _mm512_i32gather_ps::<4>(*off, base);
                            let hi = _mm512_i32gather_ps::<4>(*off, base.add(1));
                            let lo = _mm512_cvtepu16_epi32(
                                std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(lo)),
                            );
                            let hi = _mm512_cvtepu16_epi32(
                                std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(hi)),
                            );
                            _mm512_or_si512(lo, _mm512_slli_epi32::<16>(hi))
                        }
                        // f16 never meets Bf16Dot (`compute_for`); kept total with the scalar words.
                        Src::Conv(_) => unreachable!("a Conv rhs is packed by pack_conv"),
                        Src::F16(_) => {
                            let mut w = [0u32; 16];
                            for (c, w) in w.iter_mut().enumerate() {
                                *w = word(Compute::Bf16Dot, rhs, p, j + 16 * h + c, usize::MAX);
                            }
                            _mm512_loadu_si512(w.as_ptr().cast())
                        }
                    };
                    _mm512_storeu_si512(out.add(16 * h).cast(), v);
                }
            }
        }
        for s in full..steps {
            for c in 0..NR {
                // SAFETY: (p0 + 2s, j + c) lies in the block; p0 + 2s + 1 does not and is not read.
                panel[s * NR + c] = unsafe { u32::from(rhs.bf16_at(p0 + 2 * s, j + c)) };
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn pack_cols_f32(rhs: &Src, p0: usize, kb: usize, j: usize, panel: &mut [u32]) {
        let col = rhs.strides().1;
        // SAFETY: as in `pack_cols_bf16`.
        let offs = unsafe { [column_offsets(0, col), column_offsets(16, col)] };
        // 16-bit operands: 16 steps of 16 columns from 16 row loads and a register transpose, as in
        // `pack_cols_bf16`
        let mut start = 0;
        while matches!(rhs, Src::F16(_) | Src::Bf16(_)) && start + 16 <= kb {
            for h in 0..NR / 16 {
                // SAFETY: 16 elements from p0 + start of each of the 16 columns lie in the block; the panel
                // holds these 16 steps.
                unsafe {
                    let v = std::array::from_fn(|c| {
                        let (p, jc) = (p0 + start, j + 16 * h + c);
                        let v = match rhs {
                            Src::F16(b) => _mm512_cvtph_ps(_mm256_loadu_si256(
                                b.ptr.add(p + jc * b.col).cast(),
                            )),
                            Src::Bf16(b) => {
                                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(
                                    _mm256_loadu_si256(b.ptr.add(p + jc * b.col).cast()),
                                )))
                            }
                            _ => unreachable!("checked to be a 16-bit operand"),
                        };
                        _mm512_castps_si512(v)
                    });
                    let out = panel.as_mut_ptr().add(start * NR + 16 * h);
                    for (t, step) in transpose_16x16(&v).iter().enumerate() {
                        _mm512_storeu_si512(out.add(t * NR).cast(), *step);
                    }
                }
            }
            start += 16;
        }
        for s in start..kb {
            let p = p0 + s;
            // A 16-bit element gathered as 32 bits reads its successor too: only inside the block.
            let wide_ok = s + 1 < kb;
            // SAFETY: (p, j + c) lies in the block for every c < NR, and (p + 1, j + c) when `wide_ok`.
            unsafe {
                let out = panel.as_mut_ptr().add(s * NR).cast::<f32>();
                for (h, off) in offs.iter().enumerate() {
                    let v = match rhs {
                        Src::F32(b) => _mm512_i32gather_ps::<4>(*off, b.ptr.add(p + j * b.col)),
                        Src::Bf16(b) if wide_ok => {
                            let w = _mm512_i32gather_epi32::<2>(
                                *off,
                                b.ptr.add(p + j * b.col).cast::<i32>(),
                            );
                            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(w))
                        }
                        Src::F16(b) if wide_ok => {
                            let w = _mm512_i32gather_epi32::<2>(
                                *off,
                                b.ptr.add(p + j * b.col).cast::<i32>(),
                            );
                            _mm512_cvtph_ps(_mm512_cvtepi32_epi16(w))
                        }
                        _ => {
                            let mut w = [0.0f32; 16];
                            for (c, w) in w.iter_mut().enumerate() {
                                *w = rhs.f32_at(p, j + 16 * h + c);
                            }
                            _mm512_loadu_ps(w.as_ptr())
                        }
                    };
                    _mm512_storeu_ps(out.add(16 * h), v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(i: usize, seed: usize) -> f32 {
        ((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0
    }

    /// Every micro-kernel and packing path (row-contiguous and transposed operands, each float type, partial
    /// tiles on both edges, odd depths, several blocks, both write modes) against an `f64` product of the
    /// values the kernel multiplies (rounded to bf16 first in `Bf16Dot`).
    #[test]
    fn products_match_f64() {
        if !available() {
            eprintln!("no AVX-512 here: the half GEMM never runs");
            return;
        }
        let mut computes = vec![Compute::F32Fma];
        if bf16_dot_available() {
            computes.push(Compute::Bf16Dot);
        }
        if amx_available() {
            computes.push(Compute::AmxBf16);
        }
        for &(m, n, k) in &[
            (1, 1, 1),
            (9, 33, 7),
            (17, 70, 401),
            (130, 45, 800),
            (8, 32, 2),
        ] {
            let a: Vec<f32> = (0..m * k).map(|i| value(i, 1)).collect();
            let b: Vec<f32> = (0..k * n).map(|i| value(i, 2)).collect();
            let a16: Vec<bf16> = a.iter().map(|v| bf16::from_f32(*v)).collect();
            let bh: Vec<f16> = b.iter().map(|v| f16::from_f32(*v)).collect();
            for &compute in &computes {
                for transposed in [false, true] {
                    for accumulate in [false, true] {
                        let lhs = Src::Bf16(Strided::new(a16.as_ptr(), k, 1));
                        // b as k × n, or stored n × k and read transposed.
                        let bt: Vec<f32> = (0..n * k).map(|x| b[(x % k) * n + x / k]).collect();
                        let rhs = if transposed {
                            Src::F32(Strided::new(bt.as_ptr(), 1, k))
                        } else {
                            Src::F32(Strided::new(b.as_ptr(), n, 1))
                        };
                        let rhs = if compute == Compute::F32Fma && !transposed {
                            Src::F16(Strided::new(bh.as_ptr(), n, 1))
                        } else {
                            rhs
                        };
                        let round = |v: f32| match compute {
                            Compute::AmxBf16 | Compute::Bf16Dot => {
                                f64::from(bf16::from_f32(v).to_f32())
                            }
                            Compute::F32Fma => f64::from(v),
                        };
                        let b_val = |p: usize, j: usize| match (compute, transposed) {
                            (Compute::F32Fma, false) => f64::from(bh[p * n + j].to_f32()),
                            _ => round(b[p * n + j]),
                        };
                        let mut c = vec![if accumulate { 0.25 } else { f32::NAN }; m * n];
                        unsafe {
                            gemm(
                                compute,
                                [m, n, k],
                                Strided::new(c.as_mut_ptr(), n, 1),
                                accumulate,
                                lhs,
                                rhs,
                                Parallelism::None,
                            )
                        };
                        for i in 0..m {
                            for j in 0..n {
                                let (mut want, mut scale) = (0.0f64, 0.0f64);
                                for p in 0..k {
                                    let t = f64::from(a16[i * k + p].to_f32()) * b_val(p, j);
                                    want += t;
                                    scale += t.abs();
                                }
                                if accumulate {
                                    want += 0.25;
                                }
                                let got = f64::from(c[i * n + j]);
                                assert!(
                                    (got - want).abs() <= 1e-6 * (scale + 1.0),
                                    "{compute:?} t{transposed} a{accumulate} {m}x{n}x{k} ({i},{j}): {got} vs {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
