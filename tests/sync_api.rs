//! `com.atproto.sync.*` reads over real HTTP: repo export (full and `since`), record proofs
//! verified from the CAR alone, blocks, heads, repo status and listing, blob listing, and the
//! availability gate (unknown, deactivated and taken-down repos; owner and admin bypass).

use berth::car::{CarReader, encode_header};
use berth::data::Cid;
use berth::repo::{BlockSource, Commit, MemoryBlockStore, Mst};
use berth::store::actor::{ActorStore, read_signing_key};
use berth::syntax::Did;
use reqwest::StatusCode;
use serde_json::{Value, json};

mod common;

struct Client {
    pds: common::TestPds,
    did: String,
    token: String,
}

impl Client {
    async fn new() -> Client {
        let pds = common::start_pds(&[]).await;
        let (did, token) = sign_up(&pds, "alice.test").await;
        Client { pds, did, token }
    }

    async fn post(&self, nsid: &str, body: Value) -> (StatusCode, Value) {
        let res = self
            .pds
            .http
            .post(format!("{}/xrpc/{nsid}", self.pds.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (res.status(), res.json().await.unwrap_or(Value::Null))
    }

    /// GET without credentials.
    async fn get(&self, nsid: &str, query: &[(&str, &str)]) -> reqwest::Response {
        self.get_with(nsid, query, None).await
    }

    async fn get_with(
        &self,
        nsid: &str,
        query: &[(&str, &str)],
        auth: Option<Auth<'_>>,
    ) -> reqwest::Response {
        let mut req = self.pds.http.get(format!(
            "{}/xrpc/{nsid}?{}",
            self.pds.url,
            encode_query(query)
        ));
        match auth {
            Some(Auth::Bearer(t)) => req = req.bearer_auth(t),
            Some(Auth::Admin(pw)) => req = req.basic_auth("admin", Some(pw)),
            None => {}
        }
        req.send().await.unwrap()
    }

    async fn get_json(&self, nsid: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
        let res = self.get(nsid, query).await;
        (res.status(), res.json().await.unwrap_or(Value::Null))
    }

    /// A CAR response: checks status and content type.
    async fn get_car(&self, nsid: &str, query: &[(&str, &str)]) -> Vec<u8> {
        let res = self.get(nsid, query).await;
        assert_eq!(res.status(), StatusCode::OK, "{nsid}");
        assert_eq!(res.headers()["content-type"], "application/vnd.ipld.car");
        res.bytes().await.unwrap().to_vec()
    }

    async fn create(&self, collection: &str, record: Value) -> Value {
        let (s, v) = self
            .post(
                "com.atproto.repo.createRecord",
                json!({"repo": self.did, "collection": collection, "record": record}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// `n` records of about `size` bytes each in one commit (an unknown collection, so the
    /// size is not bounded by a lexicon).
    async fn create_many(&self, n: usize, size: usize, tag: &str) {
        let writes: Vec<Value> = (0..n)
            .map(|i| {
                json!({"$type": "com.atproto.repo.applyWrites#create",
                       "collection": "com.example.blob",
                       "value": {"$type": "com.example.blob", "tag": tag, "i": i,
                                 "data": "x".repeat(size)}})
            })
            .collect();
        let (s, v) = self
            .post(
                "com.atproto.repo.applyWrites",
                json!({"repo": self.did, "writes": writes}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    async fn latest(&self) -> (String, String) {
        let (s, v) = self
            .get_json("com.atproto.sync.getLatestCommit", &[("did", &self.did)])
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        (
            v["cid"].as_str().unwrap().to_string(),
            v["rev"].as_str().unwrap().to_string(),
        )
    }

    fn key(&self) -> berth::crypto::Keypair {
        read_signing_key(self.pds.pds.actors.dir(), &self.did).unwrap()
    }

    async fn set_deactivated(&self, on: bool) {
        let did: Did = self.did.parse().unwrap();
        self.pds
            .pds
            .accounts(move |s| {
                if on {
                    s.deactivate(&did, None)
                } else {
                    s.activate(&did)
                }
            })
            .await
            .unwrap();
    }

    async fn set_takedown(&self, on: bool) {
        let did: Did = self.did.parse().unwrap();
        self.pds
            .pds
            .accounts(move |s| s.set_takedown(&did, on.then_some("mod-1")))
            .await
            .unwrap();
    }
}

fn encode_query(query: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    query
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    Bearer(&'a str),
    Admin(&'a str),
}

async fn sign_up(pds: &common::TestPds, handle: &str) -> (String, String) {
    let res = pds
        .http
        .post(format!("{}/xrpc/com.atproto.server.createAccount", pds.url))
        .json(&json!({"handle": handle, "email": format!("{handle}@example.com"), "password": "hunter22"}))
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    (
        v["did"].as_str().unwrap().to_string(),
        v["accessJwt"].as_str().unwrap().to_string(),
    )
}

fn post(text: &str) -> Value {
    json!({"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-11-23T10:00:00.000Z"})
}

/// All blocks of a CAR with roots, verified against their CIDs.
fn read_car(bytes: &[u8]) -> (Vec<Cid>, Vec<(Cid, Vec<u8>)>) {
    let reader = CarReader::new(bytes).unwrap();
    let roots = reader.roots().to_vec();
    let blocks = reader.collect::<Result<Vec<_>, _>>().unwrap();
    (roots, blocks)
}

fn memory_store(blocks: &[(Cid, Vec<u8>)]) -> MemoryBlockStore {
    let mut store = MemoryBlockStore::new();
    store.put_many(blocks.iter().cloned());
    store
}

/// The reference's verification of a `getRecord` CAR (`verifyProofs`): the root commit is
/// the account's and signed with its key, and the MST, read from the CAR's blocks alone,
/// gives the key's value. A block missing from the proof is an error here, never `None`.
fn verify_proof(car: &[u8], did: &str, key: &berth::crypto::PublicKey, path: &str) -> Option<Cid> {
    let (roots, blocks) = read_car(car);
    assert_eq!(roots.len(), 1);
    let store = memory_store(&blocks);
    let commit = Commit::from_cbor(&store.get_block(&roots[0]).unwrap().unwrap()).unwrap();
    assert_eq!(commit.did.as_str(), did);
    commit.verify(key).unwrap();
    let found = Mst::load(commit.data).get(&store, path).unwrap();
    if let Some(cid) = found {
        assert!(store.has(&cid), "the record block is in the proof");
    }
    found
}

/// Bytes that sniff as PNG (the image embed wants an image), different per `seed`.
fn png(seed: u8, len: usize) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0".to_vec();
    out.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    out
}

fn uri_path(uri: &str) -> String {
    let rest = uri.strip_prefix("at://").unwrap();
    rest.split_once('/').unwrap().1.to_string()
}

#[tokio::test]
async fn get_repo_full_and_since() {
    let c = Client::new().await;
    // Enough data for several 64 KiB chunks.
    c.create_many(30, 6000, "old").await;
    let old = c.create("app.bsky.feed.post", post("before the cut")).await;
    let (_, cut_rev) = c.latest().await;
    let new = c.create("app.bsky.feed.post", post("after the cut")).await;
    let (head, _) = c.latest().await;

    let full = c
        .get_car("com.atproto.sync.getRepo", &[("did", &c.did)])
        .await;
    assert!(full.len() > 2 * 64 * 1024, "{} bytes", full.len());
    let (roots, blocks) = read_car(&full);
    assert_eq!(roots, vec![Cid::try_from(head.as_str()).unwrap()]);
    assert_eq!(blocks[0].0, roots[0], "the commit comes first");

    // The CAR is a complete, verifiable repo: it imports with the account's key.
    let mut scratch = ActorStore::open_in_memory(&c.did).unwrap();
    let summary = scratch
        .import_car(
            CarReader::new(full.as_slice()).unwrap(),
            Some(&c.key().public_key()),
        )
        .unwrap();
    assert_eq!(summary.commit.to_string(), head);
    assert_eq!(summary.records, 32);
    assert_eq!(scratch.root().unwrap().unwrap().cid.to_string(), head);

    // getCheckout is the same export.
    let checkout = c
        .get_car("com.atproto.sync.getCheckout", &[("did", &c.did)])
        .await;
    assert_eq!(checkout, full);

    // `since`: only what was written after the cut, with the same root.
    let diff = c
        .get_car(
            "com.atproto.sync.getRepo",
            &[("did", &c.did), ("since", &cut_rev)],
        )
        .await;
    assert!(
        diff.len() < full.len() / 10,
        "{} vs {}",
        diff.len(),
        full.len()
    );
    let (diff_roots, diff_blocks) = read_car(&diff);
    assert_eq!(diff_roots, roots);
    let diff_cids: Vec<Cid> = diff_blocks.iter().map(|b| b.0).collect();
    let new_cid = Cid::try_from(new["cid"].as_str().unwrap()).unwrap();
    let old_cid = Cid::try_from(old["cid"].as_str().unwrap()).unwrap();
    assert!(diff_cids.contains(&roots[0]));
    assert!(diff_cids.contains(&new_cid));
    assert!(!diff_cids.contains(&old_cid));
    let full_cids: Vec<Cid> = blocks.iter().map(|b| b.0).collect();
    assert!(diff_cids.iter().all(|c| full_cids.contains(c)));

    // A `since` that is not a TID is refused.
    let (s, v) = c
        .get_json(
            "com.atproto.sync.getRepo",
            &[("did", &c.did), ("since", "yesterday")],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "InvalidRequest");
}

#[tokio::test]
async fn get_record_inclusion_and_exclusion_proofs() {
    let c = Client::new().await;
    // Enough keys for a tree of several levels, so the proof is a path, not the whole tree.
    c.create_many(120, 10, "filler").await;
    let rec = c.create("app.bsky.feed.post", post("proved")).await;
    let path = uri_path(rec["uri"].as_str().unwrap());
    let (collection, rkey) = path.split_once('/').unwrap();
    let key = c.key().public_key();

    let car = c
        .get_car(
            "com.atproto.sync.getRecord",
            &[("did", &c.did), ("collection", collection), ("rkey", rkey)],
        )
        .await;
    let found = verify_proof(&car, &c.did, &key, &path);
    assert_eq!(found.unwrap().to_string(), rec["cid"].as_str().unwrap());
    let (roots, blocks) = read_car(&car);
    let (head, _) = c.latest().await;
    assert_eq!(roots[0].to_string(), head);
    assert!(
        blocks.len() < 20,
        "a proof, not the repo: {} blocks",
        blocks.len()
    );

    // Absent keys, in the middle of the tree and past its end: proofs of non-inclusion.
    for (collection, rkey) in [
        ("app.bsky.feed.post", "3zzzzzzzzzzzz"),
        ("com.example.blob", "aaaa"),
        ("zzz.example.none", "self"),
    ] {
        let car = c
            .get_car(
                "com.atproto.sync.getRecord",
                &[("did", &c.did), ("collection", collection), ("rkey", rkey)],
            )
            .await;
        assert_eq!(
            verify_proof(&car, &c.did, &key, &format!("{collection}/{rkey}")),
            None
        );
    }

    // A wrong signing key fails: the verification above is not vacuous.
    let stranger = berth::crypto::Keypair::generate(berth::crypto::Curve::K256);
    let (roots, blocks) = read_car(&car);
    let store = memory_store(&blocks);
    let commit = Commit::from_cbor(&store.get_block(&roots[0]).unwrap().unwrap()).unwrap();
    assert!(commit.verify(&stranger.public_key()).is_err());

    let (s, v) = c
        .get_json(
            "com.atproto.sync.getRecord",
            &[("did", &c.did), ("collection", "not a nsid"), ("rkey", "x")],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "InvalidRequest");
}

#[tokio::test]
async fn get_blocks_without_roots_and_missing_cids() {
    let c = Client::new().await;
    let rec = c.create("app.bsky.feed.post", post("a block")).await;
    let (head, _) = c.latest().await;
    let rec_cid = rec["cid"].as_str().unwrap();

    let car = c
        .get_car(
            "com.atproto.sync.getBlocks",
            &[
                ("did", &c.did),
                ("cids", &head),
                ("cids", rec_cid),
                ("cids", &head),
            ],
        )
        .await;
    // The header has an empty roots array; the blocks follow as in any CAR.
    let header = encode_header(&[]);
    assert_eq!(&car[..header.len()], header.as_slice());
    let mut rerooted = encode_header(&[Cid::try_from(head.as_str()).unwrap()]);
    rerooted.extend_from_slice(&car[header.len()..]);
    let (_, blocks) = read_car(&rerooted);
    let cids: Vec<String> = blocks.iter().map(|b| b.0.to_string()).collect();
    assert_eq!(cids, vec![head.clone(), rec_cid.to_string()]);

    // One CID the repo does not hold fails the whole request.
    let missing = berth::data::cbor_cid(b"\xa1anfnowhere").to_string();
    let missing = missing.as_str();
    let (s, v) = c
        .get_json(
            "com.atproto.sync.getBlocks",
            &[("did", &c.did), ("cids", &head), ("cids", missing)],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "InvalidRequest");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("Could not find cids"),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains(missing), "{v}");

    let (s, v) = c
        .get_json(
            "com.atproto.sync.getBlocks",
            &[("did", &c.did), ("cids", "not-a-cid")],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "InvalidRequest");
}

#[tokio::test]
async fn latest_commit_and_head_follow_writes() {
    let c = Client::new().await;
    let (first, first_rev) = c.latest().await;
    let rec = c.create("app.bsky.feed.post", post("moves the head")).await;
    let (cid, rev) = c.latest().await;
    assert_ne!(cid, first);
    assert!(rev > first_rev);
    assert_eq!(rec["commit"]["cid"], cid.as_str());
    assert_eq!(rec["commit"]["rev"], rev.as_str());
    let (s, v) = c
        .get_json("com.atproto.sync.getHead", &[("did", &c.did)])
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"root": cid}));
}

#[tokio::test]
async fn repo_status_and_list_repos() {
    let c = Client::new().await;
    let (bob, _) = sign_up(&c.pds, "bob.test").await;
    let (_, rev) = c.latest().await;

    let (s, v) = c
        .get_json("com.atproto.sync.getRepoStatus", &[("did", &c.did)])
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"did": c.did, "active": true, "rev": rev}));

    // Page through with limit 1: alice, then bob, then an empty page without a cursor.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec![("limit", "1".to_string())];
        if let Some(cur) = &cursor {
            q.push(("cursor", cur.clone()));
        }
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (s, v) = c.get_json("com.atproto.sync.listRepos", &q).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let repos = v["repos"].as_array().unwrap();
        if repos.is_empty() {
            assert!(v.get("cursor").is_none(), "{v}");
            break;
        }
        assert_eq!(repos.len(), 1);
        seen.push(repos[0].clone());
        cursor = Some(v["cursor"].as_str().unwrap().to_string());
        assert!(seen.len() <= 2);
    }
    assert_eq!(seen[0]["did"], c.did.as_str());
    assert_eq!(seen[0]["head"], c.latest().await.0.as_str());
    assert_eq!(seen[0]["rev"], rev.as_str());
    assert_eq!(seen[0]["active"], true);
    assert!(seen[0].get("status").is_none());
    assert_eq!(seen[1]["did"], bob.as_str());

    // Deactivated: listed and reported with its status, without a rev.
    c.set_deactivated(true).await;
    let (_, v) = c
        .get_json("com.atproto.sync.getRepoStatus", &[("did", &c.did)])
        .await;
    assert_eq!(
        v,
        json!({"did": c.did, "active": false, "status": "deactivated"})
    );
    let (_, v) = c.get_json("com.atproto.sync.listRepos", &[]).await;
    let repos = v["repos"].as_array().unwrap();
    assert_eq!(repos.len(), 2);
    assert_eq!(repos[0]["active"], false);
    assert_eq!(repos[0]["status"], "deactivated");
    c.set_takedown(true).await;
    let (_, v) = c
        .get_json("com.atproto.sync.getRepoStatus", &[("did", &c.did)])
        .await;
    assert_eq!(v["status"], "takendown");

    let (s, v) = c
        .get_json(
            "com.atproto.sync.getRepoStatus",
            &[("did", "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "RepoNotFound");
    for (limit, cursor) in [("0", None), ("1001", None), ("5", Some("garbage"))] {
        let mut q = vec![("limit", limit)];
        if let Some(cur) = cursor {
            q.push(("cursor", cur));
        }
        let (s, v) = c.get_json("com.atproto.sync.listRepos", &q).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["error"], "InvalidRequest");
    }
}

#[tokio::test]
async fn list_blobs_of_current_records() {
    let c = Client::new().await;
    let upload = |bytes: Vec<u8>| {
        let c = &c;
        async move {
            let res = c
                .pds
                .http
                .post(format!("{}/xrpc/com.atproto.repo.uploadBlob", c.pds.url))
                .bearer_auth(&c.token)
                .header("content-type", "application/octet-stream")
                .body(bytes)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.json::<Value>().await.unwrap()["blob"].clone()
        }
    };
    let image_post = |blob: &Value| {
        json!({"$type": "app.bsky.feed.post", "text": "look",
               "createdAt": "2026-11-23T10:00:00.000Z",
               "embed": {"$type": "app.bsky.embed.images",
                         "images": [{"alt": "", "image": blob}]}})
    };
    let a = upload(png(1, 300)).await;
    let b = upload(png(2, 300)).await;
    let unused = upload(png(3, 300)).await;
    c.create("app.bsky.feed.post", image_post(&a)).await;
    let (_, cut) = c.latest().await;
    c.create("app.bsky.feed.post", image_post(&b)).await;
    // A second reference to the same blob is listed once.
    c.create("app.bsky.feed.post", image_post(&b)).await;

    let cid = |v: &Value| v["ref"]["$link"].as_str().unwrap().to_string();
    let mut expected = vec![cid(&a), cid(&b)];
    expected.sort();
    let (s, v) = c
        .get_json("com.atproto.sync.listBlobs", &[("did", &c.did)])
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["cids"], json!(expected));
    assert_eq!(v["cursor"], json!(expected[1]));
    assert!(!v["cids"].as_array().unwrap().contains(&json!(cid(&unused))));

    // Paging with limit 1 and the cursor.
    let (_, p1) = c
        .get_json(
            "com.atproto.sync.listBlobs",
            &[("did", &c.did), ("limit", "1")],
        )
        .await;
    assert_eq!(p1["cids"], json!([expected[0]]));
    let cur = p1["cursor"].as_str().unwrap();
    let (_, p2) = c
        .get_json(
            "com.atproto.sync.listBlobs",
            &[("did", &c.did), ("limit", "1"), ("cursor", cur)],
        )
        .await;
    assert_eq!(p2["cids"], json!([expected[1]]));
    let cur = p2["cursor"].as_str().unwrap();
    let (_, p3) = c
        .get_json(
            "com.atproto.sync.listBlobs",
            &[("did", &c.did), ("limit", "1"), ("cursor", cur)],
        )
        .await;
    assert_eq!(p3, json!({"cids": []}));

    // `since`: only blobs of records written after the cut.
    let (_, v) = c
        .get_json(
            "com.atproto.sync.listBlobs",
            &[("did", &c.did), ("since", &cut)],
        )
        .await;
    assert_eq!(v["cids"], json!([cid(&b)]));
}

#[tokio::test]
async fn unavailable_repos() {
    let c = Client::new().await;
    let rec = c.create("app.bsky.feed.post", post("hidden")).await;
    let path = uri_path(rec["uri"].as_str().unwrap());
    let (collection, rkey) = path.split_once('/').unwrap();
    let (head, _) = c.latest().await;
    let admin = c.pds.pds.config.secrets.admin_password.expose().clone();
    let did = c.did.clone();
    let calls: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("com.atproto.sync.getRepo", vec![("did", &did)]),
        ("com.atproto.sync.getCheckout", vec![("did", &did)]),
        ("com.atproto.sync.getHead", vec![("did", &did)]),
        ("com.atproto.sync.getLatestCommit", vec![("did", &did)]),
        (
            "com.atproto.sync.getRecord",
            vec![("did", &did), ("collection", collection), ("rkey", rkey)],
        ),
        (
            "com.atproto.sync.getBlocks",
            vec![("did", &did), ("cids", &head)],
        ),
        ("com.atproto.sync.listBlobs", vec![("did", &did)]),
    ];
    let unknown = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";
    for (nsid, query) in &calls {
        let q: Vec<(&str, &str)> = query
            .iter()
            .map(|&(k, v)| (k, if k == "did" { unknown } else { v }))
            .collect();
        let (s, v) = c.get_json(nsid, &q).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{nsid}");
        assert_eq!(v["error"], "RepoNotFound", "{nsid}");
    }

    for (setup, error) in [
        ("deactivated", "RepoDeactivated"),
        ("takendown", "RepoTakendown"),
    ] {
        match setup {
            "deactivated" => c.set_deactivated(true).await,
            _ => {
                c.set_deactivated(false).await;
                c.set_takedown(true).await;
            }
        }
        for (nsid, query) in &calls {
            let (s, v) = c.get_json(nsid, query).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{nsid} {setup}");
            assert_eq!(v["error"], error, "{nsid} {setup}");
            // The account itself and the admin still read it.
            for auth in [Auth::Bearer(&c.token), Auth::Admin(&admin)] {
                let res = c.get_with(nsid, query, Some(auth)).await;
                assert_eq!(res.status(), StatusCode::OK, "{nsid} {setup}");
            }
        }
    }

    // Bad credentials are an error, not anonymity.
    let res = c
        .get_with(calls[0].0, &calls[0].1, Some(Auth::Admin("wrong")))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = c
        .get_with(calls[0].0, &calls[0].1, Some(Auth::Bearer("not.a.jwt")))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "InvalidToken");
}

#[tokio::test]
async fn a_stalled_download_does_not_hold_up_the_account() {
    let c = Client::new().await;
    // Several MB: far more than the socket buffers hold, so the reader below is really stalled.
    for batch in 0..6 {
        c.create_many(40, 20_000, &format!("big{batch}")).await;
    }
    let mut res = c.get("com.atproto.sync.getRepo", &[("did", &c.did)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let first = res.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    // The download is open and unread: the account's writes must go on regardless.
    let write = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        c.create("app.bsky.feed.post", post("during a stalled download")),
    )
    .await;
    assert!(write.is_ok(), "a write waited on a stalled download");
    // The stalled download still completes, with the commit it started at.
    let mut car = first.to_vec();
    while let Some(chunk) = res.chunk().await.unwrap() {
        car.extend_from_slice(&chunk);
    }
    let reader = berth::car::CarReader::new(car.as_slice()).unwrap();
    let root = reader.roots()[0];
    let mut blocks = 0;
    let mut reader = reader;
    while reader.next_block().unwrap().is_some() {
        blocks += 1;
    }
    assert!(blocks > 200, "{blocks} blocks");
    assert_ne!(
        root.to_string(),
        c.get_json("com.atproto.sync.getLatestCommit", &[("did", &c.did)])
            .await
            .1["cid"]
            .as_str()
            .unwrap()
    );

    // And a full read still works and verifies.
    let full = c
        .get_car("com.atproto.sync.getRepo", &[("did", &c.did)])
        .await;
    assert!(full.len() > 4_000_000, "{} bytes", full.len());
    let mut scratch = ActorStore::open_in_memory(&c.did).unwrap();
    let summary = scratch
        .import_car(
            CarReader::new(full.as_slice()).unwrap(),
            Some(&c.key().public_key()),
        )
        .unwrap();
    assert_eq!(summary.records, 241);
}
