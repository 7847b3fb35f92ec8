//! Record keys: the name of a record within a collection (`3jzfcijpj2z2a`, `self`).

use super::{Reason, SyntaxError, bad_char, char_at, into_string_impl, string_format_impls};
use std::str::FromStr;

/// Maximum record key length.
pub const MAX_RECORD_KEY_LEN: usize = 512;

/// A valid record key: 1-512 characters of `A-Za-z0-9 . - _ : ~`, and not `.` or `..`.
///
/// The character set is exactly the unreserved URI path characters plus `:`, so a key can sit in
/// an AT URI path segment and an MST key unescaped.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey(String);

impl RecordKey {
    /// The key as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `s` is a valid record key (no allocation).
    pub fn is_valid(s: &str) -> bool {
        check(s).is_ok()
    }
}

pub(crate) fn check(s: &str) -> Result<(), Reason> {
    if s.is_empty() {
        return Err("empty".into());
    }
    if s.len() > MAX_RECORD_KEY_LEN {
        return Err("longer than 512 characters".into());
    }
    if let Some(i) = s
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'~')))
    {
        return Err(bad_char(char_at(s, i)));
    }
    // They would be path navigation in a URI.
    if s == "." || s == ".." {
        return Err("\".\" and \"..\" are not allowed".into());
    }
    Ok(())
}

impl FromStr for RecordKey {
    type Err = SyntaxError;
    fn from_str(s: &str) -> Result<Self, SyntaxError> {
        check(s).map_err(|r| SyntaxError::new("record-key", s, r))?;
        Ok(RecordKey(s.to_owned()))
    }
}

impl TryFrom<String> for RecordKey {
    type Error = SyntaxError;
    fn try_from(s: String) -> Result<Self, SyntaxError> {
        check(&s).map_err(|r| SyntaxError::new("record-key", &s, r))?;
        Ok(RecordKey(s))
    }
}

impl From<super::Tid> for RecordKey {
    /// Every TID is a valid record key (the common `tid` key type).
    fn from(tid: super::Tid) -> RecordKey {
        RecordKey(tid.as_str().to_owned())
    }
}

string_format_impls!(RecordKey, "a record key");
into_string_impl!(RecordKey);
