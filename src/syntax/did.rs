//! DIDs: persistent account identifiers (`did:plc:...`, `did:web:...`).

use super::{
    Reason, SyntaxError, bad_char, char_at, handle, into_string_impl, string_format_impls,
};
use std::str::FromStr;

/// Maximum DID length in atproto.
pub const MAX_DID_LEN: usize = 2048;

/// A DID with valid generic atproto syntax: `did:<method>:<identifier>`.
///
/// Any method is accepted, as Lexicon validation requires; use [`Did::check_blessed`] where only
/// `did:plc` and `did:web` may appear (account creation, resolution).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Did(String);

impl Did {
    /// The DID as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `s` is valid generic DID syntax (no allocation).
    pub fn is_valid(s: &str) -> bool {
        check(s).is_ok()
    }

    /// The method, e.g. `plc`.
    pub fn method(&self) -> &str {
        let rest = self.0.get(4..).unwrap_or_default();
        rest.split(':').next().unwrap_or_default()
    }

    /// The method-specific identifier: everything after `did:<method>:`.
    pub fn identifier(&self) -> &str {
        let rest = self.0.get(4..).unwrap_or_default();
        rest.split_once(':').map_or("", |(_, id)| id)
    }

    /// Whether this is a `did:plc`.
    pub fn is_plc(&self) -> bool {
        self.0.starts_with("did:plc:")
    }

    /// Whether this is a `did:web`.
    pub fn is_web(&self) -> bool {
        self.0.starts_with("did:web:")
    }

    /// Checks the stricter rules of the methods atproto supports ("blessed" methods):
    ///
    /// - `did:plc:` followed by exactly 24 characters of `[a-z2-7]`;
    /// - `did:web:` followed by a lowercase hostname (handle syntax, or `localhost`) and an
    ///   optional port written `%3A<port>`. No paths.
    ///
    /// Any other method is an error. Policy (disallowed TLDs, ports only on localhost in
    /// development) is left to the caller; see [`super::has_disallowed_tld`].
    pub fn check_blessed(&self) -> Result<(), SyntaxError> {
        let reason: Reason = match self.method() {
            "plc" => match check_plc(self.identifier()) {
                Ok(()) => return Ok(()),
                Err(r) => r,
            },
            "web" => match check_web(self.identifier()) {
                Ok(()) => return Ok(()),
                Err(r) => r,
            },
            _ => "unsupported DID method (only plc and web)".into(),
        };
        Err(SyntaxError::new("did", &self.0, reason))
    }
}

fn check_plc(id: &str) -> Result<(), Reason> {
    if id.len() != 24 {
        return Err("did:plc identifier must be 24 characters".into());
    }
    match id
        .bytes()
        .position(|b| !(b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)))
    {
        Some(i) => Err(format!(
            "did:plc identifier must be base32 [a-z2-7], found {:?}",
            char_at(id, i)
        )
        .into()),
        None => Ok(()),
    }
}

fn check_web(id: &str) -> Result<(), Reason> {
    let (host, port) = match id.split_once("%3A") {
        Some((h, p)) => (h, Some(p)),
        None => (id, None),
    };
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("did:web hostname must be lowercase".into());
    }
    if host != "localhost" {
        handle::check(host).map_err(|r| -> Reason {
            format!("did:web hostname is not a valid domain name: {r}").into()
        })?;
    }
    if let Some(port) = port {
        let ok = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p != 0);
        if !ok {
            return Err("did:web port must be a number from 1 to 65535 (no paths)".into());
        }
    }
    Ok(())
}

pub(crate) fn check(s: &str) -> Result<(), Reason> {
    let Some(rest) = s.strip_prefix("did:") else {
        return Err("must start with \"did:\"".into());
    };
    if s.len() > MAX_DID_LEN {
        return Err("longer than 2048 characters".into());
    }
    let bytes = rest.as_bytes();
    let method_len = bytes.iter().position(|&b| b == b':').unwrap_or(bytes.len());
    if method_len == 0 {
        return Err("empty method".into());
    }
    if let Some(i) = bytes[..method_len]
        .iter()
        .position(|b| !b.is_ascii_lowercase())
    {
        return Err(format!(
            "method may only contain lowercase letters, found {:?}",
            char_at(rest, i)
        )
        .into());
    }
    let Some(id) = bytes.get(method_len + 1..) else {
        return Err("missing method-specific identifier".into());
    };
    if id.is_empty() {
        return Err("empty method-specific identifier".into());
    }
    let id_offset = 4 + method_len + 1;
    if let Some(i) = id.iter().position(|&b| {
        !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'%' | b'-'))
    }) {
        return Err(bad_char(char_at(s, id_offset + i)));
    }
    // Percent-encoding is not decoded (the spec allows that), but a DID may not end mid-escape
    // or with an empty trailing segment.
    match id.last() {
        Some(b':') => Err("may not end with ':'".into()),
        Some(b'%') => Err("may not end with '%'".into()),
        _ => Ok(()),
    }
}

impl FromStr for Did {
    type Err = SyntaxError;
    fn from_str(s: &str) -> Result<Self, SyntaxError> {
        check(s).map_err(|r| SyntaxError::new("did", s, r))?;
        Ok(Did(s.to_owned()))
    }
}

impl TryFrom<String> for Did {
    type Error = SyntaxError;
    fn try_from(s: String) -> Result<Self, SyntaxError> {
        check(&s).map_err(|r| SyntaxError::new("did", &s, r))?;
        Ok(Did(s))
    }
}

string_format_impls!(Did, "a DID");
into_string_impl!(Did);
