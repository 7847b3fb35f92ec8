//! Handles: resolving them (`resolveHandle`) and changing an account's (`updateHandle`).

use super::{Pds, handle_policy};
use crate::plc::operation::PlcOperation;
use crate::syntax::{Did, Handle};
use crate::xrpc::XrpcError;

fn not_found() -> XrpcError {
    XrpcError::bad_request("HandleNotFound", "Unable to resolve handle")
}

impl Pds {
    /// Local accounts first; handles on our own domains end there; others go to DNS/HTTPS.
    pub async fn resolve_handle(&self, input: &str) -> Result<Did, XrpcError> {
        let handle: Handle = input
            .trim()
            .to_ascii_lowercase()
            .parse()
            .map_err(|e| XrpcError::invalid_request(format!("Invalid handle: {e}")))?;
        let h = handle.clone();
        let local = self.accounts(move |s| s.get_account_by_handle(&h)).await?;
        if let Some(account) = local.filter(|a| a.is_active()) {
            return Ok(account.did);
        }
        // Handles on our own domains (or the bare domain) are ours alone: no outside lookup.
        let domains = &self.config.identity.service_handle_domains;
        if handle_policy::service_domain(handle.as_str(), domains).is_some()
            || domains.contains(&format!(".{}", handle.as_str()))
        {
            return Err(not_found());
        }
        match self.handles.resolve(&handle).await {
            Ok(Some(did)) => Ok(did),
            Ok(None) => Err(not_found()),
            Err(e) => {
                tracing::debug!(handle = %handle, error = %e, "handle resolution failed");
                Err(not_found())
            }
        }
    }

    /// Points `did`'s identity at `input`: checks the handle, updates the PLC document (signed
    /// with the PDS rotation key), then the account. Retrying after a partial failure is safe:
    /// the PLC step is skipped when the document already holds the handle.
    pub async fn update_handle(&self, did: &Did, input: &str) -> Result<Handle, XrpcError> {
        // As written first (the reference's lexicon check), then normalized.
        Handle::try_from(input)
            .map_err(|e| XrpcError::invalid_request(format!("Invalid handle: {e}")))?;
        let normalized = input.trim().to_ascii_lowercase();
        let handle = match handle_policy::check_service_handle(
            &normalized,
            &self.config.identity.service_handle_domains,
        ) {
            Ok(h) => h,
            Err(handle_policy::HandlePolicyError::UnsupportedDomain(_)) => {
                // A custom domain: it must already resolve to this DID.
                let h: Handle = normalized.parse().map_err(|e| {
                    XrpcError::bad_request("InvalidHandle", format!("Invalid handle: {e}"))
                })?;
                if h.has_disallowed_tld() {
                    return Err(XrpcError::bad_request(
                        "InvalidHandle",
                        "Handle TLD is invalid or disallowed",
                    ));
                }
                match self.handles.resolve(&h).await {
                    Ok(Some(resolved)) if resolved == *did => h,
                    _ => {
                        return Err(XrpcError::invalid_request(
                            "External handle did not resolve to DID",
                        ));
                    }
                }
            }
            Err(e) => return Err(XrpcError::bad_request(e.error_name(), e.to_string())),
        };

        let (h, d) = (handle.clone(), did.clone());
        let taken = self
            .accounts(move |s| Ok(s.get_account_by_handle(&h)?.is_some_and(|a| a.did != d)))
            .await?;
        if taken {
            return Err(XrpcError::bad_request(
                "HandleNotAvailable",
                "Handle already taken",
            ));
        }

        if did.is_plc() {
            let last = self
                .plc
                .get_last_op(did.as_str())
                .await
                .map_err(|e| XrpcError::upstream_failure(format!("PLC directory: {e}")))?;
            let mut next = PlcOperation::update_from(&last)
                .map_err(|e| XrpcError::invalid_request(format!("PLC: {e}")))?;
            let aka = format!("at://{}", handle.as_str());
            if next.also_known_as.first() != Some(&aka) {
                next.set_handle(&handle);
                let op = next
                    .sign(&self.config.secrets.plc_rotation_key)
                    .map_err(|e| XrpcError::invalid_request(format!("PLC: {e}")))?;
                self.plc
                    .submit(did.as_str(), &op)
                    .await
                    .map_err(|e| XrpcError::upstream_failure(format!("PLC directory: {e}")))?;
            }
        }
        let (h, d) = (handle.clone(), did.clone());
        self.accounts(move |s| s.update_handle(&d, &h)).await?;
        // Always, even when unchanged: clients retry updateHandle to re-publish it.
        self.sequence(vec![crate::sequencer::Event {
            did: did.to_string(),
            kind: crate::sequencer::frames::EventKind::Identity,
            body: crate::sequencer::frames::identity_body(did.as_str(), Some(handle.as_str())),
        }])
        .await;
        Ok(handle)
    }
}
