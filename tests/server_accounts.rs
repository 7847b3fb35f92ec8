//! Accounts and sessions over real HTTP: berth's server and its PLC directory on 127.0.0.1,
//! driven with reqwest. The reference-client version of these checks is in tests/interop/.

use reqwest::StatusCode;
use serde_json::{Value, json};

mod common;

use common::{TestPds as Harness, start_pds};

async fn start() -> Harness {
    start_pds(&[]).await
}

impl Harness {
    async fn post(&self, nsid: &str, body: Value, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(format!("{}/xrpc/{nsid}", self.url))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        (res.status(), res.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, nsid: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.http.get(format!("{}/xrpc/{nsid}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        (res.status(), res.json().await.unwrap_or(Value::Null))
    }

    async fn create(&self, handle: &str, email: &str) -> (StatusCode, Value) {
        self.post(
            "com.atproto.server.createAccount",
            json!({"handle": handle, "email": email, "password": "correct horse"}),
            None,
        )
        .await
    }
}

#[tokio::test]
async fn sign_up_log_in_refresh_log_out() {
    let h = start().await;
    let (status, created) = h.create("alice.test", "alice@example.com").await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let did = created["did"].as_str().unwrap().to_string();
    assert!(did.starts_with("did:plc:"));
    assert_eq!(created["handle"], "alice.test");

    // The DID document at the PLC points here, with the handle and a signing key.
    let doc: Value = h
        .http
        .get(format!("{}/{did}", h.plc_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["alsoKnownAs"][0], "at://alice.test");
    assert_eq!(
        doc["service"][0]["serviceEndpoint"],
        h.url.replace("127.0.0.1", "localhost")
    );
    assert!(
        doc["verificationMethod"][0]["publicKeyMultibase"]
            .as_str()
            .unwrap()
            .starts_with("zQ3s")
    );

    // Log in by handle (any case), email and DID.
    for id in [
        "alice.test",
        "ALICE.test",
        "alice@example.com",
        did.as_str(),
    ] {
        let (status, s) = h
            .post(
                "com.atproto.server.createSession",
                json!({"identifier": id, "password": "correct horse"}),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{id}: {s}");
        assert_eq!(s["did"], did.as_str());
    }
    let (_, session) = h
        .post(
            "com.atproto.server.createSession",
            json!({"identifier": "alice.test", "password": "correct horse"}),
            None,
        )
        .await;
    let access = session["accessJwt"].as_str().unwrap();
    let refresh = session["refreshJwt"].as_str().unwrap();
    let (status, me) = h.get("com.atproto.server.getSession", Some(access)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            me["did"].as_str(),
            me["handle"].as_str(),
            me["active"].as_bool()
        ),
        (Some(did.as_str()), Some("alice.test"), Some(true))
    );

    // Tokens are not interchangeable.
    let (status, err) = h.get("com.atproto.server.getSession", Some(refresh)).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidToken"))
    );
    let (status, err) = h
        .post("com.atproto.server.refreshSession", json!({}), Some(access))
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidToken"))
    );
    let (status, err) = h.get("com.atproto.server.getSession", None).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("AuthMissing"))
    );

    // Refresh rotates; the new pair works.
    let (status, next) = h
        .post(
            "com.atproto.server.refreshSession",
            json!({}),
            Some(refresh),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{next}");
    let next_refresh = next["refreshJwt"].as_str().unwrap();
    assert_ne!(next_refresh, refresh);
    assert_eq!(
        h.get("com.atproto.server.getSession", next["accessJwt"].as_str())
            .await
            .0,
        StatusCode::OK
    );

    // Logging out revokes the refresh token.
    assert_eq!(
        h.post(
            "com.atproto.server.deleteSession",
            json!({}),
            Some(next_refresh)
        )
        .await
        .0,
        StatusCode::OK
    );
    let (status, err) = h
        .post(
            "com.atproto.server.refreshSession",
            json!({}),
            Some(next_refresh),
        )
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ExpiredToken"))
    );
}

#[tokio::test]
async fn bad_sign_ups_and_logins_are_refused_with_the_reference_errors() {
    let h = start().await;
    assert_eq!(
        h.create("bob.test", "bob@example.com").await.0,
        StatusCode::OK
    );
    let cases = [
        // Taken, at sign-up: the reference's own check says InvalidRequest (updateHandle says
        // HandleNotAvailable).
        (("bob.test", "other@example.com"), "InvalidRequest"),
        (("BOB.test", "other@example.com"), "InvalidRequest"),
        (("carol.test", "BOB@example.com"), "InvalidRequest"),
        (("admin.test", "x@example.com"), "HandleNotAvailable"),
        (("ab.test", "x@example.com"), "InvalidHandle"),
        (("a.b.test", "x@example.com"), "InvalidHandle"),
        (("carol.example.com", "x@example.com"), "UnsupportedDomain"),
        // Not a handle at all: refused by the input's format, before the service's rules.
        (("carol..test", "x@example.com"), "InvalidRequest"),
        (("carol.test", "not-an-email"), "InvalidRequest"),
    ];
    for ((handle, email), error) in cases {
        let (status, body) = h.create(handle, email).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(error)),
            "{handle} / {email}: {body}"
        );
    }
    let (status, body) = h
        .post(
            "com.atproto.server.createAccount",
            json!({"handle": "dave.test", "email": "d@example.com", "password": "x".repeat(257)}),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidRequest"))
    );
    let (status, body) = h
        .post(
            "com.atproto.server.createAccount",
            json!({"handle": "dave.test", "email": "d@example.com", "password": "pw", "plcOp": {}}),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidRequest"))
    );
    let (status, _) = h
        .post(
            "com.atproto.server.createAccount",
            json!({"handle": 7}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Unknown account and wrong password look the same.
    let (s1, wrong) = h
        .post(
            "com.atproto.server.createSession",
            json!({"identifier": "bob.test", "password": "nope"}),
            None,
        )
        .await;
    let (s2, unknown) = h
        .post(
            "com.atproto.server.createSession",
            json!({"identifier": "nobody.test", "password": "nope"}),
            None,
        )
        .await;
    assert_eq!(
        (s1, s2),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(wrong, unknown);
    let (status, _) = h
        .post(
            "com.atproto.server.createSession",
            json!({"identifier": "bob.test", "password": "x".repeat(100_000)}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A forged token.
    let (status, err) = h
        .get(
            "com.atproto.server.getSession",
            Some("eyJhbGciOiJIUzI1NiJ9.e30.AAAA"),
        )
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidToken"))
    );
}

#[tokio::test]
async fn handles_resolve_and_change() {
    let h = start().await;
    let (_, created) = h.create("erin.test", "erin@example.com").await;
    let did = created["did"].as_str().unwrap().to_string();
    let access = created["accessJwt"].as_str().unwrap().to_string();
    let resolve = |handle: &str| {
        let url = format!(
            "{}/xrpc/com.atproto.identity.resolveHandle?handle={handle}",
            h.url
        );
        let http = h.http.clone();
        async move {
            let res = http.get(url).send().await.unwrap();
            (res.status(), res.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = resolve("ERIN.test").await;
    assert_eq!(
        (status, body["did"].as_str()),
        (StatusCode::OK, Some(did.as_str()))
    );
    let (status, body) = resolve("nobody.test").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("HandleNotFound"))
    );
    let (status, body) = resolve("not a handle").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidRequest"))
    );

    // Change to another service-domain handle: PLC document, lookups and session follow.
    let (status, body) = h
        .post(
            "com.atproto.identity.updateHandle",
            json!({"handle": "erin2.test"}),
            Some(&access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let doc: Value = h
        .http
        .get(format!("{}/{did}", h.plc_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["alsoKnownAs"][0], "at://erin2.test");
    let log: Value = h
        .http
        .get(format!("{}/{did}/log/audit", h.plc_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log.as_array().unwrap().len(), 2);
    assert_eq!(resolve("erin2.test").await.1["did"], did.as_str());
    assert_eq!(resolve("erin.test").await.1["error"], "HandleNotFound");
    assert_eq!(
        h.get("com.atproto.server.getSession", Some(&access))
            .await
            .1["handle"],
        "erin2.test"
    );
    // Setting the same handle again changes nothing at the PLC.
    assert_eq!(
        h.post(
            "com.atproto.identity.updateHandle",
            json!({"handle": "erin2.test"}),
            Some(&access)
        )
        .await
        .0,
        StatusCode::OK
    );
    let log: Value = h
        .http
        .get(format!("{}/{did}/log/audit", h.plc_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log.as_array().unwrap().len(), 2);

    // Someone else's handle, a reserved one, and an unauthenticated call are refused.
    h.create("frank.test", "frank@example.com").await;
    let (status, body) = h
        .post(
            "com.atproto.identity.updateHandle",
            json!({"handle": "frank.test"}),
            Some(&access),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("HandleNotAvailable"))
    );
    let (status, body) = h
        .post(
            "com.atproto.identity.updateHandle",
            json!({"handle": "www.test"}),
            Some(&access),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("HandleNotAvailable"))
    );
    let (status, _) = h
        .post(
            "com.atproto.identity.updateHandle",
            json!({"handle": "erin3.test"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let doc: Value = h
        .http
        .get(format!("{}/{did}", h.plc_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["alsoKnownAs"][0], "at://erin2.test",
        "refused changes left the DID document alone"
    );
}
