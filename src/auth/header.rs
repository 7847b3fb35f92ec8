//! Parsing the `Authorization` header as the reference does: exactly `<type> <value>` with type
//! `Basic`, `Bearer` or `DPoP` (case-insensitive). Anything else is an error, never "anonymous".

use super::AuthError;
use data_encoding::BASE64;

/// Credentials carried by a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Bearer(String),
    DPoP(String),
    Basic { username: String, password: String },
}

/// Longest header value accepted; tokens are a few hundred bytes.
const MAX_HEADER_LEN: usize = 16 * 1024;

/// Parses a header value; `None` input means no header was sent.
pub fn parse_authorization(value: Option<&str>) -> Result<Option<Credentials>, AuthError> {
    let Some(value) = value else { return Ok(None) };
    if value.len() > MAX_HEADER_LEN {
        return Err(AuthError::Invalid(
            "Authorization header is too long".into(),
        ));
    }
    let (kind, rest) = value
        .split_once(' ')
        .ok_or_else(|| AuthError::Invalid("Malformed authorization header".into()))?;
    if rest.is_empty() || rest.contains(' ') {
        return Err(AuthError::Invalid("Malformed authorization header".into()));
    }
    match kind.to_ascii_lowercase().as_str() {
        "bearer" => Ok(Some(Credentials::Bearer(rest.to_string()))),
        "dpop" => Ok(Some(Credentials::DPoP(rest.to_string()))),
        "basic" => {
            let decoded = BASE64
                .decode(rest.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| AuthError::Invalid("Malformed basic credentials".into()))?;
            // The password may itself contain ':'; only the first one separates.
            let (username, password) = decoded
                .split_once(':')
                .ok_or_else(|| AuthError::Invalid("Malformed basic credentials".into()))?;
            Ok(Some(Credentials::Basic {
                username: username.to_string(),
                password: password.to_string(),
            }))
        }
        _ => Err(AuthError::Invalid(format!(
            "Unsupported authorization type {kind:.16}"
        ))),
    }
}
