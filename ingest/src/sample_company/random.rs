//! A small, fixed pseudo-random generator and the distributions the simulation needs.
//!
//! The generator promises the same bytes for the same seed, forever. Crates such as `rand` document
//! that their standard generators and distributions may change between versions, so the simulation
//! carries its own: xoshiro256++ seeded through SplitMix64, and textbook samplers on top.
//!
//! The same holds for floating point: `f64::exp`, `ln`, `cos` and `powf` call the platform's math
//! library, whose last bit may differ between systems, and one bit can flip a draw. The
//! generator therefore takes every transcendental function from the pure-Rust `libm` crate (pinned
//! by Cargo.lock); square roots and roundings are exact in IEEE 754 and need no such care.

/// SplitMix64's finaliser: a bijection on `u64` that scatters nearby inputs.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256++ (Blackman and Vigna), one independent stream per simulated entity.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A stream for entity `index` of kind `stream` under `seed`. Streams are independent, so a
    /// customer's history does not change when another part of the simulation draws more numbers.
    pub fn new(seed: u64, stream: u64, index: u64) -> Self {
        let mut z = mix64(seed ^ mix64(stream.wrapping_mul(0xA24B_AED4_963E_E407) ^ mix64(index)));
        let mut s = [0u64; 4];
        for word in &mut s {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            *word = mix64(z);
        }
        Self { s }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    #[inline]
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Three independent uniforms in [0, 1) from one 64-bit draw, each with 21 bits (a resolution
    /// of one in two million): enough for daily event probabilities, at a third of the cost.
    #[inline]
    pub fn three_uniforms(&mut self) -> [f64; 3] {
        let bits = self.next_u64();
        let scale = 1.0 / (1u64 << 21) as f64;
        [0, 21, 42].map(|shift| ((bits >> shift) & ((1 << 21) - 1)) as f64 * scale)
    }

    /// Uniform integer in [0, n); `n` must be positive.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform integer in [lo, hi].
    #[inline]
    pub fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `p`.
    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// One element of a non-empty slice, uniformly.
    #[inline]
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Standard normal (Box-Muller; the second value is discarded to keep the state simple).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.f64();
        let u2 = self.f64();
        (-2.0 * libm::log(u1)).sqrt() * libm::cos(std::f64::consts::TAU * u2)
    }

    /// Exponential with the given rate.
    #[inline]
    pub fn exponential(&mut self, rate: f64) -> f64 {
        -libm::log(1.0 - self.f64()) / rate
    }

    /// Log-normal whose logarithm has mean `mu` and deviation `sigma`.
    pub fn lognormal(&mut self, mu: f64, sigma: f64) -> f64 {
        libm::exp(mu + sigma * self.normal())
    }

    /// Gamma with the given shape and scale (Marsaglia and Tsang).
    pub fn gamma(&mut self, shape: f64, scale: f64) -> f64 {
        if shape < 1.0 {
            let u = 1.0 - self.f64();
            return self.gamma(shape + 1.0, scale) * libm::pow(u, 1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let base = 1.0 + c * x;
            let v = base * base * base;
            if v <= 0.0 {
                continue;
            }
            let u = 1.0 - self.f64();
            if libm::log(u) < 0.5 * x * x + d - d * v + d * libm::log(v) {
                return d * v * scale;
            }
        }
    }

    /// Poisson with mean `lambda`; exact for small means, normal approximation above 30.
    pub fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda > 30.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u32;
        }
        let limit = libm::exp(-lambda);
        let mut k = 0;
        let mut p = self.f64();
        while p > limit {
            k += 1;
            p *= self.f64();
        }
        k
    }

    /// An index drawn with probabilities proportional to `weights` (not necessarily normalised).
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }

    /// An index drawn from a cumulative distribution (ascending, last element the total).
    #[inline]
    pub fn cumulative(&mut self, cumulative: &[f64]) -> usize {
        let x = self.f64() * cumulative[cumulative.len() - 1];
        cumulative.partition_point(|c| *c <= x).min(cumulative.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7, 1, 2).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::new(7, 1, 2).next_u64(), Rng::new(7, 1, 3).next_u64());
        assert_ne!(Rng::new(7, 1, 2).next_u64(), Rng::new(8, 1, 2).next_u64());
    }

    #[test]
    fn samplers_have_the_right_means() {
        let mut rng = Rng::new(1, 2, 3);
        let n = 200_000;
        let mean = |f: &mut dyn FnMut() -> f64| (0..n).map(|_| f()).sum::<f64>() / n as f64;
        let g = mean(&mut || rng.gamma(2.5, 2.0));
        assert!((g - 5.0).abs() < 0.05, "gamma mean {g}");
        let g = mean(&mut || rng.gamma(0.5, 2.0));
        assert!((g - 1.0).abs() < 0.02, "gamma(<1) mean {g}");
        let p = mean(&mut || rng.poisson(3.5) as f64);
        assert!((p - 3.5).abs() < 0.03, "poisson mean {p}");
        let e = mean(&mut || rng.exponential(4.0));
        assert!((e - 0.25).abs() < 0.005, "exponential mean {e}");
        let z = mean(&mut || rng.normal());
        assert!(z.abs() < 0.01, "normal mean {z}");
        let mut next = [0.0; 3];
        let mut k = 3;
        let t = mean(&mut || {
            if k == 3 {
                next = rng.three_uniforms();
                k = 0;
            }
            k += 1;
            next[k - 1]
        });
        assert!((t - 0.5).abs() < 0.003, "three_uniforms mean {t}");
        let b = mean(&mut || rng.between(1, 6) as f64);
        assert!((b - 3.5).abs() < 0.02, "between mean {b}");
    }
}
