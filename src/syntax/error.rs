//! The one error type of the syntax module.

use std::fmt;

/// How many characters of the rejected input an error message quotes. Inputs can be megabytes
/// of attacker-controlled text; logs and API error bodies should not echo all of it.
const QUOTE_CHARS: usize = 64;

/// A string was rejected by one of the syntax parsers.
///
/// Displays as `invalid handle "foo..bar": empty label`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {}: {reason}", Quoted(.input))]
pub struct SyntaxError {
    /// The format that was expected, e.g. `"handle"`, `"did"`, `"at-uri"`.
    pub kind: &'static str,
    /// The start of the rejected input (at most 64 characters; longer input ends in `…`).
    pub input: String,
    /// The rule that was broken.
    pub reason: String,
}

impl SyntaxError {
    pub(crate) fn new(kind: &'static str, input: &str, reason: impl Into<String>) -> Self {
        let input = match input.char_indices().nth(QUOTE_CHARS) {
            Some((cut, _)) => format!("{}…", &input[..cut]),
            None => input.to_owned(),
        };
        SyntaxError {
            kind,
            input,
            reason: reason.into(),
        }
    }
}

/// Debug-quotes the input so whitespace and control characters are visible in messages.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
