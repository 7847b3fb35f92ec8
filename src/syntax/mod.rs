//! syntax: the atproto identifier and string-format types.
//!
//! **Invariant: a value of any type in this module is always valid.** The only ways to build one
//! are the parsers (`FromStr`, `TryFrom<String>`, `TryFrom<&str>`, serde `Deserialize`) and a few
//! constructors that cannot produce an invalid value (for example [`Tid::new`] and
//! [`AtUri::for_record`]). Code that holds a `Did` or an `AtUri` never needs to re-check it.
//!
//! The rules follow the atproto specs (`did`, `handle`, `nsid`, `at-uri-scheme`, `record-key`,
//! `tid` and the Lexicon string formats) and are checked against the atproto-interop-tests
//! fixtures in `tests/fixtures/interop-tests/syntax`. Where a fixture and the reference
//! implementations are looser than the prose (NSID authority length, percent-encoding in DIDs),
//! we follow the fixtures, because other network services accept those values.
//!
//! Parsers never panic on any input: validators are hand-written byte scanners that do not
//! allocate on success and only slice at ASCII delimiters (always char boundaries). Errors are
//! [`SyntaxError`]s naming the format and the rule broken, quoting at most 64 characters of input.
//!
//! String-backed types keep the input exactly as given (no normalisation): records are hashed, so
//! re-serialising must give back the same bytes. Helpers such as [`Handle::normalize`] are explicit.

mod at_identifier;
mod aturi;
mod cid;
mod datetime;
mod did;
mod error;
mod handle;
mod language;
mod nsid;
mod rkey;
mod tid;
mod uri;

pub use at_identifier::AtIdentifier;
pub use aturi::{AtUri, MAX_AT_URI_LEN};
pub use cid::CidString;
pub use datetime::Datetime;
pub use did::{Did, MAX_DID_LEN};
pub use error::SyntaxError;
pub use handle::{DISALLOWED_TLDS, Handle, INVALID_HANDLE, MAX_HANDLE_LEN, has_disallowed_tld};
pub use language::Language;
pub use nsid::{MAX_NSID_LEN, Nsid};
pub use rkey::{MAX_RECORD_KEY_LEN, RecordKey};
pub use tid::{Tid, TidClock};
pub use uri::{MAX_URI_LEN, Uri};

/// Reason text for a failed check. Mostly static; a few rules name the offending character.
type Reason = std::borrow::Cow<'static, str>;

/// Describes a character that a format does not allow, e.g. `invalid character '@'`.
fn bad_char(c: char) -> Reason {
    if c.is_ascii() {
        format!("invalid character {c:?}").into()
    } else {
        format!("non-ASCII character {c:?}").into()
    }
}

/// The character containing byte `i` of `s`, for error messages (`i` may be mid-sequence).
fn char_at(s: &str, i: usize) -> char {
    s.char_indices()
        .take_while(|&(j, _)| j <= i)
        .last()
        .map_or('\u{fffd}', |(_, c)| c)
}

/// Common trait impls for the string-backed types.
///
/// The type must have `fn as_str(&self) -> &str`, `impl FromStr<Err = SyntaxError>` and
/// `impl TryFrom<String, Error = SyntaxError>`. Serde uses the plain string form and validates
/// while deserializing, so invalid input never becomes a value.
macro_rules! string_format_impls {
    ($ty:ident, $expecting:literal) => {
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl<'a> TryFrom<&'a str> for $ty {
            type Error = $crate::syntax::SyntaxError;
            fn try_from(s: &'a str) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                struct Visitor;
                impl ::serde::de::Visitor<'_> for Visitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: ::serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                    fn visit_string<E: ::serde::de::Error>(self, v: String) -> Result<$ty, E> {
                        $ty::try_from(v).map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(Visitor)
            }
        }
    };
}
pub(crate) use string_format_impls;

/// `From<$ty> for String` for types that own their text.
macro_rules! into_string_impl {
    ($ty:ident) => {
        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }

        impl $ty {
            /// The owned string, without copying.
            pub fn into_string(self) -> String {
                self.0
            }
        }
    };
}
pub(crate) use into_string_impl;
