//! Identity: DID documents, DID resolution (did:plc, did:web) with a SQLite cache, handle
//! resolution (DNS TXT and HTTPS well-known), and the SSRF guard every outbound fetch of a
//! user-supplied host goes through.
//!
//! Invariants:
//!
//! - A resolved [`DidDocument`] always has `id` equal to the DID it was resolved for; a document
//!   claiming another id is an error, never cached.
//! - Every HTTP request to a host named by a user (a did:web host, a handle) goes through
//!   [`ssrf`]: the host is resolved once, every address is checked, and the connection is made to
//!   exactly those addresses. Outside dev mode, loopback, private, link-local, CGNAT, unique-local,
//!   unspecified and multicast addresses are refused. The PLC directory URL is operator
//!   configuration, not user input, so it is fetched without the guard.
//! - Response bodies are read up to [`IdentityConfig::max_response_bytes`] and every request is
//!   bounded by [`IdentityConfig::timeout`]; a peer can't make us buffer or wait without limit.
//! - Nothing here trusts a handle on its own: callers must check the two directions (handle → DID
//!   via [`HandleResolver`], DID → handle via [`DidDocument::handle`]) agree.

pub mod cache;
pub mod did_doc;
pub mod did_resolver;
pub mod handle_resolver;
pub mod ssrf;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

pub use cache::{CachedDoc, DidCache};
pub use did_doc::{DidDocument, Service, VerificationMethod};
pub use did_resolver::DidResolver;
pub use handle_resolver::HandleResolver;
pub use ssrf::{SsrfError, check_host, guarded_client, is_forbidden_ip};

use crate::store::StoreError;
use crate::syntax::SyntaxError;

/// Default PLC directory.
pub const DEFAULT_PLC_URL: &str = "https://plc.directory";

/// Settings shared by the DID and handle resolvers. `Default` is the production configuration;
/// [`IdentityConfig::dev`] relaxes the network rules for local development and tests.
#[derive(Clone, Debug)]
pub struct IdentityConfig {
    /// Base URL of the PLC directory; `did:plc` documents are `GET {plc_url}/{did}`.
    pub plc_url: String,
    /// Bound on each outbound request (connect, headers and body together). Reference: 3 s.
    pub timeout: Duration,
    /// Largest response body accepted (DID documents, well-known files).
    pub max_response_bytes: usize,
    /// A cached document older than this is served but refreshed in the background. Reference
    /// default 1 h.
    pub stale_ttl: Duration,
    /// A cached document older than this is not served; it is fetched again. Reference default
    /// 24 h.
    pub max_ttl: Duration,
    /// Nameservers for the `_atproto` TXT lookup; empty means the system configuration.
    pub nameservers: Vec<SocketAddr>,
    /// Nameservers tried for DNS when both DNS and HTTPS found nothing (the reference's
    /// `PDS_HANDLE_BACKUP_NAMESERVERS`); empty means no second try.
    pub backup_nameservers: Vec<SocketAddr>,
    /// Dev/test only: allow fetches to loopback and private addresses (turns the SSRF guard off).
    pub allow_private_addresses: bool,
    /// Dev/test only: fetch did:web documents and handle well-known files over plain `http`,
    /// and allow `did:web:localhost` and did:web ports (`%3A`).
    pub insecure_http: bool,
    /// Fixed host → addresses map consulted before DNS for user-supplied hosts (like
    /// `/etc/hosts`; tests point handles at a local server with it). A non-zero port in an
    /// address replaces the scheme's default port. Overridden addresses still pass the SSRF
    /// check.
    pub host_overrides: HashMap<String, Vec<SocketAddr>>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            plc_url: DEFAULT_PLC_URL.to_owned(),
            timeout: Duration::from_secs(3),
            max_response_bytes: 64 * 1024,
            stale_ttl: Duration::from_secs(3600),
            max_ttl: Duration::from_secs(24 * 3600),
            nameservers: Vec::new(),
            backup_nameservers: Vec::new(),
            allow_private_addresses: false,
            insecure_http: false,
            host_overrides: HashMap::new(),
        }
    }
}

impl IdentityConfig {
    /// The development configuration: private addresses and plain http allowed.
    pub fn dev() -> Self {
        IdentityConfig {
            allow_private_addresses: true,
            insecure_http: true,
            ..IdentityConfig::default()
        }
    }

    /// `http` in dev mode, else `https`.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.insecure_http { "http" } else { "https" }
    }
}

/// Why resolving a DID or handle failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    #[error("cannot resolve {did}: {reason}")]
    Unsupported { did: String, reason: String },
    #[error("handle {0} has a top-level domain that may not be resolved")]
    DisallowedHandle(String),
    #[error("DID not found: {0}")]
    DidNotFound(String),
    #[error("DID document fetched for {expected} has id {found:?}")]
    IdMismatch { expected: String, found: String },
    #[error("DID document for {did} is not valid JSON of the expected shape: {source}")]
    MalformedDocument {
        did: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("response from {url} is larger than the {limit}-byte limit")]
    TooLarge { url: String, limit: usize },
    #[error("{url} answered HTTP {status}")]
    HttpStatus { url: String, status: u16 },
    #[error("{url} answered with a redirect (HTTP {status}); DID documents are not redirected")]
    Redirect { url: String, status: u16 },
    #[error(transparent)]
    Ssrf(#[from] SsrfError),
    #[error("request to {url} timed out")]
    Timeout { url: String },
    #[error("request to {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("_atproto.{handle} has {count} TXT records starting \"did=\"; exactly one is required")]
    AmbiguousDnsRecords { handle: String, count: usize },
    #[error("_atproto.{handle} TXT record holds an invalid DID {value:?}")]
    InvalidDnsRecord { handle: String, value: String },
    #[error("DNS lookup of {name} failed: {message}")]
    Dns { name: String, message: String },
    #[error("DID cache: {0}")]
    Cache(#[from] StoreError),
    #[error("identity configuration: {0}")]
    Config(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Current time in milliseconds since the Unix epoch (the cache's clock).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
