//! server: the HTTP server — shared state, the one router, and `serve` with graceful shutdown.
//!
//! # Adding XRPC methods (the extension point)
//!
//! All routes are assembled in [`router`], and all XRPC methods in [`xrpc_methods`]: that
//! function is the single list of method groups. A new group (say `api/com/atproto/repo.rs`)
//! exposes
//!
//! ```ignore
//! pub fn routes() -> XrpcRoutes {
//!     XrpcRoutes::new()
//!         .query("com.atproto.repo.getRecord", get_record)
//!         .procedure("com.atproto.repo.createRecord", create_record)
//! }
//! ```
//!
//! and adds one `.merge(crate::api::com::atproto::repo::routes())` line to [`xrpc_methods`].
//! Handlers take `State<AppState>`, [`crate::xrpc::XrpcQuery`] / [`crate::xrpc::XrpcJson`]
//! and return `Result<impl IntoResponse, XrpcError>`.
//!
//! # Adding state
//!
//! [`AppState`] is cloned per request, so every field is an `Arc` (or cheap to clone). A service
//! (accounts, sequencer, identity, blobs) adds a field, builds it in [`AppState::new`] (or a
//! `with_*` setter while it is optional), and reaches it as `state.<field>` in handlers.
//!
//! # Invariants
//!
//! - Every response under `/xrpc/` that is an error is XRPC JSON: the [`normalize_xrpc_errors`]
//!   middleware converts the errors axum and tower-http produce on their own (405, 413 from
//!   the body limit, extractor rejections). Unknown methods get 501 `MethodNotImplemented`
//!   and a path that is not an NSID gets 400 `InvalidRequest`.
//! - Request bodies are capped server-wide at the largest limit any route needs (blob upload
//!   or repo import); JSON procedures cap lower ([`crate::xrpc::JSON_BODY_LIMIT`]).
//! - No handler here panics on any input; the only panics are route-registration mistakes
//!   while building the router (see [`XrpcRoutes`]).
//! - CORS is permissive (any origin, mirrored request headers, max-age 1 day), as the
//!   reference's `cors({maxAge: 86400})`; a preflight is answered 204.
//! - An XRPC answer to a request with credentials is `Cache-Control: private`, `Vary:
//!   Authorization`.

mod basic;
mod describe;
mod metrics;
mod routes;

pub use routes::{MethodKind, XrpcRoutes};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Request};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use tokio::net::TcpListener;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::pds::Pds;
use crate::syntax::{Did, Handle, Nsid};
use crate::xrpc::{self, XrpcError};

/// Looks up the DID of a local account by its (normalised) handle, for
/// `/.well-known/atproto-did`. Called on a blocking thread, so it may touch SQLite.
/// Any `Fn(&Handle) -> Option<Did>` closure is one.
pub trait LocalHandleResolver: Send + Sync + 'static {
    fn did_for_handle(&self, handle: &Handle) -> Option<Did>;
}

impl<F> LocalHandleResolver for F
where
    F: Fn(&Handle) -> Option<Did> + Send + Sync + 'static,
{
    fn did_for_handle(&self, handle: &Handle) -> Option<Did> {
        self(handle)
    }
}

/// Shared, cheaply clonable state handed to every handler.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// Local handle → DID, for `/.well-known/atproto-did`. Until accounts plug in, no handle
    /// is local.
    pub local_handles: Arc<dyn LocalHandleResolver>,
    /// Accounts, sessions and repos; `None` only in tests of the bare HTTP layer.
    pub pds: Option<Arc<Pds>>,
}

impl AppState {
    pub fn new(config: Config) -> AppState {
        AppState {
            config: Arc::new(config),
            local_handles: Arc::new(|_: &Handle| None),
            pds: None,
        }
    }

    /// The full server state: opens the databases and serves local handles from accounts.
    pub fn open(config: Config) -> anyhow::Result<AppState> {
        let config = Arc::new(config);
        let pds = Arc::new(Pds::open(config.clone())?);
        Ok(AppState {
            local_handles: Arc::new(pds.local_handle_resolver()),
            pds: Some(pds),
            config,
        })
    }

    /// The PDS services, or a 500 in a state built without them.
    pub fn pds(&self) -> Result<&Arc<Pds>, XrpcError> {
        self.pds
            .as_ref()
            .ok_or_else(|| XrpcError::internal("server state has no PDS services"))
    }

    /// Replaces the local handle resolver.
    pub fn with_local_handles(mut self, resolver: impl LocalHandleResolver) -> AppState {
        self.local_handles = Arc::new(resolver);
        self
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Every XRPC method this server implements. **The one place method groups are listed.**
pub fn xrpc_methods() -> XrpcRoutes {
    XrpcRoutes::new()
        .merge(describe::routes())
        .merge(crate::api::com::atproto::identity::routes())
        .merge(crate::api::com::atproto::server::routes())
        .merge(crate::api::com::atproto::repo::routes())
        .merge(crate::api::com::atproto::subscribe_repos::routes())
        .merge(crate::api::com::atproto::sync::routes())
        .merge(crate::api::app::bsky::actor::routes())
}

/// The largest request body any route accepts; the server-wide cap.
pub fn body_limit(config: &Config) -> usize {
    let largest = config
        .service
        .blob_upload_limit
        .max(config.service.repo_import_limit())
        .max(xrpc::RECORD_BODY_LIMIT as u64);
    usize::try_from(largest).unwrap_or(usize::MAX)
}

/// The complete application: every route and middleware, with `state` applied.
pub fn router(state: AppState) -> Router {
    router_with(state, XrpcRoutes::new())
}

/// [`router`] plus `extra` methods (tests, experiments). Panics if `extra` repeats an NSID.
pub fn router_with(state: AppState, extra: XrpcRoutes) -> Router {
    let limit = body_limit(&state.config);
    let app = Router::new()
        .route("/", get(basic::root))
        .route("/robots.txt", get(basic::robots_txt))
        .route("/xrpc/_health", get(basic::health))
        .route("/metrics", get(metrics::metrics))
        .route("/.well-known/atproto-did", get(basic::atproto_did))
        .route(
            "/.well-known/oauth-protected-resource",
            get(basic::oauth_protected_resource),
        )
        .merge(xrpc_methods().merge(extra).into_router())
        // Static method routes take precedence over this catch-all. The service proxy
        // (reference §1.9) will replace `unknown_method`.
        .route("/xrpc/{nsid}", any(unknown_method))
        .fallback(not_found);

    // Layers run outside-in from the last one added: trace, CORS, error normalisation, the
    // per-IP rate limits, then the body limit, so CORS headers land on normalised errors and
    // the limit's own 413 is normalised.
    app.layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::api::limits::limit_xrpc,
        ))
        .layer(middleware::from_fn(normalize_xrpc_errors))
        .layer(middleware::from_fn(private_when_authorized))
        .layer(cors())
        .layer(middleware::from_fn(preflight_no_content))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods(AllowMethods::list([
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::PATCH,
            Method::POST,
            Method::DELETE,
        ]))
        .allow_headers(AllowHeaders::mirror_request())
        .max_age(Duration::from_secs(86400))
}

/// An XRPC answer to a request with credentials is `Cache-Control: private` and varies by
/// `Authorization`, as the reference's: what a caller's credentials shaped is for that caller,
/// and no shared cache may keep it.
async fn private_when_authorized(req: Request, next: Next) -> Response {
    let authorized =
        req.uri().path().starts_with("/xrpc/") && req.headers().contains_key(header::AUTHORIZATION);
    let mut resp = next.run(req).await;
    if authorized {
        let headers = resp.headers_mut();
        if !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("private"),
            );
        }
        headers.append(
            header::VARY,
            header::HeaderValue::from_static("Authorization"),
        );
    }
    resp
}

/// A CORS preflight is answered 204 No Content, as the reference's (Express `cors`) is; the
/// CORS layer inside answers 200.
async fn preflight_no_content(req: Request, next: Next) -> Response {
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = next.run(req).await;
    if preflight && resp.status() == StatusCode::OK {
        *resp.status_mut() = StatusCode::NO_CONTENT;
    }
    resp
}

async fn unknown_method(Path(nsid): Path<String>) -> XrpcError {
    if Nsid::is_valid(&nsid) {
        XrpcError::method_not_implemented()
    } else {
        XrpcError::invalid_request("invalid xrpc path: not a valid NSID")
    }
}

async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/xrpc/") || uri.path() == "/xrpc" {
        XrpcError::not_found("NotFound", "Not Found").into_response()
    } else {
        (StatusCode::NOT_FOUND, "Not Found").into_response()
    }
}

/// Converts non-JSON error responses under `/xrpc/` (from axum and tower-http, which know
/// nothing of XRPC) into XRPC errors. Responses that already are JSON, or have some other
/// explicit content type (e.g. a proxied upstream body), pass through unchanged.
async fn normalize_xrpc_errors(req: Request, next: Next) -> Response {
    let mut resp = xrpc_error_body(req, next).await;
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
        // The rest of the body was never read, so the connection can't carry another request;
        // saying so keeps a client from sending its next request into a closing socket.
        resp.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    resp
}

async fn xrpc_error_body(req: Request, next: Next) -> Response {
    let is_xrpc = req.uri().path().starts_with("/xrpc/");
    let resp = next.run(req).await;
    let status = resp.status();
    if !is_xrpc || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("").to_ascii_lowercase());
    let convert = match &content_type {
        None => true,
        Some(ct) => ct.starts_with("text/plain"),
    };
    if !convert {
        return resp;
    }
    // Rejection texts are short and describe the client's request; read a bounded amount and
    // only echo them for 4xx (a 5xx text may describe our internals).
    let message = if status.is_client_error() {
        let body = axum::body::to_bytes(resp.into_body(), 1024).await;
        body.ok()
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
            .filter(|s| !s.trim().is_empty())
    } else {
        None
    };
    let default_message = status.canonical_reason().unwrap_or("Error").to_owned();
    let (status, name) = match status.as_u16() {
        400 | 415 | 422 => (StatusCode::BAD_REQUEST, "InvalidRequest"),
        401 => (status, "AuthenticationRequired"),
        403 => (status, "Forbidden"),
        404 => (status, "NotFound"),
        405 => (status, "MethodNotAllowed"),
        413 => (status, "PayloadTooLarge"),
        429 => (status, "RateLimitExceeded"),
        501 => (status, "MethodNotImplemented"),
        502 => (status, "UpstreamFailure"),
        504 => (status, "UpstreamTimeout"),
        500..=599 => (status, "InternalServerError"),
        _ => (status, "InvalidRequest"),
    };
    XrpcError::new(status, name, message.unwrap_or(default_message)).into_response()
}

/// Serves `config` on `listener` until SIGINT/SIGTERM, then shuts down gracefully.
pub async fn serve(config: Config, listener: TcpListener) -> std::io::Result<()> {
    let state = AppState::open(config).map_err(std::io::Error::other)?;
    serve_with_shutdown(state, listener, shutdown_signal()).await
}

/// Serves `state` on `listener` until `shutdown` completes; then stops accepting and waits for
/// in-flight requests to finish. Long-lived connections (firehose WebSockets) must watch for
/// shutdown themselves, or this waits for them.
pub async fn serve_with_shutdown(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(url = %state.config.service.public_url, "serving");
    // Background work that lives as long as the server.
    let blob_gc = state.pds.as_ref().and_then(|pds| pds.spawn_blob_gc());
    let actors = state.pds.as_ref().map(|pds| pds.actors.clone());
    let sequencer = state.pds.as_ref().map(|pds| pds.sequencer.clone());
    let served = serve_router(router(state), listener, shutdown).await;
    if let Some(task) = blob_gc {
        task.abort();
    }
    // Store the events acknowledged writes left queued (the journal would keep them anyway).
    if let Some(sequencer) = sequencer {
        sequencer.caught_up().await;
    }
    // Write pending MST nodes now, so the next start has nothing to rebuild.
    if let Some(actors) = actors {
        let _ = tokio::task::spawn_blocking(move || actors.flush_all()).await;
    }
    served
}

/// Serves a built router (see [`router_with`]) until `shutdown` completes, gracefully.
pub async fn serve_router(
    app: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "berth listening");
    }
    // Connect info lets handlers (rate limits, logging) see the peer address.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM (what `docker stop` and systemd send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}
