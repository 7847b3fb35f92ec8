//! Lexicon v1 schema documents, parsed with serde and then checked against the rules the JSON
//! shape alone cannot express.
//!
//! Invariant: a [`LexiconDoc`] returned by [`LexiconDoc::from_json`] or
//! [`LexiconDoc::from_json_str`] has passed [`LexiconDoc::check`]: `lexicon` is 1, there is at
//! least one definition, primary types appear only as `main`, `ref`/`union`/`unknown`/`params`/
//! `permission` are never named definitions, nested schemas sit only where the spec allows them,
//! every `ref` string is well formed, and `required` names only declared properties. Whether a
//! `ref` *resolves* depends on the other documents, so that is [`super::Catalog::check_refs`].
//!
//! Unknown JSON fields are ignored (descriptions, future additions); unknown `type` values and
//! string `format`s are refused, because data under them could not be validated.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::syntax::{Nsid, RecordKey};

/// Why a Lexicon document (or a set of them) is not a usable schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SchemaError {
    pub message: String,
}

impl SchemaError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        SchemaError {
            message: message.into(),
        }
    }
}

/// One Lexicon JSON file: `{"lexicon": 1, "id": <nsid>, "defs": {...}}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LexiconDoc {
    pub lexicon: u32,
    pub id: Nsid,
    #[serde(default)]
    pub revision: Option<u64>,
    #[serde(default)]
    pub description: Option<String>,
    pub defs: BTreeMap<String, Def>,
}

/// Any schema node, tagged by its `type` field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Def {
    // Primary types.
    Record(RecordDef),
    Query(QueryDef),
    Procedure(ProcedureDef),
    Subscription(SubscriptionDef),
    PermissionSet(PermissionSetDef),
    // Container and concrete types.
    Object(ObjectDef),
    Array(ArrayDef),
    Boolean(BooleanDef),
    Integer(IntegerDef),
    String(StringDef),
    Bytes(BytesDef),
    CidLink(CidLinkDef),
    Blob(BlobDef),
    Null(NullDef),
    // Meta types.
    Token(TokenDef),
    Ref(RefDef),
    Union(UnionDef),
    Unknown(UnknownDef),
    // Sub-types, only valid in one place each.
    Params(ParamsDef),
    Permission(PermissionDef),
}

impl Def {
    /// The `type` string of this definition.
    pub fn type_name(&self) -> &'static str {
        match self {
            Def::Record(_) => "record",
            Def::Query(_) => "query",
            Def::Procedure(_) => "procedure",
            Def::Subscription(_) => "subscription",
            Def::PermissionSet(_) => "permission-set",
            Def::Object(_) => "object",
            Def::Array(_) => "array",
            Def::Boolean(_) => "boolean",
            Def::Integer(_) => "integer",
            Def::String(_) => "string",
            Def::Bytes(_) => "bytes",
            Def::CidLink(_) => "cid-link",
            Def::Blob(_) => "blob",
            Def::Null(_) => "null",
            Def::Token(_) => "token",
            Def::Ref(_) => "ref",
            Def::Union(_) => "union",
            Def::Unknown(_) => "unknown",
            Def::Params(_) => "params",
            Def::Permission(_) => "permission",
        }
    }

    /// Record, query, procedure, subscription or permission-set: allowed only as `main`.
    pub fn is_primary(&self) -> bool {
        matches!(
            self,
            Def::Record(_)
                | Def::Query(_)
                | Def::Procedure(_)
                | Def::Subscription(_)
                | Def::PermissionSet(_)
        )
    }

    /// Whether a `ref` may point at this kind of definition: data-describing types and records.
    pub(crate) fn is_refable(&self) -> bool {
        matches!(
            self,
            Def::Record(_)
                | Def::Object(_)
                | Def::Array(_)
                | Def::Boolean(_)
                | Def::Integer(_)
                | Def::String(_)
                | Def::Bytes(_)
                | Def::CidLink(_)
                | Def::Blob(_)
                | Def::Null(_)
        )
    }

    /// Types that describe a data value, so may be an object property or array items.
    fn is_field(&self) -> bool {
        matches!(
            self,
            Def::Object(_)
                | Def::Array(_)
                | Def::Boolean(_)
                | Def::Integer(_)
                | Def::String(_)
                | Def::Bytes(_)
                | Def::CidLink(_)
                | Def::Blob(_)
                | Def::Null(_)
                | Def::Ref(_)
                | Def::Union(_)
                | Def::Unknown(_)
        )
    }
}

/// `record`: the schema of repository records of this NSID.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RecordDef {
    pub key: RecordKeyType,
    /// Always [`Def::Object`] after [`LexiconDoc::check`]; kept as a `Def` so a missing `type`
    /// is a parse error rather than silently read as an object.
    pub record: Box<Def>,
}

impl RecordDef {
    /// The record's object schema.
    pub fn object(&self) -> Option<&ObjectDef> {
        match self.record.as_ref() {
            Def::Object(o) => Some(o),
            _ => None,
        }
    }
}

/// The `key` of a record type: which record keys its records may be stored under.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum RecordKeyType {
    Tid,
    Nsid,
    Any,
    /// `literal:<value>`: exactly one key, e.g. `self`.
    Literal(String),
}

impl TryFrom<String> for RecordKeyType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "tid" => Ok(RecordKeyType::Tid),
            "nsid" => Ok(RecordKeyType::Nsid),
            "any" => Ok(RecordKeyType::Any),
            _ => match s.strip_prefix("literal:") {
                Some(lit) if RecordKey::is_valid(lit) => Ok(RecordKeyType::Literal(lit.to_owned())),
                _ => Err(format!("invalid record key type {s:.64?}")),
            },
        }
    }
}

impl std::fmt::Display for RecordKeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordKeyType::Tid => f.write_str("tid"),
            RecordKeyType::Nsid => f.write_str("nsid"),
            RecordKeyType::Any => f.write_str("any"),
            RecordKeyType::Literal(l) => write!(f, "literal:{l}"),
        }
    }
}

/// `query`: an XRPC GET endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct QueryDef {
    #[serde(default)]
    pub parameters: Option<Box<Def>>,
    #[serde(default)]
    pub output: Option<Body>,
    #[serde(default)]
    pub errors: Vec<ErrorDef>,
}

/// `procedure`: an XRPC POST endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProcedureDef {
    #[serde(default)]
    pub parameters: Option<Box<Def>>,
    #[serde(default)]
    pub input: Option<Body>,
    #[serde(default)]
    pub output: Option<Body>,
    #[serde(default)]
    pub errors: Vec<ErrorDef>,
}

/// `subscription`: an event stream.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SubscriptionDef {
    #[serde(default)]
    pub parameters: Option<Box<Def>>,
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub errors: Vec<ErrorDef>,
}

/// An XRPC request or response body.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Body {
    pub encoding: String,
    #[serde(default)]
    pub schema: Option<Box<Def>>,
}

/// A subscription's message schema (a union of refs).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Message {
    pub schema: Box<Def>,
}

/// A named XRPC error an endpoint may return.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorDef {
    pub name: String,
}

/// `permission-set`: a bundle of OAuth permissions.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PermissionSetDef {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default, rename = "title:lang")]
    pub title_lang: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default, rename = "detail:lang")]
    pub detail_lang: Option<BTreeMap<String, String>>,
    pub permissions: Vec<Def>,
}

/// `permission`: one entry of a permission set. Fields beyond these depend on the resource and
/// are ignored here (access control is not this module's job).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionDef {
    pub resource: String,
    #[serde(default)]
    pub collection: Option<Vec<String>>,
    #[serde(default)]
    pub action: Option<Vec<String>>,
    #[serde(default)]
    pub lxm: Option<Vec<String>>,
    #[serde(default)]
    pub aud: Option<String>,
    #[serde(default)]
    pub inherit_aud: Option<bool>,
}

/// `object`: a map with declared properties; undeclared keys are allowed in data.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ObjectDef {
    pub properties: BTreeMap<String, Def>,
    #[serde(default)]
    pub required: Vec<String>,
    #[serde(default)]
    pub nullable: Vec<String>,
}

/// `params`: XRPC query parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ParamsDef {
    pub properties: BTreeMap<String, Def>,
    #[serde(default)]
    pub required: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArrayDef {
    pub items: Box<Def>,
    #[serde(default)]
    pub min_length: Option<u64>,
    #[serde(default)]
    pub max_length: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BooleanDef {
    #[serde(default)]
    pub default: Option<bool>,
    #[serde(default, rename = "const")]
    pub const_value: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IntegerDef {
    #[serde(default)]
    pub minimum: Option<i64>,
    #[serde(default)]
    pub maximum: Option<i64>,
    #[serde(default, rename = "enum")]
    pub enum_values: Option<Vec<i64>>,
    #[serde(default)]
    pub default: Option<i64>,
    #[serde(default, rename = "const")]
    pub const_value: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StringDef {
    #[serde(default)]
    pub format: Option<StringFormat>,
    /// In UTF-8 bytes.
    #[serde(default)]
    pub max_length: Option<u64>,
    #[serde(default)]
    pub min_length: Option<u64>,
    /// In extended grapheme clusters.
    #[serde(default)]
    pub max_graphemes: Option<u64>,
    #[serde(default)]
    pub min_graphemes: Option<u64>,
    /// Suggestions only: other values are valid.
    #[serde(default)]
    pub known_values: Option<Vec<String>>,
    #[serde(default, rename = "enum")]
    pub enum_values: Option<Vec<String>>,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default, rename = "const")]
    pub const_value: Option<String>,
}

/// The Lexicon string formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StringFormat {
    AtIdentifier,
    AtUri,
    Cid,
    Datetime,
    Did,
    Handle,
    Nsid,
    Tid,
    RecordKey,
    Uri,
    Language,
}

impl StringFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            StringFormat::AtIdentifier => "at-identifier",
            StringFormat::AtUri => "at-uri",
            StringFormat::Cid => "cid",
            StringFormat::Datetime => "datetime",
            StringFormat::Did => "did",
            StringFormat::Handle => "handle",
            StringFormat::Nsid => "nsid",
            StringFormat::Tid => "tid",
            StringFormat::RecordKey => "record-key",
            StringFormat::Uri => "uri",
            StringFormat::Language => "language",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BytesDef {
    #[serde(default)]
    pub min_length: Option<u64>,
    #[serde(default)]
    pub max_length: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CidLinkDef {}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobDef {
    /// MIME types; `type/*` and `*/*` are globs.
    #[serde(default)]
    pub accept: Option<Vec<String>>,
    #[serde(default)]
    pub max_size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NullDef {}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenDef {}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RefDef {
    #[serde(rename = "ref")]
    pub reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UnionDef {
    pub refs: Vec<String>,
    /// Open (the default) unions accept variants they do not list.
    #[serde(default)]
    pub closed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UnknownDef {}

impl LexiconDoc {
    /// Parses and checks one Lexicon document.
    pub fn from_json(value: &serde_json::Value) -> Result<LexiconDoc, SchemaError> {
        let doc = LexiconDoc::deserialize(value).map_err(|e| SchemaError::new(e.to_string()))?;
        doc.check()?;
        Ok(doc)
    }

    /// Parses and checks one Lexicon document from JSON text.
    pub fn from_json_str(s: &str) -> Result<LexiconDoc, SchemaError> {
        let doc: LexiconDoc =
            serde_json::from_str(s).map_err(|e| SchemaError::new(e.to_string()))?;
        doc.check()?;
        Ok(doc)
    }

    /// The document-level rules (see the module invariant).
    pub fn check(&self) -> Result<(), SchemaError> {
        let id = &self.id;
        if self.lexicon != 1 {
            return Err(SchemaError::new(format!(
                "{id}: unsupported lexicon version {}",
                self.lexicon
            )));
        }
        if self.defs.is_empty() {
            return Err(SchemaError::new(format!("{id}: no definitions")));
        }
        for (name, def) in &self.defs {
            let at = || format!("{id}#{name}");
            if name.is_empty() || name.contains('#') {
                return Err(SchemaError::new(format!(
                    "{}: invalid definition name",
                    at()
                )));
            }
            if def.is_primary() && name != "main" {
                return Err(SchemaError::new(format!(
                    "{}: a {} must be the main definition",
                    at(),
                    def.type_name()
                )));
            }
            if matches!(
                def,
                Def::Ref(_) | Def::Union(_) | Def::Unknown(_) | Def::Params(_) | Def::Permission(_)
            ) {
                return Err(SchemaError::new(format!(
                    "{}: a {} can not be a named definition",
                    at(),
                    def.type_name()
                )));
            }
            check_def(def, &at())?;
        }
        Ok(())
    }
}

/// Rules for one definition and what it contains. `at` names it in errors.
fn check_def(def: &Def, at: &str) -> Result<(), SchemaError> {
    let err = |msg: String| Err(SchemaError::new(format!("{at}: {msg}")));
    match def {
        Def::Record(r) => match r.record.as_ref() {
            Def::Object(o) => check_object(&o.properties, &o.required, &o.nullable, at),
            other => err(format!(
                "a record's schema must be an object, not {}",
                other.type_name()
            )),
        },
        Def::Query(q) => {
            check_params(q.parameters.as_deref(), at)?;
            check_body(q.output.as_ref(), &format!("{at}/output"))
        }
        Def::Procedure(p) => {
            check_params(p.parameters.as_deref(), at)?;
            check_body(p.input.as_ref(), &format!("{at}/input"))?;
            check_body(p.output.as_ref(), &format!("{at}/output"))
        }
        Def::Subscription(s) => {
            check_params(s.parameters.as_deref(), at)?;
            match s.message.as_ref().map(|m| m.schema.as_ref()) {
                None => Ok(()),
                Some(u @ Def::Union(_)) => check_def(u, &format!("{at}/message")),
                Some(other) => err(format!(
                    "a subscription message must be a union, not {}",
                    other.type_name()
                )),
            }
        }
        Def::PermissionSet(ps) => {
            for p in &ps.permissions {
                if !matches!(p, Def::Permission(_)) {
                    return err(format!(
                        "a permission set holds permissions, not {}",
                        p.type_name()
                    ));
                }
            }
            Ok(())
        }
        Def::Object(o) => check_object(&o.properties, &o.required, &o.nullable, at),
        Def::Array(a) => {
            check_min_max(a.min_length, a.max_length, at)?;
            check_field(&a.items, &format!("{at}/items"))
        }
        Def::Integer(i) => {
            if i.const_value.is_some() && i.default.is_some() {
                return err("const and default are mutually exclusive".into());
            }
            match (i.minimum, i.maximum) {
                (Some(min), Some(max)) if min > max => err("minimum exceeds maximum".into()),
                _ => Ok(()),
            }
        }
        Def::Boolean(b) => {
            if b.const_value.is_some() && b.default.is_some() {
                return err("const and default are mutually exclusive".into());
            }
            Ok(())
        }
        Def::String(s) => {
            if s.const_value.is_some() && s.default.is_some() {
                return err("const and default are mutually exclusive".into());
            }
            check_min_max(s.min_length, s.max_length, at)?;
            check_min_max(s.min_graphemes, s.max_graphemes, at)
        }
        Def::Bytes(b) => check_min_max(b.min_length, b.max_length, at),
        Def::Blob(b) => {
            for pattern in b.accept.iter().flatten() {
                if !valid_accept(pattern) {
                    return err(format!("invalid blob accept pattern {pattern:.64?}"));
                }
            }
            Ok(())
        }
        Def::Ref(r) => {
            if !valid_ref(&r.reference) {
                return err(format!("invalid ref {:.100?}", r.reference));
            }
            Ok(())
        }
        Def::Union(u) => {
            if u.closed && u.refs.is_empty() {
                return err("a closed union needs at least one ref".into());
            }
            match u.refs.iter().find(|r| !valid_ref(r)) {
                Some(r) => err(format!("invalid ref {r:.100?}")),
                None => Ok(()),
            }
        }
        Def::Params(p) => {
            check_object(&p.properties, &p.required, &[], at)?;
            for (name, prop) in &p.properties {
                let ok = match prop {
                    Def::Boolean(_) | Def::Integer(_) | Def::String(_) | Def::Unknown(_) => true,
                    Def::Array(a) => {
                        matches!(*a.items, Def::Boolean(_) | Def::Integer(_) | Def::String(_))
                    }
                    _ => false,
                };
                if !ok {
                    return err(format!(
                        "parameter {name:?} must be a boolean, integer, string or array of those"
                    ));
                }
            }
            Ok(())
        }
        Def::Permission(p) => {
            if p.resource.is_empty() {
                return err("a permission needs a resource".into());
            }
            Ok(())
        }
        Def::CidLink(_) | Def::Null(_) | Def::Token(_) | Def::Unknown(_) => Ok(()),
    }
}

fn check_object(
    properties: &BTreeMap<String, Def>,
    required: &[String],
    nullable: &[String],
    at: &str,
) -> Result<(), SchemaError> {
    for name in required.iter().chain(nullable) {
        if !properties.contains_key(name) {
            return Err(SchemaError::new(format!(
                "{at}: {name:?} is required or nullable but not a property"
            )));
        }
    }
    for (name, prop) in properties {
        check_field(prop, &format!("{at}/{name}"))?;
    }
    Ok(())
}

/// A nested schema that must describe a data value.
fn check_field(def: &Def, at: &str) -> Result<(), SchemaError> {
    if !def.is_field() {
        return Err(SchemaError::new(format!(
            "{at}: a {} can not describe a field",
            def.type_name()
        )));
    }
    check_def(def, at)
}

fn check_params(params: Option<&Def>, at: &str) -> Result<(), SchemaError> {
    match params {
        None => Ok(()),
        Some(p @ Def::Params(_)) => check_def(p, &format!("{at}/parameters")),
        Some(other) => Err(SchemaError::new(format!(
            "{at}: parameters must be params, not {}",
            other.type_name()
        ))),
    }
}

fn check_body(body: Option<&Body>, at: &str) -> Result<(), SchemaError> {
    match body.and_then(|b| b.schema.as_deref()) {
        None => Ok(()),
        Some(s @ (Def::Object(_) | Def::Ref(_) | Def::Union(_))) => check_def(s, at),
        Some(other) => Err(SchemaError::new(format!(
            "{at}: a body schema must be an object, ref or union, not {}",
            other.type_name()
        ))),
    }
}

fn check_min_max(min: Option<u64>, max: Option<u64>, at: &str) -> Result<(), SchemaError> {
    match (min, max) {
        (Some(min), Some(max)) if min > max => Err(SchemaError::new(format!(
            "{at}: minimum length {min} exceeds maximum {max}"
        ))),
        _ => Ok(()),
    }
}

/// `#name`, `nsid` or `nsid#name`.
pub(crate) fn valid_ref(r: &str) -> bool {
    match r.split_once('#') {
        Some((nsid, name)) => {
            !name.is_empty() && !name.contains('#') && (nsid.is_empty() || Nsid::is_valid(nsid))
        }
        None => Nsid::is_valid(r),
    }
}

/// `*/*`, `type/*` or `type/subtype`; partial globs and a bare `*` are not patterns.
fn valid_accept(pattern: &str) -> bool {
    let Some((ty, sub)) = pattern.split_once('/') else {
        return false;
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    match (ty, sub) {
        ("*", "*") => true,
        ("*", _) => false,
        (ty, "*") => token(ty),
        (ty, sub) => token(ty) && token(sub),
    }
}
