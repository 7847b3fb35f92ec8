//! Account status changes and the firehose events they owe relays: `deactivateAccount`,
//! `activateAccount`, `checkAccountStatus`.
//!
//! Invariant: each change is stored first, then sequenced in the reference's order
//! (deactivate: `#account`; activate: `#account`, `#identity`, `#sync`), so a relay never
//! hears of a state the account store doesn't hold.

use super::Pds;
use super::actors::store_error;
use crate::sequencer::{Event, frames};
use crate::syntax::Did;
use crate::xrpc::XrpcError;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

impl Pds {
    /// `deactivateAccount`: the account stops being served publicly; login and export still
    /// work. `delete_after` is stored, as the reference, and not acted on.
    pub async fn deactivate_account(
        &self,
        did: &Did,
        delete_after: Option<DateTime<Utc>>,
    ) -> Result<(), XrpcError> {
        let d = did.clone();
        self.accounts(move |s| s.deactivate(&d, delete_after))
            .await?;
        let account = self.account(did).await?;
        let status = if account.takedown_ref.is_some() {
            "takendown"
        } else {
            "deactivated"
        };
        self.sequence(vec![Event {
            did: did.to_string(),
            kind: frames::EventKind::Account,
            body: frames::account_body(did.as_str(), false, Some(status)),
        }])
        .await;
        Ok(())
    }

    /// `activateAccount`: only once the DID document names this PDS and the account's key;
    /// then `#account`, `#identity` and a `#sync` of the current commit.
    pub async fn activate_account(&self, did: &Did) -> Result<(), XrpcError> {
        let account = self.account(did).await?;
        if account.takedown_ref.is_some() {
            return Err(XrpcError::bad_request("NotFound", "user not found"));
        }
        if let Some(problem) = self.did_document_problem(did).await? {
            return Err(XrpcError::invalid_request(problem));
        }
        let d = did.clone();
        self.accounts(move |s| s.activate(&d)).await?;
        let (commit_cid, rev, commit_block) = self
            .actors
            .run(did, |st| {
                let root = st
                    .store
                    .root()
                    .map_err(store_error)?
                    .ok_or_else(|| XrpcError::internal("account has no repo"))?;
                let block = st
                    .store
                    .block(&root.cid)
                    .map_err(store_error)?
                    .ok_or_else(|| XrpcError::internal("commit block missing"))?;
                Ok((root.cid, root.rev, block))
            })
            .await?;
        let d = did.as_str();
        let handle = account.handle.as_ref().map(|h| h.as_str().to_string());
        self.sequence(vec![
            Event {
                did: d.to_string(),
                kind: frames::EventKind::Account,
                body: frames::account_body(d, true, None),
            },
            Event {
                did: d.to_string(),
                kind: frames::EventKind::Identity,
                body: frames::identity_body(d, handle.as_deref()),
            },
            Event {
                did: d.to_string(),
                kind: frames::EventKind::Sync,
                body: frames::sync_body(d, &rev, &commit_cid, &commit_block),
            },
        ])
        .await;
        Ok(())
    }

    /// Why the DID document does not (yet) make this PDS the account's host, if it doesn't:
    /// the PDS endpoint must be ours and the atproto key the account's key here; for did:plc
    /// our rotation key must also be listed (so we can keep updating the identity).
    pub async fn did_document_problem(&self, did: &Did) -> Result<Option<String>, XrpcError> {
        let key = {
            let (actors, d) = (self.actors.dir().to_path_buf(), did.clone());
            tokio::task::spawn_blocking(move || {
                crate::store::actor::read_signing_key(&actors, d.as_str())
            })
            .await
            .map_err(|e| XrpcError::internal(format!("key task: {e}")))?
            .map_err(store_error)?
            .public_key()
            .to_did_key()
        };
        let ours = &self.config.service.public_url;
        if did.is_plc() {
            let data = self
                .plc
                .get_document_data(did.as_str())
                .await
                .map_err(|e| XrpcError::upstream_failure(format!("PLC directory: {e}")))?;
            let rotation = self
                .config
                .secrets
                .plc_rotation_key
                .public_key()
                .to_did_key();
            if !data.rotation_keys.contains(&rotation) {
                return Ok(Some(
                    "DID document rotation keys do not include this PDS's rotation key".into(),
                ));
            }
            if data.pds_endpoint() != Some(ours.as_str()) {
                return Ok(Some("DID document does not point to this PDS".into()));
            }
            if data.signing_key() != Some(key.as_str()) {
                return Ok(Some(
                    "DID document signing key does not match the account's key".into(),
                ));
            }
            return Ok(None);
        }
        let doc = self
            .dids
            .resolve_fresh(did)
            .await
            .map_err(|e| XrpcError::upstream_failure(format!("resolving {did}: {e}")))?;
        if doc.pds_endpoint() != Some(ours.as_str()) {
            return Ok(Some("DID document does not point to this PDS".into()));
        }
        if doc.atproto_signing_key().map(|k| k.to_did_key()) != Some(key) {
            return Ok(Some(
                "DID document signing key does not match the account's key".into(),
            ));
        }
        Ok(None)
    }

    /// `checkAccountStatus`, with real counts from the account's store.
    pub async fn check_account_status(&self, did: &Did) -> Result<Value, XrpcError> {
        let account = self.account(did).await?;
        let valid_did = self
            .did_document_problem(did)
            .await
            .ok()
            .flatten()
            .is_none();
        let counts = self
            .actors
            .run(did, |st| {
                let root = st.store.root().map_err(store_error)?;
                let blocks = st.store.block_count().map_err(store_error)?;
                let records = st.store.record_count().map_err(store_error)?;
                let (expected, imported) = st.store.blob_counts().map_err(store_error)?;
                Ok((root, blocks, records, expected, imported))
            })
            .await?;
        let (root, blocks, records, expected_blobs, imported_blobs) = counts;
        Ok(json!({
            "activated": account.deactivated_at.is_none(),
            "validDid": valid_did,
            "repoCommit": root.as_ref().map(|r| r.cid.to_string()),
            "repoRev": root.as_ref().map(|r| r.rev.clone()),
            "repoBlocks": blocks,
            "indexedRecords": records,
            "privateStateValues": 0,
            "expectedBlobs": expected_blobs,
            "importedBlobs": imported_blobs,
        }))
    }
}
