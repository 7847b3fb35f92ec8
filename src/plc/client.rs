//! HTTP client for a PLC directory: what a PDS needs to create and update its accounts' DIDs.
//!
//! Invariants:
//! - A non-2xx answer becomes [`PlcClientError::Status`] carrying the directory's own
//!   `message` (or the start of the body when it has none), so callers can show it.
//! - Responses are parsed with the same strict parsers the directory uses; a directory that
//!   serves something malformed is an error, never a panic.

use super::document::DocumentData;
use super::operation::{LogEntry, SignedOp};
use serde_json::Value;
use std::time::Duration;

/// Longest error body carried into an error message.
const BODY_ECHO_LIMIT: usize = 512;

/// Why a directory call failed.
#[derive(Debug, thiserror::Error)]
pub enum PlcClientError {
    /// The directory answered with an error status.
    #[error("PLC directory answered {status}: {message}")]
    Status { status: u16, message: String },
    /// The request did not complete (connection, timeout, TLS).
    #[error("PLC directory request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The directory answered 2xx with a body we couldn't understand.
    #[error("PLC directory sent an unexpected response: {0}")]
    Decode(String),
}

impl PlcClientError {
    /// The HTTP status, when the directory answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            PlcClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A client for one PLC directory (e.g. `https://plc.directory`).
#[derive(Debug, Clone)]
pub struct PlcClient {
    base: String,
    http: reqwest::Client,
}

impl PlcClient {
    /// A client for the directory at `base_url` with a 10 s request timeout.
    pub fn new(base_url: &str) -> Result<PlcClient, PlcClientError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(PlcClient::with_http(base_url, http))
    }

    /// A client sharing an existing `reqwest::Client`.
    pub fn with_http(base_url: &str, http: reqwest::Client) -> PlcClient {
        PlcClient {
            base: base_url.trim_end_matches('/').to_string(),
            http,
        }
    }

    /// The directory's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Submits a signed operation for `did` (`POST /{did}`).
    pub async fn submit(&self, did: &str, op: &SignedOp) -> Result<(), PlcClientError> {
        let resp = self
            .http
            .post(format!("{}/{did}", self.base))
            .json(&op.to_json())
            .send()
            .await?;
        check(resp).await.map(|_| ())
    }

    /// The DID's current PLC state (`GET /{did}/data`).
    pub async fn get_document_data(&self, did: &str) -> Result<DocumentData, PlcClientError> {
        let value = self.get_json(&format!("/{did}/data")).await?;
        serde_json::from_value(value)
            .map_err(|e| PlcClientError::Decode(format!("document data: {e}")))
    }

    /// The rendered DID document (`GET /{did}`).
    pub async fn get_document(&self, did: &str) -> Result<Value, PlcClientError> {
        self.get_json(&format!("/{did}")).await
    }

    /// The newest active operation (`GET /{did}/log/last`): what an update's `prev` names.
    pub async fn get_last_op(&self, did: &str) -> Result<SignedOp, PlcClientError> {
        let value = self.get_json(&format!("/{did}/log/last")).await?;
        SignedOp::from_json(&value).map_err(|e| PlcClientError::Decode(e.to_string()))
    }

    /// The active operations, genesis first (`GET /{did}/log`).
    pub async fn get_log(&self, did: &str) -> Result<Vec<SignedOp>, PlcClientError> {
        let value = self.get_json(&format!("/{did}/log")).await?;
        value
            .as_array()
            .ok_or_else(|| PlcClientError::Decode("log is not a JSON array".into()))?
            .iter()
            .map(|v| SignedOp::from_json(v).map_err(|e| PlcClientError::Decode(e.to_string())))
            .collect()
    }

    /// Every operation including nullified ones (`GET /{did}/log/audit`).
    pub async fn get_audit_log(&self, did: &str) -> Result<Vec<LogEntry>, PlcClientError> {
        let value = self.get_json(&format!("/{did}/log/audit")).await?;
        LogEntry::parse_log(&value).map_err(|e| PlcClientError::Decode(e.to_string()))
    }

    /// One page of `GET /export?after=<seq>&count=<count>` (sequenced format), one JSON value
    /// per line.
    pub async fn export(&self, after: u64, count: u32) -> Result<Vec<Value>, PlcClientError> {
        let resp = self
            .http
            .get(format!("{}/export?after={after}&count={count}", self.base))
            .send()
            .await?;
        let body = check(resp).await?;
        body.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .map_err(|e| PlcClientError::Decode(format!("export line: {e}")))
            })
            .collect()
    }

    async fn get_json(&self, path: &str) -> Result<Value, PlcClientError> {
        let resp = self.http.get(format!("{}{path}", self.base)).send().await?;
        let body = check(resp).await?;
        serde_json::from_str(&body).map_err(|e| PlcClientError::Decode(format!("{path}: {e}")))
    }
}

/// Returns the body of a 2xx response, or the directory's error message.
async fn check(resp: reqwest::Response) -> Result<String, PlcClientError> {
    let status = resp.status();
    let body = resp.text().await?;
    if status.is_success() {
        return Ok(body);
    }
    let message = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| body.chars().take(BODY_ECHO_LIMIT).collect());
    Err(PlcClientError::Status {
        status: status.as_u16(),
        message,
    })
}
