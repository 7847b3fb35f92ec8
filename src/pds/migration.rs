//! The identity half of a migration in: what the DID document should say for this PDS to host
//! the account (`getRecommendedDidCredentials`), and submitting the PLC operation that says it
//! (`submitPlcOperation`).
//!
//! Invariant: we only forward a PLC operation that keeps this PDS able to serve and manage the
//! identity — our rotation key stays in `rotationKeys`, the PDS service is ours, the atproto key
//! is the account's key here, and the handle is the account's — so a user can't use us to put
//! their identity in a state we can't support. Whether the operation may follow the DID's log
//! (signature by an allowed rotation key, `prev`, the recovery window) is the directory's call.

use super::Pds;
use super::actors::store_error;
use crate::plc::operation::{SignedOp, UnsignedOp};
use crate::sequencer::{Event, frames};
use crate::syntax::Did;
use crate::xrpc::XrpcError;
use serde_json::{Value, json};

/// The `atproto_pds` service type.
const PDS_SERVICE_TYPE: &str = "AtprotoPersonalDataServer";

impl Pds {
    /// The account's repo signing key here, as a `did:key`.
    async fn account_signing_did_key(&self, did: &Did) -> Result<String, XrpcError> {
        let (actors, d) = (self.actors.dir().to_path_buf(), did.clone());
        let key = tokio::task::spawn_blocking(move || {
            crate::store::actor::read_signing_key(&actors, d.as_str())
        })
        .await
        .map_err(|e| XrpcError::internal(format!("key task: {e}")))?
        .map_err(store_error)?;
        Ok(key.public_key().to_did_key())
    }

    /// This PDS's PLC rotation key, as a `did:key`.
    fn rotation_did_key(&self) -> String {
        self.config
            .secrets
            .plc_rotation_key
            .public_key()
            .to_did_key()
    }

    /// `getRecommendedDidCredentials`: the DID document fields that make this PDS the host.
    pub async fn recommended_did_credentials(&self, did: &Did) -> Result<Value, XrpcError> {
        let account = self.account(did).await?;
        let signing_key = self.account_signing_did_key(did).await?;
        let also_known_as: Vec<String> = account
            .handle
            .iter()
            .map(|h| format!("at://{}", h.as_str()))
            .collect();
        let mut rotation_keys = Vec::new();
        if let Some(recovery) = &self.config.identity.recovery_did_key {
            rotation_keys.push(recovery.clone());
        }
        rotation_keys.push(self.rotation_did_key());
        Ok(json!({
            "alsoKnownAs": also_known_as,
            "verificationMethods": { "atproto": signing_key },
            "rotationKeys": rotation_keys,
            "services": {
                "atproto_pds": {
                    "type": PDS_SERVICE_TYPE,
                    "endpoint": self.config.service.public_url,
                }
            },
        }))
    }

    /// `submitPlcOperation`: checks the signed operation keeps this PDS the account's host (see
    /// the module invariant), sends it to the PLC directory, announces `#identity`, and
    /// refreshes the cached DID document.
    pub async fn submit_plc_operation(
        &self,
        did: &Did,
        operation: &Value,
    ) -> Result<(), XrpcError> {
        if !did.is_plc() {
            return Err(XrpcError::invalid_request(
                "Only did:plc identities are updated through a PLC directory",
            ));
        }
        let signed = SignedOp::from_json(operation)
            .map_err(|e| XrpcError::invalid_request(format!("Invalid operation: {e}")))?;
        let UnsignedOp::Plc(op) = &signed.op else {
            return Err(XrpcError::invalid_request(
                "Invalid operation: expected a plc_operation",
            ));
        };
        if !op.rotation_keys.contains(&self.rotation_did_key()) {
            return Err(XrpcError::invalid_request(
                "Rotation keys do not include server's rotation key",
            ));
        }
        let pds = op.services.get("atproto_pds");
        if pds.map(|s| s.kind.as_str()) != Some(PDS_SERVICE_TYPE) {
            return Err(XrpcError::invalid_request(
                "Incorrect type on atproto_pds service",
            ));
        }
        if pds.map(|s| s.endpoint.as_str()) != Some(self.config.service.public_url.as_str()) {
            return Err(XrpcError::invalid_request(
                "Incorrect endpoint on atproto_pds service",
            ));
        }
        let signing_key = self.account_signing_did_key(did).await?;
        if op.verification_methods.get("atproto") != Some(&signing_key) {
            return Err(XrpcError::invalid_request("Incorrect signing key"));
        }
        let account = self.account(did).await?;
        if let Some(handle) = &account.handle
            && op.also_known_as.first() != Some(&format!("at://{}", handle.as_str()))
        {
            return Err(XrpcError::invalid_request(
                "Incorrect handle in alsoKnownAs",
            ));
        }
        self.plc
            .submit(did.as_str(), &signed)
            .await
            .map_err(|e| match e.status() {
                // The directory judged the operation itself: the client's to fix.
                Some(status) if status < 500 => XrpcError::invalid_request(e.to_string()),
                _ => XrpcError::upstream_failure(e.to_string()),
            })?;
        self.sequence(vec![Event {
            did: did.to_string(),
            kind: frames::EventKind::Identity,
            body: frames::identity_body(did.as_str(), None),
        }])
        .await;
        if let Err(e) = self.dids.resolve_fresh(did).await {
            // The directory has the operation; a stale cache entry ages out on its own.
            tracing::warn!(did = %did, error = %e, "refreshing the DID cache after a PLC update");
        }
        Ok(())
    }
}
