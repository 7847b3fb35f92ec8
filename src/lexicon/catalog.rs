//! [`Catalog`]: a set of Lexicon documents keyed by NSID, and reference resolution.
//!
//! Invariants: every document in a catalog passed [`LexiconDoc::check`], and no two share an id.
//! A catalog may still hold refs to documents it lacks (tests build small ones); a complete set
//! such as [`Catalog::builtin`] passes [`Catalog::check_refs`].

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::builtin;
use super::schema::{Def, LexiconDoc, RecordDef, SchemaError};

/// A set of Lexicon documents.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    docs: BTreeMap<String, LexiconDoc>,
}

/// A definition found by [`Catalog::resolve`], with the document it lives in (local refs inside
/// it resolve against that document).
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    pub nsid: &'a str,
    pub name: &'a str,
    pub def: &'a Def,
}

impl Resolved<'_> {
    /// The reference as data names it in `$type`: `nsid` for `main`, else `nsid#name`.
    pub fn type_name(&self) -> String {
        full_ref(self.nsid, self.name)
    }
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// A catalog of the given documents; two with the same id are an error.
    pub fn from_docs(docs: impl IntoIterator<Item = LexiconDoc>) -> Result<Catalog, SchemaError> {
        let mut catalog = Catalog::new();
        for doc in docs {
            catalog.add(doc)?;
        }
        Ok(catalog)
    }

    /// Adds a document (re-checking it, since its fields are public).
    pub fn add(&mut self, doc: LexiconDoc) -> Result<(), SchemaError> {
        doc.check()?;
        let id = doc.id.as_str().to_owned();
        if self.docs.contains_key(&id) {
            return Err(SchemaError::new(format!("{id}: defined twice")));
        }
        self.docs.insert(id, doc);
        Ok(())
    }

    /// The schemas in `lexicons/`, parsed once.
    ///
    /// They are checked by the tests, so parsing cannot fail in a tested build; if it somehow
    /// does, the documents that failed are left out and logged, so their record types count as
    /// unknown rather than taking the server down.
    pub fn builtin() -> &'static Catalog {
        static BUILTIN: OnceLock<Catalog> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            let mut catalog = Catalog::new();
            for (path, text) in builtin::FILES {
                if let Err(e) = LexiconDoc::from_json_str(text).and_then(|doc| catalog.add(doc)) {
                    tracing::error!(path, error = %e, "built-in lexicon refused");
                }
            }
            catalog
        })
    }

    /// The schemas in `lexicons/`, failing on the first that does not parse or check.
    pub fn try_builtin() -> Result<Catalog, SchemaError> {
        let mut catalog = Catalog::new();
        for (path, text) in builtin::FILES {
            let doc = LexiconDoc::from_json_str(text)
                .map_err(|e| SchemaError::new(format!("lexicons/{path}.json: {e}")))?;
            if doc.id.as_str().replace('.', "/") != *path {
                return Err(SchemaError::new(format!(
                    "lexicons/{path}.json: id {} does not match the path",
                    doc.id
                )));
            }
            catalog.add(doc)?;
        }
        Ok(catalog)
    }

    /// `(path under lexicons/ without .json, JSON text)` of each built-in schema file.
    pub fn builtin_files() -> &'static [(&'static str, &'static str)] {
        builtin::FILES
    }

    /// The document with this id.
    pub fn doc(&self, nsid: &str) -> Option<&LexiconDoc> {
        self.docs.get(nsid)
    }

    /// All documents, by id.
    pub fn docs(&self) -> impl Iterator<Item = &LexiconDoc> {
        self.docs.values()
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Definition `name` of document `nsid`.
    pub fn get(&self, nsid: &str, name: &str) -> Option<&Def> {
        self.docs.get(nsid)?.defs.get(name)
    }

    /// The record definition of a collection, if the catalog knows it as a record type.
    pub fn record(&self, nsid: &str) -> Option<&RecordDef> {
        match self.get(nsid, "main")? {
            Def::Record(r) => Some(r),
            _ => None,
        }
    }

    /// Resolves a reference as written in a schema: `#name` (in document `context`), `nsid`
    /// (its `main`) or `nsid#name`.
    pub fn resolve<'a>(&'a self, context: &str, reference: &str) -> Option<Resolved<'a>> {
        let (nsid, name) = split_ref(context, reference);
        let (id, doc) = self.docs.get_key_value(nsid)?;
        let (name, def) = doc.defs.get_key_value(name)?;
        Some(Resolved {
            nsid: id,
            name,
            def,
        })
    }

    /// Checks that every `ref` and union member in every document resolves, and to a kind of
    /// definition it may point at: a ref to an object, record or concrete type (never a token),
    /// a union member to an object or record.
    pub fn check_refs(&self) -> Result<(), SchemaError> {
        for doc in self.docs.values() {
            for (name, def) in &doc.defs {
                self.check_refs_in(doc.id.as_str(), def, &format!("{}#{name}", doc.id))?;
            }
        }
        Ok(())
    }

    fn check_refs_in(&self, context: &str, def: &Def, at: &str) -> Result<(), SchemaError> {
        let lookup = |r: &str| {
            self.resolve(context, r)
                .ok_or_else(|| SchemaError::new(format!("{at}: ref {r:?} does not resolve")))
        };
        match def {
            Def::Ref(r) => {
                let target = lookup(&r.reference)?;
                if matches!(target.def, Def::Token(_)) || !target.def.is_refable() {
                    return Err(SchemaError::new(format!(
                        "{at}: ref {:?} points at a {}",
                        r.reference,
                        target.def.type_name()
                    )));
                }
                Ok(())
            }
            Def::Union(u) => {
                for r in &u.refs {
                    let target = lookup(r)?;
                    if !matches!(target.def, Def::Object(_) | Def::Record(_)) {
                        return Err(SchemaError::new(format!(
                            "{at}: union member {r:?} is a {}, not an object or record",
                            target.def.type_name()
                        )));
                    }
                }
                Ok(())
            }
            Def::Record(r) => self.check_refs_in(context, &r.record, at),
            Def::Object(o) => o
                .properties
                .iter()
                .try_for_each(|(k, p)| self.check_refs_in(context, p, &format!("{at}/{k}"))),
            Def::Params(p) => p
                .properties
                .iter()
                .try_for_each(|(k, p)| self.check_refs_in(context, p, &format!("{at}/{k}"))),
            Def::Array(a) => self.check_refs_in(context, &a.items, at),
            Def::Query(q) => {
                self.check_opt(context, q.parameters.as_deref(), at)?;
                let out = q.output.as_ref().and_then(|b| b.schema.as_deref());
                self.check_opt(context, out, at)
            }
            Def::Procedure(p) => {
                self.check_opt(context, p.parameters.as_deref(), at)?;
                let input = p.input.as_ref().and_then(|b| b.schema.as_deref());
                self.check_opt(context, input, at)?;
                let out = p.output.as_ref().and_then(|b| b.schema.as_deref());
                self.check_opt(context, out, at)
            }
            Def::Subscription(s) => {
                self.check_opt(context, s.parameters.as_deref(), at)?;
                let msg = s.message.as_ref().map(|m| m.schema.as_ref());
                self.check_opt(context, msg, at)
            }
            _ => Ok(()),
        }
    }

    fn check_opt(&self, context: &str, def: Option<&Def>, at: &str) -> Result<(), SchemaError> {
        def.map_or(Ok(()), |d| self.check_refs_in(context, d, at))
    }
}

/// `(nsid, name)` of a reference written in document `context`.
pub(crate) fn split_ref<'a>(context: &'a str, reference: &'a str) -> (&'a str, &'a str) {
    match reference.split_once('#') {
        Some(("", name)) => (context, name),
        Some((nsid, name)) => (nsid, name),
        None => (reference, "main"),
    }
}

/// The `$type` spelling of a definition: `nsid` for `main`, `nsid#name` otherwise.
pub(crate) fn full_ref(nsid: &str, name: &str) -> String {
    if name == "main" {
        nsid.to_owned()
    } else {
        format!("{nsid}#{name}")
    }
}
