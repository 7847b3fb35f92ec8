//! Validating data values against Lexicon schemas.
//!
//! Invariants:
//! - Validation never changes the value (no defaults are filled in) and never panics, whatever
//!   the value or the catalog holds.
//! - Recursion is bounded: each step descends into the data or follows one ref, and the walk
//!   stops at [`MAX_STEPS`] levels, so neither deep data nor a ref cycle in a hand-built catalog
//!   can exhaust the stack.
//! - Objects accept properties their schema does not declare; open unions accept members with a
//!   `$type` they do not list (it must still be a well-formed type reference).
//! - Errors name the failing place as a `/`-separated path from `Record`, as the reference does.

use std::collections::BTreeMap;

use unicode_segmentation::UnicodeSegmentation;

use super::catalog::{Catalog, full_ref, split_ref};
use super::schema::{
    ArrayDef, BlobDef, BytesDef, Def, IntegerDef, ObjectDef, RecordKeyType, StringDef,
    StringFormat, UnionDef, valid_ref,
};
use crate::data::{self, Ipld};
use crate::syntax::{
    AtIdentifier, AtUri, CidString, Datetime, Did, Handle, Language, Nsid, RecordKey, Tid, Uri,
};

/// How deep validation may nest, counting data levels and ref hops. Data from the wire is
/// limited to [`data::MAX_DEPTH`] levels and each level takes at most two steps (a ref, then the
/// object), so only hand-built values or ref cycles reach this.
pub const MAX_STEPS: usize = 2 * data::MAX_DEPTH + 8;

/// Why a value does not match its schema. Displays as `"{path} {message}"`, e.g.
/// `Record/text must not be longer than 300 graphemes`; errors about the request as a whole
/// (an unknown type) have an empty path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    pub path: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ValidationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{} {}", self.path, self.message)
        }
    }
}

/// Validates a repository record: the collection must be a record type in `catalog`, `rkey` must
/// fit its key type, `$type` must equal the collection, and the record must match its schema.
pub fn validate_record(
    catalog: &Catalog,
    collection: &str,
    rkey: &str,
    record: &Ipld,
) -> Result<(), ValidationError> {
    let Some(def) = catalog.record(collection) else {
        return Err(ValidationError::new(
            "",
            format!("Lexicon not found: {collection:.317}"),
        ));
    };
    check_rkey(&def.key, rkey)?;
    let Ipld::Map(map) = record else {
        return Err(ValidationError::new("Record", "must be an object"));
    };
    match map.get("$type") {
        Some(Ipld::String(t)) if t == collection => {}
        Some(Ipld::String(t)) => {
            return Err(ValidationError::new(
                "Record/$type",
                format!("must be \"{collection}\", not \"{t:.317}\""),
            ));
        }
        Some(_) => return Err(ValidationError::new("Record/$type", "must be a string")),
        None => {
            return Err(ValidationError::new(
                "Record",
                "must have the property \"$type\"",
            ));
        }
    }
    let Some(object) = def.object() else {
        // `LexiconDoc::check` makes every record's schema an object.
        return Err(ValidationError::new(
            "",
            format!("Lexicon {collection} has no record object"),
        ));
    };
    let mut v = Validator {
        catalog,
        path: String::from("Record"),
        depth: 0,
    };
    v.object(collection, object, map)
}

/// Validates `value` against the definition a schema reference names (`nsid` or `nsid#name`),
/// for data other than whole records (XRPC bodies, union members); `root` names the value in
/// error paths (the reference uses `Input`, `Output`, `Message`...).
pub fn validate_value(
    catalog: &Catalog,
    reference: &str,
    root: &str,
    value: &Ipld,
) -> Result<(), ValidationError> {
    let Some(target) = catalog
        .resolve("", reference)
        .filter(|_| valid_ref(reference))
    else {
        return Err(ValidationError::new(
            "",
            format!("Lexicon not found: {reference:.317}"),
        ));
    };
    let mut v = Validator {
        catalog,
        path: root.to_owned(),
        depth: 0,
    };
    match target.def {
        Def::Record(r) => match r.object() {
            Some(o) => v.object_value(target.nsid, o, value),
            None => Err(v.err("has no record object")),
        },
        def => v.def(target.nsid, def, value),
    }
}

/// Checks a record key against a record type's `key`.
fn check_rkey(key: &RecordKeyType, rkey: &str) -> Result<(), ValidationError> {
    let err = |m: String| Err(ValidationError::new("Record key", m));
    if !RecordKey::is_valid(rkey) {
        return err(format!("\"{rkey:.512}\" is not a valid record key"));
    }
    match key {
        RecordKeyType::Any => Ok(()),
        RecordKeyType::Tid if Tid::is_valid(rkey) => Ok(()),
        RecordKeyType::Tid => err(format!("\"{rkey}\" must be a TID")),
        RecordKeyType::Nsid if Nsid::is_valid(rkey) => Ok(()),
        RecordKeyType::Nsid => err(format!("\"{rkey}\" must be an NSID")),
        RecordKeyType::Literal(lit) if lit == rkey => Ok(()),
        RecordKeyType::Literal(lit) => err(format!("\"{rkey}\" must be \"{lit}\"")),
    }
}

struct Validator<'a> {
    catalog: &'a Catalog,
    /// The current location; pushed and truncated around each step.
    path: String,
    depth: usize,
}

impl<'a> Validator<'a> {
    fn err(&self, message: impl Into<String>) -> ValidationError {
        ValidationError::new(self.path.clone(), message)
    }

    /// Runs `f` with `/segment` appended to the path.
    fn at<T>(&mut self, segment: &dyn std::fmt::Display, f: impl FnOnce(&mut Self) -> T) -> T {
        let len = self.path.len();
        use std::fmt::Write;
        // Writing to a String cannot fail.
        let _ = write!(self.path, "/{segment}");
        let out = f(self);
        self.path.truncate(len);
        out
    }

    /// Validates `value` against `def`, found in document `context` (for local refs).
    fn def(&mut self, context: &str, def: &'a Def, value: &Ipld) -> Result<(), ValidationError> {
        if self.depth >= MAX_STEPS {
            return Err(self.err("is nested too deeply"));
        }
        self.depth += 1;
        let out = self.def_inner(context, def, value);
        self.depth -= 1;
        out
    }

    fn def_inner(
        &mut self,
        context: &str,
        def: &'a Def,
        value: &Ipld,
    ) -> Result<(), ValidationError> {
        match def {
            Def::Boolean(b) => match value {
                Ipld::Bool(x) => match b.const_value {
                    Some(c) if c != *x => Err(self.err(format!("must be {c}"))),
                    _ => Ok(()),
                },
                _ => Err(self.err("must be a boolean")),
            },
            Def::Integer(i) => match value {
                Ipld::Integer(x) => self.integer(i, *x),
                _ => Err(self.err("must be an integer")),
            },
            Def::String(s) => match value {
                Ipld::String(x) => self.string(s, x),
                _ => Err(self.err("must be a string")),
            },
            Def::Bytes(b) => match value {
                Ipld::Bytes(x) => self.bytes(b, x),
                _ => Err(self.err("must be a byte array")),
            },
            Def::CidLink(_) => match value {
                Ipld::Link(_) => Ok(()),
                _ => Err(self.err("must be a CID")),
            },
            Def::Blob(b) => self.blob(b, value),
            Def::Null(_) => match value {
                Ipld::Null => Ok(()),
                _ => Err(self.err("must be null")),
            },
            Def::Array(a) => self.array(context, a, value),
            Def::Object(o) => self.object_value(context, o, value),
            Def::Ref(r) => {
                let Some(target) = self.catalog.resolve(context, &r.reference) else {
                    return Err(self.err(format!("refers to a missing lexicon {}", r.reference)));
                };
                match target.def {
                    Def::Record(rec) => match rec.object() {
                        Some(o) => self.object_value(target.nsid, o, value),
                        None => Err(self.err("refers to a record without an object")),
                    },
                    Def::Token(_) | Def::Ref(_) | Def::Union(_) => Err(self.err(format!(
                        "refers to a {} ({}), which can not describe data",
                        target.def.type_name(),
                        r.reference
                    ))),
                    other => self.def(target.nsid, other, value),
                }
            }
            Def::Union(u) => self.union(context, u, value),
            Def::Unknown(_) => self.unknown(value),
            Def::Record(_)
            | Def::Query(_)
            | Def::Procedure(_)
            | Def::Subscription(_)
            | Def::PermissionSet(_)
            | Def::Token(_)
            | Def::Params(_)
            | Def::Permission(_) => Err(self.err(format!(
                "has a schema of type {}, which can not describe data",
                def.type_name()
            ))),
        }
    }

    fn integer(&self, def: &IntegerDef, x: i128) -> Result<(), ValidationError> {
        if let Some(c) = def.const_value
            && i128::from(c) != x
        {
            return Err(self.err(format!("must be {c}")));
        }
        if let Some(values) = &def.enum_values
            && !values.iter().any(|v| i128::from(*v) == x)
        {
            return Err(self.err(format!("must be one of ({})", join(values, "|"))));
        }
        if let Some(max) = def.maximum
            && x > i128::from(max)
        {
            return Err(self.err(format!("can not be greater than {max}")));
        }
        if let Some(min) = def.minimum
            && x < i128::from(min)
        {
            return Err(self.err(format!("can not be less than {min}")));
        }
        Ok(())
    }

    fn string(&self, def: &StringDef, s: &str) -> Result<(), ValidationError> {
        if let Some(c) = &def.const_value
            && c != s
        {
            return Err(self.err(format!("must be {c}")));
        }
        if let Some(values) = &def.enum_values
            && !values.iter().any(|v| v == s)
        {
            return Err(self.err(format!("must be one of ({})", values.join("|"))));
        }
        let bytes = s.len() as u64;
        if let Some(max) = def.max_length
            && bytes > max
        {
            return Err(self.err(format!("must not be longer than {max} characters")));
        }
        if let Some(min) = def.min_length
            && bytes < min
        {
            return Err(self.err(format!("must not be shorter than {min} characters")));
        }
        // Every grapheme is at least one byte, so count only when the byte length can't decide.
        if let Some(max) = def.max_graphemes
            && bytes > max
            && graphemes(s) > max
        {
            return Err(self.err(format!("must not be longer than {max} graphemes")));
        }
        if let Some(min) = def.min_graphemes
            && (bytes < min || graphemes(s) < min)
        {
            return Err(self.err(format!("must not be shorter than {min} graphemes")));
        }
        if let Some(format) = def.format
            && !format_ok(format, s)
        {
            return Err(self.err(format!("must be a valid {}", format.as_str())));
        }
        Ok(())
    }

    fn bytes(&self, def: &BytesDef, b: &[u8]) -> Result<(), ValidationError> {
        let len = b.len() as u64;
        if let Some(max) = def.max_length
            && len > max
        {
            return Err(self.err(format!("must not be larger than {max} bytes")));
        }
        if let Some(min) = def.min_length
            && len < min
        {
            return Err(self.err(format!("must not be smaller than {min} bytes")));
        }
        Ok(())
    }

    fn blob(&self, def: &BlobDef, value: &Ipld) -> Result<(), ValidationError> {
        let Ipld::Map(map) = value else {
            return Err(self.err("should be a blob ref"));
        };
        match map.get("$type") {
            Some(Ipld::String(t)) if t == "blob" => {}
            None if map.contains_key("cid") => {
                // The pre-2023 `{cid, mimeType}` form: readable in old data, never written now.
                return Err(self.err("is a legacy blob ref, which new records may not use"));
            }
            _ => return Err(self.err("should be a blob ref")),
        }
        let (Some(Ipld::Link(_)), Some(Ipld::String(mime)), Some(Ipld::Integer(size))) =
            (map.get("ref"), map.get("mimeType"), map.get("size"))
        else {
            return Err(self.err("should be a blob ref"));
        };
        if mime.is_empty() || *size < 0 {
            return Err(self.err("should be a blob ref"));
        }
        if let Some(accept) = &def.accept
            && !accept.iter().any(|pattern| mime_matches(pattern, mime))
        {
            return Err(self.err("has unexpected blob mime type"));
        }
        if let Some(max) = def.max_size
            && *size > i128::from(max)
        {
            return Err(self.err(format!("is too big: more than {max} bytes")));
        }
        Ok(())
    }

    fn array(
        &mut self,
        context: &str,
        def: &'a ArrayDef,
        value: &Ipld,
    ) -> Result<(), ValidationError> {
        let Ipld::List(items) = value else {
            return Err(self.err("must be an array"));
        };
        let len = items.len() as u64;
        if let Some(max) = def.max_length
            && len > max
        {
            return Err(self.err(format!("must not have more than {max} elements")));
        }
        if let Some(min) = def.min_length
            && len < min
        {
            return Err(self.err(format!("must not have fewer than {min} elements")));
        }
        for (i, item) in items.iter().enumerate() {
            self.at(&i, |v| v.def(context, &def.items, item))?;
        }
        Ok(())
    }

    fn object_value(
        &mut self,
        context: &str,
        def: &'a ObjectDef,
        value: &Ipld,
    ) -> Result<(), ValidationError> {
        match value {
            Ipld::Map(map) => self.object(context, def, map),
            _ => Err(self.err("must be an object")),
        }
    }

    fn object(
        &mut self,
        context: &str,
        def: &'a ObjectDef,
        map: &BTreeMap<String, Ipld>,
    ) -> Result<(), ValidationError> {
        for key in &def.required {
            if !map.contains_key(key) {
                return Err(self.err(format!("must have the property \"{key}\"")));
            }
        }
        for (key, prop) in &def.properties {
            match map.get(key) {
                None => {}
                Some(Ipld::Null) if def.nullable.contains(key) => {}
                Some(value) => self.at(key, |v| v.def(context, prop, value))?,
            }
        }
        Ok(())
    }

    fn union(
        &mut self,
        context: &str,
        def: &'a UnionDef,
        value: &Ipld,
    ) -> Result<(), ValidationError> {
        let Ipld::Map(map) = value else {
            return Err(self.err("must be an object which includes the \"$type\" property"));
        };
        let Some(Ipld::String(ty)) = map.get("$type") else {
            return Err(self.err("must be an object which includes the \"$type\" property"));
        };
        // Data names `main` definitions without the suffix; accept `#main` as the reference does.
        let ty = ty.strip_suffix("#main").unwrap_or(ty);
        let member = def.refs.iter().find(|r| {
            let (nsid, name) = split_ref(context, r);
            full_ref(nsid, name) == ty
        });
        let Some(member) = member else {
            if def.closed {
                return Err(self.err(format!("$type must be one of {}", def.refs.join(", "))));
            }
            if !valid_ref(ty) || ty.starts_with('#') {
                return Err(self.at(&"$type", |v| v.err("must be a valid type reference")));
            }
            // An open union: a member this schema version does not know is allowed.
            return Ok(());
        };
        let Some(target) = self.catalog.resolve(context, member) else {
            return Err(self.err(format!("refers to a missing lexicon {member}")));
        };
        match target.def {
            Def::Object(o) => self.object(target.nsid, o, map),
            Def::Record(r) => match r.object() {
                Some(o) => self.object(target.nsid, o, map),
                None => Err(self.err("refers to a record without an object")),
            },
            other => Err(self.err(format!(
                "refers to a {} ({member}), which can not be a union member",
                other.type_name()
            ))),
        }
    }

    fn unknown(&self, value: &Ipld) -> Result<(), ValidationError> {
        let Ipld::Map(map) = value else {
            return Err(self.err("must be an object"));
        };
        if matches!(map.get("$type"), Some(Ipld::String(t)) if t == "blob") {
            return Err(self.err("must be an object, not a blob"));
        }
        // The contents are not schema-checked, but must still be valid data (no floats, well
        // formed nested blobs).
        data::validate(value).map_err(|e| self.err(format!("must be valid data: {e}")))
    }
}

/// Extended grapheme clusters in `s`.
fn graphemes(s: &str) -> u64 {
    s.graphemes(true).count() as u64
}

fn format_ok(format: StringFormat, s: &str) -> bool {
    match format {
        StringFormat::AtIdentifier => AtIdentifier::is_valid(s),
        StringFormat::AtUri => AtUri::is_valid(s),
        StringFormat::Cid => CidString::is_valid(s),
        StringFormat::Datetime => Datetime::is_valid(s),
        StringFormat::Did => Did::is_valid(s),
        StringFormat::Handle => Handle::is_valid(s),
        StringFormat::Nsid => Nsid::is_valid(s),
        StringFormat::Tid => Tid::is_valid(s),
        StringFormat::RecordKey => RecordKey::is_valid(s),
        StringFormat::Uri => Uri::is_valid(s),
        StringFormat::Language => Language::is_valid(s),
    }
}

/// Whether `mime` fits an accept pattern (`*/*`, `type/*` or exact; MIME types ignore case).
fn mime_matches(pattern: &str, mime: &str) -> bool {
    if pattern == "*/*" {
        return true;
    }
    match pattern.strip_suffix("/*") {
        Some(ty) => mime
            .split_once('/')
            .is_some_and(|(t, _)| t.eq_ignore_ascii_case(ty)),
        None => pattern.eq_ignore_ascii_case(mime),
    }
}

fn join(values: &[i64], sep: &str) -> String {
    values
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}
