//! Exact discrete Laplace noise, the geometric mechanism of Ghosh, Roughgarden and
//! Sundararajan ("Universally utility-maximizing privacy mechanisms", STOC 2009), sampled as
//! Canonne, Kamath and Steinke describe ("The Discrete Gaussian for Differential Privacy",
//! NeurIPS 2020, Algorithms 1 and 2).
//!
//! Adding `Z` with `P(Z = z)` proportional to `exp(-|z| / scale)` to an integer whose
//! sensitivity is `Δ` (one patient more or less moves it by at most `Δ`) is
//! `Δ / scale`-differentially private. The sampler uses integers only: the scale is an exact
//! fraction, every coin is an unbiased draw of a whole number below a bound, and there is no
//! floating point whose rounding could leak the value noised (Mironov, "On significance of
//! the least significant bits for differential privacy", CCS 2012). It is written here rather
//! than taken from OpenDP because OpenDP's samplers draw from a source of their own that
//! cannot be seeded, and the mechanism's distribution is checked below and in the
//! gatekeeper's tests by Monte Carlo runs that must repeat exactly; the answers themselves
//! draw from the operating system's generator ([`fresh_rng`]).

use rand::rngs::{OsRng, StdRng};
use rand::{CryptoRng, Rng, SeedableRng};

/// A generator for one answer's noise: ChaCha seeded from the operating system's
/// cryptographically secure source.
pub fn fresh_rng() -> StdRng {
    StdRng::from_rng(OsRng).expect("the operating system's random source")
}

/// True with probability `num / den` (`num <= den`, `den > 0`).
fn bernoulli<R: Rng + CryptoRng>(rng: &mut R, num: u128, den: u128) -> bool {
    rng.gen_range(0..den) < num
}

/// True with probability `exp(-num / den)` (`den > 0`): Algorithm 1 of Canonne, Kamath and
/// Steinke, for exponents up to 1 directly and above 1 as a product of `exp(-1)` draws.
fn bernoulli_exp<R: Rng + CryptoRng>(rng: &mut R, num: u128, den: u128) -> bool {
    if num <= den {
        // exp(-γ) = P(the first k with no success of Bernoulli(γ / k) is odd).
        let mut k: u128 = 1;
        while bernoulli(rng, num, den * k) {
            k += 1;
        }
        k % 2 == 1
    } else {
        for _ in 0..num / den {
            if !bernoulli_exp(rng, 1, 1) {
                return false;
            }
        }
        bernoulli_exp(rng, num % den, den)
    }
}

/// A draw of the discrete Laplace distribution of scale `t / s`: `P(z)` proportional to
/// `exp(-|z| s / t)` (Algorithm 2 of Canonne, Kamath and Steinke; `s, t >= 1`).
pub fn discrete_laplace<R: Rng + CryptoRng>(rng: &mut R, s: u128, t: u128) -> i64 {
    assert!(
        s >= 1 && t >= 1,
        "a discrete Laplace scale is a positive fraction"
    );
    loop {
        let u = rng.gen_range(0..t);
        if !bernoulli_exp(rng, u, t) {
            continue;
        }
        let mut v: u128 = 0;
        while bernoulli_exp(rng, 1, 1) {
            v += 1;
        }
        let y = (u + t * v) / s;
        let negative = rng.r#gen::<bool>();
        if negative && y == 0 {
            continue;
        }
        let y = i64::try_from(y).unwrap_or(i64::MAX);
        return if negative { -y } else { y };
    }
}

/// Noise for a value of sensitivity `delta` under epsilon `eps_num / eps_den`: discrete
/// Laplace of scale `delta * eps_den / eps_num`.
pub fn noise<R: Rng + CryptoRng>(rng: &mut R, delta: u64, eps_num: u64, eps_den: u64) -> i64 {
    discrete_laplace(
        rng,
        u128::from(eps_num.max(1)),
        u128::from(delta.max(1)) * u128::from(eps_den.max(1)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probability of `z` under the discrete Laplace of scale `1 / a` (a = s / t).
    fn pmf(z: i64, a: f64) -> f64 {
        (1.0 - (-a).exp()) / (1.0 + (-a).exp()) * (-a * z.abs() as f64).exp()
    }

    #[test]
    fn bernoulli_exp_draws_at_its_probability() {
        let mut rng = StdRng::seed_from_u64(7);
        let n = 200_000;
        for (num, den) in [(0, 1), (1, 3), (1, 1), (5, 2), (7, 1)] {
            let hits = (0..n).filter(|_| bernoulli_exp(&mut rng, num, den)).count();
            let want = (-(num as f64) / den as f64).exp();
            let got = hits as f64 / n as f64;
            // Four standard errors of a proportion over 200,000 draws, or 0.001.
            let tol = (4.0 * (want * (1.0 - want) / n as f64).sqrt()).max(0.001);
            assert!(
                (got - want).abs() < tol,
                "exp(-{num}/{den}): {got} vs {want}"
            );
        }
    }

    #[test]
    fn discrete_laplace_matches_its_distribution() {
        let mut rng = StdRng::seed_from_u64(11);
        let n = 200_000usize;
        // Scales 2 (epsilon 1/2 for a count), 1/2 and 5/3.
        for (s, t) in [(1u128, 2u128), (2, 1), (3, 5)] {
            let a = s as f64 / t as f64;
            let mut seen = std::collections::BTreeMap::<i64, usize>::new();
            let mut sum = 0i64;
            for _ in 0..n {
                let z = discrete_laplace(&mut rng, s, t);
                sum += z;
                *seen.entry(z).or_default() += 1;
            }
            for z in -3..=3 {
                let want = pmf(z, a);
                let got = *seen.get(&z).unwrap_or(&0) as f64 / n as f64;
                let tol = 4.0 * (want * (1.0 - want) / n as f64).sqrt() + 1e-4;
                assert!(
                    (got - want).abs() < tol,
                    "scale {t}/{s}, z {z}: {got} vs {want}"
                );
            }
            // Centred: no bias towards either side.
            let mean = sum as f64 / n as f64;
            assert!(mean.abs() < 0.05, "scale {t}/{s}: mean {mean}");
        }
    }

    #[test]
    fn noise_scales_with_sensitivity_over_epsilon() {
        let mut rng = StdRng::seed_from_u64(3);
        let n = 50_000;
        // Sensitivity 500 at epsilon 1/2: scale 1,000, mean absolute value about 1,000.
        let mad = (0..n)
            .map(|_| noise(&mut rng, 500, 500_000, 1_000_000).abs() as f64)
            .sum::<f64>()
            / n as f64;
        assert!((mad - 1_000.0).abs() < 30.0, "mean absolute noise {mad}");
        // A tiny epsilon shared by 64 holders still draws, without overflow.
        let z = noise(&mut rng, 500, 1, 64_000_000);
        assert!(z.abs() < i64::MAX);
    }
}
