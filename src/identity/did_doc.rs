//! DID documents and the atproto facts read out of them: signing key, PDS endpoint, handle.
//!
//! Parsing is tolerant: unknown fields are kept (so a cached document round-trips unchanged),
//! and missing optional fields default to empty. The atproto helpers then apply the spec's
//! rules and simply return `None` when no entry qualifies, because an account with a broken
//! document is still an account (the DID stays the identifier).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::crypto::PublicKey;
use crate::syntax::{Did, Handle};

use super::IdentityError;

/// A DID document as served by PLC or a did:web host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DidDocument {
    pub id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_known_as: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verification_method: Vec<VerificationMethod>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service: Vec<Service>,
    /// Everything else (`@context`, `controller`, ...), kept for round-tripping.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One `verificationMethod` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMethod {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub controller: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_multibase: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One `service` entry. `serviceEndpoint` may be a string, an object or an array in general
/// DID documents, so it stays a JSON value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub service_endpoint: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl DidDocument {
    /// Parses a document from JSON bytes; `did` only names the document in the error.
    pub fn from_json(did: &str, bytes: &[u8]) -> Result<DidDocument, IdentityError> {
        serde_json::from_slice(bytes).map_err(|source| IdentityError::MalformedDocument {
            did: did.to_owned(),
            source,
        })
    }

    /// Checks that the document is about `did`. The spec requires this after every resolution:
    /// otherwise a did:web host or a compromised directory could serve another account's keys.
    pub fn check_id(&self, did: &Did) -> Result<(), IdentityError> {
        if self.id == did.as_str() {
            Ok(())
        } else {
            Err(IdentityError::IdMismatch {
                expected: did.as_str().to_owned(),
                found: self.id.chars().take(2048).collect(),
            })
        }
    }

    /// Whether an entry `id` names `fragment` of this document, in relative (`#atproto`) or
    /// fully qualified (`did:...#atproto`) form; the spec requires accepting both.
    fn is_fragment(&self, id: &str, fragment: &str) -> bool {
        match id.split_once('#') {
            Some((base, frag)) => frag == fragment && (base.is_empty() || base == self.id),
            None => false,
        }
    }

    /// The atproto repository signing key: the first `#atproto` verification method that
    /// parses, in `Multikey` or a legacy (`EcdsaSecp256{k,r}1VerificationKey2019`) form.
    /// Entries whose controller names another DID are skipped (the key must be the account's own).
    pub fn atproto_signing_key(&self) -> Option<PublicKey> {
        self.verification_method
            .iter()
            .filter(|vm| self.is_fragment(&vm.id, "atproto"))
            .filter(|vm| vm.controller.is_empty() || vm.controller == self.id)
            .find_map(|vm| {
                let multibase = vm.public_key_multibase.as_deref()?;
                PublicKey::from_verification_method(&vm.type_, multibase).ok()
            })
    }

    /// The account's PDS: the first `#atproto_pds` service of type `AtprotoPersonalDataServer`
    /// whose endpoint is an http(s) URL with a host.
    pub fn pds_endpoint(&self) -> Option<&str> {
        self.service_endpoint("atproto_pds", "AtprotoPersonalDataServer")
    }

    /// The first service with fragment `fragment` and type `type_` whose endpoint is an http(s)
    /// URL with a host (e.g. `atproto_labeler` / `AtprotoLabeler`).
    pub fn service_endpoint(&self, fragment: &str, type_: &str) -> Option<&str> {
        self.service
            .iter()
            .filter(|s| self.is_fragment(&s.id, fragment) && s.type_ == type_)
            .find_map(|s| {
                let endpoint = s.service_endpoint.as_str()?;
                let url = reqwest::Url::parse(endpoint).ok()?;
                let ok = matches!(url.scheme(), "http" | "https") && url.host_str().is_some();
                ok.then_some(endpoint)
            })
    }

    /// The claimed handle: the first `alsoKnownAs` entry of the form `at://<valid handle>`,
    /// lowercased. Claimed only: the caller must still check it resolves back to this DID.
    pub fn handle(&self) -> Option<Handle> {
        self.also_known_as.iter().find_map(|aka| {
            let rest = aka.strip_prefix("at://")?;
            rest.parse::<Handle>().ok().map(|h| h.normalize())
        })
    }

    /// The document as JSON text (what the cache stores).
    pub fn to_json(&self) -> Result<String, IdentityError> {
        serde_json::to_string(self).map_err(|source| IdentityError::MalformedDocument {
            did: self.id.clone(),
            source,
        })
    }
}
