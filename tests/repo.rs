//! The commit write path: signed commits, `Repo::format_commit` over the SQLite actor store,
//! and the sync 1.1 guarantee that a commit's relevant blocks let a relay invert it.

use berth::crypto::{Curve, Keypair};
use berth::data::{Cid, Ipld, json};
use berth::repo::{
    BlockSource, Commit, MemoryBlockStore, Mst, RecordOp, RecordWrite, Repo, WriteError, invert_ops,
};
use berth::store::actor::ActorStore;
use berth::syntax::{Did, Nsid, RecordKey, Tid};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn did() -> Did {
    "did:plc:ewvi7nxzyoun6zhxrhs64oiz".parse().unwrap()
}

fn post(text: &str) -> Ipld {
    json::from_json(&serde_json::json!({
        "$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-11-23T08:00:00.000Z"
    }))
    .unwrap()
}

fn create(rkey: &str, text: &str) -> RecordWrite {
    RecordWrite::Create {
        collection: Nsid::try_from("app.bsky.feed.post").unwrap(),
        rkey: RecordKey::try_from(rkey).unwrap(),
        record: post(text),
    }
}

fn update(rkey: &str, text: &str) -> RecordWrite {
    RecordWrite::Update {
        collection: Nsid::try_from("app.bsky.feed.post").unwrap(),
        rkey: RecordKey::try_from(rkey).unwrap(),
        record: post(text),
    }
}

fn delete(rkey: &str) -> RecordWrite {
    RecordWrite::Delete {
        collection: Nsid::try_from("app.bsky.feed.post").unwrap(),
        rkey: RecordKey::try_from(rkey).unwrap(),
    }
}

/// A fresh store with a genesis commit applied.
fn new_repo(key: &Keypair) -> (ActorStore, Repo) {
    let mut store = ActorStore::open_in_memory(did().as_str()).unwrap();
    let (repo, genesis) = Repo::create(did(), key).unwrap();
    store.apply_commit(&genesis).unwrap();
    (store, repo)
}

#[test]
fn commit_signs_verifies_and_round_trips() {
    for curve in [Curve::K256, Curve::P256] {
        let key = Keypair::generate(curve);
        let data = berth::data::cbor_cid(b"tree");
        let commit = Commit::sign(did(), data, Tid::now(), &key);
        commit.verify(&key.public_key()).unwrap();
        let (cid, bytes) = commit.to_block();
        assert_eq!(cid, berth::data::cbor_cid(&bytes));
        let back = Commit::from_cbor(&bytes).unwrap();
        assert_eq!(back, commit);
        back.verify(&key.public_key()).unwrap();
        // Another key, or a changed field, fails.
        assert!(
            commit
                .verify(&Keypair::generate(curve).public_key())
                .is_err()
        );
        let mut tampered = commit.clone();
        tampered.data = berth::data::cbor_cid(b"other tree");
        assert!(tampered.verify(&key.public_key()).is_err());
    }
}

#[test]
fn commit_encoding_has_prev_null_and_version_3() {
    let key = Keypair::generate(Curve::K256);
    let commit = Commit::sign(did(), berth::data::cbor_cid(b"t"), Tid::now(), &key);
    let value = berth::data::cbor::decode(&commit.to_cbor()).unwrap();
    let Ipld::Map(m) = value else {
        panic!("commit is a map")
    };
    assert_eq!(m.get("prev"), Some(&Ipld::Null));
    assert_eq!(m.get("version"), Some(&Ipld::Integer(3)));
    assert_eq!(
        m.keys().cloned().collect::<Vec<_>>(),
        ["data", "did", "prev", "rev", "sig", "version"]
    );
}

#[test]
fn malformed_commits_are_rejected() {
    for bad in [&b""[..], &[0xa0], &[0x01], &[0xa1, 0x61, 0x61, 0x01]] {
        assert!(Commit::from_cbor(bad).is_err());
    }
}

#[test]
fn writes_persist_and_reload_with_the_same_root() {
    let key = Keypair::generate(Curve::K256);
    let (mut store, mut repo) = new_repo(&key);
    let genesis_rev = repo.rev();
    for batch in 0..10 {
        let writes: Vec<_> = (0..10)
            .map(|i| {
                create(
                    &format!("3kaaaaaaaa{batch}{i}a"),
                    &format!("post {batch}/{i}"),
                )
            })
            .collect();
        let (next, data) = repo.format_commit(&store, &writes, &key).unwrap();
        assert!(data.rev > repo.rev(), "rev must increase");
        assert_eq!(data.prev_data, Some(repo.commit().data));
        store.apply_commit(&data).unwrap();
        repo = next;
    }
    assert!(repo.rev() > genesis_rev);
    assert_eq!(store.record_count().unwrap(), 100);

    let (next, data) = repo
        .format_commit(
            &store,
            &[update("3kaaaaaaaa00a", "edited"), delete("3kaaaaaaaa01a")],
            &key,
        )
        .unwrap();
    store.apply_commit(&data).unwrap();
    repo = next;
    assert_eq!(store.record_count().unwrap(), 99);

    // The store's root is the repo's commit; loading from blocks alone gives the same tree.
    let root = store.root().unwrap().unwrap();
    assert_eq!(root.cid, repo.commit_cid());
    let loaded = Repo::load(&store, root.cid).unwrap();
    loaded.commit().verify(&key.public_key()).unwrap();
    let entries = loaded.mst().entries(&store).unwrap();
    assert_eq!(entries.len(), 99);
    let rebuilt = Mst::from_sorted(entries.iter().map(|(k, v)| (k.as_str(), *v))).unwrap();
    assert_eq!(rebuilt.root(), loaded.commit().data);

    // Every record row points at a stored block whose CID matches the tree.
    let (cid, bytes) = store
        .get_record("app.bsky.feed.post", "3kaaaaaaaa00a")
        .unwrap()
        .unwrap();
    assert_eq!(berth::data::cbor_cid(&bytes), cid);
    assert_eq!(
        loaded
            .record_cid(&store, "app.bsky.feed.post", "3kaaaaaaaa00a")
            .unwrap(),
        Some(cid)
    );
    assert!(
        store
            .get_record("app.bsky.feed.post", "3kaaaaaaaa01a")
            .unwrap()
            .is_none()
    );

    // Only the current tree, its records and the head commit remain stored.
    let nodes = loaded.mst().node_blocks(&store).unwrap().len() as u64;
    assert_eq!(store.block_count().unwrap(), nodes + 99 + 1);
}

#[test]
fn failed_writes_change_nothing() {
    let key = Keypair::generate(Curve::K256);
    let (mut store, repo) = new_repo(&key);
    let (repo, data) = repo
        .format_commit(&store, &[create("3kaaaaaaaaaaa", "x")], &key)
        .unwrap();
    store.apply_commit(&data).unwrap();
    let before = (
        store.root().unwrap(),
        store.block_count().unwrap(),
        repo.commit_cid(),
    );

    let cases: Vec<Vec<RecordWrite>> = vec![
        vec![
            create("3kaaaaaaaaaab", "ok"),
            create("3kaaaaaaaaaaa", "exists"),
        ],
        vec![update("3kzzzzzzzzzzz", "missing")],
        vec![create("3kaaaaaaaaaac", "ok"), delete("3kzzzzzzzzzzz")],
    ];
    for writes in cases {
        let err = repo.format_commit(&store, &writes, &key).unwrap_err();
        assert!(
            matches!(
                err,
                WriteError::RecordExists(_) | WriteError::RecordNotFound(_)
            ),
            "{err}"
        );
        assert_eq!(
            (
                store.root().unwrap(),
                store.block_count().unwrap(),
                repo.commit_cid()
            ),
            before
        );
    }
}

#[test]
fn same_content_at_two_paths_survives_deleting_one() {
    let key = Keypair::generate(Curve::K256);
    let (mut store, repo) = new_repo(&key);
    let (repo, data) = repo
        .format_commit(
            &store,
            &[
                create("3kaaaaaaaaaaa", "same"),
                create("3kaaaaaaaaaab", "same"),
            ],
            &key,
        )
        .unwrap();
    store.apply_commit(&data).unwrap();
    let (_repo, data) = repo
        .format_commit(&store, &[delete("3kaaaaaaaaaaa")], &key)
        .unwrap();
    store.apply_commit(&data).unwrap();
    let (cid, bytes) = store
        .get_record("app.bsky.feed.post", "3kaaaaaaaaaab")
        .unwrap()
        .unwrap();
    assert_eq!(berth::data::cbor_cid(&bytes), cid);
}

/// What a relay holds for one commit: only the event's blocks.
fn event_store(data: &berth::repo::CommitData) -> MemoryBlockStore {
    let mut s = MemoryBlockStore::new();
    s.put_many(data.event_blocks().map(|(c, b)| (*c, b.clone())));
    s
}

#[derive(Debug, Clone)]
enum Op {
    Create(u16),
    Update(u16),
    Delete(u16),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random batches of writes: the tree equals a bulk build of the final contents, and each
    /// commit's event blocks alone let a relay invert its ops back to `prevData`.
    #[test]
    fn random_commits_invert_and_match_bulk_build(
        batches in proptest::collection::vec(
            proptest::collection::vec(
                prop_oneof![
                    (0u16..300).prop_map(Op::Create),
                    (0u16..300).prop_map(Op::Update),
                    (0u16..300).prop_map(Op::Delete),
                ],
                1..12,
            ),
            1..8,
        )
    ) {
        let key = Keypair::generate(Curve::K256);
        let (mut store, mut repo) = new_repo(&key);
        let mut model: BTreeMap<String, Cid> = BTreeMap::new();
        for (b, batch) in batches.iter().enumerate() {
            // Turn the random ops into ones valid against the model, one per key per batch.
            let mut seen = std::collections::BTreeSet::new();
            let mut writes = Vec::new();
            for op in batch {
                let (n, kind) = match op { Op::Create(n) => (*n, 0), Op::Update(n) => (*n, 1), Op::Delete(n) => (*n, 2) };
                let rkey = format!("3kaaaa{n:07}");
                let path = format!("app.bsky.feed.post/{rkey}");
                if !seen.insert(path.clone()) { continue; }
                let text = format!("{b}-{n}");
                writes.push(match (model.contains_key(&path), kind) {
                    (false, _) => create(&rkey, &text),
                    (true, 1) => update(&rkey, &text),
                    (true, _) => delete(&rkey),
                });
            }
            let (next, data) = repo.format_commit(&store, &writes, &key).unwrap();
            for op in &data.ops {
                match op {
                    RecordOp::Create { key, cid } | RecordOp::Update { key, cid, .. } => { model.insert(key.clone(), *cid); }
                    RecordOp::Delete { key, .. } => { model.remove(key); }
                }
            }
            let relay = event_store(&data);
            let commit = Commit::from_cbor(relay.get(&data.cid).unwrap()).unwrap();
            commit.verify(&key.public_key()).unwrap();
            let prev = invert_ops(&relay, commit.data, &data.ops).unwrap();
            prop_assert_eq!(Some(prev), data.prev_data);
            store.apply_commit(&data).unwrap();
            repo = next;
        }
        let bulk = Mst::from_sorted(model.iter().map(|(k, v)| (k.as_str(), *v))).unwrap();
        prop_assert_eq!(bulk.root(), repo.commit().data);
        prop_assert_eq!(store.record_count().unwrap(), model.len() as u64);
        // And the persisted state reloads to the same tree.
        let loaded = Repo::load(&store, store.root().unwrap().unwrap().cid).unwrap();
        prop_assert_eq!(loaded.mst().entries(&store).unwrap().len(), model.len());
        prop_assert!(store.get_block(&repo.commit_cid()).unwrap().is_some());
    }
}

/// MST nodes are written back lazily (every `FLUSH_EVERY` commits). A process that dies with
/// nodes pending leaves a stored root whose tree is incomplete on disk; opening the store
/// rebuilds it from the record rows, and drops the nodes that went stale meanwhile.
#[test]
fn pending_nodes_lost_in_a_crash_are_rebuilt_on_open() {
    use berth::store::actor::FLUSH_EVERY;
    use berth::store::sqlite::Durability;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    let key = Keypair::generate(Curve::K256);
    let mut store = ActorStore::open(&path, did().as_str(), Durability::Normal).unwrap();
    let (mut repo, genesis) = Repo::create(did(), &key).unwrap();
    store.apply_commit(&genesis).unwrap();
    // One flush, then a tail of commits (creates, updates, deletes) whose nodes stay pending.
    let n = FLUSH_EVERY + FLUSH_EVERY / 2;
    for i in 0..n {
        let mut writes = vec![create(&format!("3kaaaaaa{i:05}"), &format!("post {i}"))];
        if i % 5 == 4 {
            writes.push(update(
                &format!("3kaaaaaa{:05}", i - 2),
                &format!("edit {i}"),
            ));
        }
        if i % 7 == 6 {
            writes.push(delete(&format!("3kaaaaaa{:05}", i - 3)));
        }
        let (next, data) = repo.format_commit(&store, &writes, &key).unwrap();
        store.apply_commit(&data).unwrap();
        repo = next;
    }
    let expected_blocks = store.block_count().unwrap();
    let records = store.record_count().unwrap();
    // The process dies: no flush on drop.
    std::mem::forget(store);

    // The stored root's tree is really incomplete on disk, so the reopen below must rebuild.
    let raw = rusqlite::Connection::open(&path).unwrap();
    let stored_root: String = raw
        .query_row("SELECT cid FROM repo_root", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored_root, repo.commit_cid().to_string());
    let data_node_on_disk: i64 = raw
        .query_row(
            "SELECT count(*) FROM repo_block WHERE cid = ?1",
            [repo.commit().data.to_bytes()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(data_node_on_disk, 0, "the tail's nodes were pending");
    drop(raw);

    let store = ActorStore::open(&path, did().as_str(), Durability::Normal).unwrap();
    let loaded = Repo::load(&store, repo.commit_cid()).unwrap();
    loaded.commit().verify(&key.public_key()).unwrap();
    assert_eq!(loaded.mst().entries(&store).unwrap().len() as u64, records);
    // Exactly the current tree, the records and the head commit: nothing stale left behind.
    let nodes = loaded.mst().node_blocks(&store).unwrap().len() as u64;
    assert_eq!(store.block_count().unwrap(), nodes + records + 1);
    assert_eq!(store.block_count().unwrap(), expected_blocks);

    // And it exports a CAR that verifies and imports elsewhere with the same root.
    let car = store.export_car(Vec::new(), None).unwrap();
    let mut other = ActorStore::open_in_memory(did().as_str()).unwrap();
    let reader = berth::car::CarReader::new(car.as_slice()).unwrap();
    other.import_car(reader, Some(&key.public_key())).unwrap();
    assert_eq!(other.root().unwrap().unwrap().cid, repo.commit_cid());
}

/// A node the tree no longer holds is not served, even while its row waits on disk for the
/// next write-back (getBlocks answers "Could not find cids" for it, as the reference does).
#[test]
fn replaced_nodes_are_not_served_before_their_write_back() {
    use berth::store::sqlite::Durability;
    let dir = tempfile::tempdir().unwrap();
    let key = Keypair::generate(Curve::K256);
    let path = dir.path().join("store.sqlite");
    let mut store = ActorStore::open(&path, did().as_str(), Durability::Normal).unwrap();
    let (repo, genesis) = Repo::create(did(), &key).unwrap();
    store.apply_commit(&genesis).unwrap();
    // Written back now, so the empty root node is on disk.
    store.flush().unwrap();
    let empty_root = repo.commit().data;
    assert!(store.get_block(&empty_root).unwrap().is_some());
    let (next, data) = repo
        .format_commit(&store, &[create("3kaaaaaaaaaa2", "first")], &key)
        .unwrap();
    assert!(data.removed_nodes.contains(&empty_root));
    store.apply_commit(&data).unwrap();
    assert_eq!(store.get_block(&empty_root).unwrap(), None);
    // The new root node is served although it is not on disk yet.
    assert!(store.get_block(&next.commit().data).unwrap().is_some());
    store.flush().unwrap();
    assert_eq!(store.get_block(&empty_root).unwrap(), None);
    assert!(store.get_block(&next.commit().data).unwrap().is_some());
}
