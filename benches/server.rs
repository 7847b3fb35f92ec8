//! The HTTP server under load. Run: `cargo bench --bench server`.
//!
//! Starts berth's PLC directory and the PDS in-process on 127.0.0.1 (temp data dir, no invite
//! codes), creates one account over HTTP, then drives two endpoints with a bounded load
//! generator (tokio + reqwest, `CONCURRENCY` workers sharing one connection pool):
//!
//! - `com.atproto.server.createSession`: password login (scrypt-bound by design);
//! - `com.atproto.server.getSession`: an authenticated read with the access token.
//!
//! Each row runs for `BENCH_SECONDS` × 3 s (default 3 s) or `SERVER_BENCH_MAX_REQUESTS`
//! requests (default 200,000), whichever ends first, and prints requests/s, p50/p99 latency
//! and the error count (any non-200 response or transport error). RSS is this process's
//! VmRSS after the run: the server *and* the load generator share the process, so it
//! overstates the server alone. Prints a table; asserts nothing about time.

#[path = "../tests/common/mod.rs"]
mod common;

use common::TestPds;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 16;
const PASSWORD: &str = "correct horse battery staple";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run());
}

async fn run() {
    let scale: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let budget = Duration::from_secs_f64(3.0 * scale);
    let max_requests: u64 = std::env::var("SERVER_BENCH_MAX_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);

    let server = common::start_pds(&[]).await;
    let rss_idle = rss_kib("VmRSS");

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("http client");
    let created: Value = http
        .post(xrpc(&server, "com.atproto.server.createAccount"))
        .json(&json!({
            "handle": "bench.test",
            "email": "bench@example.com",
            "password": PASSWORD,
        }))
        .send()
        .await
        .expect("createAccount sent")
        .error_for_status()
        .expect("createAccount succeeds")
        .json()
        .await
        .expect("createAccount JSON");
    let access = created["accessJwt"]
        .as_str()
        .expect("accessJwt in createAccount")
        .to_owned();

    println!(
        "\nberth HTTP server on 127.0.0.1, concurrency {CONCURRENCY}, {:.1} s or {max_requests} requests per row \
         (server and load generator in one process on {} cores)",
        budget.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!(
        "{:<36} {:>9} {:>11} {:>10} {:>10} {:>7} {:>10}",
        "endpoint", "requests", "req/s", "p50", "p99", "errors", "RSS after"
    );
    println!("{}", "-".repeat(99));

    let login_url = xrpc(&server, "com.atproto.server.createSession");
    let login = load(budget, max_requests, {
        let http = http.clone();
        move || {
            http.post(login_url.clone())
                .json(&json!({"identifier": "bench.test", "password": PASSWORD}))
        }
    })
    .await;
    login.print("com.atproto.server.createSession");

    let get_url = xrpc(&server, "com.atproto.server.getSession");
    let get = load(budget, max_requests, {
        let http = http.clone();
        move || http.get(get_url.clone()).bearer_auth(&access)
    })
    .await;
    get.print("com.atproto.server.getSession");

    println!(
        "RSS: {} MiB after start-up, {} MiB now, {} MiB peak (VmHWM); errors = non-200 or transport failures",
        rss_idle / 1024,
        rss_kib("VmRSS") / 1024,
        rss_kib("VmHWM") / 1024,
    );
    drop(http);
    // Dropping the harness shuts the PDS and PLC down.
    drop(server);
}

/// Results of one load run.
struct LoadResult {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl LoadResult {
    fn print(&self, name: &str) {
        let mut l = self.latencies.clone();
        l.sort();
        let pct = |p: f64| -> String {
            if l.is_empty() {
                return "-".into();
            }
            let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
            format_duration(l[i])
        };
        println!(
            "{:<36} {:>9} {:>11.0} {:>10} {:>10} {:>7} {:>6} MiB",
            name,
            self.requests,
            self.requests as f64 / self.elapsed.as_secs_f64(),
            pct(0.50),
            pct(0.99),
            self.errors,
            rss_kib("VmRSS") / 1024,
        );
    }
}

/// Runs `CONCURRENCY` workers, each sending one request at a time built by `request`, until
/// `budget` has passed or `max_requests` have been started. A 200 with a fully read body is a
/// success; anything else counts as an error.
async fn load<F>(budget: Duration, max_requests: u64, request: F) -> LoadResult
where
    F: Fn() -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let started = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + budget;
    let mut workers = Vec::with_capacity(CONCURRENCY);
    for _ in 0..CONCURRENCY {
        let request = request.clone();
        let started = started.clone();
        let errors = errors.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline
                && started.fetch_add(1, Ordering::Relaxed) < max_requests
            {
                let t = Instant::now();
                let ok = match request().send().await {
                    Ok(res) => {
                        let status_ok = res.status() == reqwest::StatusCode::OK;
                        res.bytes().await.is_ok() && status_ok
                    }
                    Err(_) => false,
                };
                latencies.push(t.elapsed());
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.expect("worker"));
    }
    LoadResult {
        requests: latencies.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
        latencies,
    }
}

fn xrpc(server: &TestPds, nsid: &str) -> String {
    format!("{}/xrpc/{nsid}", server.url)
}

/// A `/proc/self/status` field in KiB (`VmRSS`: now; `VmHWM`: peak).
fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn format_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}
