//! AVX-512 VBMI building blocks for the loader's byte kernels (`augment::color`, `augment::perspective`,
//! `loader::batch`), on x86-64 CPUs that have it (Intel since Ice Lake, AMD since Zen 4): packed RGB bytes split
//! into planes and joined again, 64 pixels at a time, with byte permutes. Callers check [`available`] once and
//! keep a portable path.

use std::arch::x86_64::*;

/// Whether this CPU has AVX-512 F, BW and VBMI (detected once).
pub(crate) fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vbmi")
    })
}

/// Byte permutes that split 64 packed RGB pixels (three registers, `a|b|c`) into planes: for channel `ch`, lane
/// `k` reads byte `3k + ch`, from `a|b` through `lo` or, where `mask` is set, from `c` through `hi`.
struct Split {
    lo: [u8; 64],
    hi: [u8; 64],
    mask: u64,
}

const fn split(ch: usize) -> Split {
    let mut s = Split {
        lo: [0; 64],
        hi: [0; 64],
        mask: 0,
    };
    let mut k = 0;
    while k < 64 {
        let src = 3 * k + ch;
        if src < 128 {
            s.lo[k] = src as u8;
        } else {
            s.hi[k] = (src - 128) as u8;
            s.mask |= 1 << k;
        }
        k += 1;
    }
    s
}

const SPLITS: [Split; 3] = [split(0), split(1), split(2)];

/// Byte permutes that join planes `r|g` and `b` into output register `o` (bytes `64·o ..`): byte `j` is plane
/// `j % 3`, lane `j / 3`; `rg` indexes `r|g`, and where `mask` is set `b` is read through `bi`.
struct Join {
    rg: [u8; 64],
    bi: [u8; 64],
    mask: u64,
}

const fn join(o: usize) -> Join {
    let mut s = Join {
        rg: [0; 64],
        bi: [0; 64],
        mask: 0,
    };
    let mut i = 0;
    while i < 64 {
        let j = 64 * o + i;
        let (ch, k) = (j % 3, j / 3);
        if ch == 2 {
            s.bi[i] = k as u8;
            s.mask |= 1 << i;
        } else {
            s.rg[i] = (64 * ch + k) as u8;
        }
        i += 1;
    }
    s
}

const JOINS: [Join; 3] = [join(0), join(1), join(2)];

#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[inline]
pub(crate) fn load(bytes: &[u8; 64]) -> __m512i {
    // SAFETY: 64 readable bytes; the load is unaligned.
    unsafe { _mm512_loadu_si512(bytes.as_ptr().cast()) }
}

/// Byte planes `[r, g, b]` of 64 pixels from 192 packed bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[inline]
pub(crate) fn to_planes(packed: &[u8; 192]) -> [__m512i; 3] {
    let part = |i: usize| -> &[u8; 64] { packed[64 * i..][..64].try_into().expect("64 bytes") };
    let [a, b, c] = [load(part(0)), load(part(1)), load(part(2))];
    let plane = |s: &Split| {
        let x = _mm512_permutex2var_epi8(a, load(&s.lo), b);
        _mm512_mask_permutexvar_epi8(x, s.mask, load(&s.hi), c)
    };
    [plane(&SPLITS[0]), plane(&SPLITS[1]), plane(&SPLITS[2])]
}

/// 192 packed bytes from byte planes `[r, g, b]` of 64 pixels.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[inline]
pub(crate) fn from_planes([r, g, b]: [__m512i; 3], packed: &mut [u8; 192]) {
    for (o, out) in packed.chunks_exact_mut(64).enumerate() {
        let j = &JOINS[o];
        let x = _mm512_permutex2var_epi8(r, load(&j.rg), g);
        let x = _mm512_mask_permutexvar_epi8(x, j.mask, load(&j.bi), b);
        // SAFETY: `out` is 64 writable bytes; the store is unaligned.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), x) };
    }
}

/// Splits the first `packed.len() / 192 · 64` pixels of packed RGB bytes into the planes; returns how many
/// pixels it wrote (0 on a CPU without AVX-512 VBMI; the caller splits the rest).
pub(crate) fn split_planes(packed: &[u8], [r, g, b]: [&mut [u8]; 3]) -> usize {
    let n = (packed.len() / 192)
        .min(r.len() / 64)
        .min(g.len() / 64)
        .min(b.len() / 64);
    if !available() {
        return 0;
    }
    // SAFETY: the features were detected above.
    unsafe { split_planes_vbmi(&packed[..192 * n], [r, g, b]) };
    64 * n
}

#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
fn split_planes_vbmi(packed: &[u8], mut planes: [&mut [u8]; 3]) {
    for (i, chunk) in packed.chunks_exact(192).enumerate() {
        let split = to_planes(chunk.try_into().expect("192 bytes"));
        for (plane, x) in planes.iter_mut().zip(split) {
            let out = &mut plane[64 * i..][..64];
            // SAFETY: 64 writable bytes; the store is unaligned.
            unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), x) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_join_are_inverse_permutations() {
        let mut covered = [0u8; 192];
        for (ch, s) in SPLITS.iter().enumerate() {
            for k in 0..64 {
                let src = if s.mask >> k & 1 == 1 {
                    128 + s.hi[k] as usize
                } else {
                    s.lo[k] as usize
                };
                assert_eq!(src, 3 * k + ch);
                covered[src] += 1;
            }
        }
        assert!(covered.iter().all(|&c| c == 1));
        for (o, j) in JOINS.iter().enumerate() {
            for i in 0..64 {
                let (plane, lane) = if j.mask >> i & 1 == 1 {
                    (2, j.bi[i] as usize)
                } else {
                    (j.rg[i] as usize / 64, j.rg[i] as usize % 64)
                };
                assert_eq!(3 * lane + plane, 64 * o + i);
            }
        }
    }

    #[test]
    fn split_planes_equals_a_scalar_split_and_joins_back() {
        if !available() {
            eprintln!("no AVX-512 VBMI on this CPU: the portable loops run instead");
            return;
        }
        let packed: Vec<u8> = (0..3 * 1000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let mut planes = [vec![0u8; 1000], vec![0u8; 1000], vec![0u8; 1000]];
        let [r, g, b] = &mut planes;
        let done = split_planes(&packed, [r, g, b]);
        assert_eq!(done, 960); // whole steps of 64 only
        for (k, px) in packed.chunks_exact(3).take(done).enumerate() {
            assert_eq!(
                [planes[0][k], planes[1][k], planes[2][k]],
                [px[0], px[1], px[2]]
            );
        }
        assert!(planes.iter().all(|p| p[done..].iter().all(|&v| v == 0)));
        let mut joined = [0u8; 192];
        // SAFETY: the features were detected.
        unsafe {
            let planes = planes
                .each_ref()
                .map(|p| load(p[..64].try_into().expect("64")));
            from_planes(planes, &mut joined);
        }
        assert_eq!(&joined[..], &packed[..192]);
    }
}
