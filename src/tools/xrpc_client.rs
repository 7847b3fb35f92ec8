//! A minimal XRPC client for operator tools (`berth migrate`): JSON queries and procedures,
//! raw bodies (CARs, blobs), bearer tokens, and the server's `{error, message}` kept intact.

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// An XRPC error answered by a server.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{host}: {status} {error}: {message}")]
pub struct RemoteError {
    pub host: String,
    pub status: u16,
    pub error: String,
    pub message: String,
}

#[derive(Clone)]
pub struct XrpcClient {
    pub base: String,
    http: reqwest::Client,
    pub token: Option<String>,
}

impl XrpcClient {
    pub fn new(base: &str) -> anyhow::Result<XrpcClient> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(300))
            .build()?;
        Ok(XrpcClient {
            base: base.trim_end_matches('/').to_string(),
            http,
            token: None,
        })
    }

    pub fn with_token(&self, token: &str) -> XrpcClient {
        XrpcClient {
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    fn request(&self, method: Method, nsid: &str) -> reqwest::RequestBuilder {
        let req = self
            .http
            .request(method, format!("{}/xrpc/{nsid}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    async fn finish(&self, res: reqwest::Response) -> anyhow::Result<reqwest::Response> {
        let status = res.status();
        if status.is_success() {
            return Ok(res);
        }
        let body: Value = res.json().await.unwrap_or(Value::Null);
        Err(RemoteError {
            host: self.base.clone(),
            status: status.as_u16(),
            error: body["error"].as_str().unwrap_or("Error").to_string(),
            message: body["message"]
                .as_str()
                .unwrap_or(status.canonical_reason().unwrap_or(""))
                .to_string(),
        }
        .into())
    }

    /// A query (GET) with string parameters, answered with JSON.
    pub async fn query(&self, nsid: &str, params: &[(&str, &str)]) -> anyhow::Result<Value> {
        let res = self
            .request(Method::GET, nsid)
            .query(params)
            .send()
            .await
            .with_context(|| format!("{}: {nsid}", self.base))?;
        Ok(self.finish(res).await?.json().await?)
    }

    /// A query answered with raw bytes (CARs, blobs).
    pub async fn query_bytes(
        &self,
        nsid: &str,
        params: &[(&str, &str)],
    ) -> anyhow::Result<bytes::Bytes> {
        let res = self
            .request(Method::GET, nsid)
            .query(params)
            .send()
            .await
            .with_context(|| format!("{}: {nsid}", self.base))?;
        Ok(self.finish(res).await?.bytes().await?)
    }

    /// A blob download: its Content-Type and bytes.
    pub async fn query_blob(
        &self,
        nsid: &str,
        params: &[(&str, &str)],
    ) -> anyhow::Result<(String, bytes::Bytes)> {
        let res = self
            .request(Method::GET, nsid)
            .query(params)
            .send()
            .await
            .with_context(|| format!("{}: {nsid}", self.base))?;
        let res = self.finish(res).await?;
        let mime = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        Ok((mime, res.bytes().await?))
    }

    /// A procedure (POST) with a JSON body; an empty answer body reads as `{}`.
    pub async fn procedure(&self, nsid: &str, body: &Value) -> anyhow::Result<Value> {
        let res = self
            .request(Method::POST, nsid)
            .json(body)
            .send()
            .await
            .with_context(|| format!("{}: {nsid}", self.base))?;
        let bytes = self.finish(res).await?.bytes().await?;
        if bytes.is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// A procedure without input (the reference refuses a body where the lexicon has none).
    pub async fn procedure_no_input(&self, nsid: &str) -> anyhow::Result<Value> {
        let res = self
            .request(Method::POST, nsid)
            .send()
            .await
            .with_context(|| format!("{}: {nsid}", self.base))?;
        let bytes = self.finish(res).await?.bytes().await?;
        if bytes.is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// A procedure with a raw body of `content_type`.
    pub async fn procedure_bytes(
        &self,
        nsid: &str,
        content_type: &str,
        body: bytes::Bytes,
    ) -> anyhow::Result<Value> {
        let res = self
            .request(Method::POST, nsid)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .with_context(|| format!("{}: {nsid}", self.base))?;
        let bytes = self.finish(res).await?.bytes().await?;
        if bytes.is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// The remote XRPC error behind `e`, if that is what it is.
pub fn remote_error(e: &anyhow::Error) -> Option<&RemoteError> {
    e.downcast_ref::<RemoteError>()
}

/// Whether `e` is the server saying `status`.
pub fn is_status(e: &anyhow::Error, status: StatusCode) -> bool {
    remote_error(e).is_some_and(|r| r.status == status.as_u16())
}
