//! Extractors that authenticate a request: `AccessAuth` (a session access token) and
//! `RefreshAuth` (a refresh token). Failures are the reference's XRPC errors.

use crate::auth::{
    AccessClaims, AuthError, Credentials, RefreshClaims, parse_authorization, verify_admin,
};
use crate::server::AppState;
use crate::syntax::Did;
use crate::xrpc::XrpcError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// A request carrying a valid access token.
#[derive(Debug, Clone)]
pub struct AccessAuth {
    pub did: Did,
    pub claims: AccessClaims,
}

/// Which sessions a method accepts, as the reference names its auth levels.
impl AccessAuth {
    /// "standard": a password or an app-password session.
    pub fn require_standard(&self) -> Result<(), XrpcError> {
        self.require(&[
            crate::auth::AuthScope::Access,
            crate::auth::AuthScope::AppPassPrivileged,
            crate::auth::AuthScope::AppPass,
        ])
    }

    /// "full": a password session only.
    pub fn require_full(&self) -> Result<(), XrpcError> {
        self.require(&[crate::auth::AuthScope::Access])
    }

    /// "full +takendown": a password session, or a taken-down account's (so it can still
    /// deactivate or move away).
    pub fn require_full_or_takendown(&self) -> Result<(), XrpcError> {
        self.require(&[
            crate::auth::AuthScope::Access,
            crate::auth::AuthScope::Takendown,
        ])
    }

    fn require(&self, allowed: &[crate::auth::AuthScope]) -> Result<(), XrpcError> {
        if allowed.contains(&self.claims.scope) {
            Ok(())
        } else {
            Err(XrpcError::invalid_token("Bad token scope"))
        }
    }
}

/// A request carrying a valid refresh token.
#[derive(Debug, Clone)]
pub struct RefreshAuth {
    pub did: Did,
    pub claims: RefreshClaims,
}

fn bearer(parts: &Parts) -> Result<String, XrpcError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| {
            v.to_str()
                .map_err(|_| XrpcError::invalid_token("Malformed authorization header"))
        })
        .transpose()?;
    match parse_authorization(header).map_err(auth_error)? {
        Some(Credentials::Bearer(token)) => Ok(token),
        None => Err(XrpcError::auth_missing()),
        Some(_) => Err(XrpcError::invalid_token("Unexpected authorization type")),
    }
}

pub fn auth_error(e: AuthError) -> XrpcError {
    match e {
        AuthError::Missing => XrpcError::auth_missing(),
        AuthError::Expired | AuthError::Revoked => XrpcError::expired_token(e.to_string()),
        AuthError::Invalid(m) => XrpcError::invalid_token(m),
        AuthError::Unauthorized(m) => XrpcError::authentication_required(m),
    }
}

fn parse_sub(sub: &str) -> Result<Did, XrpcError> {
    sub.parse()
        .map_err(|_| XrpcError::invalid_token("Malformed token"))
}

impl FromRequestParts<AppState> for AccessAuth {
    type Rejection = XrpcError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, XrpcError> {
        let token = bearer(parts)?;
        let claims = state
            .pds()?
            .tokens
            .verify_access(&token, chrono::Utc::now().timestamp())
            .map_err(auth_error)?;
        Ok(AccessAuth {
            did: parse_sub(&claims.sub)?,
            claims,
        })
    }
}

impl FromRequestParts<AppState> for RefreshAuth {
    type Rejection = XrpcError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, XrpcError> {
        let token = bearer(parts)?;
        let claims = state
            .pds()?
            .tokens
            .verify_refresh(&token, chrono::Utc::now().timestamp())
            .map_err(auth_error)?;
        Ok(RefreshAuth {
            did: parse_sub(&claims.sub)?,
            claims,
        })
    }
}

/// Admin Basic auth (`admin:<PDS_ADMIN_PASSWORD>`). Missing, malformed or wrong credentials
/// are all the reference's bare 401 `AuthenticationRequired`.
pub fn require_admin(state: &AppState, headers: &axum::http::HeaderMap) -> Result<(), XrpcError> {
    let refused = || XrpcError::authentication_required("Authentication Required");
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.to_str().map_err(|_| refused()))
        .transpose()?;
    let credentials = parse_authorization(header)
        .map_err(|_| refused())?
        .ok_or_else(refused)?;
    verify_admin(&credentials, state.config.secrets.admin_password.expose()).map_err(|_| refused())
}
