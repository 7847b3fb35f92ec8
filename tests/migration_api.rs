//! Account migration between two berth servers sharing one PLC directory, over real HTTP:
//! `getServiceAuth` on the old PDS, `createAccount` with the DID on the new one (and every way
//! its service token can be wrong), `getRecommendedDidCredentials`, `submitPlcOperation` (and
//! the operations it must refuse), and preferences (`app.bsky.actor.*`).

use berth::crypto::{Curve, Keypair};
use berth::plc::{PlcClient, PlcOperation};
use reqwest::StatusCode;
use serde_json::{Value, json};

mod common;

use common::TestPds;

const CREATE_ACCOUNT: &str = "com.atproto.server.createAccount";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn get(
    pds: &TestPds,
    token: &str,
    nsid: &str,
    query: &[(&str, &str)],
) -> (StatusCode, Value) {
    let res = pds
        .http
        .get(format!("{}/xrpc/{nsid}?{}", pds.url, encode_query(query)))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
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

async fn post(pds: &TestPds, token: Option<&str>, nsid: &str, body: Value) -> (StatusCode, Value) {
    let mut req = pds
        .http
        .post(format!("{}/xrpc/{nsid}", pds.url))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

async fn service_did(pds: &TestPds) -> String {
    let res = pds
        .http
        .get(format!(
            "{}/xrpc/com.atproto.server.describeServer",
            pds.url
        ))
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    v["did"].as_str().unwrap().to_string()
}

/// The server's public URL (`http://localhost:<port>` for a test server).
fn public_url(pds: &TestPds) -> String {
    pds.url.replace("127.0.0.1", "localhost")
}

async fn sign_up(pds: &TestPds, handle: &str) -> (String, String) {
    let (s, v) = post(
        pds,
        None,
        CREATE_ACCOUNT,
        json!({"handle": handle, "email": format!("{handle}@example.com"), "password": "hunter22"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    (
        v["did"].as_str().unwrap().to_string(),
        v["accessJwt"].as_str().unwrap().to_string(),
    )
}

/// A `createAccount` on `pds` bringing `did`, with `bearer` as the service token.
async fn migrate_in(
    pds: &TestPds,
    did: &str,
    handle: &str,
    bearer: Option<&str>,
) -> (StatusCode, Value) {
    post(
        pds,
        bearer,
        CREATE_ACCOUNT,
        json!({"handle": handle, "email": format!("{handle}@new.example.com"),
               "password": "hunter23", "did": did}),
    )
    .await
}

async fn service_auth(pds: &TestPds, token: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
    get(pds, token, "com.atproto.server.getServiceAuth", query).await
}

/// The account's repo signing key, from the server's actor directory.
fn account_key(pds: &TestPds, did: &str) -> Keypair {
    berth::store::actor::read_signing_key(pds.pds.actors.dir(), did).unwrap()
}

fn craft(key: &Keypair, iss: &str, aud: &str, lxm: Option<&str>, exp: i64) -> String {
    let mut claims =
        json!({"iss": iss, "aud": aud, "exp": exp, "iat": now(), "jti": "0123456789abcdef"});
    if let Some(m) = lxm {
        claims["lxm"] = json!(m);
    }
    berth::jwt::sign_service(key, &claims).unwrap()
}

async fn hosted(pds: &TestPds, did: &str) -> bool {
    let did: berth::syntax::Did = did.parse().unwrap();
    pds.pds.account(&did).await.is_ok() || pds.pds.actors.exists(&did)
}

struct Pair {
    a: TestPds,
    b: TestPds,
    a_rotation: Keypair,
    b_rotation: Keypair,
    b_did: String,
}

async fn pair() -> Pair {
    let a_rotation = Keypair::generate(Curve::K256);
    let b_rotation = Keypair::generate(Curve::K256);
    let a_hex = a_rotation.to_private_hex();
    let b_hex = b_rotation.to_private_hex();
    let a = common::start_pds_with_plc(
        None,
        &[("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX", &a_hex)],
    )
    .await;
    let b = common::start_pds_with_plc(
        Some(&a.plc_url),
        &[("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX", &b_hex)],
    )
    .await;
    let b_did = service_did(&b).await;
    Pair {
        a,
        b,
        a_rotation,
        b_rotation,
        b_did,
    }
}

#[tokio::test]
async fn get_service_auth_mints_and_enforces_the_reference_rules() {
    let p = pair().await;
    let (did, token) = sign_up(&p.a, "alice.test").await;

    let (s, v) = service_auth(&p.a, &token, &[("aud", &p.b_did), ("lxm", CREATE_ACCOUNT)]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let jwt = v["token"].as_str().unwrap();
    let (header, claims) = berth::jwt::decode_unverified(jwt).unwrap();
    assert_eq!(header.alg, "ES256K");
    assert_eq!(claims["iss"], did.as_str());
    assert_eq!(claims["aud"], p.b_did.as_str());
    assert_eq!(claims["lxm"], CREATE_ACCOUNT);
    let exp = claims["exp"].as_i64().unwrap();
    assert!((now() + 55..=now() + 61).contains(&exp), "{claims}");
    assert_eq!(claims["jti"].as_str().unwrap().len(), 32);
    // Signed with the key the DID document publishes.
    let doc = PlcClient::new(&p.a.plc_url)
        .unwrap()
        .get_document_data(&did)
        .await
        .unwrap();
    let published = berth::crypto::PublicKey::from_did_key(doc.signing_key().unwrap()).unwrap();
    berth::jwt::verify_service::<Value>(jwt, &published).unwrap();

    // An explicit exp is kept.
    let later = (now() + 1800).to_string();
    let (s, v) = service_auth(
        &p.a,
        &token,
        &[("aud", &p.b_did), ("lxm", CREATE_ACCOUNT), ("exp", &later)],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, claims) = berth::jwt::decode_unverified(v["token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["exp"].to_string(), later);

    let refused = |q: Vec<(&'static str, String)>| {
        let (a, token) = (&p.a, token.clone());
        async move {
            let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (s, v) = service_auth(a, &token, &q).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{q:?}: {v}");
            v["error"].as_str().unwrap().to_string()
        }
    };
    let aud = p.b_did.clone();
    let past = (now() - 10).to_string();
    let too_far = (now() + 3700).to_string();
    let methodless_far = (now() + 120).to_string();
    assert_eq!(
        refused(vec![("aud", aud.clone()), ("exp", past)]).await,
        "BadExpiration"
    );
    assert_eq!(
        refused(vec![
            ("aud", aud.clone()),
            ("lxm", CREATE_ACCOUNT.into()),
            ("exp", too_far)
        ])
        .await,
        "BadExpiration"
    );
    assert_eq!(
        refused(vec![("aud", aud.clone()), ("exp", methodless_far)]).await,
        "BadExpiration"
    );
    assert_eq!(
        refused(vec![
            ("aud", aud.clone()),
            ("lxm", "com.atproto.server.getSession".into())
        ])
        .await,
        "InvalidRequest"
    );
    assert_eq!(
        refused(vec![
            ("aud", aud.clone()),
            ("lxm", "com.atproto.identity.signPlcOperation".into())
        ])
        .await,
        "InvalidRequest"
    );
    assert_eq!(
        refused(vec![("aud", "not a did".into())]).await,
        "InvalidRequest"
    );

    // A plain app password can't mint privileged tokens (createAccount, chat), but others.
    let (s, v) = post(
        &p.a,
        Some(&token),
        "com.atproto.server.createAppPassword",
        json!({"name": "app"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = post(
        &p.a,
        None,
        "com.atproto.server.createSession",
        json!({"identifier": "alice.test", "password": v["password"]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let app_token = v["accessJwt"].as_str().unwrap().to_string();
    let (s, v) = service_auth(
        &p.a,
        &app_token,
        &[("aud", &p.b_did), ("lxm", CREATE_ACCOUNT)],
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidRequest")),
        "{v}"
    );
    let (s, v) = service_auth(
        &p.a,
        &app_token,
        &[("aud", &p.b_did), ("lxm", "app.bsky.feed.getFeedSkeleton")],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // No session, no token.
    let res =
        p.a.http
            .get(format!(
                "{}/xrpc/com.atproto.server.getServiceAuth?aud={}",
                p.a.url, p.b_did
            ))
            .send()
            .await
            .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn create_account_with_a_did_needs_a_service_token_from_that_did() {
    let p = pair().await;
    let (did, token) = sign_up(&p.a, "alice.test").await;
    let (bob, bob_token) = sign_up(&p.a, "bob.test").await;
    let key = account_key(&p.a, &did);
    let a_did = service_did(&p.a).await;

    // Every refused attempt leaves nothing behind on B.
    let cases: Vec<(&str, Option<String>, StatusCode, &str)> = vec![
        (
            "no token",
            None,
            StatusCode::UNAUTHORIZED,
            "AuthenticationRequired",
        ),
        (
            "another audience",
            Some(craft(&key, &did, &a_did, Some(CREATE_ACCOUNT), now() + 60)),
            StatusCode::UNAUTHORIZED,
            "BadJwtAudience",
        ),
        (
            "expired",
            Some(craft(&key, &did, &p.b_did, Some(CREATE_ACCOUNT), now() - 5)),
            StatusCode::UNAUTHORIZED,
            "JwtExpired",
        ),
        (
            "another method",
            Some(craft(
                &key,
                &did,
                &p.b_did,
                Some("com.atproto.repo.createRecord"),
                now() + 60,
            )),
            StatusCode::UNAUTHORIZED,
            "BadJwtLexiconMethod",
        ),
        (
            "no method",
            Some(craft(&key, &did, &p.b_did, None, now() + 60)),
            StatusCode::UNAUTHORIZED,
            "BadJwtLexiconMethod",
        ),
        (
            "another key",
            Some(craft(
                &Keypair::generate(Curve::K256),
                &did,
                &p.b_did,
                Some(CREATE_ACCOUNT),
                now() + 60,
            )),
            StatusCode::UNAUTHORIZED,
            "BadJwtSignature",
        ),
        (
            "a session token",
            Some(token.clone()),
            StatusCode::UNAUTHORIZED,
            "BadJwtType",
        ),
        (
            "garbage",
            Some("not.a.jwt".into()),
            StatusCode::UNAUTHORIZED,
            "BadJwt",
        ),
    ];
    for (what, bearer, status, error) in cases {
        let (s, v) = migrate_in(&p.b, &did, "alice.test", bearer.as_deref()).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (status, Some(error)),
            "{what}: {v}"
        );
        assert!(!hosted(&p.b, &did).await, "{what}");
    }
    // Bob's genuine token doesn't let anyone bring Alice's DID.
    let (s, v) = service_auth(
        &p.a,
        &bob_token,
        &[("aud", &p.b_did), ("lxm", CREATE_ACCOUNT)],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = migrate_in(&p.b, &did, "alice.test", v["token"].as_str()).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("AuthenticationRequired")),
        "{v}"
    );
    assert!(!hosted(&p.b, &did).await);
    assert!(!hosted(&p.b, &bob).await);

    // The real thing: A mints, B creates the account deactivated, announcing nothing.
    let seq_before = p.b.pds.sequencer.max_seq().unwrap();
    let (s, v) = service_auth(&p.a, &token, &[("aud", &p.b_did), ("lxm", CREATE_ACCOUNT)]).await;
    assert_eq!(s, StatusCode::OK);
    let service_token = v["token"].as_str().unwrap().to_string();
    let (s, v) = migrate_in(&p.b, &did, "alice.test", Some(&service_token)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["did"], did.as_str());
    assert_eq!(v["handle"], "alice.test");
    assert_eq!(v["didDoc"]["id"], did.as_str());
    let b_token = v["accessJwt"].as_str().unwrap().to_string();
    assert_eq!(p.b.pds.sequencer.max_seq().unwrap(), seq_before);

    let (s, v) = get(&p.b, &b_token, "com.atproto.server.getSession", &[]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["active"].as_bool(), v["status"].as_str()),
        (Some(false), Some("deactivated"))
    );
    let (s, v) = get(&p.b, &b_token, "com.atproto.server.checkAccountStatus", &[]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["activated"], false);
    assert_eq!(v["validDid"], false);
    assert_eq!(v["indexedRecords"], 0);
    // A key of its own here, not A's.
    assert_ne!(
        account_key(&p.b, &did).public_key().to_did_key(),
        key.public_key().to_did_key()
    );
    // Logging in with the new password works.
    let (s, v) = post(
        &p.b,
        None,
        "com.atproto.server.createSession",
        json!({"identifier": did, "password": "hunter23"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // The same DID again: refused, the first account untouched.
    let (_, v) = service_auth(&p.a, &token, &[("aud", &p.b_did), ("lxm", CREATE_ACCOUNT)]).await;
    let (s, v) = migrate_in(&p.b, &did, "alice2.test", v["token"].as_str()).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("AlreadyExists")),
        "{v}"
    );
    let (s, _) = get(&p.b, &b_token, "com.atproto.server.getSession", &[]).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn create_account_with_a_did_uses_a_reserved_key_and_checks_the_handle() {
    let p = pair().await;
    let (did, token) = sign_up(&p.a, "carol.test").await;
    let (_, taken) = sign_up(&p.b, "taken.test").await;
    let _ = taken;
    let (s, v) = post(
        &p.b,
        None,
        "com.atproto.server.reserveSigningKey",
        json!({"did": did}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let reserved = v["signingKey"].as_str().unwrap().to_string();

    let mint = || async {
        let (_, v) =
            service_auth(&p.a, &token, &[("aud", &p.b_did), ("lxm", CREATE_ACCOUNT)]).await;
        v["token"].as_str().unwrap().to_string()
    };
    for (handle, error) in [
        ("taken.test", "InvalidRequest"),
        ("carol.elsewhere.example", "InvalidHandle"),
        ("x.test", "InvalidHandle"),
    ] {
        let (s, v) = migrate_in(&p.b, &did, handle, Some(&mint().await)).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(error)),
            "{handle}: {v}"
        );
        assert!(!hosted(&p.b, &did).await);
    }
    let (s, v) = migrate_in(&p.b, &did, "carol.test", Some(&mint().await)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(account_key(&p.b, &did).public_key().to_did_key(), reserved);
}

#[tokio::test]
async fn submit_plc_operation_moves_the_identity_only_when_it_keeps_us_in_charge() {
    let p = pair().await;
    let (did, token) = sign_up(&p.a, "dave.test").await;
    let (_, v) = service_auth(&p.a, &token, &[("aud", &p.b_did), ("lxm", CREATE_ACCOUNT)]).await;
    let (s, v) = migrate_in(&p.b, &did, "dave.test", v["token"].as_str()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let b_token = v["accessJwt"].as_str().unwrap().to_string();

    let (s, creds) = get(
        &p.b,
        &b_token,
        "com.atproto.identity.getRecommendedDidCredentials",
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{creds}");
    let b_key = account_key(&p.b, &did).public_key().to_did_key();
    let b_rotation = p.b_rotation.public_key().to_did_key();
    assert_eq!(
        creds,
        json!({
            "alsoKnownAs": ["at://dave.test"],
            "verificationMethods": {"atproto": b_key},
            "rotationKeys": [b_rotation],
            "services": {"atproto_pds": {"type": "AtprotoPersonalDataServer", "endpoint": public_url(&p.b)}},
        })
    );

    let plc = PlcClient::new(&p.a.plc_url).unwrap();
    let before = plc.get_document_data(&did).await.unwrap();
    assert_eq!(before.pds_endpoint(), Some(public_url(&p.a).as_str()));
    // What A's signPlcOperation will produce: the recommended fields, signed by A's rotation key.
    let a_rot = p.a_rotation.public_key().to_did_key();
    let a_url = public_url(&p.a);
    let a_key = account_key(&p.a, &did).public_key().to_did_key();
    let points_elsewhere = |op: &mut PlcOperation| op.set_pds_endpoint(&a_url);
    let drops_our_key = |op: &mut PlcOperation| op.rotation_keys = vec![a_rot.clone()];
    let keeps_old_key = |op: &mut PlcOperation| {
        op.verification_methods
            .insert("atproto".into(), a_key.clone());
    };
    let other_handle = |op: &mut PlcOperation| op.also_known_as = vec!["at://someone.test".into()];
    let other_type = |op: &mut PlcOperation| {
        if let Some(s) = op.services.get_mut("atproto_pds") {
            s.kind = "Other".into();
        }
    };
    let bad: [(&str, &OpEdit<'_>, &str); 5] = [
        (
            "points elsewhere",
            &points_elsewhere,
            "Incorrect endpoint on atproto_pds service",
        ),
        (
            "drops B's rotation key",
            &drops_our_key,
            "Rotation keys do not include server's rotation key",
        ),
        (
            "keeps A's signing key",
            &keeps_old_key,
            "Incorrect signing key",
        ),
        (
            "another handle",
            &other_handle,
            "Incorrect handle in alsoKnownAs",
        ),
        (
            "wrong service type",
            &other_type,
            "Incorrect type on atproto_pds service",
        ),
    ];
    for (what, edit, message) in bad {
        let op = build_op(&plc, &did, &creds, edit, p.a_rotation.clone()).await;
        let (s, v) = post(
            &p.b,
            Some(&b_token),
            "com.atproto.identity.submitPlcOperation",
            json!({"operation": op}),
        )
        .await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("InvalidRequest")),
            "{what}: {v}"
        );
        assert_eq!(v["message"], message, "{what}");
        assert_eq!(plc.get_document_data(&did).await.unwrap(), before, "{what}");
    }
    // Well-formed for us but signed by a key that may not sign: the directory refuses it.
    let stranger = Keypair::generate(Curve::K256);
    let op = build_op(&plc, &did, &creds, &|_| {}, stranger).await;
    let (s, v) = post(
        &p.b,
        Some(&b_token),
        "com.atproto.identity.submitPlcOperation",
        json!({"operation": op}),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidRequest")),
        "{v}"
    );
    assert_eq!(plc.get_document_data(&did).await.unwrap(), before);
    let (s, v) = post(
        &p.b,
        Some(&b_token),
        "com.atproto.identity.submitPlcOperation",
        json!({"operation": {"type": "nonsense"}}),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidRequest")),
        "{v}"
    );

    // Before the identity moves, B refuses to activate the account and says why.
    let (s, v) = get(&p.b, &b_token, "com.atproto.server.checkAccountStatus", &[]).await;
    assert_eq!((s, &v["validDid"]), (StatusCode::OK, &json!(false)), "{v}");
    let seq_early = p.b.pds.sequencer.max_seq().unwrap();
    let (s, v) = post(
        &p.b,
        Some(&b_token),
        "com.atproto.server.activateAccount",
        json!({}),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidRequest")),
        "{v}"
    );
    assert_eq!(
        p.b.pds.sequencer.max_seq().unwrap(),
        seq_early,
        "nothing sequenced"
    );
    let (_, v) = get(&p.b, &b_token, "com.atproto.server.checkAccountStatus", &[]).await;
    assert_eq!(v["activated"], json!(false));

    // The genuine operation: PLC now names B, B announces #identity and can activate.
    let seq_before = p.b.pds.sequencer.max_seq().unwrap();
    let op = build_op(&plc, &did, &creds, &|_| {}, p.a_rotation.clone()).await;
    let (s, v) = post(
        &p.b,
        Some(&b_token),
        "com.atproto.identity.submitPlcOperation",
        json!({"operation": op}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let after = plc.get_document_data(&did).await.unwrap();
    assert_eq!(after.pds_endpoint(), Some(public_url(&p.b).as_str()));
    assert_eq!(after.signing_key(), Some(b_key.as_str()));
    assert_eq!(after.rotation_keys, vec![b_rotation.clone()]);
    assert_eq!(p.b.pds.sequencer.max_seq().unwrap(), seq_before + 1);
    let (s, v) = get(&p.b, &b_token, "com.atproto.server.checkAccountStatus", &[]).await;
    assert_eq!((s, &v["validDid"]), (StatusCode::OK, &json!(true)), "{v}");
    let (s, v) = post(
        &p.b,
        Some(&b_token),
        "com.atproto.server.activateAccount",
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // B's cached document was refreshed: a token from B's key now verifies at A.
    let (s, v) = service_auth(
        &p.b,
        &b_token,
        &[("aud", &service_did(&p.a).await), ("lxm", CREATE_ACCOUNT)],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// A change to a PLC operation under construction.
type OpEdit<'a> = dyn Fn(&mut PlcOperation) + 'a;

/// The next operation for `did` carrying `creds` (as `signPlcOperation` builds it), changed by
/// `edit`, signed by `signer`.
async fn build_op(
    plc: &PlcClient,
    did: &str,
    creds: &Value,
    edit: &dyn Fn(&mut PlcOperation),
    signer: Keypair,
) -> Value {
    let last = plc.get_last_op(did).await.unwrap();
    let mut op = PlcOperation::update_from(&last).unwrap();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    op.rotation_keys = strings(&creds["rotationKeys"]);
    op.also_known_as = strings(&creds["alsoKnownAs"]);
    op.verification_methods.insert(
        "atproto".into(),
        creds["verificationMethods"]["atproto"]
            .as_str()
            .unwrap()
            .into(),
    );
    op.set_pds_endpoint(
        creds["services"]["atproto_pds"]["endpoint"]
            .as_str()
            .unwrap(),
    );
    edit(&mut op);
    op.sign(&signer).unwrap().to_json()
}

async fn put_prefs(pds: &TestPds, token: &str, prefs: Value) -> (StatusCode, Value) {
    post(
        pds,
        Some(token),
        "app.bsky.actor.putPreferences",
        json!({"preferences": prefs}),
    )
    .await
}

async fn prefs_of(pds: &TestPds, token: &str) -> Value {
    let (s, v) = get(pds, token, "app.bsky.actor.getPreferences", &[]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["preferences"].clone()
}

#[tokio::test]
async fn preferences_round_trip_and_follow_the_namespace_rules() {
    let p = pair().await;
    let (did, token) = sign_up(&p.a, "erin.test").await;
    let adult = json!({"$type": "app.bsky.actor.defs#adultContentPref", "enabled": true});
    let details = json!({"$type": "app.bsky.actor.defs#personalDetailsPref", "birthDate": "1990-04-01T00:00:00.000Z"});
    let feeds = json!({"$type": "app.bsky.actor.defs#savedFeedsPref", "pinned": [], "saved": []});
    let (s, v) = get(&p.a, &token, "app.bsky.actor.getPreferences", &[]).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"preferences": []})));

    let (s, v) = put_prefs(&p.a, &token, json!([adult, details])).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let age = json!({"$type": "app.bsky.actor.defs#declaredAgePref", "isOverAge13": true, "isOverAge16": true, "isOverAge18": true});
    assert_eq!(prefs_of(&p.a, &token).await, json!([adult, details, age]));

    // Refused puts change nothing.
    for (prefs, message) in [
        (
            json!([adult, {"$type": "com.example.pref"}]),
            "Some preferences are not in the app.bsky namespace",
        ),
        (
            json!([adult, {"enabled": true}]),
            "Preference is missing a $type",
        ),
        (json!(["app.bsky.x"]), "Preference is missing a $type"),
    ] {
        let (s, v) = put_prefs(&p.a, &token, prefs).await;
        assert_eq!(
            (s, v["message"].as_str()),
            (StatusCode::BAD_REQUEST, Some(message)),
            "{v}"
        );
    }
    assert_eq!(prefs_of(&p.a, &token).await, json!([adult, details, age]));

    // App passwords neither see nor touch personal details; their puts keep them.
    let (_, v) = post(
        &p.a,
        Some(&token),
        "com.atproto.server.createAppPassword",
        json!({"name": "app"}),
    )
    .await;
    let (_, v) = post(
        &p.a,
        None,
        "com.atproto.server.createSession",
        json!({"identifier": did, "password": v["password"]}),
    )
    .await;
    let app = v["accessJwt"].as_str().unwrap().to_string();
    assert_eq!(prefs_of(&p.a, &app).await, json!([adult, age]));
    let (s, v) = put_prefs(&p.a, &app, json!([details])).await;
    assert_eq!(
        (s, v["message"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some(
                "Do not have authorization to set preferences: app.bsky.actor.defs#personalDetailsPref"
            )
        )
    );
    let (s, _) = put_prefs(&p.a, &app, json!([feeds, age])).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(prefs_of(&p.a, &token).await, json!([details, feeds, age]));

    // Migration: export from A, import into the (deactivated) account on B.
    let (_, v) = service_auth(&p.a, &token, &[("aud", &p.b_did), ("lxm", CREATE_ACCOUNT)]).await;
    let (s, v) = migrate_in(&p.b, &did, "erin.test", v["token"].as_str()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let b_token = v["accessJwt"].as_str().unwrap().to_string();
    let exported = prefs_of(&p.a, &token).await;
    let (s, v) = put_prefs(&p.b, &b_token, exported.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(prefs_of(&p.b, &b_token).await, exported);
}

#[tokio::test]
async fn a_rotated_signing_key_is_picked_up_by_one_fresh_resolution() {
    let p = pair().await;
    let (did, _) = sign_up(&p.a, "frank.test").await;
    // B resolves (and caches) the document while refusing a mis-signed token.
    let stranger = Keypair::generate(Curve::K256);
    let forged = craft(&stranger, &did, &p.b_did, Some(CREATE_ACCOUNT), now() + 60);
    let (s, v) = migrate_in(&p.b, &did, "frank.test", Some(&forged)).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("BadJwtSignature")),
        "{v}"
    );
    // The identity's atproto key changes at the PLC behind B's cache.
    let plc = PlcClient::new(&p.a.plc_url).unwrap();
    let rotated = Keypair::generate(Curve::K256);
    let mut op = PlcOperation::update_from(&plc.get_last_op(&did).await.unwrap()).unwrap();
    op.set_signing_key(&rotated.public_key());
    plc.submit(&did, &op.sign(&p.a_rotation).unwrap())
        .await
        .unwrap();
    // B still caches the old key; the first check fails with it, the retry finds the new one.
    let token = craft(&rotated, &did, &p.b_did, Some(CREATE_ACCOUNT), now() + 60);
    let (s, v) = migrate_in(&p.b, &did, "frank.test", Some(&token)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}
