//! Lexicon `uri` string format: any URI with a scheme (`https:`, `did:`, `at:`, `dns:`, ...).
//!
//! Checked at the level Lexicon validation needs, not full RFC 3986: an RFC 3986 scheme
//! (a letter, then letters, digits, `+`, `-` or `.`), a colon, a non-empty remainder with no
//! whitespace or control characters, and at most 8 KiB. Non-ASCII is let through (IRIs), as the
//! reference implementation does.

use super::{Reason, SyntaxError, bad_char, char_at, into_string_impl, string_format_impls};
use std::str::FromStr;

/// Maximum URI length in bytes (8 KiB).
pub const MAX_URI_LEN: usize = 8 * 1024;

/// A string with valid generic URI syntax.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uri(String);

impl Uri {
    /// The URI as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `s` is a valid URI (no allocation).
    pub fn is_valid(s: &str) -> bool {
        check(s).is_ok()
    }

    /// The scheme, as written (`https` for `https://example.com`).
    pub fn scheme(&self) -> &str {
        self.0.split(':').next().unwrap_or_default()
    }
}

fn check(s: &str) -> Result<(), Reason> {
    if s.len() > MAX_URI_LEN {
        return Err("longer than 8192 bytes".into());
    }
    let Some((scheme, rest)) = s.split_once(':') else {
        return Err("missing scheme (\"scheme:...\")".into());
    };
    if !scheme.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err("scheme must start with a letter".into());
    }
    if let Some(i) = scheme
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
    {
        return Err(format!("invalid character {:?} in scheme", char_at(s, i)).into());
    }
    if rest.is_empty() {
        return Err("nothing after the scheme".into());
    }
    if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(if c.is_whitespace() {
            "whitespace is not allowed".into()
        } else {
            bad_char(c)
        });
    }
    Ok(())
}

impl FromStr for Uri {
    type Err = SyntaxError;
    fn from_str(s: &str) -> Result<Self, SyntaxError> {
        check(s).map_err(|r| SyntaxError::new("uri", s, r))?;
        Ok(Uri(s.to_owned()))
    }
}

impl TryFrom<String> for Uri {
    type Error = SyntaxError;
    fn try_from(s: String) -> Result<Self, SyntaxError> {
        check(&s).map_err(|r| SyntaxError::new("uri", &s, r))?;
        Ok(Uri(s))
    }
}

string_format_impls!(Uri, "a URI");
into_string_impl!(Uri);
