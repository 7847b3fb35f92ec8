//! Firehose delivery statistics: how long each live frame took from being sequenced to being
//! written to a subscriber's socket, as a histogram, and how many subscribers are connected.
//!
//! Recording is a few relaxed atomic adds per frame and subscriber, so it is always on; the
//! numbers are served to the operator at `/metrics` (`server::metrics`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds (the last bucket is unbounded).
pub const BUCKET_BOUNDS_US: &[u64] = &[
    50, 100, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000, 4_000, 5_000, 7_500, 10_000, 15_000,
    20_000, 30_000, 50_000, 75_000, 100_000, 200_000, 500_000, 1_000_000,
];

/// Counters shared by every subscriber task.
#[derive(Debug)]
pub struct DeliveryStats {
    /// One counter per bound in [`BUCKET_BOUNDS_US`], plus one for everything slower.
    buckets: Vec<AtomicU64>,
    delivered: AtomicU64,
    total_us: AtomicU64,
    subscribers: AtomicU64,
}

/// A point-in-time copy of [`DeliveryStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySnapshot {
    /// Frames per bucket (not cumulative), aligned with [`BUCKET_BOUNDS_US`] plus the overflow.
    pub buckets: Vec<u64>,
    pub delivered: u64,
    pub total_us: u64,
    pub subscribers: u64,
}

impl Default for DeliveryStats {
    fn default() -> Self {
        DeliveryStats {
            buckets: (0..=BUCKET_BOUNDS_US.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            delivered: AtomicU64::new(0),
            total_us: AtomicU64::new(0),
            subscribers: AtomicU64::new(0),
        }
    }
}

impl DeliveryStats {
    /// Notes that one frame reached one subscriber's socket `latency` after it was sequenced.
    pub fn record(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let i = BUCKET_BOUNDS_US.partition_point(|&bound| bound < us);
        if let Some(bucket) = self.buckets.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.total_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Counts a subscriber as connected until the returned guard is dropped.
    pub fn subscriber(&self) -> SubscriberGuard<'_> {
        self.subscribers.fetch_add(1, Ordering::Relaxed);
        SubscriberGuard(self)
    }

    pub fn snapshot(&self) -> DeliverySnapshot {
        DeliverySnapshot {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            delivered: self.delivered.load(Ordering::Relaxed),
            total_us: self.total_us.load(Ordering::Relaxed),
            subscribers: self.subscribers.load(Ordering::Relaxed),
        }
    }
}

/// Holds one count in [`DeliveryStats`]'s subscriber gauge.
pub struct SubscriberGuard<'a>(&'a DeliveryStats);

impl Drop for SubscriberGuard<'_> {
    fn drop(&mut self) {
        self.0.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_the_first_bucket_that_holds_them() {
        let stats = DeliveryStats::default();
        for us in [0, 50, 51, 4_999, 5_000, 5_001, 2_000_000] {
            stats.record(Duration::from_micros(us));
        }
        let s = stats.snapshot();
        let at = |bound: u64| s.buckets[BUCKET_BOUNDS_US.iter().position(|&b| b == bound).unwrap()];
        assert_eq!(at(50), 2, "0 and 50 µs");
        assert_eq!(at(100), 1, "51 µs");
        assert_eq!(at(5_000), 2, "4,999 and 5,000 µs");
        assert_eq!(at(7_500), 1, "5,001 µs");
        assert_eq!(*s.buckets.last().unwrap(), 1, "2 s overflows");
        assert_eq!(s.delivered, 7);
        assert_eq!(s.total_us, 50 + 51 + 4_999 + 5_000 + 5_001 + 2_000_000);
    }

    #[test]
    fn the_subscriber_gauge_follows_its_guards() {
        let stats = DeliveryStats::default();
        let a = stats.subscriber();
        let b = stats.subscriber();
        assert_eq!(stats.snapshot().subscribers, 2);
        drop(a);
        assert_eq!(stats.snapshot().subscribers, 1);
        drop(b);
        assert_eq!(stats.snapshot().subscribers, 0);
    }
}
