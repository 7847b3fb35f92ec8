//! The firehose under load. Run: `cargo bench --bench firehose`.
//!
//! Starts `berth plc` and `berth serve` (release binaries, child processes, 127.0.0.1, a temp
//! data dir) so the server's RSS is its own, then:
//!
//! 1. **Fan-out**: `FIREHOSE_SUBSCRIBERS` (default 1,000) WebSocket subscribers on loopback, and
//!    8 accounts writing records at `FIREHOSE_RATE` commits/s in all (default 500) for
//!    `FIREHOSE_SECONDS` (default 10). Every subscriber counts its frames; 20 probe
//!    subscribers also decode each commit's `repo` and `rev` and note its arrival. Two latencies:
//!    **at the server**, from the event being sequenced to its frame being written to each
//!    subscriber's socket (every frame to every subscriber, read from the server's `/metrics`
//!    histogram, so values are bucket bounds); and **end to end**, from the write request being
//!    sent to the probe receiving the frame, which adds the write itself and the client's
//!    side. Also frames delivered, subscribers dropped (ConsumerTooSlow or closed), server RSS.
//! 2. **Replay**: `FIREHOSE_REPLAY` (default 100,000) real commit events are written into the
//!    sequencer of a fresh data dir by the repo engine, then one subscriber connects with
//!    cursor 0 and reads them all: events/s.
//!
//! 3. **Floor**: what the kernel alone charges for the fan-out on this machine: 1.2 KB written
//!    to each of N loopback TCP connections and read back, CPU µs per delivery, and the cores
//!    that 500 frames/s to 1,000 subscribers would need for it with one write per frame.
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

#[path = "../tests/common/serve_process.rs"]
mod serve_process;

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
        loopback_floor();
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
    let server =
        serve_process::serve_command(bin, dir, port, &format!("http://localhost:{plc_port}"))
            .env("PDS_MAX_SUBSCRIPTION_BUFFER", "500")
            .spawn()
            .expect("berth serve");
    let pid = server.id();
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    serve_process::wait_healthy(&http, &url).await;
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

    let before = server_histogram(&http, &url).await;
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
    // Subscribers still catching up add their deliveries until they have all frames.
    tokio::time::sleep(Duration::from_millis(200)).await;
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
    let after = server_histogram(&http, &url).await;
    let at_server: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
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
    let server_total: u64 = at_server.iter().sum();
    row(
        &format!("at the server, sequenced -> written, {server_total} deliveries: p50 (ms)"),
        bucket_pct(&at_server, 0.5),
    );
    row("  p99 (ms)", bucket_pct(&at_server, 0.99));
    row("  p99.9 (ms)", bucket_pct(&at_server, 0.999));
    row(
        &format!("end to end, write sent -> frame received, {PROBES} probes: p50 (ms)"),
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

/// The server's delivery histogram (`/metrics`): frames per bucket, overflow last.
async fn server_histogram(http: &reqwest::Client, url: &str) -> Vec<u64> {
    let text = http
        .get(format!("{url}/metrics"))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let cumulative: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("berth_firehose_delivery_seconds_bucket"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(
        cumulative.len(),
        berth::sequencer::stats::BUCKET_BOUNDS_US.len() + 1,
        "metrics: {text}"
    );
    let mut previous = 0;
    cumulative
        .into_iter()
        .map(|c| {
            let n = c - previous;
            previous = c;
            n
        })
        .collect()
}

/// The bound of the bucket holding quantile `q` ("≤ x"), from per-bucket counts.
fn bucket_pct(buckets: &[u64], q: f64) -> String {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return "-".into();
    }
    let want = (total as f64 * q).ceil() as u64;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= want {
            return match berth::sequencer::stats::BUCKET_BOUNDS_US.get(i) {
                Some(us) => format!("<= {:.2}", *us as f64 / 1e3),
                None => "> 1000".into(),
            };
        }
    }
    "-".into()
}

/// The kernel's share of a fan-out on this machine (see the module doc).
fn loopback_floor() {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    let n = env_num("FIREHOSE_SUBSCRIBERS", 1000) as usize;
    let rounds = 200;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        let client = TcpStream::connect(addr).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        server.set_nodelay(true).expect("nodelay");
        pairs.push((server, client));
    }
    let frame = vec![0xa2u8; 1200];
    let mut buf = vec![0u8; 64 * 1024];
    // The write loop never blocks (the socket buffers hold a frame), so its wall time is its
    // CPU time; /proc's tick-based counters are only precise over the whole run.
    let mut write_cpu = 0.0;
    let start = cpu_seconds();
    for _ in 0..rounds {
        let t = Instant::now();
        for (server, _) in pairs.iter_mut() {
            server.write_all(&frame).expect("write");
        }
        write_cpu += t.elapsed().as_secs_f64();
        for (_, client) in pairs.iter_mut() {
            let mut got = 0;
            while got < frame.len() {
                got += client.read(&mut buf).expect("read");
            }
        }
    }
    let all_cpu = cpu_seconds() - start;
    let deliveries = (n * rounds) as f64;
    row(
        &format!("floor: {n} loopback sockets, 1.2 KB each: CPU per write (us)"),
        format!("{:.2}", write_cpu / deliveries * 1e6),
    );
    row(
        "  CPU per write + read (us)",
        format!("{:.2}", all_cpu / deliveries * 1e6),
    );
    row(
        "  cores for 500 frames/s x 1,000 subscribers: writes / +reads",
        format!(
            "{:.2} / {:.2}",
            write_cpu / deliveries * 500_000.0,
            all_cpu / deliveries * 500_000.0
        ),
    );
}

/// This process's user + system CPU time.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime, in clock ticks (100 per second on Linux).
    (ticks(11) + ticks(12)) / 100.0
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
