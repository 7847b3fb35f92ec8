//! Query parameters (`?a=1&b=x&b=y`) into a typed struct, with errors that name the parameter.
//!
//! XRPC params differ from what `serde_urlencoded` handles: a repeated key is an array
//! (`?uris=a&uris=b` → `Vec<String>`), and values are always strings that the target type
//! parses (`limit=50` → `u32`, `reverse=true` → `bool`). This module is a small serde
//! `Deserializer` over the decoded pairs that does exactly that, and reports
//! `missing required parameter "did"` / `invalid parameter "limit": must be an integer`.
//!
//! Unknown parameters are ignored (as the reference does unless a Lexicon forbids them).
//! Structs using `#[serde(flatten)]` only work with string fields (serde buffers flattened
//! values through `deserialize_any`, which sees strings).

use std::collections::BTreeMap;
use std::fmt;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};

use super::XrpcError;

/// Query parameters deserialized into `T`; failures are 400 `InvalidRequest`.
#[derive(Debug, Clone)]
pub struct XrpcQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for XrpcQuery<T> {
    type Rejection = XrpcError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        from_query_str(query)
            .map(XrpcQuery)
            .map_err(|e| XrpcError::invalid_request(e.to_string()))
    }
}

/// Why a query string did not deserialize. The text is client-facing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamsError(String);

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParamsError {}

impl de::Error for ParamsError {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        ParamsError(msg.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        ParamsError(format!("missing required parameter {field:?}"))
    }
}

/// Deserializes a raw query string (without the `?`).
pub fn from_query_str<T: DeserializeOwned>(query: &str) -> Result<T, ParamsError> {
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode_component(k)?;
        let value = decode_component(v)?;
        params.entry(key).or_default().push(value);
    }
    T::deserialize(ParamsDeserializer {
        iter: params.into_iter(),
        pending: None,
    })
}

/// `application/x-www-form-urlencoded` component decoding: `+` is a space, `%XX` a byte, and
/// the result must be UTF-8.
fn decode_component(s: &str) -> Result<String, ParamsError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                // Both digits must be hex (`from_str_radix` alone would accept a sign).
                let hex = match bytes.get(i + 1..i + 3) {
                    Some(&[hi, lo]) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                        std::str::from_utf8(&[hi, lo])
                            .ok()
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                    }
                    _ => None,
                };
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => {
                        return Err(ParamsError(
                            "invalid percent-encoding in query string".into(),
                        ));
                    }
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ParamsError("query string is not valid UTF-8".into()))
}

struct ParamsDeserializer {
    iter: std::collections::btree_map::IntoIter<String, Vec<String>>,
    pending: Option<(String, Vec<String>)>,
}

impl<'de> de::Deserializer<'de> for ParamsDeserializer {
    type Error = ParamsError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamsError> {
        visitor.visit_map(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl<'de> MapAccess<'de> for ParamsDeserializer {
    type Error = ParamsError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ParamsError> {
        match self.iter.next() {
            None => Ok(None),
            Some((key, values)) => {
                let k = seed.deserialize(key.as_str().into_deserializer())?;
                self.pending = Some((key, values));
                Ok(Some(k))
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ParamsError> {
        let (key, values) = self
            .pending
            .take()
            .ok_or_else(|| ParamsError("internal: value requested before key".into()))?;
        seed.deserialize(ValueDeserializer { values: &values })
            .map_err(|e| ParamsError(format!("invalid parameter {key:?}: {e}")))
    }
}

/// All values given for one key.
struct ValueDeserializer<'a> {
    values: &'a [String],
}

impl<'a> ValueDeserializer<'a> {
    /// The single value of a scalar parameter.
    fn one(&self) -> Result<&'a str, ParamsError> {
        match self.values {
            [v] => Ok(v),
            [] => Err(ParamsError("no value given".into())),
            _ => Err(ParamsError("expected a single value".into())),
        }
    }

    fn parse<T: std::str::FromStr>(&self, what: &str) -> Result<T, ParamsError> {
        self.one()?
            .parse()
            .map_err(|_| ParamsError(format!("must be {what}")))
    }
}

macro_rules! parse_number {
    ($($method:ident $visit:ident $ty:ty, $what:literal;)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamsError> {
            visitor.$visit(self.parse::<$ty>($what)?)
        })*
    };
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'_> {
    type Error = ParamsError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamsError> {
        if self.values.len() > 1 {
            self.deserialize_seq(visitor)
        } else {
            visitor.visit_string(self.one()?.to_owned())
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamsError> {
        match self.one()? {
            "true" => visitor.visit_bool(true),
            "false" => visitor.visit_bool(false),
            _ => Err(ParamsError("must be a boolean (true or false)".into())),
        }
    }

    parse_number! {
        deserialize_i8 visit_i8 i8, "an integer";
        deserialize_i16 visit_i16 i16, "an integer";
        deserialize_i32 visit_i32 i32, "an integer";
        deserialize_i64 visit_i64 i64, "an integer";
        deserialize_u8 visit_u8 u8, "a non-negative integer";
        deserialize_u16 visit_u16 u16, "a non-negative integer";
        deserialize_u32 visit_u32 u32, "a non-negative integer";
        deserialize_u64 visit_u64 u64, "a non-negative integer";
        deserialize_f32 visit_f32 f32, "a number";
        deserialize_f64 visit_f64 f64, "a number";
        deserialize_char visit_char char, "a single character";
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamsError> {
        // A key that is present at all means `Some`; absence is handled by serde's defaults.
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ParamsError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamsError> {
        visitor.visit_seq(de::value::SeqDeserializer::new(
            self.values
                .iter()
                .map(|v| ValueDeserializer::from_one(std::slice::from_ref(v))),
        ))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ParamsError> {
        let v: de::value::StrDeserializer<'_, ParamsError> = self.one()?.into_deserializer();
        visitor.visit_enum(v)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamsError> {
        visitor.visit_string(self.one()?.to_owned())
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamsError> {
        visitor.visit_string(self.one()?.to_owned())
    }

    serde::forward_to_deserialize_any! {
        i128 u128 bytes byte_buf unit unit_struct tuple tuple_struct map struct
        identifier ignored_any
    }
}

impl<'a> ValueDeserializer<'a> {
    fn from_one(values: &'a [String]) -> Self {
        ValueDeserializer { values }
    }
}

impl<'de, 'a> IntoDeserializer<'de, ParamsError> for ValueDeserializer<'a> {
    type Deserializer = ValueDeserializer<'a>;

    fn into_deserializer(self) -> Self::Deserializer {
        self
    }
}
