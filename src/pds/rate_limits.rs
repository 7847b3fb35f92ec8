//! The reference's per-account write buckets (`PDS_RATE_LIMITS_ENABLED`): `repo-write-hour`
//! (5,000 points an hour) and `repo-write-day` (35,000 points a day), where a create costs 3,
//! an update 2 and a delete 1.
//!
//! Fixed windows in memory, like the reference without Redis. Invariant: a refused write
//! consumes nothing, so a client that backs off is not penalised twice.

use super::repo::WriteOp;
use crate::syntax::Did;
use crate::xrpc::XrpcError;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const BUCKETS: [(Duration, u32); 2] = [
    (Duration::from_secs(3600), 5_000),
    (Duration::from_secs(86_400), 35_000),
];

pub struct RateLimits {
    enabled: bool,
    /// Per DID and bucket: (window start, points used).
    used: Mutex<HashMap<(String, usize), (Instant, u32)>>,
}

/// Points a batch of writes costs.
pub fn write_cost(ops: &[WriteOp]) -> u32 {
    ops.iter()
        .map(|op| match op {
            WriteOp::Create { .. } => 3,
            WriteOp::Update { .. } | WriteOp::Put { .. } => 2,
            WriteOp::Delete { .. } => 1,
        })
        .sum()
}

impl RateLimits {
    pub fn new(enabled: bool) -> Self {
        RateLimits {
            enabled,
            used: Mutex::new(HashMap::new()),
        }
    }

    /// Charges `ops` to the account, or refuses with `RateLimitExceeded`.
    pub fn check_writes(&self, did: &Did, ops: &[WriteOp]) -> Result<(), XrpcError> {
        if !self.enabled {
            return Ok(());
        }
        self.charge(did.as_str(), write_cost(ops), Instant::now())
    }

    fn charge(&self, did: &str, cost: u32, now: Instant) -> Result<(), XrpcError> {
        let mut used = self
            .used
            .lock()
            .map_err(|_| XrpcError::internal("rate limit lock poisoned"))?;
        // Check every bucket before charging any.
        for (i, (window, limit)) in BUCKETS.iter().enumerate() {
            if let Some((start, points)) = used.get(&(did.to_string(), i))
                && now.duration_since(*start) < *window
                && points + cost > *limit
            {
                return Err(XrpcError::rate_limit_exceeded());
            }
        }
        for (i, (window, _)) in BUCKETS.iter().enumerate() {
            let entry = used.entry((did.to_string(), i)).or_insert((now, 0));
            if now.duration_since(entry.0) >= *window {
                *entry = (now, 0);
            }
            entry.1 += cost;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_hourly_bucket_and_resets_after_the_window() {
        let limits = RateLimits::new(true);
        let t0 = Instant::now();
        for _ in 0..1666 {
            limits.charge("did:plc:a", 3, t0).unwrap();
        }
        // 4,998 used: one more create (3) would pass 5,000; a delete (1) still fits.
        assert!(limits.charge("did:plc:a", 3, t0).is_err());
        limits.charge("did:plc:a", 1, t0).unwrap();
        // Another account has its own buckets.
        limits.charge("did:plc:b", 3, t0).unwrap();
        // A new hour window.
        limits
            .charge("did:plc:a", 3, t0 + Duration::from_secs(3601))
            .unwrap();
    }
}
