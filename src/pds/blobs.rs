//! Blob uploads, downloads and `listMissingBlobs`: what `uploadBlob`, `sync.getBlob` and
//! `listMissingBlobs` call.
//!
//! Invariants:
//! - An upload streams through [`crate::blob::upload`]; the body is never held whole.
//! - Every change to an account's `blob` rows happens under its actor lock
//!   ([`super::actors::Actors::run`]), so it is ordered with that account's commits and with
//!   garbage collection. An upload's row is recorded, and (for a blob a record already
//!   references) its bytes made permanent, in one locked step.
//! - A recorded temporary row always names bytes that existed when it was recorded: the
//!   temporary object is checked under the lock, which orphan-file collection also takes
//!   before deleting an unrecorded temporary object.
//! - Only permanent, not taken-down blobs are served.

use super::Pds;
use super::actors::store_error;
use crate::blob::{BlobContent, UploadError};
use crate::data::Cid;
use crate::store::actor_blobs::UploadRecorded;
use crate::syntax::Did;
use crate::xrpc::XrpcError;
use axum::http::StatusCode;
use bytes::Bytes;
use futures_util::Stream;
use std::error::Error as StdError;

/// An uploaded blob's `blob` ref fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedBlobRef {
    pub cid: Cid,
    pub mime_type: String,
    pub size: u64,
}

/// A blob to send: its stored MIME type and content.
#[derive(Debug)]
pub struct BlobDownload {
    pub mime_type: String,
    pub content: BlobContent,
}

impl Pds {
    /// `uploadBlob`: streams `body` into a temporary blob of `did` and records it.
    pub async fn upload_blob<S, E>(
        &self,
        did: &Did,
        body: S,
        content_type: Option<&str>,
    ) -> Result<UploadedBlobRef, XrpcError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let account = self.account(did).await?;
        if account.takedown_ref.is_some() {
            return Err(super::account_taken_down());
        }
        let limit = self.config.service.blob_upload_limit;
        let uploaded = crate::blob::upload(&*self.blobs, did, body, limit, content_type)
            .await
            .map_err(upload_error)?;
        let (blobs, rt) = (self.blobs.clone(), tokio::runtime::Handle::current());
        let up = uploaded.clone();
        let recorded = self
            .actors
            .run_quick(did, move |st| {
                let outcome = st
                    .store
                    .record_upload(&up.cid, &up.mime_type, up.size, &up.temp_key)
                    .map_err(store_error)?;
                if let UploadRecorded::Referenced = outcome {
                    super::actors::block_on(
                        &rt,
                        blobs.make_permanent(&st.did, &up.temp_key, &up.cid),
                    )
                    .map_err(|e| XrpcError::internal(format!("making blob permanent: {e}")))?;
                    st.store
                        .mark_blob_permanent(&up.cid, &up.temp_key)
                        .map_err(store_error)?;
                }
                Ok(outcome)
            })
            .await;
        // A redundant temporary file is removed in the background: the response need not wait
        // for it, and garbage collection removes it if this fails.
        let drop_temp = |key: String| {
            let (blobs, did) = (self.blobs.clone(), did.clone());
            tokio::spawn(async move {
                if let Err(e) = blobs.delete_temp(&did, &key).await {
                    tracing::warn!(%did, "dropping a redundant temporary upload: {e}");
                }
            });
        };
        // Orphan collection may have removed the object before its row existed. It deletes
        // only objects no row names, checking under the account's lock, so once the row is in
        // the answer cannot change: the check runs after the lock is released. A missing
        // object is an error only if the row still names it: another upload of the same bytes
        // may have taken the row over (and dropped this object), or a record made the blob
        // permanent.
        if let Ok(UploadRecorded::Temporary { .. }) = &recorded
            && !self
                .blobs
                .has_temp(did, &uploaded.temp_key)
                .await
                .map_err(|e| XrpcError::internal(format!("checking upload: {e}")))?
        {
            let (cid, key) = (uploaded.cid, uploaded.temp_key.clone());
            let forgotten = self
                .actors
                .run_quick(did, move |st| {
                    st.store.forget_upload(&cid, &key).map_err(store_error)
                })
                .await?;
            if forgotten {
                return Err(XrpcError::internal(
                    "temporary upload vanished before it was recorded",
                ));
            }
        }
        match recorded {
            Err(e) => {
                drop_temp(uploaded.temp_key.clone());
                return Err(e);
            }
            Ok(UploadRecorded::TakenDown) => {
                drop_temp(uploaded.temp_key.clone());
                return Err(XrpcError::invalid_request(
                    "Blob has been takendown, cannot re-upload",
                ));
            }
            Ok(UploadRecorded::AlreadyPermanent) => drop_temp(uploaded.temp_key.clone()),
            Ok(UploadRecorded::Temporary {
                replaced_key: Some(old),
            }) => drop_temp(old),
            Ok(UploadRecorded::Temporary { replaced_key: None } | UploadRecorded::Referenced) => {}
        }
        Ok(UploadedBlobRef {
            cid: uploaded.cid,
            mime_type: uploaded.mime_type,
            size: uploaded.size,
        })
    }

    /// `sync.getBlob`: a stored, permanent, not taken-down blob of an available repo.
    /// `viewer` is the authenticated caller, if any: an account may read its own blobs while
    /// deactivated or taken down.
    pub async fn get_blob(
        &self,
        did: &Did,
        cid: &Cid,
        viewer: Option<&Did>,
    ) -> Result<BlobDownload, XrpcError> {
        // InvalidRequest, not the lexicon's BlobNotFound: what the reference answers.
        let not_found = || XrpcError::invalid_request("Blob not found");
        let account = self.find_account(did.as_str()).await?.ok_or_else(|| {
            XrpcError::bad_request(
                "RepoNotFound",
                format!("Could not find repo for DID: {did}"),
            )
        })?;
        if viewer != Some(&account.did) {
            if account.takedown_ref.is_some() {
                return Err(XrpcError::bad_request(
                    "RepoTakendown",
                    format!("Repo has been takendown: {did}"),
                ));
            }
            if account.deactivated_at.is_some() {
                return Err(XrpcError::bad_request(
                    "RepoDeactivated",
                    format!("Repo has been deactivated: {did}"),
                ));
            }
        }
        let c = *cid;
        let row = self
            .actors
            .run(did, move |st| st.store.blob(&c).map_err(store_error))
            .await?;
        let Some(row) = row.filter(|r| r.takedown_ref.is_none() && r.temp_key.is_none()) else {
            return Err(not_found());
        };
        let content = self
            .blobs
            .get(did, cid)
            .await
            .map_err(|e| XrpcError::internal(format!("reading blob: {e}")))?
            .ok_or_else(not_found)?;
        Ok(BlobDownload {
            mime_type: row.mime_type,
            content,
        })
    }

    /// `listMissingBlobs`: blobs the account's records reference that were never uploaded.
    pub async fn list_missing_blobs(
        &self,
        did: &Did,
        limit: usize,
        cursor: Option<String>,
    ) -> Result<Vec<(Cid, String)>, XrpcError> {
        self.actors
            .run(did, move |st| {
                st.store
                    .list_missing_blobs(limit, cursor.as_deref())
                    .map_err(store_error)
            })
            .await
    }
}

/// The XRPC error an upload failure becomes (`UploadError` names the reference's errors).
fn upload_error(e: UploadError) -> XrpcError {
    let (status, name) = e.xrpc_status_and_name();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() && name == "InternalServerError" {
        return XrpcError::internal(format!("blob upload: {e}"));
    }
    XrpcError::new(status, name, e.to_string())
}
