//! xrpc: the XRPC error type and the request plumbing every `/xrpc/<nsid>` handler uses.
//!
//! Invariants:
//! - Every error a client sees under `/xrpc/` is an [`XrpcError`]: status + JSON
//!   `{"error": <Name>, "message": <text>}` with `Content-Type: application/json`. The
//!   extractors here ([`XrpcQuery`], [`XrpcJson`]) turn every failure into one, and the server's
//!   error-normalising middleware converts anything else (axum rejections, 405s, the body
//!   limit's 413) so no plain-text error escapes.
//! - A 500 never carries internal detail: [`XrpcError::internal`] logs its cause and sends a
//!   generic message.
//! - Nothing here panics on any input: query strings are decoded by hand (bad percent-escapes
//!   and non-UTF-8 become `InvalidRequest`), bodies are read with a byte cap before parsing.
//! - Error names are ASCII constants with no whitespace (the XRPC spec); constructors taking a
//!   caller's name are for Lexicon-specific errors such as `RecordNotFound`.

mod body;
mod params;

pub use body::{JSON_BODY_LIMIT, RECORD_BODY_LIMIT, XrpcJson, json_body_error, read_body};
pub use params::{ParamsError, XrpcQuery, from_query_str};

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An XRPC error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XrpcError {
    pub status: StatusCode,
    /// The error type name, e.g. `InvalidRequest`.
    pub error: String,
    /// Human-readable description.
    pub message: Option<String>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

impl XrpcError {
    pub fn new(status: StatusCode, error: impl Into<String>, message: impl Into<String>) -> Self {
        XrpcError {
            status,
            error: error.into(),
            message: Some(message.into()),
        }
    }

    /// 400 `InvalidRequest`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
    }

    /// 400 with a Lexicon-specific error name (e.g. `HandleNotAvailable`), as the reference's
    /// `InvalidRequestError(message, name)`.
    pub fn bad_request(error: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, message)
    }

    /// 401 `AuthMissing`: no credentials on a route that needs them (the reference's
    /// `AuthRequiredError(..., 'AuthMissing')`).
    pub fn auth_missing() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "AuthMissing",
            "Authentication Required",
        )
    }

    /// 401 `AuthenticationRequired`: credentials present but not acceptable for this route.
    pub fn authentication_required(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "AuthenticationRequired", message)
    }

    /// 400 `InvalidToken` (the reference reports bad bearer tokens as 400, not 401).
    pub fn invalid_token(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidToken", message)
    }

    /// 400 `ExpiredToken` (expired or revoked; 400 as the reference).
    pub fn expired_token(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ExpiredToken", message)
    }

    /// 403 `Forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    /// 404 with the given name (`NotFound`, or a Lexicon name such as `RepoNotFound`).
    pub fn not_found(error: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, error, message)
    }

    /// 413 `PayloadTooLarge`.
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge", message)
    }

    /// 429 `RateLimitExceeded`.
    pub fn rate_limit_exceeded() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RateLimitExceeded",
            "Rate Limit Exceeded",
        )
    }

    /// 500 `InternalServerError`. The cause is logged here and never sent to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal server error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "Internal Server Error",
        )
    }

    /// 501 `MethodNotImplemented`.
    pub fn method_not_implemented() -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            "MethodNotImplemented",
            "Method Not Implemented",
        )
    }

    /// 502 `UpstreamFailure`.
    pub fn upstream_failure(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "UpstreamFailure", message)
    }

    /// 504 `UpstreamTimeout`.
    pub fn upstream_timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "UpstreamTimeout", message)
    }

    /// The 400 a known method gives for the wrong HTTP verb (wording as the reference).
    pub fn wrong_method(got: &axum::http::Method, expected: &str) -> Self {
        Self::invalid_request(format!("Incorrect HTTP method ({got}) expected {expected}"))
    }
}

impl std::fmt::Display for XrpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.message {
            Some(m) => write!(f, "{} ({}): {m}", self.error, self.status.as_u16()),
            None => write!(f, "{} ({})", self.error, self.status.as_u16()),
        }
    }
}

impl std::error::Error for XrpcError {}

impl IntoResponse for XrpcError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: &self.error,
            message: self.message.as_deref(),
        };
        let mut resp = (self.status, Json(body)).into_response();
        // Json already sets the content type; this keeps it exact even if that changes.
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

/// The success of a procedure without output: 200 and an empty body, as the reference sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoOutput;

impl IntoResponse for NoOutput {
    fn into_response(self) -> Response {
        StatusCode::OK.into_response()
    }
}

/// Handler result type: `Ok` is any response, `Err` an [`XrpcError`].
pub type XrpcResult<T> = Result<T, XrpcError>;

/// The route path for an NSID: `/xrpc/<nsid>`.
pub fn path(nsid: &str) -> String {
    format!("/xrpc/{nsid}")
}
