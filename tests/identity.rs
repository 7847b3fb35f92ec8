//! Identity: DID documents, DID resolution (PLC, did:web) with the cache, handle resolution (DNS
//! TXT against an embedded hickory-server, HTTPS well-known against a local axum server), and
//! the SSRF guard. Every server listens on 127.0.0.1 with an ephemeral port and stops when its
//! test ends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use berth::crypto::PublicKey;
use berth::identity::{
    DidCache, DidDocument, DidResolver, HandleResolver, IdentityConfig, IdentityError,
};
use berth::syntax::{Did, Handle};
use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::proto::rr::rdata::{SOA, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use serde_json::{Value, json};

const ALICE: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
const BOB: &str = "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb";
/// The spec's example K-256 key, Multikey and legacy encodings of the same point.
const MULTIKEY: &str = "zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF";
const LEGACY_K256: &str =
    "zQYEBzXeuTM9UR3rfvNag6L3RNAs5pQZyYPsomTsgQhsxLdEgCrPTLgFna8yqCnxPpNT7DBk6Ym3dgPKNu86vt9GR";

fn did(s: &str) -> Did {
    s.parse().expect("test DID")
}

fn handle(s: &str) -> Handle {
    s.parse().expect("test handle")
}

/// A document shaped like plc.directory's answer.
fn plc_doc(did: &str, handle: &str) -> Value {
    json!({
        "@context": [
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/multikey/v1",
            "https://w3id.org/security/suites/secp256k1-2019/v1"
        ],
        "id": did,
        "alsoKnownAs": [format!("at://{handle}")],
        "verificationMethod": [{
            "id": format!("{did}#atproto"),
            "type": "Multikey",
            "controller": did,
            "publicKeyMultibase": MULTIKEY
        }],
        "service": [{
            "id": "#atproto_pds",
            "type": "AtprotoPersonalDataServer",
            "serviceEndpoint": "https://pds.example.com"
        }]
    })
}

// ---------------------------------------------------------------------------------------------
// DID documents

#[test]
fn parses_a_plc_document_with_a_multikey() {
    let bytes = serde_json::to_vec(&plc_doc(ALICE, "Alice.Example.com")).expect("json");
    let doc = DidDocument::from_json(ALICE, &bytes).expect("parses");
    doc.check_id(&did(ALICE)).expect("id matches");
    let key = doc.atproto_signing_key().expect("signing key");
    assert_eq!(key, PublicKey::from_multikey(MULTIKEY).expect("key"));
    assert_eq!(doc.pds_endpoint(), Some("https://pds.example.com"));
    assert_eq!(
        doc.handle().map(|h| h.as_str().to_owned()),
        Some("alice.example.com".to_owned()),
        "handle is lowercased"
    );
    // Unknown fields survive a round trip (the cache stores the re-serialized document).
    let again =
        DidDocument::from_json(ALICE, doc.to_json().expect("json").as_bytes()).expect("round trip");
    assert_eq!(again, doc);
    assert!(again.extra.contains_key("@context"));
}

#[test]
fn parses_a_legacy_key_document() {
    let web = "did:web:legacy.example.com";
    let doc = json!({
        "id": web,
        "alsoKnownAs": ["https://not-a-handle.example", "at://not a handle", "at://legacy.example.com"],
        "verificationMethod": [
            {"id": "#other", "type": "Multikey", "controller": web, "publicKeyMultibase": MULTIKEY},
            {"id": "#atproto", "type": "EcdsaSecp256k1VerificationKey2019",
             "controller": web, "publicKeyMultibase": LEGACY_K256}
        ],
        "service": [
            {"id": "#atproto_pds", "type": "SomethingElse", "serviceEndpoint": "https://wrong.example"},
            {"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": "ftp://nope"},
            {"id": format!("{web}#atproto_pds"), "type": "AtprotoPersonalDataServer",
             "serviceEndpoint": "https://pds.legacy.example.com"}
        ],
        "somethingNew": {"x": 1}
    });
    let doc =
        DidDocument::from_json(web, &serde_json::to_vec(&doc).expect("json")).expect("parses");
    let key = doc.atproto_signing_key().expect("legacy key");
    assert_eq!(
        key,
        PublicKey::from_multikey(MULTIKEY).expect("key"),
        "legacy and Multikey encodings are the same key"
    );
    assert_eq!(doc.pds_endpoint(), Some("https://pds.legacy.example.com"));
    assert_eq!(
        doc.handle().map(String::from),
        Some("legacy.example.com".into())
    );
}

#[test]
fn document_helpers_skip_unusable_entries() {
    let doc = json!({
        "id": ALICE,
        "verificationMethod": [
            {"id": "did:plc:someoneelseeeeeeeeeeeeee#atproto", "type": "Multikey", "publicKeyMultibase": MULTIKEY},
            {"id": "#atproto", "type": "Multikey", "controller": BOB, "publicKeyMultibase": MULTIKEY},
            {"id": "#atproto", "type": "Multikey", "controller": ALICE, "publicKeyMultibase": "zNotAKey"},
            {"id": "#atproto", "type": "JsonWebKey2020", "controller": ALICE}
        ]
    });
    let doc =
        DidDocument::from_json(ALICE, &serde_json::to_vec(&doc).expect("json")).expect("parses");
    assert!(doc.atproto_signing_key().is_none());
    assert!(doc.pds_endpoint().is_none());
    assert!(doc.handle().is_none());
    let err = doc.check_id(&did(BOB)).expect_err("wrong DID");
    assert!(matches!(err, IdentityError::IdMismatch { .. }), "{err}");
    assert!(
        DidDocument::from_json(ALICE, b"{\"alsoKnownAs\": []}").is_err(),
        "id is required"
    );
}

// ---------------------------------------------------------------------------------------------
// Embedded DNS

struct DnsServer {
    addr: SocketAddr,
    server: Server<Catalog>,
}

impl DnsServer {
    /// Serves the zone `test.` with the given TXT records (each a list of character-strings).
    async fn start(txt: &[(&str, Vec<&str>)]) -> DnsServer {
        let origin = Name::from_ascii("test.").expect("origin");
        let mut zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        let soa = SOA::new(
            Name::from_ascii("ns.test.").expect("ns"),
            Name::from_ascii("admin.test.").expect("admin"),
            1,
            3600,
            600,
            86400,
            60,
        );
        assert!(zone.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1));
        for (name, strings) in txt {
            let name = Name::from_ascii(format!("{name}.")).expect("record name");
            let data = TXT::new(strings.iter().map(|s| s.to_string()).collect());
            assert!(zone.upsert_mut(Record::from_rdata(name, 60, RData::TXT(data)), 1));
        }
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
        // A free UDP port may be taken for TCP (by another test's listener): try a few.
        let mut pair = None;
        for _ in 0..20 {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("udp");
            let addr = udp.local_addr().expect("addr");
            if let Ok(tcp) = tokio::net::TcpListener::bind(addr).await {
                pair = Some((udp, tcp, addr));
                break;
            }
        }
        let (udp, tcp, addr) = pair.expect("a port free for both UDP and TCP");
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 16);
        DnsServer { addr, server }
    }

    async fn stop(mut self) {
        // Shutdown errors only mean a listener already ended; the test is over either way.
        let _ = self.server.shutdown_gracefully().await;
    }
}

fn dns_config(dns: &DnsServer) -> IdentityConfig {
    IdentityConfig {
        nameservers: vec![dns.addr],
        ..IdentityConfig::dev()
    }
}

#[tokio::test]
async fn dns_txt_resolves_handles() {
    let dns = DnsServer::start(&[
        ("_atproto.alice.test", vec![&format!("did={ALICE}")]),
        // Character-strings of one record are joined.
        (
            "_atproto.chunked.test",
            vec!["did=did:plc:ewvi7nxz", "youn6zhxrhs64oiz"],
        ),
        ("_atproto.two.test", vec![&format!("did={ALICE}")]),
        ("_atproto.two.test", vec![&format!("did={BOB}")]),
        ("_atproto.malformed.test", vec!["did=not a did"]),
        ("_atproto.noise.test", vec!["v=spf1 -all"]),
        ("_atproto.noise.test", vec![&format!("did={BOB}")]),
        ("_atproto.onlynoise.test", vec!["hello"]),
    ])
    .await;
    let resolver = HandleResolver::new(dns_config(&dns)).expect("resolver");

    let found = resolver
        .resolve_dns(&handle("alice.test"))
        .await
        .expect("lookup");
    assert_eq!(found, Some(did(ALICE)));
    // Handles are case-insensitive; the lookup uses the lowercase form.
    let found = resolver
        .resolve_dns(&handle("ALICE.test"))
        .await
        .expect("lookup");
    assert_eq!(found, Some(did(ALICE)));
    let found = resolver
        .resolve_dns(&handle("chunked.test"))
        .await
        .expect("lookup");
    assert_eq!(found, Some(did(ALICE)));
    // Records not starting `did=` are ignored.
    let found = resolver
        .resolve_dns(&handle("noise.test"))
        .await
        .expect("lookup");
    assert_eq!(found, Some(did(BOB)));

    // Missing: no record at all, or none starting `did=`.
    assert_eq!(
        resolver
            .resolve_dns(&handle("missing.test"))
            .await
            .expect("lookup"),
        None
    );
    assert_eq!(
        resolver
            .resolve_dns(&handle("onlynoise.test"))
            .await
            .expect("lookup"),
        None
    );

    // Two `did=` records: ambiguous, so DNS fails (spec), and the combined resolver finds
    // nothing (the HTTPS fallback has no server here; in dev mode that is a connection error).
    let err = resolver
        .resolve_dns(&handle("two.test"))
        .await
        .expect_err("ambiguous");
    assert!(
        matches!(err, IdentityError::AmbiguousDnsRecords { count: 2, .. }),
        "{err}"
    );
    // Malformed DID in the single record.
    let err = resolver
        .resolve_dns(&handle("malformed.test"))
        .await
        .expect_err("malformed");
    assert!(
        matches!(err, IdentityError::InvalidDnsRecord { .. }),
        "{err}"
    );

    let resolver = HandleResolver::new(IdentityConfig {
        // Point the HTTPS method at a closed port so it fails fast.
        host_overrides: closed_port_overrides(&["two.test", "malformed.test", "missing.test"])
            .await,
        ..dns_config(&dns)
    })
    .expect("resolver");
    assert_eq!(
        resolver
            .resolve(&handle("two.test"))
            .await
            .expect("resolve"),
        None
    );
    assert_eq!(
        resolver
            .resolve(&handle("malformed.test"))
            .await
            .expect("resolve"),
        None
    );
    assert_eq!(
        resolver
            .resolve(&handle("missing.test"))
            .await
            .expect("resolve"),
        None
    );

    // Disallowed TLDs are refused before any lookup.
    let err = resolver
        .resolve(&handle("laptop.local"))
        .await
        .expect_err("refused");
    assert!(matches!(err, IdentityError::DisallowedHandle(_)), "{err}");

    dns.stop().await;
}

/// Overrides mapping `hosts` to a loopback port nothing listens on.
async fn closed_port_overrides(hosts: &[&str]) -> HashMap<String, Vec<SocketAddr>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    hosts.iter().map(|h| (h.to_string(), vec![addr])).collect()
}

// ---------------------------------------------------------------------------------------------
// Local HTTP server: fake PLC, did:web host, handle well-known

#[derive(Clone, Default)]
struct Fixture {
    plc_hits: Arc<AtomicUsize>,
    plc_docs: Arc<Mutex<HashMap<String, Value>>>,
    did_json: Arc<Mutex<Option<Value>>>,
    did_json_hits: Arc<AtomicUsize>,
    atproto_did: Arc<Mutex<Option<String>>>,
}

impl Fixture {
    fn set_plc(&self, did: &str, doc: Value) {
        self.plc_docs
            .lock()
            .expect("lock")
            .insert(did.to_owned(), doc);
    }
    fn hits(&self) -> usize {
        self.plc_hits.load(Ordering::SeqCst)
    }
}

async fn plc_get(State(f): State<Fixture>, Path(did): Path<String>) -> Response {
    f.plc_hits.fetch_add(1, Ordering::SeqCst);
    match f.plc_docs.lock().expect("lock").get(&did) {
        Some(doc) => axum::Json(doc.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn did_json(State(f): State<Fixture>) -> Response {
    f.did_json_hits.fetch_add(1, Ordering::SeqCst);
    match f.did_json.lock().expect("lock").clone() {
        Some(doc) => axum::Json(doc).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn atproto_did(State(f): State<Fixture>, headers: axum::http::HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    // `loop.test` redirects to itself forever.
    if host.starts_with("loop.test") {
        return (
            StatusCode::FOUND,
            [(
                header::LOCATION,
                format!("http://{host}/.well-known/atproto-did"),
            )],
        )
            .into_response();
    }
    match f.atproto_did.lock().expect("lock").clone() {
        Some(body) => ([(header::CONTENT_TYPE, "text/plain")], body).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

struct HttpServer {
    addr: SocketAddr,
    fixture: Fixture,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_http() -> HttpServer {
    let fixture = Fixture::default();
    let app = axum::Router::new()
        .route("/.well-known/did.json", get(did_json))
        .route("/.well-known/atproto-did", get(atproto_did))
        .route("/{did}", get(plc_get))
        .with_state(fixture.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        // The server runs until the test aborts it.
        let _ = axum::serve(listener, app).await;
    });
    HttpServer {
        addr,
        fixture,
        task,
    }
}

fn plc_config(http: &HttpServer) -> IdentityConfig {
    IdentityConfig {
        plc_url: format!("http://{}", http.addr),
        ..IdentityConfig::dev()
    }
}

#[tokio::test]
async fn resolves_did_plc_and_checks_the_document() {
    let http = start_http().await;
    http.fixture.set_plc(ALICE, plc_doc(ALICE, "alice.test"));
    // A directory answering with another DID's document must not be believed.
    http.fixture.set_plc(BOB, plc_doc(ALICE, "alice.test"));
    let resolver = DidResolver::new(plc_config(&http), None).expect("resolver");

    let doc = resolver.resolve(&did(ALICE)).await.expect("resolves");
    assert_eq!(doc.id, ALICE);
    assert!(doc.atproto_signing_key().is_some());
    let key = resolver
        .resolve_atproto_key(&did(ALICE), false)
        .await
        .expect("key");
    assert_eq!(key, PublicKey::from_multikey(MULTIKEY).ok());

    let err = resolver.resolve(&did(BOB)).await.expect_err("wrong id");
    assert!(matches!(err, IdentityError::IdMismatch { .. }), "{err}");
    let err = resolver
        .resolve(&did("did:plc:cccccccccccccccccccccccc"))
        .await
        .expect_err("unknown");
    assert!(matches!(err, IdentityError::DidNotFound(_)), "{err}");
    let err = resolver
        .resolve(&did("did:key:zabc"))
        .await
        .expect_err("unsupported");
    assert!(matches!(err, IdentityError::Unsupported { .. }), "{err}");
    let err = resolver
        .resolve(&did("did:plc:tooshort"))
        .await
        .expect_err("bad plc");
    assert!(matches!(err, IdentityError::Syntax(_)), "{err}");
}

#[tokio::test]
async fn oversized_documents_are_refused() {
    let http = start_http().await;
    let mut doc = plc_doc(ALICE, "alice.test");
    doc["padding"] = Value::String("x".repeat(70 * 1024));
    http.fixture.set_plc(ALICE, doc);
    let resolver = DidResolver::new(plc_config(&http), None).expect("resolver");
    let err = resolver.resolve(&did(ALICE)).await.expect_err("too large");
    assert!(
        matches!(err, IdentityError::TooLarge { limit: 65536, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn cache_serves_refreshes_stale_and_refetches_expired() {
    let http = start_http().await;
    let f = &http.fixture;
    f.set_plc(ALICE, plc_doc(ALICE, "one.test"));
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = DidCache::open(&dir.path().join("did_cache.sqlite")).expect("cache");
    let resolver = DidResolver::new(plc_config(&http), Some(cache.clone())).expect("resolver");
    let alice = did(ALICE);
    let handle_of = |d: &DidDocument| d.handle().map(String::from);

    // First resolve fetches; the second is served from the cache.
    assert_eq!(
        handle_of(&resolver.resolve(&alice).await.expect("1")),
        Some("one.test".into())
    );
    assert_eq!(f.hits(), 1);
    assert_eq!(
        handle_of(&resolver.resolve(&alice).await.expect("2")),
        Some("one.test".into())
    );
    assert_eq!(f.hits(), 1, "fresh cache entry: no request");

    // The cache is a file: another resolver over it sees the entry too.
    let reopened = DidCache::open(&dir.path().join("did_cache.sqlite")).expect("reopen");
    let other = DidResolver::new(plc_config(&http), Some(reopened)).expect("resolver");
    other.resolve(&alice).await.expect("from file");
    assert_eq!(f.hits(), 1);

    // Stale (older than 1 h, younger than 24 h): the stale copy is served at once and a
    // background refresh fetches the new one.
    f.set_plc(ALICE, plc_doc(ALICE, "two.test"));
    let cached = cache.get(ALICE).await.expect("get").expect("present");
    let two_hours_ago = cached.updated_at - 2 * 3600 * 1000;
    cache
        .put_at(ALICE, &cached.doc, two_hours_ago)
        .await
        .expect("age");
    let served = resolver.resolve(&alice).await.expect("stale");
    assert_eq!(
        handle_of(&served),
        Some("one.test".into()),
        "stale copy served"
    );
    wait_until(|| f.hits() == 2).await;
    wait_until_async(|| async {
        cache
            .get(ALICE)
            .await
            .ok()
            .flatten()
            .is_some_and(|c| c.updated_at > two_hours_ago)
    })
    .await;
    assert_eq!(
        handle_of(&resolver.resolve(&alice).await.expect("refreshed")),
        Some("two.test".into())
    );
    assert_eq!(f.hits(), 2);

    // Expired (older than 24 h): fetched before answering.
    f.set_plc(ALICE, plc_doc(ALICE, "three.test"));
    let cached = cache.get(ALICE).await.expect("get").expect("present");
    cache
        .put_at(ALICE, &cached.doc, cached.updated_at - 25 * 3600 * 1000)
        .await
        .expect("age");
    let doc = resolver.resolve(&alice).await.expect("expired");
    assert_eq!(handle_of(&doc), Some("three.test".into()));
    assert_eq!(f.hits(), 3);

    // resolve_fresh always goes to the network, and updates the cache.
    f.set_plc(ALICE, plc_doc(ALICE, "four.test"));
    let doc = resolver.resolve_fresh(&alice).await.expect("fresh");
    assert_eq!(handle_of(&doc), Some("four.test".into()));
    assert_eq!(f.hits(), 4);
    assert_eq!(
        handle_of(&resolver.resolve(&alice).await.expect("cached")),
        Some("four.test".into())
    );
    assert_eq!(f.hits(), 4);

    // A DID the directory forgets is dropped from the cache.
    f.plc_docs.lock().expect("lock").remove(ALICE);
    let err = resolver.resolve_fresh(&alice).await.expect_err("gone");
    assert!(matches!(err, IdentityError::DidNotFound(_)), "{err}");
    assert!(cache.get(ALICE).await.expect("get").is_none());
}

#[tokio::test]
async fn configurable_ttls() {
    let http = start_http().await;
    http.fixture.set_plc(ALICE, plc_doc(ALICE, "one.test"));
    let config = IdentityConfig {
        stale_ttl: Duration::ZERO,
        max_ttl: Duration::ZERO,
        ..plc_config(&http)
    };
    let cache = DidCache::in_memory().expect("cache");
    let resolver = DidResolver::new(config, Some(cache)).expect("resolver");
    resolver.resolve(&did(ALICE)).await.expect("1");
    tokio::time::sleep(Duration::from_millis(5)).await;
    resolver.resolve(&did(ALICE)).await.expect("2");
    assert_eq!(http.fixture.hits(), 2, "max TTL 0: every resolve fetches");
}

async fn wait_until(cond: impl Fn() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 2 s");
}

async fn wait_until_async<F, Fut>(cond: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 2 s");
}

#[tokio::test]
async fn did_web_resolves_in_dev_mode_and_is_guarded() {
    let http = start_http().await;
    let port = http.addr.port();
    let web = format!("did:web:localhost%3A{port}");
    *http.fixture.did_json.lock().expect("lock") = Some(plc_doc(&web, "web.test"));

    // Dev mode: http, localhost, port, loopback all allowed.
    let resolver = DidResolver::new(IdentityConfig::dev(), None).expect("resolver");
    let doc = resolver.resolve(&did(&web)).await.expect("resolves");
    assert_eq!(doc.id, web);
    assert_eq!(http.fixture.did_json_hits.load(Ordering::SeqCst), 1);

    // Without the private-address flag, localhost resolves to loopback: refused before any
    // connection is made.
    let guarded = DidResolver::new(
        IdentityConfig {
            allow_private_addresses: false,
            ..IdentityConfig::dev()
        },
        None,
    )
    .expect("resolver");
    let err = guarded.resolve(&did(&web)).await.expect_err("refused");
    assert!(matches!(err, IdentityError::Ssrf(_)), "{err}");
    assert!(err.to_string().contains("loopback"), "{err}");
    assert_eq!(
        http.fixture.did_json_hits.load(Ordering::SeqCst),
        1,
        "no request reached the server"
    );

    // Production: localhost and ports are not did:web hosts at all.
    let prod = DidResolver::new(IdentityConfig::default(), None).expect("resolver");
    let err = prod.resolve(&did(&web)).await.expect_err("refused");
    assert!(matches!(err, IdentityError::Unsupported { .. }), "{err}");
    let err = prod
        .resolve(&did("did:web:blah.arpa"))
        .await
        .expect_err("refused");
    assert!(matches!(err, IdentityError::Unsupported { .. }), "{err}");
    let err = prod
        .resolve(&did("did:web:example.com:path"))
        .await
        .expect_err("path");
    assert!(matches!(err, IdentityError::Syntax(_)), "{err}");

    // A document for another DID is refused.
    *http.fixture.did_json.lock().expect("lock") = Some(plc_doc("did:web:other.test", "web.test"));
    let err = resolver.resolve(&did(&web)).await.expect_err("wrong id");
    assert!(matches!(err, IdentityError::IdMismatch { .. }), "{err}");

    // Oversized did.json.
    let mut big = plc_doc(&web, "web.test");
    big["padding"] = Value::String("x".repeat(2000));
    *http.fixture.did_json.lock().expect("lock") = Some(big);
    let small = DidResolver::new(
        IdentityConfig {
            max_response_bytes: 1000,
            ..IdentityConfig::dev()
        },
        None,
    )
    .expect("resolver");
    let err = small.resolve(&did(&web)).await.expect_err("too large");
    assert!(
        matches!(err, IdentityError::TooLarge { limit: 1000, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn handle_well_known_resolves_in_dev_mode_and_is_guarded() {
    let http = start_http().await;
    *http.fixture.atproto_did.lock().expect("lock") =
        Some(format!("  {ALICE}\nignored second line\n"));
    let overrides: HashMap<String, Vec<SocketAddr>> = [
        ("web.test".to_string(), vec![http.addr]),
        ("loop.test".to_string(), vec![http.addr]),
    ]
    .into();
    let dev = IdentityConfig {
        host_overrides: overrides,
        ..IdentityConfig::dev()
    };
    let resolver = HandleResolver::new(dev.clone()).expect("resolver");
    assert_eq!(
        resolver
            .resolve_http(&handle("web.test"))
            .await
            .expect("http"),
        Some(did(ALICE))
    );

    // Body not a DID → nothing.
    *http.fixture.atproto_did.lock().expect("lock") = Some("hello".into());
    assert_eq!(
        resolver
            .resolve_http(&handle("web.test"))
            .await
            .expect("http"),
        None
    );
    *http.fixture.atproto_did.lock().expect("lock") = Some(ALICE.into());

    // Without the flag, the override's loopback address is refused.
    let guarded = HandleResolver::new(IdentityConfig {
        allow_private_addresses: false,
        ..dev.clone()
    })
    .expect("resolver");
    let err = guarded
        .resolve_http(&handle("web.test"))
        .await
        .expect_err("refused");
    assert!(matches!(err, IdentityError::Ssrf(_)), "{err}");
    assert_eq!(
        guarded.resolve(&handle("web.test")).await.expect("resolve"),
        None
    );

    // Redirects are followed a bounded number of hops.
    let err = resolver
        .resolve_http(&handle("loop.test"))
        .await
        .expect_err("loop");
    assert!(err.to_string().contains("more than 5 redirects"), "{err}");
}

#[tokio::test]
async fn dns_wins_over_https_and_https_is_the_fallback() {
    let http = start_http().await;
    *http.fixture.atproto_did.lock().expect("lock") = Some(BOB.into());
    let dns = DnsServer::start(&[("_atproto.both.test", vec![&format!("did={ALICE}")])]).await;
    let config = IdentityConfig {
        host_overrides: [
            ("both.test".to_string(), vec![http.addr]),
            ("httponly.test".to_string(), vec![http.addr]),
        ]
        .into(),
        ..dns_config(&dns)
    };
    let resolver = HandleResolver::new(config).expect("resolver");
    // Both answer, differently: the DNS answer is taken.
    assert_eq!(
        resolver
            .resolve(&handle("both.test"))
            .await
            .expect("resolve"),
        Some(did(ALICE))
    );
    assert_eq!(
        resolver
            .resolve_http(&handle("both.test"))
            .await
            .expect("http"),
        Some(did(BOB))
    );
    // DNS has nothing: the HTTPS answer is taken.
    assert_eq!(
        resolver
            .resolve(&handle("httponly.test"))
            .await
            .expect("resolve"),
        Some(did(BOB))
    );
    dns.stop().await;
}

#[tokio::test]
async fn check_host_refuses_loopback_unless_allowed() {
    let err = berth::identity::check_host(&IdentityConfig::default(), "localhost")
        .await
        .expect_err("loopback refused");
    assert!(
        matches!(err, berth::identity::SsrfError::Forbidden { .. }),
        "{err}"
    );
    let addrs = berth::identity::check_host(&IdentityConfig::dev(), "localhost")
        .await
        .expect("allowed in dev");
    assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    // Overrides go through the same check.
    let config = IdentityConfig {
        host_overrides: [(
            "evil.test".to_string(),
            vec!["10.0.0.1:443".parse().expect("addr")],
        )]
        .into(),
        ..IdentityConfig::default()
    };
    let err = berth::identity::check_host(&config, "EVIL.test.")
        .await
        .expect_err("private refused");
    assert!(err.to_string().contains("private (10/8)"), "{err}");
}

#[tokio::test]
async fn requests_are_time_bounded() {
    // Accepts connections (the kernel backlog does) but never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let config = IdentityConfig {
        plc_url: format!("http://{}", silent.local_addr().expect("addr")),
        timeout: Duration::from_millis(300),
        ..IdentityConfig::dev()
    };
    let resolver = DidResolver::new(config, None).expect("resolver");
    let started = std::time::Instant::now();
    let err = resolver.resolve(&did(ALICE)).await.expect_err("timeout");
    assert!(matches!(err, IdentityError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(silent);
}

#[tokio::test]
async fn oversized_chunked_responses_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A server that streams an endless chunked body with no Content-Length.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await;
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        if sock.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = format!("400\r\n{}\r\n", " ".repeat(0x400));
        // Stops when the client hangs up.
        while sock.write_all(chunk.as_bytes()).await.is_ok() {}
    });
    let config = IdentityConfig {
        plc_url: format!("http://{addr}"),
        ..IdentityConfig::dev()
    };
    let resolver = DidResolver::new(config, None).expect("resolver");
    let err = resolver.resolve(&did(ALICE)).await.expect_err("too large");
    assert!(matches!(err, IdentityError::TooLarge { .. }), "{err}");
    task.abort();
}
