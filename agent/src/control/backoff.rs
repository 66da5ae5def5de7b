//! Reconnect delays: exponential backoff with *full* jitter.
//!
//! `sleep = random(0, min(cap, base · 2ⁿ))` for the n-th consecutive failure. Full jitter (as
//! opposed to a ±20 % wobble) spreads a fleet that lost its control plane at the same instant
//! over the whole window, so a restart is not followed by every agent reconnecting in the same
//! second.

use std::time::Duration;

/// Exponent beyond which `base · 2ⁿ` exceeds any sensible cap (and would overflow).
const MAX_EXPONENT: u32 = 32;

/// The delay ceiling of attempt `n`: `min(cap, base · 2ⁿ)`.
pub fn ceiling(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.min(MAX_EXPONENT - 1);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

/// Full jitter: `unit ∈ [0, 1)` scaled onto `[0, ceiling(base, cap, attempt))`.
pub fn full_jitter(base: Duration, cap: Duration, attempt: u32, unit: f64) -> Duration {
    ceiling(base, cap, attempt).mul_f64(unit.clamp(0.0, 1.0))
}

/// Consecutive-failure state of one reconnect loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    /// `base` is the first ceiling, `cap` the largest; `seed` makes the jitter reproducible in
    /// tests (use [`Backoff::new`] otherwise).
    pub fn with_seed(base: Duration, cap: Duration, seed: u64) -> Self {
        Self {
            base,
            cap: cap.max(base),
            attempt: 0,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// A backoff seeded from the OS, so agents started together still draw different delays.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self::with_seed(base, cap, fastrand::u64(..))
    }

    /// The delay before the next attempt; each call counts one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let d = full_jitter(self.base, self.cap, self.attempt, self.rng.f64());
        self.attempt = (self.attempt + 1).min(MAX_EXPONENT);
        d
    }

    /// A delay near the cap, for failures that will not heal soon (refused credentials):
    /// uniformly in `[cap/2, cap)`, still jittered so refused agents do not line up.
    pub fn at_cap(&mut self) -> Duration {
        self.attempt = MAX_EXPONENT;
        self.cap / 2 + (self.cap / 2).mul_f64(self.rng.f64())
    }

    /// Forget past failures (after a healthy session).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Consecutive failures counted so far.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(1);
    const CAP: Duration = Duration::from_secs(60);

    #[test]
    fn ceiling_doubles_then_stops_at_the_cap() {
        let secs: Vec<u64> = (0..9).map(|n| ceiling(BASE, CAP, n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(ceiling(BASE, CAP, u32::MAX), CAP);
        assert_eq!(ceiling(Duration::from_secs(u64::MAX / 2), CAP, 40), CAP);
    }

    #[test]
    fn full_jitter_maps_the_unit_interval_onto_zero_to_ceiling() {
        assert_eq!(full_jitter(BASE, CAP, 3, 0.0), Duration::ZERO);
        assert_eq!(full_jitter(BASE, CAP, 3, 0.5), Duration::from_secs(4));
        assert_eq!(full_jitter(BASE, CAP, 10, 0.5), Duration::from_secs(30));
    }

    #[test]
    fn every_delay_is_within_zero_and_its_ceiling() {
        let mut b = Backoff::with_seed(BASE, CAP, 42);
        for round in 0..50 {
            for n in 0..12 {
                assert_eq!(b.attempt(), n);
                let d = b.next_delay();
                assert!(
                    d < ceiling(BASE, CAP, n),
                    "round {round} attempt {n}: {d:?}"
                );
            }
            b.reset();
        }
    }

    #[test]
    fn delays_spread_over_the_whole_window() {
        // 1000 agents failing for the 6th time (ceiling 60 s): the delays must cover the
        // window, not cluster: each tenth of it gets between 5 % and 15 % of the agents.
        let mut buckets = [0u32; 10];
        for seed in 0..1000 {
            let mut b = Backoff::with_seed(BASE, CAP, seed);
            for _ in 0..6 {
                b.next_delay();
            }
            let d = b.next_delay();
            assert!(d < CAP);
            buckets[(d.as_secs_f64() / 6.0) as usize] += 1;
        }
        for (i, n) in buckets.iter().enumerate() {
            assert!(
                (50..=150).contains(n),
                "bucket {i}: {n} of 1000 ({buckets:?})"
            );
        }
    }

    #[test]
    fn same_seed_same_delays_different_seed_different_delays() {
        let draw = |seed| {
            let mut b = Backoff::with_seed(BASE, CAP, seed);
            (0..8).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn at_cap_stays_in_the_upper_half_and_reset_restarts_small() {
        let mut b = Backoff::with_seed(BASE, CAP, 1);
        for _ in 0..100 {
            let d = b.at_cap();
            assert!(d >= CAP / 2 && d < CAP, "{d:?}");
        }
        b.reset();
        assert!(b.next_delay() < BASE);
    }
}
