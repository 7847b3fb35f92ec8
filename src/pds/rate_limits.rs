//! The reference's rate limits (`PDS_RATE_LIMITS_ENABLED`, reference §10.2), in memory like
//! the reference without Redis: fixed windows of points per (limit, key).
//!
//! - Per account: the write buckets `repo-write-hour` (5,000 points an hour) and
//!   `repo-write-day` (35,000 a day), where a create costs 3, an update 2 and a delete 1; and
//!   the email and handle routes' own limits.
//! - Per client IP: `global-ip` (3,000 XRPC calls per 5 minutes, all methods but
//!   `sync.getRepo`) and the limits of account creation, password reset, account deletion,
//!   `uploadBlob` and `getRepo` ([`ip_limits`]). `createSession` is keyed by identifier and IP.
//!
//! Invariant: a refused call consumes nothing, so a client that backs off is not charged twice.
//! Windows that have ended are dropped as the table grows, so memory follows live keys.

use super::repo::WriteOp;
use crate::syntax::Did;
use crate::xrpc::XrpcError;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// One limit: at most `points` in each `window`, counted per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub name: &'static str,
    pub window: Duration,
    pub points: u32,
}

const FIVE_MINUTES: Duration = Duration::from_secs(300);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

const fn limit(name: &'static str, window: Duration, points: u32) -> Limit {
    Limit {
        name,
        window,
        points,
    }
}

const WRITE_BUCKETS: [Limit; 2] = [
    limit("repo-write-hour", HOUR, 5_000),
    limit("repo-write-day", DAY, 35_000),
];

/// Every XRPC call from one IP (except `sync.getRepo`, which has its own).
pub const GLOBAL_IP: Limit = limit("global-ip", FIVE_MINUTES, 3_000);

/// `createSession`, keyed by lower-cased identifier and IP.
pub const CREATE_SESSION: [Limit; 2] = [
    limit("createSession-5m", FIVE_MINUTES, 30),
    limit("createSession-day", DAY, 300),
];

/// The per-account limits of the email and handle routes, by NSID.
pub fn did_limits(nsid: &str) -> &'static [Limit] {
    const ACCOUNT_DELETE: [Limit; 2] = [
        limit("requestAccountDelete-hour", HOUR, 5),
        limit("requestAccountDelete-day", DAY, 15),
    ];
    const EMAIL_CONFIRMATION: [Limit; 2] = [
        limit("requestEmailConfirmation-hour", HOUR, 5),
        limit("requestEmailConfirmation-day", DAY, 15),
    ];
    const EMAIL_UPDATE: [Limit; 2] = [
        limit("requestEmailUpdate-hour", HOUR, 5),
        limit("requestEmailUpdate-day", DAY, 15),
    ];
    const UPDATE_HANDLE: [Limit; 2] = [
        limit("updateHandle-5m", FIVE_MINUTES, 10),
        limit("updateHandle-day", DAY, 50),
    ];
    match nsid {
        "com.atproto.server.requestAccountDelete" => &ACCOUNT_DELETE,
        "com.atproto.server.requestEmailConfirmation" => &EMAIL_CONFIRMATION,
        "com.atproto.server.requestEmailUpdate" => &EMAIL_UPDATE,
        "com.atproto.identity.updateHandle" => &UPDATE_HANDLE,
        _ => &[],
    }
}

/// The per-IP limits of a method, besides [`GLOBAL_IP`] (which [`global_applies`] says).
pub fn ip_limits(nsid: &str) -> &'static [Limit] {
    const CREATE_ACCOUNT: [Limit; 1] = [limit("createAccount", FIVE_MINUTES, 100)];
    const DELETE_ACCOUNT: [Limit; 1] = [limit("deleteAccount", FIVE_MINUTES, 50)];
    const RESET_PASSWORD: [Limit; 1] = [limit("resetPassword", FIVE_MINUTES, 50)];
    const REQUEST_PASSWORD_RESET: [Limit; 2] = [
        limit("requestPasswordReset-hour", HOUR, 15),
        limit("requestPasswordReset-day", DAY, 50),
    ];
    const UPLOAD_BLOB: [Limit; 1] = [limit("uploadBlob", DAY, 1_000)];
    const GET_REPO: [Limit; 1] = [limit("getRepo", FIVE_MINUTES, 6_000)];
    match nsid {
        "com.atproto.server.createAccount" => &CREATE_ACCOUNT,
        "com.atproto.server.deleteAccount" => &DELETE_ACCOUNT,
        "com.atproto.server.resetPassword" => &RESET_PASSWORD,
        "com.atproto.server.requestPasswordReset" => &REQUEST_PASSWORD_RESET,
        "com.atproto.repo.uploadBlob" => &UPLOAD_BLOB,
        "com.atproto.sync.getRepo" => &GET_REPO,
        _ => &[],
    }
}

/// Whether [`GLOBAL_IP`] counts calls to `nsid`.
pub fn global_applies(nsid: &str) -> bool {
    nsid != "com.atproto.sync.getRepo"
}

/// Where a key stands against the tightest of the limits it was charged to (the
/// `RateLimit-*` response headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub limit: Limit,
    pub remaining: u32,
    /// Until the window ends.
    pub reset: Duration,
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

pub struct RateLimits {
    enabled: bool,
    used: Mutex<Table>,
}

/// Per key: (window start, points used).
type Counters = HashMap<String, (Instant, u32)>;

#[derive(Default)]
struct Table {
    /// Per limit name: its window, and its counters.
    windows: HashMap<&'static str, (Duration, Counters)>,
    /// Sweep ended windows when this many keys are held (then twice what is left).
    sweep_at: usize,
}

impl Table {
    fn keys(&self) -> usize {
        self.windows.values().map(|(_, keys)| keys.len()).sum()
    }
}

/// The fewest keys held before ended windows are swept.
const SWEEP_AT: usize = 4_096;

impl RateLimits {
    pub fn new(enabled: bool) -> Self {
        RateLimits {
            enabled,
            used: Mutex::new(Table {
                windows: HashMap::new(),
                sweep_at: SWEEP_AT,
            }),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Charges `ops` to the account, or refuses with `RateLimitExceeded`.
    pub fn check_writes(&self, did: &Did, ops: &[WriteOp]) -> Result<(), XrpcError> {
        if !self.enabled {
            return Ok(());
        }
        self.charge(
            &WRITE_BUCKETS,
            did.as_str(),
            write_cost(ops),
            Instant::now(),
        )
        .map(|_| ())
        .map_err(XrpcError::from)
    }

    /// Charges one call to `key` under each of `limits`, or refuses (see [`RateLimited`]).
    /// `None` when limits are off or `limits` is empty.
    pub fn check(&self, limits: &[Limit], key: &str) -> Result<Option<Standing>, RateLimited> {
        if !self.enabled || limits.is_empty() {
            return Ok(None);
        }
        self.charge(limits, key, 1, Instant::now())
    }

    /// Charges `cost` under every limit, or none if any would pass its points. On refusal
    /// the error's standing is the limit that refused. `None` if `limits` is empty.
    pub fn charge(
        &self,
        limits: &[Limit],
        key: &str,
        cost: u32,
        now: Instant,
    ) -> Result<Option<Standing>, RateLimited> {
        // The table holds only counters: one left mid-update by a panic is harmless.
        let mut table = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        // Check every limit before charging any.
        for l in limits {
            let used = table
                .windows
                .get(l.name)
                .and_then(|(_, keys)| keys.get(key))
                .filter(|(start, _)| now.duration_since(*start) < l.window);
            let (reset, points) = used.map_or((l.window, 0), |(start, points)| {
                (l.window - now.duration_since(*start), *points)
            });
            if points.saturating_add(cost) > l.points {
                return Err(RateLimited(Standing {
                    limit: *l,
                    remaining: l.points.saturating_sub(points),
                    reset,
                }));
            }
        }
        if table.keys() >= table.sweep_at {
            for (window, keys) in table.windows.values_mut() {
                keys.retain(|_, (start, _)| now.duration_since(*start) < *window);
            }
            table.sweep_at = (table.keys() * 2).max(SWEEP_AT);
        }
        let mut tightest: Option<Standing> = None;
        for l in limits {
            let (_, keys) = table
                .windows
                .entry(l.name)
                .or_insert_with(|| (l.window, HashMap::new()));
            let entry = keys.entry(key.to_owned()).or_insert((now, 0));
            if now.duration_since(entry.0) >= l.window {
                *entry = (now, 0);
            }
            entry.1 += cost;
            let standing = Standing {
                limit: *l,
                remaining: l.points.saturating_sub(entry.1),
                reset: l.window.saturating_sub(now.duration_since(entry.0)),
            };
            if tightest.is_none_or(|t| standing.remaining < t.remaining) {
                tightest = Some(standing);
            }
        }
        Ok(tightest)
    }
}

/// A refused charge, with the standing of the limit that refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited(pub Standing);

impl From<RateLimited> for XrpcError {
    fn from(_: RateLimited) -> Self {
        XrpcError::rate_limit_exceeded()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn refuses_past_the_hourly_bucket_and_resets_after_the_window() {
        let limits = RateLimits::new(true);
        let t0 = Instant::now();
        for _ in 0..1666 {
            limits.charge(&WRITE_BUCKETS, "did:plc:a", 3, t0).unwrap();
        }
        // 4,998 used: one more create (3) would pass 5,000; a delete (1) still fits.
        assert!(limits.charge(&WRITE_BUCKETS, "did:plc:a", 3, t0).is_err());
        limits.charge(&WRITE_BUCKETS, "did:plc:a", 1, t0).unwrap();
        // Another account has its own buckets.
        limits.charge(&WRITE_BUCKETS, "did:plc:b", 3, t0).unwrap();
        // A new hour window.
        limits
            .charge(
                &WRITE_BUCKETS,
                "did:plc:a",
                3,
                t0 + HOUR + Duration::from_secs(1),
            )
            .unwrap();
    }

    #[test]
    fn a_refusal_charges_no_limit_and_names_the_one_that_refused() {
        let limits = RateLimits::new(true);
        let t0 = Instant::now();
        let pair = [limit("short", MINUTE, 3), limit("long", HOUR, 5)];
        for expected in [2, 1, 0] {
            let standing = limits.charge(&pair, "k", 1, t0).unwrap().unwrap();
            // The tightest of the two is reported.
            assert_eq!(
                (standing.limit.name, standing.remaining),
                ("short", expected)
            );
        }
        let refused = limits.charge(&pair, "k", 1, t0).unwrap_err();
        assert_eq!(refused.0.limit.name, "short");
        // The refusal did not charge `long`: after `short`'s window, two calls fit, not one.
        let later = t0 + MINUTE;
        let standing = limits.charge(&pair, "k", 1, later).unwrap().unwrap();
        assert_eq!((standing.limit.name, standing.remaining), ("long", 1));
        limits.charge(&pair, "k", 1, later).unwrap();
        assert_eq!(
            limits
                .charge(&pair, "k", 1, later)
                .unwrap_err()
                .0
                .limit
                .name,
            "long"
        );
    }

    #[test]
    fn ended_windows_are_swept_as_the_table_grows() {
        let limits = RateLimits::new(true);
        let t0 = Instant::now();
        let one = [limit("one", MINUTE, 1)];
        for i in 0..SWEEP_AT {
            limits.charge(&one, &format!("ip{i}"), 1, t0).unwrap();
        }
        // A minute later every window has ended; the next charge sweeps them.
        limits.charge(&one, "fresh", 1, t0 + MINUTE).unwrap();
        let size = limits.used.lock().unwrap().keys();
        assert!(size < 10, "{size} entries left");
        // A live window is kept.
        assert!(limits.charge(&one, "fresh", 1, t0 + MINUTE).is_err());
    }
}
