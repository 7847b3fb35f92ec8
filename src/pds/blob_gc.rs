//! Blob garbage collection (the reference has none): removes uploads nobody referenced, blob
//! rows no record links, and temporary objects that never got a row.
//!
//! Invariants:
//! - A blob a current record references is never deleted: every row deletion re-checks, under
//!   the account's actor lock and in one write transaction, that no `record_blob` link exists
//!   and that the row is still what the listing saw (same temporary key, or still permanent),
//!   and the bytes are deleted before that lock is released, so no upload or commit of the
//!   account can interleave between the check and the deletion.
//! - Temporary uploads get a grace period (`PDS_BLOB_GC_TEMP_AGE_SECS`, default one hour, the
//!   blob-lifecycle guide's lower bound): rows by their `created_at`, unrecorded objects by
//!   their last write.
//! - An unrecorded temporary object is deleted only after checking, under the same lock the
//!   upload path records rows under, that no row names it.
//! - A dry run reads and counts only.

use super::Pds;
use super::actors::store_error;
use crate::blob::BlobError;
use crate::data::Cid;
use crate::store::actor_blobs::GcCandidate;
use crate::syntax::{Datetime, Did};
use crate::xrpc::XrpcError;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What one collection did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub dry_run: bool,
    /// Accounts whose stores were examined.
    pub accounts: u64,
    /// Temporary uploads older than the grace period, never referenced.
    pub temp_deleted: u64,
    pub temp_bytes: u64,
    /// Permanent blobs no record references.
    pub unreferenced_deleted: u64,
    pub unreferenced_bytes: u64,
    /// Temporary objects with no row, older than the grace period.
    pub orphan_files_deleted: u64,
    /// Candidates skipped because something failed (logged); the next run retries them.
    pub errors: u64,
}

impl GcReport {
    /// The report as a two-column text table (the `berth blobs gc` output).
    pub fn table(&self) -> String {
        let verb = if self.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        let rows = [
            ("accounts examined".to_string(), self.accounts.to_string()),
            (
                format!("temporary uploads {verb}"),
                format!("{} ({} bytes)", self.temp_deleted, self.temp_bytes),
            ),
            (
                format!("unreferenced blobs {verb}"),
                format!(
                    "{} ({} bytes)",
                    self.unreferenced_deleted, self.unreferenced_bytes
                ),
            ),
            (
                format!("orphan temporary files {verb}"),
                self.orphan_files_deleted.to_string(),
            ),
            ("errors".to_string(), self.errors.to_string()),
        ];
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<width$}  {v}\n"))
            .collect()
    }
}

impl Pds {
    /// Runs one collection over every account. `temp_max_age` is the grace period of
    /// temporary uploads.
    pub async fn collect_blob_garbage(
        &self,
        temp_max_age: Duration,
        dry_run: bool,
    ) -> Result<GcReport, XrpcError> {
        let mut report = GcReport {
            dry_run,
            ..GcReport::default()
        };
        let cutoff_time = chrono::Utc::now()
            - chrono::Duration::from_std(temp_max_age).unwrap_or(chrono::Duration::MAX);
        let cutoff = Datetime::from_utc(cutoff_time);
        for did in self.actor_dids().await? {
            report.accounts += 1;
            let c = cutoff.clone();
            let listed = self
                .actors
                .run(&did, move |st| {
                    let temp = st.store.temp_blobs_before(&c).map_err(store_error)?;
                    let unref = st
                        .store
                        .unreferenced_permanent_blobs()
                        .map_err(store_error)?;
                    Ok((temp, unref))
                })
                .await;
            let (temp, unref) = match listed {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(%did, "blob gc: listing candidates: {e}");
                    report.errors += 1;
                    continue;
                }
            };
            for candidate in temp {
                match self.collect_one(&did, &candidate, dry_run).await {
                    Ok(true) => {
                        report.temp_deleted += 1;
                        report.temp_bytes += candidate.size;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(%did, cid = %candidate.cid, "blob gc: {e}");
                        report.errors += 1;
                    }
                }
            }
            for candidate in unref {
                match self.collect_one(&did, &candidate, dry_run).await {
                    Ok(true) => {
                        report.unreferenced_deleted += 1;
                        report.unreferenced_bytes += candidate.size;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(%did, cid = %candidate.cid, "blob gc: {e}");
                        report.errors += 1;
                    }
                }
            }
        }
        self.collect_orphan_temp_files(temp_max_age, &mut report)
            .await?;
        Ok(report)
    }

    /// Deletes one candidate's row and bytes if it is still garbage; whether it did (or, in a
    /// dry run, whether it would).
    async fn collect_one(
        &self,
        did: &Did,
        candidate: &GcCandidate,
        dry_run: bool,
    ) -> Result<bool, XrpcError> {
        if dry_run {
            return Ok(true);
        }
        let (blobs, rt) = (self.blobs.clone(), tokio::runtime::Handle::current());
        let (cid, temp_key) = (candidate.cid, candidate.temp_key.clone());
        self.actors
            .run(did, move |st| {
                let did = st.did.clone();
                let deleted = st
                    .store
                    .delete_blob_row_if_unreferenced(&cid, temp_key.as_deref(), |_row| {
                        delete_bytes(&rt, &*blobs, &did, &cid, temp_key.as_deref())
                    })
                    .map_err(store_error)?;
                deleted.map_err(|e| XrpcError::internal(format!("deleting blob {cid}: {e}")))
            })
            .await
    }

    /// Part (c): temporary objects no row names, last written before the grace period.
    async fn collect_orphan_temp_files(
        &self,
        temp_max_age: Duration,
        report: &mut GcReport,
    ) -> Result<(), XrpcError> {
        let listed = self
            .blobs
            .list_temp()
            .await
            .map_err(|e| XrpcError::internal(format!("listing temporary blobs: {e}")))?;
        let cutoff = SystemTime::now()
            .checked_sub(temp_max_age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        for temp in listed.into_iter().filter(|t| t.modified <= cutoff) {
            let (blobs, rt) = (self.blobs.clone(), tokio::runtime::Handle::current());
            let (key, dry_run) = (temp.key.clone(), report.dry_run);
            let outcome = if self.actors.exists(&temp.did) {
                self.actors
                    .run(&temp.did, move |st| {
                        if st.store.temp_key_in_use(&key).map_err(store_error)? {
                            return Ok(false);
                        }
                        if !dry_run {
                            rt.block_on(blobs.delete_temp(&st.did, &key)).map_err(|e| {
                                XrpcError::internal(format!("deleting temporary blob: {e}"))
                            })?;
                        }
                        Ok(true)
                    })
                    .await
            } else {
                // No store, so no row can ever name it (a deleted account's leftovers).
                if dry_run {
                    Ok(true)
                } else {
                    self.blobs
                        .delete_temp(&temp.did, &key)
                        .await
                        .map(|()| true)
                        .map_err(|e| XrpcError::internal(format!("deleting temporary blob: {e}")))
                }
            };
            match outcome {
                Ok(true) => report.orphan_files_deleted += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(did = %temp.did, key = %temp.key, "blob gc: {e}");
                    report.errors += 1;
                }
            }
        }
        Ok(())
    }

    /// The DIDs of every account store under the actors directory
    /// (`<actors>/<2 hex>/<did>/store.sqlite`).
    async fn actor_dids(&self) -> Result<Vec<Did>, XrpcError> {
        let dir = self.actors.dir().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let mut dids = Vec::new();
            let Ok(shards) = std::fs::read_dir(&dir) else {
                return dids;
            };
            for shard in shards.flatten() {
                let Ok(entries) = std::fs::read_dir(shard.path()) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    if let Some(did) = name.to_str().and_then(|n| n.parse::<Did>().ok())
                        && entry.path().join("store.sqlite").is_file()
                    {
                        dids.push(did);
                    }
                }
            }
            dids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            dids
        })
        .await
        .map_err(|e| XrpcError::internal(format!("listing accounts: {e}")))
    }

    /// Starts the periodic collection (`PDS_BLOB_GC_INTERVAL_SECS`; `None` when it is 0).
    /// The first run is one interval after start, so a restart loop cannot hammer the store.
    pub fn spawn_blob_gc(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let interval = self.config.service.blob_gc_interval?;
        let age = self.config.service.blob_gc_temp_age;
        let pds = self.clone();
        Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                match pds.collect_blob_garbage(age, false).await {
                    Ok(r) => tracing::info!(
                        temp = r.temp_deleted,
                        unreferenced = r.unreferenced_deleted,
                        orphans = r.orphan_files_deleted,
                        errors = r.errors,
                        "blob gc finished"
                    ),
                    Err(e) => tracing::warn!("blob gc failed: {e}"),
                }
            }
        }))
    }
}

/// Deletes a collected blob's bytes: its temporary object (if it had one) and any permanent
/// copy (a failed write may have moved the bytes before its commit was refused).
fn delete_bytes(
    rt: &tokio::runtime::Handle,
    blobs: &dyn crate::blob::BlobStore,
    did: &Did,
    cid: &Cid,
    temp_key: Option<&str>,
) -> Result<(), BlobError> {
    if let Some(key) = temp_key {
        rt.block_on(blobs.delete_temp(did, key))?;
    }
    rt.block_on(blobs.delete(did, cid))
}
