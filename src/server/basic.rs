//! Non-XRPC routes: `/`, `/robots.txt`, `/xrpc/_health` and the `/.well-known/` documents.
//! Bodies match the reference (`basic-routes.ts`, `well-known.ts`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::syntax::Handle;

const ROBOTS_TXT: &str =
    "# Hello!\n\n# Crawling the public API is allowed\nUser-agent: *\nAllow: /";

pub(super) async fn root() -> &'static str {
    "This is an AT Protocol Personal Data Server (PDS), served by berth.\n\n\
     Most API routes are under /xrpc/\n\n\
     Protocol: https://atproto.com\n"
}

pub(super) async fn robots_txt() -> &'static str {
    ROBOTS_TXT
}

/// `{version}`. Later: the reference also runs `select 1` on the account DB and answers 503
/// `{version, error: "Service Unavailable"}` when that fails; the accounts service adds its
/// check here.
pub(super) async fn health(State(state): State<AppState>) -> Response {
    Json(json!({ "version": state.config.service.version })).into_response()
}

pub(super) async fn oauth_protected_resource(State(state): State<AppState>) -> Response {
    let url = &state.config.service.public_url;
    let mut resp = Json(json!({
        "resource": url,
        "authorization_servers": [url],
        "bearer_methods_supported": ["header"],
        "scopes_supported": [],
        "resource_documentation": "https://atproto.com",
    }))
    .into_response();
    // Served with `*` even without an Origin header (as the reference), so any client can
    // discover the authorization server.
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

/// `/.well-known/atproto-did`: the Host header is the handle. Only handles under one of the
/// service handle domains (or a bare service domain) are answered, from local accounts.
pub(super) async fn atproto_did(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "User not found").into_response();
    let Some(handle) = host_handle(&headers, &uri) else {
        return not_found();
    };
    let domains = &state.config.identity.service_handle_domains;
    let h = handle.as_str();
    let ours = domains
        .iter()
        .any(|d| h.ends_with(d.as_str()) || d.strip_prefix('.') == Some(h));
    if !ours {
        return not_found();
    }
    // The resolver may do blocking I/O (SQLite), so it runs off the async workers.
    let resolver = state.local_handles.clone();
    match tokio::task::spawn_blocking(move || resolver.did_for_handle(&handle)).await {
        Ok(Some(did)) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            did.into_string(),
        )
            .into_response(),
        Ok(None) => not_found(),
        Err(e) => {
            tracing::error!(error = %e, "atproto-did resolver failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
        }
    }
}

/// The request's host as a normalised handle: `Host` (HTTP/1.1) or the URI authority
/// (HTTP/2), port removed, lowercased. `None` for anything that is not handle syntax
/// (IP literals, junk bytes, empty).
fn host_handle(headers: &HeaderMap, uri: &Uri) -> Option<Handle> {
    let raw = match headers.get(header::HOST) {
        Some(v) => v.to_str().ok()?,
        None => uri.authority()?.as_str(),
    };
    if raw.starts_with('[') {
        return None;
    }
    let host = match raw.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => raw,
    };
    host.parse::<Handle>().ok().map(|h| h.normalize())
}
