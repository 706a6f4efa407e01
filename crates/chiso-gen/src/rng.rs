//! A small, fixed pseudo-random generator.
//!
//! The sample city must come out byte for byte the same for a seed, today and
//! after any dependency upgrade, so the generator owns its algorithm
//! (xoshiro256** seeded through SplitMix64) instead of borrowing one whose
//! stream may change between crate versions.

#[derive(Debug, Clone)]
pub struct Rng {
    state: [u64; 4],
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator for one stream of a seed; distinct `stream`s are independent.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut stream = stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let mut x = seed ^ splitmix64(&mut stream);
        Self {
            state: [
                splitmix64(&mut x),
                splitmix64(&mut x),
                splitmix64(&mut x),
                splitmix64(&mut x),
            ],
        }
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

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in `[0, n)`; `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[lo, hi)`.
    pub fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit();
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Exponential with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Poisson-distributed count: exact for small means, normal beyond.
    pub fn poisson(&mut self, mean: f64) -> u32 {
        if mean <= 0.0 {
            return 0;
        }
        if mean < 40.0 {
            let limit = (-mean).exp();
            let mut product = self.unit();
            let mut count = 0;
            while product > limit {
                product *= self.unit();
                count += 1;
            }
            count
        } else {
            (mean + mean.sqrt() * self.normal()).round().max(0.0) as u32
        }
    }

    /// An index drawn with the weights whose running sums are `cumulative`.
    pub fn pick(&mut self, cumulative: &[f64]) -> usize {
        let total = cumulative.last().copied().unwrap_or(0.0);
        let x = self.unit() * total;
        cumulative
            .partition_point(|&c| c <= x)
            .min(cumulative.len().saturating_sub(1))
    }
}

/// Running sums of weights, for [`Rng::pick`].
pub fn cumulative(weights: impl IntoIterator<Item = f64>) -> Vec<f64> {
    weights
        .into_iter()
        .scan(0.0, |sum, w| {
            *sum += w;
            Some(*sum)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7, 1).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::new(7, 1).next_u64(), Rng::new(7, 2).next_u64());
        assert_ne!(Rng::new(7, 1).next_u64(), Rng::new(8, 1).next_u64());
    }

    #[test]
    fn poisson_and_pick_have_the_right_means() {
        let mut rng = Rng::new(1, 0);
        for mean in [0.3, 5.0, 120.0] {
            let n = 20_000;
            let total: u64 = (0..n).map(|_| u64::from(rng.poisson(mean))).sum();
            let observed = total as f64 / n as f64;
            assert!(
                (observed - mean).abs() < 0.05 * mean + 0.02,
                "{mean}: {observed}"
            );
        }
        let cum = cumulative([1.0, 3.0]);
        let ones = (0..10_000).filter(|_| rng.pick(&cum) == 1).count();
        assert!((7_300..7_700).contains(&ones), "{ones}");
    }
}
