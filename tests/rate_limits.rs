//! `PDS_RATE_LIMITS_ENABLED`: the reference's per-IP, per-identifier and per-account limits
//! over real HTTP (berth's server and PLC directory on 127.0.0.1, driven with reqwest).

use reqwest::StatusCode;
use serde_json::{Value, json};

mod common;

use common::{TestPds, start_pds};

const ON: (&str, &str) = ("PDS_RATE_LIMITS_ENABLED", "true");

/// A request to `/xrpc/<nsid>`, optionally as the client `from` (behind our loopback "proxy")
/// and with extra headers.
async fn call(
    h: &TestPds,
    nsid: &str,
    body: Option<Value>,
    from: Option<&str>,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let url = format!("{}/xrpc/{nsid}", h.url);
    let mut req = match body {
        Some(body) => h.http.post(url).json(&body),
        None => h.http.get(url),
    };
    if let Some(ip) = from {
        req = req.header("x-forwarded-for", ip);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

async fn error_of(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, body["error"].as_str().unwrap_or("").to_string())
}

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn bad_login(h: &TestPds, identifier: &str, from: Option<&str>) -> (StatusCode, String) {
    let body = json!({"identifier": identifier, "password": "wrong"});
    error_of(call(h, "com.atproto.server.createSession", Some(body), from, &[]).await).await
}

#[tokio::test]
async fn login_attempts_are_limited_per_identifier_and_client() {
    let h = start_pds(&[ON, ("PDS_RATE_LIMIT_BYPASS_KEY", "let-me-in")]).await;
    for i in 0..30 {
        assert_eq!(
            bad_login(&h, "Alice.test", None).await,
            (StatusCode::UNAUTHORIZED, "AuthenticationRequired".into()),
            "attempt {i}"
        );
    }
    // The 31st in five minutes, under any capitalisation of the identifier.
    let refused = (StatusCode::TOO_MANY_REQUESTS, "RateLimitExceeded".into());
    assert_eq!(bad_login(&h, "alice.test", None).await, refused);
    // Another identifier, or the same one from another client behind a trusted proxy, has
    // its own count.
    let fresh = (StatusCode::UNAUTHORIZED, "AuthenticationRequired".into());
    assert_eq!(bad_login(&h, "bob.test", None).await, fresh);
    assert_eq!(
        bad_login(&h, "alice.test", Some("198.51.100.7")).await,
        fresh
    );
    // The bypass key lifts every limit; a wrong key does not.
    let with_key = |key: &'static str| {
        let body = json!({"identifier": "alice.test", "password": "wrong"});
        let h = &h;
        async move {
            error_of(
                call(
                    h,
                    "com.atproto.server.createSession",
                    Some(body),
                    None,
                    &[("x-ratelimit-bypass", key)],
                )
                .await,
            )
            .await
        }
    };
    assert_eq!(with_key("let-me-in").await, fresh);
    assert_eq!(with_key("let-me-in!").await, refused);
}

#[tokio::test]
async fn limits_are_off_unless_enabled() {
    let h = start_pds(&[]).await;
    for _ in 0..40 {
        assert_eq!(
            bad_login(&h, "alice.test", None).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let res = call(&h, "com.atproto.server.describeServer", None, None, &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "ratelimit-limit"), None);
}

#[tokio::test]
async fn every_call_counts_against_the_clients_global_limit() {
    let h = start_pds(&[ON, ("PDS_RATE_LIMIT_BYPASS_IPS", "198.51.100.99/32")]).await;
    let describe =
        |from: Option<&'static str>| call(&h, "com.atproto.server.describeServer", None, from, &[]);
    let first = describe(Some("198.51.100.1")).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "ratelimit-limit").as_deref(), Some("3000"));
    assert_eq!(
        header(&first, "ratelimit-remaining").as_deref(),
        Some("2999")
    );
    assert_eq!(
        header(&first, "ratelimit-policy").as_deref(),
        Some("3000;w=300")
    );
    let reset: u64 = header(&first, "ratelimit-reset").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((now + 290..=now + 301).contains(&reset), "{reset} vs {now}");
    for _ in 1..3000 {
        assert_eq!(
            describe(Some("198.51.100.1")).await.status(),
            StatusCode::OK
        );
    }
    let refused = describe(Some("198.51.100.1")).await;
    assert_eq!(
        header(&refused, "ratelimit-remaining").as_deref(),
        Some("0")
    );
    assert_eq!(
        error_of(refused).await,
        (StatusCode::TOO_MANY_REQUESTS, "RateLimitExceeded".into())
    );
    // Any method counts: this client is refused everywhere, before its body is read.
    let (status, error) = bad_login(&h, "alice.test", Some("198.51.100.1")).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "RateLimitExceeded")
    );
    // Other clients, and a bypass IP (listed with a CIDR suffix), are not.
    assert_eq!(
        describe(Some("198.51.100.2")).await.status(),
        StatusCode::OK
    );
    let bypassed = describe(Some("198.51.100.99")).await;
    assert_eq!(bypassed.status(), StatusCode::OK);
    assert_eq!(header(&bypassed, "ratelimit-limit"), None);
    // The health check is not an XRPC method and is never limited.
    let health = h
        .http
        .get(format!("{}/xrpc/_health", h.url))
        .header("x-forwarded-for", "198.51.100.1")
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_methods_own_ip_limit_applies_on_top_of_the_global_one() {
    let h = start_pds(&[ON]).await;
    // deleteAccount: 50 per 5 minutes per IP, counted even when the call fails.
    let delete = || {
        let body = json!({"did": "did:plc:nobody", "password": "x", "token": "y"});
        call(
            &h,
            "com.atproto.server.deleteAccount",
            Some(body),
            Some("198.51.100.3"),
            &[],
        )
    };
    for i in 0..50 {
        let res = delete().await;
        // The tightest limit is the method's own.
        assert_eq!(
            header(&res, "ratelimit-limit").as_deref(),
            Some("50"),
            "call {i}"
        );
        assert_ne!(res.status(), StatusCode::TOO_MANY_REQUESTS, "call {i}");
    }
    assert_eq!(error_of(delete().await).await.1, "RateLimitExceeded");
    // The same client may still call other methods. Its 50 calls count globally; the refused
    // one charged nothing: 3,000 - 50 - this one.
    let other = call(
        &h,
        "com.atproto.server.describeServer",
        None,
        Some("198.51.100.3"),
        &[],
    )
    .await;
    assert_eq!(other.status(), StatusCode::OK);
    assert_eq!(
        header(&other, "ratelimit-remaining").as_deref(),
        Some("2949")
    );
}

#[tokio::test]
async fn handle_changes_are_limited_per_account() {
    let h = start_pds(&[ON]).await;
    let create = |handle: &'static str, email: &'static str| {
        let body = json!({"handle": handle, "email": email, "password": "correct horse"});
        call(
            &h,
            "com.atproto.server.createAccount",
            Some(body),
            None,
            &[],
        )
    };
    let alice: Value = create("alice.test", "alice@example.com")
        .await
        .json()
        .await
        .unwrap();
    let bob: Value = create("bob.test", "bob@example.com")
        .await
        .json()
        .await
        .unwrap();
    let update = |token: &Value, handle: &str| {
        let url = format!("{}/xrpc/com.atproto.identity.updateHandle", h.url);
        h.http
            .post(url)
            .bearer_auth(token.as_str().unwrap())
            .json(&json!({ "handle": handle }))
            .send()
    };
    for i in 0..10 {
        let handle = if i % 2 == 0 {
            "alice2.test"
        } else {
            "alice.test"
        };
        let res = update(&alice["accessJwt"], handle).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "change {i}");
    }
    let res = update(&alice["accessJwt"], "alice3.test").await.unwrap();
    assert_eq!(error_of(res).await.1, "RateLimitExceeded");
    // Another account (same client IP) has its own count.
    let res = update(&bob["accessJwt"], "bob2.test").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn repo_writes_spend_the_accounts_points_unless_bypassed() {
    let h = start_pds(&[ON, ("PDS_RATE_LIMIT_BYPASS_KEY", "let-me-in")]).await;
    let body =
        json!({"handle": "carol.test", "email": "carol@example.com", "password": "correct horse"});
    let carol: Value = call(
        &h,
        "com.atproto.server.createAccount",
        Some(body),
        None,
        &[],
    )
    .await
    .json()
    .await
    .unwrap();
    let did = carol["did"].as_str().unwrap();
    let token = carol["accessJwt"].as_str().unwrap();
    // 200 creates cost 600 points; the hourly bucket holds 5,000.
    let batch = |n: usize| {
        let writes: Vec<Value> = (0..200)
            .map(|i| {
                json!({
                    "$type": "com.atproto.repo.applyWrites#create",
                    "collection": "app.bsky.feed.post",
                    "value": {"$type": "app.bsky.feed.post", "text": format!("{n}/{i}"),
                              "createdAt": "2026-11-23T12:00:00.000Z"}
                })
            })
            .collect();
        json!({"repo": did, "writes": writes})
    };
    let apply = |n: usize, key: Option<&'static str>| {
        let mut req = h
            .http
            .post(format!("{}/xrpc/com.atproto.repo.applyWrites", h.url))
            .bearer_auth(token)
            .json(&batch(n));
        if let Some(key) = key {
            req = req.header("x-ratelimit-bypass", key);
        }
        req.send()
    };
    for n in 0..8 {
        let res = apply(n, None).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "batch {n}");
    }
    let head = |h: &TestPds| {
        let url = format!("{}/xrpc/com.atproto.sync.getLatestCommit?did={did}", h.url);
        let http = h.http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let before = head(&h).await;
    // 4,800 spent: the ninth batch would pass 5,000 and is refused whole.
    let res = apply(8, None).await.unwrap();
    assert_eq!(error_of(res).await.1, "RateLimitExceeded");
    assert_eq!(head(&h).await, before);
    // With the bypass key it goes through, and charges nothing.
    let res = apply(8, Some("let-me-in")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_ne!(head(&h).await, before);
}

#[tokio::test]
async fn login_headers_describe_the_per_identifier_limit() {
    let h = start_pds(&[ON]).await;
    let login = || {
        let body = json!({"identifier": "nobody.test", "password": "wrong"});
        call(
            &h,
            "com.atproto.server.createSession",
            Some(body),
            Some("198.51.100.9"),
            &[],
        )
    };
    // 30 per 5 minutes per identifier and IP: tighter than the global 3,000, so the headers
    // describe it, as the reference's do.
    for i in 0..30u32 {
        let res = login().await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "login {i}");
        assert_eq!(header(&res, "ratelimit-limit").as_deref(), Some("30"));
        assert_eq!(
            header(&res, "ratelimit-remaining"),
            Some((29 - i).to_string())
        );
        assert_eq!(
            header(&res, "ratelimit-policy").as_deref(),
            Some("30;w=300")
        );
    }
    let refused = login().await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "ratelimit-limit").as_deref(), Some("30"));
    assert_eq!(
        header(&refused, "ratelimit-remaining").as_deref(),
        Some("0")
    );
    assert_eq!(error_of(refused).await.1, "RateLimitExceeded");
}
