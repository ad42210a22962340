//! A rate limit that protects the hospital's FHIR server: callers wait for their turn, spaced
//! evenly at the configured rate, however many run at once.

use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

pub struct RateLimit {
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl RateLimit {
    /// `per_second` of 0 means no limit.
    pub fn new(per_second: f64) -> RateLimit {
        let interval = (per_second > 0.0).then(|| Duration::from_secs_f64(1.0 / per_second));
        RateLimit {
            interval,
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits until this caller may go.
    pub async fn acquire(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let turn = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let turn = (*next).max(now);
            *next = turn + interval;
            turn
        };
        tokio::time::sleep_until(turn).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn turns_are_spaced_at_the_rate() {
        let limit = RateLimit::new(10.0);
        let start = Instant::now();
        for _ in 0..21 {
            limit.acquire().await;
        }
        // 21 turns at 10/s: the first at once, the last two seconds later (virtual time).
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_means_unlimited() {
        let limit = RateLimit::new(0.0);
        let start = Instant::now();
        for _ in 0..1000 {
            limit.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
