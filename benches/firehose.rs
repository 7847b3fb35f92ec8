//! The firehose under load. Run: `cargo bench --bench firehose`.
//!
//! Starts `berth plc` and `berth serve` (release binaries, child processes, 127.0.0.1, a temp
//! data dir) so the server's RSS is its own, then:
//!
//! 1. **Fan-out**: `FIREHOSE_SUBSCRIBERS` (default 1,000) WebSocket subscribers on loopback, and
//!    8 accounts writing records at `FIREHOSE_RATE` commits/s in all (default 500) for
//!    `FIREHOSE_SECONDS` (default 10). Every subscriber counts its frames; 20 probe
//!    subscribers also decode each commit's `repo` and `rev` and note its arrival. Latency runs
//!    from the moment the write request was sent to the frame's arrival, so it includes the
//!    write path itself (fsync'd commit and sequencer insert; the write's own latency is shown
//!    beside it). Reports p50/p99/max, frames delivered, subscribers dropped (ConsumerTooSlow
//!    or closed), server RSS.
//! 2. **Replay**: `FIREHOSE_REPLAY` (default 100,000) real commit events are written into the
//!    sequencer of a fresh data dir by the repo engine, then one subscriber connects with
//!    cursor 0 and reads them all: events/s.
//!
//! The load generator shares the 2 cores with the server, so these are lower bounds.
//! Prints a table; asserts nothing about time.

use berth::crypto::{Curve, Keypair};
use berth::repo::{RecordWrite, Repo};
use berth::sequencer::{Event, Sequencer, frames};
use berth::store::actor::ActorStore;
use berth::store::sqlite::Durability;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        println!("\nberth firehose (server and PLC in child processes; clients in this one)");
        println!("{:<58} {:>18}", "measure", "value");
        println!("{}", "-".repeat(78));
        fan_out().await;
        replay().await;
    });
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

/// `berth plc` and `berth serve` on a data dir; returns (server url, processes).
async fn start(dir: &Path) -> (String, u32, Vec<Proc>) {
    let bin = env!("CARGO_BIN_EXE_berth");
    let plc_port = free_port();
    let plc = Command::new(bin)
        .args([
            "plc",
            "--bind",
            "127.0.0.1",
            "--port",
            &plc_port.to_string(),
            "--db",
        ])
        .arg(dir.join("plc.sqlite"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("berth plc");
    let port = free_port();
    let key: [u8; 32] = rand::random();
    let server = Command::new(bin)
        .args(["serve", "--bind", "127.0.0.1"])
        .env_clear()
        .env("PDS_HOSTNAME", "localhost")
        .env("PDS_PORT", port.to_string())
        .env("PDS_DEV_MODE", "true")
        .env("PDS_DATA_DIRECTORY", dir)
        .env("PDS_BLOBSTORE_DISK_LOCATION", dir.join("blocks"))
        .env("PDS_JWT_SECRET", "bench-secret")
        .env("PDS_ADMIN_PASSWORD", "admin")
        .env("PDS_INVITE_REQUIRED", "false")
        .env("PDS_SERVICE_DID", format!("did:web:localhost%3A{port}"))
        .env(
            "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX",
            data_encoding::HEXLOWER.encode(&key),
        )
        .env("PDS_DID_PLC_URL", format!("http://localhost:{plc_port}"))
        .env("PDS_MAX_SUBSCRIPTION_BUFFER", "500")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("berth serve");
    let pid = server.id();
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(format!("{url}/xrpc/_health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (url, pid, vec![Proc(server), Proc(plc)])
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn row(name: &str, value: String) {
    println!("{name:<58} {value:>18}");
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A commit frame's `repo` and `rev` (the probes decode only these).
#[derive(serde::Deserialize)]
struct CommitKey {
    repo: Option<String>,
    rev: Option<String>,
}

fn commit_key(frame: &[u8]) -> Option<(String, String)> {
    let mut cursor = std::io::Cursor::new(frame);
    let _header: berth::data::Ipld = serde_ipld_dagcbor::de::from_reader_once(&mut cursor).ok()?;
    let body: CommitKey = serde_ipld_dagcbor::de::from_reader_once(&mut cursor).ok()?;
    Some((body.repo?, body.rev?))
}

async fn fan_out() {
    let subscribers = env_num("FIREHOSE_SUBSCRIBERS", 1000) as usize;
    let rate = env_num("FIREHOSE_RATE", 500);
    let seconds = env_num("FIREHOSE_SECONDS", 10);
    const WRITERS: usize = 8;
    const PROBES: usize = 20;
    let writes = (rate * seconds) as usize / WRITERS * WRITERS;
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, pid, _procs) = start(dir.path()).await;
    let http = reqwest::Client::new();
    let mut accounts = Vec::new();
    for w in 0..WRITERS {
        let account: Value = http
            .post(format!("{url}/xrpc/com.atproto.server.createAccount"))
            .json(&json!({"handle": format!("bench{w}.test"), "email": format!("bench{w}@example.com"), "password": "bench-password"}))
            .send()
            .await
            .expect("sign up")
            .json()
            .await
            .expect("sign-up json");
        accounts.push((
            account["did"].as_str().expect("did").to_string(),
            account["accessJwt"].as_str().expect("token").to_string(),
        ));
    }
    row(
        &format!("server RSS idle ({WRITERS} accounts)"),
        format!("{:.1} MiB", rss_mib(pid)),
    );

    // Subscribers count frames; the first PROBES also note when each commit arrived.
    let ws_url = format!(
        "{}/xrpc/com.atproto.sync.subscribeRepos",
        url.replace("http://", "ws://")
    );
    let mut tasks = Vec::with_capacity(subscribers);
    for i in 0..subscribers {
        let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url)
            .await
            .expect("connect");
        let probe = i < PROBES;
        tasks.push(tokio::spawn(async move {
            let mut arrivals: Vec<((String, String), Instant)> = Vec::new();
            let (mut frames, mut dropped) = (0usize, false);
            while frames < writes {
                match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
                    Ok(Some(Ok(Message::Binary(b)))) => {
                        let at = Instant::now();
                        // An error frame's header is {op: -1}.
                        if b.get(..5) == Some(&[0xa1, 0x62, 0x6f, 0x70, 0x20][..]) {
                            dropped = true;
                            break;
                        }
                        frames += 1;
                        if probe && let Some(key) = commit_key(&b) {
                            arrivals.push((key, at));
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => {
                        dropped = true;
                        break;
                    }
                }
            }
            (frames, arrivals, dropped)
        }));
    }
    row("subscribers connected", subscribers.to_string());
    let rss_connected = rss_mib(pid);

    // WRITERS accounts, each paced at rate / WRITERS.
    type Sent = std::collections::HashMap<(String, String), (Instant, Duration)>;
    let sent: Arc<std::sync::Mutex<Sent>> = Arc::default();
    let start = Instant::now();
    let per_writer = writes / WRITERS;
    debug_assert_eq!(per_writer * WRITERS, writes);
    let mut writers = Vec::new();
    for (w, (did, token)) in accounts.into_iter().enumerate() {
        let (http, url, sent) = (http.clone(), url.clone(), sent.clone());
        writers.push(tokio::spawn(async move {
            let interval = WRITERS as f64 / rate as f64;
            for k in 0..per_writer {
                let due = start + Duration::from_secs_f64((k as f64 + w as f64 / WRITERS as f64) * interval);
                tokio::time::sleep_until(due.into()).await;
                let t0 = Instant::now();
                let res: Value = http
                    .post(format!("{url}/xrpc/com.atproto.repo.createRecord"))
                    .bearer_auth(&token)
                    .json(&json!({"repo": did, "collection": "app.bsky.feed.post",
                        "record": {"$type": "app.bsky.feed.post", "text": format!("post {k}"), "createdAt": "2026-11-23T10:00:00.000Z"}}))
                    .send()
                    .await
                    .expect("write")
                    .json()
                    .await
                    .expect("write json");
                let rev = res["commit"]["rev"].as_str().expect("rev").to_string();
                sent.lock().expect("lock").insert((did.clone(), rev), (t0, t0.elapsed()));
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    let wall = start.elapsed().as_secs_f64();
    let rss_load = rss_mib(pid);
    let sent = sent.lock().expect("lock").clone();
    let mut latencies = Vec::new();
    let (mut dropped, mut delivered) = (0, 0usize);
    for t in tasks {
        let (frames, arrivals, was_dropped) = t.await.expect("subscriber");
        dropped += usize::from(was_dropped);
        delivered += frames;
        for (key, at) in arrivals {
            if let Some((t0, _)) = sent.get(&key) {
                latencies.push(at.duration_since(*t0).as_secs_f64() * 1e3);
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let mut write_ms: Vec<f64> = sent.values().map(|(_, d)| d.as_secs_f64() * 1e3).collect();
    write_ms.sort_by(f64::total_cmp);
    row(
        &format!("writes ({writes} createRecord by {WRITERS} accounts, target {rate}/s)"),
        format!("{:.0}/s", writes as f64 / wall),
    );
    row(
        "  write latency p50 / p99 (ms)",
        format!("{:.2} / {:.2}", pct(&write_ms, 0.5), pct(&write_ms, 0.99)),
    );
    row(
        "frames delivered (of subscribers x writes)",
        format!("{delivered} / {}", subscribers * writes),
    );
    row("subscribers dropped", dropped.to_string());
    row(
        &format!("write sent -> frame received, {PROBES} probes: p50 (ms)"),
        format!("{:.2}", pct(&latencies, 0.5)),
    );
    row("  p99 (ms)", format!("{:.2}", pct(&latencies, 0.99)));
    row(
        "  max (ms)",
        format!("{:.2}", latencies.last().copied().unwrap_or(f64::NAN)),
    );
    row(
        &format!("server RSS with {subscribers} subscribers / after load"),
        format!("{rss_connected:.1} / {rss_load:.1} MiB"),
    );
}

async fn replay() {
    let n = env_num("FIREHOSE_REPLAY", 100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    // Real commit events from the repo engine, written straight into the sequencer file.
    let did = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
    let key = Keypair::generate(Curve::K256);
    let mut store = ActorStore::open_in_memory(did).expect("store");
    let (mut repo, genesis) = Repo::create(did.parse().expect("did"), &key).expect("genesis");
    store.apply_commit(&genesis).expect("genesis");
    let sequencer =
        Sequencer::open(&dir.path().join("sequencer.sqlite"), Durability::Off, 16).expect("seq");
    let t = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..n {
        let write = RecordWrite::Create {
            collection: "app.bsky.feed.post".try_into().expect("nsid"),
            rkey: berth::syntax::RecordKey::from(berth::syntax::Tid::now()),
            record: berth::data::json::from_json(&json!({"$type": "app.bsky.feed.post",
                "text": format!("post {i}"), "createdAt": "2026-11-23T10:00:00.000Z"}))
            .expect("record"),
        };
        let (next, data) = repo.format_commit(&store, &[write], &key).expect("commit");
        store.apply_commit(&data).expect("stored");
        repo = next;
        batch.push(Event {
            did: did.to_string(),
            kind: frames::EventKind::Commit,
            body: frames::commit_body(did, &data),
        });
        if batch.len() == 1000 {
            sequencer.sequence(&batch).expect("sequenced");
            batch.clear();
        }
    }
    sequencer.sequence(&batch).expect("sequenced");
    drop(sequencer);
    let prepared = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(dir.path().join("sequencer.sqlite")).map_or(0, |m| m.len());
    row(
        &format!("replay: {n} commit events prepared"),
        format!("{prepared:.1} s, {} MiB", size >> 20),
    );

    let (url, pid, _procs) = start(dir.path()).await;
    let ws_url = format!(
        "{}/xrpc/com.atproto.sync.subscribeRepos?cursor=0",
        url.replace("http://", "ws://")
    );
    let t = Instant::now();
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .expect("connect");
    let (mut got, mut bytes) = (0u64, 0u64);
    while got < n {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => {
                got += 1;
                bytes += b.len() as u64;
            }
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    let secs = t.elapsed().as_secs_f64();
    row(
        &format!("replay from cursor 0: {got} events, {} MiB", bytes >> 20),
        format!("{:.0} events/s", got as f64 / secs),
    );
    row(
        "  server RSS after replay",
        format!("{:.1} MiB", rss_mib(pid)),
    );
}
