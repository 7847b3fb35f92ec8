//! Legacy session tokens (`createSession`, `refreshSession`), as the reference PDS issues them.
//!
//! Access: HS256 with header `typ: at+jwt`, claims `{scope, aud: <service DID>, sub: <account
//! DID>, iat, exp}`, 120 minutes. Refresh: `typ: refresh+jwt`, `{scope: com.atproto.refresh,
//! aud, sub, jti, iat, exp}`, 90 days. The key is `PDS_JWT_SECRET`'s UTF-8 bytes.
//!
//! Invariants: the algorithm and `typ` are pinned per token kind, so a refresh token never passes
//! as an access token or the reverse; `aud` must be this PDS; tokens carrying `lxm` (service
//! auth) or `cnf` (proof-of-possession) are refused; an expired token is `ExpiredToken`, any other
//! failure `InvalidToken`.

use super::AuthError;
use crate::jwt::{self, JwtError, TYP_ACCESS, TYP_REFRESH};
use crate::syntax::Did;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const ACCESS_TTL_SECS: i64 = 120 * 60;
pub const REFRESH_TTL_SECS: i64 = 90 * 24 * 60 * 60;

/// What a session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthScope {
    #[serde(rename = "com.atproto.access")]
    Access,
    #[serde(rename = "com.atproto.appPassPrivileged")]
    AppPassPrivileged,
    #[serde(rename = "com.atproto.appPass")]
    AppPass,
    #[serde(rename = "com.atproto.refresh")]
    Refresh,
    #[serde(rename = "com.atproto.signupQueued")]
    SignupQueued,
    #[serde(rename = "com.atproto.takendown")]
    Takendown,
}

impl AuthScope {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthScope::Access => "com.atproto.access",
            AuthScope::AppPassPrivileged => "com.atproto.appPassPrivileged",
            AuthScope::AppPass => "com.atproto.appPass",
            AuthScope::Refresh => "com.atproto.refresh",
            AuthScope::SignupQueued => "com.atproto.signupQueued",
            AuthScope::Takendown => "com.atproto.takendown",
        }
    }

    /// Scopes an access token may carry.
    fn is_access_scope(self) -> bool {
        !matches!(self, AuthScope::Refresh)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub scope: AuthScope,
    pub aud: String,
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshClaims {
    pub scope: AuthScope,
    pub aud: String,
    pub sub: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

/// A fresh access + refresh pair.
#[derive(Debug, Clone)]
pub struct SessionTokens {
    pub access_jwt: String,
    pub refresh_jwt: String,
    pub refresh: RefreshClaims,
}

/// Issues and verifies session tokens for one PDS.
#[derive(Clone)]
pub struct TokenIssuer {
    secret: Vec<u8>,
    service_did: String,
    /// Access tokens already verified, by their exact text. A token's claims can't change
    /// and access tokens aren't revoked one by one (account status is checked per request),
    /// so only `exp` needs checking again: that saves the HMAC and two JSON parses (~18 µs)
    /// on every request of a client that keeps its token.
    verified: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, AccessClaims>>>,
}

/// How many verified access tokens [`TokenIssuer`] remembers (then it starts over).
const VERIFIED_TOKENS: usize = 1024;

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("service_did", &self.service_did)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    pub fn new(jwt_secret: &str, service_did: &Did) -> Self {
        TokenIssuer {
            secret: jwt_secret.as_bytes().to_vec(),
            service_did: service_did.to_string(),
            verified: std::sync::Arc::default(),
        }
    }

    /// A new pair for `did`; `jti` is the refresh token's id (32 random bytes, base64) unless
    /// given, which refresh rotation uses to hand racing clients the same next token.
    pub fn issue(
        &self,
        did: &Did,
        scope: AuthScope,
        jti: Option<String>,
        now: i64,
    ) -> Result<SessionTokens, AuthError> {
        let access = AccessClaims {
            scope,
            aud: self.service_did.clone(),
            sub: did.to_string(),
            iat: now,
            exp: now + ACCESS_TTL_SECS,
        };
        let refresh = RefreshClaims {
            scope: AuthScope::Refresh,
            aud: self.service_did.clone(),
            sub: did.to_string(),
            jti: jti.unwrap_or_else(new_jti),
            iat: now,
            exp: now + REFRESH_TTL_SECS,
        };
        let signing = |e: JwtError| AuthError::Invalid(format!("signing failed: {e}"));
        Ok(SessionTokens {
            access_jwt: jwt::sign_hs256(TYP_ACCESS, &access, &self.secret).map_err(signing)?,
            refresh_jwt: jwt::sign_hs256(TYP_REFRESH, &refresh, &self.secret).map_err(signing)?,
            refresh,
        })
    }

    /// Verifies an access token (any access scope; the route checks which it needs).
    pub fn verify_access(&self, token: &str, now: i64) -> Result<AccessClaims, AuthError> {
        let known = self
            .verified
            .lock()
            .ok()
            .and_then(|verified| verified.get(token).cloned());
        if let Some(claims) = known {
            jwt::check_exp(claims.exp, now).map_err(|_| AuthError::Expired)?;
            return Ok(claims);
        }
        let claims = self.verify_access_uncached(token, now)?;
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= VERIFIED_TOKENS {
                verified.clear();
            }
            verified.insert(token.to_owned(), claims.clone());
        }
        Ok(claims)
    }

    fn verify_access_uncached(&self, token: &str, now: i64) -> Result<AccessClaims, AuthError> {
        let raw: Value = verify(token, &self.secret, TYP_ACCESS, now)?;
        refuse_foreign_claims(&raw)?;
        let claims: AccessClaims = serde_json::from_value(raw)
            .map_err(|e| AuthError::Invalid(format!("Bad token claims: {e}")))?;
        self.check_common(&claims.aud, &claims.sub)?;
        if !claims.scope.is_access_scope() {
            return Err(AuthError::Invalid("Bad token scope".into()));
        }
        Ok(claims)
    }

    /// Verifies a refresh token's signature and shape; revocation is the account store's job.
    pub fn verify_refresh(&self, token: &str, now: i64) -> Result<RefreshClaims, AuthError> {
        let raw: Value = verify(token, &self.secret, TYP_REFRESH, now)?;
        refuse_foreign_claims(&raw)?;
        let claims: RefreshClaims = serde_json::from_value(raw)
            .map_err(|e| AuthError::Invalid(format!("Bad token claims: {e}")))?;
        self.check_common(&claims.aud, &claims.sub)?;
        if claims.scope != AuthScope::Refresh {
            return Err(AuthError::Invalid("Bad token scope".into()));
        }
        Ok(claims)
    }

    fn check_common(&self, aud: &str, sub: &str) -> Result<(), AuthError> {
        if aud != self.service_did {
            return Err(AuthError::Invalid("Bad token aud".into()));
        }
        if sub.parse::<Did>().is_err() {
            return Err(AuthError::Invalid("Malformed token".into()));
        }
        Ok(())
    }
}

fn verify(token: &str, secret: &[u8], typ: &str, now: i64) -> Result<Value, AuthError> {
    jwt::verify_hs256_at::<Value>(token, secret, typ, now).map_err(|e| match e {
        JwtError::Expired { .. } => AuthError::Expired,
        other => AuthError::Invalid(format!("Token could not be verified: {other}")),
    })
}

/// Service-auth (`lxm`) and proof-of-possession (`cnf`) tokens are never session tokens.
fn refuse_foreign_claims(raw: &Value) -> Result<(), AuthError> {
    if raw.get("lxm").is_some() || raw.get("cnf").is_some() {
        return Err(AuthError::Invalid("Malformed token".into()));
    }
    Ok(())
}

fn new_jti() -> String {
    let bytes: [u8; 32] = rand::random();
    data_encoding::BASE64_NOPAD.encode(&bytes)
}
