//! Exponential backoff with full jitter (each wait uniform in `0..=cap`),
//! which spreads a crowd of reconnecting clients instead of synchronizing them.

use std::time::Duration;

use rand::Rng;

/// Reconnection delays: `base * 2^attempt`, capped, then jittered.
#[derive(Debug, Clone)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    pub max_attempts: u32,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(10), 20)
    }
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration, max_attempts: u32) -> Self {
        Self {
            base,
            cap,
            max_attempts,
            attempt: 0,
        }
    }

    /// The next delay, or `None` once `max_attempts` are used up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.attempt >= self.max_attempts {
            return None;
        }
        let ceiling = self
            .base
            .saturating_mul(1u32.checked_shl(self.attempt).unwrap_or(u32::MAX))
            .min(self.cap);
        self.attempt += 1;
        let millis = ceiling.as_millis() as u64;
        Some(Duration::from_millis(
            rand::thread_rng().gen_range(0..=millis),
        ))
    }

    /// Start over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Attempts made since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_within_the_cap_and_stop_after_max_attempts() {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(50), 6);
        let ceilings = [10, 20, 40, 50, 50, 50];
        for ceiling in ceilings {
            let delay = backoff.next_delay().unwrap();
            assert!(
                delay <= Duration::from_millis(ceiling),
                "{delay:?} > {ceiling}ms"
            );
        }
        assert!(backoff.next_delay().is_none());
        backoff.reset();
        assert!(backoff.next_delay().is_some());
    }
}
