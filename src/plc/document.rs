//! A DID's current state (what `GET /{did}/data` returns) and its W3C DID document rendering.
//!
//! Invariants:
//! - [`DocumentData`] serializes with the reference directory's field names and order:
//!   `did, verificationMethods, rotationKeys, alsoKnownAs, services`.
//! - [`DocumentData::to_did_document`] renders as the reference directory does: the DID core
//!   and Multikey contexts first, then one context per recognised signing-key curve; each
//!   verification method is a `Multikey` whose id is `<did>#<name>`; each service id is
//!   `#<name>`. Rendering never fails: an unrecognised key is still rendered, only without
//!   a curve context.

use crate::crypto::{Curve, PublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const CONTEXT_DID: &str = "https://www.w3.org/ns/did/v1";
const CONTEXT_MULTIKEY: &str = "https://w3id.org/security/multikey/v1";
const CONTEXT_P256: &str = "https://w3id.org/security/suites/ecdsa-2019/v1";
const CONTEXT_K256: &str = "https://w3id.org/security/suites/secp256k1-2019/v1";

/// One entry of an operation's `services` map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// The service type, e.g. `AtprotoPersonalDataServer`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The service URL, e.g. `https://pds.example.com`.
    pub endpoint: String,
}

/// The PLC state of an active (not tombstoned) DID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentData {
    pub did: String,
    pub verification_methods: BTreeMap<String, String>,
    pub rotation_keys: Vec<String>,
    pub also_known_as: Vec<String>,
    pub services: BTreeMap<String, Service>,
}

impl DocumentData {
    /// The atproto repo signing key (`verificationMethods.atproto`), as a did:key.
    pub fn signing_key(&self) -> Option<&str> {
        self.verification_methods.get("atproto").map(String::as_str)
    }

    /// The first `at://` alias without its prefix: the account's claimed handle.
    pub fn handle(&self) -> Option<&str> {
        self.also_known_as
            .iter()
            .find_map(|aka| aka.strip_prefix("at://"))
    }

    /// The atproto PDS endpoint (`services.atproto_pds.endpoint`).
    pub fn pds_endpoint(&self) -> Option<&str> {
        self.services
            .get("atproto_pds")
            .map(|s| s.endpoint.as_str())
    }

    /// Renders the W3C DID document served at `GET /{did}`.
    pub fn to_did_document(&self) -> Value {
        let mut context = vec![CONTEXT_DID, CONTEXT_MULTIKEY];
        let mut methods = Vec::with_capacity(self.verification_methods.len());
        for (name, key) in &self.verification_methods {
            // verificationMethods may hold any syntactically valid did:key (spec v0.2), so a
            // key we can't parse is still published, just without a suite context.
            let curve_context = PublicKey::from_did_key(key)
                .ok()
                .map(|pk| match pk.curve() {
                    Curve::P256 => CONTEXT_P256,
                    Curve::K256 => CONTEXT_K256,
                });
            if let Some(ctx) = curve_context
                && !context.contains(&ctx)
            {
                context.push(ctx);
            }
            let multibase = key.strip_prefix("did:key:").unwrap_or(key);
            methods.push(json!({
                "id": format!("{}#{name}", self.did),
                "type": "Multikey",
                "controller": self.did,
                "publicKeyMultibase": multibase,
            }));
        }
        let services: Vec<Value> = self
            .services
            .iter()
            .map(|(name, s)| {
                json!({
                    "id": format!("#{name}"),
                    "type": s.kind,
                    "serviceEndpoint": s.endpoint,
                })
            })
            .collect();
        json!({
            "@context": context,
            "id": self.did,
            "alsoKnownAs": self.also_known_as,
            "verificationMethod": methods,
            "service": services,
        })
    }
}
