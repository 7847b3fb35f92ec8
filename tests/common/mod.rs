//! A PDS for tests: berth's own PLC directory and `berth serve`'s router, both on 127.0.0.1
//! with ephemeral ports and a temporary data directory; everything stops when the value drops.

#![allow(dead_code)] // each test binary uses a different part

pub mod rclone;

use berth::config::Config;
use berth::server::AppState;

pub struct TestPds {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// `http://localhost:<port>` of the PLC directory (a host name, as the reference wants).
    pub plc_url: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    /// The server's services, for what no XRPC method exposes (blob garbage collection).
    pub pds: std::sync::Arc<berth::pds::Pds>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Starts the pair; `env` adds or overrides `PDS_*` variables (invites are off by default).
pub async fn start_pds(env: &[(&str, &str)]) -> TestPds {
    start_pds_with_plc(None, env).await
}

/// [`start_pds`], but with `shared_plc` (another `TestPds`'s `plc_url`) the PDS uses that PLC
/// directory instead of starting its own, so two servers see the same identities. The PLC
/// stops with the server that started it.
pub async fn start_pds_with_plc(shared_plc: Option<&str>, env: &[(&str, &str)]) -> TestPds {
    let dir = tempfile::tempdir().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (plc_stop_tx, plc_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let plc_url = match shared_plc {
        Some(url) => url.to_string(),
        None => {
            let plc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let plc_url = format!(
                "http://localhost:{}",
                plc_listener.local_addr().unwrap().port()
            );
            let plc = berth::plc::directory::router(
                berth::plc::directory::DirectoryState::in_memory().unwrap(),
            );
            tokio::spawn(async move {
                axum::serve(plc_listener, plc)
                    .with_graceful_shutdown(async {
                        let _ = plc_stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
            plc_url
        }
    };

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let service_did = format!("did:web:localhost%3A{port}");
    let mut vars = vec![
        ("PDS_PORT", port.as_str()),
        ("PDS_HOSTNAME", "localhost"),
        ("PDS_DID_PLC_URL", plc_url.as_str()),
        ("PDS_INVITE_REQUIRED", "false"),
        ("PDS_SERVICE_DID", service_did.as_str()),
    ];
    vars.extend_from_slice(env);
    let config = Config::for_testing(dir.path(), &vars).unwrap();
    let state = AppState::open(config).unwrap();
    let pds = state.pds.clone().unwrap();
    tokio::spawn(async move {
        berth::server::serve_with_shutdown(state, listener, async {
            let _ = stop_rx.await;
            let _ = plc_stop_tx.send(());
        })
        .await
        .unwrap();
    });
    TestPds {
        url: format!("http://127.0.0.1:{port}"),
        plc_url,
        http: reqwest::Client::new(),
        dir,
        pds,
        _stop: stop_tx,
    }
}
