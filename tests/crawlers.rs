//! Crawlers: requestCrawl throttling and failure handling, relay reports, and `berth relay
//! status`, against a small stand-in relay on 127.0.0.1 (no relay binary runs here).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use berth::crawlers::{
    Crawlers, LocalRepo, RelayError, RepoSync, relay_http_client, relay_report, request_crawl,
};
use berth::syntax::Did;
use serde_json::{Value, json};

/// What the stand-in relay answers for `getHostStatus`.
#[derive(Clone, Copy)]
enum HostMode {
    Known,
    NotFound,
}

#[derive(Clone)]
struct Relay {
    crawl_requests: Arc<Mutex<Vec<Value>>>,
    /// Status for requestCrawl answers.
    crawl_status: StatusCode,
    host: HostMode,
    /// getRepoStatus answers per DID; a DID absent here gets a 404 `RepoNotFound`.
    repos: Arc<Mutex<HashMap<String, Value>>>,
}

struct RunningRelay {
    url: String,
    state: Relay,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl RunningRelay {
    fn crawl_count(&self) -> usize {
        self.state.crawl_requests.lock().unwrap().len()
    }

    fn set_repo(&self, did: &str, answer: Value) {
        self.state
            .repos
            .lock()
            .unwrap()
            .insert(did.to_owned(), answer);
    }
}

async fn request_crawl_handler(
    State(s): State<Relay>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    s.crawl_requests.lock().unwrap().push(body);
    if s.crawl_status.is_success() {
        (s.crawl_status, Json(json!({})))
    } else {
        (
            s.crawl_status,
            Json(json!({"error": "InternalServerError", "message": "relay is having a bad day"})),
        )
    }
}

async fn host_status_handler(
    State(s): State<Relay>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let hostname = q.get("hostname").cloned().unwrap_or_default();
    match s.host {
        HostMode::Known => (
            StatusCode::OK,
            Json(json!({"hostname": hostname, "seq": 42, "accountCount": 3, "status": "active"})),
        ),
        HostMode::NotFound => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "HostNotFound", "message": "unknown host"})),
        ),
    }
}

async fn repo_status_handler(
    State(s): State<Relay>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let did = q.get("did").cloned().unwrap_or_default();
    match s.repos.lock().unwrap().get(&did) {
        Some(v) => (StatusCode::OK, Json(v.clone())),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "RepoNotFound", "message": format!("no repo {did}")})),
        ),
    }
}

async fn start_relay(crawl_status: StatusCode, host: HostMode) -> RunningRelay {
    let state = Relay {
        crawl_requests: Arc::default(),
        crawl_status,
        host,
        repos: Arc::default(),
    };
    let app = Router::new()
        .route(
            "/xrpc/com.atproto.sync.requestCrawl",
            post(request_crawl_handler),
        )
        .route(
            "/xrpc/com.atproto.sync.getHostStatus",
            get(host_status_handler),
        )
        .route(
            "/xrpc/com.atproto.sync.getRepoStatus",
            get(repo_status_handler),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    RunningRelay {
        url,
        state,
        _stop: stop,
    }
}

/// Waits (up to 10 s) until `f` holds.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_is_throttled_per_interval() {
    let a = start_relay(StatusCode::OK, HostMode::Known).await;
    let b = start_relay(StatusCode::OK, HostMode::Known).await;
    let interval = Duration::from_secs(3);
    let crawlers = Crawlers::with_interval(
        "pds.example.com".into(),
        vec![a.url.clone(), format!("{}/", b.url)],
        interval,
    )
    .unwrap();
    assert_eq!(crawlers.urls(), [a.url.clone(), b.url.clone()]);

    // The first event after boot notifies at once: one POST per crawler with our hostname.
    let start = Instant::now();
    crawlers.notify_of_update();
    eventually("the first requestCrawl", || {
        a.crawl_count() == 1 && b.crawl_count() == 1
    })
    .await;
    for relay in [&a, &b] {
        assert_eq!(
            relay.state.crawl_requests.lock().unwrap()[0],
            json!({"hostname": "pds.example.com"})
        );
    }

    // A burst within the interval, from clones on several threads, sends nothing more; the
    // calls are cheap.
    let burst = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..4 {
        let c = crawlers.clone();
        let handle = tokio::runtime::Handle::current();
        threads.push(std::thread::spawn(move || {
            let _enter = handle.enter();
            for _ in 0..250 {
                c.notify_of_update();
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        burst.elapsed() < Duration::from_millis(500),
        "1,000 notifications took {:?}",
        burst.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        start.elapsed() < interval,
        "the test machine is too slow for this interval"
    );
    assert_eq!((a.crawl_count(), b.crawl_count()), (1, 1));

    // Once the interval has passed, the next event notifies again (once).
    tokio::time::sleep(interval.saturating_sub(start.elapsed()) + Duration::from_millis(100)).await;
    crawlers.notify_of_update();
    crawlers.notify_of_update();
    eventually("the second requestCrawl", || {
        a.crawl_count() == 2 && b.crawl_count() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!((a.crawl_count(), b.crawl_count()), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_crawlers_and_no_runtime_are_harmless() {
    let none = Crawlers::new("pds.example.com".into(), Vec::new()).unwrap();
    none.notify_of_update();
    assert!(none.request_crawl_now().await.is_empty());

    // Without a runtime on the calling thread the notification is dropped, not a panic.
    let relay = start_relay(StatusCode::OK, HostMode::Known).await;
    let c = Crawlers::new("pds.example.com".into(), vec![relay.url.clone()]).unwrap();
    std::thread::spawn(move || c.notify_of_update())
        .join()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(relay.crawl_count(), 0);
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// Single-threaded runtime: the spawned request task runs on this thread, where the test's log
// subscriber is installed.
#[tokio::test]
async fn failing_relay_is_logged_not_propagated() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let bad = start_relay(StatusCode::INTERNAL_SERVER_ERROR, HostMode::Known).await;
    let good = start_relay(StatusCode::OK, HostMode::Known).await;
    let crawlers = Crawlers::new(
        "pds.example.com".into(),
        vec![bad.url.clone(), good.url.clone()],
    )
    .unwrap();
    let t = Instant::now();
    crawlers.notify_of_update();
    assert!(t.elapsed() < Duration::from_millis(100), "notify blocked");
    eventually("the failure to be logged", || {
        logs.text().contains("requestCrawl failed")
    })
    .await;
    assert_eq!((bad.crawl_count(), good.crawl_count()), (1, 1));
    let text = logs.text();
    assert!(text.contains("500"), "{text}");
    assert!(text.contains("relay is having a bad day"), "{text}");
    assert!(text.contains(&bad.url), "{text}");

    // The operator command reports each relay's answer.
    let outcomes = crawlers.request_crawl_now().await;
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[0].relay, bad.url);
    assert_eq!(outcomes[0].status, Some(500));
    assert!(!outcomes[0].is_ok());
    assert!(
        outcomes[0]
            .message
            .contains("InternalServerError: relay is having a bad day"),
        "{}",
        outcomes[0].message
    );
    assert!(outcomes[1].is_ok(), "{:?}", outcomes[1]);

    // An unreachable relay tells the operator where to look.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let outcome = request_crawl(
        &relay_http_client().unwrap(),
        &format!("http://127.0.0.1:{closed}"),
        "pds.example.com",
    )
    .await;
    assert_eq!(outcome.status, None);
    assert!(
        outcome.message.contains("PDS_CRAWLERS"),
        "{}",
        outcome.message
    );
}

fn did(s: &str) -> Did {
    s.parse().unwrap()
}

fn local(d: &str, rev: &str, active: bool) -> LocalRepo {
    LocalRepo {
        did: did(d),
        rev: rev.into(),
        active,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_report_classifies_repos() {
    let relay = start_relay(StatusCode::OK, HostMode::Known).await;
    relay.set_repo(
        "did:plc:insync",
        json!({"did": "did:plc:insync", "active": true, "rev": "3lbbbbbbbbbbb"}),
    );
    relay.set_repo(
        "did:plc:behind",
        json!({"did": "did:plc:behind", "active": true, "rev": "3laaaaaaaaaaa"}),
    );
    relay.set_repo(
        "did:plc:inactive",
        json!({"did": "did:plc:inactive", "active": false, "status": "takendown"}),
    );
    let repos = [
        local("did:plc:insync", "3lbbbbbbbbbbb", true),
        local("did:plc:behind", "3lbbbbbbbbbbb", true),
        local("did:plc:unknown", "3lbbbbbbbbbbb", true),
        local("did:plc:inactive", "3lbbbbbbbbbbb", true),
    ];
    let report = relay_report(&relay.url, "pds.example.com", &repos).await;
    let host = report.host.clone().unwrap();
    assert_eq!(host.hostname, "pds.example.com");
    assert_eq!(host.seq, Some(42));
    assert_eq!(host.account_count, Some(3));
    assert_eq!(host.status.as_deref(), Some("active"));
    let syncs: Vec<_> = report.repos.iter().map(|r| r.sync.clone()).collect();
    assert_eq!(
        syncs,
        [
            RepoSync::InSync,
            RepoSync::Behind {
                relay_rev: "3laaaaaaaaaaa".into(),
                ours: "3lbbbbbbbbbbb".into()
            },
            RepoSync::Unknown,
            RepoSync::Inactive {
                status: Some("takendown".into())
            },
        ]
    );
    assert_eq!(report.unchecked, 0);
    assert!(!report.all_good());
    let table = report.table();
    assert!(
        table.contains("host status: active, seq 42, accounts 3"),
        "{table}"
    );
    for (did, says) in [
        ("did:plc:insync", "in sync"),
        (
            "did:plc:behind",
            "behind (relay rev 3laaaaaaaaaaa, ours 3lbbbbbbbbbbb)",
        ),
        ("did:plc:unknown", "unknown to relay"),
        ("did:plc:inactive", "relay says inactive: takendown"),
    ] {
        let line = table
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{did} ")));
        assert!(
            line.is_some_and(|l| l.contains("3lbbbbbbbbbbb") && l.ends_with(says)),
            "{did}: {says:?} in\n{table}"
        );
    }

    // Only the first REPORT_REPO_LIMIT repos are asked about.
    let many: Vec<_> = (0..berth::crawlers::REPORT_REPO_LIMIT + 7)
        .map(|i| local(&format!("did:plc:many{i}"), "3lbbbbbbbbbbb", true))
        .collect();
    let report = relay_report(&relay.url, "pds.example.com", &many).await;
    assert_eq!(report.repos.len(), berth::crawlers::REPORT_REPO_LIMIT);
    assert_eq!(report.unchecked, 7);
    assert!(report.table().contains("(7 repos not checked)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_report_host_not_found_and_unreachable() {
    let relay = start_relay(StatusCode::OK, HostMode::NotFound).await;
    let repos = [local("did:plc:unknown", "3lbbbbbbbbbbb", true)];
    let report = relay_report(&relay.url, "pds.example.com", &repos).await;
    assert_eq!(report.host, Err(RelayError::HostNotFound));
    assert_eq!(report.repos[0].sync, RepoSync::Unknown);
    assert!(
        report.table().contains("berth relay request-crawl"),
        "{}",
        report.table()
    );

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let report = relay_report(
        &format!("http://127.0.0.1:{closed}"),
        "pds.example.com",
        &repos,
    )
    .await;
    assert!(
        matches!(&report.host, Err(RelayError::Unreachable(m)) if m.contains("PDS_CRAWLERS")),
        "{:?}",
        report.host
    );
    assert!(report.repos.is_empty());
    assert_eq!(report.unchecked, 1);
}

/// `PDS_*` variables for a `berth` command reading the test PDS's data directory.
fn cli_env(data_dir: &std::path::Path, crawlers: &str) -> Vec<(String, String)> {
    let key = berth::crypto::Keypair::generate(berth::crypto::Curve::K256).to_private_hex();
    [
        ("PDS_HOSTNAME", "localhost".to_owned()),
        ("PDS_DEV_MODE", "true".to_owned()),
        ("PDS_DATA_DIRECTORY", data_dir.display().to_string()),
        (
            "PDS_BLOBSTORE_DISK_LOCATION",
            data_dir.join("blocks").display().to_string(),
        ),
        ("PDS_JWT_SECRET", "0123456789abcdef".to_owned()),
        ("PDS_ADMIN_PASSWORD", "admin-pass".to_owned()),
        ("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX", key),
        ("PDS_CRAWLERS", crawlers.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn run_berth(args: &[&str], env: &[(String, String)]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("LOG_LEVEL", "warn")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_relay_status_and_request_crawl() {
    let pds = common::start_pds(&[]).await;
    let res = pds
        .http
        .post(format!("{}/xrpc/com.atproto.server.createAccount", pds.url))
        .json(
            &json!({"handle": "alice.test", "email": "alice@example.com", "password": "hunter22"}),
        )
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    let alice = v["did"].as_str().unwrap().to_owned();
    let rev = {
        let store =
            berth::store::account::AccountStore::open(&pds.dir.path().join("account.sqlite"))
                .unwrap();
        store.get_repo_root(&did(&alice)).unwrap().unwrap().rev
    };

    let relay = start_relay(StatusCode::OK, HostMode::Known).await;
    relay.set_repo(&alice, json!({"did": alice, "active": true, "rev": rev}));
    let env = cli_env(pds.dir.path(), &relay.url);

    let (ok, stdout, stderr) = run_berth(&["relay", "status"], &env).await;
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains(&relay.url), "{stdout}");
    assert!(stdout.contains("host status: active, seq 42"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains(&alice))
        .unwrap_or_else(|| panic!("no line for {alice}:\n{stdout}"));
    assert!(line.contains(&rev) && line.ends_with("in sync"), "{line}");

    // The relay falls behind: the table says so.
    relay.set_repo(
        &alice,
        json!({"did": alice, "active": true, "rev": "2222222222222"}),
    );
    let (_, stdout, _) = run_berth(&["relay", "status"], &env).await;
    assert!(
        stdout.contains(&format!("behind (relay rev 2222222222222, ours {rev})")),
        "{stdout}"
    );

    // A relay that doesn't know us: failure, with what to do.
    let stranger = start_relay(StatusCode::OK, HostMode::NotFound).await;
    let (ok, stdout, stderr) =
        run_berth(&["relay", "status", "--relay", &stranger.url], &env).await;
    assert!(!ok);
    assert!(stdout.contains("berth relay request-crawl"), "{stdout}");
    assert!(stdout.contains(&alice), "{stdout}");
    assert!(stderr.contains("could not report"), "{stderr}");

    // request-crawl posts our hostname to the configured relay and prints its answer.
    let (ok, stdout, stderr) = run_berth(&["relay", "request-crawl"], &env).await;
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains(&format!("{}: accepted (200)", relay.url)),
        "{stdout}"
    );
    assert_eq!(
        relay.state.crawl_requests.lock().unwrap().as_slice(),
        [json!({"hostname": "localhost"})]
    );

    // A refusing relay given with --relay: non-zero exit, its answer shown.
    let bad = start_relay(StatusCode::INTERNAL_SERVER_ERROR, HostMode::Known).await;
    let (ok, stdout, _) = run_berth(&["relay", "request-crawl", "--relay", &bad.url], &env).await;
    assert!(!ok);
    assert!(stdout.contains("refused (500)"), "{stdout}");

    // No relays at all: the error says how to configure them.
    let mut no_relays = env.clone();
    no_relays.retain(|(k, _)| k != "PDS_CRAWLERS");
    let (ok, _, stderr) = run_berth(&["relay", "request-crawl"], &no_relays).await;
    assert!(!ok);
    assert!(stderr.contains("PDS_CRAWLERS"), "{stderr}");

    // A wrong data directory is named, not silently created.
    let empty = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = run_berth(&["relay", "status"], &cli_env(empty.path(), &relay.url)).await;
    assert!(!ok);
    assert!(stderr.contains("PDS_DATA_DIRECTORY"), "{stderr}");
    assert!(!empty.path().join("account.sqlite").exists());
}

/// Wired into the server: the first sequenced event (a sign-up) makes the PDS ask each
/// configured relay to crawl it, once per interval, not once per event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_asks_relays_to_crawl_when_events_flow() {
    let relay = start_relay(StatusCode::OK, HostMode::Known).await;
    let pds = common::start_pds(&[("PDS_CRAWLERS", relay.url.as_str())]).await;
    assert_eq!(relay.crawl_count(), 0, "nothing at startup");
    for handle in ["alice.test", "bob.test"] {
        let res = pds
            .http
            .post(format!("{}/xrpc/com.atproto.server.createAccount", pds.url))
            .json(&serde_json::json!({"handle": handle, "email": format!("{handle}@example.com"), "password": "hunter22"}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }
    eventually("a requestCrawl", || relay.crawl_count() == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        relay.crawl_count(),
        1,
        "throttled: one request for both sign-ups"
    );
    let body = relay.state.crawl_requests.lock().unwrap()[0].clone();
    assert_eq!(body["hostname"], "localhost");
}
