//! Runs the Node interop suite in `tests/interop/` (reference atproto packages from npm driving
//! the `berth` binary built for this test run). `.ci/run` installs its packages; on a dev
//! machine run `npm ci --prefix tests/interop` once.

use std::path::Path;
use std::process::Command;

#[test]
fn reference_implementations_accept_berth() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    assert!(
        dir.join("node_modules/.bin/node").exists(),
        "tests/interop has no node_modules: run `npm ci --prefix tests/interop` first"
    );
    let out = Command::new("npm")
        .arg("test")
        .current_dir(&dir)
        .env("BERTH_BIN", env!("CARGO_BIN_EXE_berth"))
        .output()
        .expect("npm runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "the Node interop suite failed (output above)"
    );
    // A suite that ran nothing must not pass.
    assert!(
        stdout.contains("# pass ") && !stdout.contains("# pass 0\n"),
        "no interop test ran"
    );
}
