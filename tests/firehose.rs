//! `com.atproto.sync.subscribeRepos` over a real WebSocket (tokio-tungstenite) against berth's
//! server on 127.0.0.1: cursor rules, replay then live without a gap, slow and vanishing
//! consumers. The reference client's verification of the frames is in
//! tests/interop/test/firehose.test.mjs.

use berth::data::Ipld;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

mod common;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A decoded frame: header and body.
#[derive(Debug)]
struct Frame {
    op: i64,
    t: Option<String>,
    body: Ipld,
}

impl Frame {
    fn seq(&self) -> Option<i64> {
        match self.field("seq") {
            Some(Ipld::Integer(i)) => i64::try_from(*i).ok(),
            _ => None,
        }
    }
    fn field(&self, k: &str) -> Option<&Ipld> {
        match &self.body {
            Ipld::Map(m) => m.get(k),
            _ => None,
        }
    }
    fn str(&self, k: &str) -> Option<&str> {
        match self.field(k) {
            Some(Ipld::String(s)) => Some(s),
            _ => None,
        }
    }
}

fn decode(bytes: &[u8]) -> Frame {
    let mut cursor = std::io::Cursor::new(bytes);
    let header: Ipld = serde_ipld_dagcbor::de::from_reader_once(&mut cursor).unwrap();
    let body: Ipld = serde_ipld_dagcbor::de::from_reader_once(&mut cursor).unwrap();
    assert_eq!(
        cursor.position() as usize,
        bytes.len(),
        "trailing bytes in frame"
    );
    let Ipld::Map(h) = header else {
        panic!("header not a map")
    };
    let op = match h.get("op") {
        Some(Ipld::Integer(i)) => *i as i64,
        other => panic!("header op {other:?}"),
    };
    let t = match h.get("t") {
        Some(Ipld::String(s)) => Some(s.clone()),
        _ => None,
    };
    Frame { op, t, body }
}

async fn connect(pds: &common::TestPds, cursor: Option<i64>) -> Ws {
    let mut url = format!(
        "{}/xrpc/com.atproto.sync.subscribeRepos",
        pds.url.replace("http://", "ws://")
    );
    if let Some(c) = cursor {
        url.push_str(&format!("?cursor={c}"));
    }
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next frame, or `None` when the stream closed; panics after 10 s of silence.
async fn next(ws: &mut Ws) -> Option<Frame> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s");
        match msg {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
            Some(Ok(Message::Binary(b))) => return Some(decode(&b)),
            Some(Ok(_)) => continue,
        }
    }
}

async fn sign_up(pds: &common::TestPds, handle: &str) -> (String, String) {
    let v: Value = pds
        .http
        .post(format!("{}/xrpc/com.atproto.server.createAccount", pds.url))
        .json(&json!({"handle": handle, "email": format!("{handle}@example.com"), "password": "hunter22"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        v["did"].as_str().unwrap().to_string(),
        v["accessJwt"].as_str().unwrap().to_string(),
    )
}

/// Creates a post; returns the createRecord output.
async fn post(pds: &common::TestPds, did: &str, token: &str, text: &str) -> Value {
    let res = pds
        .http
        .post(format!("{}/xrpc/com.atproto.repo.createRecord", pds.url))
        .bearer_auth(token)
        .json(&json!({"repo": did, "collection": "app.bsky.feed.post",
            "record": {"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-11-23T10:00:00.000Z"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn cursor_replay_then_live_without_a_gap() {
    let pds = common::start_pds(&[]).await;
    let (did, token) = sign_up(&pds, "alice.test").await;
    for i in 0..10 {
        post(&pds, &did, &token, &format!("p{i}")).await;
    }
    // Sign-up is identity, account, commit, sync: 4 events, then 10 commits.
    let mut ws = connect(&pds, Some(0)).await;
    let mut frames = Vec::new();
    for _ in 0..14 {
        frames.push(next(&mut ws).await.unwrap());
    }
    let seqs: Vec<i64> = frames.iter().map(|f| f.seq().unwrap()).collect();
    assert_eq!(seqs, (1..=14).collect::<Vec<_>>());
    let types: Vec<&str> = frames[..4]
        .iter()
        .map(|f| f.t.as_deref().unwrap())
        .collect();
    assert_eq!(types, ["#identity", "#account", "#commit", "#sync"]);
    assert!(
        frames[4..]
            .iter()
            .all(|f| f.t.as_deref() == Some("#commit"))
    );
    assert_eq!(frames[5].str("repo"), Some(did.as_str()));
    assert!(matches!(frames[5].field("prevData"), Some(Ipld::Link(_))));
    assert!(matches!(frames[5].field("blocks"), Some(Ipld::Bytes(b)) if !b.is_empty()));
    assert!(frames.iter().all(|f| f.op == 1 && f.str("time").is_some()));

    // Live: the next write arrives as seq 15 on this connection, after the replay.
    post(&pds, &did, &token, "live").await;
    assert_eq!(next(&mut ws).await.unwrap().seq(), Some(15));

    // A cursor mid-log starts right after it; no cursor means live only.
    let mut mid = connect(&pds, Some(9)).await;
    assert_eq!(next(&mut mid).await.unwrap().seq(), Some(10));
    let mut live_only = connect(&pds, None).await;
    post(&pds, &did, &token, "second live").await;
    assert_eq!(next(&mut live_only).await.unwrap().seq(), Some(16));
    assert_eq!(next(&mut ws).await.unwrap().seq(), Some(16));
}

/// Concurrent writers on several accounts share the sequencer's transactions: each write is
/// acknowledged only once its `#commit` is stored and its head is in `listRepos`, and each
/// account's commits reach the firehose in commit order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_are_acknowledged_after_their_events_in_commit_order() {
    let pds = std::sync::Arc::new(common::start_pds(&[]).await);
    let mut accounts = Vec::new();
    for name in ["gc1.test", "gc2.test", "gc3.test"] {
        accounts.push(sign_up(&pds, name).await);
    }
    let mut tasks = Vec::new();
    for (did, token) in &accounts {
        for w in 0..3 {
            let (pds, did, token) = (pds.clone(), did.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..12 {
                    let v = post(&pds, &did, &token, &format!("w{w} {i}")).await;
                    let rev = v["commit"]["rev"].as_str().expect("a commit").to_string();
                    // Acknowledged: the mirror already holds this head or a later one.
                    let repos: Value = pds
                        .http
                        .get(format!("{}/xrpc/com.atproto.sync.listRepos", pds.url))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    let listed = repos["repos"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|r| r["did"] == did.as_str())
                        .and_then(|r| r["rev"].as_str())
                        .unwrap()
                        .to_string();
                    assert!(
                        listed >= rev,
                        "listRepos at {listed} after {rev} was acknowledged"
                    );
                    acked.push((did.clone(), rev));
                }
                acked
            }));
        }
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    // The whole log: per account, commit revs strictly increase with seq; every
    // acknowledged rev is there.
    let max_seq = pds.pds.sequencer.max_seq().unwrap();
    let mut ws = connect(&pds, Some(0)).await;
    let mut revs: std::collections::HashMap<String, Vec<String>> = Default::default();
    let mut last_seq = 0;
    while last_seq < max_seq {
        let f = next(&mut ws).await.unwrap();
        last_seq = f.seq().unwrap();
        if f.t.as_deref() == Some("#commit") {
            revs.entry(f.str("repo").unwrap().to_string())
                .or_default()
                .push(f.str("rev").unwrap().to_string());
        }
    }
    for (did, list) in &revs {
        assert!(
            list.windows(2).all(|w| w[0] < w[1]),
            "{did}: commits out of order on the firehose: {list:?}"
        );
    }
    for (did, rev) in &acked {
        assert!(
            revs[did].contains(rev),
            "{did}: acknowledged rev {rev} never reached the firehose"
        );
    }
    assert_eq!(acked.len(), 3 * 3 * 12);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_in_the_future_is_an_error_frame_then_close() {
    let pds = common::start_pds(&[]).await;
    sign_up(&pds, "alice.test").await;
    let mut ws = connect(&pds, Some(1000)).await;
    let f = next(&mut ws).await.unwrap();
    assert_eq!(f.op, -1);
    assert_eq!(f.str("error"), Some("FutureCursor"));
    // Then the server closes with 1008.
    let close = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap();
    match close {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1008);
            assert_eq!(frame.reason.as_str(), "FutureCursor");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_older_than_the_backfill_window_gets_outdated_cursor_info() {
    let pds = common::start_pds(&[("PDS_REPO_BACKFILL_LIMIT_MS", "1500")]).await;
    let (did, token) = sign_up(&pds, "alice.test").await; // seqs 1-4
    tokio::time::sleep(Duration::from_millis(2000)).await;
    post(&pds, &did, &token, "inside the window").await; // seq 5
    let mut ws = connect(&pds, Some(1)).await;
    let info = next(&mut ws).await.unwrap();
    assert_eq!(info.t.as_deref(), Some("#info"));
    assert_eq!(info.str("name"), Some("OutdatedCursor"));
    assert_eq!(next(&mut ws).await.unwrap().seq(), Some(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_that_never_reads_is_dropped_and_others_are_unaffected() {
    let pds = common::start_pds(&[("PDS_MAX_SUBSCRIPTION_BUFFER", "8")]).await;
    let (did, token) = sign_up(&pds, "alice.test").await;
    let mut stalled = connect(&pds, None).await;
    let mut reader = connect(&pds, None).await;
    let reading = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while seqs.len() < 80 {
            match next(&mut reader).await {
                Some(f) => seqs.push(f.seq().unwrap()),
                None => break,
            }
        }
        seqs
    });
    // Big records fill the stalled client's socket buffers, so the server falls behind it.
    let big = "x".repeat(150_000);
    for i in 0..80 {
        let res = pds
            .http
            .post(format!("{}/xrpc/com.atproto.repo.createRecord", pds.url))
            .bearer_auth(&token)
            .json(&json!({"repo": did, "collection": "com.example.big", "record": {"i": i, "pad": big}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let seqs = reading.await.unwrap();
    assert_eq!(
        seqs,
        (5..85).collect::<Vec<_>>(),
        "the reading subscriber got every event"
    );
    // The stalled one, when it finally reads: some frames, then ConsumerTooSlow and the end.
    let mut last = None;
    while let Some(f) = next(&mut stalled).await {
        last = Some(f);
    }
    let last = last.expect("frames before the error");
    assert_eq!(last.op, -1, "{last:?}");
    assert_eq!(last.str("error"), Some("ConsumerTooSlow"));
}

#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_connects_and_disconnects_leave_the_server_serving() {
    let pds = common::start_pds(&[]).await;
    let (did, token) = sign_up(&pds, "alice.test").await;
    for round in 0..20 {
        let mut conns = Vec::new();
        for _ in 0..100 {
            conns.push(connect(&pds, Some(0)).await);
        }
        // Half vanish without a close handshake, half close properly mid-replay.
        for (i, mut ws) in conns.into_iter().enumerate() {
            if i % 2 == 0 {
                let _ = ws.close(None).await;
            }
            drop(ws);
        }
        if round % 5 == 0 {
            post(&pds, &did, &token, &format!("round {round}")).await;
        }
    }
    let mut ws = connect(&pds, Some(0)).await;
    let mut n = 0;
    while let Some(f) = tokio::time::timeout(Duration::from_millis(500), next(&mut ws))
        .await
        .ok()
        .flatten()
    {
        n += 1;
        assert_eq!(f.seq(), Some(n));
        if n == 8 {
            break;
        }
    }
    assert_eq!(n, 8, "4 sign-up events and 4 commits replayed");
    let _ = ws.send(Message::Close(None)).await;
}

async fn call(pds: &common::TestPds, token: &str, nsid: &str, body: Value) -> (StatusCode, Value) {
    let res = pds
        .http
        .post(format!("{}/xrpc/{nsid}", pds.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn account_status_changes_emit_the_reference_event_sequences() {
    let pds = common::start_pds(&[]).await;
    let (did, token) = sign_up(&pds, "alice.test").await;
    let mut ws = connect(&pds, None).await;

    let (s, v) = call(
        &pds,
        &token,
        "com.atproto.server.deactivateAccount",
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let f = next(&mut ws).await.unwrap();
    assert_eq!(f.t.as_deref(), Some("#account"));
    assert_eq!(f.str("did"), Some(did.as_str()));
    assert_eq!(f.field("active"), Some(&Ipld::Bool(false)));
    assert_eq!(f.str("status"), Some("deactivated"));

    // Deactivated: writes are refused, nothing is sequenced for them.
    let res = pds
        .http
        .post(format!("{}/xrpc/com.atproto.repo.createRecord", pds.url))
        .bearer_auth(&token)
        .json(&json!({"repo": did, "collection": "app.bsky.feed.post",
            "record": {"text": "x", "createdAt": "2026-11-23T10:00:00.000Z"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"], "AccountDeactivated");
    let (s, status) = {
        let res = pds
            .http
            .get(format!(
                "{}/xrpc/com.atproto.server.checkAccountStatus",
                pds.url
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        (res.status(), res.json::<Value>().await.unwrap())
    };
    assert_eq!(s, StatusCode::OK, "{status}");
    assert_eq!(status["activated"], false);
    assert_eq!(status["validDid"], true);
    assert_eq!(status["indexedRecords"], 0);

    // Activation: #account, #identity with the handle, #sync carrying the current commit.
    let (s, v) = call(
        &pds,
        &token,
        "com.atproto.server.activateAccount",
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let frames = [
        next(&mut ws).await.unwrap(),
        next(&mut ws).await.unwrap(),
        next(&mut ws).await.unwrap(),
    ];
    let types: Vec<&str> = frames.iter().map(|f| f.t.as_deref().unwrap()).collect();
    assert_eq!(types, ["#account", "#identity", "#sync"]);
    assert_eq!(frames[0].field("active"), Some(&Ipld::Bool(true)));
    assert_eq!(frames[1].str("handle"), Some("alice.test"));
    let Some(Ipld::Bytes(car)) = frames[2].field("blocks") else {
        panic!("sync without blocks")
    };
    let reader = berth::car::CarReader::new(car.as_slice()).unwrap();
    assert_eq!(reader.roots().len(), 1);

    // A handle change: #identity, even when re-published unchanged.
    for handle in ["alice2.test", "alice2.test"] {
        let (s, v) = call(
            &pds,
            &token,
            "com.atproto.identity.updateHandle",
            json!({"handle": handle}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let f = next(&mut ws).await.unwrap();
        assert_eq!(f.t.as_deref(), Some("#identity"));
        assert_eq!(f.str("handle"), Some(handle));
    }
}

/// One value of the `/metrics` text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_subscribers_and_time_each_delivery() {
    let pds = common::start_pds(&[]).await;
    let admin = pds.pds.config.secrets.admin_password.expose().clone();
    let url = format!("{}/metrics", pds.url);
    let scrape = || async {
        let res = pds
            .http
            .get(&url)
            .basic_auth("admin", Some(&admin))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.text().await.unwrap()
    };
    // Operator numbers: not for anyone without the admin password.
    let anonymous = pds.http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let wrong = pds
        .http
        .get(&url)
        .basic_auth("admin", Some("not-the-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let before = scrape().await;
    assert_eq!(metric(&before, "berth_firehose_subscribers"), 0.0);
    assert_eq!(
        metric(&before, "berth_firehose_delivery_seconds_count"),
        0.0
    );

    let (did, token) = sign_up(&pds, "metrics.test").await;
    let mut a = connect(&pds, None).await;
    let mut b = connect(&pds, None).await;
    post(&pds, &did, &token, "counted").await;
    assert_eq!(next(&mut a).await.unwrap().t.as_deref(), Some("#commit"));
    assert_eq!(next(&mut b).await.unwrap().t.as_deref(), Some("#commit"));

    // The server notes a delivery just after its write returns, which may be a moment after
    // the client has the frame.
    let mut during = scrape().await;
    for _ in 0..50 {
        if metric(&during, "berth_firehose_delivery_seconds_count") >= 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        during = scrape().await;
    }
    assert_eq!(metric(&during, "berth_firehose_subscribers"), 2.0);
    // One commit written to two sockets; nothing was live before they connected.
    assert_eq!(
        metric(&during, "berth_firehose_delivery_seconds_count"),
        2.0
    );
    assert_eq!(
        metric(
            &during,
            "berth_firehose_delivery_seconds_bucket{le=\"+Inf\"}"
        ),
        2.0
    );
    // Buckets are cumulative and the 1 s bucket holds both (a loopback write is far faster).
    assert_eq!(
        metric(&during, "berth_firehose_delivery_seconds_bucket{le=\"1\"}"),
        2.0
    );
    assert!(metric(&during, "berth_firehose_delivery_seconds_sum") < 2.0);

    drop(a);
    drop(b);
    // The server notices the closed sockets on its next read of them.
    let mut left = f64::NAN;
    for _ in 0..50 {
        left = metric(&scrape().await, "berth_firehose_subscribers");
        if left == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0.0, "subscribers still counted after disconnecting");
}

/// Sequences ~5,000 WAL frames of events (more than a checkpoint's worth) and reports whether
/// `sequencer.sqlite` itself grew within `wait`: only a checkpoint writes to it.
async fn sequencer_checkpointed_within(env: &[(&str, &str)], wait: Duration) -> bool {
    let pds = common::start_pds(env).await;
    let path = pds.dir.path().join("sequencer.sqlite");
    let before = std::fs::metadata(&path).unwrap().len();
    let sequencer = pds.pds.sequencer.clone();
    tokio::task::spawn_blocking(move || {
        // An #identity event with a long handle is ~1 page, like a small commit.
        let handle = format!("{}.test", "h".repeat(3000));
        let event = berth::sequencer::Event {
            did: "did:plc:checkpointtest".into(),
            kind: berth::sequencer::frames::EventKind::Identity,
            body: berth::sequencer::frames::identity_body("did:plc:checkpointtest", Some(&handle)),
        };
        for _ in 0..1250 {
            sequencer.sequence(std::slice::from_ref(&event)).unwrap();
        }
    })
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        if std::fs::metadata(&path).unwrap().len() > before + 1000 * 4096 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn pds_sqlite_disable_wal_auto_checkpoint_leaves_the_log_to_an_external_tool() {
    assert!(sequencer_checkpointed_within(&[], Duration::from_secs(30)).await);
    let off = [("PDS_SQLITE_DISABLE_WAL_AUTO_CHECKPOINT", "true")];
    assert!(!sequencer_checkpointed_within(&off, Duration::from_millis(500)).await);
}
