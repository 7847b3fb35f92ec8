//! Handle → DID resolution, as the reference PDS does it (`@atproto/identity`):
//!
//! - DNS: TXT records on `_atproto.<handle>`; a record's character-strings are joined; records
//!   not starting `did=` are ignored; exactly one `did=` record must remain, holding a valid DID.
//!   Two or more is ambiguous and DNS yields nothing (the spec: "resolution should fail").
//! - HTTPS: `GET https://<handle>/.well-known/atproto-did`, 2xx, first line trimmed is a DID.
//!   Fetched through the SSRF guard, with a few redirects allowed (the spec allows them; each
//!   hop is re-checked).
//! - Both run in parallel. **DNS wins**: a DNS answer is returned as soon as it arrives, even if
//!   HTTPS answered differently, because the spec makes the TXT record the preferred method and
//!   says to prefer it on conflict, and matching the reference keeps a handle resolving to the
//!   same DID here as everywhere else. HTTPS is used only when DNS found nothing.
//! - When both find nothing, DNS is retried with the backup nameservers, if any.
//!
//! A handle resolving to a DID proves nothing alone; check the DID document claims it back.

use std::net::SocketAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

use crate::syntax::{Did, Handle};

use super::ssrf::{get_limited, guarded_client};
use super::{IdentityConfig, IdentityError};

/// Redirect hops followed for the well-known file.
const MAX_REDIRECTS: usize = 5;
/// The well-known body is one DID (≤ 2048 characters); anything much longer is not a DID file.
const MAX_WELL_KNOWN_BYTES: usize = 4096;

/// Resolves handles to DIDs.
#[derive(Clone)]
pub struct HandleResolver {
    dns: TokioResolver,
    backup_dns: Option<TokioResolver>,
    http: reqwest::Client,
    config: IdentityConfig,
}

fn build_dns(
    nameservers: &[SocketAddr],
    config: &IdentityConfig,
) -> Result<TokioResolver, IdentityError> {
    let mut builder = if nameservers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| {
            IdentityError::Config(format!("reading the system DNS configuration: {e}"))
        })?
    } else {
        let servers = nameservers
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
    };
    let opts = builder.options_mut();
    opts.timeout = config.timeout;
    opts.attempts = 1;
    builder
        .build()
        .map_err(|e| IdentityError::Config(format!("building the DNS resolver: {e}")))
}

impl HandleResolver {
    /// A resolver using `config.nameservers` (system DNS when empty).
    pub fn new(config: IdentityConfig) -> Result<Self, IdentityError> {
        let dns = build_dns(&config.nameservers, &config)?;
        let backup_dns = if config.backup_nameservers.is_empty() {
            None
        } else {
            Some(build_dns(&config.backup_nameservers, &config)?)
        };
        Ok(HandleResolver {
            dns,
            backup_dns,
            http: guarded_client(&config, MAX_REDIRECTS)?,
            config,
        })
    }

    /// The DID `handle` resolves to, by DNS or HTTPS (DNS preferred; see the module docs).
    /// `Ok(None)` when neither method yields exactly one valid DID; `Err` only for handles that
    /// may never be resolved (disallowed TLDs).
    pub async fn resolve(&self, handle: &Handle) -> Result<Option<Did>, IdentityError> {
        let handle = checked(handle)?;
        let dns = self.resolve_dns_with(&self.dns, &handle);
        let http = self.resolve_http(&handle);
        tokio::pin!(dns, http);
        let (mut dns_done, mut http_result) = (false, None);
        // Poll both; return on the first DNS answer, remember HTTP's until DNS is done.
        while !dns_done || http_result.is_none() {
            tokio::select! {
                r = &mut dns, if !dns_done => {
                    dns_done = true;
                    match r {
                        Ok(Some(did)) => return Ok(Some(did)),
                        Ok(None) => {}
                        Err(e) => tracing::debug!(handle = handle.as_str(), error = %e, "DNS handle resolution failed"),
                    }
                }
                r = &mut http, if http_result.is_none() => {
                    http_result = Some(r.unwrap_or_else(|e| {
                        tracing::debug!(handle = handle.as_str(), error = %e, "HTTPS handle resolution failed");
                        None
                    }));
                }
            }
        }
        if let Some(Some(did)) = http_result {
            return Ok(Some(did));
        }
        if let Some(backup) = &self.backup_dns {
            match self.resolve_dns_with(backup, &handle).await {
                Ok(found) => return Ok(found),
                Err(e) => {
                    tracing::debug!(handle = handle.as_str(), error = %e, "backup DNS handle resolution failed");
                }
            }
        }
        Ok(None)
    }

    /// DNS only. `Ok(None)` when there is no `did=` record; an error when there are several,
    /// the one there is not a DID, or the lookup itself failed.
    pub async fn resolve_dns(&self, handle: &Handle) -> Result<Option<Did>, IdentityError> {
        let handle = checked(handle)?;
        self.resolve_dns_with(&self.dns, &handle).await
    }

    async fn resolve_dns_with(
        &self,
        resolver: &TokioResolver,
        handle: &Handle,
    ) -> Result<Option<Did>, IdentityError> {
        // Trailing dot: fully qualified, so the system search domains are never appended.
        let name = format!("_atproto.{}.", handle.as_str());
        let lookup = tokio::time::timeout(self.config.timeout, resolver.txt_lookup(name.as_str()));
        let lookup = match lookup.await {
            Err(_) => {
                return Err(IdentityError::Dns {
                    name,
                    message: "timed out".to_owned(),
                });
            }
            Ok(Err(e)) if e.is_no_records_found() || e.is_nx_domain() => return Ok(None),
            Ok(Err(e)) => {
                return Err(IdentityError::Dns {
                    name,
                    message: e.to_string(),
                });
            }
            Ok(Ok(lookup)) => lookup,
        };
        let values: Vec<String> = lookup
            .answers()
            .iter()
            .filter_map(|rec| match &rec.data {
                RData::TXT(txt) => Some(txt.txt_data.concat()),
                _ => None,
            })
            // A non-UTF-8 record can't be a `did=` record; skip it like any other foreign TXT.
            .filter_map(|bytes| String::from_utf8(bytes).ok())
            .filter_map(|s| s.strip_prefix("did=").map(str::to_owned))
            .collect();
        match values.as_slice() {
            [] => Ok(None),
            [value] => match value.parse::<Did>() {
                Ok(did) => Ok(Some(did)),
                Err(_) => Err(IdentityError::InvalidDnsRecord {
                    handle: handle.as_str().to_owned(),
                    value: value.chars().take(2048).collect(),
                }),
            },
            many => Err(IdentityError::AmbiguousDnsRecords {
                handle: handle.as_str().to_owned(),
                count: many.len(),
            }),
        }
    }

    /// HTTPS well-known only. `Ok(None)` for a non-2xx answer or a body that is not a DID;
    /// an error when the fetch itself failed or was refused (SSRF guard, size, time).
    pub async fn resolve_http(&self, handle: &Handle) -> Result<Option<Did>, IdentityError> {
        let handle = checked(handle)?;
        let url = format!(
            "{}://{}/.well-known/atproto-did",
            self.config.scheme(),
            handle.as_str()
        );
        let fetched = get_limited(&self.http, &url, MAX_WELL_KNOWN_BYTES).await?;
        if !(200..300).contains(&fetched.status) {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&fetched.body);
        let first = text.lines().next().unwrap_or_default().trim();
        Ok(first.parse::<Did>().ok())
    }
}

/// Lowercases the handle and refuses TLDs that must never resolve (`.local`, `.onion`, ...).
fn checked(handle: &Handle) -> Result<Handle, IdentityError> {
    if handle.has_disallowed_tld() {
        return Err(IdentityError::DisallowedHandle(handle.as_str().to_owned()));
    }
    Ok(handle.normalize())
}
