//! [`XrpcRoutes`]: how XRPC methods are registered.
//!
//! A method is registered by NSID and kind, never by a hand-written path, so that:
//! - the path is always `/xrpc/<nsid>` with a valid NSID (checked when the router is built);
//! - a query answers GET (and HEAD), a procedure POST, and any other verb gets the XRPC 400
//!   `Incorrect HTTP method (X) expected Y` as JSON, instead of axum's bare 405;
//! - registering the same NSID twice fails loudly at startup rather than shadowing a handler.
//!
//! Registration mistakes are programming errors, so they panic while building the router
//! (startup, covered by every test that builds it), never while serving a request.

use std::collections::BTreeMap;

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodRouter, get, post};

use super::AppState;
use crate::syntax::Nsid;
use crate::xrpc::{self, XrpcError};

/// The kind of an XRPC method, as in its Lexicon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodKind {
    /// `query`: HTTP GET.
    Query,
    /// `procedure`: HTTP POST.
    Procedure,
    /// `subscription`: HTTP GET upgraded to a WebSocket (the handler takes `WebSocketUpgrade`).
    Subscription,
}

/// A set of XRPC methods. Each API module exposes `pub fn routes() -> XrpcRoutes`, and
/// [`super::xrpc_methods`] merges them.
#[derive(Default)]
pub struct XrpcRoutes {
    router: Router<AppState>,
    methods: BTreeMap<String, MethodKind>,
}

impl XrpcRoutes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a query (GET) handler.
    pub fn query<H, T>(self, nsid: &str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(nsid, MethodKind::Query, get(handler))
    }

    /// Registers a procedure (POST) handler.
    pub fn procedure<H, T>(self, nsid: &str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(nsid, MethodKind::Procedure, post(handler))
    }

    /// Registers a subscription (GET + WebSocket upgrade) handler.
    pub fn subscription<H, T>(self, nsid: &str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(nsid, MethodKind::Subscription, get(handler))
    }

    /// Adds all methods of `other`.
    ///
    /// # Panics
    /// If both register the same NSID.
    pub fn merge(mut self, other: XrpcRoutes) -> Self {
        for (nsid, kind) in other.methods {
            assert!(
                self.methods.insert(nsid.clone(), kind).is_none(),
                "XRPC method {nsid} registered twice"
            );
        }
        self.router = self.router.merge(other.router);
        self
    }

    /// The registered methods, sorted by NSID.
    pub fn methods(&self) -> impl Iterator<Item = (&str, MethodKind)> {
        self.methods.iter().map(|(n, k)| (n.as_str(), *k))
    }

    pub(super) fn into_router(self) -> Router<AppState> {
        self.router
    }

    fn add(mut self, nsid: &str, kind: MethodKind, route: MethodRouter<AppState>) -> Self {
        assert!(Nsid::is_valid(nsid), "invalid XRPC method NSID {nsid:?}");
        assert!(
            self.methods.insert(nsid.to_owned(), kind).is_none(),
            "XRPC method {nsid} registered twice"
        );
        let expected = match kind {
            MethodKind::Procedure => "POST",
            MethodKind::Query | MethodKind::Subscription => "GET",
        };
        let route = route.fallback(move |method: Method| async move {
            XrpcError::wrong_method(&method, expected)
        });
        self.router = self.router.route(&xrpc::path(nsid), route);
        self
    }
}
