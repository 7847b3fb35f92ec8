//! `berth serve` as a child process (for tests and benchmarks that kill it or measure its RSS),
//! on 127.0.0.1 with the variables the interop harness gives it. Shared by `tests/crash.rs`
//! and `benches/firehose.rs` (included there by path).

use std::path::Path;
use std::process::{Command, Stdio};

/// The command for `bin serve` on `port` over the data directory `data`, using the PLC
/// directory at `plc_url`; admin password `admin`. The caller adds variables and spawns it.
pub fn serve_command(bin: &str, data: &Path, port: u16, plc_url: &str) -> Command {
    let mut command = Command::new(bin);
    command
        .args(["serve", "--bind", "127.0.0.1"])
        .env_clear()
        .env("PDS_HOSTNAME", "localhost")
        .env("PDS_PORT", port.to_string())
        .env("PDS_DEV_MODE", "true")
        .env("PDS_DATA_DIRECTORY", data)
        .env("PDS_BLOBSTORE_DISK_LOCATION", data.join("blocks"))
        .env("PDS_JWT_SECRET", "child-process-secret")
        .env("PDS_ADMIN_PASSWORD", "admin")
        .env("PDS_INVITE_REQUIRED", "false")
        .env("PDS_SERVICE_DID", format!("did:web:localhost%3A{port}"))
        // A fixed rotation key: a restarted server must keep signing for the same DIDs.
        .env(
            "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX",
            "9085d2bef69286a6cbb51623c8fa258629945cd55ca705cc4e66700396894e0c",
        )
        .env("PDS_DID_PLC_URL", plc_url)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Waits until the server at `url` answers `/xrpc/_health` (up to 10 s), or panics.
pub async fn wait_healthy(http: &reqwest::Client, url: &str) {
    for _ in 0..200 {
        if http
            .get(format!("{url}/xrpc/_health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("server at {url} did not come up");
}
