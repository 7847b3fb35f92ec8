//! The DID document cache (`did_cache.sqlite`, table `did_doc`), as the reference PDS keeps it.
//!
//! Invariants: only documents whose `id` matched the DID are stored (the resolver checks before
//! [`DidCache::put`]); `updated_at` is the wall-clock time (ms) of the fetch that produced the
//! row. Freshness is judged by the reader against its configured stale and max TTLs, so changing
//! the TTLs needs no migration. SQLite work runs on the blocking pool, never on an async worker.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::{DidDocument, IdentityError, now_ms};
use crate::store::StoreError;
use crate::store::sqlite::{DID_CACHE_MIGRATIONS, Durability, open, open_in_memory};

/// A cached document and when it was fetched.
#[derive(Clone, Debug)]
pub struct CachedDoc {
    pub doc: DidDocument,
    /// Milliseconds since the Unix epoch at the fetch that produced it.
    pub updated_at: i64,
}

impl CachedDoc {
    /// Whether the document is older than `ttl` now.
    pub fn older_than(&self, ttl: Duration) -> bool {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        now_ms().saturating_sub(self.updated_at) > ttl_ms
    }
}

/// Handle to the cache database; cheap to clone.
#[derive(Clone)]
pub struct DidCache {
    conn: Arc<Mutex<Connection>>,
}

impl DidCache {
    /// Opens (creating) the cache file. `Durability::Normal`: losing the last few writes on
    /// power loss only costs a refetch.
    pub fn open(path: &Path) -> Result<Self, IdentityError> {
        let conn = open(path, DID_CACHE_MIGRATIONS, Durability::Normal)?;
        Ok(Self::from_conn(conn))
    }

    /// An in-memory cache (tests, tools).
    pub fn in_memory() -> Result<Self, IdentityError> {
        let conn = open_in_memory(DID_CACHE_MIGRATIONS)?;
        Ok(Self::from_conn(conn))
    }

    fn from_conn(conn: Connection) -> Self {
        DidCache {
            conn: Arc::new(Mutex::new(conn)),
        }
    }

    /// Runs `f` on the connection on the blocking pool.
    async fn with_conn<T, F>(&self, f: F) -> Result<T, IdentityError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, IdentityError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock can't leave SQLite inconsistent (statements are
            // atomic), so a poisoned lock is still safe to use.
            let guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&guard)
        })
        .await
        .map_err(|e| IdentityError::Internal(format!("DID cache task failed: {e}")))?
    }

    /// The cached document for `did` and its fetch time; `None` if absent. A row that no
    /// longer parses is treated as absent (it will be overwritten by the next fetch).
    pub async fn get(&self, did: &str) -> Result<Option<CachedDoc>, IdentityError> {
        let did_owned = did.to_owned();
        let row: Option<(String, i64)> = self
            .with_conn(move |c| {
                c.query_row(
                    "SELECT doc, updated_at FROM did_doc WHERE did = ?1",
                    params![did_owned],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(|e| IdentityError::Cache(StoreError::from(e)))
            })
            .await?;
        let Some((json, updated_at)) = row else {
            return Ok(None);
        };
        let Ok(doc) = DidDocument::from_json(did, json.as_bytes()) else {
            tracing::warn!(did, "unparseable DID cache row ignored");
            return Ok(None);
        };
        Ok(Some(CachedDoc { doc, updated_at }))
    }

    /// Stores `doc` for `did`, stamped now.
    pub async fn put(&self, did: &str, doc: &DidDocument) -> Result<(), IdentityError> {
        self.put_at(did, doc, now_ms()).await
    }

    /// Stores `doc` for `did` with an explicit timestamp (tests age entries with it).
    pub async fn put_at(
        &self,
        did: &str,
        doc: &DidDocument,
        updated_at: i64,
    ) -> Result<(), IdentityError> {
        let did = did.to_owned();
        let json = doc.to_json()?;
        self.with_conn(move |c| {
            c.execute(
                "INSERT INTO did_doc (did, doc, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (did) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at",
                params![did, json, updated_at],
            )
            .map_err(|e| IdentityError::Cache(StoreError::from(e)))?;
            Ok(())
        })
        .await
    }

    /// Forgets `did` (its document is gone: not found or tombstoned).
    pub async fn clear(&self, did: &str) -> Result<(), IdentityError> {
        let did = did.to_owned();
        self.with_conn(move |c| {
            c.execute("DELETE FROM did_doc WHERE did = ?1", params![did])
                .map_err(|e| IdentityError::Cache(StoreError::from(e)))?;
            Ok(())
        })
        .await
    }
}
