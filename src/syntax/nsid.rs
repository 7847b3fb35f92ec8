//! NSIDs: namespaced identifiers for Lexicon schemas (`com.atproto.repo.createRecord`).

use super::{Reason, SyntaxError, bad_char, char_at, into_string_impl, string_format_impls};
use std::str::FromStr;

/// Maximum NSID length: a 253-character authority, a period and a 63-character name.
pub const MAX_NSID_LEN: usize = 317;

/// A valid NSID: a reversed domain name (the authority) followed by a name segment.
///
/// Kept as given: NSIDs are case-sensitive for storage and comparison.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nsid(String);

impl Nsid {
    /// The NSID as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `s` is a valid NSID (no allocation).
    pub fn is_valid(s: &str) -> bool {
        check(s).is_ok()
    }

    /// The domain authority in DNS order and lowercase: `com.example.fooBar` gives `example.com`.
    /// This is the name to look up when resolving the schema.
    pub fn authority(&self) -> String {
        let prefix = self.domain_prefix();
        let mut out = String::with_capacity(prefix.len());
        for (i, seg) in prefix.rsplit('.').enumerate() {
            if i > 0 {
                out.push('.');
            }
            out.push_str(seg);
        }
        out.make_ascii_lowercase();
        out
    }

    /// The authority segments as written (reversed domain order): `com.example` for
    /// `com.example.fooBar`.
    pub fn domain_prefix(&self) -> &str {
        self.0.rsplit_once('.').map_or("", |(p, _)| p)
    }

    /// The final name segment: `fooBar` for `com.example.fooBar`.
    pub fn name(&self) -> &str {
        self.0.rsplit_once('.').map_or("", |(_, n)| n)
    }

    /// The normalised form: authority lowercased, name unchanged (the form AT URIs use).
    pub fn normalize(&self) -> Nsid {
        let mut s = self.domain_prefix().to_ascii_lowercase();
        s.push('.');
        s.push_str(self.name());
        Nsid(s)
    }
}

pub(crate) fn check(s: &str) -> Result<(), Reason> {
    if s.is_empty() {
        return Err("empty".into());
    }
    // Only the total is limited: the fixtures accept authorities over 253 characters.
    if s.len() > MAX_NSID_LEN {
        return Err("longer than 317 characters".into());
    }
    let segments = s.split('.').count();
    if segments < 3 {
        return Err("needs at least three segments (authority of two or more, and a name)".into());
    }
    let mut offset = 0usize;
    for (i, seg) in s.as_bytes().split(|&b| b == b'.').enumerate() {
        let is_name = i + 1 == segments;
        if seg.is_empty() {
            return Err("empty segment".into());
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || (!is_name && b == b'-');
        if let Some(j) = seg.iter().position(|&b| !allowed(b)) {
            let c = char_at(s, offset + j);
            return Err(if is_name && c == '-' {
                "hyphen not allowed in the name segment".into()
            } else {
                bad_char(c)
            });
        }
        if seg.len() > 63 {
            return Err("segment longer than 63 characters".into());
        }
        if seg.first() == Some(&b'-') || seg.last() == Some(&b'-') {
            return Err("segment starts or ends with a hyphen".into());
        }
        if i == 0 && !seg[0].is_ascii_alphabetic() {
            return Err("first segment (top-level domain) must start with a letter".into());
        }
        if is_name && !seg[0].is_ascii_alphabetic() {
            return Err("name segment must start with a letter".into());
        }
        offset += seg.len() + 1;
    }
    Ok(())
}

impl FromStr for Nsid {
    type Err = SyntaxError;
    fn from_str(s: &str) -> Result<Self, SyntaxError> {
        check(s).map_err(|r| SyntaxError::new("nsid", s, r))?;
        Ok(Nsid(s.to_owned()))
    }
}

impl TryFrom<String> for Nsid {
    type Error = SyntaxError;
    fn try_from(s: String) -> Result<Self, SyntaxError> {
        check(&s).map_err(|r| SyntaxError::new("nsid", &s, r))?;
        Ok(Nsid(s))
    }
}

string_format_impls!(Nsid, "an NSID");
into_string_impl!(Nsid);
