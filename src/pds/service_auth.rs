//! Inter-service auth: minting tokens for the account (`getServiceAuth`) and verifying tokens
//! other services (or a user's old PDS) present to us.
//!
//! Invariants:
//! - A minted token is signed with the account's repo signing key, the key its DID document
//!   publishes as `#atproto`, so any service can check it against the document; `exp` is never
//!   in the past, at most an hour ahead, and at most a minute ahead when no `lxm` binds the
//!   token to one method.
//! - Protected methods (account, session and identity management) are never minted for, so a
//!   token handed to a third party can't drive this PDS's most sensitive routes; privileged
//!   methods need a password or privileged app-password session; a takendown session may only
//!   mint `createAccount` tokens (its way to migrate away).
//! - An incoming token passes only if it is unexpired, addressed to our service DID (exactly; no
//!   `#fragment`), bound to the route's NSID when the route names one, and signed by the key the
//!   issuer's DID document names. A signature failure re-resolves the document once, bypassing
//!   the cache, so a key rotated since we cached it doesn't lock the account out.
//! - Every refusal is the reference's 401 with its error name (`MissingJwt`, `BadJwt`,
//!   `BadJwtType`, `JwtExpired`, `BadJwtAudience`, `BadJwtLexiconMethod`, `BadJwtIss`,
//!   `BadJwtSignature`). There is no `jti` replay cache (the reference has none either); the
//!   short lifetime is the bound.

use super::Pds;
use crate::auth::{AuthScope, Credentials, parse_authorization};
use crate::crypto::PublicKey;
use crate::jwt::{self, ServiceClaims};
use crate::syntax::Did;
use crate::xrpc::XrpcError;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

/// Methods no service token may be minted for (the reference's `PROTECTED_METHODS`).
pub const PROTECTED_METHODS: [&str; 16] = [
    "com.atproto.admin.sendEmail",
    "com.atproto.identity.requestPlcOperationSignature",
    "com.atproto.identity.signPlcOperation",
    "com.atproto.identity.updateHandle",
    "com.atproto.server.activateAccount",
    "com.atproto.server.confirmEmail",
    "com.atproto.server.createAppPassword",
    "com.atproto.server.deactivateAccount",
    "com.atproto.server.getAccountInviteCodes",
    "com.atproto.server.getSession",
    "com.atproto.server.listAppPasswords",
    "com.atproto.server.requestAccountDelete",
    "com.atproto.server.requestEmailConfirmation",
    "com.atproto.server.requestEmailUpdate",
    "com.atproto.server.revokeAppPassword",
    "com.atproto.server.updateEmail",
];

/// Methods only a password or privileged app-password session may mint tokens for (the
/// reference's `PRIVILEGED_METHODS`: private chat and account creation elsewhere).
pub const PRIVILEGED_METHODS: [&str; 15] = [
    "chat.bsky.actor.deleteAccount",
    "chat.bsky.actor.exportAccountData",
    "chat.bsky.convo.deleteMessageForSelf",
    "chat.bsky.convo.getConvo",
    "chat.bsky.convo.getConvoForMembers",
    "chat.bsky.convo.getLog",
    "chat.bsky.convo.getMessages",
    "chat.bsky.convo.leaveConvo",
    "chat.bsky.convo.listConvos",
    "chat.bsky.convo.muteConvo",
    "chat.bsky.convo.sendMessage",
    "chat.bsky.convo.sendMessageBatch",
    "chat.bsky.convo.unmuteConvo",
    "chat.bsky.convo.updateRead",
    CREATE_ACCOUNT,
];

/// The one method a takendown session may mint for.
pub const CREATE_ACCOUNT: &str = "com.atproto.server.createAccount";

/// Lifetime of a token minted without an explicit `exp`.
pub const DEFAULT_TTL_SECS: i64 = 60;
/// Longest lifetime a method-less token may ask for.
const METHODLESS_MAX_TTL_SECS: i64 = 60;
/// Longest lifetime any token may ask for.
const MAX_TTL_SECS: i64 = 60 * 60;
/// Longest `aud` accepted (the Lexicon's limit).
const MAX_AUD_LEN: usize = 2048;

/// NSID sets compare case-insensitively, as the reference's.
fn listed(set: &[&str], nsid: &str) -> bool {
    set.iter().any(|m| m.eq_ignore_ascii_case(nsid))
}

/// The reference's `getServiceAuth` rules, before any key is touched; returns the token's `exp`.
pub fn check_service_auth_request(
    scope: AuthScope,
    aud: &str,
    exp: Option<i64>,
    lxm: Option<&str>,
    now: i64,
) -> Result<i64, XrpcError> {
    check_aud(aud)?;
    let exp = match exp {
        None => now.saturating_add(DEFAULT_TTL_SECS),
        Some(exp) => {
            let bad = |m: &str| Err(XrpcError::bad_request("BadExpiration", m));
            let diff = exp.saturating_sub(now);
            if diff < 0 {
                return bad("expiration is in past");
            }
            if diff > MAX_TTL_SECS {
                return bad(
                    "cannot request a token with an expiration more than an hour in the future",
                );
            }
            if lxm.is_none() && diff > METHODLESS_MAX_TTL_SECS {
                return bad(
                    "cannot request a method-less token with an expiration more than a minute in the future",
                );
            }
            exp
        }
    };
    if let Some(lxm) = lxm {
        if lxm.parse::<crate::syntax::Nsid>().is_err() {
            return Err(XrpcError::invalid_request("lxm must be a valid nsid"));
        }
        if listed(&PROTECTED_METHODS, lxm) {
            return Err(XrpcError::invalid_request(format!(
                "cannot request a service auth token for the following protected method: {lxm}"
            )));
        }
        let privileged = matches!(scope, AuthScope::Access | AuthScope::AppPassPrivileged);
        if listed(&PRIVILEGED_METHODS, lxm) && !privileged && scope != AuthScope::Takendown {
            return Err(XrpcError::invalid_request(format!(
                "insufficient access to request a service auth token for the following method: {lxm}"
            )));
        }
    }
    match scope {
        AuthScope::Access | AuthScope::AppPassPrivileged | AuthScope::AppPass => Ok(exp),
        // A takendown account may still leave: a createAccount token for its next PDS.
        AuthScope::Takendown if lxm.is_some_and(|m| m.eq_ignore_ascii_case(CREATE_ACCOUNT)) => {
            Ok(exp)
        }
        _ => Err(XrpcError::invalid_token("Bad token scope")),
    }
}

/// `aud`: a DID, optionally with one `#service` fragment (the reference mints whatever DID the
/// caller names; the receiving service decides whether the fragment form is acceptable).
fn check_aud(aud: &str) -> Result<(), XrpcError> {
    let bad = || XrpcError::invalid_request("aud must be a valid did");
    if aud.len() > MAX_AUD_LEN {
        return Err(bad());
    }
    let did = match aud.split_once('#') {
        None => aud,
        Some((did, fragment)) => {
            let ok = !fragment.is_empty()
                && fragment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:%-~".contains(&b));
            if !ok {
                return Err(bad());
            }
            did
        }
    };
    did.parse::<Did>().map(drop).map_err(|_| bad())
}

/// A 401 with the reference's service-auth error name.
fn refused(name: &str, message: impl Into<String>) -> XrpcError {
    XrpcError::new(StatusCode::UNAUTHORIZED, name, message)
}

fn bad_jwt() -> XrpcError {
    refused("BadJwt", "poorly formatted jwt")
}

/// The claims we need from an incoming token, read leniently (older issuers omit `iat`).
struct IncomingClaims {
    iss: String,
    aud: String,
    exp: i64,
    lxm: Option<String>,
}

fn incoming_claims(claims: &Value) -> Result<IncomingClaims, XrpcError> {
    let s = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(bad_jwt)?;
    let iss = s("iss").ok_or_else(bad_jwt)?;
    let aud = s("aud").unwrap_or_default();
    let lxm = match claims.get("lxm") {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) => Some(m.clone()),
        Some(_) => return Err(bad_jwt()),
    };
    Ok(IncomingClaims { iss, aud, exp, lxm })
}

/// The bearer token of a request, or `MissingJwt`.
pub fn bearer_token(headers: &HeaderMap) -> Result<String, XrpcError> {
    let missing = || refused("MissingJwt", "missing jwt");
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.to_str().map_err(|_| missing()))
        .transpose()?;
    match parse_authorization(header) {
        Ok(Some(Credentials::Bearer(token))) => Ok(token),
        _ => Err(missing()),
    }
}

/// The checks that need no key: header shape and `typ`, `exp`, `aud`, `lxm`, `iss`. Pure, so
/// the unit tests run without a network.
fn check_incoming(
    token: &str,
    service_did: &str,
    expected_lxm: Option<&str>,
    now: i64,
) -> Result<Did, XrpcError> {
    let (header, claims) = jwt::decode_unverified(token).map_err(|_| bad_jwt())?;
    if let Some(typ) = header.typ.as_deref()
        && ["at+jwt", "refresh+jwt", "dpop+jwt"]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(typ))
    {
        return Err(refused(
            "BadJwtType",
            format!(
                "Invalid jwt type \"{}\"",
                typ.chars().take(32).collect::<String>()
            ),
        ));
    }
    let claims = incoming_claims(&claims)?;
    if jwt::check_exp(claims.exp, now).is_err() {
        return Err(refused("JwtExpired", "jwt expired"));
    }
    if claims.aud != service_did {
        return Err(refused(
            "BadJwtAudience",
            "jwt audience does not match service did",
        ));
    }
    if let Some(expected) = expected_lxm
        && claims.lxm.as_deref() != Some(expected)
    {
        let what = if claims.lxm.is_some() {
            "bad"
        } else {
            "missing"
        };
        return Err(refused(
            "BadJwtLexiconMethod",
            format!("{what} jwt lexicon method (\"lxm\"). must match: {expected}"),
        ));
    }
    // Account-level service auth: the issuer is the account's DID itself. `did#service`
    // issuers (labelers) sign with other keys and speak for a service, not the account.
    claims
        .iss
        .parse::<Did>()
        .map_err(|_| refused("BadJwtIss", "jwt iss is not a valid did"))
}

impl Pds {
    /// `getServiceAuth`: a token for `aud` signed with the account's repo key (see the module
    /// invariants for the rules on `exp`, `lxm` and scopes).
    pub async fn get_service_auth(
        &self,
        did: &Did,
        scope: AuthScope,
        aud: &str,
        exp: Option<i64>,
        lxm: Option<&str>,
    ) -> Result<String, XrpcError> {
        let now = jwt::now_unix();
        let exp = check_service_auth_request(scope, aud, exp, lxm, now)?;
        let key = {
            let (actors, d) = (self.actors.dir().to_path_buf(), did.clone());
            tokio::task::spawn_blocking(move || {
                crate::store::actor::read_signing_key(&actors, d.as_str())
            })
            .await
            .map_err(|e| XrpcError::internal(format!("key task: {e}")))?
            .map_err(super::actors::store_error)?
        };
        let mut claims = ServiceClaims::new(did.as_str(), aud, lxm, now, DEFAULT_TTL_SECS);
        claims.exp = exp;
        jwt::sign_service(&key, &claims).map_err(|e| XrpcError::internal(format!("signing: {e}")))
    }

    /// Verifies the request's `Authorization: Bearer <service JWT>`: addressed to our service
    /// DID, unexpired, bound to `expected_lxm` when given, signed by the issuer's atproto key
    /// (re-resolved once on a signature failure). Returns the issuer.
    pub async fn verify_service_jwt(
        &self,
        headers: &HeaderMap,
        expected_lxm: Option<&str>,
    ) -> Result<Did, XrpcError> {
        let token = bearer_token(headers)?;
        let iss = check_incoming(
            &token,
            self.config.service.did.as_str(),
            expected_lxm,
            jwt::now_unix(),
        )?;
        let cached = self.issuer_key(&iss, false).await?;
        if verify_signature(&token, &cached).is_ok() {
            return Ok(iss);
        }
        // Maybe the key rotated since we cached the document: one fresh look.
        let fresh = self.issuer_key(&iss, true).await?;
        if fresh != cached && verify_signature(&token, &fresh).is_ok() {
            return Ok(iss);
        }
        Err(refused(
            "BadJwtSignature",
            "jwt signature does not match jwt issuer",
        ))
    }

    async fn issuer_key(&self, iss: &Did, fresh: bool) -> Result<PublicKey, XrpcError> {
        match self.dids.resolve_atproto_key(iss, fresh).await {
            Ok(Some(key)) => Ok(key),
            Ok(None) => Err(refused("BadJwtSignature", "missing or bad key in did doc")),
            Err(e) => {
                tracing::debug!(did = %iss, error = %e, "service auth: issuer not resolved");
                Err(refused(
                    "BadJwtSignature",
                    "could not resolve the jwt issuer",
                ))
            }
        }
    }
}

fn verify_signature(token: &str, key: &PublicKey) -> Result<(), jwt::JwtError> {
    jwt::verify_service::<Value>(token, key).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Curve, Keypair};

    const NOW: i64 = 1_800_000_000;
    const SVC: &str = "did:web:pds.example.com";
    const USER: &str = "did:plc:abcdefghijklmnopqrstuvwx";

    fn err_name(r: Result<i64, XrpcError>) -> String {
        r.map(|_| String::new()).unwrap_or_else(|e| e.error)
    }

    #[test]
    fn expiration_rules() {
        let a = AuthScope::Access;
        assert_eq!(
            check_service_auth_request(a, SVC, None, None, NOW).unwrap(),
            NOW + 60
        );
        assert_eq!(
            err_name(check_service_auth_request(a, SVC, Some(NOW - 1), None, NOW)),
            "BadExpiration"
        );
        assert_eq!(
            err_name(check_service_auth_request(
                a,
                SVC,
                Some(NOW + 3601),
                Some(CREATE_ACCOUNT),
                NOW
            )),
            "BadExpiration"
        );
        assert_eq!(
            err_name(check_service_auth_request(
                a,
                SVC,
                Some(NOW + 61),
                None,
                NOW
            )),
            "BadExpiration"
        );
        assert_eq!(
            check_service_auth_request(
                a,
                SVC,
                Some(NOW + 3600),
                Some("app.bsky.feed.getFeedSkeleton"),
                NOW
            )
            .unwrap(),
            NOW + 3600
        );
        // Far-future values don't overflow into the accepted range.
        assert_eq!(
            err_name(check_service_auth_request(
                a,
                SVC,
                Some(i64::MAX),
                None,
                NOW
            )),
            "BadExpiration"
        );
        assert_eq!(
            err_name(check_service_auth_request(
                a,
                SVC,
                Some(i64::MIN),
                None,
                NOW
            )),
            "BadExpiration"
        );
    }

    #[test]
    fn method_and_scope_rules() {
        let r = |scope, lxm| err_name(check_service_auth_request(scope, SVC, None, Some(lxm), NOW));
        assert_eq!(
            r(AuthScope::Access, "com.atproto.server.getSession"),
            "InvalidRequest"
        );
        assert_eq!(
            r(AuthScope::Access, "COM.ATPROTO.SERVER.GETSESSION"),
            "InvalidRequest"
        );
        assert_eq!(r(AuthScope::AppPass, CREATE_ACCOUNT), "InvalidRequest");
        assert_eq!(
            r(AuthScope::AppPass, "chat.bsky.convo.getLog"),
            "InvalidRequest"
        );
        assert_eq!(
            r(AuthScope::AppPassPrivileged, "chat.bsky.convo.getLog"),
            ""
        );
        assert_eq!(r(AuthScope::AppPass, "app.bsky.feed.getFeedSkeleton"), "");
        assert_eq!(r(AuthScope::Takendown, CREATE_ACCOUNT), "");
        assert_eq!(
            r(AuthScope::Takendown, "app.bsky.feed.getFeedSkeleton"),
            "InvalidToken"
        );
        assert_eq!(
            r(AuthScope::SignupQueued, "app.bsky.feed.getFeedSkeleton"),
            "InvalidToken"
        );
        assert_eq!(r(AuthScope::Access, "not an nsid"), "InvalidRequest");
        assert_eq!(
            err_name(check_service_auth_request(
                AuthScope::Takendown,
                SVC,
                None,
                None,
                NOW
            )),
            "InvalidToken"
        );
    }

    #[test]
    fn audience_shapes() {
        let r = |aud| {
            err_name(check_service_auth_request(
                AuthScope::Access,
                aud,
                None,
                None,
                NOW,
            ))
        };
        assert_eq!(r("did:web:api.bsky.app#bsky_appview"), "");
        assert_eq!(r("did:web:api.bsky.app#"), "InvalidRequest");
        assert_eq!(r("https://api.bsky.app"), "InvalidRequest");
        assert_eq!(r(""), "InvalidRequest");
    }

    fn token(claims: serde_json::Value, key: &Keypair) -> String {
        jwt::sign_service(key, &claims).unwrap()
    }

    #[test]
    fn incoming_claim_checks() {
        let key = Keypair::generate(Curve::K256);
        let good = serde_json::json!({"iss": USER, "aud": SVC, "exp": NOW + 60, "iat": NOW,
                                      "lxm": CREATE_ACCOUNT});
        let check = |claims: serde_json::Value, lxm| {
            check_incoming(&token(claims, &key), SVC, lxm, NOW)
                .map(|d| d.to_string())
                .unwrap_or_else(|e| e.error)
        };
        assert_eq!(check(good.clone(), Some(CREATE_ACCOUNT)), USER);
        let with = |k: &str, v: serde_json::Value| {
            let mut c = good.clone();
            c[k] = v;
            c
        };
        assert_eq!(check(with("exp", NOW.into()), None), "JwtExpired");
        assert_eq!(check(with("exp", "soon".into()), None), "BadJwt");
        assert_eq!(
            check(with("aud", format!("{SVC}#atproto_pds").into()), None),
            "BadJwtAudience"
        );
        assert_eq!(
            check(
                with("lxm", "com.atproto.repo.createRecord".into()),
                Some(CREATE_ACCOUNT)
            ),
            "BadJwtLexiconMethod"
        );
        let mut no_lxm = good.clone();
        no_lxm.as_object_mut().unwrap().remove("lxm");
        assert_eq!(check(no_lxm, Some(CREATE_ACCOUNT)), "BadJwtLexiconMethod");
        assert_eq!(
            check(with("iss", format!("{USER}#atproto_labeler").into()), None),
            "BadJwtIss"
        );
        assert_eq!(
            check_incoming("a.b", SVC, None, NOW).unwrap_err().error,
            "BadJwt"
        );
    }
}
