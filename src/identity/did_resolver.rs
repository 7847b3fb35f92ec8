//! DID resolution: did:plc from the PLC directory, did:web from the host's
//! `/.well-known/did.json`, with the reference PDS's cache policy.
//!
//! Cache policy (`did_cache.sqlite`): a document younger than the stale TTL is served as is; one
//! between the stale and max TTLs is served and refreshed in the background (at most one refresh
//! per DID at a time); one older than the max TTL is fetched again before answering. A DID the
//! directory no longer knows is dropped from the cache. [`DidResolver::resolve_fresh`] skips the
//! cache read, for the "signature failed, maybe the key rotated" retry.
//!
//! A cache failure never fails a resolution: the cache is an optimisation, the network is the
//! truth, so cache errors are logged and resolution goes to the network.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::crypto::PublicKey;
use crate::syntax::{Did, has_disallowed_tld};

use super::ssrf::{get_limited, guarded_client, plain_client};
use super::{DidCache, DidDocument, IdentityConfig, IdentityError};

/// Resolves DIDs to documents; cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct DidResolver {
    inner: Arc<Inner>,
}

struct Inner {
    config: IdentityConfig,
    plc_base: String,
    plc_client: reqwest::Client,
    web_client: reqwest::Client,
    cache: Option<DidCache>,
    /// DIDs with a background refresh in flight, so a hot stale DID is refetched once.
    refreshing: Mutex<HashSet<String>>,
}

impl DidResolver {
    /// A resolver with `config`; `cache` `None` resolves every time.
    pub fn new(config: IdentityConfig, cache: Option<DidCache>) -> Result<Self, IdentityError> {
        let plc_base = config.plc_url.trim_end_matches('/').to_owned();
        match reqwest::Url::parse(&plc_base) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(IdentityError::Config(format!(
                    "PLC URL {:?} is not an http(s) URL",
                    config.plc_url
                )));
            }
        }
        Ok(DidResolver {
            inner: Arc::new(Inner {
                plc_client: plain_client(&config)?,
                // The reference fetches did:web with `redirect: error`: the document must be
                // served by the host the DID names.
                web_client: guarded_client(&config, 0)?,
                plc_base,
                config,
                cache,
                refreshing: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &IdentityConfig {
        &self.inner.config
    }

    /// The document for `did`, from the cache when fresh enough (see the module docs).
    pub async fn resolve(&self, did: &Did) -> Result<DidDocument, IdentityError> {
        if let Some(cache) = &self.inner.cache {
            match cache.get(did.as_str()).await {
                Ok(Some(cached)) if !cached.older_than(self.inner.config.max_ttl) => {
                    if cached.older_than(self.inner.config.stale_ttl) {
                        self.refresh_in_background(did);
                    }
                    return Ok(cached.doc);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(did = did.as_str(), error = %e, "DID cache read failed"),
            }
        }
        self.resolve_fresh(did).await
    }

    /// The document for `did` from the network, bypassing the cache read; the cache is updated
    /// (or cleared if the DID is gone). Use after a signature check fails with a cached key.
    pub async fn resolve_fresh(&self, did: &Did) -> Result<DidDocument, IdentityError> {
        let result = self.fetch(did).await;
        if let Some(cache) = &self.inner.cache {
            let write = match &result {
                Ok(doc) => cache.put(did.as_str(), doc).await,
                Err(IdentityError::DidNotFound(_)) => cache.clear(did.as_str()).await,
                Err(_) => Ok(()),
            };
            if let Err(e) = write {
                tracing::warn!(did = did.as_str(), error = %e, "DID cache write failed");
            }
        }
        result
    }

    /// The account's atproto signing key; `force_refresh` bypasses the cache.
    pub async fn resolve_atproto_key(
        &self,
        did: &Did,
        force_refresh: bool,
    ) -> Result<Option<PublicKey>, IdentityError> {
        let doc = if force_refresh {
            self.resolve_fresh(did).await?
        } else {
            self.resolve(did).await?
        };
        Ok(doc.atproto_signing_key())
    }

    fn refresh_in_background(&self, did: &Did) {
        {
            let mut inflight = self
                .inner
                .refreshing
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if !inflight.insert(did.as_str().to_owned()) {
                return;
            }
        }
        let this = self.clone();
        let did = did.clone();
        tokio::spawn(async move {
            // Removes the in-flight mark even if the refresh panics, so later refreshes happen.
            let _done = InFlight {
                resolver: this.clone(),
                did: did.as_str().to_owned(),
            };
            if let Err(e) = this.resolve_fresh(&did).await {
                // The stale copy stays in the cache until the max TTL; that is the point of
                // serving stale.
                tracing::debug!(did = did.as_str(), error = %e, "background DID refresh failed");
            }
        });
    }

    /// Fetches and checks the document, no cache involved.
    pub async fn fetch(&self, did: &Did) -> Result<DidDocument, IdentityError> {
        let (url, client) = match did.method() {
            "plc" => {
                did.check_blessed()?;
                (
                    format!("{}/{}", self.inner.plc_base, did.as_str()),
                    &self.inner.plc_client,
                )
            }
            "web" => (self.did_web_url(did)?, &self.inner.web_client),
            other => {
                return Err(IdentityError::Unsupported {
                    did: did.as_str().to_owned(),
                    reason: format!("DID method {other:?} is not supported (only plc and web)"),
                });
            }
        };
        let fetched = get_limited(client, &url, self.inner.config.max_response_bytes).await?;
        match fetched.status {
            200..=299 => {}
            // 410 is PLC's answer for a tombstoned DID: gone, like never existing.
            404 | 410 => return Err(IdentityError::DidNotFound(did.as_str().to_owned())),
            status @ 300..=399 => return Err(IdentityError::Redirect { url, status }),
            status => return Err(IdentityError::HttpStatus { url, status }),
        }
        let doc = DidDocument::from_json(did.as_str(), &fetched.body)?;
        doc.check_id(did)?;
        Ok(doc)
    }

    /// `https://<host>/.well-known/did.json` for a hostname-level did:web. `localhost` and
    /// `%3A` ports are development-only (spec), and only then is the fetch plain http.
    fn did_web_url(&self, did: &Did) -> Result<String, IdentityError> {
        did.check_blessed()?;
        let unsupported = |reason: &str| IdentityError::Unsupported {
            did: did.as_str().to_owned(),
            reason: reason.to_owned(),
        };
        let (host, port) = match did.identifier().split_once("%3A") {
            Some((h, p)) => (h, Some(p)),
            None => (did.identifier(), None),
        };
        let dev = self.inner.config.insecure_http;
        if host == "localhost" {
            if !dev {
                return Err(unsupported("did:web:localhost is only allowed in dev mode"));
            }
        } else if has_disallowed_tld(host) {
            return Err(unsupported(
                "did:web host has a disallowed top-level domain",
            ));
        }
        if port.is_some() && !dev {
            return Err(unsupported("did:web ports are only allowed in dev mode"));
        }
        let scheme = self.inner.config.scheme();
        Ok(match port {
            Some(p) => format!("{scheme}://{host}:{p}/.well-known/did.json"),
            None => format!("{scheme}://{host}/.well-known/did.json"),
        })
    }
}

/// Clears a DID's in-flight refresh mark when dropped.
struct InFlight {
    resolver: DidResolver,
    did: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.resolver
            .inner
            .refreshing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.did);
    }
}
