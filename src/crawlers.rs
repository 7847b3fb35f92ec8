//! crawlers: telling relays (`PDS_CRAWLERS`) that this PDS exists and has news, and asking them
//! how well they follow us.
//!
//! A relay only subscribes to a PDS's firehose after that PDS has asked it to with
//! `com.atproto.sync.requestCrawl {hostname}`. Like the reference, berth repeats the request
//! whenever events are sequenced, at most once per crawler per interval (20 minutes by
//! default), so a relay that dropped us picks us up again soon after our next write.
//!
//! Invariants:
//! - [`Crawlers::notify_of_update`] never blocks and never fails: on the hot path it is one
//!   atomic load (plus one compare-exchange when a request is due). The HTTP requests run in a
//!   spawned task; their failures are logged with the relay's status and a body excerpt, never
//!   returned to the sequencer.
//! - Per [`Crawlers`] value (and its clones), at most one round of requests starts per interval,
//!   however many threads notify at once: the compare-exchange on the last-notified time has
//!   exactly one winner. The first notification after construction always starts a round.
//! - Relay URLs come from the operator's configuration, not from users, so these requests do
//!   not go through the identity SSRF guard; they are bounded by connect and request timeouts,
//!   and relay response bodies are read only up to a small cap.

use std::cmp::Ordering as CmpOrdering;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::syntax::Did;

/// How often, at most, each crawler is asked to crawl (the reference's 20 minutes).
pub const DEFAULT_NOTIFY_INTERVAL: Duration = Duration::from_secs(20 * 60);

/// How many of our repos [`relay_report`] asks the relay about.
pub const REPORT_REPO_LIMIT: usize = 50;

/// Connect timeout for relay requests.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-request timeout for relay requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Relay answers are small JSON objects; read no more than this of any body.
const MAX_BODY: usize = 64 * 1024;
/// How much of an unexpected body goes into a log line or message.
const EXCERPT_CHARS: usize = 200;
/// Concurrent `getRepoStatus` requests per report: quick, without hammering the relay.
const REPORT_CONCURRENCY: usize = 8;

/// `last_notified` value meaning "never": the first notification is always due.
const NEVER: u64 = u64::MAX;

/// The set of relays to notify, shared by every clone (cheap: one `Arc`).
#[derive(Clone)]
pub struct Crawlers {
    inner: Arc<Inner>,
}

struct Inner {
    hostname: String,
    urls: Vec<String>,
    interval: Duration,
    http: reqwest::Client,
    /// Time origin for `last_notified`, so the timestamp fits in an atomic integer.
    epoch: Instant,
    /// Milliseconds since `epoch` when the last round started, or [`NEVER`].
    last_notified: AtomicU64,
}

impl fmt::Debug for Crawlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crawlers")
            .field("hostname", &self.inner.hostname)
            .field("urls", &self.inner.urls)
            .field("interval", &self.inner.interval)
            .finish()
    }
}

/// One relay's answer to `requestCrawl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrawlOutcome {
    /// The relay's base URL.
    pub relay: String,
    /// The HTTP status, or `None` when the relay could not be reached.
    pub status: Option<u16>,
    /// What the relay said (its XRPC error and message, or a body excerpt), or why it could not
    /// be reached, with a hint for the operator.
    pub message: String,
}

impl CrawlOutcome {
    /// Whether the relay accepted the request (a 2xx answer).
    pub fn is_ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

impl fmt::Display for CrawlOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(s) if self.is_ok() => write!(f, "{}: accepted ({s})", self.relay),
            Some(s) => write!(f, "{}: refused ({s}): {}", self.relay, self.message),
            None => write!(f, "{}: unreachable: {}", self.relay, self.message),
        }
    }
}

impl Crawlers {
    /// Crawlers for `hostname` (`PDS_HOSTNAME`) with the default 20-minute interval.
    /// `crawler_urls` are relay base URLs (`PDS_CRAWLERS`); a trailing `/` is ignored.
    pub fn new(hostname: String, crawler_urls: Vec<String>) -> Result<Crawlers, reqwest::Error> {
        Crawlers::with_interval(hostname, crawler_urls, DEFAULT_NOTIFY_INTERVAL)
    }

    /// As [`Crawlers::new`], asking each crawler at most once per `interval`.
    pub fn with_interval(
        hostname: String,
        crawler_urls: Vec<String>,
        interval: Duration,
    ) -> Result<Crawlers, reqwest::Error> {
        Ok(Crawlers {
            inner: Arc::new(Inner {
                hostname,
                urls: crawler_urls
                    .into_iter()
                    .map(|u| u.trim_end_matches('/').to_owned())
                    .collect(),
                interval,
                http: relay_http_client()?,
                epoch: Instant::now(),
                last_notified: AtomicU64::new(NEVER),
            }),
        })
    }

    /// The relay base URLs.
    pub fn urls(&self) -> &[String] {
        &self.inner.urls
    }

    /// The hostname sent in `requestCrawl`.
    pub fn hostname(&self) -> &str {
        &self.inner.hostname
    }

    /// Events were sequenced: ask every crawler to crawl us, unless a round already started
    /// within the interval. Returns at once; the requests run in a spawned task, and without
    /// a Tokio runtime on this thread nothing is sent (logged) rather than panicking.
    pub fn notify_of_update(&self) {
        let inner = &self.inner;
        if inner.urls.is_empty() {
            return;
        }
        let now = u64::try_from(inner.epoch.elapsed().as_millis()).unwrap_or(NEVER - 1);
        let last = inner.last_notified.load(Ordering::Relaxed);
        let interval = u64::try_from(inner.interval.as_millis()).unwrap_or(u64::MAX);
        if last != NEVER && now.saturating_sub(last) < interval {
            return;
        }
        // Exactly one of the racing notifiers wins the round.
        if inner
            .last_notified
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("crawlers: no async runtime on this thread; requestCrawl not sent");
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            for outcome in this.request_crawl_now().await {
                if outcome.is_ok() {
                    tracing::debug!(relay = %outcome.relay, "requestCrawl accepted");
                } else {
                    tracing::warn!(
                        relay = %outcome.relay,
                        status = ?outcome.status,
                        "requestCrawl failed: {}",
                        outcome.message
                    );
                }
            }
        });
    }

    /// Asks every crawler to crawl us now (ignoring the interval), concurrently, and returns
    /// each relay's answer in configuration order.
    pub async fn request_crawl_now(&self) -> Vec<CrawlOutcome> {
        let inner = &self.inner;
        futures_util::future::join_all(
            inner
                .urls
                .iter()
                .map(|url| request_crawl(&inner.http, url, &inner.hostname)),
        )
        .await
    }
}

/// The HTTP client for relay requests: timeouts, no redirects (a relay answers its own XRPC).
pub fn relay_http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Checks an operator-given relay URL (`--relay`): http(s), host present. Returns it without a
/// trailing `/`.
pub fn normalize_relay_url(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "{url:?} is not an http(s) relay URL (e.g. https://bsky.network)"
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// POSTs `com.atproto.sync.requestCrawl {hostname}` to one relay.
pub async fn request_crawl(http: &reqwest::Client, relay: &str, hostname: &str) -> CrawlOutcome {
    let url = format!("{relay}/xrpc/com.atproto.sync.requestCrawl");
    let body = serde_json::json!({ "hostname": hostname });
    match http.post(&url).json(&body).send().await {
        Err(e) => CrawlOutcome {
            relay: relay.to_owned(),
            status: None,
            message: unreachable_message(&e),
        },
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = read_capped(resp).await;
            let message = if (200..300).contains(&status) {
                String::new()
            } else {
                let said = describe_body(&text);
                match xrpc_error_name(&text).as_deref() {
                    Some("HostBanned") => format!(
                        "{said} (the relay has banned this host; contact the relay's operators)"
                    ),
                    _ => said,
                }
            };
            CrawlOutcome {
                relay: relay.to_owned(),
                status: Some(status),
                message,
            }
        }
    }
}

/// One of our repos, as the account database knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRepo {
    pub did: Did,
    /// The head commit's rev.
    pub rev: String,
    /// Whether the account is active here (not deactivated or taken down).
    pub active: bool,
}

/// A relay's view of this PDS (`com.atproto.sync.getHostStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostStatus {
    pub hostname: String,
    /// The last firehose seq the relay has from us.
    pub seq: Option<i64>,
    pub account_count: Option<i64>,
    /// `active`, `idle`, `offline`, `throttled`, `banned`, ...
    pub status: Option<String>,
}

/// Why a relay question got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// No HTTP answer at all (DNS, connect, TLS, timeout).
    #[error("relay unreachable: {0}")]
    Unreachable(String),
    /// The relay does not know this host.
    #[error(
        "the relay does not know this host (HostNotFound); run `berth relay request-crawl` \
         and check again in a few minutes"
    )]
    HostNotFound,
    /// Any other non-success answer. `error` is the XRPC error name, if the body had one;
    /// `message` describes the body (it starts with that name).
    #[error("relay answered {status}: {message}")]
    Http {
        status: u16,
        error: Option<String>,
        message: String,
    },
    /// A 2xx answer that is not the expected JSON.
    #[error("relay sent an unexpected answer: {0}")]
    Malformed(String),
}

/// How one of our repos looks on the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoSync {
    /// The relay has our current rev.
    InSync,
    /// The relay has an older rev.
    Behind { relay_rev: String, ours: String },
    /// The relay has a rev newer than ours (e.g. the account moved away, or our repo was
    /// re-imported).
    Ahead { relay_rev: String, ours: String },
    /// The relay says the repo is active but gave no rev.
    NoRev,
    /// `RepoNotFound`: the relay has never seen the repo.
    Unknown,
    /// The relay holds the repo as inactive (`status` is its reason, if given).
    Inactive { status: Option<String> },
    /// The question failed.
    Error(RelayError),
}

impl fmt::Display for RepoSync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepoSync::InSync => f.write_str("in sync"),
            RepoSync::Behind { relay_rev, ours } => {
                write!(f, "behind (relay rev {relay_rev}, ours {ours})")
            }
            RepoSync::Ahead { relay_rev, ours } => {
                write!(f, "relay ahead (relay rev {relay_rev}, ours {ours})")
            }
            RepoSync::NoRev => f.write_str("active on relay, no rev reported"),
            RepoSync::Unknown => f.write_str("unknown to relay"),
            RepoSync::Inactive { status } => write!(
                f,
                "relay says inactive: {}",
                status.as_deref().unwrap_or("no reason given")
            ),
            RepoSync::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// One repo's line in a [`RelayReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoReport {
    pub did: Did,
    pub local_rev: String,
    pub local_active: bool,
    pub sync: RepoSync,
}

/// A relay's view of this PDS and of each of our repos (up to [`REPORT_REPO_LIMIT`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayReport {
    pub relay: String,
    pub hostname: String,
    pub host: Result<HostStatus, RelayError>,
    /// In the order given; empty when the relay was unreachable.
    pub repos: Vec<RepoReport>,
    /// Repos not asked about (beyond the limit, or because the relay was unreachable).
    pub unchecked: usize,
}

impl RelayReport {
    /// A plain-text report for the terminal: the host status, then one line per repo.
    pub fn table(&self) -> String {
        use fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "relay {} (host {})", self.relay, self.hostname);
        match &self.host {
            Ok(h) => {
                let opt = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
                let _ = writeln!(
                    out,
                    "  host status: {}, seq {}, accounts {}",
                    h.status.as_deref().unwrap_or("-"),
                    opt(h.seq),
                    opt(h.account_count)
                );
                match h.status.as_deref() {
                    Some("banned") => {
                        let _ = writeln!(
                            out,
                            "  the relay has banned this host; contact the relay's operators"
                        );
                    }
                    Some("offline" | "idle") => {
                        let _ = writeln!(
                            out,
                            "  the relay is not subscribed right now; run `berth relay \
                             request-crawl` and make sure {} serves subscribeRepos publicly",
                            self.hostname
                        );
                    }
                    _ => {}
                }
            }
            Err(e) => {
                let _ = writeln!(out, "  host status: {e}");
            }
        }
        if !self.repos.is_empty() {
            let width = self
                .repos
                .iter()
                .map(|r| r.did.as_str().len())
                .max()
                .unwrap_or(0);
            let _ = writeln!(out, "  {:width$}  {:13}  relay", "repo", "our rev");
            for r in &self.repos {
                let note = if r.local_active {
                    ""
                } else {
                    " (inactive here too)"
                };
                let _ = writeln!(
                    out,
                    "  {:width$}  {:13}  {}{note}",
                    r.did.as_str(),
                    r.local_rev,
                    r.sync
                );
            }
        }
        if self.unchecked > 0 {
            let _ = writeln!(out, "  ({} repos not checked)", self.unchecked);
        }
        out
    }

    /// Whether everything checked is fine: host known and no repo behind, unknown, inactive
    /// while active here, or failed.
    pub fn all_good(&self) -> bool {
        self.host.is_ok()
            && self.repos.iter().all(|r| match &r.sync {
                RepoSync::InSync | RepoSync::NoRev => true,
                RepoSync::Inactive { .. } => !r.local_active,
                _ => false,
            })
    }
}

/// Asks the relay at `relay_url` about `hostname` (`getHostStatus`) and about each of `repos`
/// (`getRepoStatus`, the first [`REPORT_REPO_LIMIT`] only), comparing its revs with ours.
pub async fn relay_report(relay_url: &str, hostname: &str, repos: &[LocalRepo]) -> RelayReport {
    let relay = relay_url.trim_end_matches('/').to_owned();
    let mut report = RelayReport {
        relay: relay.clone(),
        hostname: hostname.to_owned(),
        host: Err(RelayError::Unreachable(String::new())),
        repos: Vec::new(),
        unchecked: repos.len(),
    };
    let http = match relay_http_client() {
        Ok(h) => h,
        Err(e) => {
            report.host = Err(RelayError::Unreachable(format!(
                "could not build an HTTP client: {e}"
            )));
            return report;
        }
    };
    report.host = host_status(&http, &relay, hostname).await;
    if matches!(report.host, Err(RelayError::Unreachable(_))) {
        // Every repo question would time out the same way.
        return report;
    }
    let checked = &repos[..repos.len().min(REPORT_REPO_LIMIT)];
    report.repos = futures_util::stream::iter(checked)
        .map(|local| {
            let (http, relay) = (&http, relay.as_str());
            async move {
                RepoReport {
                    did: local.did.clone(),
                    local_rev: local.rev.clone(),
                    local_active: local.active,
                    sync: repo_sync(http, relay, local).await,
                }
            }
        })
        .buffered(REPORT_CONCURRENCY)
        .collect()
        .await;
    report.unchecked = repos.len() - checked.len();
    report
}

async fn host_status(
    http: &reqwest::Client,
    relay: &str,
    hostname: &str,
) -> Result<HostStatus, RelayError> {
    let v = get_json(
        http,
        relay,
        "com.atproto.sync.getHostStatus",
        "hostname",
        hostname,
    )
    .await
    .map_err(|e| match e {
        RelayError::Http {
            error: Some(ref name),
            ..
        } if name == "HostNotFound" => RelayError::HostNotFound,
        e => e,
    })?;
    Ok(HostStatus {
        hostname: v["hostname"].as_str().unwrap_or(hostname).to_owned(),
        seq: v["seq"].as_i64(),
        account_count: v["accountCount"].as_i64(),
        status: v["status"].as_str().map(str::to_owned),
    })
}

async fn repo_sync(http: &reqwest::Client, relay: &str, local: &LocalRepo) -> RepoSync {
    let v = match get_json(
        http,
        relay,
        "com.atproto.sync.getRepoStatus",
        "did",
        local.did.as_str(),
    )
    .await
    {
        Ok(v) => v,
        Err(RelayError::Http {
            error: Some(name), ..
        }) if name == "RepoNotFound" => {
            return RepoSync::Unknown;
        }
        Err(e) => return RepoSync::Error(e),
    };
    let Some(active) = v["active"].as_bool() else {
        return RepoSync::Error(RelayError::Malformed(
            "getRepoStatus without a boolean `active`".into(),
        ));
    };
    if !active {
        return RepoSync::Inactive {
            status: v["status"].as_str().map(str::to_owned),
        };
    }
    let Some(relay_rev) = v["rev"].as_str() else {
        return RepoSync::NoRev;
    };
    // Revs are TIDs, whose string order is their time order.
    match relay_rev.cmp(local.rev.as_str()) {
        CmpOrdering::Equal => RepoSync::InSync,
        CmpOrdering::Less => RepoSync::Behind {
            relay_rev: relay_rev.to_owned(),
            ours: local.rev.clone(),
        },
        CmpOrdering::Greater => RepoSync::Ahead {
            relay_rev: relay_rev.to_owned(),
            ours: local.rev.clone(),
        },
    }
}

/// GETs `<relay>/xrpc/<nsid>?<param>=<value>` and parses a JSON object. A non-2xx answer
/// becomes [`RelayError::Http`] whose message starts with the XRPC error name, if any.
async fn get_json(
    http: &reqwest::Client,
    relay: &str,
    nsid: &str,
    param: &str,
    value: &str,
) -> Result<serde_json::Value, RelayError> {
    let mut url = reqwest::Url::parse(&format!("{relay}/xrpc/{nsid}"))
        .map_err(|e| RelayError::Unreachable(format!("bad relay URL {relay:?}: {e}")))?;
    url.query_pairs_mut().append_pair(param, value);
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| RelayError::Unreachable(unreachable_message(&e)))?;
    let status = resp.status().as_u16();
    let text = read_capped(resp).await;
    if !(200..300).contains(&status) {
        return Err(RelayError::Http {
            status,
            error: xrpc_error_name(&text),
            message: describe_body(&text),
        });
    }
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(RelayError::Malformed(excerpt(&text))),
    }
}

/// The body as text, at most [`MAX_BODY`] bytes of it; a read error ends it early.
async fn read_capped(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = MAX_BODY - buf.len();
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= MAX_BODY {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn xrpc_error_name(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v["error"].as_str().map(str::to_owned)
}

/// `Error: message` for an XRPC error body, otherwise an excerpt of the body.
fn describe_body(text: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
        && let Some(error) = v["error"].as_str()
    {
        return match v["message"].as_str() {
            Some(m) => excerpt(&format!("{error}: {m}")),
            None => excerpt(error),
        };
    }
    if text.trim().is_empty() {
        "(empty body)".to_owned()
    } else {
        excerpt(text)
    }
}

/// A short, single-line excerpt safe for a log line or terminal.
fn excerpt(text: &str) -> String {
    let mut out: String = text
        .trim()
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.trim().chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    out
}

fn unreachable_message(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // The source chain names the actual cause (DNS, refused, TLS).
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    let cause = if cause.is_empty() {
        String::new()
    } else {
        format!(" ({cause})")
    };
    format!("{kind}{cause}; check PDS_CRAWLERS / --relay and the network")
}
