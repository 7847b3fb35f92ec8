//! Whole-repo CAR export and verified import through the actor store.

use berth::car::{self, CarReader};
use berth::crypto::{Curve, Keypair};
use berth::data::{Cid, json};
use berth::repo::{Commit, RecordWrite, Repo};
use berth::store::actor::ActorStore;
use berth::store::repo_car::ImportError;
use berth::syntax::{Did, Nsid, RecordKey};

const DID: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";

fn did() -> Did {
    DID.parse().unwrap()
}

fn writes(from: usize, n: usize) -> Vec<RecordWrite> {
    (from..from + n)
        .map(|i| RecordWrite::Create {
            collection: Nsid::try_from(if i % 2 == 0 {
                "app.bsky.feed.post"
            } else {
                "app.bsky.feed.like"
            })
            .unwrap(),
            rkey: RecordKey::try_from(format!("3kbbbb{i:07}")).unwrap(),
            record: json::from_json(
                &serde_json::json!({"$type": "app.bsky.feed.post", "text": format!("n{i}")}),
            )
            .unwrap(),
        })
        .collect()
}

/// A store with `n` records in batches of 25; returns it with the repo and the rev after the
/// first batch.
fn build(key: &Keypair, n: usize) -> (ActorStore, Repo, String) {
    let mut store = ActorStore::open_in_memory(DID).unwrap();
    let (mut repo, genesis) = Repo::create(did(), key).unwrap();
    store.apply_commit(&genesis).unwrap();
    let mut first_rev = String::new();
    for start in (0..n).step_by(25) {
        let (next, data) = repo
            .format_commit(&store, &writes(start, 25.min(n - start)), key)
            .unwrap();
        store.apply_commit(&data).unwrap();
        if first_rev.is_empty() {
            first_rev = data.rev.to_string();
        }
        repo = next;
    }
    (store, repo, first_rev)
}

fn snapshot(store: &ActorStore) -> (Option<Cid>, u64, u64) {
    (
        store.root().unwrap().map(|r| r.cid),
        store.record_count().unwrap(),
        store.block_count().unwrap(),
    )
}

#[test]
fn export_then_import_reproduces_the_repo() {
    let key = Keypair::generate(Curve::K256);
    let (store, repo, _) = build(&key, 500);
    let bytes = store.export_car(Vec::new(), None).unwrap();

    let reader = CarReader::new(bytes.as_slice()).unwrap();
    assert_eq!(reader.roots(), &[repo.commit_cid()]);
    let blocks: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(blocks[0].0, repo.commit_cid(), "commit block comes first");
    assert_eq!(blocks.len() as u64, store.block_count().unwrap());

    let mut other = ActorStore::open_in_memory(DID).unwrap();
    let summary = other
        .import_car(
            CarReader::new(bytes.as_slice()).unwrap(),
            Some(&key.public_key()),
        )
        .unwrap();
    assert_eq!(summary.commit, repo.commit_cid());
    assert_eq!(summary.records, 500);
    assert_eq!(snapshot(&other), snapshot(&store));
    assert_eq!(
        other
            .get_record("app.bsky.feed.post", "3kbbbb0000000")
            .unwrap(),
        store
            .get_record("app.bsky.feed.post", "3kbbbb0000000")
            .unwrap()
    );
    // Re-export holds the same blocks (order follows each store's revs, so it may differ).
    let block_set = |b: &[u8]| {
        let mut v: Vec<_> = CarReader::new(b)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        v.sort();
        v
    };
    let again = other.export_car(Vec::new(), None).unwrap();
    assert!(
        block_set(&again) == block_set(&bytes),
        "re-export holds different blocks"
    );

    // Writing continues on the imported repo.
    let loaded = Repo::load(&other, summary.commit).unwrap();
    let (_, data) = loaded
        .format_commit(&other, &writes(1000, 1), &key)
        .unwrap();
    other.apply_commit(&data).unwrap();
    assert_eq!(other.record_count().unwrap(), 501);
}

#[test]
fn export_since_holds_only_newer_blocks() {
    let key = Keypair::generate(Curve::K256);
    let (store, _repo, first_rev) = build(&key, 100);
    let full = store.export_car(Vec::new(), None).unwrap();
    let diff = store.export_car(Vec::new(), Some(&first_rev)).unwrap();
    let count = |b: &[u8]| CarReader::new(b).unwrap().count();
    assert!(count(&diff) < count(&full));
    assert!(count(&diff) > 1);
}

/// An import that must fail and leave the target store as it was.
fn refuse(car_bytes: &[u8], key: Option<&Keypair>, target_did: &str) -> ImportError {
    let other_key = Keypair::generate(Curve::K256);
    let mut target = ActorStore::open_in_memory(target_did).unwrap();
    // The target holds a repo of its own, which must survive.
    let (repo, genesis) = Repo::create(target_did.parse().unwrap(), &other_key).unwrap();
    target.apply_commit(&genesis).unwrap();
    let (_, data) = repo
        .format_commit(&target, &writes(0, 3), &other_key)
        .unwrap();
    target.apply_commit(&data).unwrap();
    let before = snapshot(&target);
    let pk = key.map(Keypair::public_key);
    let err = CarReader::new(car_bytes)
        .map_err(ImportError::from)
        .and_then(|r| target.import_car(r, pk.as_ref()))
        .unwrap_err();
    assert_eq!(
        snapshot(&target),
        before,
        "a refused import changed the store ({err})"
    );
    err
}

#[test]
fn bad_imports_are_refused_without_changes() {
    let key = Keypair::generate(Curve::K256);
    let (store, repo, _) = build(&key, 60);
    let good = store.export_car(Vec::new(), None).unwrap();
    let blocks: Vec<(Cid, Vec<u8>)> = CarReader::new(good.as_slice())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let rebuild = |root: Cid, keep: &dyn Fn(&Cid) -> bool| {
        car::write_to_vec(
            &[root],
            blocks
                .iter()
                .filter(|(c, _)| keep(c))
                .map(|(c, b)| (c, b.as_slice())),
        )
    };

    // Signed by another key.
    let err = refuse(&good, Some(&Keypair::generate(Curve::K256)), DID);
    assert!(matches!(err, ImportError::Commit(_)), "{err}");
    // Someone else's repo.
    let err = refuse(&good, Some(&key), "did:plc:yk4dd2qkboz2yv6tpubpc6co");
    assert!(matches!(err, ImportError::WrongDid { .. }), "{err}");
    // Root that is not in the file.
    let err = refuse(
        &rebuild(berth::data::cbor_cid(b"nothing"), &|_| true),
        Some(&key),
        DID,
    );
    assert!(matches!(err, ImportError::MissingCommit(_)), "{err}");
    // A record block left out.
    let record_cid = store
        .get_record("app.bsky.feed.post", "3kbbbb0000000")
        .unwrap()
        .unwrap()
        .0;
    let err = refuse(
        &rebuild(repo.commit_cid(), &|c| *c != record_cid),
        Some(&key),
        DID,
    );
    assert!(matches!(err, ImportError::MissingRecord { .. }), "{err}");
    // An MST node left out.
    let root_node = repo.commit().data;
    let err = refuse(
        &rebuild(repo.commit_cid(), &|c| *c != root_node),
        Some(&key),
        DID,
    );
    assert!(matches!(err, ImportError::Tree(_)), "{err}");
    // Truncated file.
    refuse(&good[..good.len() - 10], Some(&key), DID);
    // A block whose bytes do not match its CID.
    let mut tampered = good.clone();
    let last = tampered.len() - 3;
    tampered[last] ^= 0xff;
    refuse(&tampered, Some(&key), DID);
}

#[test]
fn a_commit_whose_tree_lies_is_refused() {
    // A correctly signed commit over an MST whose node is not canonical/valid.
    let key = Keypair::generate(Curve::K256);
    let bogus_node =
        berth::data::cbor::to_vec(&serde_json::json!({"e": "not entries", "l": null})).unwrap();
    let node_cid = berth::data::cbor_cid(&bogus_node);
    let commit = Commit::sign(did(), node_cid, berth::syntax::Tid::now(), &key);
    let (cid, bytes) = commit.to_block();
    let car = car::write_to_vec(
        &[cid],
        [(&cid, bytes.as_slice()), (&node_cid, bogus_node.as_slice())],
    );
    let err = refuse(&car, Some(&key), DID);
    assert!(matches!(err, ImportError::Tree(_)), "{err}");
}
