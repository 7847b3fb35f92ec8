//! Queries behind the `com.atproto.sync.*` reads that the repo export does not cover.
//!
//! Invariant: `listBlobs` answers from `record_blob`, which `actor_index` keeps equal to the
//! blobs the current records reference (one row per (blob, record)), so a blob that no record
//! references any more is never listed, whatever state its `blob` row is in.

use super::StoreError;
use super::actor::ActorStore;
use crate::data::Cid;
use rusqlite::params;

impl ActorStore {
    /// `listBlobs`: distinct CIDs of blobs the current records reference, in CID (string)
    /// order, strictly after `cursor`. With `since`, only blobs of records last written in a
    /// rev after it.
    pub fn list_blobs(
        &self,
        since: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Vec<Cid>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let cursor = cursor.unwrap_or("");
        let rows: Vec<String> = match since {
            None => self
                .conn
                .prepare_cached(
                    "SELECT DISTINCT blob_cid FROM record_blob WHERE blob_cid > ?1
                     ORDER BY blob_cid ASC LIMIT ?2",
                )?
                .query_map(params![cursor, limit], |r| r.get(0))?
                .collect::<Result<_, _>>()?,
            // Record URIs are derived (`at://<did>/<collection>/<rkey>`), not stored on the
            // record row, so the join rebuilds them; `record_blob_record_uri` serves the lookup.
            Some(since) => self
                .conn
                .prepare_cached(
                    "SELECT DISTINCT rb.blob_cid FROM record r
                     JOIN record_blob rb
                       ON rb.record_uri = 'at://' || ?1 || '/' || r.collection || '/' || r.rkey
                     WHERE r.repo_rev > ?2 AND rb.blob_cid > ?3
                     ORDER BY rb.blob_cid ASC LIMIT ?4",
                )?
                .query_map(params![self.did, since, cursor, limit], |r| r.get(0))?
                .collect::<Result<_, _>>()?,
        };
        rows.iter()
            .map(|s| {
                Cid::try_from(s.as_str())
                    .map_err(|e| StoreError::Corrupt(format!("stored blob CID {s:?}: {e}")))
            })
            .collect()
    }
}
