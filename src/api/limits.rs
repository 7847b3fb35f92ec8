//! Rate limits at the HTTP edge: who the caller is (client IP behind trusted proxies, bypass
//! key or IP), the per-IP limits every XRPC call goes through ([`limit_xrpc`]), and the
//! `RateLimit-*` headers. The counting itself is `pds::rate_limits`.
//!
//! The client IP follows Express's `trust proxy = loopback, linklocal, uniquelocal` (plus
//! `PDS_RATE_LIMIT_BYPASS_IPS`), as the reference: when the peer is such an address,
//! `X-Forwarded-For` is read from the right and the first address that is not trusted is the
//! client. A client cannot choose its key by sending the header itself.

use crate::pds::rate_limits::{self, Limit, RateLimited, Standing};
use crate::server::AppState;
use crate::xrpc::XrpcError;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The caller as rate limits see it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub ip: IpAddr,
    /// Sent the bypass key, or comes from a bypass IP: no limit applies.
    pub bypass: bool,
    /// Where the handler's own charges report their standing, for the response's headers.
    tightest: Option<TightestLimit>,
}

/// The tightest limit charged while serving one request (the fewest points left), shared by
/// [`limit_xrpc`] and the handler's [`Caller::check`]s: the `RateLimit-*` headers describe it,
/// as the reference's do.
#[derive(Debug, Clone, Default)]
struct TightestLimit(std::sync::Arc<std::sync::Mutex<Option<Standing>>>);

impl TightestLimit {
    fn offer(&self, standing: Standing) {
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none_or(|t| standing.remaining < t.remaining) {
            *slot = Some(standing);
        }
    }

    fn get(&self) -> Option<Standing> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Caller {
    fn of(parts: &Parts, state: &AppState) -> Caller {
        let config = &state.config.rate_limits;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let ip = client_ip(peer, &parts.headers, &config.bypass_ips);
        let key_matches = match (&config.bypass_key, parts.headers.get("x-ratelimit-bypass")) {
            (Some(key), Some(sent)) => {
                crate::auth::constant_time_eq(key.expose().as_bytes(), sent.as_bytes())
            }
            _ => false,
        };
        Caller {
            ip,
            bypass: key_matches || config.bypass_ips.contains(&ip),
            tightest: parts.extensions.get::<TightestLimit>().cloned(),
        }
    }

    /// Charges one call under `limits` keyed by `key`, unless the caller bypasses limits.
    pub fn check(&self, state: &AppState, limits: &[Limit], key: &str) -> Result<(), XrpcError> {
        if self.bypass {
            return Ok(());
        }
        let charged = state.pds()?.rate_limits.check(limits, key);
        let standing = match &charged {
            Ok(standing) => *standing,
            Err(RateLimited(standing)) => Some(*standing),
        };
        if let (Some(standing), Some(tightest)) = (standing, &self.tightest) {
            tightest.offer(standing);
        }
        charged?;
        Ok(())
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = XrpcError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, XrpcError> {
        Ok(Caller::of(parts, state))
    }
}

/// Express's `loopback, linklocal, uniquelocal` (private IPv4 ranges count as unique-local).
fn trusted_proxy(ip: IpAddr, extra: &[IpAddr]) -> bool {
    if extra.contains(&ip) {
        return true;
    }
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_private(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => trusted_proxy(IpAddr::V4(v4), extra),
            None => v6.is_loopback() || v6.is_unicast_link_local() || v6.is_unique_local(),
        },
    }
}

/// The client address: the peer, or, behind trusted proxies, the right-most untrusted entry
/// of `X-Forwarded-For` (the left-most entry if all are trusted). An entry that does not
/// parse stops the walk at the address before it.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let mut ip = peer;
    if !trusted_proxy(ip, trusted) {
        return ip;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>();
    for entry in forwarded.iter().rev() {
        let Ok(next) = entry.parse::<IpAddr>() else {
            break;
        };
        ip = next;
        if !trusted_proxy(ip, trusted) {
            break;
        }
    }
    ip
}

/// Middleware for `/xrpc/<nsid>`: charges the caller's IP under `global-ip` and the method's
/// own per-IP limits before the handler runs, refuses with 429 `RateLimitExceeded`, and adds
/// `RateLimit-*` headers for the tightest limit. Subscriptions are not limited.
pub async fn limit_xrpc(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let enabled = state.pds.as_ref().is_some_and(|p| p.rate_limits.enabled());
    let nsid = req
        .uri()
        .path()
        .strip_prefix("/xrpc/")
        .filter(|n| !n.is_empty() && *n != "_health" && *n != "com.atproto.sync.subscribeRepos")
        .map(str::to_owned);
    let (Some(nsid), true) = (nsid, enabled) else {
        return next.run(req).await;
    };
    let (mut parts, body) = req.into_parts();
    let caller = Caller::of(&parts, &state);
    if caller.bypass {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let tightest = TightestLimit::default();
    parts.extensions.insert(tightest.clone());
    let req = Request::from_parts(parts, body);
    let mut limits: Vec<Limit> = rate_limits::ip_limits(&nsid).to_vec();
    if rate_limits::global_applies(&nsid) {
        limits.push(rate_limits::GLOBAL_IP);
    }
    let charged = match state.pds() {
        Ok(pds) => pds.rate_limits.check(&limits, &caller.ip.to_string()),
        Err(e) => return e.into_response(),
    };
    match charged {
        Ok(standing) => {
            if let Some(standing) = standing {
                tightest.offer(standing);
            }
            let mut resp = next.run(req).await;
            if let Some(standing) = tightest.get() {
                set_headers(resp.headers_mut(), &standing);
            }
            resp
        }
        Err(RateLimited(standing)) => {
            let mut resp = XrpcError::rate_limit_exceeded().into_response();
            set_headers(resp.headers_mut(), &standing);
            resp
        }
    }
}

/// `RateLimit-Limit`, `-Remaining`, `-Reset` (seconds until the window ends, as a Unix time
/// in the reference) and `-Policy` (`<points>;w=<seconds>`).
fn set_headers(headers: &mut HeaderMap, standing: &Standing) {
    let reset_at = std::time::SystemTime::now()
        .checked_add(standing.reset)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let values = [
        ("ratelimit-limit", standing.limit.points.to_string()),
        ("ratelimit-remaining", standing.remaining.to_string()),
        ("ratelimit-reset", reset_at.to_string()),
        (
            "ratelimit-policy",
            format!(
                "{};w={}",
                standing.limit.points,
                standing.limit.window.as_secs()
            ),
        ),
    ];
    for (name, value) in values {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        // A public peer is the client, whatever it claims.
        assert_eq!(
            client_ip(ip("203.0.113.9"), &forwarded("198.51.100.1"), &[]),
            ip("203.0.113.9")
        );
        // Loopback, link-local and unique-local proxies are trusted.
        for proxy in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "192.168.0.2",
            "fd00::1",
            "fe80::1",
        ] {
            assert_eq!(
                client_ip(ip(proxy), &forwarded("198.51.100.1"), &[]),
                ip("198.51.100.1"),
                "{proxy}"
            );
        }
        // Right to left: a spoofed left-most entry is ignored once an untrusted one is found.
        assert_eq!(
            client_ip(
                ip("127.0.0.1"),
                &forwarded("1.1.1.1, 198.51.100.1, 10.0.0.5"),
                &[]
            ),
            ip("198.51.100.1")
        );
        // All trusted: the left-most.
        assert_eq!(
            client_ip(ip("127.0.0.1"), &forwarded("10.0.0.7, 10.0.0.5"), &[]),
            ip("10.0.0.7")
        );
        // Garbage stops the walk.
        assert_eq!(
            client_ip(ip("127.0.0.1"), &forwarded("198.51.100.1, nonsense"), &[]),
            ip("127.0.0.1")
        );
        // No header: the peer.
        assert_eq!(
            client_ip(ip("127.0.0.1"), &HeaderMap::new(), &[]),
            ip("127.0.0.1")
        );
        // A bypass IP is trusted as a proxy too.
        assert_eq!(
            client_ip(
                ip("203.0.113.9"),
                &forwarded("198.51.100.1"),
                &[ip("203.0.113.9")]
            ),
            ip("198.51.100.1")
        );
    }
}
