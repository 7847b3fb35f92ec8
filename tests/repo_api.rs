//! `com.atproto.repo.*` over real HTTP: berth's server and its PLC on 127.0.0.1, driven with
//! reqwest. Every refused write is checked to leave the repo's commit exactly as it was.

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
        post_as(&self.pds, &self.token, nsid, body).await
    }

    async fn get(&self, nsid: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
        let res = self
            .pds
            .http
            .get(format!(
                "{}/xrpc/{nsid}?{}",
                self.pds.url,
                encode_query(query)
            ))
            .send()
            .await
            .unwrap();
        (res.status(), res.json().await.unwrap_or(Value::Null))
    }

    /// The repo's current commit (`sync.getLatestCommit`, read from the repo itself).
    async fn root(&self) -> String {
        let (s, v) = self
            .get("com.atproto.sync.getLatestCommit", &[("did", &self.did)])
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["cid"].as_str().unwrap().to_string()
    }

    async fn create_post(&self, text: &str) -> Value {
        let (s, v) = self
            .post(
                "com.atproto.repo.createRecord",
                json!({"repo": self.did, "collection": "app.bsky.feed.post",
                       "record": post(text)}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
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

fn post(text: &str) -> Value {
    json!({"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-11-23T10:00:00.000Z"})
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

async fn post_as(
    pds: &common::TestPds,
    token: &str,
    nsid: &str,
    body: Value,
) -> (StatusCode, Value) {
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

fn rkey_of(uri: &str) -> &str {
    uri.rsplit('/').next().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn create_get_list_put_delete() {
    let c = Client::new().await;
    let created = c.create_post("hello").await;
    let uri = created["uri"].as_str().unwrap();
    assert!(uri.starts_with(&format!("at://{}/app.bsky.feed.post/", c.did)));
    assert_eq!(created["validationStatus"], "valid");
    assert_eq!(created["commit"]["cid"].as_str().unwrap(), c.root().await);
    let rkey = rkey_of(uri).to_string();
    assert!(
        berth::syntax::Tid::is_valid(&rkey),
        "generated rkey is a TID"
    );

    let (s, got) = c
        .get(
            "com.atproto.repo.getRecord",
            &[
                ("repo", &c.did),
                ("collection", "app.bsky.feed.post"),
                ("rkey", &rkey),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["value"]["text"], "hello");
    assert_eq!(got["cid"], created["cid"]);

    // putRecord with the same content: a no-op, no commit.
    let before = c.root().await;
    let (s, v) = c
        .post(
            "com.atproto.repo.putRecord",
            json!({"repo": c.did, "collection": "app.bsky.feed.post", "rkey": rkey, "record": post("hello")}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v.get("commit").is_none(), "{v}");
    assert_eq!(c.root().await, before);

    // putRecord with new content updates; a stale swapRecord is refused.
    let (s, v) = c
        .post(
            "com.atproto.repo.putRecord",
            json!({"repo": c.did, "collection": "app.bsky.feed.post", "rkey": rkey, "record": post("edited"),
                   "swapRecord": created["cid"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let after_edit = c.root().await;
    let (s, v) = c
        .post(
            "com.atproto.repo.putRecord",
            json!({"repo": c.did, "collection": "app.bsky.feed.post", "rkey": rkey, "record": post("again"),
                   "swapRecord": created["cid"]}),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidSwap"))
    );
    assert_eq!(c.root().await, after_edit);

    // listRecords: newest first, cursor pages, reverse.
    for i in 0..4 {
        c.create_post(&format!("p{i}")).await;
    }
    let (_, page1) = c
        .get(
            "com.atproto.repo.listRecords",
            &[
                ("repo", &c.did),
                ("collection", "app.bsky.feed.post"),
                ("limit", "3"),
            ],
        )
        .await;
    let recs = page1["records"].as_array().unwrap();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0]["value"]["text"], "p3");
    let (_, page2) = c
        .get(
            "com.atproto.repo.listRecords",
            &[
                ("repo", &c.did),
                ("collection", "app.bsky.feed.post"),
                ("limit", "3"),
                ("cursor", page1["cursor"].as_str().unwrap()),
            ],
        )
        .await;
    let texts: Vec<&str> = page2["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["p0", "edited"]);
    let (_, rev) = c
        .get(
            "com.atproto.repo.listRecords",
            &[
                ("repo", &c.did),
                ("collection", "app.bsky.feed.post"),
                ("reverse", "true"),
                ("limit", "1"),
            ],
        )
        .await;
    assert_eq!(rev["records"][0]["value"]["text"], "edited");

    // deleteRecord; deleting again is a no-op without a commit.
    let (s, v) = c
        .post(
            "com.atproto.repo.deleteRecord",
            json!({"repo": c.did, "collection": "app.bsky.feed.post", "rkey": rkey}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["commit"]["cid"].is_string());
    let root = c.root().await;
    let (s, v) = c
        .post(
            "com.atproto.repo.deleteRecord",
            json!({"repo": c.did, "collection": "app.bsky.feed.post", "rkey": rkey}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v.get("commit").is_none());
    assert_eq!(c.root().await, root);
    let (s, v) = c
        .get(
            "com.atproto.repo.getRecord",
            &[
                ("repo", &c.did),
                ("collection", "app.bsky.feed.post"),
                ("rkey", &rkey),
            ],
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("RecordNotFound"))
    );

    // describeRepo lists the collections.
    let (s, v) = c
        .get("com.atproto.repo.describeRepo", &[("repo", "alice.test")])
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["did"], c.did.as_str());
    assert_eq!(v["collections"], json!(["app.bsky.feed.post"]));
    assert_eq!(v["handleIsCorrect"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_writes_are_refused_and_change_nothing() {
    let c = Client::new().await;
    c.create_post("first").await;
    let root = c.root().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        // Lexicon: text over 300 graphemes.
        (
            "com.atproto.repo.createRecord",
            json!({"repo": c.did, "collection": "app.bsky.feed.post", "record": post(&"x".repeat(301))}),
            "InvalidRequest",
        ),
        // Missing createdAt.
        (
            "com.atproto.repo.createRecord",
            json!({"repo": c.did, "collection": "app.bsky.feed.post", "record": {"text": "no date"}}),
            "InvalidRequest",
        ),
        // $type that is not the collection.
        (
            "com.atproto.repo.createRecord",
            json!({"repo": c.did, "collection": "app.bsky.feed.post", "record": {"$type": "app.bsky.feed.like", "text": "x"}}),
            "InvalidRequest",
        ),
        // An integer past 2^53 - 1, deep in an unknown record type (the reference can't store
        // it, so berth doesn't take it).
        (
            "com.atproto.repo.createRecord",
            json!({"repo": c.did, "collection": "com.example.thing", "record": {"a": [{"n": 9_007_199_254_740_992_i64}]}}),
            "InvalidRequest",
        ),
        (
            "com.atproto.repo.createRecord",
            json!({"repo": c.did, "collection": "com.example.thing", "record": {"n": -9_007_199_254_740_992_i64}}),
            "InvalidRequest",
        ),
        // validate=true on an unknown type.
        (
            "com.atproto.repo.createRecord",
            json!({"repo": c.did, "collection": "com.example.thing", "validate": true, "record": {"a": 1}}),
            "InvalidRequest",
        ),
        // Bad record key, bad collection.
        (
            "com.atproto.repo.putRecord",
            json!({"repo": c.did, "collection": "app.bsky.feed.post", "rkey": "..", "record": post("x")}),
            "InvalidRequest",
        ),
        (
            "com.atproto.repo.createRecord",
            json!({"repo": c.did, "collection": "not an nsid", "record": {}}),
            "InvalidRequest",
        ),
        // A float is not in the data model.
        (
            "com.atproto.repo.createRecord",
            json!({"repo": c.did, "collection": "com.example.thing", "record": {"n": 1.5}}),
            "InvalidRequest",
        ),
        // Legacy blob refs.
        (
            "com.atproto.repo.createRecord",
            json!({"repo": c.did, "collection": "com.example.thing", "record": {"img": {"cid": "bafkreib", "mimeType": "image/png"}}}),
            "InvalidRequest",
        ),
        // A blob that was never uploaded.
        (
            "com.atproto.repo.createRecord",
            json!({"repo": c.did, "collection": "com.example.thing", "record": {"img": {"$type": "blob",
               "ref": {"$link": "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"}, "mimeType": "image/png", "size": 10}}}),
            "BlobNotFound",
        ),
        // Stale swapCommit.
        (
            "com.atproto.repo.createRecord",
            json!({"repo": c.did, "collection": "app.bsky.feed.post", "record": post("x"),
                "swapCommit": "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"}),
            "InvalidSwap",
        ),
        // applyWrites: an update of a missing record, in a batch whose first op is fine.
        (
            "com.atproto.repo.applyWrites",
            json!({"repo": c.did, "writes": [
             {"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post", "value": post("ok")},
             {"$type": "com.atproto.repo.applyWrites#update", "collection": "app.bsky.feed.post", "rkey": "3kzzzzzzzzzzz", "value": post("x")}]}),
            "InvalidRequest",
        ),
        // Unknown union member.
        (
            "com.atproto.repo.applyWrites",
            json!({"repo": c.did, "writes": [{"$type": "com.atproto.repo.applyWrites#upsert", "collection": "a.b.c", "rkey": "x"}]}),
            "InvalidRequest",
        ),
    ];
    for (nsid, body, error) in cases {
        let (s, v) = c.post(nsid, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} -> {v}");
        assert_eq!(v["error"], error, "{body} -> {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(c.root().await, root, "{body} changed the repo");
    }

    // Over 200 ops.
    let writes: Vec<Value> = (0..201)
        .map(|i| json!({"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post", "rkey": format!("r{i}"), "value": post("x")}))
        .collect();
    let (s, v) = c
        .post(
            "com.atproto.repo.applyWrites",
            json!({"repo": c.did, "writes": writes}),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidRequest"))
    );
    assert!(v["message"].as_str().unwrap().contains("Max: 200"));

    // Over the 1,000,000-byte body limit.
    let big = "y".repeat(1_000_100);
    let (s, v) = c
        .post(
            "com.atproto.repo.createRecord",
            json!({"repo": c.did, "collection": "com.example.thing", "record": {"big": big}}),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("PayloadTooLargeError"))
    );
    // Its connection is closed (the body was not read); the next request, on the same client,
    // gets a fresh one instead of a broken pipe.
    let res = c
        .pds
        .http
        .post(format!("{}/xrpc/com.atproto.repo.createRecord", c.pds.url))
        .bearer_auth(&c.token)
        .json(&json!({"repo": c.did, "collection": "com.example.thing", "record": {"big": big}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        res.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );

    // No token; another account's repo.
    let res = c
        .pds
        .http
        .post(format!("{}/xrpc/com.atproto.repo.createRecord", c.pds.url))
        .json(&json!({"repo": c.did, "collection": "app.bsky.feed.post", "record": post("x")}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (_, bob_token) = sign_up(&c.pds, "bob.test").await;
    let (s, _) = post_as(
        &c.pds,
        &bob_token,
        "com.atproto.repo.createRecord",
        json!({"repo": c.did, "collection": "app.bsky.feed.post", "record": post("x")}),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(c.root().await, root);
}

#[tokio::test(flavor = "multi_thread")]
async fn integers_in_the_safe_range_are_stored() {
    let c = Client::new().await;
    let max = 9_007_199_254_740_991_i64;
    let (s, v) = c
        .post(
            "com.atproto.repo.createRecord",
            json!({"repo": c.did, "collection": "com.example.thing", "rkey": "n",
                   "record": {"max": max, "min": -max}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = c
        .get(
            "com.atproto.repo.getRecord",
            &[
                ("repo", &c.did),
                ("collection", "com.example.thing"),
                ("rkey", "n"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["value"]["max"].as_i64(), v["value"]["min"].as_i64()),
        (Some(max), Some(-max))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_writes_results_keep_input_order_and_validation_status() {
    let c = Client::new().await;
    let (s, v) = c
        .post(
            "com.atproto.repo.applyWrites",
            json!({"repo": c.did, "writes": [
                {"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post", "rkey": "3kaaaaaaaaaa2", "value": post("a")},
                {"$type": "com.atproto.repo.applyWrites#create", "collection": "com.example.thing", "rkey": "k1", "value": {"n": 1}},
                {"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post", "rkey": "3kaaaaaaaaaa3", "value": post("b")},
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 3);
    assert!(
        r[0]["uri"]
            .as_str()
            .unwrap()
            .ends_with("/app.bsky.feed.post/3kaaaaaaaaaa2")
    );
    assert_eq!(r[0]["validationStatus"], "valid");
    assert_eq!(r[1]["validationStatus"], "unknown");
    assert!(r[2]["uri"].as_str().unwrap().ends_with("3kaaaaaaaaaa3"));
    let (s, v) = c
        .post(
            "com.atproto.repo.applyWrites",
            json!({"repo": c.did, "writes": [
                {"$type": "com.atproto.repo.applyWrites#delete", "collection": "app.bsky.feed.post", "rkey": "3kaaaaaaaaaa2"},
                {"$type": "com.atproto.repo.applyWrites#update", "collection": "com.example.thing", "rkey": "k1", "value": {"n": 2}},
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["results"][0]["$type"],
        "com.atproto.repo.applyWrites#deleteResult"
    );
    assert_eq!(
        v["results"][1]["$type"],
        "com.atproto.repo.applyWrites#updateResult"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_follow_of_the_same_subject_replaces_the_first() {
    let c = Client::new().await;
    let follow = |subject: &str| {
        json!({"repo": c.did, "collection": "app.bsky.graph.follow",
        "record": {"subject": subject, "createdAt": "2026-11-23T10:00:00.000Z"}})
    };
    let (_, first) = c
        .post(
            "com.atproto.repo.createRecord",
            follow("did:plc:ewvi7nxzyoun6zhxrhs64oiz"),
        )
        .await;
    let (_, other) = c
        .post(
            "com.atproto.repo.createRecord",
            follow("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"),
        )
        .await;
    let (s, second) = c
        .post(
            "com.atproto.repo.createRecord",
            follow("did:plc:ewvi7nxzyoun6zhxrhs64oiz"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{second}");
    let (_, list) = c
        .get(
            "com.atproto.repo.listRecords",
            &[("repo", &c.did), ("collection", "app.bsky.graph.follow")],
        )
        .await;
    let uris: Vec<&str> = list["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(uris.len(), 2, "{list}");
    assert!(uris.contains(&second["uri"].as_str().unwrap()));
    assert!(uris.contains(&other["uri"].as_str().unwrap()));
    assert!(!uris.contains(&first["uri"].as_str().unwrap()));
    // With validate=false there is no de-duplication, as in the reference.
    let mut body = follow("did:plc:ewvi7nxzyoun6zhxrhs64oiz");
    body["validate"] = json!(false);
    c.post("com.atproto.repo.createRecord", body).await;
    let (_, list) = c
        .get(
            "com.atproto.repo.listRecords",
            &[("repo", &c.did), ("collection", "app.bsky.graph.follow")],
        )
        .await;
    assert_eq!(list["records"].as_array().unwrap().len(), 3);
}

/// Many clients writing one repo at once: every acknowledged write is there, and swap
/// conflicts come back as InvalidSwap rather than lost updates.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_on_one_repo_lose_nothing() {
    let c = std::sync::Arc::new(Client::new().await);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut uris = Vec::new();
            for i in 0..15 {
                uris.push(
                    c.create_post(&format!("w{w} i{i}")).await["uri"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                );
            }
            uris
        }));
    }
    let mut acknowledged = Vec::new();
    for t in tasks {
        acknowledged.extend(t.await.unwrap());
    }
    assert_eq!(acknowledged.len(), 120);
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec![
            ("repo", c.did.clone()),
            ("collection", "app.bsky.feed.post".to_string()),
            ("limit", "100".to_string()),
        ];
        if let Some(cur) = &cursor {
            q.push(("cursor", cur.clone()));
        }
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (_, page) = c.get("com.atproto.repo.listRecords", &q).await;
        let recs = page["records"].as_array().unwrap();
        listed.extend(recs.iter().map(|r| r["uri"].as_str().unwrap().to_string()));
        if recs.len() < 100 {
            break;
        }
        cursor = page["cursor"].as_str().map(String::from);
    }
    acknowledged.sort();
    listed.sort();
    assert_eq!(listed, acknowledged);

    // Eight writers racing on one commit with swapCommit: exactly one wins.
    let head = c.root().await;
    let mut racers = Vec::new();
    for w in 0..8 {
        let (c, head) = (c.clone(), head.clone());
        racers.push(tokio::spawn(async move {
            c.post(
                "com.atproto.repo.createRecord",
                json!({"repo": c.did, "collection": "app.bsky.feed.post", "record": post(&format!("race {w}")), "swapCommit": head}),
            )
            .await
        }));
    }
    let mut won = 0;
    for r in racers {
        let (s, v) = r.await.unwrap();
        match s {
            StatusCode::OK => won += 1,
            _ => assert_eq!(v["error"], "InvalidSwap", "{v}"),
        }
    }
    assert_eq!(won, 1);
}

/// getRecord serves popular records from memory; a write must never leave a stale copy
/// behind. One writer updates a record 40 times while four readers hammer it (filling the
/// cache and racing each write); after every acknowledged write, a read sees that write.
/// Multi-threaded, so small writes take the inline path (`Actors::run_quick`) too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_racing_writes_never_see_an_acknowledged_write_undone() {
    let c = std::sync::Arc::new(Client::new().await);
    let put = |i: usize| {
        let c = c.clone();
        async move {
            let (s, v) = c
                .post(
                    "com.atproto.repo.putRecord",
                    json!({"repo": c.did, "collection": "app.bsky.feed.post", "rkey": "3jzfcijpj2z2a",
                           "record": post(&format!("version {i}"))}),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v["cid"].as_str().unwrap().to_string()
        }
    };
    let read = |c: std::sync::Arc<Client>| async move {
        let q = [
            ("repo", c.did.as_str()),
            ("collection", "app.bsky.feed.post"),
            ("rkey", "3jzfcijpj2z2a"),
        ];
        let (s, v) = c.get("com.atproto.repo.getRecord", &q).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    };
    put(0).await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (c, done) = (c.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                read(c.clone()).await;
                reads += 1;
            }
            reads
        }));
    }
    for i in 1..=40 {
        let cid = put(i).await;
        let v = read(c.clone()).await;
        assert_eq!(
            v["value"]["text"],
            format!("version {i}"),
            "read after write {i}"
        );
        assert_eq!(v["cid"], cid);
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut reads = 0;
    for r in readers {
        reads += r.await.unwrap();
    }
    assert!(reads > 0);
    // A deleted record is gone at once, cached or not.
    let (s, v) = c
        .post(
            "com.atproto.repo.deleteRecord",
            json!({"repo": c.did, "collection": "app.bsky.feed.post", "rkey": "3jzfcijpj2z2a"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let q = [
        ("repo", c.did.as_str()),
        ("collection", "app.bsky.feed.post"),
        ("rkey", "3jzfcijpj2z2a"),
    ];
    let (s, v) = c.get("com.atproto.repo.getRecord", &q).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("RecordNotFound"))
    );
}

/// A CAR of `n` posts for `did`, signed with `key`, built with berth's repo engine in memory.
fn build_car(did: &str, key: &berth::crypto::Keypair, n: usize) -> Vec<u8> {
    use berth::repo::{RecordWrite, Repo};
    use berth::store::actor::ActorStore;
    let mut store = ActorStore::open_in_memory(did).unwrap();
    let (mut repo, genesis) = Repo::create(did.parse().unwrap(), key).unwrap();
    store.apply_commit(&genesis).unwrap();
    for i in 0..n {
        let write = RecordWrite::Create {
            collection: "app.bsky.feed.post".try_into().unwrap(),
            rkey: format!("3kimport{i:05}").as_str().try_into().unwrap(),
            record: berth::data::json::from_json(&post(&format!("imported {i}"))).unwrap(),
        };
        let (next, data) = repo.format_commit(&store, &[write], key).unwrap();
        store.apply_commit(&data).unwrap();
        repo = next;
    }
    store.export_car(Vec::new(), None).unwrap()
}

async fn import(c: &Client, token: &str, car: Vec<u8>) -> (StatusCode, Value) {
    let res = c
        .pds
        .http
        .post(format!("{}/xrpc/com.atproto.repo.importRepo", c.pds.url))
        .bearer_auth(token)
        .header("content-type", "application/vnd.ipld.car")
        .body(car)
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn import_repo_replaces_the_repo_only_with_a_verified_car() {
    let c = Client::new().await;
    c.create_post("before import").await;
    let actors = c.pds.dir.path().join("actors");
    let key = berth::store::actor::read_signing_key(&actors, &c.did).unwrap();

    // Refused: another DID's repo, another key's signature, a truncated CAR, a lying root.
    let root = c.root().await;
    let other_did = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
    let wrong_did = build_car(other_did, &key, 3);
    let wrong_key = build_car(
        &c.did,
        &berth::crypto::Keypair::generate(berth::crypto::Curve::K256),
        3,
    );
    let good = build_car(&c.did, &key, 30);
    let truncated = good[..good.len() - 40].to_vec();
    let mut lying = good.clone();
    // Flip a byte inside the last block: its hash no longer matches its CID.
    let at = lying.len() - 5;
    lying[at] ^= 0x55;
    for (name, car) in [
        ("wrong DID", wrong_did),
        ("wrong key", wrong_key),
        ("truncated", truncated),
        ("tampered", lying),
    ] {
        let (s, v) = import(&c, &c.token, car).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{name}: {v}");
        assert_eq!(v["error"], "InvalidRequest", "{name}: {v}");
        assert_eq!(c.root().await, root, "{name} changed the repo");
    }

    // Accepted: the repo is the CAR's; writes continue on top of it.
    let (s, v) = import(&c, &c.token, good).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_ne!(c.root().await, root);
    let (_, list) = c
        .get(
            "com.atproto.repo.listRecords",
            &[
                ("repo", &c.did),
                ("collection", "app.bsky.feed.post"),
                ("limit", "100"),
            ],
        )
        .await;
    let recs = list["records"].as_array().unwrap();
    assert_eq!(recs.len(), 30);
    assert!(
        recs.iter()
            .all(|r| r["value"]["text"].as_str().unwrap().starts_with("imported"))
    );
    let after = c.create_post("after import").await;
    assert_eq!(after["commit"]["cid"].as_str().unwrap(), c.root().await);

    // App-password sessions may not import.
    let (s, v) = c
        .post(
            "com.atproto.server.createAppPassword",
            json!({"name": "app"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let res = c
        .pds
        .http
        .post(format!(
            "{}/xrpc/com.atproto.server.createSession",
            c.pds.url
        ))
        .json(&json!({"identifier": c.did, "password": v["password"]}))
        .send()
        .await
        .unwrap();
    let app: Value = res.json().await.unwrap();
    let (s, _) = import(
        &c,
        app["accessJwt"].as_str().unwrap(),
        build_car(&c.did, &key, 1),
    )
    .await;
    assert_ne!(s, StatusCode::OK);
}
