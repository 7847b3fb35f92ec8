//! `com.atproto.sync.*`: reading repositories and blobs, for relays, app views and migrations.
//! Public methods; a valid access token only matters to let an account read its own data
//! while it is deactivated or taken down (the reference's `assertRepoAvailability`).

use crate::api::auth::auth_error;
use crate::auth::{Credentials, parse_authorization};
use crate::data::Cid;
use crate::server::{AppState, XrpcRoutes};
use crate::syntax::Did;
use crate::xrpc::{XrpcError, XrpcQuery};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

pub fn routes() -> XrpcRoutes {
    XrpcRoutes::new().query("com.atproto.sync.getBlob", get_blob)
}

/// The caller's DID when a Bearer access token is sent; `None` without credentials. An invalid
/// token is an error, not anonymity. Other schemes (admin Basic) read as anonymous for now.
fn optional_viewer(state: &AppState, headers: &HeaderMap) -> Result<Option<Did>, XrpcError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| XrpcError::invalid_token("Malformed authorization header"))?;
    match parse_authorization(Some(value)).map_err(auth_error)? {
        Some(Credentials::Bearer(token)) => {
            let claims = state
                .pds()?
                .tokens
                .verify_access(&token, chrono::Utc::now().timestamp())
                .map_err(auth_error)?;
            let did = claims
                .sub
                .parse()
                .map_err(|_| XrpcError::invalid_token("Malformed token"))?;
            Ok(Some(did))
        }
        _ => Ok(None),
    }
}

fn parse_did(s: &str) -> Result<Did, XrpcError> {
    s.parse()
        .map_err(|_| XrpcError::invalid_request(format!("Invalid did: {s}")))
}

fn parse_cid(s: &str) -> Result<Cid, XrpcError> {
    Cid::try_from(s).map_err(|e| XrpcError::invalid_request(format!("Invalid cid: {e}")))
}

#[derive(Deserialize)]
struct GetBlobParams {
    did: String,
    cid: String,
}

/// `getBlob`: streams the blob with the reference's defensive headers, so a browser that is
/// sent straight here neither renders nor sniffs it.
async fn get_blob(
    State(state): State<AppState>,
    headers: HeaderMap,
    XrpcQuery(q): XrpcQuery<GetBlobParams>,
) -> Result<Response, XrpcError> {
    let (did, cid) = (parse_did(&q.did)?, parse_cid(&q.cid)?);
    let viewer = optional_viewer(&state, &headers)?;
    let blob = state.pds()?.get_blob(&did, &cid, viewer.as_ref()).await?;
    let content_type = HeaderValue::from_str(&blob.mime_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{cid}\""))
        .map_err(|e| XrpcError::internal(format!("content-disposition: {e}")))?;
    let mut resp = Body::from_stream(blob.content.body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(blob.content.size));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CONTENT_DISPOSITION, disposition);
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok(resp)
}
