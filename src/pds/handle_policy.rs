//! Which handles an account may take here (the reference's rules, §6.3 of our notes on it).
//!
//! Service-domain handles (`PDS_SERVICE_HANDLE_DOMAINS`): one label of 3-18 characters before
//! the domain, not a reserved name. Other domains need a DID to resolve against, so they are
//! refused at plain sign-up (`UnsupportedDomain`). Disallowed TLDs are always refused.

use crate::syntax::Handle;

/// Why a handle cannot be used; the name is the reference's XRPC error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlePolicyError {
    #[error("{0}")]
    InvalidHandle(String),
    #[error("{0}")]
    HandleNotAvailable(String),
    #[error("{0}")]
    UnsupportedDomain(String),
}

impl HandlePolicyError {
    pub fn error_name(&self) -> &'static str {
        match self {
            HandlePolicyError::InvalidHandle(_) => "InvalidHandle",
            HandlePolicyError::HandleNotAvailable(_) => "HandleNotAvailable",
            HandlePolicyError::UnsupportedDomain(_) => "UnsupportedDomain",
        }
    }
}

/// Names that would mislead if anyone could register them: protocol and service words, and
/// common infrastructure names. Our own list; admins may still assign these.
const RESERVED: &[&str] = &[
    "about",
    "abuse",
    "account",
    "accounts",
    "admin",
    "administrator",
    "api",
    "app",
    "apps",
    "atproto",
    "auth",
    "blog",
    "bluesky",
    "bsky",
    "contact",
    "dashboard",
    "did",
    "dns",
    "docs",
    "email",
    "feed",
    "feeds",
    "ftp",
    "handle",
    "handles",
    "help",
    "host",
    "hostmaster",
    "http",
    "https",
    "imap",
    "info",
    "invalid",
    "labeler",
    "localhost",
    "login",
    "mail",
    "moderation",
    "mod",
    "news",
    "noreply",
    "null",
    "oauth",
    "official",
    "pds",
    "plc",
    "pop",
    "postmaster",
    "relay",
    "root",
    "security",
    "settings",
    "signup",
    "smtp",
    "staff",
    "status",
    "support",
    "system",
    "team",
    "test",
    "undefined",
    "webmaster",
    "well-known",
    "www",
    "xrpc",
];

/// The service handle domain (`.example.com`) that `handle` sits under, if any.
pub fn service_domain<'a>(handle: &str, domains: &'a [String]) -> Option<&'a str> {
    domains
        .iter()
        .map(String::as_str)
        .find(|d| handle.ends_with(d))
}

/// Normalises and checks a handle for a new account or a handle change on a service domain.
pub fn check_service_handle(input: &str, domains: &[String]) -> Result<Handle, HandlePolicyError> {
    let handle: Handle = input
        .trim()
        .to_ascii_lowercase()
        .parse()
        .map_err(|e| HandlePolicyError::InvalidHandle(format!("Invalid handle: {e}")))?;
    if handle.has_disallowed_tld() {
        return Err(HandlePolicyError::InvalidHandle(
            "Handle TLD is invalid or disallowed".into(),
        ));
    }
    let Some(domain) = service_domain(handle.as_str(), domains) else {
        return Err(HandlePolicyError::UnsupportedDomain(
            "Not a supported handle domain".into(),
        ));
    };
    let prefix = &handle.as_str()[..handle.as_str().len() - domain.len()];
    if prefix.contains('.') {
        return Err(HandlePolicyError::InvalidHandle(
            "Invalid characters in handle".into(),
        ));
    }
    if prefix.len() < 3 {
        return Err(HandlePolicyError::InvalidHandle("Handle too short".into()));
    }
    if prefix.len() > 18 {
        return Err(HandlePolicyError::InvalidHandle("Handle too long".into()));
    }
    if RESERVED.contains(&prefix) {
        return Err(HandlePolicyError::HandleNotAvailable(
            "Reserved handle".into(),
        ));
    }
    Ok(handle)
}
