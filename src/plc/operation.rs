//! did:plc operations: typed formats, DAG-CBOR encoding, signing, verification, CIDs, DIDs.
//!
//! Invariants:
//! - [`SignedOp::from_json`] accepts exactly the three operation formats of the spec
//!   (`plc_operation`, `plc_tombstone`, legacy `create`), with every required field present
//!   (`prev` included, `null` for a genesis) and no other field. Everything signed is therefore
//!   in the typed value, and [`SignedOp::to_cbor`] reproduces the bytes the signer hashed.
//! - The unsigned encoding is the signed one without the `sig` key (absent, not `null`).
//! - `sig` is base64url with no `=` padding and zero trailing bits, and decodes to exactly 64
//!   bytes; verification rejects high-S signatures (via [`PublicKey::verify`]).
//! - `prev` is compared as a CID and must be written in its canonical base32 form, so one
//!   operation has one `prev` spelling.
//! - The DID of a genesis op is `did:plc:` + the first 24 characters of the lowercase
//!   base32 of sha256(signed DAG-CBOR).

use super::document::{DocumentData, Service};
use super::{MAX_OP_BYTES, PlcError};
use crate::crypto::{Keypair, PublicKey};
use crate::data::{Cid, Ipld, cbor, cbor_cid};
use crate::syntax::Handle;
use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Longest JSON string value echoed back inside an error message.
const ECHO_LIMIT: usize = 80;

/// A regular operation (genesis when `prev` is `None`), without its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlcOperation {
    /// did:keys allowed to sign the next operation, highest authority first.
    pub rotation_keys: Vec<String>,
    /// Named public keys (did:key) published in the DID document; `atproto` is the repo key.
    pub verification_methods: BTreeMap<String, String>,
    /// Aliases, `at://<handle>` first for atproto accounts.
    pub also_known_as: Vec<String>,
    /// Named service endpoints; `atproto_pds` is the account's PDS.
    pub services: BTreeMap<String, Service>,
    /// CID (base32 string) of the operation this one follows; `None` for a genesis.
    pub prev: Option<String>,
}

/// An operation that permanently deactivates the DID (after the recovery window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlcTombstone {
    /// CID of the operation this one follows.
    pub prev: String,
}

/// The deprecated genesis format, still found at the start of old logs (`prev` is always null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyCreate {
    pub signing_key: String,
    pub recovery_key: String,
    /// Bare handle, without `at://`.
    pub handle: String,
    /// PDS URL.
    pub service: String,
}

/// Any operation, without its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsignedOp {
    Plc(PlcOperation),
    Tombstone(PlcTombstone),
    LegacyCreate(LegacyCreate),
}

/// An operation with its `sig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedOp {
    pub op: UnsignedOp,
    /// base64url (no padding) of the 64-byte `r‖s` signature over the unsigned DAG-CBOR.
    pub sig: String,
}

impl PlcOperation {
    /// The genesis op a PDS creates for a new account: `rotation_keys` (highest authority
    /// first; the PDS's own rotation key is normally last), the account's repo signing key,
    /// its handle and the PDS URL.
    pub fn atproto_genesis(
        rotation_keys: Vec<String>,
        signing_key: &PublicKey,
        handle: &Handle,
        pds_endpoint: &str,
    ) -> PlcOperation {
        let mut op = PlcOperation {
            rotation_keys,
            verification_methods: BTreeMap::new(),
            also_known_as: vec![format!("at://{}", handle.as_str())],
            services: BTreeMap::new(),
            prev: None,
        };
        op.set_signing_key(signing_key);
        op.set_pds_endpoint(pds_endpoint);
        op
    }

    /// An update that keeps every field of `last` and points `prev` at it; adjust it with the
    /// setters, then [`PlcOperation::sign`]. A tombstone has no successor.
    pub fn update_from(last: &SignedOp) -> Result<PlcOperation, PlcError> {
        let mut next = last.state().ok_or_else(|| {
            PlcError::Misordered("the last operation is a tombstone; the DID is deactivated".into())
        })?;
        next.prev = Some(last.cid()?.to_string());
        Ok(next)
    }

    /// Replaces the first `at://` alias with the new handle (or puts one first if none).
    pub fn set_handle(&mut self, handle: &Handle) {
        let aka = format!("at://{}", handle.as_str());
        match self
            .also_known_as
            .iter()
            .position(|a| a.starts_with("at://"))
        {
            Some(i) => self.also_known_as[i] = aka,
            None => self.also_known_as.insert(0, aka),
        }
    }

    /// Sets `services.atproto_pds`.
    pub fn set_pds_endpoint(&mut self, endpoint: &str) {
        self.services.insert(
            "atproto_pds".into(),
            Service {
                kind: "AtprotoPersonalDataServer".into(),
                endpoint: endpoint.to_string(),
            },
        );
    }

    /// Sets `verificationMethods.atproto` (the repo signing key).
    pub fn set_signing_key(&mut self, key: &PublicKey) {
        self.verification_methods
            .insert("atproto".into(), key.to_did_key());
    }

    /// Signs with `key`, which must be one of the rotation keys that may sign this op (the
    /// op's own for a genesis, `prev`'s otherwise).
    pub fn sign(self, key: &Keypair) -> Result<SignedOp, PlcError> {
        UnsignedOp::Plc(self).sign(key)
    }

    /// The data of a DID whose latest operation is this one.
    pub fn to_document_data(&self, did: &str) -> DocumentData {
        DocumentData {
            did: did.to_string(),
            verification_methods: self.verification_methods.clone(),
            rotation_keys: self.rotation_keys.clone(),
            also_known_as: self.also_known_as.clone(),
            services: self.services.clone(),
        }
    }
}

impl PlcTombstone {
    /// A tombstone following the operation with CID `prev`.
    pub fn new(prev: &Cid) -> PlcTombstone {
        PlcTombstone {
            prev: prev.to_string(),
        }
    }

    /// Signs with a rotation key of `prev`.
    pub fn sign(self, key: &Keypair) -> Result<SignedOp, PlcError> {
        UnsignedOp::Tombstone(self).sign(key)
    }
}

impl LegacyCreate {
    /// The regular-format equivalent, as the reference normalises it: the recovery key
    /// outranks the signing key, and bare handle / host gain their `at://` / `https://`.
    pub fn normalize(&self) -> PlcOperation {
        let mut verification_methods = BTreeMap::new();
        verification_methods.insert("atproto".to_string(), self.signing_key.clone());
        let mut services = BTreeMap::new();
        services.insert(
            "atproto_pds".to_string(),
            Service {
                kind: "AtprotoPersonalDataServer".into(),
                endpoint: ensure_http_prefix(&self.service),
            },
        );
        PlcOperation {
            rotation_keys: vec![self.recovery_key.clone(), self.signing_key.clone()],
            verification_methods,
            also_known_as: vec![ensure_at_prefix(&self.handle)],
            services,
            prev: None,
        }
    }
}

fn ensure_http_prefix(s: &str) -> String {
    if s.starts_with("http://") || s.starts_with("https://") {
        s.to_string()
    } else {
        format!("https://{s}")
    }
}

fn ensure_at_prefix(s: &str) -> String {
    if s.starts_with("at://") {
        return s.to_string();
    }
    // The reference strips the first occurrence of each scheme, wherever it is.
    let stripped = s.replacen("http://", "", 1).replacen("https://", "", 1);
    format!("at://{stripped}")
}

impl UnsignedOp {
    /// `prev`, if any (a genesis has none).
    pub fn prev(&self) -> Option<&str> {
        match self {
            UnsignedOp::Plc(op) => op.prev.as_deref(),
            UnsignedOp::Tombstone(t) => Some(&t.prev),
            UnsignedOp::LegacyCreate(_) => None,
        }
    }

    fn to_ipld(&self) -> BTreeMap<String, Ipld> {
        let s = |v: &str| Ipld::String(v.to_string());
        let list = |v: &[String]| Ipld::List(v.iter().map(|x| s(x)).collect());
        let mut m = BTreeMap::new();
        match self {
            UnsignedOp::Plc(op) => {
                m.insert("type".into(), s("plc_operation"));
                m.insert("rotationKeys".into(), list(&op.rotation_keys));
                m.insert(
                    "verificationMethods".into(),
                    Ipld::Map(
                        op.verification_methods
                            .iter()
                            .map(|(k, v)| (k.clone(), s(v)))
                            .collect(),
                    ),
                );
                m.insert("alsoKnownAs".into(), list(&op.also_known_as));
                m.insert(
                    "services".into(),
                    Ipld::Map(
                        op.services
                            .iter()
                            .map(|(k, v)| {
                                let mut svc = BTreeMap::new();
                                svc.insert("type".to_string(), s(&v.kind));
                                svc.insert("endpoint".to_string(), s(&v.endpoint));
                                (k.clone(), Ipld::Map(svc))
                            })
                            .collect(),
                    ),
                );
                m.insert("prev".into(), op.prev.as_deref().map_or(Ipld::Null, s));
            }
            UnsignedOp::Tombstone(t) => {
                m.insert("type".into(), s("plc_tombstone"));
                m.insert("prev".into(), s(&t.prev));
            }
            UnsignedOp::LegacyCreate(c) => {
                m.insert("type".into(), s("create"));
                m.insert("signingKey".into(), s(&c.signing_key));
                m.insert("recoveryKey".into(), s(&c.recovery_key));
                m.insert("handle".into(), s(&c.handle));
                m.insert("service".into(), s(&c.service));
                m.insert("prev".into(), Ipld::Null);
            }
        }
        m
    }

    /// The DAG-CBOR bytes that are signed: the operation without `sig`.
    pub fn to_cbor(&self) -> Result<Vec<u8>, PlcError> {
        encode(self.to_ipld())
    }

    /// Signs the unsigned encoding with `key` (low-S, base64url without padding).
    pub fn sign(self, key: &Keypair) -> Result<SignedOp, PlcError> {
        let bytes = self.to_cbor()?;
        let sig = BASE64URL_NOPAD.encode(key.sign(&bytes).as_bytes());
        Ok(SignedOp { op: self, sig })
    }

    fn to_json_map(&self) -> Map<String, Value> {
        let mut m = Map::new();
        match self {
            UnsignedOp::Plc(op) => {
                m.insert("type".into(), json!("plc_operation"));
                m.insert("rotationKeys".into(), json!(op.rotation_keys));
                m.insert("verificationMethods".into(), json!(op.verification_methods));
                m.insert("alsoKnownAs".into(), json!(op.also_known_as));
                m.insert("services".into(), json!(op.services));
                m.insert("prev".into(), json!(op.prev));
            }
            UnsignedOp::Tombstone(t) => {
                m.insert("type".into(), json!("plc_tombstone"));
                m.insert("prev".into(), json!(t.prev));
            }
            UnsignedOp::LegacyCreate(c) => {
                m.insert("type".into(), json!("create"));
                m.insert("signingKey".into(), json!(c.signing_key));
                m.insert("recoveryKey".into(), json!(c.recovery_key));
                m.insert("handle".into(), json!(c.handle));
                m.insert("service".into(), json!(c.service));
                m.insert("prev".into(), Value::Null);
            }
        }
        m
    }
}

fn encode(map: BTreeMap<String, Ipld>) -> Result<Vec<u8>, PlcError> {
    // `to_vec` rather than `cbor::encode`: an op is not an atproto record, so the record
    // data-model checks (`$type`, blob shapes) must not apply to its map keys.
    cbor::to_vec(&Ipld::Map(map))
        .map_err(|e| PlcError::Malformed(format!("cannot encode as DAG-CBOR: {e}")))
}

impl SignedOp {
    /// Parses an operation from its JSON form (strictly; see the module invariants).
    pub fn from_json(value: &Value) -> Result<SignedOp, PlcError> {
        let obj = value
            .as_object()
            .ok_or_else(|| malformed("an operation must be a JSON object"))?;
        let kind = str_field(obj, "type")?;
        let allowed: &[&str] = match kind {
            "plc_operation" => &[
                "type",
                "rotationKeys",
                "verificationMethods",
                "alsoKnownAs",
                "services",
                "prev",
                "sig",
            ],
            "plc_tombstone" => &["type", "prev", "sig"],
            "create" => &[
                "type",
                "signingKey",
                "recoveryKey",
                "handle",
                "service",
                "prev",
                "sig",
            ],
            other => {
                return Err(malformed(format!(
                    "unknown type {} (expected plc_operation, plc_tombstone or create)",
                    echo(other)
                )));
            }
        };
        if let Some(extra) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(malformed(format!(
                "unexpected field {} in a {kind} operation",
                echo(extra)
            )));
        }
        let op = match kind {
            "plc_operation" => UnsignedOp::Plc(PlcOperation {
                rotation_keys: str_list(obj, "rotationKeys")?,
                verification_methods: str_map(obj, "verificationMethods")?,
                also_known_as: str_list(obj, "alsoKnownAs")?,
                services: services(obj)?,
                prev: nullable_str(obj, "prev")?,
            }),
            "plc_tombstone" => UnsignedOp::Tombstone(PlcTombstone {
                prev: str_field(obj, "prev")?.to_string(),
            }),
            _ => {
                if nullable_str(obj, "prev")?.is_some() {
                    return Err(malformed("a legacy create operation must have prev: null"));
                }
                UnsignedOp::LegacyCreate(LegacyCreate {
                    signing_key: str_field(obj, "signingKey")?.to_string(),
                    recovery_key: str_field(obj, "recoveryKey")?.to_string(),
                    handle: str_field(obj, "handle")?.to_string(),
                    service: str_field(obj, "service")?.to_string(),
                })
            }
        };
        if let Some(prev) = op.prev() {
            parse_prev(prev)?;
        }
        let sig = str_field(obj, "sig")?.to_string();
        Ok(SignedOp { op, sig })
    }

    /// Parses an operation from JSON bytes.
    pub fn from_json_slice(bytes: &[u8]) -> Result<SignedOp, PlcError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| malformed(format!("invalid JSON: {e}")))?;
        SignedOp::from_json(&value)
    }

    /// The JSON form (what is POSTed to and served by a directory).
    pub fn to_json(&self) -> Value {
        let mut m = self.op.to_json_map();
        m.insert("sig".into(), Value::String(self.sig.clone()));
        Value::Object(m)
    }

    /// The signed DAG-CBOR bytes (hashed for the CID and the DID).
    pub fn to_cbor(&self) -> Result<Vec<u8>, PlcError> {
        let mut map = self.op.to_ipld();
        map.insert("sig".into(), Ipld::String(self.sig.clone()));
        encode(map)
    }

    /// The operation's CID (dag-cbor, sha2-256), used as the next op's `prev`.
    pub fn cid(&self) -> Result<Cid, PlcError> {
        Ok(cbor_cid(&self.to_cbor()?))
    }

    /// Fails when the signed encoding is over [`MAX_OP_BYTES`].
    pub fn check_size(&self) -> Result<(), PlcError> {
        let len = self.to_cbor()?.len();
        if len > MAX_OP_BYTES {
            return Err(PlcError::TooLarge(len));
        }
        Ok(())
    }

    /// `prev`, if any.
    pub fn prev(&self) -> Option<&str> {
        self.op.prev()
    }

    /// `prev` as a CID, if any (it was checked when parsing or building).
    pub fn prev_cid(&self) -> Result<Option<Cid>, PlcError> {
        self.prev().map(parse_prev).transpose()
    }

    /// Whether this is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        matches!(self.op, UnsignedOp::Tombstone(_))
    }

    /// The DID state this operation sets, in the regular format (`None` for a tombstone).
    pub fn state(&self) -> Option<PlcOperation> {
        match &self.op {
            UnsignedOp::Plc(op) => Some(op.clone()),
            UnsignedOp::LegacyCreate(c) => Some(c.normalize()),
            UnsignedOp::Tombstone(_) => None,
        }
    }

    /// The DID a genesis operation defines. Only meaningful for a genesis (no `prev`).
    pub fn did(&self) -> Result<String, PlcError> {
        let digest = Sha256::digest(self.to_cbor()?);
        let b32 = BASE32_NOPAD.encode(&digest).to_ascii_lowercase();
        Ok(format!("did:plc:{}", &b32[..24]))
    }

    /// The 64 signature bytes, decoded strictly.
    pub fn signature_bytes(&self) -> Result<[u8; 64], PlcError> {
        decode_sig(&self.sig)
    }

    /// Checks the signature against `keys` (did:keys, in priority order) and returns the index
    /// of the first key that verifies it.
    pub fn verify(&self, keys: &[String]) -> Result<usize, PlcError> {
        let sig = self.signature_bytes()?;
        let msg = self.op.to_cbor()?;
        let mut last_error = None;
        for (i, key) in keys.iter().enumerate() {
            // A key that can't be parsed can't have signed; skipping it keeps the search going.
            match PublicKey::from_did_key(key).and_then(|pk| pk.verify(&msg, &sig)) {
                Ok(()) => return Ok(i),
                Err(e) => last_error = Some(e),
            }
        }
        Err(PlcError::InvalidSignature(match last_error {
            None => "there is no rotation key that may sign this operation".into(),
            Some(e) => format!(
                "none of the {} allowed rotation key(s) verifies it (last error: {e})",
                keys.len()
            ),
        }))
    }

    /// The limits a directory applies to a new operation (the reference directory's, except
    /// rotation keys, which follow the spec: 1 to 5 distinct k256/p256 did:keys). Audit-log
    /// replay doesn't apply these: old logs hold ops accepted under looser rules.
    pub fn check_constraints(&self) -> Result<(), PlcError> {
        self.check_size()?;
        let op = match &self.op {
            UnsignedOp::Plc(op) => op,
            UnsignedOp::Tombstone(_) => return Ok(()),
            UnsignedOp::LegacyCreate(_) => {
                return Err(PlcError::Constraint(
                    "legacy create operations are no longer accepted; use plc_operation".into(),
                ));
            }
        };
        let c = |m: String| Err(PlcError::Constraint(m));
        if op.also_known_as.len() > 10 {
            return c("too many alsoKnownAs entries (max 10)".into());
        }
        let mut seen = BTreeSet::new();
        for aka in &op.also_known_as {
            if aka.len() > 258 {
                return c(format!(
                    "alsoKnownAs entry too long (max 258): {}",
                    echo(aka)
                ));
            }
            if !seen.insert(aka) {
                return c(format!("duplicate alsoKnownAs entry: {}", echo(aka)));
            }
        }
        if op.rotation_keys.is_empty() || op.rotation_keys.len() > 5 {
            return c(format!(
                "rotationKeys must hold 1 to 5 keys, found {}",
                op.rotation_keys.len()
            ));
        }
        let mut seen = BTreeSet::new();
        for key in &op.rotation_keys {
            if let Err(e) = PublicKey::from_did_key(key) {
                return c(format!("invalid rotationKey {}: {e}", echo(key)));
            }
            if !seen.insert(key) {
                return c(format!("duplicate rotationKey: {}", echo(key)));
            }
        }
        if op.services.len() > 10 {
            return c("too many service entries (max 10)".into());
        }
        for (id, svc) in &op.services {
            if id.len() > 32 {
                return c(format!("service id too long (max 32): {}", echo(id)));
            }
            if svc.kind.len() > 256 {
                return c("service type too long (max 256)".into());
            }
            if svc.endpoint.len() > 512 {
                return c("service endpoint too long (max 512)".into());
            }
        }
        if op.verification_methods.len() > 10 {
            return c("too many verificationMethods entries (max 10)".into());
        }
        for (id, key) in &op.verification_methods {
            if id.len() > 32 {
                return c(format!(
                    "verificationMethod id too long (max 32): {}",
                    echo(id)
                ));
            }
            if key.len() > 256 {
                return c("verificationMethod key too long (max 256)".into());
            }
            // Any key type is allowed here (spec v0.2); only the did:key syntax is checked.
            let valid = key
                .strip_prefix("did:key:z")
                .is_some_and(|b58| !b58.is_empty() && b58.bytes().all(is_base58btc));
            if !valid {
                return c(format!("invalid verificationMethod key: {}", echo(key)));
            }
        }
        Ok(())
    }
}

fn is_base58btc(b: u8) -> bool {
    b.is_ascii_alphanumeric() && !matches!(b, b'0' | b'O' | b'I' | b'l')
}

fn decode_sig(sig: &str) -> Result<[u8; 64], PlcError> {
    let bad = |why: &str| PlcError::InvalidSignature(format!("sig {}: {why}", echo(sig)));
    // 64 bytes are 86 base64 characters without padding; anything else is not a raw r‖s.
    if sig.len() != 86 {
        return Err(bad("is not 86 base64url characters (a 64-byte signature)"));
    }
    if !sig
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(bad(
            "has characters outside the base64url alphabet (padding and whitespace are not allowed)",
        ));
    }
    // BASE64URL_NOPAD rejects non-zero trailing bits, which would give one signature two spellings.
    let bytes = BASE64URL_NOPAD
        .decode(sig.as_bytes())
        .map_err(|e| bad(&format!("is not strict base64url ({e})")))?;
    bytes
        .try_into()
        .map_err(|_| bad("does not decode to 64 bytes"))
}

/// Parses a `prev` CID, requiring the canonical spelling (CIDv1, base32, dag-cbor, sha2-256).
pub fn parse_prev(prev: &str) -> Result<Cid, PlcError> {
    let cid = Cid::try_from(prev)
        .map_err(|e| malformed(format!("prev {} is not a CID: {e}", echo(prev))))?;
    let canonical = cid.version() == cid::Version::V1
        && cid.codec() == crate::data::DAG_CBOR
        && cid.hash().code() == crate::data::SHA2_256
        && cid.hash().size() == 32
        && cid.to_string() == prev;
    if !canonical {
        return Err(malformed(format!(
            "prev {} is not a base32 CIDv1 dag-cbor sha2-256",
            echo(prev)
        )));
    }
    Ok(cid)
}

/// One entry of an audit log (`GET /{did}/log/audit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub did: String,
    pub operation: SignedOp,
    /// The CID as recorded by the directory (a validator recomputes and compares it).
    pub cid: String,
    pub nullified: bool,
    /// `YYYY-MM-DDTHH:mm:ss.sssZ`.
    pub created_at: String,
}

impl LogEntry {
    /// Parses one entry; fields other than the five known ones are ignored (they're unsigned).
    pub fn from_json(value: &Value) -> Result<LogEntry, PlcError> {
        let obj = value
            .as_object()
            .ok_or_else(|| malformed("a log entry must be a JSON object"))?;
        let operation = obj
            .get("operation")
            .ok_or_else(|| malformed("log entry has no operation"))?;
        Ok(LogEntry {
            did: str_field(obj, "did")?.to_string(),
            operation: SignedOp::from_json(operation)?,
            cid: str_field(obj, "cid")?.to_string(),
            nullified: obj
                .get("nullified")
                .and_then(Value::as_bool)
                .ok_or_else(|| malformed("log entry field nullified must be a boolean"))?,
            created_at: str_field(obj, "createdAt")?.to_string(),
        })
    }

    /// Parses a whole audit log (a JSON array of entries).
    pub fn parse_log(value: &Value) -> Result<Vec<LogEntry>, PlcError> {
        value
            .as_array()
            .ok_or_else(|| malformed("an audit log must be a JSON array"))?
            .iter()
            .map(LogEntry::from_json)
            .collect()
    }

    /// The JSON form, as served by `GET /{did}/log/audit`.
    pub fn to_json(&self) -> Value {
        json!({
            "did": self.did,
            "operation": self.operation.to_json(),
            "cid": self.cid,
            "nullified": self.nullified,
            "createdAt": self.created_at,
        })
    }
}

fn malformed(msg: impl Into<String>) -> PlcError {
    PlcError::Malformed(msg.into())
}

/// Quotes untrusted text for an error message, cut short so errors stay small.
fn echo(s: &str) -> String {
    let cut: String = s.chars().take(ECHO_LIMIT).collect();
    if cut.len() < s.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

fn str_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a str, PlcError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(malformed(format!("field {key} must be a string"))),
        None => Err(malformed(format!("missing field {key}"))),
    }
}

fn nullable_str(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, PlcError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Null) => Ok(None),
        Some(_) => Err(malformed(format!("field {key} must be a string or null"))),
        // Spec: "the key should actually be part of the object, with value null".
        None => Err(malformed(format!(
            "missing field {key} (use null for none)"
        ))),
    }
}

fn str_list(obj: &Map<String, Value>, key: &str) -> Result<Vec<String>, PlcError> {
    let items = obj
        .get(key)
        .ok_or_else(|| malformed(format!("missing field {key}")))?
        .as_array()
        .ok_or_else(|| malformed(format!("field {key} must be an array")))?;
    items
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| malformed(format!("every entry of {key} must be a string")))
        })
        .collect()
}

fn str_map(obj: &Map<String, Value>, key: &str) -> Result<BTreeMap<String, String>, PlcError> {
    let map = obj
        .get(key)
        .ok_or_else(|| malformed(format!("missing field {key}")))?
        .as_object()
        .ok_or_else(|| malformed(format!("field {key} must be an object")))?;
    map.iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|s| (k.clone(), s.to_string()))
                .ok_or_else(|| malformed(format!("{key}.{} must be a string", echo(k))))
        })
        .collect()
}

fn services(obj: &Map<String, Value>) -> Result<BTreeMap<String, Service>, PlcError> {
    let map = obj
        .get("services")
        .ok_or_else(|| malformed("missing field services"))?
        .as_object()
        .ok_or_else(|| malformed("field services must be an object"))?;
    let mut out = BTreeMap::new();
    for (name, v) in map {
        let svc = v
            .as_object()
            .ok_or_else(|| malformed(format!("services.{} must be an object", echo(name))))?;
        if let Some(extra) = svc.keys().find(|k| *k != "type" && *k != "endpoint") {
            return Err(malformed(format!(
                "unexpected field {} in services.{}",
                echo(extra),
                echo(name)
            )));
        }
        out.insert(
            name.clone(),
            Service {
                kind: str_field(svc, "type")?.to_string(),
                endpoint: str_field(svc, "endpoint")?.to_string(),
            },
        );
    }
    Ok(out)
}
