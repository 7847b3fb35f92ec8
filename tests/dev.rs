//! `berth dev`: one command gives a working PDS + PLC on loopback with a demo account that
//! can log in, and a restart keeps the same identity.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The running `berth dev`; killed on drop, so a failing test leaves no process behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `berth dev` and returns it with the printed `key: value` lines.
fn start(
    dir: &std::path::Path,
    port: u16,
    plc_port: u16,
) -> (Running, std::collections::HashMap<String, String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["dev", "--dir"])
        .arg(dir)
        .args([
            "--port",
            &port.to_string(),
            "--plc-port",
            &plc_port.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut printed = std::collections::HashMap::new();
    let stdout = child.stdout.take().unwrap();
    let child = Running(child);
    let mut lines = BufReader::new(stdout).lines();
    while let Some(Ok(line)) = lines.next() {
        if let Some((k, v)) = line.trim().split_once(':') {
            printed.insert(k.trim().to_string(), v.trim().to_string());
        }
        if line.trim_start().starts_with("DID:") {
            break;
        }
    }
    (child, printed)
}

fn stop(mut child: Running) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    let status = child.0.wait().unwrap();
    assert!(
        status.success(),
        "berth dev did not shut down cleanly: {status}"
    );
}

// start() and stop() block on the child process; on the multi-threaded runtime the HTTP
// client keeps its connection task running meanwhile (on a current-thread runtime the first
// request failed with an incomplete message).
#[tokio::test(flavor = "multi_thread")]
async fn dev_setup_serves_a_demo_account_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let (port, plc_port) = (free_port(), free_port());
    let (child, printed) = start(dir.path(), port, plc_port);
    let did = printed
        .get("DID")
        .cloned()
        .expect("berth dev prints the demo DID");
    assert!(did.starts_with("did:plc:"));
    assert_eq!(printed["handle"], "alice.test");

    let http = reqwest::Client::new();
    let login = |password: String| {
        let req = http
            .post(format!(
                "http://127.0.0.1:{port}/xrpc/com.atproto.server.createSession"
            ))
            .json(&serde_json::json!({"identifier": "alice.test", "password": password}));
        async move { req.send().await.unwrap() }
    };
    let res = login(printed["password"].clone()).await;

    assert!(res.status().is_success());
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["did"], did.as_str());
    // The DID lives in berth's own PLC directory.
    let doc: serde_json::Value = http
        .get(format!("http://127.0.0.1:{plc_port}/{did}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["id"], did.as_str());
    stop(child);

    // Same directory, same identity and password.
    let (child, again) = start(dir.path(), port, plc_port);
    assert_eq!(again.get("DID"), Some(&did));
    assert!(
        login(printed["password"].clone())
            .await
            .status()
            .is_success()
    );
    stop(child);
}
