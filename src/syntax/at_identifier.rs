//! at-identifier: a DID or a handle, as used in XRPC parameters and AT URI authorities.

use super::{Did, Handle, Reason, SyntaxError, did, handle, string_format_impls};
use std::str::FromStr;

/// Either a DID or a handle. Unambiguous: DIDs start with `did:`, and handles cannot contain `:`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AtIdentifier {
    Did(Did),
    Handle(Handle),
}

impl AtIdentifier {
    /// The identifier as given.
    pub fn as_str(&self) -> &str {
        match self {
            AtIdentifier::Did(d) => d.as_str(),
            AtIdentifier::Handle(h) => h.as_str(),
        }
    }

    /// Whether `s` is a valid at-identifier (no allocation).
    pub fn is_valid(s: &str) -> bool {
        check(s).is_ok()
    }

    /// The DID, if this is one.
    pub fn as_did(&self) -> Option<&Did> {
        match self {
            AtIdentifier::Did(d) => Some(d),
            AtIdentifier::Handle(_) => None,
        }
    }

    /// The handle, if this is one.
    pub fn as_handle(&self) -> Option<&Handle> {
        match self {
            AtIdentifier::Handle(h) => Some(h),
            AtIdentifier::Did(_) => None,
        }
    }

    /// Whether this is a DID.
    pub fn is_did(&self) -> bool {
        matches!(self, AtIdentifier::Did(_))
    }
}

/// Validates `s` as a DID if it starts with `did:`, otherwise as a handle.
pub(crate) fn check(s: &str) -> Result<(), Reason> {
    if s.starts_with("did:") {
        did::check(s).map_err(|r| format!("not a valid DID: {r}").into())
    } else {
        handle::check(s).map_err(|r| format!("not a valid handle: {r}").into())
    }
}

impl FromStr for AtIdentifier {
    type Err = SyntaxError;
    fn from_str(s: &str) -> Result<Self, SyntaxError> {
        AtIdentifier::try_from(s.to_owned())
    }
}

impl TryFrom<String> for AtIdentifier {
    type Error = SyntaxError;
    fn try_from(s: String) -> Result<Self, SyntaxError> {
        check(&s).map_err(|r| SyntaxError::new("at-identifier", &s, r))?;
        // Re-validation below cannot fail; it keeps construction inside the parsers.
        if s.starts_with("did:") {
            Ok(AtIdentifier::Did(Did::try_from(s)?))
        } else {
            Ok(AtIdentifier::Handle(Handle::try_from(s)?))
        }
    }
}

impl From<Did> for AtIdentifier {
    fn from(d: Did) -> Self {
        AtIdentifier::Did(d)
    }
}

impl From<Handle> for AtIdentifier {
    fn from(h: Handle) -> Self {
        AtIdentifier::Handle(h)
    }
}

impl From<AtIdentifier> for String {
    fn from(a: AtIdentifier) -> String {
        match a {
            AtIdentifier::Did(d) => d.into_string(),
            AtIdentifier::Handle(h) => h.into_string(),
        }
    }
}

string_format_impls!(AtIdentifier, "a DID or handle");
