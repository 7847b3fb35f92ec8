//! Compact JWS tokens: HS256 session tokens and ES256K/ES256 inter-service auth tokens.
//!
//! Invariants:
//! - Every token is capped at [`MAX_TOKEN_LEN`] bytes before anything is decoded, and no input
//!   makes these functions panic.
//! - HS256 (access `at+jwt` / refresh `refresh+jwt`) goes through `jsonwebtoken` with the
//!   algorithm pinned to exactly HS256 and the header `typ` checked against the caller's
//!   expectation, so an access token is never accepted as a refresh token or vice versa.
//! - Claim checks: `jsonwebtoken`'s own time and audience validation is switched off (it reads
//!   the wall clock and adds 60 s of leeway). [`verify_hs256_at`] instead requires an integer
//!   `exp` and checks it with [`check_exp`] against a caller-supplied `now`; [`verify_hs256`]
//!   is the same with the system clock. `aud`, `sub` and `scope` are the caller's business.
//! - ES256K/ES256 are hand-rolled on [`crate::crypto`] because `jsonwebtoken` has no ES256K
//!   and its ES256 neither produces nor enforces low-S. Signatures are 64-byte `r‖s` over
//!   SHA-256 of `b64url(header).b64url(claims)`; every one we produce is low-S, and
//!   [`verify_service`] rejects high-S, DER, and an `alg` that does not match the key's curve.
//!   [`verify_service`] checks only the signature; the caller then checks `exp`/`aud`/`lxm`,
//!   e.g. with [`ServiceClaims::check`], after resolving `iss` (see [`decode_unverified`]).
//! - Segments are base64url without padding, decoded strictly (no `=`, no `+`/`/`, no
//!   non-zero trailing bits), so each token has exactly one accepted spelling.

use data_encoding::BASE64URL_NOPAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crypto::{CryptoError, Curve, Keypair, PublicKey};

/// Largest token accepted by any function here, in bytes.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Header `typ` of session access tokens.
pub const TYP_ACCESS: &str = "at+jwt";
/// Header `typ` of session refresh tokens.
pub const TYP_REFRESH: &str = "refresh+jwt";
/// Header `typ` of inter-service tokens.
pub const TYP_SERVICE: &str = "JWT";

/// Header `typ` values that belong to other token kinds and so must never pass as service
/// auth (domain separation; the reference verifier rejects the same set).
const NON_SERVICE_TYPS: [&str; 3] = ["at+jwt", "refresh+jwt", "dpop+jwt"];

/// Why a token could not be made or was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("token is {0} bytes, over the {MAX_TOKEN_LEN}-byte limit")]
    TooLong(usize),
    #[error("token has {0} segments, expected 3 (header.payload.signature)")]
    Segments(usize),
    #[error("{0} segment is empty")]
    EmptySegment(&'static str),
    #[error("{0} segment is not unpadded base64url")]
    Base64(&'static str),
    #[error("{segment} is not valid JSON: {msg}")]
    Json { segment: &'static str, msg: String },
    #[error("{0} is not a JSON object")]
    NotObject(&'static str),
    #[error("header has \"crit\" extensions, which are not supported")]
    CritHeader,
    #[error("unsupported alg {0:?}")]
    UnsupportedAlg(String),
    #[error("alg {alg} does not match the {curve} key (expected {})", curve.jwt_alg())]
    AlgMismatch { alg: String, curve: Curve },
    #[error("header typ is {found:?}, expected {expected:?}")]
    WrongTyp {
        expected: String,
        found: Option<String>,
    },
    #[error(transparent)]
    Signature(#[from] CryptoError),
    #[error("HS256 token rejected: {0}")]
    Hs256(String),
    #[error("HMAC secret is empty")]
    EmptySecret,
    #[error("exp claim is missing or not an integer")]
    MissingExp,
    #[error("token expired at {exp} (now {now})")]
    Expired { exp: i64, now: i64 },
    #[error("claims do not have the expected shape: {0}")]
    Claims(String),
    #[error("aud is {found:?}, expected {expected:?}")]
    AudMismatch { expected: String, found: String },
    #[error("lxm is {found:?}, expected {expected:?}")]
    LxmMismatch {
        expected: String,
        found: Option<String>,
    },
}

pub type Result<T, E = JwtError> = std::result::Result<T, E>;

/// Keep attacker-chosen strings in error messages short.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Current UNIX time in seconds.
pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `Ok` while `now < exp` (RFC 7519: the current time must be before `exp`); no leeway.
pub fn check_exp(exp: i64, now: i64) -> Result<()> {
    if now >= exp {
        return Err(JwtError::Expired { exp, now });
    }
    Ok(())
}

fn check_len(token: &str) -> Result<()> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::TooLong(token.len()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// HS256 (session tokens)

/// Sign `claims` with HS256 under header `{"typ": typ, "alg": "HS256"}`.
pub fn sign_hs256(typ: &str, claims: &impl Serialize, secret: &[u8]) -> Result<String> {
    if secret.is_empty() {
        return Err(JwtError::EmptySecret);
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some(typ.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .map_err(|e| JwtError::Hs256(e.to_string()))
}

/// [`verify_hs256_at`] with the system clock.
pub fn verify_hs256<T: DeserializeOwned>(
    token: &str,
    secret: &[u8],
    expected_typ: &str,
) -> Result<T> {
    verify_hs256_at(token, secret, expected_typ, now_unix())
}

/// Verify an HS256 token: alg exactly HS256, header `typ` exactly `expected_typ`, valid MAC,
/// and an integer `exp` claim later than `now`. Returns the claims as `T`.
pub fn verify_hs256_at<T: DeserializeOwned>(
    token: &str,
    secret: &[u8],
    expected_typ: &str,
    now: i64,
) -> Result<T> {
    check_len(token)?;
    if secret.is_empty() {
        return Err(JwtError::EmptySecret);
    }
    // Pin the algorithm; switch off jsonwebtoken's clock-based checks (we do exp ourselves,
    // without leeway and with an injectable clock) and its aud check (caller's business).
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.algorithms = vec![jsonwebtoken::Algorithm::HS256];
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    let data = jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(secret),
        &validation,
    )
    .map_err(|e| JwtError::Hs256(e.to_string()))?;
    // Belt and braces: `validation.algorithms` already enforces this.
    if data.header.alg != jsonwebtoken::Algorithm::HS256 {
        return Err(JwtError::UnsupportedAlg(format!("{:?}", data.header.alg)));
    }
    if data.header.typ.as_deref() != Some(expected_typ) {
        return Err(JwtError::WrongTyp {
            expected: expected_typ.to_owned(),
            found: data.header.typ.as_deref().map(clip),
        });
    }
    let Value::Object(_) = &data.claims else {
        return Err(JwtError::NotObject("payload"));
    };
    let exp = data
        .claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(JwtError::MissingExp)?;
    check_exp(exp, now)?;
    serde_json::from_value(data.claims).map_err(|e| JwtError::Claims(e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// ES256K / ES256 (inter-service auth)

/// The JOSE header fields service auth cares about. Unknown fields are ignored, except `crit`,
/// which is rejected (RFC 7515 §4.1.11: we implement no extensions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

/// Claims of an atproto inter-service auth token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceClaims {
    /// DID of the account the request is made on behalf of.
    pub iss: String,
    /// DID (plus `#service` fragment) of the receiving service.
    pub aud: String,
    /// Expiry, UNIX seconds.
    pub exp: i64,
    /// Issued-at, UNIX seconds.
    pub iat: i64,
    /// NSID of the one XRPC method this token authorises.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lxm: Option<String>,
    /// Random nonce for replay protection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

impl ServiceClaims {
    /// Claims issued at `now`, valid for `ttl_secs` (the spec suggests 60), with a random
    /// 128-bit hex `jti`.
    pub fn new(iss: &str, aud: &str, lxm: Option<&str>, now: i64, ttl_secs: i64) -> ServiceClaims {
        ServiceClaims {
            iss: iss.to_owned(),
            aud: aud.to_owned(),
            exp: now.saturating_add(ttl_secs),
            iat: now,
            lxm: lxm.map(str::to_owned),
            jti: Some(data_encoding::HEXLOWER.encode(&rand::random::<[u8; 16]>())),
        }
    }

    /// The receiver-side checks after [`verify_service`]: not expired at `now`, `aud` exactly
    /// `expected_aud`, and if the endpoint has an NSID, `lxm` present and equal to it.
    /// Replay protection via `jti` needs state and is left to the caller.
    pub fn check(&self, now: i64, expected_aud: &str, expected_lxm: Option<&str>) -> Result<()> {
        check_exp(self.exp, now)?;
        if self.aud != expected_aud {
            return Err(JwtError::AudMismatch {
                expected: expected_aud.to_owned(),
                found: clip(&self.aud),
            });
        }
        if let Some(expected) = expected_lxm
            && self.lxm.as_deref() != Some(expected)
        {
            return Err(JwtError::LxmMismatch {
                expected: expected.to_owned(),
                found: self.lxm.as_deref().map(clip),
            });
        }
        Ok(())
    }
}

fn b64(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

/// Sign `claims` (must serialise to a JSON object) with header
/// `{"typ":"JWT","alg":"ES256K"|"ES256"}` chosen by the key's curve.
pub fn sign_service(keypair: &Keypair, claims: &impl Serialize) -> Result<String> {
    let claims = serde_json::to_value(claims).map_err(|e| JwtError::Claims(e.to_string()))?;
    if !claims.is_object() {
        return Err(JwtError::NotObject("payload"));
    }
    // `alg` is one of two fixed ASCII names, so formatting needs no escaping.
    let header = format!(
        r#"{{"typ":"{TYP_SERVICE}","alg":"{}"}}"#,
        keypair.curve().jwt_alg()
    );
    let payload = serde_json::to_vec(&claims).map_err(|e| JwtError::Claims(e.to_string()))?;
    let signing_input = format!("{}.{}", b64(header.as_bytes()), b64(&payload));
    let sig = keypair.sign(signing_input.as_bytes());
    Ok(format!("{signing_input}.{}", b64(sig.as_bytes())))
}

/// A token split and decoded, signature not yet checked.
struct Parsed<'a> {
    header: Header,
    claims: Value,
    /// `header.payload` exactly as it appears in the token: that's what was signed.
    signing_input: &'a str,
    signature: Vec<u8>,
}

fn decode_segment(seg: &str, name: &'static str) -> Result<Vec<u8>> {
    if seg.is_empty() {
        return Err(JwtError::EmptySegment(name));
    }
    BASE64URL_NOPAD
        .decode(seg.as_bytes())
        .map_err(|_| JwtError::Base64(name))
}

fn decode_json_object(bytes: &[u8], name: &'static str) -> Result<serde_json::Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(JwtError::NotObject(name)),
        Err(e) => Err(JwtError::Json {
            segment: name,
            msg: e.to_string(),
        }),
    }
}

fn parse(token: &str) -> Result<Parsed<'_>> {
    check_len(token)?;
    let parts: Vec<&str> = token.split('.').collect();
    let [h, p, s] = parts[..] else {
        return Err(JwtError::Segments(parts.len()));
    };
    let header = decode_json_object(&decode_segment(h, "header")?, "header")?;
    if header.contains_key("crit") {
        return Err(JwtError::CritHeader);
    }
    let header: Header =
        serde_json::from_value(Value::Object(header)).map_err(|e| JwtError::Json {
            segment: "header",
            msg: e.to_string(),
        })?;
    let claims = Value::Object(decode_json_object(
        &decode_segment(p, "payload")?,
        "payload",
    )?);
    let signature = decode_segment(s, "signature")?;
    Ok(Parsed {
        header,
        claims,
        signing_input: &token[..h.len() + 1 + p.len()],
        signature,
    })
}

/// Split and decode a token without checking its signature, so a verifier can read `iss`
/// (and `kid`) to find the key. Never trust the result on its own.
pub fn decode_unverified(token: &str) -> Result<(Header, Value)> {
    let parsed = parse(token)?;
    Ok((parsed.header, parsed.claims))
}

/// Verify a service token against `key`: `alg` must name the key's curve, `typ` must not be a
/// session/DPoP type, and the signature must be 64-byte low-S ECDSA over SHA-256 of the
/// signing input. Returns the claims as `T`; time, audience and `lxm` checks are the caller's
/// (see [`ServiceClaims::check`]).
pub fn verify_service<T: DeserializeOwned>(token: &str, key: &PublicKey) -> Result<T> {
    let parsed = parse(token)?;
    let alg = parsed.header.alg.as_str();
    let curve = Curve::from_jwt_alg(alg).ok_or_else(|| JwtError::UnsupportedAlg(clip(alg)))?;
    if curve != key.curve() {
        return Err(JwtError::AlgMismatch {
            alg: alg.to_owned(),
            curve: key.curve(),
        });
    }
    if let Some(typ) = parsed.header.typ.as_deref()
        && NON_SERVICE_TYPS.iter().any(|t| t.eq_ignore_ascii_case(typ))
    {
        return Err(JwtError::WrongTyp {
            expected: TYP_SERVICE.to_owned(),
            found: Some(clip(typ)),
        });
    }
    key.verify(parsed.signing_input.as_bytes(), &parsed.signature)?;
    serde_json::from_value(parsed.claims).map_err(|e| JwtError::Claims(e.to_string()))
}
