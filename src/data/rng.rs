//! The loader's random numbers: one small generator per (seed, epoch, image), so that every augmentation is
//! reproducible whatever the number of workers or the order they run in.
//!
//! Ultralytics draws from the global `random` / `numpy.random` state of each worker process, so its batches
//! depend on the worker count and on timing. Ours are a pure function of (seed, epoch, image index). The
//! generator is xoshiro256** seeded through SplitMix64 (Blackman and Vigna, <https://prng.di.unimi.it/>): a few
//! lines, stable across crate versions, which a `rand` upgrade could not promise.

/// xoshiro256**: fast, 256 bits of state, good enough statistics for augmentation.
#[derive(Debug, Clone)]
pub struct SampleRng {
    state: [u64; 4],
}

/// SplitMix64's step: spreads one 64-bit seed over the xoshiro state (and mixes the key parts).
fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE5_E4B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a generator is for; keeps the epoch-order stream apart from the per-image streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    EpochOrder = 1,
    Sample = 2,
}

impl SampleRng {
    fn from_key(parts: &[u64]) -> Self {
        let mut x = 0x6A09_E667_F3BC_C908_u64;
        for &part in parts {
            x ^= part;
            x = splitmix64(&mut x);
        }
        let mut state = [0; 4];
        for s in &mut state {
            *s = splitmix64(&mut x);
        }
        Self { state }
    }

    /// The generator of one image's augmentation in one epoch.
    pub fn for_sample(seed: u64, epoch: usize, image: usize) -> Self {
        Self::from_key(&[Stream::Sample as u64, seed, epoch as u64, image as u64])
    }

    /// The generator that shuffles one epoch's order.
    pub fn for_epoch(seed: u64, epoch: usize) -> Self {
        Self::from_key(&[Stream::EpochOrder as u64, seed, epoch as u64])
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1), 53 random bits (Python's `random.random()`).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [low, high) (Python's `random.uniform`).
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    /// Uniform integer in `0..n`; `n` must be positive (Lemire's multiply-shift, bias below 2^-32 for our sizes).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() >> 32).wrapping_mul(n as u64) >> 32) as usize
    }

    /// `true` with probability `p` (Python's `random.random() < p`).
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_rng_same_key_same_stream() {
        let mut a = SampleRng::for_sample(0, 3, 17);
        let mut b = SampleRng::for_sample(0, 3, 17);
        let mut c = SampleRng::for_sample(0, 3, 18);
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..4).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn sample_rng_unit_in_range_and_spread() {
        let mut r = SampleRng::for_epoch(1, 0);
        let draws: Vec<f64> = (0..10_000).map(|_| r.unit()).collect();
        assert!(draws.iter().all(|&x| (0.0..1.0).contains(&x)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        assert!((0..1000).map(|_| r.below(7)).all(|k| k < 7));
    }
}
