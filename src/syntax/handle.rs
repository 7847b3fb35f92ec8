//! Handles: DNS hostnames used as human-friendly account names (`alice.example.com`).

use super::{Reason, SyntaxError, bad_char, char_at, into_string_impl, string_format_impls};
use std::str::FromStr;

/// Maximum handle length in characters (the DNS name limit).
pub const MAX_HANDLE_LEN: usize = 253;

/// The placeholder shown for an account whose handle does not verify. Syntactically valid, but
/// never a real handle (`.invalid` is a disallowed TLD).
pub const INVALID_HANDLE: &str = "handle.invalid";

/// TLDs that are valid handle syntax but must be refused for registration and resolution
/// (handle spec, "Additional Non-Syntax Restrictions"). Lowercase, without the dot.
pub const DISALLOWED_TLDS: [&str; 8] = [
    "alt",
    "arpa",
    "example",
    "internal",
    "invalid",
    "local",
    "localhost",
    "onion",
];

/// A syntactically valid handle, kept exactly as given (case included).
///
/// Handles are case-insensitive: compare or store [`Handle::normalize`]d values. Syntax validity
/// says nothing about registrability; see [`Handle::has_disallowed_tld`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle(String);

impl Handle {
    /// The handle as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `s` is valid handle syntax (no allocation).
    pub fn is_valid(s: &str) -> bool {
        check(s).is_ok()
    }

    /// The `handle.invalid` placeholder.
    pub fn invalid() -> Handle {
        Handle(INVALID_HANDLE.to_owned())
    }

    /// Whether this is the `handle.invalid` placeholder (in any case).
    pub fn is_invalid_handle(&self) -> bool {
        self.0.eq_ignore_ascii_case(INVALID_HANDLE)
    }

    /// The lowercase form, which is what records, APIs and storage should use.
    pub fn normalize(&self) -> Handle {
        Handle(self.0.to_ascii_lowercase())
    }

    /// Whether the handle is already lowercase.
    pub fn is_normalized(&self) -> bool {
        !self.0.bytes().any(|b| b.is_ascii_uppercase())
    }

    /// The last label (top-level domain), as given.
    pub fn tld(&self) -> &str {
        self.0.rsplit('.').next().unwrap_or_default()
    }

    /// Whether the TLD is one that may never be registered or resolved (`.local`, `.onion`, ...).
    pub fn has_disallowed_tld(&self) -> bool {
        has_disallowed_tld(&self.0)
    }
}

/// Whether a hostname ends in one of [`DISALLOWED_TLDS`] (case-insensitive). Shared with
/// `did:web`, whose domains fall under the same restriction.
pub fn has_disallowed_tld(host: &str) -> bool {
    let tld = host.rsplit('.').next().unwrap_or_default();
    DISALLOWED_TLDS.iter().any(|d| d.eq_ignore_ascii_case(tld))
}

/// Checks one DNS label: 1-63 of `[A-Za-z0-9-]`, no hyphen at either end. `offset` is the
/// label's byte position in `whole`, for naming a bad character.
pub(crate) fn check_label(label: &[u8], whole: &str, offset: usize) -> Result<(), Reason> {
    if label.is_empty() {
        return Err("empty label".into());
    }
    if let Some(i) = label
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'-'))
    {
        return Err(bad_char(char_at(whole, offset + i)));
    }
    if label.len() > 63 {
        return Err("label longer than 63 characters".into());
    }
    if label.first() == Some(&b'-') || label.last() == Some(&b'-') {
        return Err("label starts or ends with a hyphen".into());
    }
    Ok(())
}

pub(crate) fn check(s: &str) -> Result<(), Reason> {
    if s.is_empty() {
        return Err("empty".into());
    }
    if s.len() > MAX_HANDLE_LEN {
        return Err("longer than 253 characters".into());
    }
    let mut labels = 0usize;
    let mut offset = 0usize;
    let mut last: &[u8] = &[];
    for label in s.as_bytes().split(|&b| b == b'.') {
        check_label(label, s, offset)?;
        offset += label.len() + 1;
        labels += 1;
        last = label;
    }
    if labels < 2 {
        return Err("needs at least two labels (a bare TLD is not a handle)".into());
    }
    // Keeps IPv4 addresses out, and matches modern hostname rules.
    if !last.first().is_some_and(u8::is_ascii_alphabetic) {
        return Err("top-level domain must start with a letter".into());
    }
    Ok(())
}

impl FromStr for Handle {
    type Err = SyntaxError;
    fn from_str(s: &str) -> Result<Self, SyntaxError> {
        check(s).map_err(|r| SyntaxError::new("handle", s, r))?;
        Ok(Handle(s.to_owned()))
    }
}

impl TryFrom<String> for Handle {
    type Error = SyntaxError;
    fn try_from(s: String) -> Result<Self, SyntaxError> {
        check(&s).map_err(|r| SyntaxError::new("handle", &s, r))?;
        Ok(Handle(s))
    }
}

string_format_impls!(Handle, "a handle");
into_string_impl!(Handle);
