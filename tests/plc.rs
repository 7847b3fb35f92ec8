//! did:plc: audit-log fixtures, our genesis/update/recovery ops, the directory over real HTTP.

use berth::crypto::{Curve, Keypair};
use berth::plc::audit::assure_valid_genesis;
use berth::plc::{
    DirectoryState, IndexedOp, LogEntry, PlcClient, PlcError, PlcOperation, PlcTombstone, SignedOp,
    assure_valid_next_op, router, validate_audit_log,
};
use berth::syntax::Handle;
use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

fn fixture_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/plc/audit_log")
        .join(kind)
}

fn read_fixtures(kind: &str) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(fixture_dir(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            (name, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn validate_value(v: &Value) -> Result<berth::plc::AuditOutcome, PlcError> {
    let entries = LogEntry::parse_log(v)?;
    let did = entries
        .first()
        .map(|e| e.did.clone())
        .ok_or_else(|| PlcError::AuditLog("empty".into()))?;
    validate_audit_log(&did, &entries)
}

#[test]
fn valid_audit_logs_replay_exactly() {
    let files = read_fixtures("valid");
    assert_eq!(files.len(), 10);
    for (name, v) in &files {
        let outcome = validate_value(v).unwrap_or_else(|e| panic!("{name}: {e}"));
        let recorded: Vec<bool> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["nullified"].as_bool().unwrap())
            .collect();
        assert_eq!(outcome.nullified, recorded, "{name}");
        // The final state is the newest non-nullified op's, and re-encodes to the recorded CID.
        let entries = LogEntry::parse_log(v).unwrap();
        let last_active = entries.iter().rev().find(|e| !e.nullified).unwrap();
        assert_eq!(outcome.last_cid.to_string(), last_active.cid, "{name}");
        match last_active.operation.state() {
            None => assert!(outcome.data.is_none(), "{name}: tombstoned"),
            Some(st) => {
                let data = outcome.data.as_ref().unwrap();
                assert_eq!(data.did, last_active.did);
                assert_eq!(data.rotation_keys, st.rotation_keys);
                assert_eq!(data.also_known_as, st.also_known_as);
                // JSON round trip of every op is lossless.
                for e in &entries {
                    let again = SignedOp::from_json(&e.operation.to_json()).unwrap();
                    assert_eq!(again, e.operation);
                }
            }
        }
    }
}

#[test]
fn specific_fixture_outcomes() {
    let files: std::collections::HashMap<_, _> = read_fixtures("valid").into_iter().collect();
    let nontrivial = validate_value(&files["log_nullification_nontrivial.json"]).unwrap();
    assert_eq!(
        nontrivial.nullified,
        vec![false, false, true, true, true, true, true, false]
    );
    let tomb = validate_value(&files["log_tombstone.json"]).unwrap();
    assert!(tomb.data.is_none());
    let dholms = validate_value(&files["log_legacy_dholms.json"]).unwrap();
    let data = dholms.data.unwrap();
    assert_eq!(data.did, "did:plc:yk4dd2qkboz2yv6tpubpc6co");
    let doc = data.to_did_document();
    assert_eq!(doc["id"], "did:plc:yk4dd2qkboz2yv6tpubpc6co");
    assert_eq!(doc["service"][0]["id"], "#atproto_pds");
    assert_eq!(doc["verificationMethod"][0]["type"], "Multikey");
    assert_eq!(
        doc["verificationMethod"][0]["id"],
        "did:plc:yk4dd2qkboz2yv6tpubpc6co#atproto"
    );
    assert_eq!(
        doc["@context"],
        json!([
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/multikey/v1",
            "https://w3id.org/security/suites/secp256k1-2019/v1"
        ])
    );
}

#[test]
fn invalid_audit_logs_are_rejected() {
    let files = read_fixtures("invalid");
    assert_eq!(files.len(), 10);
    for (name, v) in &files {
        match validate_value(v) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => eprintln!("{name}: {e}"),
        }
    }
}

#[test]
fn a_tampered_recorded_flag_or_cid_is_caught() {
    let files: std::collections::HashMap<_, _> = read_fixtures("valid").into_iter().collect();
    let mut v = files["log_nullification.json"].clone();
    v[1]["nullified"] = json!(false);
    assert!(matches!(validate_value(&v), Err(PlcError::AuditLog(_))));
    let mut v = files["log_bskyapp.json"].clone();
    v[0]["cid"] = v[1]["cid"].clone();
    assert!(validate_value(&v).is_err());
}

// ---------------------------------------------------------------- our own operations

struct Account {
    rotation: Keypair,
    recovery: Keypair,
    signing: Keypair,
}

fn account() -> Account {
    Account {
        rotation: Keypair::generate(Curve::K256),
        recovery: Keypair::generate(Curve::P256),
        signing: Keypair::generate(Curve::K256),
    }
}

fn handle(s: &str) -> Handle {
    s.parse().unwrap()
}

/// Genesis with rotation keys [recovery, pds rotation], signed by the PDS rotation key.
fn genesis(a: &Account) -> (String, SignedOp) {
    let op = PlcOperation::atproto_genesis(
        vec![
            a.recovery.public_key().to_did_key(),
            a.rotation.public_key().to_did_key(),
        ],
        &a.signing.public_key(),
        &handle("alice.test"),
        "https://pds.example.com",
    )
    .sign(&a.rotation)
    .unwrap();
    (op.did().unwrap(), op)
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-01-01T00:00:00.000Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn push(
    did: &str,
    active: &mut Vec<IndexedOp>,
    op: &SignedOp,
    at: DateTime<Utc>,
) -> Result<Vec<IndexedOp>, PlcError> {
    let next = assure_valid_next_op(did, active, op, at)?;
    let undone = active.split_off(next.nullify_from);
    active.push(IndexedOp {
        op: op.clone(),
        cid: op.cid()?,
        created_at: at,
    });
    Ok(undone)
}

#[test]
fn genesis_op_is_signed_derives_did_and_validates() {
    let a = account();
    let (did, op) = genesis(&a);
    assert!(did.starts_with("did:plc:"));
    assert_eq!(did.len(), 32);
    let parsed: berth::syntax::Did = did.parse().unwrap();
    parsed.check_blessed().unwrap();
    assure_valid_genesis(&did, &op).unwrap();
    // Signed by rotation key index 1 (the PDS key).
    let st = op.state().unwrap();
    assert_eq!(op.verify(&st.rotation_keys).unwrap(), 1);
    assert_eq!(op.sig.len(), 86);
    assert!(!op.sig.contains('='));
    let data = st.to_document_data(&did);
    assert_eq!(data.handle(), Some("alice.test"));
    assert_eq!(data.pds_endpoint(), Some("https://pds.example.com"));
    assert_eq!(
        data.signing_key(),
        Some(a.signing.public_key().to_did_key().as_str())
    );
    // The JSON wire form round-trips to the same CID and DID.
    let again = SignedOp::from_json_slice(op.to_json().to_string().as_bytes()).unwrap();
    assert_eq!(again.cid().unwrap(), op.cid().unwrap());
    assert_eq!(again.did().unwrap(), did);
    op.check_constraints().unwrap();
    // A different DID, or a tampered op, is refused.
    assert!(matches!(
        assure_valid_genesis("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", &op),
        Err(PlcError::GenesisHash { .. })
    ));
    let mut tampered = op.clone();
    if let berth::plc::UnsignedOp::Plc(p) = &mut tampered.op {
        p.also_known_as = vec!["at://mallory.test".into()];
    }
    assert!(matches!(
        assure_valid_genesis(&tampered.did().unwrap(), &tampered),
        Err(PlcError::InvalidSignature(_))
    ));
}

#[test]
fn update_chain_fork_within_72h_nullifies_after_72h_refused_tombstone() {
    let a = account();
    let (did, g) = genesis(&a);
    let mut active = Vec::new();
    push(&did, &mut active, &g, t0()).unwrap();

    // Handle change, then PDS move, each signed by the PDS rotation key.
    let mut u1 = PlcOperation::update_from(&g).unwrap();
    u1.set_handle(&handle("alice2.test"));
    let u1 = u1.sign(&a.rotation).unwrap();
    push(&did, &mut active, &u1, t0() + TimeDelta::hours(1)).unwrap();
    let mut u2 = PlcOperation::update_from(&u1).unwrap();
    u2.set_pds_endpoint("https://other.example.com");
    let u2 = u2.sign(&a.rotation).unwrap();
    push(&did, &mut active, &u2, t0() + TimeDelta::hours(2)).unwrap();
    assert_eq!(active.len(), 3);

    // A key that is not a rotation key can't sign.
    let mut bad = PlcOperation::update_from(&u2).unwrap();
    bad.set_handle(&handle("mallory.test"));
    let bad = bad.sign(&a.signing).unwrap();
    assert!(matches!(
        push(&did, &mut active.clone(), &bad, t0() + TimeDelta::hours(3)),
        Err(PlcError::InvalidSignature(_))
    ));

    // The same-rank key can't fork: only the higher-authority recovery key may.
    let mut fork = PlcOperation::update_from(&u1).unwrap();
    fork.rotation_keys = vec![a.recovery.public_key().to_did_key()];
    let same_rank = fork.clone().sign(&a.rotation).unwrap();
    assert!(matches!(
        push(
            &did,
            &mut active.clone(),
            &same_rank,
            t0() + TimeDelta::hours(3)
        ),
        Err(PlcError::InvalidSignature(_))
    ));
    let recovery = fork.sign(&a.recovery).unwrap();

    // After 72 h from the op it would nullify (u2 at +2h): refused; exactly 72 h: accepted.
    assert!(matches!(
        push(
            &did,
            &mut active.clone(),
            &recovery,
            t0() + TimeDelta::hours(74) + TimeDelta::milliseconds(1)
        ),
        Err(PlcError::LateRecovery { .. })
    ));
    let mut forked = active.clone();
    let undone = push(&did, &mut forked, &recovery, t0() + TimeDelta::hours(74)).unwrap();
    assert_eq!(undone.len(), 1);
    assert_eq!(undone[0].cid, u2.cid().unwrap());
    assert_eq!(forked.len(), 3);

    // An op following the nullified u2 is refused.
    let mut after_nullified = PlcOperation::update_from(&u2).unwrap();
    after_nullified.set_handle(&handle("late.test"));
    let after_nullified = after_nullified.sign(&a.rotation).unwrap();
    assert!(matches!(
        push(
            &did,
            &mut forked.clone(),
            &after_nullified,
            t0() + TimeDelta::hours(75)
        ),
        Err(PlcError::Misordered(_))
    ));

    // Tombstone with the only remaining rotation key; nothing may follow it.
    let tomb = PlcTombstone::new(&recovery.cid().unwrap())
        .sign(&a.recovery)
        .unwrap();
    push(&did, &mut forked, &tomb, t0() + TimeDelta::hours(76)).unwrap();
    assert!(PlcOperation::update_from(&tomb).is_err());
    let mut after_tomb = PlcOperation::update_from(&recovery).unwrap();
    after_tomb.prev = Some(tomb.cid().unwrap().to_string());
    let after_tomb = after_tomb.sign(&a.recovery).unwrap();
    assert!(matches!(
        push(
            &did,
            &mut forked.clone(),
            &after_tomb,
            t0() + TimeDelta::hours(77)
        ),
        Err(PlcError::Misordered(_))
    ));

    // The whole history, as an audit log, replays to the same flags.
    let at =
        |h: i64| (t0() + TimeDelta::hours(h)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let entries: Vec<LogEntry> = [
        (&g, 0, false),
        (&u1, 1, false),
        (&u2, 2, true),
        (&recovery, 74, false),
        (&tomb, 76, false),
    ]
    .into_iter()
    .map(|(op, h, nullified)| LogEntry {
        did: did.clone(),
        operation: op.clone(),
        cid: op.cid().unwrap().to_string(),
        nullified,
        created_at: at(h),
    })
    .collect();
    let outcome = validate_audit_log(&did, &entries).unwrap();
    assert_eq!(outcome.nullified, vec![false, false, true, false, false]);
    assert!(outcome.data.is_none());
}

#[test]
fn strict_signature_encoding() {
    let a = account();
    let (_, op) = genesis(&a);
    let keys = op.state().unwrap().rotation_keys;
    for bad in [
        format!("{}=", op.sig),
        format!("{}\n", op.sig),
        op.sig.replace('_', "/").replace('-', "+"),
        op.sig[..85].to_string(),
    ] {
        if bad == op.sig {
            continue;
        }
        let mut o = op.clone();
        o.sig = bad;
        assert!(matches!(
            o.verify(&keys),
            Err(PlcError::InvalidSignature(_))
        ));
    }
    // Non-zero trailing bits: the last char of 86 carries 4 padding bits.
    let mut o = op.clone();
    let last = o.sig.pop().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.find(last).unwrap();
    o.sig.push(alphabet.as_bytes()[idx | 1] as char);
    if o.sig != op.sig {
        assert!(o.verify(&keys).is_err());
    }
}

#[test]
fn oversize_op_is_rejected() {
    let a = account();
    let mut op = PlcOperation::atproto_genesis(
        vec![a.rotation.public_key().to_did_key()],
        &a.signing.public_key(),
        &handle("alice.test"),
        "https://pds.example.com",
    );
    for i in 0..40 {
        op.also_known_as
            .push(format!("https://{i}.{}", "x".repeat(200)));
    }
    let op = op.sign(&a.rotation).unwrap();
    assert!(matches!(op.check_size(), Err(PlcError::TooLarge(n)) if n > 7500));
    assert!(matches!(op.check_constraints(), Err(PlcError::TooLarge(_))));
}

// ---------------------------------------------------------------- parser robustness

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn op_parser_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = SignedOp::from_json_slice(&bytes);
    }

    #[test]
    fn op_parser_never_panics_on_json(v in arb_json()) {
        if let Ok(op) = SignedOp::from_json(&v) {
            let _ = op.cid();
            let _ = op.did();
            let _ = op.check_constraints();
            if let Some(st) = op.state() {
                let _ = op.verify(&st.rotation_keys);
                let _ = st.to_document_data("did:plc:x").to_did_document();
            }
        }
        let _ = LogEntry::parse_log(&v);
    }

    #[test]
    fn mutated_real_ops_never_panic(field in 0usize..7, s in ".{0,100}") {
        let files = read_fixtures("valid");
        let mut op = files[0].1[0]["operation"].clone();
        let keys = ["type", "rotationKeys", "verificationMethods", "alsoKnownAs", "services", "prev", "sig"];
        op[keys[field]] = json!(s);
        let _ = SignedOp::from_json(&op).map(|o| o.verify(&[]));
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop_oneof![
            Just("plc_operation".to_string()),
            Just("plc_tombstone".to_string()),
            Just("create".to_string()),
            Just("bafyreigcxay6ucqlwowfpu35alyxqtv3c4vsj7gmdtmnidsnqs6nblyarq".to_string()),
            Just("did:key:zQ3shP5TBe1sQfSttXty15FAEHV1DZgcxRZNxvEWnPfLFwLxJ".to_string()),
            ".{0,20}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        let keys = prop_oneof![
            Just("type".to_string()),
            Just("rotationKeys".to_string()),
            Just("verificationMethods".to_string()),
            Just("alsoKnownAs".to_string()),
            Just("services".to_string()),
            Just("prev".to_string()),
            Just("sig".to_string()),
            Just("signingKey".to_string()),
            Just("recoveryKey".to_string()),
            Just("handle".to_string()),
            Just("service".to_string()),
            Just("endpoint".to_string()),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(keys, inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

// ---------------------------------------------------------------- the directory over HTTP

struct Server {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(state: DirectoryState) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(state);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server {
        url: format!("http://{addr}"),
        task,
    }
}

async fn audit_len(client: &PlcClient, did: &str) -> usize {
    client.get_audit_log(did).await.unwrap().len()
}

#[tokio::test]
async fn directory_create_update_read_export_and_reject() {
    let dir = tempfile::tempdir().unwrap();
    let state = DirectoryState::open(&dir.path().join("plc.sqlite")).unwrap();
    let server = start(state).await;
    let client = PlcClient::new(&server.url).unwrap();
    let http = reqwest::Client::new();

    let a = account();
    let (did, g) = genesis(&a);

    // Unknown DID: 404 with the reference wording.
    let err = client.get_document_data(&did).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(
        err.to_string()
            .contains(&format!("DID not registered: {did}"))
    );

    // A genesis posted under the wrong DID is refused.
    let err = client
        .submit("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", &g)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));

    // Non-genesis for an unknown DID is refused.
    let orphan = {
        let mut o = PlcOperation::update_from(&g).unwrap();
        o.set_handle(&handle("orphan.test"));
        o.sign(&a.rotation).unwrap()
    };
    let err = client.submit(&did, &orphan).await.unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");

    client.submit(&did, &g).await.unwrap();
    let data = client.get_document_data(&did).await.unwrap();
    assert_eq!(data.handle(), Some("alice.test"));
    assert_eq!(data.did, did);

    // Update the handle.
    let last = client.get_last_op(&did).await.unwrap();
    assert_eq!(last, g);
    let mut u = PlcOperation::update_from(&last).unwrap();
    u.set_handle(&handle("alice2.test"));
    let u = u.sign(&a.rotation).unwrap();
    client.submit(&did, &u).await.unwrap();
    let data = client.get_document_data(&did).await.unwrap();
    assert_eq!(data.handle(), Some("alice2.test"));
    assert_eq!(client.get_last_op(&did).await.unwrap(), u);
    assert_eq!(
        client.get_log(&did).await.unwrap(),
        vec![g.clone(), u.clone()]
    );

    // The DID document.
    let resp = http
        .get(format!("{}/{did}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/did+ld+json"
    );
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["id"], did.as_str());
    assert_eq!(doc["alsoKnownAs"], json!(["at://alice2.test"]));
    assert_eq!(
        doc["service"][0]["serviceEndpoint"],
        "https://pds.example.com"
    );
    assert_eq!(
        doc["verificationMethod"][0]["publicKeyMultibase"],
        a.signing.public_key().to_multikey()
    );

    // Rejections leave the log unchanged.
    assert_eq!(audit_len(&client, &did).await, 2);
    let mut bad_sig = PlcOperation::update_from(&u).unwrap();
    bad_sig.set_handle(&handle("mallory.test"));
    let bad_sig = bad_sig.sign(&a.signing).unwrap();
    let err = client.submit(&did, &bad_sig).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(err.to_string().contains("invalid signature"), "{err}");

    let mut wrong_prev = PlcOperation::update_from(&u).unwrap();
    wrong_prev.prev = Some(orphan.cid().unwrap().to_string());
    let wrong_prev = wrong_prev.sign(&a.rotation).unwrap();
    let err = client.submit(&did, &wrong_prev).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(err.to_string().contains("not correctly ordered"), "{err}");

    let mut big = PlcOperation::update_from(&u).unwrap();
    for i in 0..40 {
        big.also_known_as
            .push(format!("https://{i}.{}", "x".repeat(200)));
    }
    let big = big.sign(&a.rotation).unwrap();
    let err = client.submit(&did, &big).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(err.to_string().contains("too large"), "{err}");

    let resp = http
        .post(format!("{}/{did}", server.url))
        .header("content-type", "application/json")
        .body("{\"type\":\"plc_operation\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("missing field"));

    // Re-submitting an accepted op is refused too.
    assert_eq!(
        client.submit(&did, &u).await.unwrap_err().status(),
        Some(400)
    );
    assert_eq!(audit_len(&client, &did).await, 2);

    // The stored audit log replays under the same rules.
    let audit = client.get_audit_log(&did).await.unwrap();
    let outcome = validate_audit_log(&did, &audit).unwrap();
    assert_eq!(
        outcome.data.unwrap(),
        client.get_document_data(&did).await.unwrap()
    );

    // A second DID, then export.
    let b = account();
    let (did_b, gb) = genesis(&b);
    client.submit(&did_b, &gb).await.unwrap();
    let all = client.export(0, 1000).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|l| l["type"] == "sequenced_op"));
    let seqs: Vec<i64> = all.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(all[2]["did"], did_b.as_str());
    assert_eq!(all[0]["cid"], g.cid().unwrap().to_string());
    let page = client.export(seqs[0] as u64, 1).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["seq"], seqs[1]);
    assert!(client.export(seqs[2] as u64, 10).await.unwrap().is_empty());
    // Legacy format without `after`.
    let text = http
        .get(format!("{}/export", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let legacy: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(legacy.len(), 3);
    assert_eq!(legacy[0]["nullified"], false);
    let resp = http
        .get(format!("{}/export?count=0", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // Health.
    let health: Value = http
        .get(format!("{}/_health", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(health["version"].is_string());

    // Tombstone: 410 for the document and data, the log stays readable.
    let t = PlcTombstone::new(&u.cid().unwrap())
        .sign(&a.rotation)
        .unwrap();
    client.submit(&did, &t).await.unwrap();
    let err = client.get_document_data(&did).await.unwrap_err();
    assert_eq!(err.status(), Some(410));
    assert!(err.to_string().contains("DID not available"));
    assert_eq!(
        client.get_document(&did).await.unwrap_err().status(),
        Some(410)
    );
    assert!(client.get_last_op(&did).await.unwrap().is_tombstone());
    assert_eq!(client.get_log(&did).await.unwrap().len(), 3);
}

#[tokio::test]
async fn directory_recovery_fork_and_window() {
    let now = Arc::new(Mutex::new(t0()));
    let clock_now = now.clone();
    let state = DirectoryState::in_memory()
        .unwrap()
        .with_clock(Arc::new(move || *clock_now.lock().unwrap()));
    let server = start(state).await;
    let client = PlcClient::new(&server.url).unwrap();
    let set = |h: i64| *now.lock().unwrap() = t0() + TimeDelta::hours(h);

    let a = account();
    let (did, g) = genesis(&a);
    client.submit(&did, &g).await.unwrap();
    set(1);
    let mut hijack = PlcOperation::update_from(&g).unwrap();
    hijack.set_pds_endpoint("https://evil.example.com");
    let hijack = hijack.sign(&a.rotation).unwrap();
    client.submit(&did, &hijack).await.unwrap();

    let mut fix = PlcOperation::update_from(&g).unwrap();
    fix.rotation_keys = vec![a.recovery.public_key().to_did_key()];
    let fix = fix.sign(&a.recovery).unwrap();

    // 72 h + 1 s after the hijack: too late, log unchanged.
    set(73);
    *now.lock().unwrap() += TimeDelta::seconds(1);
    let err = client.submit(&did, &fix).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(err.to_string().contains("72 hr"), "{err}");
    assert_eq!(audit_len(&client, &did).await, 2);

    // Within the window: the hijack is nullified.
    set(50);
    client.submit(&did, &fix).await.unwrap();
    let audit = client.get_audit_log(&did).await.unwrap();
    let flags: Vec<bool> = audit.iter().map(|e| e.nullified).collect();
    assert_eq!(flags, vec![false, true, false]);
    validate_audit_log(&did, &audit).unwrap();
    let data = client.get_document_data(&did).await.unwrap();
    assert_eq!(data.pds_endpoint(), Some("https://pds.example.com"));
    assert_eq!(
        data.rotation_keys,
        vec![a.recovery.public_key().to_did_key()]
    );
    assert_eq!(client.get_log(&did).await.unwrap(), vec![g, fix]);
}

#[tokio::test]
async fn serve_plc_persists_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("plc.sqlite");
    let a = account();
    let (did, g) = genesis(&a);
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let db = db.clone();
        let server = Server {
            url,
            task: tokio::spawn(async move {
                let _ = berth::plc::serve_plc(listener, &db).await;
            }),
        };
        let client = PlcClient::new(&server.url).unwrap();
        client.submit(&did, &g).await.unwrap();
    }
    let server = start(DirectoryState::open(&db).unwrap()).await;
    let client = PlcClient::new(&server.url).unwrap();
    assert_eq!(client.get_last_op(&did).await.unwrap(), g);
}

#[test]
fn plc_migrations_match_files() {
    use berth::store::sqlite::PLC_MIGRATIONS;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/plc");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    files.sort();
    assert_eq!(files.len(), PLC_MIGRATIONS.len());
    for (i, (file, m)) in files.iter().zip(PLC_MIGRATIONS).enumerate() {
        assert_eq!(m.version as usize, i + 1);
        assert_eq!(file, &format!("{:04}_{}.sql", m.version, m.name));
    }
}
