//! The SSRF guard for outbound fetches to user-supplied hosts (did:web hosts, handles), and the
//! size- and time-bounded GET every identity fetch uses.
//!
//! How the guard holds:
//!
//! - The HTTP client resolves names only through [`GuardedResolver`]. It looks the host up once,
//!   refuses the whole host if *any* address is non-public (a mixed answer is a rebinding or
//!   misconfiguration signal, not something to pick through), and hands exactly the checked
//!   addresses to the connector. There is no second lookup between check and connect, so DNS
//!   rebinding can't swap in a private address.
//! - IP-literal URLs bypass name resolution, so they are checked where they can appear: user
//!   hosts are hostnames by syntax (handles and did:web hosts cannot be IP literals), and
//!   redirect targets are checked by the redirect policy.
//! - Proxies are disabled on guarded clients: a proxy would connect on our behalf to an address
//!   we never saw.
//! - `allow_private_addresses` (dev/test only) turns the address check off; the pinning stays.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;

use super::{IdentityConfig, IdentityError};

/// A refused outbound connection.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SsrfError {
    #[error(
        "refusing to connect to {host}: it resolves to {addr}, a {kind} address \
         (non-public addresses are refused outside dev mode)"
    )]
    Forbidden {
        host: String,
        addr: IpAddr,
        kind: &'static str,
    },
    #[error("{host} resolved to no addresses")]
    NoAddresses { host: String },
    #[error("DNS lookup of {host} failed: {message}")]
    Lookup { host: String, message: String },
    #[error("refusing redirect to {url}: {reason}")]
    Redirect { url: String, reason: String },
}

/// Whether a fetch to `ip` is refused outside dev mode.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    forbidden_kind(ip).is_some()
}

/// What kind of non-public address `ip` is, or `None` for a public unicast address.
pub fn forbidden_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified (0.0.0.0/8)",
        (127, _, _) => "loopback",
        (10, _, _) => "private (10/8)",
        (172, 16..=31, _) => "private (172.16/12)",
        (192, 168, _) => "private (192.168/16)",
        (169, 254, _) => "link-local",
        (100, 64..=127, _) => "carrier-grade NAT (100.64/10)",
        (192, 0, 0) => "IETF protocol assignment (192.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking (198.18/15)",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved or broadcast (240/4)",
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // Addresses that carry an IPv4 address reach that address (mapped, the deprecated
    // compatible form, NAT64, 6to4), so they are judged by it.
    let seg = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    if seg[..6] == [0; 6] {
        return forbidden_v4(embedded(seg[6], seg[7]));
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return forbidden_v4(embedded(seg[6], seg[7]));
    }
    if seg[0] == 0x2002 {
        return forbidden_v4(embedded(seg[1], seg[2]));
    }
    Some(match seg[0] {
        s if s & 0xfe00 == 0xfc00 => "unique-local (fc00::/7)",
        s if s & 0xffc0 == 0xfe80 => "link-local (fe80::/10)",
        s if s & 0xffc0 == 0xfec0 => "site-local (fec0::/10)",
        s if s & 0xff00 == 0xff00 => "multicast",
        // Teredo hides an obfuscated IPv4 address; no server worth fetching from uses it.
        0x2001 if seg[1] == 0 => "Teredo (2001::/32)",
        0x2001 if seg[1] == 0x0db8 => "documentation (2001:db8::/32)",
        _ => return None,
    })
}

/// Checks every address of `host`; the first non-public one refuses the host.
fn check_addrs(host: &str, addrs: &[SocketAddr]) -> Result<(), SsrfError> {
    if addrs.is_empty() {
        return Err(SsrfError::NoAddresses {
            host: host.to_owned(),
        });
    }
    for addr in addrs {
        if let Some(kind) = forbidden_kind(addr.ip()) {
            return Err(SsrfError::Forbidden {
                host: host.to_owned(),
                addr: addr.ip(),
                kind,
            });
        }
    }
    Ok(())
}

/// Resolves `host` as guarded clients do (overrides, then system DNS) and checks every address
/// unless `config.allow_private_addresses`. The returned addresses are the only ones a caller
/// may connect to: looking the name up again would reopen the rebinding window.
pub async fn check_host(config: &IdentityConfig, host: &str) -> Result<Vec<SocketAddr>, SsrfError> {
    GuardedResolver::new(config).lookup(host).await
}

/// The name resolver of guarded clients: overrides or system DNS, then the address check.
/// Whatever it returns is what the client connects to.
#[derive(Clone)]
struct GuardedResolver {
    allow_private: bool,
    overrides: Arc<HashMap<String, Vec<SocketAddr>>>,
}

impl GuardedResolver {
    fn new(config: &IdentityConfig) -> Self {
        GuardedResolver {
            allow_private: config.allow_private_addresses,
            overrides: Arc::new(
                config
                    .host_overrides
                    .iter()
                    .map(|(h, a)| (h.to_ascii_lowercase(), a.clone()))
                    .collect(),
            ),
        }
    }

    async fn lookup(&self, host: &str) -> Result<Vec<SocketAddr>, SsrfError> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let addrs: Vec<SocketAddr> = match self.overrides.get(&host) {
            Some(addrs) => addrs.clone(),
            // Port 0: the connector fills in the URL's port (or the scheme's default).
            None => tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| SsrfError::Lookup {
                    host: host.clone(),
                    message: e.to_string(),
                })?
                .collect(),
        };
        if self.allow_private {
            if addrs.is_empty() {
                return Err(SsrfError::NoAddresses { host });
            }
        } else {
            check_addrs(&host, &addrs)?;
        }
        Ok(addrs)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = this.lookup(&host).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Redirects: at most `max` hops, https only (http too in dev), IP-literal targets checked
/// here because they never reach the resolver.
fn redirect_policy(max: usize, config: &IdentityConfig) -> redirect::Policy {
    if max == 0 {
        return redirect::Policy::none();
    }
    let allow_private = config.allow_private_addresses;
    let insecure_http = config.insecure_http;
    redirect::Policy::custom(move |attempt| {
        let url = attempt.url().to_string();
        let refuse = |reason: String| SsrfError::Redirect {
            url: url.clone(),
            reason,
        };
        if attempt.previous().len() > max {
            let err = refuse(format!("more than {max} redirects"));
            return attempt.error(err);
        }
        let scheme = attempt.url().scheme();
        if !(scheme == "https" || (insecure_http && scheme == "http")) {
            let err = refuse(format!("scheme {scheme} is not allowed"));
            return attempt.error(err);
        }
        let host = attempt.url().host_str().unwrap_or_default();
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>()
            && !allow_private
            && let Some(kind) = forbidden_kind(ip)
        {
            let err = refuse(format!("{ip} is a {kind} address"));
            return attempt.error(err);
        }
        attempt.follow()
    })
}

/// An HTTP client for user-supplied hosts: guarded resolver, no proxy, https only outside dev
/// mode, bounded time, `max_redirects` hops (0: redirects are returned, not followed). For any
/// future fetch of a user-named URL too (e.g. OAuth client metadata).
pub fn guarded_client(
    config: &IdentityConfig,
    max_redirects: usize,
) -> Result<reqwest::Client, IdentityError> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver::new(config)))
        .no_proxy()
        .https_only(!config.insecure_http)
        .redirect(redirect_policy(max_redirects, config))
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| IdentityError::Config(format!("building the HTTP client: {e}")))
}

/// An HTTP client for operator-configured services (the PLC directory): bounded time, no guard.
pub(crate) fn plain_client(config: &IdentityConfig) -> Result<reqwest::Client, IdentityError> {
    reqwest::Client::builder()
        .redirect(redirect::Policy::limited(5))
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| IdentityError::Config(format!("building the HTTP client: {e}")))
}

/// A GET response read with a size bound.
pub(crate) struct Fetched {
    pub status: u16,
    pub body: Vec<u8>,
}

/// GETs `url`, reading at most `limit` body bytes (more is an error, never truncation: a cut
/// document could parse into something else). Non-2xx statuses are returned, not errors.
pub(crate) async fn get_limited(
    client: &reqwest::Client,
    url: &str,
    limit: usize,
) -> Result<Fetched, IdentityError> {
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| map_reqwest_error(url, e))?;
    let status = resp.status().as_u16();
    let too_large = || IdentityError::TooLarge {
        url: url.to_owned(),
        limit,
    };
    if resp
        .content_length()
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| map_reqwest_error(url, e))? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched { status, body })
}

/// Turns a reqwest error into ours, surfacing an SSRF refusal buried in its source chain (the
/// resolver's and redirect policy's errors arrive wrapped).
pub(crate) fn map_reqwest_error(url: &str, err: reqwest::Error) -> IdentityError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(ssrf) = e.downcast_ref::<SsrfError>() {
            return IdentityError::Ssrf(ssrf.clone());
        }
        source = e.source();
    }
    if err.is_timeout() {
        return IdentityError::Timeout {
            url: url.to_owned(),
        };
    }
    IdentityError::Http {
        url: url.to_owned(),
        source: err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(s: &str) -> bool {
        is_forbidden_ip(s.parse().expect("test address"))
    }

    #[test]
    fn non_public_addresses_are_forbidden() {
        for a in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
        ] {
            assert!(forbidden(a), "{a} should be forbidden");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for a in [
            "1.1.1.1",
            "8.8.8.8",
            "172.15.0.1",
            "172.32.0.1",
            "100.63.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(!forbidden(a), "{a} should be allowed");
        }
    }
}
