//! `getRecord` responses kept in memory: a popular record (a profile, a post everyone opens)
//! is read from SQLite and turned into JSON once, not on every request.
//!
//! Invariant: a cached response is never older than the account's last finished write.
//! [`super::actors::Actors`] calls [`RecordCache::invalidate`] after every closure it runs
//! under an account's lock (every record change, import and deletion goes through it) and when
//! it closes an account's store. A response is stored only if no invalidation of any account
//! happened between the start of its database read and the insert, so a read that raced a
//! write is never kept.
//!
//! Bounded by bytes: past [`MAX_BYTES`] the cache starts over, and responses larger than
//! [`MAX_ENTRY_BYTES`] are never kept.

use crate::data::Cid;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Total response bytes kept.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;
/// Larger responses are served but not kept.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;

/// A record as `getRecord` serves it: its CID and the whole JSON response body.
#[derive(Clone)]
pub struct CachedRecord {
    pub cid: Cid,
    pub body: Bytes,
}

#[derive(Default)]
pub struct RecordCache {
    /// Invalidations so far (any account).
    invalidations: AtomicU64,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    /// DID → "collection/rkey" → response.
    by_account: HashMap<String, HashMap<String, CachedRecord>>,
    bytes: usize,
}

impl RecordCache {
    /// Take before reading the database; hand to [`RecordCache::insert`].
    pub fn ticket(&self) -> u64 {
        self.invalidations.load(Ordering::Acquire)
    }

    pub fn get(&self, did: &str, collection: &str, rkey: &str) -> Option<CachedRecord> {
        let entries = self.inner.lock().ok()?;
        entries
            .by_account
            .get(did)?
            .get(&path(collection, rkey))
            .cloned()
    }

    /// Keeps `record`, read after [`RecordCache::ticket`] returned `ticket`, unless any
    /// account was invalidated since.
    pub fn insert(
        &self,
        ticket: u64,
        did: &str,
        collection: &str,
        rkey: &str,
        record: CachedRecord,
    ) {
        let size = record.body.len();
        if size > MAX_ENTRY_BYTES {
            return;
        }
        let Ok(mut entries) = self.inner.lock() else {
            return;
        };
        // Checked under the lock `invalidate` bumps under, so no invalidation slips between.
        if self.invalidations.load(Ordering::Acquire) != ticket {
            return;
        }
        if entries.bytes + size > MAX_BYTES {
            entries.by_account.clear();
            entries.bytes = 0;
        }
        let old = entries
            .by_account
            .entry(did.to_string())
            .or_default()
            .insert(path(collection, rkey), record);
        entries.bytes = entries.bytes + size - old.map_or(0, |o| o.body.len());
    }

    /// Forgets the account's responses: its records may have changed.
    pub fn invalidate(&self, did: &str) {
        let Ok(mut entries) = self.inner.lock() else {
            // A poisoned lock serves nothing (`get` fails), so nothing stale can be served.
            return;
        };
        self.invalidations.fetch_add(1, Ordering::AcqRel);
        if let Some(gone) = entries.by_account.remove(did) {
            let freed: usize = gone.values().map(|r| r.body.len()).sum();
            entries.bytes -= freed;
        }
    }
}

fn path(collection: &str, rkey: &str) -> String {
    format!("{collection}/{rkey}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(body: &str) -> CachedRecord {
        CachedRecord {
            cid: crate::data::cbor_cid(body.as_bytes()),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn serves_what_was_kept_until_the_account_is_invalidated() {
        let cache = RecordCache::default();
        let t = cache.ticket();
        cache.insert(
            t,
            "did:plc:a",
            "app.bsky.feed.post",
            "1",
            record("{\"a\":1}"),
        );
        cache.insert(
            t,
            "did:plc:b",
            "app.bsky.feed.post",
            "1",
            record("{\"b\":1}"),
        );
        let hit = cache.get("did:plc:a", "app.bsky.feed.post", "1").unwrap();
        assert_eq!(&hit.body[..], b"{\"a\":1}");
        assert!(cache.get("did:plc:a", "app.bsky.feed.post", "2").is_none());
        cache.invalidate("did:plc:a");
        assert!(cache.get("did:plc:a", "app.bsky.feed.post", "1").is_none());
        // Another account's responses stay.
        assert!(cache.get("did:plc:b", "app.bsky.feed.post", "1").is_some());
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_kept() {
        let cache = RecordCache::default();
        let ticket = cache.ticket();
        // The database read happens here; a write to any account finishes before the insert.
        cache.invalidate("did:plc:other");
        cache.insert(ticket, "did:plc:a", "c", "k", record("{}"));
        assert!(cache.get("did:plc:a", "c", "k").is_none());
    }

    #[test]
    fn stays_within_its_byte_budget() {
        let cache = RecordCache::default();
        let big = "x".repeat(MAX_ENTRY_BYTES);
        for i in 0..(2 * MAX_BYTES / MAX_ENTRY_BYTES) {
            cache.insert(
                cache.ticket(),
                "did:plc:a",
                "c",
                &i.to_string(),
                record(&big),
            );
            let entries = cache.inner.lock().unwrap();
            assert!(entries.bytes <= MAX_BYTES);
            let counted: usize = entries
                .by_account
                .values()
                .flat_map(|m| m.values())
                .map(|r| r.body.len())
                .sum();
            assert_eq!(counted, entries.bytes);
        }
        // Too large to keep.
        cache.insert(
            cache.ticket(),
            "did:plc:a",
            "c",
            "huge",
            record(&"y".repeat(MAX_ENTRY_BYTES + 1)),
        );
        assert!(cache.get("did:plc:a", "c", "huge").is_none());
    }
}
