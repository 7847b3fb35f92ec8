//! Kill a writing process at arbitrary moments: after every kill the store's root must be a
//! signed commit over a complete tree whose records all exist, and the record table must agree
//! with the tree. Writes resume on top of it.

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
