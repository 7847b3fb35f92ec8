//! lexicon: Lexicon v1 schemas and record validation.
//!
//! - [`schema`]: the schema document types, parsed with serde and checked ([`LexiconDoc`]).
//! - [`Catalog`]: a set of documents with ref resolution; [`Catalog::builtin`] is the
//!   `lexicons/` directory compiled in.
//! - [`validate_record`]: a record against its collection's schema; [`check_write`]: the
//!   reference PDS's `validate` semantics for createRecord/putRecord/applyWrites.
//!
//! Invariants:
//! - Pure: no I/O, no HTTP, no SQL. Schemas come compiled in or from the caller.
//! - A schema in a [`Catalog`] passed [`LexiconDoc::check`]; validation never panics on any
//!   value, and reports the first problem with its path (`Record/embed/images/0/image ...`).
//! - A record type is *known* when the catalog has a `record` definition for it; with the
//!   built-in catalog that is exactly the reference PDS's list, [`is_known_record_type`].

mod builtin;
mod catalog;
pub mod schema;
mod validate;

pub use catalog::{Catalog, Resolved};
pub use schema::{Def, LexiconDoc, SchemaError};
pub use validate::{MAX_STEPS, ValidationError, validate_record, validate_value};

use crate::data::Ipld;

/// The record types the reference PDS validates (its hard-coded list); the built-in catalog has
/// a schema for each.
pub const KNOWN_RECORD_TYPES: &[&str] = &[
    "app.bsky.actor.profile",
    "app.bsky.actor.status",
    "app.bsky.feed.generator",
    "app.bsky.feed.like",
    "app.bsky.feed.post",
    "app.bsky.feed.postgate",
    "app.bsky.feed.repost",
    "app.bsky.feed.threadgate",
    "app.bsky.graph.block",
    "app.bsky.graph.follow",
    "app.bsky.graph.list",
    "app.bsky.graph.listblock",
    "app.bsky.graph.listitem",
    "app.bsky.graph.starterpack",
    "app.bsky.graph.verification",
    "app.bsky.labeler.service",
    "app.bsky.notification.declaration",
    "chat.bsky.actor.declaration",
    "com.atproto.lexicon.schema",
    "com.germnetwork.declaration",
];

/// Whether the reference PDS validates records of this collection.
pub fn is_known_record_type(nsid: &str) -> bool {
    KNOWN_RECORD_TYPES.contains(&nsid)
}

/// The XRPC `validate` parameter of a record write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationMode {
    /// `validate: true`: the type must be known and the record valid.
    Required,
    /// `validate: false`: no schema validation (data-model rules still apply elsewhere).
    Skip,
    /// Unset: validate known types, let unknown ones through.
    Optional,
}

impl ValidationMode {
    /// From the parameter as parsed: `Some(true)`, `Some(false)` or absent.
    pub fn from_param(validate: Option<bool>) -> ValidationMode {
        match validate {
            Some(true) => ValidationMode::Required,
            Some(false) => ValidationMode::Skip,
            None => ValidationMode::Optional,
        }
    }
}

impl From<Option<bool>> for ValidationMode {
    fn from(validate: Option<bool>) -> Self {
        ValidationMode::from_param(validate)
    }
}

/// The `validationStatus` a write reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationStatus {
    Valid,
    Unknown,
}

impl ValidationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationStatus::Valid => "valid",
            ValidationStatus::Unknown => "unknown",
        }
    }
}

/// Validates a record write the way the reference PDS does: `Skip` gives `Ok(None)` (no status
/// in the response); an unknown type is an error under `Required` (`Unknown lexicon type: ...`)
/// and `Some(Unknown)` under `Optional`; a known type must validate and gives `Some(Valid)`.
pub fn check_write(
    catalog: &Catalog,
    mode: ValidationMode,
    collection: &str,
    rkey: &str,
    record: &Ipld,
) -> Result<Option<ValidationStatus>, ValidationError> {
    if mode == ValidationMode::Skip {
        return Ok(None);
    }
    if catalog.record(collection).is_none() {
        return match mode {
            ValidationMode::Required => Err(ValidationError::new(
                "",
                format!("Unknown lexicon type: {collection:.317}"),
            )),
            _ => Ok(Some(ValidationStatus::Unknown)),
        };
    }
    validate_record(catalog, collection, rkey, record)?;
    Ok(Some(ValidationStatus::Valid))
}
