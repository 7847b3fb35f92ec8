//! Merkle Search Tree: interop fixtures (mst/, firehose/commit-proof-fixtures.json) and
//! property tests for writes, diffs, covering proofs and sync 1.1 inversion.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use berth::data::{Cid, Ipld, cbor_cid};
use berth::repo::{
    BlockSource, ListOptions, MemoryBlockStore, Mst, NoBlocks, RecordOp, RepoError, WalkItem,
    common_prefix_len, diff, invert_ops, key_layer,
};
use proptest::prelude::*;
use serde_json::Value;

fn fixture(rel: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/interop-tests/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn json(rel: &str) -> Vec<Value> {
    match serde_json::from_str(&fixture(rel)) {
        Ok(Value::Array(a)) => a,
        other => panic!("{rel} is not a JSON array: {other:?}"),
    }
}

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("field {field} not a string"))
}

fn strs(v: &Value, field: &str) -> Vec<String> {
    v[field]
        .as_array()
        .unwrap_or_else(|| panic!("field {field} not an array"))
        .iter()
        .map(|x| x.as_str().expect("string").to_string())
        .collect()
}

fn cid(s: &str) -> Cid {
    s.parse().unwrap_or_else(|e| panic!("bad CID {s}: {e:?}"))
}

/// A distinct, well-formed record CID per number.
fn val(n: u32) -> Cid {
    cbor_cid(&n.to_be_bytes())
}

fn example_keys() -> Vec<String> {
    fixture("mst/example_keys.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn store_of(tree: &Mst, src: &dyn BlockSource) -> MemoryBlockStore {
    tree.node_blocks(src).expect("walk").into_iter().collect()
}

fn node_cids(tree: &Mst, src: &dyn BlockSource) -> HashSet<Cid> {
    tree.node_blocks(src)
        .expect("walk")
        .into_iter()
        .map(|(c, _)| c)
        .collect()
}

fn build(map: &BTreeMap<String, Cid>) -> Mst {
    Mst::from_sorted(map.iter().map(|(k, v)| (k.as_str(), *v))).expect("bulk build")
}

fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, first.clone());
            out.push(p);
        }
    }
    out
}

/// Counts reads, to check laziness.
struct Counting<'a> {
    inner: &'a dyn BlockSource,
    reads: RefCell<usize>,
}

impl BlockSource for Counting<'_> {
    fn get_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, RepoError> {
        *self.reads.borrow_mut() += 1;
        self.inner.get_block(cid)
    }
}

// ---------------------------------------------------------------------------------------------
// mst/ fixtures

#[test]
fn key_heights_fixture() {
    let cases = json("mst/key_heights.json");
    assert_eq!(cases.len(), 9);
    for c in &cases {
        let key = s(c, "key");
        let height = c["height"].as_u64().expect("height");
        assert_eq!(u64::from(key_layer(key.as_bytes())), height, "key {key:?}");
    }
}

#[test]
fn common_prefix_fixture() {
    let cases = json("mst/common_prefix.json");
    assert_eq!(cases.len(), 13);
    for c in &cases {
        let (l, r) = (s(c, "left"), s(c, "right"));
        let len = c["len"].as_u64().expect("len");
        assert_eq!(
            common_prefix_len(l.as_bytes(), r.as_bytes()) as u64,
            len,
            "{l:?} {r:?}"
        );
    }
}

#[test]
fn example_keys_have_named_heights() {
    let keys = example_keys();
    assert_eq!(keys.len(), 156);
    for k in &keys {
        let digit = k
            .chars()
            .nth(1)
            .and_then(|c| c.to_digit(10))
            .expect("shape");
        assert_eq!(key_layer(k.as_bytes()), digit, "{k}");
    }
}

// ---------------------------------------------------------------------------------------------
// firehose/commit-proof-fixtures.json

#[test]
fn commit_proof_fixtures() {
    let cases = json("firehose/commit-proof-fixtures.json");
    assert_eq!(cases.len(), 6);
    let mut permutations_checked = 0;
    for c in &cases {
        let name = s(c, "comment");
        let leaf = cid(s(c, "leafValue"));
        let keys = strs(c, "keys");
        let adds = strs(c, "adds");
        let dels = strs(c, "dels");
        let root_before = cid(s(c, "rootBeforeCommit"));
        let root_after = cid(s(c, "rootAfterCommit"));
        let in_proof: Vec<Cid> = strs(c, "blocksInProof").iter().map(|x| cid(x)).collect();

        // (1) build: bulk, and by sequential adds in two orders.
        let map: BTreeMap<String, Cid> = keys.iter().map(|k| (k.clone(), leaf)).collect();
        let before = build(&map);
        assert_eq!(before.root(), root_before, "{name}: bulk build");
        for order in [keys.clone(), keys.iter().rev().cloned().collect()] {
            let mut t = Mst::new();
            for k in &order {
                t.add(&NoBlocks, k, leaf).expect("add");
            }
            assert_eq!(t.root(), root_before, "{name}: sequential build");
        }

        // (2) apply adds then dels, over a tree loaded lazily from storage.
        let full = store_of(&before, &NoBlocks);
        let mut after = Mst::load(root_before);
        for k in &adds {
            after.add(&full, k, leaf).expect("add");
        }
        for k in &dels {
            after.delete(&full, k).expect("delete");
        }
        assert_eq!(after.root(), root_after, "{name}: after commit");

        // (3) our proof covers the reference's.
        let written: Vec<&str> = adds.iter().chain(&dels).map(String::as_str).collect();
        let proof = after
            .covering_proof(&full, written.iter().copied())
            .expect("proof");
        for p in &in_proof {
            assert!(proof.contains_key(p), "{name}: proof lacks {p}");
        }
        let d = diff(&full, &Mst::load(root_before), &after).expect("diff");
        let mut shipped: MemoryBlockStore = proof.clone().into_iter().collect();
        shipped.put_many(d.new_blocks.clone());

        // (4) invert in every order from only the shipped blocks.
        let ops: Vec<RecordOp> = adds
            .iter()
            .map(|k| RecordOp::Create {
                key: k.clone(),
                cid: leaf,
            })
            .chain(dels.iter().map(|k| RecordOp::Delete {
                key: k.clone(),
                prev: leaf,
            }))
            .collect();
        let after_blocks: MemoryBlockStore = store_of(&after, &full);
        let reference_only: MemoryBlockStore = in_proof
            .iter()
            .map(|c| {
                (
                    *c,
                    after_blocks.get(c).expect("proof CID is a node").to_vec(),
                )
            })
            .collect();
        for perm in permutations(&ops) {
            assert_eq!(
                invert_ops(&shipped, root_after, &perm).expect("invert"),
                root_before,
                "{name}: {perm:?}"
            );
            // The reference's own block set is enough for our inversion too.
            assert_eq!(
                invert_ops(&reference_only, root_after, &perm).expect("invert (reference blocks)"),
                root_before,
                "{name}: reference blocks {perm:?}"
            );
            permutations_checked += 1;
        }

        // Dropping any shipped block: correct answer or an error, never a wrong root.
        for (gone, _) in shipped.iter() {
            let mut partial = shipped.clone();
            partial.remove(gone);
            match invert_ops(&partial, root_after, &ops) {
                Ok(r) => assert_eq!(r, root_before, "{name}: wrong root without {gone}"),
                Err(RepoError::MissingBlock(m)) => assert_eq!(*m, *gone),
                Err(e) => panic!("{name}: unexpected error {e}"),
            }
        }
    }
    // 1 + 1 + 1 + 6 + 6 + 1 orders.
    assert_eq!(permutations_checked, 16);
}

// ---------------------------------------------------------------------------------------------
// Unit behaviour

#[test]
fn empty_tree_is_one_empty_node() {
    let t = Mst::new();
    let expected = serde_ipld_dagcbor::to_vec(&Ipld::Map(BTreeMap::from([
        ("e".to_string(), Ipld::List(vec![])),
        ("l".to_string(), Ipld::Null),
    ])))
    .expect("encode");
    assert_eq!(t.root(), cbor_cid(&expected));
    assert_eq!(
        t.node_blocks(&NoBlocks).expect("walk"),
        vec![(t.root(), expected)]
    );
    let mut t2 = t.clone();
    t2.add(&NoBlocks, "a/b", val(1)).expect("add");
    t2.delete(&NoBlocks, "a/b").expect("delete");
    assert_eq!(t2.root(), t.root());
    assert!(t2.is_empty(&NoBlocks).expect("empty"));
}

#[test]
fn nodes_are_canonical_dag_cbor() {
    // Independent check of the hand-written encoder against serde_ipld_dagcbor.
    let keys = example_keys();
    let map: BTreeMap<String, Cid> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), val(i as u32)))
        .collect();
    let t = build(&map);
    let blocks = t.node_blocks(&NoBlocks).expect("walk");
    assert!(blocks.len() > 10);
    for (c, bytes) in blocks {
        let ipld: Ipld = serde_ipld_dagcbor::from_slice(&bytes).expect("decode");
        assert_eq!(serde_ipld_dagcbor::to_vec(&ipld).expect("encode"), bytes);
        assert_eq!(cbor_cid(&bytes), c);
        let Ipld::Map(m) = &ipld else {
            panic!("not a map")
        };
        let Some(Ipld::List(entries)) = m.get("e") else {
            panic!("no e")
        };
        assert!(m.contains_key("l"));
        for e in entries {
            let Ipld::Map(e) = e else {
                panic!("entry not a map")
            };
            assert!(
                matches!(e.get("k"), Some(Ipld::Bytes(_))),
                "k must be a byte string"
            );
            assert!(e.contains_key("t"));
        }
    }
}

#[test]
fn operations_and_errors() {
    let mut t = Mst::new();
    t.add(&NoBlocks, "com.x.y/a", val(1)).expect("add");
    assert!(matches!(
        t.add(&NoBlocks, "com.x.y/a", val(2)),
        Err(RepoError::KeyExists(_))
    ));
    assert!(matches!(
        t.delete(&NoBlocks, "com.x.y/b"),
        Err(RepoError::KeyNotFound(_))
    ));
    assert!(matches!(
        t.update(&NoBlocks, "com.x.y/b", val(1)),
        Err(RepoError::KeyNotFound(_))
    ));
    assert!(matches!(
        t.add(&NoBlocks, "", val(1)),
        Err(RepoError::InvalidKey { .. })
    ));
    let long = "a".repeat(1025);
    assert!(matches!(
        t.add(&NoBlocks, &long, val(1)),
        Err(RepoError::InvalidKey { .. })
    ));
    assert_eq!(
        t.update(&NoBlocks, "com.x.y/a", val(3)).expect("update"),
        val(1)
    );
    assert_eq!(
        t.put(&NoBlocks, "com.x.y/a", val(4)).expect("put"),
        Some(val(3))
    );
    assert_eq!(t.put(&NoBlocks, "com.x.y/c", val(5)).expect("put"), None);
    assert_eq!(t.get(&NoBlocks, "com.x.y/a").expect("get"), Some(val(4)));
    assert_eq!(t.delete(&NoBlocks, "com.x.y/a").expect("delete"), val(4));
    assert!(matches!(
        Mst::from_sorted([("b/1", val(1)), ("a/1", val(2))]),
        Err(RepoError::Unsorted { .. })
    ));
    assert!(matches!(
        Mst::from_sorted([("b/1", val(1)), ("b/1", val(2))]),
        Err(RepoError::Unsorted { .. })
    ));
    // A missing root is reported by CID.
    let missing = val(99);
    let err = Mst::load(missing).get(&NoBlocks, "a").expect_err("missing");
    assert_eq!(err.to_string(), format!("block {missing} missing"));
}

#[test]
fn loads_lazily() {
    let map: BTreeMap<String, Cid> = (0..5000u32)
        .map(|i| (format!("app.bsky.feed.post/{i:08}"), val(i)))
        .collect();
    let full = build(&map);
    let store = store_of(&full, &NoBlocks);
    let total = store.len();
    let counting = Counting {
        inner: &store,
        reads: RefCell::new(0),
    };
    let mut t = Mst::load(full.root());
    assert_eq!(
        t.get(&counting, "app.bsky.feed.post/00001234")
            .expect("get"),
        Some(val(1234))
    );
    let first = *counting.reads.borrow();
    assert!(first <= 12, "get read {first} of {total} nodes");
    t.add(&counting, "app.bsky.feed.post/00001234a", val(1))
        .expect("add");
    t.delete(&counting, "app.bsky.feed.post/00002000")
        .expect("delete");
    let page = t
        .list(
            &counting,
            &ListOptions {
                prefix: Some("app.bsky.feed.post/"),
                after: Some("app.bsky.feed.post/00003000"),
                limit: Some(10),
                ..Default::default()
            },
        )
        .expect("list");
    assert_eq!(page.len(), 10);
    assert_eq!(page[0].0, "app.bsky.feed.post/00003001");
    let reads = *counting.reads.borrow();
    assert!(reads < 60, "read {reads} of {total} nodes");
    // The diff of a small change only reads around the change.
    let before = *counting.reads.borrow();
    let d = diff(&counting, &Mst::load(full.root()), &t).expect("diff");
    assert_eq!(d.adds.len(), 1);
    assert_eq!(d.deletes.len(), 1);
    let reads = *counting.reads.borrow() - before;
    assert!(reads < 40, "diff read {reads} of {total} nodes");
}

#[test]
fn list_options() {
    let keys = ["a/1", "a/2", "a/3", "b/1", "b/2", "c/1"];
    let t =
        Mst::from_sorted(keys.iter().enumerate().map(|(i, k)| (*k, val(i as u32)))).expect("build");
    let ks = |o: ListOptions<'_>| -> Vec<String> {
        t.list(&NoBlocks, &o)
            .expect("list")
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    assert_eq!(
        ks(ListOptions {
            prefix: Some("b/"),
            ..Default::default()
        }),
        ["b/1", "b/2"]
    );
    assert_eq!(
        ks(ListOptions {
            prefix: Some("a/"),
            after: Some("a/1"),
            limit: Some(1),
            ..Default::default()
        }),
        ["a/2"]
    );
    assert_eq!(
        ks(ListOptions {
            prefix: Some("a/"),
            reverse: true,
            ..Default::default()
        }),
        ["a/3", "a/2", "a/1"]
    );
    assert_eq!(
        ks(ListOptions {
            before: Some("b/2"),
            reverse: true,
            limit: Some(2),
            ..Default::default()
        }),
        ["b/1", "a/3"]
    );
    assert!(
        ks(ListOptions {
            limit: Some(0),
            ..Default::default()
        })
        .is_empty()
    );
    let mut seen = Vec::new();
    t.walk(&NoBlocks, &mut |item| {
        if let WalkItem::Leaf { key, .. } = item {
            seen.push(key.to_string());
        }
        Ok(())
    })
    .expect("walk");
    assert_eq!(seen, keys);
}

// ---------------------------------------------------------------------------------------------
// Validation of untrusted nodes

fn link(c: Cid) -> Ipld {
    Ipld::Link(c)
}

fn node(l: Option<Cid>, entries: &[(u64, &[u8], Cid, Option<Cid>)]) -> Vec<u8> {
    let e = entries
        .iter()
        .map(|(p, k, v, t)| {
            Ipld::Map(BTreeMap::from([
                ("p".to_string(), Ipld::Integer((*p).into())),
                ("k".to_string(), Ipld::Bytes(k.to_vec())),
                ("v".to_string(), link(*v)),
                ("t".to_string(), t.map_or(Ipld::Null, link)),
            ]))
        })
        .collect();
    serde_ipld_dagcbor::to_vec(&Ipld::Map(BTreeMap::from([
        ("e".to_string(), Ipld::List(e)),
        ("l".to_string(), l.map_or(Ipld::Null, link)),
    ])))
    .expect("encode")
}

/// Load `bytes` as the root and list everything.
fn load_root(bytes: Vec<u8>, extra: &[Vec<u8>]) -> Result<Vec<(String, Cid)>, RepoError> {
    let root = cbor_cid(&bytes);
    let mut store = MemoryBlockStore::new();
    store.put(root, bytes);
    for b in extra {
        store.put(cbor_cid(b), b.clone());
    }
    Mst::load(root).entries(&store)
}

fn err_text(r: Result<Vec<(String, Cid)>, RepoError>) -> String {
    r.expect_err("must be rejected").to_string()
}

#[test]
fn rejects_invalid_nodes() {
    let v = val(1);
    // Layer-0 keys from the fixture file, in order: A0 < C0 < E0.
    let (a0, c0, e0) = (b"A0/374913", b"C0/451630", b"E0/670489");
    let ok = node(None, &[(0, a0, v, None), (0, c0, v, None)]);
    assert_eq!(load_root(ok, &[]).expect("valid").len(), 2);
    // Two layer-0 keys sharing the 6-byte prefix "com.x/".
    let shared: Vec<String> = (0..100)
        .map(|i| format!("com.x/{i:02}"))
        .filter(|k| key_layer(k.as_bytes()) == 0)
        .take(2)
        .collect();
    let (s0, s1) = (shared[0].as_bytes(), shared[1].as_bytes());
    let p = common_prefix_len(s0, s1);
    assert!(p >= 6);
    let ok = node(None, &[(0, s0, v, None), (p as u64, &s1[p..], v, None)]);
    assert_eq!(load_root(ok, &[]).expect("valid").len(), 2);
    let short_p = node(None, &[(0, s0, v, None), (6, &s1[6..], v, None)]);
    if p > 6 {
        assert!(err_text(load_root(short_p, &[])).contains("has prefix length 6"));
    }
    let long_p = node(None, &[(0, s0, v, None), (20, &s1[p..], v, None)]);
    assert!(err_text(load_root(long_p, &[])).contains("prefix length 20 but the previous key is"));

    let unsorted = node(None, &[(0, c0, v, None), (0, a0, v, None)]);
    assert!(err_text(load_root(unsorted, &[])).contains("keys out of order at entry 1"));

    let bad_prefix = node(None, &[(0, s0, v, None), (0, s1, v, None)]);
    assert!(err_text(load_root(bad_prefix, &[])).contains("entry 1 has prefix length 0"));

    let first_prefix = node(None, &[(3, a0, v, None)]);
    assert!(err_text(load_root(first_prefix, &[])).contains("prefix length 3"));

    let mixed = node(None, &[(0, a0, v, None), (0, b"B1/986427", v, None)]);
    assert!(err_text(load_root(mixed, &[])).contains("layer"));

    let non_utf8 = node(None, &[(0, b"\xff\xfe", v, None)]);
    assert!(err_text(load_root(non_utf8, &[])).contains("not UTF-8"));

    let empty_key = node(None, &[(0, b"", v, None)]);
    assert!(err_text(load_root(empty_key, &[])).contains("empty key"));

    // Layer-0 node with a subtree link.
    let child = node(None, &[(0, e0, v, None)]);
    let bad_child_link = node(None, &[(0, a0, v, Some(cbor_cid(&child)))]);
    assert!(err_text(load_root(bad_child_link, std::slice::from_ref(&child))).contains("layer 0"));

    // Root that is an empty node pointing down.
    let top_heavy = node(Some(cbor_cid(&child)), &[]);
    assert!(err_text(load_root(top_heavy, &[child])).contains("only points to a subtree"));

    // A child holding a key outside its parent slot: under B1, left child must be < B1.
    let b1 = b"B1/986427";
    let stray = node(None, &[(0, c0, v, None)]);
    let parent = node(Some(cbor_cid(&stray)), &[(0, b1, v, None)]);
    assert!(err_text(load_root(parent, &[stray])).contains("outside the key range"));

    // Empty non-root node.
    let empty = node(None, &[]);
    let parent = node(Some(cbor_cid(&empty)), &[(0, b1, v, None)]);
    assert!(err_text(load_root(parent, &[empty])).contains("empty non-root"));

    // Subtree link with a non-dag-cbor codec.
    let raw = berth::data::raw_cid(b"x");
    let parent = node(Some(raw), &[(0, b1, v, None)]);
    assert!(err_text(load_root(parent, &[])).contains("not dag-cbor"));

    // Not canonical: same content, `t` omitted.
    let mut m = BTreeMap::from([
        ("p".to_string(), Ipld::Integer(0)),
        ("k".to_string(), Ipld::Bytes(a0.to_vec())),
        ("v".to_string(), link(v)),
    ]);
    let no_t = serde_ipld_dagcbor::to_vec(&Ipld::Map(BTreeMap::from([
        ("e".to_string(), Ipld::List(vec![Ipld::Map(m.clone())])),
        ("l".to_string(), Ipld::Null),
    ])))
    .expect("encode");
    assert!(matches!(
        load_root(no_t, &[]),
        Err(RepoError::CidMismatch(_))
    ));
    // `k` as a text string instead of bytes.
    m.insert("k".to_string(), Ipld::String("A0/374913".into()));
    m.insert("t".to_string(), Ipld::Null);
    let text_k = serde_ipld_dagcbor::to_vec(&Ipld::Map(BTreeMap::from([
        ("e".to_string(), Ipld::List(vec![Ipld::Map(m)])),
        ("l".to_string(), Ipld::Null),
    ])))
    .expect("encode");
    assert!(matches!(
        load_root(text_k, &[]),
        Err(RepoError::Decode { .. })
    ));

    // Bytes that do not hash to the CID they are stored under.
    let good = node(None, &[(0, a0, v, None)]);
    let mut store = MemoryBlockStore::new();
    store.put(val(7), good);
    assert!(matches!(
        Mst::load(val(7)).entries(&store),
        Err(RepoError::CidMismatch(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Property tests

/// Keys from a small alphabet (shared prefixes, collisions between runs) plus the pre-mined
/// example keys, whose high layers make tall trees out of few keys.
fn key_strategy() -> BoxedStrategy<String> {
    let examples = example_keys();
    prop_oneof![
        (0..examples.len()).prop_map(move |i| examples[i].clone()),
        (0..3usize, "[a-d2-5]{1,4}").prop_map(|(c, r)| {
            let coll = ["app.bsky.feed.like", "app.bsky.feed.post", "com.example.x"][c];
            format!("{coll}/{r}")
        }),
    ]
    .boxed()
}

fn map_strategy(max: usize) -> impl Strategy<Value = BTreeMap<String, Cid>> {
    prop::collection::btree_map(
        key_strategy(),
        any::<u16>().prop_map(|n| val(n.into())),
        0..max,
    )
}

/// A commit on `before`: up to `n` writes to distinct keys, each a create, update or delete
/// consistent with the tree.
fn commit_ops(before: &BTreeMap<String, Cid>, picks: &[(String, bool, u16)]) -> Vec<RecordOp> {
    let mut seen = BTreeSet::new();
    let mut ops = Vec::new();
    let existing: Vec<&String> = before.keys().collect();
    for (i, (k, use_existing, n)) in picks.iter().enumerate() {
        let key = if *use_existing && !existing.is_empty() {
            existing[(*n as usize + i) % existing.len()].clone()
        } else {
            k.clone()
        };
        if !seen.insert(key.clone()) {
            continue;
        }
        let cid = val(100_000 + u32::from(*n));
        ops.push(match before.get(&key) {
            None => RecordOp::Create { key, cid },
            Some(prev) if n % 2 == 0 => RecordOp::Update {
                key,
                prev: *prev,
                cid,
            },
            Some(prev) => RecordOp::Delete { key, prev: *prev },
        });
    }
    ops
}

proptest! {
    // 256 cases each by default; PROPTEST_CASES=N runs more.

    /// Any history of writes ends in the same tree as a bulk build of the final map, and the
    /// order of insertion does not matter.
    #[test]
    fn shape_is_history_independent(
        writes in prop::collection::vec((key_strategy(), prop::option::of(any::<u16>())), 0..120),
        seed in any::<u64>(),
    ) {
        let mut model = BTreeMap::new();
        let mut t = Mst::new();
        for (k, v) in &writes {
            match v {
                Some(n) => {
                    let prev = t.put(&NoBlocks, k, val((*n).into())).expect("put");
                    prop_assert_eq!(prev, model.insert(k.clone(), val((*n).into())));
                }
                None => {
                    let r = t.delete(&NoBlocks, k);
                    match model.remove(k) {
                        Some(old) => prop_assert_eq!(r.expect("delete"), old),
                        None => prop_assert!(matches!(r, Err(RepoError::KeyNotFound(_)))),
                    }
                }
            }
        }
        let bulk = build(&model);
        prop_assert_eq!(t.root(), bulk.root());
        // Shuffled insertion order.
        let mut items: Vec<_> = model.iter().collect();
        let mut x = seed | 1;
        for i in (1..items.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            items.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut shuffled = Mst::new();
        for (k, v) in items {
            shuffled.add(&NoBlocks, k, *v).expect("add");
        }
        prop_assert_eq!(shuffled.root(), bulk.root());
        let listed: BTreeMap<String, Cid> = t.entries(&NoBlocks).expect("entries").into_iter().collect();
        prop_assert_eq!(listed, model);
    }

    /// Loading from blocks gives the same root and listing, and list options agree with a model.
    #[test]
    fn load_and_list(
        model in map_strategy(150),
        prefix in prop::option::of(prop::sample::select(vec!["app.bsky.feed.", "app.bsky.feed.like/", "com.example.x/", "B", "zzz"])),
        cursor in prop::option::of(key_strategy()),
        limit in prop::option::of(0usize..20),
        reverse in any::<bool>(),
    ) {
        let t = build(&model);
        let store = store_of(&t, &NoBlocks);
        let loaded = Mst::load(t.root());
        prop_assert_eq!(loaded.root(), t.root());
        let all = loaded.entries(&store).expect("entries");
        prop_assert_eq!(&all, &model.iter().map(|(k, v)| (k.clone(), *v)).collect::<Vec<_>>());
        let opts = ListOptions {
            prefix,
            after: if reverse { None } else { cursor.as_deref() },
            before: if reverse { cursor.as_deref() } else { None },
            limit,
            reverse,
        };
        let got = Mst::load(t.root()).list(&store, &opts).expect("list");
        let mut want: Vec<(String, Cid)> = model
            .iter()
            .filter(|(k, _)| prefix.is_none_or(|p| k.starts_with(p)))
            .filter(|(k, _)| opts.after.is_none_or(|a| k.as_str() > a))
            .filter(|(k, _)| opts.before.is_none_or(|b| k.as_str() < b))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if reverse {
            want.reverse();
        }
        want.truncate(limit.unwrap_or(usize::MAX));
        prop_assert_eq!(got, want);
        // Every node block is canonical and re-derives its CID.
        for (c, bytes) in store.iter() {
            prop_assert_eq!(cbor_cid(bytes), *c);
        }
    }

    /// diff(a, b) lists exactly the key changes, and its blocks turn a's node set into b's.
    #[test]
    fn diff_transforms_a_into_b(a_map in map_strategy(120), b_map in map_strategy(120), mix in any::<bool>()) {
        // Half the time make b a small edit of a, the common case.
        let b_map = if mix {
            let mut m = a_map.clone();
            for (k, v) in b_map.iter().take(5) {
                if m.remove(k).is_none() { m.insert(k.clone(), *v); }
            }
            m
        } else {
            b_map
        };
        let a = build(&a_map);
        let b = build(&b_map);
        let mut store = store_of(&a, &NoBlocks);
        store.put_many(store_of(&b, &NoBlocks).iter().map(|(c, x)| (*c, x.to_vec())));
        let (la, lb) = (Mst::load(a.root()), Mst::load(b.root()));
        let d = diff(&store, &la, &lb).expect("diff");

        let mut applied = Mst::load(a.root());
        for (k, v) in &d.adds { applied.add(&store, k, *v).expect("add"); }
        for (k, old, new) in &d.updates {
            prop_assert_eq!(applied.update(&store, k, *new).expect("update"), *old);
        }
        for (k, old) in &d.deletes { prop_assert_eq!(applied.delete(&store, k).expect("delete"), *old); }
        prop_assert_eq!(applied.root(), b.root());

        let want_adds: Vec<_> = b_map.iter().filter(|(k, _)| !a_map.contains_key(*k)).map(|(k, v)| (k.clone(), *v)).collect();
        let want_dels: Vec<_> = a_map.iter().filter(|(k, _)| !b_map.contains_key(*k)).map(|(k, v)| (k.clone(), *v)).collect();
        prop_assert_eq!(&d.adds, &want_adds);
        prop_assert_eq!(&d.deletes, &want_dels);

        let na = node_cids(&a, &NoBlocks);
        let nb = node_cids(&b, &NoBlocks);
        let new: HashSet<Cid> = d.new_blocks.iter().map(|(c, _)| *c).collect();
        let removed: HashSet<Cid> = d.removed_cids.iter().copied().collect();
        prop_assert_eq!(new, nb.difference(&na).copied().collect::<HashSet<_>>());
        prop_assert_eq!(removed, na.difference(&nb).copied().collect::<HashSet<_>>());
        for (c, bytes) in &d.new_blocks { prop_assert_eq!(cbor_cid(bytes), *c); }

        // a's blocks plus the new ones are enough to read all of b.
        let mut a_plus: MemoryBlockStore = store_of(&a, &NoBlocks);
        a_plus.put_many(d.new_blocks.clone());
        prop_assert_eq!(Mst::load(b.root()).entries(&a_plus).expect("b from a+new").len(), b_map.len());
    }

    /// Sync 1.1: a consumer holding only the proof and new blocks recovers the previous root by
    /// inverting the ops, in any order.
    #[test]
    fn inversion_recovers_previous_root(
        before_map in map_strategy(100),
        picks in prop::collection::vec((key_strategy(), any::<bool>(), any::<u16>()), 1..10),
        rotate in any::<usize>(),
    ) {
        let ops = commit_ops(&before_map, &picks);
        let before = build(&before_map);
        let full = store_of(&before, &NoBlocks);
        let old = Mst::load(before.root());
        let mut after = old.clone();
        for op in &ops {
            after.apply(&full, op).expect("apply");
        }
        let d = diff(&full, &old, &after).expect("diff");
        let proof = after.covering_proof(&full, ops.iter().map(RecordOp::key)).expect("proof");
        let mut shipped: MemoryBlockStore = proof.into_iter().collect();
        shipped.put_many(d.new_blocks);
        let root_after = after.root();

        prop_assert_eq!(invert_ops(&shipped, root_after, &ops).expect("invert"), before.root());
        let mut rev = ops.clone();
        rev.reverse();
        prop_assert_eq!(invert_ops(&shipped, root_after, &rev).expect("invert reversed"), before.root());
        if !ops.is_empty() {
            let mut rot = ops.clone();
            rot.rotate_left(rotate % ops.len());
            prop_assert_eq!(invert_ops(&shipped, root_after, &rot).expect("invert rotated"), before.root());
        }
        // Without any one shipped block: the right root or a missing-block error, never a wrong root.
        let blocks: Vec<Cid> = shipped.iter().map(|(c, _)| *c).collect();
        let gone = blocks[rotate % blocks.len()];
        let mut partial = shipped.clone();
        partial.remove(&gone);
        match invert_ops(&partial, root_after, &ops) {
            Ok(r) => prop_assert_eq!(r, before.root()),
            Err(RepoError::MissingBlock(m)) => prop_assert_eq!(*m, gone),
            Err(e) => prop_assert!(false, "unexpected error {}", e),
        }
        // A wrong op list cannot reproduce the old root.
        if let Some(RecordOp::Create { key, .. }) = ops.first() {
            let mut wrong = ops.clone();
            wrong[0] = RecordOp::Create { key: key.clone(), cid: val(7_000_000) };
            prop_assert!(invert_ops(&shipped, root_after, &wrong).is_err());
        }
    }

    /// Arbitrary and mutated node bytes never panic the loader.
    #[test]
    fn loader_never_panics(
        model in map_strategy(60),
        pick in any::<usize>(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        truncate in prop::option::of(any::<usize>()),
        noise in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let t = build(&model);
        let blocks = t.node_blocks(&NoBlocks).expect("walk");
        let (orig_cid, orig) = &blocks[pick % blocks.len()];
        let mut bytes = orig.clone();
        for (i, b) in &edits {
            if !bytes.is_empty() {
                let n = bytes.len();
                bytes[i % n] = *b;
            }
        }
        if let Some(n) = truncate {
            bytes.truncate(n % (bytes.len() + 1));
        }
        let mut store: MemoryBlockStore = blocks.iter().cloned().collect();
        // As the root of a tree, and in place of a child (re-linked from the root).
        let _ = load_root(bytes.clone(), &blocks.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>());
        let _ = load_root(noise.clone(), &[]);
        let new_cid = cbor_cid(&bytes);
        store.put(new_cid, bytes);
        let (root_cid, root_bytes) = &blocks[0];
        if orig_cid != root_cid {
            let (from, to) = (orig_cid.to_bytes(), new_cid.to_bytes());
            let mut patched = root_bytes.clone();
            if let Some(at) = patched.windows(from.len()).position(|w| w == from.as_slice()) {
                patched[at..at + from.len()].copy_from_slice(&to);
                let patched_cid = cbor_cid(&patched);
                store.put(patched_cid, patched);
                let mut m = Mst::load(patched_cid);
                let _ = m.entries(&store);
                let _ = m.covering_proof(&store, model.keys().map(String::as_str).take(5));
                if let Some(k) = model.keys().next() {
                    let _ = m.delete(&store, k);
                    let _ = m.add(&store, "app.bsky.feed.post/zzz", val(1));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Timing (run with: cargo test --release --test mst -- --ignored --nocapture)

#[test]
#[ignore]
fn timing_sequential_inserts() {
    let n = 100_000u32;
    let start = std::time::Instant::now();
    let mut t = Mst::new();
    for i in 0..n {
        t.add(
            &NoBlocks,
            &format!("app.bsky.feed.post/{:013}", u64::from(i) * 7919),
            val(i),
        )
        .expect("add");
        std::hint::black_box(t.root());
    }
    let el = start.elapsed();
    println!(
        "{n} inserts + root each: {el:?} ({:.0}/s)",
        f64::from(n) / el.as_secs_f64()
    );

    // Commit-shaped work on the 100k tree: snapshot, write, root, diff, covering proof.
    let store = store_of(&t, &NoBlocks);
    let mut cur = Mst::load(t.root());
    let m = 20_000u32;
    let start = std::time::Instant::now();
    for i in 0..m {
        let old = cur.clone();
        let key = format!(
            "app.bsky.feed.post/{:013}a",
            (u64::from(i) * 40_503 + 17) % 10_000_000_000_000
        );
        cur.add(&store, &key, val(i)).expect("add");
        let d = diff(&store, &old, &cur).expect("diff");
        let p = cur.covering_proof(&store, [key.as_str()]).expect("proof");
        std::hint::black_box((cur.root(), d, p));
    }
    let el = start.elapsed();
    println!(
        "{m} commits on 100k repo: {el:?} ({:.0}/s)",
        f64::from(m) / el.as_secs_f64()
    );
}
