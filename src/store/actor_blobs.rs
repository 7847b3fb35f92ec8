//! Blob rows outside commits: recording uploads, finding blobs an import still misses, and the
//! queries and guarded deletes of blob garbage collection.
//!
//! Invariants (with `actor_index`, which maintains the rows in the commit transaction):
//! - A `blob` row with a `temp_key` is an upload no record has referenced yet; its bytes live
//!   under that temporary key. A row without one is permanent: its bytes were moved to the
//!   permanent place before the commit that cleared the key.
//! - An upload never turns a permanent or taken-down row back into a temporary one.
//! - [`ActorStore::delete_blob_row_if_unreferenced`] re-checks, in its own write transaction,
//!   that no `record_blob` link exists and that the row is still in the state the caller saw
//!   (the same temporary key, or still permanent), so a garbage collector working from an older
//!   listing never removes a row a commit has just started to use. The caller's byte deletion
//!   runs inside that transaction: a second process (the `berth blobs gc` command) that wants
//!   to write the row waits for it.

use super::StoreError;
use super::actor::ActorStore;
use super::actor_index::BlobRow;
use crate::data::Cid;
use crate::syntax::Datetime;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

/// What recording an upload found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadRecorded {
    /// A new temporary row, or an existing temporary row now pointing at the new key (whose
    /// previous key, if different, is returned so its bytes can be dropped).
    Temporary { replaced_key: Option<String> },
    /// The blob is permanent already: the new temporary bytes are redundant.
    AlreadyPermanent,
    /// A record references the blob (e.g. after `importRepo`) but it had no row: the row is
    /// now temporary and the caller must make the bytes permanent and call
    /// [`ActorStore::mark_blob_permanent`].
    Referenced,
    /// The blob was taken down; nothing changed.
    TakenDown,
}

/// A candidate for garbage collection, as listed (re-checked before deletion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcCandidate {
    pub cid: Cid,
    pub size: u64,
    /// `Some` for temporary rows.
    pub temp_key: Option<String>,
}

impl ActorStore {
    /// Records an upload of `cid` stored under `temp_key` (the reference's semantics: insert,
    /// or only move an existing row's key while it is still temporary).
    pub fn record_upload(
        &mut self,
        cid: &Cid,
        mime_type: &str,
        size: u64,
        temp_key: &str,
    ) -> Result<UploadRecorded, StoreError> {
        let now = Datetime::now().to_string();
        let cid_s = cid.to_string();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<(Option<String>, Option<String>)> = tx
            .prepare_cached("SELECT temp_key, takedown_ref FROM blob WHERE cid = ?1")?
            .query_row([&cid_s], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let outcome = match existing {
            Some((_, Some(_))) => UploadRecorded::TakenDown,
            Some((None, None)) => UploadRecorded::AlreadyPermanent,
            Some((Some(old), None)) => {
                // A fresh upload restarts the grace period of the temporary row.
                tx.prepare_cached("UPDATE blob SET temp_key = ?2, created_at = ?3 WHERE cid = ?1")?
                    .execute(params![cid_s, temp_key, now])?;
                UploadRecorded::Temporary {
                    replaced_key: (old != temp_key).then_some(old),
                }
            }
            None => {
                tx.prepare_cached(
                    "INSERT INTO blob (cid, mime_type, size, temp_key, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![cid_s, mime_type, size as i64, temp_key, now])?;
                let linked: bool = tx
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM record_blob WHERE blob_cid = ?1)",
                    )?
                    .query_row([&cid_s], |r| r.get(0))?;
                if linked {
                    UploadRecorded::Referenced
                } else {
                    UploadRecorded::Temporary { replaced_key: None }
                }
            }
        };
        tx.commit()?;
        Ok(outcome)
    }

    /// Clears the temporary key of `cid` if it is still `temp_key` (its bytes were made
    /// permanent). Returns whether the row changed.
    pub fn mark_blob_permanent(&mut self, cid: &Cid, temp_key: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .prepare_cached("UPDATE blob SET temp_key = NULL WHERE cid = ?1 AND temp_key = ?2")?
            .execute(params![cid.to_string(), temp_key])?;
        Ok(n > 0)
    }

    /// Deletes the row of `cid` when it is exactly the temporary upload `temp_key` (and no
    /// record links it); used when an upload must be abandoned after recording.
    pub fn forget_upload(&mut self, cid: &Cid, temp_key: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .prepare_cached(
                "DELETE FROM blob WHERE cid = ?1 AND temp_key = ?2
                 AND NOT EXISTS (SELECT 1 FROM record_blob WHERE blob_cid = ?1)",
            )?
            .execute(params![cid.to_string(), temp_key])?;
        Ok(n > 0)
    }

    /// Blobs records reference that have no row (`listMissingBlobs`): `(cid, record URI)` by
    /// CID, after `cursor` (the last CID of the previous page).
    pub fn list_missing_blobs(
        &self,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Vec<(Cid, String)>, StoreError> {
        let rows: Vec<(String, String)> = self
            .conn
            .prepare_cached(
                "SELECT rb.blob_cid, min(rb.record_uri) FROM record_blob rb
                 WHERE rb.blob_cid > ?1
                   AND NOT EXISTS (SELECT 1 FROM blob b WHERE b.cid = rb.blob_cid)
                 GROUP BY rb.blob_cid ORDER BY rb.blob_cid ASC LIMIT ?2",
            )?
            .query_map(params![cursor.unwrap_or(""), limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|(cid, uri)| Ok((parse_cid(&cid)?, uri)))
            .collect()
    }

    /// Temporary rows created at or before `cutoff` that no record links (not taken down).
    pub fn temp_blobs_before(&self, cutoff: &Datetime) -> Result<Vec<GcCandidate>, StoreError> {
        self.gc_candidates(
            "SELECT cid, size, temp_key FROM blob b
             WHERE temp_key IS NOT NULL AND created_at <= ?1 AND takedown_ref IS NULL
               AND NOT EXISTS (SELECT 1 FROM record_blob rb WHERE rb.blob_cid = b.cid)
             ORDER BY cid",
            Some(cutoff.as_str()),
        )
    }

    /// Permanent rows no record links (left by a failed write or an interrupted cleanup); not
    /// taken down, since a takedown row must survive to refuse a re-upload.
    pub fn unreferenced_permanent_blobs(&self) -> Result<Vec<GcCandidate>, StoreError> {
        self.gc_candidates(
            "SELECT cid, size, temp_key FROM blob b
             WHERE temp_key IS NULL AND takedown_ref IS NULL
               AND NOT EXISTS (SELECT 1 FROM record_blob rb WHERE rb.blob_cid = b.cid)
             ORDER BY cid",
            None,
        )
    }

    fn gc_candidates(&self, sql: &str, arg: Option<&str>) -> Result<Vec<GcCandidate>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let map = |r: &rusqlite::Row<'_>| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        };
        let rows: Vec<(String, i64, Option<String>)> = match arg {
            Some(a) => stmt.query_map([a], map)?.collect::<Result<_, _>>()?,
            None => stmt.query_map([], map)?.collect::<Result<_, _>>()?,
        };
        rows.into_iter()
            .map(|(cid, size, temp_key)| {
                Ok(GcCandidate {
                    cid: parse_cid(&cid)?,
                    size: size.max(0) as u64,
                    temp_key,
                })
            })
            .collect()
    }

    /// Whether any row names `temp_key` as its temporary upload.
    pub fn temp_key_in_use(&self, temp_key: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM blob WHERE temp_key = ?1)")?
            .query_row([temp_key], |r| r.get(0))?)
    }

    /// Deletes the row of `cid` if no record links it, it is not taken down, and it is still
    /// the temporary upload `temp_key` (`Some`) or still permanent (`None`). `delete_bytes`
    /// runs inside the transaction after the row is gone; if it fails the row stays. Returns
    /// whether the row was deleted.
    pub fn delete_blob_row_if_unreferenced<E>(
        &mut self,
        cid: &Cid,
        temp_key: Option<&str>,
        delete_bytes: impl FnOnce(&BlobRow) -> Result<(), E>,
    ) -> Result<Result<bool, E>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row = read_row(&tx, cid)?;
        let Some(row) = row else { return Ok(Ok(false)) };
        let linked: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM record_blob WHERE blob_cid = ?1)")?
            .query_row([cid.to_string()], |r| r.get(0))?;
        if linked || row.takedown_ref.is_some() || row.temp_key.as_deref() != temp_key {
            return Ok(Ok(false));
        }
        tx.prepare_cached("DELETE FROM blob WHERE cid = ?1")?
            .execute([cid.to_string()])?;
        if let Err(e) = delete_bytes(&row) {
            // Dropping the transaction rolls the row back.
            return Ok(Err(e));
        }
        tx.commit()?;
        Ok(Ok(true))
    }
}

/// The row of `cid` (the same columns as [`ActorStore::blob`], read inside a transaction).
fn read_row(conn: &rusqlite::Connection, cid: &Cid) -> Result<Option<BlobRow>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT mime_type, size, temp_key, created_at, takedown_ref FROM blob WHERE cid = ?1",
        )?
        .query_row([cid.to_string()], |r| {
            Ok(BlobRow {
                cid: *cid,
                mime_type: r.get(0)?,
                size: r.get::<_, i64>(1)?.max(0) as u64,
                temp_key: r.get(2)?,
                created_at: r.get(3)?,
                takedown_ref: r.get(4)?,
            })
        })
        .optional()?)
}

fn parse_cid(s: &str) -> Result<Cid, StoreError> {
    Cid::try_from(s).map_err(|e| StoreError::Corrupt(format!("stored CID {s:?}: {e}")))
}
