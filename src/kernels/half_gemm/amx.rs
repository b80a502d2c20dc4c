//! [`Compute::AmxBf16`](super::Compute::AmxBf16): the half GEMM on Intel AMX tiles (Sapphire Rapids and
//! later), where one `TDPBF16PS` multiplies a 16 × 32 `bf16` tile by a 32 × 16 one into 16 × 16 `f32`
//! accumulators: 8192 products per instruction, sixteen times an AVX-512 FMA's per cycle. On such a CPU
//! `VDPBF16PS` runs on one port only and is no faster than two `f32` FMAs, so without AMX bf16 gained nothing
//! there (docs/benchmarks.md).
//!
//! The rhs is packed exactly as for `VDPBF16PS` (`NR`-column panels of `bf16` pairs, 128 bytes a step), which
//! is the layout AMX's `B` tile reads: two 16-column tiles per panel, 16 steps (32 `k`) deep. The lhs is
//! packed row-major (a row's `bf16` run of `k`, zero-padded to a whole tile), the `A` tile's layout. A register
//! tile of `dst` is 32 × 32: four accumulator tiles (`tmm0`–`tmm3`), two `A` tiles (`tmm4`, `tmm5`) and two `B`
//! tiles (`tmm6`, `tmm7`), so each loaded tile feeds two products.
//!
//! Rust has no stable AMX intrinsics (nor `is_x86_feature_detected!` names), so the instructions are inline
//! assembly on fixed tile registers, and detection reads CPUID and XCR0 and asks Linux for the tile state
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM)`); elsewhere AMX is reported absent and the AVX-512 kernels run.

use std::arch::asm;
use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::{x86, Compute, Src, Strided, Tile, NR, PACK_A, PACK_B};

/// Rows of a register tile: two 16-row `A` tiles.
const MR: usize = 32;
/// Depth of a packed block in `k` elements (a multiple of 32, one tile's depth).
const KC: usize = 256;
/// Rows of a packed `lhs` block.
const MC: usize = 128;
/// Columns of a packed `rhs` block.
const NC: usize = 512;
/// Packed steps (`bf16` pairs) in one tile's depth.
const TILE_STEPS: usize = 16;

/// Whether AMX-BF16 runs in this process: the CPU has it (CPUID.7.0:EDX bits 22 and 24), the OS saves tile
/// state (XCR0 bits 17 and 18), and Linux granted this process the tile data (needed once, before the first
/// tile instruction; a refused request leaves the AVX-512 kernels in charge).
pub(super) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(detect)
}

fn detect() -> bool {
    if !super::bf16_dot_available() {
        return false;
    }
    let leaf7 = __cpuid_count(7, 0);
    let cpu = leaf7.edx & (1 << 22) != 0 && leaf7.edx & (1 << 24) != 0;
    let osxsave = __cpuid(1).ecx & (1 << 27) != 0;
    if !cpu || !osxsave {
        return false;
    }
    // SAFETY: OSXSAVE is set, so XGETBV is enabled.
    let xcr0 = unsafe { _xgetbv(0) };
    if xcr0 & (0b11 << 17) != 0b11 << 17 {
        return false;
    }
    request_tile_data()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn request_tile_data() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain syscall with integer arguments; it changes only which state the kernel saves for us.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn request_tile_data() -> bool {
    false
}

/// `super::gemm_cols` on AMX tiles.
///
/// Loop order: depth blocks outermost, so each `A` block is packed once and reused across every column block.
/// The block sizes were tried at (KC, MC, NC) = (512, 128, 1536), (256, 256, 64), (256, 128, 512) and
/// (256, 256, 256): all within this machine's ±8 % noise on the YOLOv8n bf16 step, so the middle one stays
/// (a 16 KiB `B` panel, as the AVX-512 kernels').
///
/// # Safety
/// As [`super::gemm`]; [`available`] is true.
pub(super) unsafe fn gemm_cols(
    [m, _n, k]: [usize; 3],
    cols: std::ops::Range<usize>,
    dst: Strided<*mut f32>,
    accumulate: bool,
    lhs: Src,
    rhs: Src,
) {
    PACK_A.with(|pa| {
        PACK_B.with(|pb| {
            let (mut pa, mut pb) = (pa.borrow_mut(), pb.borrow_mut());
            let a_len = MC * KC / 2;
            let b_len = NC * KC / 2;
            if pa.len() < a_len {
                pa.resize(a_len, 0);
            }
            if pb.len() < b_len {
                pb.resize(b_len, 0);
            }
            // SAFETY: `available` checked the CPU, the OS and the permission.
            unsafe { configure() };
            let mut p0 = 0;
            while p0 < k {
                let kb = KC.min(k - p0);
                let steps = kb.div_ceil(2).next_multiple_of(TILE_STEPS);
                let load = accumulate || p0 > 0;
                let mut i0 = 0;
                while i0 < m {
                    let mc = MC.min(m - i0);
                    // SAFETY: the block lies in lhs; pa holds MC/MR panels of `steps · MR` words.
                    unsafe { pack_a(&lhs, i0, mc, p0, kb, steps, &mut pa) };
                    let mut j0 = cols.start;
                    while j0 < cols.end {
                        let nc = NC.min(cols.end - j0);
                        // SAFETY: the block lies in rhs; pb holds NC/NR panels of `steps · NR` words.
                        unsafe {
                            super::pack_b(Compute::Bf16Dot, &rhs, p0, kb, j0, nc, steps, &mut pb)
                        };
                        for (jp, jr) in (0..nc).step_by(NR).enumerate() {
                            let b = pb[jp * steps * NR..].as_ptr();
                            for (ip, ir) in (0..mc).step_by(MR).enumerate() {
                                let a = pa[ip * MR * steps..].as_ptr();
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
                                // SAFETY: the panels hold `steps` steps; the tile lies in dst.
                                unsafe { kernel(steps, a, b, tile) };
                            }
                        }
                        j0 += nc;
                    }
                    i0 += mc;
                }
                p0 += kb;
            }
            // SAFETY: tiles were configured above; releasing returns them to their init state.
            unsafe { asm!("tilerelease", options(nostack, nomem)) };
        })
    });
}

/// Palette 1, eight tiles of 16 rows × 64 bytes.
unsafe fn configure() {
    let mut cfg = [0u8; 64];
    cfg[0] = 1;
    for t in 0..8 {
        cfg[16 + 2 * t] = 64;
        cfg[48 + t] = 16;
    }
    // SAFETY: a valid palette-1 configuration; the caller checked AMX is usable.
    unsafe { asm!("ldtilecfg [{}]", in(reg) cfg.as_ptr(), options(nostack, readonly)) };
}

/// One 32 × 32 tile of `dst` over `steps` packed steps: accumulators start from `dst` (when `load`) or zero,
/// and are stored straight into `dst` when the tile is whole and its rows contiguous, else through a buffer.
unsafe fn kernel(steps: usize, a: *const u32, b: *const u32, t: Tile) {
    let direct = t.rows == MR && t.cols == NR && t.col == 1;
    let half = t.rows <= 16;
    let a_stride = steps * 4;
    let b_stride = NR * 4;
    let dst_stride = t.row * 4;
    // SAFETY: the caller's: the panels hold `steps` steps of 32 rows / 32 columns, and a direct tile's 32 × 32
    // elements lie in dst with rows `t.row` apart.
    unsafe {
        if direct && t.load {
            asm!(
                "tileloadd tmm0, [{p} + {s}*1]",
                "tileloadd tmm1, [{p} + {s}*1 + 64]",
                "tileloadd tmm2, [{q} + {s}*1]",
                "tileloadd tmm3, [{q} + {s}*1 + 64]",
                p = in(reg) t.ptr,
                q = in(reg) t.ptr.add(16 * t.row),
                s = in(reg) dst_stride,
                options(nostack, readonly),
            );
        } else {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            );
        }
        for q in 0..steps / TILE_STEPS {
            let a0 = a.add(q * TILE_STEPS);
            let b0 = b.add(q * TILE_STEPS * NR);
            if half {
                asm!(
                    "tileloadd tmm4, [{a} + {sa}*1]",
                    "tileloadd tmm6, [{b} + {sb}*1]",
                    "tileloadd tmm7, [{b} + {sb}*1 + 64]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    a = in(reg) a0,
                    b = in(reg) b0,
                    sa = in(reg) a_stride,
                    sb = in(reg) b_stride,
                    options(nostack, readonly),
                );
            } else {
                asm!(
                    "tileloadd tmm4, [{a} + {sa}*1]",
                    "tileloadd tmm6, [{b} + {sb}*1]",
                    "tileloadd tmm7, [{b} + {sb}*1 + 64]",
                    "tileloadd tmm5, [{a2} + {sa}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    a = in(reg) a0,
                    a2 = in(reg) a0.add(16 * steps),
                    b = in(reg) b0,
                    sa = in(reg) a_stride,
                    sb = in(reg) b_stride,
                    options(nostack, readonly),
                );
            }
        }
        if direct {
            store_accumulators(t.ptr, t.row);
            return;
        }
        let mut buf = std::mem::MaybeUninit::<[f32; MR * NR]>::uninit();
        let p = buf.as_mut_ptr().cast::<f32>();
        store_accumulators(p, NR);
        for r in 0..t.rows {
            for c in 0..t.cols {
                let d = t.ptr.add(r * t.row + c * t.col);
                let v = *p.add(r * NR + c);
                *d = if t.load { *d + v } else { v };
            }
        }
    }
}

/// Writes the four accumulator tiles as a 32 × 32 block from `p`, rows `row` elements apart.
///
/// # Safety
/// The block lies in writable memory; the tiles are configured.
unsafe fn store_accumulators(p: *mut f32, row: usize) {
    // SAFETY: the caller's.
    unsafe {
        asm!(
            "tilestored [{p} + {s}*1], tmm0",
            "tilestored [{p} + {s}*1 + 64], tmm1",
            "tilestored [{q} + {s}*1], tmm2",
            "tilestored [{q} + {s}*1 + 64], tmm3",
            p = in(reg) p,
            q = in(reg) p.add(16 * row),
            s = in(reg) row * 4,
            options(nostack),
        );
    }
}

/// Packs `lhs[i0..i0+mc, p0..p0+kb]` into `MR`-row panels, row-major: word `(panel, r, step)` at
/// `(panel·MR + r)·steps + step`, a word the `bf16` pair `(k = 2·step, 2·step + 1)`, low half first. Rows and
/// depths past the block are zero (`steps` is the padded depth).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn pack_a(
    lhs: &Src,
    i0: usize,
    mc: usize,
    p0: usize,
    kb: usize,
    steps: usize,
    out: &mut [u32],
) {
    let live_steps = kb.div_ceil(2);
    let panels = mc.div_ceil(MR);
    let (row, col) = lhs.strides();
    for ip in 0..panels {
        let panel = &mut out[ip * MR * steps..][..MR * steps];
        let rows = MR.min(mc - ip * MR);
        let i = i0 + ip * MR;
        if col == 1 {
            for r in 0..rows {
                let words = &mut panel[r * steps..][..steps];
                let mut s = 0;
                while 2 * (s + 16) <= kb {
                    // SAFETY: 32 elements of row i + r from p0 + 2s lie in the block.
                    unsafe {
                        let v = x86::row_bf16(lhs, i + r, p0 + 2 * s, true);
                        _mm512_storeu_si512(words.as_mut_ptr().add(s).cast(), v);
                    }
                    s += 16;
                }
                for (s, w) in words.iter_mut().enumerate().take(live_steps).skip(s) {
                    // SAFETY: inside the block.
                    *w = unsafe { x86::word(Compute::Bf16Dot, lhs, i + r, p0 + 2 * s, p0 + kb) };
                }
                words[live_steps..].fill(0);
            }
        } else if row == 1 {
            // Column-contiguous (a transposed weight): 16 rows of one pair from two short vector loads,
            // scattered down the panel's rows.
            let offsets = _mm512_mullo_epi32(
                _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                _mm512_set1_epi32(steps as i32),
            );
            for r0 in (0..rows).step_by(16) {
                let words = &mut panel[r0 * steps..];
                if r0 + 16 > rows {
                    for r in r0..rows {
                        for s in 0..live_steps {
                            // SAFETY: inside the block.
                            panel[r * steps + s] = unsafe {
                                x86::word(Compute::Bf16Dot, lhs, i + r, p0 + 2 * s, p0 + kb)
                            };
                        }
                        panel[r * steps + live_steps..(r + 1) * steps].fill(0);
                    }
                    break;
                }
                for s in 0..live_steps {
                    // SAFETY: columns p0 + 2s (and p0 + 2s + 1 inside the block) hold 16 elements from row
                    // i + r0; the scatter writes word s of 16 rows of this panel.
                    unsafe {
                        let lo = col16_bf16(lhs, i + r0, p0 + 2 * s);
                        let hi = if 2 * s + 1 < kb {
                            col16_bf16(lhs, i + r0, p0 + 2 * s + 1)
                        } else {
                            _mm256_setzero_si256()
                        };
                        let pair = _mm512_or_si512(
                            _mm512_cvtepu16_epi32(lo),
                            _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(hi)),
                        );
                        _mm512_i32scatter_epi32::<4>(
                            words.as_mut_ptr().add(s).cast(),
                            offsets,
                            pair,
                        );
                    }
                }
                for r in 0..16 {
                    words[r * steps + live_steps..(r + 1) * steps].fill(0);
                }
            }
        } else {
            for r in 0..rows {
                for s in 0..live_steps {
                    // SAFETY: inside the block.
                    panel[r * steps + s] =
                        unsafe { x86::word(Compute::Bf16Dot, lhs, i + r, p0 + 2 * s, p0 + kb) };
                }
                panel[r * steps + live_steps..(r + 1) * steps].fill(0);
            }
        }
        panel[rows * steps..].fill(0);
    }
}

/// 16 consecutive elements of a column from `(i, p)`, as `bf16` bits.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn col16_bf16(src: &Src, i: usize, p: usize) -> __m256i {
    // SAFETY: the caller's: 16 elements from (i, p) down the column lie in src.
    unsafe {
        match src {
            Src::Bf16(s) => _mm256_loadu_si256(s.ptr.add(i + p * s.col).cast()),
            Src::F32(s) => std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(
                _mm512_loadu_ps(s.ptr.add(i + p * s.col)),
            )),
            Src::Conv(_) => unreachable!("a Conv rhs is packed by pack_conv"),
            Src::F16(s) => std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(
                _mm512_cvtph_ps(_mm256_loadu_si256(s.ptr.add(i + p * s.col).cast())),
            )),
        }
    }
}
