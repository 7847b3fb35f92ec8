//! Request bodies: a capped reader and the JSON extractor for procedures.
//!
//! The cap is enforced twice: a declared `Content-Length` over the limit is refused before
//! reading anything, and the running total is checked as frames arrive (a chunked body can lie
//! by omission). Either way the client gets 413, never a truncated parse: `PayloadTooLarge`
//! for raw bodies, `PayloadTooLargeError` for JSON ones (the names the reference gives them).

use std::pin::Pin;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use super::XrpcError;

/// JSON body cap for procedures: 150 KiB, as the reference's `payload.jsonLimit`.
pub const JSON_BODY_LIMIT: usize = 150 * 1024;

/// JSON body cap for record writes (`createRecord`, `putRecord`, `applyWrites`), as the
/// reference.
pub const RECORD_BODY_LIMIT: usize = 1_000_000;

/// A JSON request body deserialized into `T`, capped at `LIMIT` bytes ([`JSON_BODY_LIMIT`]
/// unless a method allows more).
///
/// Failures: wrong or missing `Content-Type` and mistyped JSON give 400 `InvalidRequest`,
/// malformed JSON 400 `SyntaxError`; an oversize body gives 413 `PayloadTooLargeError`.
#[derive(Debug, Clone)]
pub struct XrpcJson<T, const LIMIT: usize = JSON_BODY_LIMIT>(pub T);

impl<S: Send + Sync, T: DeserializeOwned, const LIMIT: usize> FromRequest<S>
    for XrpcJson<T, LIMIT>
{
    type Rejection = XrpcError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        check_json_content_type(req.headers())?;
        let (parts, body) = req.into_parts();
        // The reference's JSON body parser names an oversize body differently from its XRPC
        // layer (which refuses oversize blobs as `PayloadTooLarge`).
        let bytes = read_body(&parts.headers, body, LIMIT)
            .await
            .map_err(|mut e| {
                if e.status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    e.error = "PayloadTooLargeError".into();
                }
                e
            })?;
        // An empty body reads as `{}`, as the reference's body parser has it, so the missing
        // fields are named rather than the JSON called malformed.
        let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        serde_json::from_slice(bytes)
            .map(XrpcJson)
            .map_err(json_body_error)
    }
}

/// Text that is not JSON at all is a `SyntaxError`, the name the reference's body parser gives
/// it; JSON of the wrong shape is `InvalidRequest`.
pub fn json_body_error(e: serde_json::Error) -> XrpcError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => {
            XrpcError::bad_request("SyntaxError", format!("Invalid JSON body: {e}"))
        }
        Category::Data | Category::Io => {
            XrpcError::invalid_request(format!("Invalid JSON body: {e}"))
        }
    }
}

fn check_json_content_type(headers: &HeaderMap) -> Result<(), XrpcError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(XrpcError::invalid_request(
            "Request encoding (Content-Type) required but not provided",
        ));
    };
    let ct = value.to_str().unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        let shown: String = ct.chars().take(64).collect();
        Err(XrpcError::invalid_request(format!(
            "Wrong request encoding (Content-Type): {shown}"
        )))
    }
}

/// Reads a whole body of at most `limit` bytes. For handlers that take raw bodies (blob
/// uploads, CAR imports) with their own limit.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, XrpcError> {
    let too_large = || XrpcError::payload_too_large(format!("request body exceeds {limit} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }

    let mut body = body;
    let mut buf: Vec<u8> = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > limit {
                        return Err(too_large());
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => {
                // The server-wide body limit (tower-http) surfaces as a body error; it is still
                // "too large", not a broken request.
                if is_length_limit_error(&e) {
                    return Err(too_large());
                }
                return Err(XrpcError::invalid_request("failed to read request body"));
            }
        }
    }
    Ok(Bytes::from(buf))
}

fn is_length_limit_error(e: &axum::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.to_string() == "length limit exceeded" {
            return true;
        }
        cur = err.source();
    }
    false
}
