//! Who is calling: credentials from the `Authorization` header, session tokens, admin auth.
//!
//! Every way of authenticating ends in [`AuthError`] or a verified identity; handlers never see
//! raw tokens. Future credential kinds (OAuth + DPoP, service JWTs) add variants here so that a
//! request's credentials resolve to one value with scopes that handlers check.

pub mod header;
pub mod session;

pub use header::{Credentials, parse_authorization};
pub use session::{AccessClaims, AuthScope, RefreshClaims, SessionTokens, TokenIssuer};

/// Why a request is not authenticated. Names and statuses follow the reference PDS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials where some are required (401 `AuthMissing`).
    #[error("Authentication Required")]
    Missing,
    /// A token past its `exp` (400 `ExpiredToken`).
    #[error("Token has expired")]
    Expired,
    /// A refresh token that was revoked or already rotated past its grace window.
    #[error("Token has been revoked")]
    Revoked,
    /// A malformed, mis-signed or misdirected token (400 `InvalidToken`).
    #[error("{0}")]
    Invalid(String),
    /// Credentials of the wrong kind for this route, or bad admin credentials (401).
    #[error("{0}")]
    Unauthorized(String),
}

impl AuthError {
    /// The XRPC error name.
    pub fn error_name(&self) -> &'static str {
        match self {
            AuthError::Missing => "AuthMissing",
            AuthError::Expired | AuthError::Revoked => "ExpiredToken",
            AuthError::Invalid(_) => "InvalidToken",
            AuthError::Unauthorized(_) => "AuthenticationRequired",
        }
    }

    /// The HTTP status the reference answers with.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Missing | AuthError::Unauthorized(_) => 401,
            AuthError::Expired | AuthError::Revoked | AuthError::Invalid(_) => 400,
        }
    }
}

/// Compares secrets in time independent of where they first differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Length is not secret (it leaks through timing of any hash anyway); the content is.
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks admin Basic credentials: user `admin`, password `PDS_ADMIN_PASSWORD`.
pub fn verify_admin(credentials: &Credentials, admin_password: &str) -> Result<(), AuthError> {
    match credentials {
        Credentials::Basic { username, password }
            if username == "admin"
                && constant_time_eq(password.as_bytes(), admin_password.as_bytes()) =>
        {
            Ok(())
        }
        _ => Err(AuthError::Unauthorized(
            "Unexpected authorization type".into(),
        )),
    }
}
