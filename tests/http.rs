//! The real router on 127.0.0.1 (ephemeral port), exercised with reqwest: basic and
//! well-known routes, describeServer, XRPC error shapes for every way a request can be wrong,
//! CORS, and graceful shutdown.

use std::time::Duration;

use axum::extract::State;
use berth::config::Config;
use berth::server::{self, AppState, XrpcRoutes};
use berth::syntax::{Did, Handle};
use berth::xrpc::{XrpcError, XrpcJson, XrpcQuery, from_query_str};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const ALICE_DID: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";

struct TestServer {
    url: String,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    async fn start(overrides: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut vars = vec![("PDS_HOSTNAME", "pds.example.com")];
        vars.extend_from_slice(overrides);
        let config = Config::for_testing(dir.path(), &vars).unwrap();
        let state = AppState::new(config).with_local_handles(|h: &Handle| {
            (h.as_str() == "alice.pds.example.com").then(|| ALICE_DID.parse::<Did>().unwrap())
        });
        let app = server::router_with(state, test_methods());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve_router(app, listener, async {
            let _ = rx.await;
        }));
        TestServer {
            url: format!("http://{addr}"),
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.url))
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.url))
    }

    /// Signals shutdown and waits for the server task to finish.
    async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("server did not shut down in time")
            .expect("server task panicked")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[derive(Debug, Deserialize)]
struct EchoParams {
    did: Did,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    reverse: bool,
}

#[derive(Debug, Deserialize)]
struct EchoInput {
    text: String,
}

/// Methods only these tests register, to exercise the extractors.
fn test_methods() -> XrpcRoutes {
    XrpcRoutes::new()
        .query(
            "com.example.test.echoParams",
            |XrpcQuery(p): XrpcQuery<EchoParams>| async move {
                axum::Json(json!({
                    "did": p.did, "limit": p.limit, "tags": p.tags, "reverse": p.reverse,
                }))
            },
        )
        .procedure(
            "com.example.test.echoBody",
            |XrpcJson(b): XrpcJson<EchoInput>| async move { axum::Json(json!({ "text": b.text })) },
        )
        .query(
            "com.example.test.slow",
            |State(_): State<AppState>| async move {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "done"
            },
        )
        .query("com.example.test.fail", || async {
            Err::<(), _>(XrpcError::internal("secret database path /var/db/x"))
        })
}

async fn json_of(resp: reqwest::Response) -> (StatusCode, String, Value) {
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {status} {ct} {text:?}"));
    (status, ct, value)
}

/// Asserts an XRPC error response: status, `error` name, JSON content type, string message.
async fn assert_xrpc_error(resp: reqwest::Response, status: u16, error: &str) -> Value {
    let (got, ct, body) = json_of(resp).await;
    assert_eq!(got.as_u16(), status, "{body}");
    assert!(ct.starts_with("application/json"), "content type {ct}");
    assert_eq!(body["error"], error, "{body}");
    assert!(body["message"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn health_and_robots() {
    let s = TestServer::start(&[("PDS_VERSION", "1.2.3")]).await;
    let (status, ct, body) = json_of(s.get("/xrpc/_health").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("application/json"));
    assert_eq!(body, json!({ "version": "1.2.3" }));

    let resp = s.get("/robots.txt").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(
        resp.text().await.unwrap(),
        "# Hello!\n\n# Crawling the public API is allowed\nUser-agent: *\nAllow: /"
    );

    let resp = s.get("/").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = s
        .client
        .head(format!("{}/xrpc/_health", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Non-XRPC unknown paths are a plain 404.
    let resp = s.get("/nope").send().await.unwrap();
    assert_eq!(resp.status(), 404);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn atproto_did_by_host_header() {
    let s = TestServer::start(&[]).await;
    let did_for = |host: &'static str| {
        s.get("/.well-known/atproto-did")
            .header("host", host)
            .send()
    };

    let resp = did_for("alice.pds.example.com").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(resp.text().await.unwrap(), ALICE_DID);

    // Case and port do not matter.
    let resp = did_for("ALICE.pds.example.com:443").await.unwrap();
    assert_eq!(resp.text().await.unwrap(), ALICE_DID);

    // A local-domain handle with no account, a foreign domain, and junk hosts: 404 text.
    for host in [
        "bob.pds.example.com",
        "alice.elsewhere.com",
        "pds.example.com",
        "[::1]:8080",
        "127.0.0.1",
        "-bad-.pds.example.com",
        "a..b",
    ] {
        let resp = did_for(host).await.unwrap();
        assert_eq!(resp.status(), 404, "host {host}");
        assert_eq!(resp.text().await.unwrap(), "User not found", "host {host}");
    }
    s.stop().await.unwrap();
}

#[tokio::test]
async fn oauth_protected_resource() {
    let s = TestServer::start(&[]).await;
    let resp = s
        .get("/.well-known/oauth-protected-resource")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    let (status, _, body) = json_of(resp).await;
    // With an Origin the CORS layer answers too; the header must still appear once.
    let with_origin = s
        .get("/.well-known/oauth-protected-resource")
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    let acao: Vec<_> = with_origin
        .headers()
        .get_all("access-control-allow-origin")
        .iter()
        .collect();
    assert_eq!(acao, ["*"]);
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "resource": "https://pds.example.com",
            "authorization_servers": ["https://pds.example.com"],
            "bearer_methods_supported": ["header"],
            "scopes_supported": [],
            "resource_documentation": "https://atproto.com",
        })
    );
    s.stop().await.unwrap();
}

#[tokio::test]
async fn describe_server() {
    let s = TestServer::start(&[]).await;
    let (status, _, body) = json_of(
        s.get("/xrpc/com.atproto.server.describeServer")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["did"], "did:web:pds.example.com");
    assert_eq!(body["availableUserDomains"], json!([".pds.example.com"]));
    assert_eq!(body["inviteCodeRequired"], true);
    assert_eq!(body["links"], json!({}));
    assert_eq!(body["contact"], json!({}));
    s.stop().await.unwrap();

    let s = TestServer::start(&[
        ("PDS_SERVICE_HANDLE_DOMAINS", ".a.test,.b.test"),
        ("PDS_INVITE_REQUIRED", "false"),
        ("PDS_SERVICE_DID", "did:web:service.example.com"),
        ("PDS_PRIVACY_POLICY_URL", "https://example.com/privacy"),
        ("PDS_TERMS_OF_SERVICE_URL", "https://example.com/tos"),
        ("PDS_CONTACT_EMAIL_ADDRESS", "ops@example.com"),
    ])
    .await;
    let (_, _, body) = json_of(
        s.get("/xrpc/com.atproto.server.describeServer")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["did"], "did:web:service.example.com");
    assert_eq!(body["availableUserDomains"], json!([".a.test", ".b.test"]));
    assert_eq!(body["inviteCodeRequired"], false);
    assert_eq!(
        body["links"],
        json!({ "privacyPolicy": "https://example.com/privacy", "termsOfService": "https://example.com/tos" })
    );
    assert_eq!(body["contact"], json!({ "email": "ops@example.com" }));

    // Wrong verb on a known query: XRPC 400, not a bare 405.
    let resp = s
        .post("/xrpc/com.atproto.server.describeServer")
        .send()
        .await
        .unwrap();
    let body = assert_xrpc_error(resp, 400, "InvalidRequest").await;
    assert_eq!(body["message"], "Incorrect HTTP method (POST) expected GET");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_and_invalid_methods() {
    let s = TestServer::start(&[]).await;
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let resp = s
            .client
            .request(method, format!("{}/xrpc/com.example.nothing.here", s.url))
            .send()
            .await
            .unwrap();
        assert_xrpc_error(resp, 501, "MethodNotImplemented").await;
    }
    for path in [
        "/xrpc/not-an-nsid",
        "/xrpc/com.example.",
        "/xrpc/%F0%9F%A6%80.example.x",
        "/xrpc/a..b.c",
        "/xrpc/%FF%FE",
    ] {
        let resp = s.get(path).send().await.unwrap();
        assert_xrpc_error(resp, 400, "InvalidRequest").await;
    }
    // Nested or empty paths under /xrpc/ are JSON 404s.
    for path in ["/xrpc/", "/xrpc/com.example.a/extra"] {
        let resp = s.get(path).send().await.unwrap();
        assert_xrpc_error(resp, 404, "NotFound").await;
    }
    // Internal errors never leak their cause.
    let resp = s.get("/xrpc/com.example.test.fail").send().await.unwrap();
    let body = assert_xrpc_error(resp, 500, "InternalServerError").await;
    assert!(!body.to_string().contains("/var/db"), "{body}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn query_params() {
    let s = TestServer::start(&[]).await;
    let url = "/xrpc/com.example.test.echoParams";
    let (status, _, body) = json_of(
        s.get(&format!(
            "{url}?did={ALICE_DID}&limit=5&tags=a&tags=b%20c&reverse=true&unknown=1"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "did": ALICE_DID, "limit": 5, "tags": ["a", "b c"], "reverse": true })
    );

    let cases = [
        ("", "missing required parameter \"did\""),
        ("?did=nope", "\"did\""),
        (&format!("?did={ALICE_DID}&limit=ten")[..], "\"limit\""),
        (&format!("?did={ALICE_DID}&limit=-1")[..], "\"limit\""),
        (&format!("?did={ALICE_DID}&reverse=yes")[..], "\"reverse\""),
        (&format!("?did={ALICE_DID}&did={ALICE_DID}")[..], "\"did\""),
        ("?did=%ZZ", "percent-encoding"),
        ("?did=%+1", "percent-encoding"),
        ("?did=%4", "percent-encoding"),
        ("?did=%FF", "UTF-8"),
    ];
    for (query, needle) in cases {
        let resp = s.get(&format!("{url}{query}")).send().await.unwrap();
        let body = assert_xrpc_error(resp, 400, "InvalidRequest").await;
        let msg = body["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{query}: {msg:?} lacks {needle}");
    }
    s.stop().await.unwrap();
}

#[test]
fn query_string_deserializer() {
    #[derive(Debug, Deserialize, PartialEq)]
    struct P {
        a: Option<String>,
        #[serde(default)]
        n: Vec<u8>,
        f: Option<f64>,
    }
    let p: P = from_query_str("a=x+y&n=1&n=2&f=1.5").unwrap();
    assert_eq!(
        p,
        P {
            a: Some("x y".into()),
            n: vec![1, 2],
            f: Some(1.5)
        }
    );
    let p: P = from_query_str("").unwrap();
    assert_eq!(
        p,
        P {
            a: None,
            n: vec![],
            f: None
        }
    );
    let e = from_query_str::<P>("n=300").unwrap_err().to_string();
    assert!(e.contains("\"n\""), "{e}");
}

#[tokio::test]
async fn json_bodies() {
    let s = TestServer::start(&[]).await;
    let url = "/xrpc/com.example.test.echoBody";

    let (status, _, body) = json_of(
        s.post(url)
            .json(&json!({ "text": "hi" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "text": "hi" }));

    // Text that is not JSON is a SyntaxError; JSON of the wrong shape (an empty body reads as
    // `{}`) is InvalidRequest, as the reference answers.
    let malformed = [
        ("{\"text\": ", "SyntaxError"),
        ("not json", "SyntaxError"),
        ("\u{0}\u{1}", "SyntaxError"),
        ("{\"text\": 5}", "InvalidRequest"),
        ("{}", "InvalidRequest"),
        ("", "InvalidRequest"),
        ("[1, 2]", "InvalidRequest"),
    ];
    for (raw, error) in malformed {
        let resp = s
            .post(url)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_xrpc_error(resp, 400, error).await;
    }

    // Wrong and missing content types.
    let resp = s
        .post(url)
        .header("content-type", "text/plain")
        .body("{\"text\":\"hi\"}")
        .send()
        .await
        .unwrap();
    assert_xrpc_error(resp, 400, "InvalidRequest").await;
    let resp = s.post(url).body("{\"text\":\"hi\"}").send().await.unwrap();
    assert_xrpc_error(resp, 400, "InvalidRequest").await;

    // Wrong verb on a procedure.
    let resp = s.get(url).send().await.unwrap();
    let body = assert_xrpc_error(resp, 400, "InvalidRequest").await;
    assert_eq!(body["message"], "Incorrect HTTP method (GET) expected POST");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn oversize_bodies() {
    let s = TestServer::start(&[("PDS_BLOB_UPLOAD_LIMIT", "1000000")]).await;

    // Over the JSON cap (150 KiB) but under the server-wide cap: the extractor refuses.
    let big_json = format!("{{\"text\":\"{}\"}}", "x".repeat(200 * 1024));
    let resp = s
        .post("/xrpc/com.example.test.echoBody")
        .header("content-type", "application/json")
        .body(big_json.clone())
        .send()
        .await
        .unwrap();
    assert_xrpc_error(resp, 413, "PayloadTooLargeError").await;

    // The same without Content-Length (chunked): refused while streaming.
    let (status, body) =
        raw_chunked_post(&s.url, "/xrpc/com.example.test.echoBody", &big_json).await;
    assert!(status.contains(" 413 "), "{status}");
    assert!(body.contains("\"PayloadTooLargeError\""), "{body}");

    // Over the server-wide cap on any XRPC path: the body-limit layer's 413, as XRPC JSON.
    let huge = vec![b'a'; 1_100_000];
    let resp = s
        .post("/xrpc/com.example.nothing.here")
        .header("content-type", "application/octet-stream")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_xrpc_error(resp, 413, "PayloadTooLarge").await;
    s.stop().await.unwrap();
}

/// POSTs `body` as JSON with `Transfer-Encoding: chunked` over a raw socket (reqwest always
/// knows the length of a buffered body). Returns the status line and the response body.
async fn raw_chunked_post(base: &str, path: &str, body: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.as_bytes().chunks(16 * 1024) {
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(chunk);
        frame.extend_from_slice(b"\r\n");
        // The server may stop reading once it has refused the body.
        if sock.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = sock.write_all(b"0\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.lines().next().unwrap_or("").to_owned();
    (status, text)
}

#[tokio::test]
async fn cors_preflight() {
    let s = TestServer::start(&[]).await;
    let resp = s
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/xrpc/com.atproto.repo.createRecord", s.url),
        )
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,atproto-proxy",
        )
        .send()
        .await
        .unwrap();
    // 204, as the reference's preflight answer.
    assert_eq!(resp.status(), reqwest::StatusCode::NO_CONTENT);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert_eq!(h["access-control-max-age"], "86400");
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{methods}"
    );
    let headers = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for want in ["authorization", "content-type", "atproto-proxy"] {
        assert!(headers.contains(want), "{headers}");
    }

    // Simple requests, including errors, carry the CORS header too.
    let resp = s
        .get("/xrpc/com.example.nothing.here")
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let s = TestServer::start(&[]).await;
    let client = s.client.clone();
    let url = format!("{}/xrpc/com.example.test.slow", s.url);
    let in_flight = tokio::spawn(async move { client.get(url).send().await });
    // Let the request reach the handler before signalling shutdown.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let base = s.url.clone();
    s.stop().await.unwrap();

    let resp = in_flight.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "done");

    // The listener is closed afterwards.
    let after = reqwest::Client::new()
        .get(format!("{base}/xrpc/_health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(after.is_err(), "server still answering after shutdown");
}

#[test]
#[should_panic(expected = "registered twice")]
fn duplicate_method_registration_fails_at_build_time() {
    let _ = XrpcRoutes::new()
        .merge(server::xrpc_methods())
        .query("com.atproto.server.describeServer", || async { "again" });
}

#[test]
fn registered_methods_are_listed() {
    let methods: Vec<_> = server::xrpc_methods()
        .methods()
        .map(|(n, _)| n.to_owned())
        .collect();
    assert!(methods.contains(&"com.atproto.server.describeServer".to_owned()));
}
