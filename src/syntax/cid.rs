//! Lexicon `cid` string format: a CID in string (multibase) form, checked at syntax level only.
//!
//! No decoding happens here (that belongs to `data`): the check is 8-256 characters of
//! `[A-Za-z0-9+=]`, the same as the reference implementations, so values they accept are
//! accepted here. CIDv0 (base58 `Qm...`) is rejected: atproto uses CIDv1 only.

use super::{Reason, SyntaxError, bad_char, char_at, into_string_impl, string_format_impls};
use std::str::FromStr;

const MIN_LEN: usize = 8;
const MAX_LEN: usize = 256;

/// A string that has valid CID syntax. It may still fail to decode as a CID.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CidString(String);

impl CidString {
    /// The CID string as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `s` has valid CID string syntax (no allocation).
    pub fn is_valid(s: &str) -> bool {
        check(s).is_ok()
    }
}

fn check(s: &str) -> Result<(), Reason> {
    if let Some(i) = s
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'+' || b == b'='))
    {
        return Err(bad_char(char_at(s, i)));
    }
    if s.len() < MIN_LEN {
        return Err("shorter than 8 characters".into());
    }
    if s.len() > MAX_LEN {
        return Err("longer than 256 characters".into());
    }
    // No multibase prefix is 'Q'; a leading "Qm" is a bare base58 CIDv0.
    if s.starts_with("Qm") {
        return Err("CIDv0 is not supported (use CIDv1)".into());
    }
    Ok(())
}

impl FromStr for CidString {
    type Err = SyntaxError;
    fn from_str(s: &str) -> Result<Self, SyntaxError> {
        check(s).map_err(|r| SyntaxError::new("cid", s, r))?;
        Ok(CidString(s.to_owned()))
    }
}

impl TryFrom<String> for CidString {
    type Error = SyntaxError;
    fn try_from(s: String) -> Result<Self, SyntaxError> {
        check(&s).map_err(|r| SyntaxError::new("cid", &s, r))?;
        Ok(CidString(s))
    }
}

string_format_impls!(CidString, "a CID string");
into_string_impl!(CidString);
