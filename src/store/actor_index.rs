//! What the actor store derives from records, kept in the commit's transaction: backlinks (for
//! the reference's follow/like/repost/block de-duplication) and record→blob links, plus the
//! `blob` rows those links point at.
//!
//! Invariants:
//! - `backlink` and `record_blob` rows exist exactly for the current records: every create,
//!   update and delete rewrites the rows of its URI in the same transaction as the record row.
//! - A `blob` row whose last `record_blob` link goes is deleted in that transaction and
//!   reported, so its bytes can be deleted after the commit; a blob is never deleted while a
//!   record references it.
//! - A commit referencing a blob needs its row (uploaded, not taken down) with the same MIME
//!   type and size; imports record links without rows (the blobs arrive later:
//!   `listMissingBlobs`).

use super::StoreError;
use super::actor::ActorStore;
use crate::data::{BlobRef, Cid, Ipld, blob_refs, cbor};
use crate::repo::{CommitData, RecordOp};
use rusqlite::{OptionalExtension, Transaction};
use std::collections::BTreeSet;

/// Collections whose records link to a subject, and the path of that link (the reference's
/// backlink rules).
pub fn backlink_path(collection: &str) -> Option<&'static str> {
    match collection {
        "app.bsky.graph.follow" | "app.bsky.graph.block" => Some("subject"),
        "app.bsky.feed.like" | "app.bsky.feed.repost" => Some("subject.uri"),
        _ => None,
    }
}

/// The backlink target of a record, if its collection has one.
pub fn backlink_target(collection: &str, record: &Ipld) -> Option<(&'static str, String)> {
    let path = backlink_path(collection)?;
    let Ipld::Map(map) = record else { return None };
    let target = match (path, map.get("subject")?) {
        ("subject", Ipld::String(did)) => did.clone(),
        ("subject.uri", Ipld::Map(subject)) => match subject.get("uri")? {
            Ipld::String(uri) => uri.clone(),
            _ => return None,
        },
        _ => return None,
    };
    Some((path, target))
}

/// Why a record's blob reference can't be committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobRefError {
    #[error("Could not find blob: {0}")]
    NotFound(Cid),
    #[error("Referenced Mimetype does not match stored blob. Expected: {stored}, Got: {claimed}")]
    MimeType {
        cid: Cid,
        stored: String,
        claimed: String,
    },
    #[error("Referenced size does not match stored blob. Expected: {stored}, Got: {claimed}")]
    Size { cid: Cid, stored: u64, claimed: u64 },
}

/// A `blob` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRow {
    pub cid: Cid,
    pub mime_type: String,
    pub size: u64,
    /// Set while the blob is only uploaded (not yet referenced by a record).
    pub temp_key: Option<String>,
    pub created_at: String,
    pub takedown_ref: Option<String>,
}

/// How a commit's blob links are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobCheck {
    /// Every referenced blob must have a matching row (writes from clients).
    Require,
    /// Record the links only (imports: the blobs are uploaded afterwards).
    LinkOnly,
}

/// Rewrites the derived rows for each op of `c`; returns the blobs no record references any
/// more (their rows are gone; their bytes are the caller's to delete after commit).
pub(super) fn index_commit(
    tx: &Transaction<'_>,
    did: &str,
    c: &CommitData,
    check: BlobCheck,
) -> Result<Vec<Cid>, StoreError> {
    let mut unlinked: BTreeSet<String> = BTreeSet::new();
    for op in &c.ops {
        let key = op.key();
        let Some((collection, _)) = key.split_once('/') else {
            return Err(StoreError::Corrupt(format!("repo path {key:?} has no '/'")));
        };
        let uri = format!("at://{did}/{key}");
        // A create's path held no record before this op (a delete earlier in the same commit
        // already unindexed it), so there is nothing to remove.
        if !matches!(op, RecordOp::Create { .. }) {
            unlinked.extend(unindex_record(tx, &uri)?);
        }
        if let RecordOp::Create { cid, .. } | RecordOp::Update { cid, .. } = op {
            let Some(bytes) = c.new_blocks.get(cid) else {
                return Err(StoreError::Corrupt(format!(
                    "commit has no block for record {key}"
                )));
            };
            let record = cbor::decode(bytes)
                .map_err(|e| StoreError::Corrupt(format!("record {key}: {e}")))?;
            index_record(tx, &uri, collection, &record, check)?;
        }
    }
    delete_unreferenced(tx, unlinked)
}

/// Adds the derived rows of one record.
pub(super) fn index_record(
    tx: &Transaction<'_>,
    uri: &str,
    collection: &str,
    record: &Ipld,
    check: BlobCheck,
) -> Result<(), StoreError> {
    if let Some((path, target)) = backlink_target(collection, record) {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO backlink (uri, path, link_to) VALUES (?1, ?2, ?3)",
        )?
        .execute([uri, path, &target])?;
    }
    for blob in blob_refs(record) {
        if check == BlobCheck::Require {
            check_blob(tx, &blob)?;
        }
        let cid = blob.cid.to_string();
        tx.prepare_cached(
            "INSERT OR IGNORE INTO record_blob (blob_cid, record_uri) VALUES (?1, ?2)",
        )?
        .execute([&cid, uri])?;
        // Referenced now, so permanent (the caller moved the bytes before this transaction).
        tx.prepare_cached("UPDATE blob SET temp_key = NULL WHERE cid = ?1")?
            .execute([&cid])?;
    }
    Ok(())
}

fn check_blob(tx: &Transaction<'_>, blob: &BlobRef) -> Result<(), StoreError> {
    let row = blob_row(tx, &blob.cid)?;
    let Some(row) = row.filter(|r| r.takedown_ref.is_none()) else {
        return Err(StoreError::BlobRef(Box::new(BlobRefError::NotFound(
            blob.cid,
        ))));
    };
    if row.mime_type != blob.mime_type {
        return Err(StoreError::BlobRef(Box::new(BlobRefError::MimeType {
            cid: blob.cid,
            stored: row.mime_type,
            claimed: blob.mime_type.clone(),
        })));
    }
    if row.size != blob.size {
        return Err(StoreError::BlobRef(Box::new(BlobRefError::Size {
            cid: blob.cid,
            stored: row.size,
            claimed: blob.size,
        })));
    }
    Ok(())
}

/// Removes the derived rows of a record URI; returns the blob CIDs it linked.
fn unindex_record(tx: &Transaction<'_>, uri: &str) -> Result<Vec<String>, StoreError> {
    tx.prepare_cached("DELETE FROM backlink WHERE uri = ?1")?
        .execute([uri])?;
    let blobs: Vec<String> = tx
        .prepare_cached("DELETE FROM record_blob WHERE record_uri = ?1 RETURNING blob_cid")?
        .query_map([uri], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(blobs)
}

/// Deletes the rows of blobs in `candidates` that no record links any more.
fn delete_unreferenced(
    tx: &Transaction<'_>,
    candidates: BTreeSet<String>,
) -> Result<Vec<Cid>, StoreError> {
    let mut gone = Vec::new();
    for cid in candidates {
        let deleted = tx
            .prepare_cached(
                "DELETE FROM blob WHERE cid = ?1
                 AND NOT EXISTS (SELECT 1 FROM record_blob WHERE blob_cid = ?1)",
            )?
            .execute([&cid])?;
        if deleted > 0 {
            gone.push(parse_cid(&cid)?);
        }
    }
    Ok(gone)
}

fn blob_row(conn: &rusqlite::Connection, cid: &Cid) -> Result<Option<BlobRow>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT mime_type, size, temp_key, created_at, takedown_ref FROM blob WHERE cid = ?1",
        )?
        .query_row([cid.to_string()], |r| {
            Ok(BlobRow {
                cid: *cid,
                mime_type: r.get(0)?,
                size: r.get::<_, i64>(1)? as u64,
                temp_key: r.get(2)?,
                created_at: r.get(3)?,
                takedown_ref: r.get(4)?,
            })
        })
        .optional()?;
    Ok(row)
}

fn parse_cid(s: &str) -> Result<Cid, StoreError> {
    Cid::try_from(s).map_err(|e| StoreError::Corrupt(format!("stored CID {s:?}: {e}")))
}

impl ActorStore {
    /// A blob's row.
    pub fn blob(&self, cid: &Cid) -> Result<Option<BlobRow>, StoreError> {
        blob_row(&self.conn, cid)
    }

    /// URIs of this repo's records in `collection` that link to `target` (backlink de-dup).
    pub fn backlinks(&self, collection: &str, target: &str) -> Result<Vec<String>, StoreError> {
        let Some(path) = backlink_path(collection) else {
            return Ok(Vec::new());
        };
        let prefix = format!("at://{}/{collection}/", self.did);
        let uris: Vec<String> = self
            .conn
            .prepare_cached("SELECT uri FROM backlink WHERE path = ?1 AND link_to = ?2")?
            .query_map([path, target], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(uris
            .into_iter()
            .filter(|u| u.starts_with(&prefix))
            .collect())
    }

    /// (distinct blobs records reference, blob rows): `checkAccountStatus`'s
    /// `expectedBlobs` and `importedBlobs`.
    pub fn blob_counts(&self) -> Result<(u64, u64), StoreError> {
        let expected: i64 = self.conn.query_row(
            "SELECT count(DISTINCT blob_cid) FROM record_blob",
            [],
            |r| r.get(0),
        )?;
        let imported: i64 = self
            .conn
            .query_row("SELECT count(*) FROM blob", [], |r| r.get(0))?;
        Ok((expected as u64, imported as u64))
    }

    /// The distinct collections holding records (`describeRepo`).
    pub fn collections(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT DISTINCT collection FROM record ORDER BY collection")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }
}
