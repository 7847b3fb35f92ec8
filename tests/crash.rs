//! Kill a writing process at arbitrary moments: after every kill the store's root must be a
//! signed commit over a complete tree whose records all exist, and the record table must agree
//! with the tree. Writes resume on top of it. Then the same for `berth serve` under HTTP write
//! load: every write it acknowledged before a SIGKILL is there after the restart, and the
//! firehose log has no gap. (A process kill loses nothing the kernel has; a power cut is what
//! `PDS_SQLITE_SYNCHRONOUS=full` is for, and is not simulated here.)

use berth::repo::Repo;
use berth::store::actor::{self, ActorStore};
use berth::store::sqlite::Durability;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const DID: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";

fn berth(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .output()
        .unwrap()
}

/// Checks the store as a relay or a restarted server would see it; returns the record keys.
fn verify_store(data_dir: &std::path::Path) -> Vec<String> {
    let actors = data_dir.join("actors");
    let store = ActorStore::open(&actor::store_path(&actors, DID), DID, Durability::Full).unwrap();
    let key = actor::read_signing_key(&actors, DID).unwrap();
    let root = store.root().unwrap().expect("a root survives every kill");
    let repo = Repo::load(&store, root.cid).unwrap();
    repo.commit()
        .verify(&key.public_key())
        .expect("head commit verifies");
    assert_eq!(repo.rev().to_string(), root.rev);
    let entries = repo
        .mst()
        .entries(&store)
        .expect("the whole tree is present");
    for (path, cid) in &entries {
        let (collection, rkey) = path.split_once('/').unwrap();
        let (stored, bytes) = store
            .get_record(collection, rkey)
            .unwrap()
            .expect("record row exists");
        assert_eq!(stored, *cid);
        assert_eq!(berth::data::cbor_cid(&bytes), *cid);
    }
    assert_eq!(store.record_count().unwrap(), entries.len() as u64);
    entries.into_iter().map(|(k, _)| k).collect()
}

#[test]
fn killed_writers_never_leave_an_unverifiable_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let out = berth(&["repo", "init", "--data-dir", data, "--did", DID]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (mut existing, mut killed) = (Vec::<String>::new(), 0);
    for round in 0..12u64 {
        // Each round: creates, plus deletes of records that exist now.
        let ops = dir.path().join(format!("ops-{round}.jsonl"));
        let mut f = std::fs::File::create(&ops).unwrap();
        let mut deletable = existing.iter().step_by(3);
        for i in 0..400u64 {
            let n = round * 400 + i;
            let line = match deletable.next().filter(|_| i % 4 == 3) {
                Some(path) => {
                    let (c, r) = path.split_once('/').unwrap();
                    format!(r#"{{"action":"delete","collection":"{c}","rkey":"{r}"}}"#)
                }
                None => format!(
                    r#"{{"action":"create","collection":"app.bsky.feed.post","rkey":"r{n:07}","record":{{"$type":"app.bsky.feed.post","text":"{n}"}}}}"#
                ),
            };
            writeln!(f, "{line}").unwrap();
        }
        drop(f);
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["repo", "write", "--data-dir", data, "--did", DID, "--file"])
            .arg(&ops)
            .args(["--batch", "3"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // Spread the kills over the run: early, mid-stream, and near the end.
        std::thread::sleep(Duration::from_millis(15 + round * 23));
        let finished = child.try_wait().unwrap();
        let _ = child.kill(); // SIGKILL: no destructors, no rollback by the process itself.
        let status = child.wait().unwrap();
        if finished.is_none() {
            killed += 1;
        } else {
            // It exited before the kill: then it must have succeeded (its stderr is shown).
            assert!(
                status.success(),
                "writer failed on its own in round {round}"
            );
        }
        let before = existing.len();
        existing = verify_store(dir.path());
        // Progress was made or the kill landed before the first commit.
        assert!(existing.len() + 200 >= before);
    }
    eprintln!("{killed} of 12 rounds killed mid-write");
    assert!(
        killed >= 8,
        "only {killed} of 12 rounds were killed mid-write; the test proves little"
    );
    let last = existing.len();
    // And the store still takes writes after all that.
    let ops = dir.path().join("final.jsonl");
    std::fs::write(&ops, r#"{"action":"create","collection":"app.bsky.feed.like","rkey":"final","record":{"$type":"app.bsky.feed.like","n":1}}"#).unwrap();
    let out = berth(&[
        "repo",
        "write",
        "--data-dir",
        data,
        "--did",
        DID,
        "--file",
        ops.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(verify_store(dir.path()).len(), last + 1);
}

// ---------------------------------------------------------------------------------------------
// The server, killed under write load, with its default durability (WAL, synchronous=NORMAL).

#[path = "common/serve_process.rs"]
mod serve_process;

fn spawn_server(data: &std::path::Path, port: u16, plc_url: &str) -> std::process::Child {
    serve_process::serve_command(env!("CARGO_BIN_EXE_berth"), data, port, plc_url)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_server_keeps_every_acknowledged_write() {
    use futures_util::StreamExt;
    use serde_json::{Value, json};
    use std::sync::{Arc, Mutex};

    // berth's PLC directory in this process; only the server is killed.
    let plc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plc_url = format!(
        "http://localhost:{}",
        plc_listener.local_addr().unwrap().port()
    );
    let plc =
        berth::plc::directory::router(berth::plc::directory::DirectoryState::in_memory().unwrap());
    tokio::spawn(async move { axum::serve(plc_listener, plc).await });

    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut server = spawn_server(dir.path(), port, &plc_url);
    serve_process::wait_healthy(&http, &url).await;
    let account: Value = http
        .post(format!("{url}/xrpc/com.atproto.server.createAccount"))
        .json(
            &json!({"handle": "crash.test", "email": "crash@example.com", "password": "hunter22"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let did = account["did"].as_str().unwrap().to_string();
    let token = account["accessJwt"].as_str().unwrap().to_string();

    // (rkey, cid) of every write the server acknowledged.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut kills = 0;
    for round in 0..5u64 {
        // Four writers, so writes are in flight at every moment of the kill.
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (http, url, did, token, acked) = (
                    http.clone(),
                    url.clone(),
                    did.clone(),
                    token.clone(),
                    acked.clone(),
                );
                tokio::spawn(async move {
                    for i in 0u64.. {
                        let res = http
                            .post(format!("{url}/xrpc/com.atproto.repo.createRecord"))
                            .bearer_auth(&token)
                            .json(&json!({"repo": did, "collection": "app.bsky.feed.post",
                                "record": {"$type": "app.bsky.feed.post", "text": format!("r{round} w{w} {i}"),
                                    "createdAt": "2026-11-23T10:00:00.000Z"}}))
                            .send()
                            .await;
                        let Ok(res) = res else { return };
                        let Ok(body) = res.json::<Value>().await else { return };
                        let (Some(uri), Some(cid)) = (body["uri"].as_str(), body["cid"].as_str())
                        else {
                            return;
                        };
                        let rkey = uri.rsplit('/').next().unwrap().to_string();
                        acked.lock().unwrap().push((rkey, cid.to_string()));
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200 + round * 90)).await;
        server.kill().unwrap(); // SIGKILL: the server gets no chance to flush anything.
        server.wait().unwrap();
        kills += 1;
        for w in writers {
            w.await.unwrap();
        }
        server = spawn_server(dir.path(), port, &plc_url);
        serve_process::wait_healthy(&http, &url).await;

        // Every acknowledged record is there, with the content it was acknowledged with.
        let acked_now = acked.lock().unwrap().clone();
        for (rkey, cid) in &acked_now {
            let got: Value = http
                .get(format!("{url}/xrpc/com.atproto.repo.getRecord"))
                .query(&[
                    ("repo", did.as_str()),
                    ("collection", "app.bsky.feed.post"),
                    ("rkey", rkey.as_str()),
                ])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(
                got["cid"].as_str(),
                Some(cid.as_str()),
                "round {round}: acknowledged record {rkey} lost: {got}"
            );
        }
    }
    let total = acked.lock().unwrap().len();
    assert!(
        total > 100,
        "only {total} writes were acknowledged; the kills proved little"
    );

    // The firehose log has no gap: seq runs 1, 2, 3, ... with every acknowledged commit in it.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "{}/xrpc/com.atproto.sync.subscribeRepos?cursor=0",
        url.replace("http://", "ws://")
    ))
    .await
    .unwrap();
    let mut seqs = Vec::new();
    let mut commits = 0;
    let mut sequenced_paths = std::collections::HashSet::new();
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
        let tokio_tungstenite::tungstenite::Message::Binary(bytes) = msg else {
            continue;
        };
        let mut cursor = std::io::Cursor::new(&bytes[..]);
        let header: berth::data::Ipld =
            serde_ipld_dagcbor::de::from_reader_once(&mut cursor).unwrap();
        let body: berth::data::Ipld =
            serde_ipld_dagcbor::de::from_reader_once(&mut cursor).unwrap();
        let berth::data::Ipld::Map(body) = body else {
            panic!("frame body")
        };
        if let Some(berth::data::Ipld::Integer(seq)) = body.get("seq") {
            seqs.push(*seq as i64);
        }
        if matches!(&header, berth::data::Ipld::Map(h) if h.get("t") == Some(&berth::data::Ipld::String("#commit".into())))
        {
            commits += 1;
            if let Some(berth::data::Ipld::List(ops)) = body.get("ops") {
                for op in ops {
                    if let berth::data::Ipld::Map(op) = op
                        && let Some(berth::data::Ipld::String(path)) = op.get("path")
                    {
                        sequenced_paths.insert(path.clone());
                    }
                }
            }
        }
    }
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert!(
        commits > total,
        "{commits} commit events for {total} acknowledged writes (+ genesis)"
    );
    // Each acknowledged write's own event survived the kills (journaled before the ack).
    for (rkey, _) in acked.lock().unwrap().iter() {
        let path = format!("app.bsky.feed.post/{rkey}");
        assert!(
            sequenced_paths.contains(&path),
            "acknowledged write {path} has no #commit event"
        );
    }

    // The repo on disk verifies and holds exactly what the server says it holds.
    server.kill().unwrap();
    server.wait().unwrap();
    let actors = dir.path().join("actors");
    let store =
        ActorStore::open(&actor::store_path(&actors, &did), &did, Durability::Full).unwrap();
    let key = actor::read_signing_key(&actors, &did).unwrap();
    let root = store.root().unwrap().expect("a root");
    let repo = Repo::load(&store, root.cid).unwrap();
    repo.commit()
        .verify(&key.public_key())
        .expect("head commit verifies");
    let entries = repo
        .mst()
        .entries(&store)
        .expect("the whole tree is present");
    assert!(entries.len() >= total);
    assert_eq!(store.record_count().unwrap(), entries.len() as u64);
    eprintln!(
        "{kills} kills, {total} acknowledged writes, all present; {} events",
        seqs.len()
    );
}
