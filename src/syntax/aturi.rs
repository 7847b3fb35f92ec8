//! AT URIs in the strict Lexicon `at-uri` form: `at://<did-or-handle>[/<nsid>[/<rkey>]]`.
//!
//! The general AT URI syntax also allows queries, fragments and longer paths, but nothing in
//! current Lexicons uses them, and the interop fixtures reject them, so this type does too.

use super::{
    AtIdentifier, Nsid, Reason, RecordKey, SyntaxError, at_identifier, nsid, rkey,
    string_format_impls,
};
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// Maximum AT URI length in bytes (8 KiB).
pub const MAX_AT_URI_LEN: usize = 8 * 1024;

const PREFIX: &str = "at://";

/// A valid strict AT URI, with its parts already parsed.
///
/// Equality, ordering and hashing are those of the string.
#[derive(Clone, Debug)]
pub struct AtUri {
    text: String,
    authority: AtIdentifier,
    collection: Option<Nsid>,
    rkey: Option<RecordKey>,
}

impl AtUri {
    /// The URI as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `s` is a valid strict AT URI (no allocation).
    pub fn is_valid(s: &str) -> bool {
        split(s).is_ok()
    }

    /// The repository: a DID or a handle.
    pub fn authority(&self) -> &AtIdentifier {
        &self.authority
    }

    /// The collection NSID, if the URI has a path.
    pub fn collection(&self) -> Option<&Nsid> {
        self.collection.as_ref()
    }

    /// The record key, if the URI names a record.
    pub fn rkey(&self) -> Option<&RecordKey> {
        self.rkey.as_ref()
    }

    /// Builds a URI from parts. Fails only if `rkey` is given without `collection`.
    pub fn from_parts(
        authority: AtIdentifier,
        collection: Option<Nsid>,
        rkey: Option<RecordKey>,
    ) -> Result<AtUri, SyntaxError> {
        match (collection, rkey) {
            (Some(c), Some(r)) => Ok(AtUri::for_record(authority, c, r)),
            (Some(c), None) => Ok(AtUri::for_collection(authority, c)),
            (None, None) => Ok(AtUri::for_repo(authority)),
            (None, Some(r)) => Err(SyntaxError::new(
                "at-uri",
                &format!("{PREFIX}{authority}//{r}"),
                "a record key needs a collection",
            )),
        }
    }

    /// `at://<authority>`.
    pub fn for_repo(authority: AtIdentifier) -> AtUri {
        AtUri {
            text: format!("{PREFIX}{authority}"),
            authority,
            collection: None,
            rkey: None,
        }
    }

    /// `at://<authority>/<collection>`.
    pub fn for_collection(authority: AtIdentifier, collection: Nsid) -> AtUri {
        AtUri {
            text: format!("{PREFIX}{authority}/{collection}"),
            authority,
            collection: Some(collection),
            rkey: None,
        }
    }

    /// `at://<authority>/<collection>/<rkey>`. Always within the length limit: the parts are
    /// at most 2048 + 317 + 512 bytes.
    pub fn for_record(authority: AtIdentifier, collection: Nsid, rkey: RecordKey) -> AtUri {
        AtUri {
            text: format!("{PREFIX}{authority}/{collection}/{rkey}"),
            authority,
            collection: Some(collection),
            rkey: Some(rkey),
        }
    }
}

/// Validates `s` and returns its authority, collection and rkey slices.
fn split(s: &str) -> Result<(&str, Option<&str>, Option<&str>), Reason> {
    if s.len() > MAX_AT_URI_LEN {
        return Err("longer than 8192 bytes".into());
    }
    let Some(rest) = s.strip_prefix(PREFIX) else {
        return Err("must start with \"at://\"".into());
    };
    if s.contains(['?', '#']) {
        return Err("query and fragment parts are not allowed".into());
    }
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    if authority.is_empty() {
        return Err("empty authority".into());
    }
    at_identifier::check(authority).map_err(|r| -> Reason { format!("authority {r}").into() })?;
    let Some(path) = path else {
        return Ok((authority, None, None));
    };
    let (collection, rkey) = match path.split_once('/') {
        Some((c, r)) => (c, Some(r)),
        None => (path, None),
    };
    if collection.is_empty() {
        return Err(if rkey.is_none() {
            "trailing slash".into()
        } else {
            "empty path segment".into()
        });
    }
    nsid::check(collection)
        .map_err(|r| -> Reason { format!("collection is not a valid NSID: {r}").into() })?;
    let Some(rkey) = rkey else {
        return Ok((authority, Some(collection), None));
    };
    if rkey.is_empty() {
        return Err("trailing slash".into());
    }
    if rkey.contains('/') {
        return Err("too many path segments (at most collection and record key)".into());
    }
    rkey::check(rkey).map_err(|r| -> Reason { format!("record key is not valid: {r}").into() })?;
    Ok((authority, Some(collection), Some(rkey)))
}

fn parse(s: &str) -> Result<(AtIdentifier, Option<Nsid>, Option<RecordKey>), SyntaxError> {
    let err = |r: Reason| SyntaxError::new("at-uri", s, r);
    let (a, c, r) = split(s).map_err(err)?;
    // The parts were validated by `split`; these parses only build the owned values.
    Ok((
        a.parse()?,
        c.map(str::parse).transpose()?,
        r.map(str::parse).transpose()?,
    ))
}

impl FromStr for AtUri {
    type Err = SyntaxError;
    fn from_str(s: &str) -> Result<Self, SyntaxError> {
        let (authority, collection, rkey) = parse(s)?;
        Ok(AtUri {
            text: s.to_owned(),
            authority,
            collection,
            rkey,
        })
    }
}

impl TryFrom<String> for AtUri {
    type Error = SyntaxError;
    fn try_from(s: String) -> Result<Self, SyntaxError> {
        let (authority, collection, rkey) = parse(&s)?;
        Ok(AtUri {
            text: s,
            authority,
            collection,
            rkey,
        })
    }
}

impl PartialEq for AtUri {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for AtUri {}

impl PartialOrd for AtUri {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AtUri {
    fn cmp(&self, other: &Self) -> Ordering {
        self.text.cmp(&other.text)
    }
}

impl Hash for AtUri {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl From<AtUri> for String {
    fn from(u: AtUri) -> String {
        u.text
    }
}

string_format_impls!(AtUri, "an AT URI");
