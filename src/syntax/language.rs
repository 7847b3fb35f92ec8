//! Lexicon `language`: BCP 47 language tags (RFC 5646), e.g. `ja`, `pt-BR`, `zh-Hant`.
//!
//! Two levels:
//! - *well-formed* ([`Language::is_well_formed`]): the RFC 5646 grammar, case-insensitive, as
//!   the Lexicon spec asks for lenient record validation;
//! - *strict* (parsing, `FromStr`): well-formed, and also what the upstream interop fixtures
//!   reject: an upper-case or 4-letter primary language subtag (`JA`, `jaja`), and a repeated
//!   variant or extension singleton (RFC 5646 §2.2.5, §2.2.6; `de-DE-1901-1901`, `en-a-x-a-y`).

use super::{Reason, SyntaxError, bad_char, char_at, into_string_impl, string_format_impls};
use std::str::FromStr;

/// Irregular grandfathered tags: they do not fit the grammar and are accepted whole
/// (case-insensitively). The regular ones (`zh-hakka`, `art-lojban`, ...) parse normally.
const IRREGULAR: [&str; 17] = [
    "en-GB-oed",
    "i-ami",
    "i-bnn",
    "i-default",
    "i-enochian",
    "i-hak",
    "i-klingon",
    "i-lux",
    "i-mingo",
    "i-navajo",
    "i-pwn",
    "i-tao",
    "i-tay",
    "i-tsu",
    "sgn-BE-FR",
    "sgn-BE-NL",
    "sgn-CH-DE",
];

/// A language tag that passes strict parsing. Kept as given (case is not normalised).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Language(String);

impl Language {
    /// The tag as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `s` passes strict parsing (no allocation).
    pub fn is_valid(s: &str) -> bool {
        check(s, true).is_ok()
    }

    /// Whether `s` is a well-formed BCP 47 tag (RFC 5646 grammar only; accepts `JA`, `jaja` and
    /// repeated subtags). For lenient Lexicon validation of third-party records.
    pub fn is_well_formed(s: &str) -> bool {
        check(s, false).is_ok()
    }

    /// The primary language subtag: `pt` for `pt-BR`, `x` for a private-use tag, `i` for
    /// `i-navajo`.
    pub fn primary_language(&self) -> &str {
        self.0.split('-').next().unwrap_or_default()
    }
}

fn is_alpha(t: &str) -> bool {
    t.bytes().all(|b| b.is_ascii_alphabetic())
}

fn is_digit(t: &str) -> bool {
    t.bytes().all(|b| b.is_ascii_digit())
}

fn is_variant(t: &str) -> bool {
    (5..=8).contains(&t.len()) || (t.len() == 4 && t.as_bytes()[0].is_ascii_digit())
}

fn is_singleton(t: &str) -> bool {
    t.len() == 1 && !t.eq_ignore_ascii_case("x")
}

/// Bit index of an extension singleton (0-9, a-z), for duplicate detection without allocation.
fn singleton_bit(t: &str) -> u64 {
    match t.as_bytes().first().map(u8::to_ascii_lowercase) {
        Some(b @ b'0'..=b'9') => 1 << (b - b'0'),
        Some(b @ b'a'..=b'z') => 1 << (10 + b - b'a'),
        _ => 0,
    }
}

/// Subtags with their byte offsets.
struct Subtags<'a> {
    s: &'a str,
    pos: usize,
    done: bool,
}

impl<'a> Subtags<'a> {
    fn peek(&self) -> Option<&'a str> {
        if self.done {
            return None;
        }
        let rest = self.s.get(self.pos..)?;
        Some(rest.split('-').next().unwrap_or_default())
    }

    fn next(&mut self) -> Option<(usize, &'a str)> {
        let t = self.peek()?;
        let at = self.pos;
        self.pos += t.len() + 1;
        self.done = self.pos > self.s.len();
        Some((at, t))
    }
}

fn check(s: &str, strict: bool) -> Result<(), Reason> {
    if s.is_empty() {
        return Err("empty".into());
    }
    // Every subtag: 1-8 ASCII letters or digits.
    let mut offset = 0usize;
    for t in s.split('-') {
        if t.is_empty() {
            return Err("empty subtag".into());
        }
        if let Some(i) = t.bytes().position(|b| !b.is_ascii_alphanumeric()) {
            return Err(bad_char(char_at(s, offset + i)));
        }
        if t.len() > 8 {
            return Err(format!("subtag {t:?} is longer than 8 characters").into());
        }
        offset += t.len() + 1;
    }
    let first = s.split('-').next().unwrap_or_default();
    if strict && first.bytes().any(|b| b.is_ascii_uppercase()) && !first.eq_ignore_ascii_case("x") {
        return Err("primary language subtag must be lower-case".into());
    }
    if IRREGULAR.iter().any(|g| g.eq_ignore_ascii_case(s)) {
        return Ok(());
    }

    let mut tags = Subtags {
        s,
        pos: 0,
        done: false,
    };
    let (_, lang) = tags.next().unwrap_or_default();
    if lang.eq_ignore_ascii_case("x") {
        return private_use(&mut tags);
    }
    if !is_alpha(lang) {
        return Err("primary language subtag must be letters".into());
    }
    match lang.len() {
        2 | 3 => {
            // Up to three extended language subtags (`zh-min-nan`).
            for _ in 0..3 {
                match tags.peek() {
                    Some(t) if t.len() == 3 && is_alpha(t) => {
                        tags.next();
                    }
                    _ => break,
                }
            }
        }
        4 if strict => return Err("4-letter primary language subtags are reserved".into()),
        4..=8 => {}
        _ => return Err("primary language subtag must be 2-3 or 5-8 letters".into()),
    }
    if tags.peek().is_some_and(|t| t.len() == 4 && is_alpha(t)) {
        tags.next(); // script
    }
    if tags
        .peek()
        .is_some_and(|t| (t.len() == 2 && is_alpha(t)) || (t.len() == 3 && is_digit(t)))
    {
        tags.next(); // region
    }
    // Variants: contiguous, so earlier ones are the text between `start` and `end`.
    let mut variants: Option<(usize, usize)> = None;
    while let Some(t) = tags.peek().filter(|t| is_variant(t)) {
        let (at, _) = tags.next().unwrap_or_default();
        let (start, end) = variants.unwrap_or((at, at));
        if strict
            && s.get(start..end)
                .unwrap_or_default()
                .split('-')
                .any(|v| v.eq_ignore_ascii_case(t))
        {
            return Err(format!("variant subtag {t:?} is repeated").into());
        }
        variants = Some((start, at + t.len()));
    }
    let mut singletons = 0u64;
    while let Some(t) = tags.peek().filter(|t| is_singleton(t)) {
        tags.next();
        let bit = singleton_bit(t);
        if strict && singletons & bit != 0 {
            return Err(format!("extension singleton {t:?} is repeated").into());
        }
        singletons |= bit;
        let mut n = 0;
        while tags.peek().is_some_and(|e| (2..=8).contains(&e.len())) {
            tags.next();
            n += 1;
        }
        if n == 0 {
            return Err(
                format!("extension {t:?} needs at least one subtag of 2-8 characters").into(),
            );
        }
    }
    if tags.peek().is_some_and(|t| t.eq_ignore_ascii_case("x")) {
        tags.next();
        return private_use(&mut tags);
    }
    match tags.peek() {
        None => Ok(()),
        Some(t) => Err(format!("subtag {t:?} is out of place").into()),
    }
}

/// After `x`: one or more subtags of 1-8 characters (already checked), to the end.
fn private_use(tags: &mut Subtags<'_>) -> Result<(), Reason> {
    if tags.peek().is_none() {
        return Err("private-use 'x' needs at least one subtag".into());
    }
    Ok(())
}

impl FromStr for Language {
    type Err = SyntaxError;
    fn from_str(s: &str) -> Result<Self, SyntaxError> {
        check(s, true).map_err(|r| SyntaxError::new("language", s, r))?;
        Ok(Language(s.to_owned()))
    }
}

impl TryFrom<String> for Language {
    type Error = SyntaxError;
    fn try_from(s: String) -> Result<Self, SyntaxError> {
        check(&s, true).map_err(|r| SyntaxError::new("language", &s, r))?;
        Ok(Language(s))
    }
}

string_format_impls!(Language, "a BCP 47 language tag");
into_string_impl!(Language);
