//! How long to wait before reconnecting to RabbitMQ: jittered, bounded, and prompt after a
//! broker that was up goes away.
//!
//! A session that got connected resets the wait to the minimum, however short it lasted:
//! a broker that died twice within a minute is usually back within seconds, and every
//! second spent waiting is a second a hold may end late and a standby may not take over.
//! Only attempts that fail to connect at all double the wait, up to the maximum. Each wait
//! is drawn from its upper half (`[d/2, d]`) so that many instances of the service do not
//! all reconnect at the same instant.

use std::time::Duration;

/// The reconnection wait, a small state machine over plain durations (no clock, no IO).
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    rng: u64,
}

impl Backoff {
    /// Waits from `min` doubling up to `max`, jittered with a generator seeded by `seed`.
    pub fn new(min: Duration, max: Duration, seed: u64) -> Backoff {
        let min = min.max(Duration::from_millis(1));
        Backoff {
            min,
            max: max.max(min),
            next: min,
            // xorshift needs a non-zero state.
            rng: seed | 1,
        }
    }

    /// The wait after a session ended: `connected` says whether it had connected (then the
    /// wait starts again from the minimum).
    pub fn after(&mut self, connected: bool) -> Duration {
        if connected {
            self.next = self.min;
        }
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = d / 2;
        let spread = (d - half).as_micros() as u64;
        half + Duration::from_micros(self.random() % (spread + 1))
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn failed_connects_double_up_to_the_maximum() {
        let mut b = Backoff::new(100 * MS, 1000 * MS, 7);
        let waits: Vec<Duration> = (0..6).map(|_| b.after(false)).collect();
        for (w, bound) in waits.iter().zip([100, 200, 400, 800, 1000, 1000]) {
            assert!(
                *w >= bound * MS / 2 && *w <= bound * MS,
                "{w:?} for {bound}"
            );
        }
    }

    /// The fault found under repeated broker kills: two deaths less than 30 s apart made
    /// the service wait its longest back-off although the broker was back in seconds.
    #[test]
    fn a_session_that_connected_resets_the_wait_however_short_it_was() {
        let mut b = Backoff::new(100 * MS, 10_000 * MS, 7);
        for _ in 0..10 {
            b.after(false);
        }
        assert!(b.after(false) > 5000 * MS);
        assert!(b.after(true) <= 100 * MS);
        assert!(b.after(false) <= 200 * MS);
    }

    #[test]
    fn waits_are_jittered() {
        let mut b = Backoff::new(1000 * MS, 1000 * MS, 42);
        let waits: std::collections::BTreeSet<Duration> = (0..20).map(|_| b.after(true)).collect();
        assert!(waits.len() > 10, "{waits:?}");
        assert!(waits.iter().all(|w| *w >= 500 * MS && *w <= 1000 * MS));
    }
}
