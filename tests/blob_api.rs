//! Blobs over real HTTP: `uploadBlob`, records referencing blobs, `sync.getBlob`,
//! `listMissingBlobs`, and blob garbage collection (alone and racing writers), on the disk
//! store and once on S3 (`rclone serve s3`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

struct Client {
    pds: common::TestPds,
    did: String,
    token: String,
}

impl Client {
    async fn new(env: &[(&str, &str)]) -> Client {
        let pds = common::start_pds(env).await;
        let res = pds
            .http
            .post(format!("{}/xrpc/com.atproto.server.createAccount", pds.url))
            .json(&json!({"handle": "alice.test", "email": "alice@example.com", "password": "hunter22"}))
            .send()
            .await
            .unwrap();
        let v: Value = res.json().await.unwrap();
        Client {
            did: v["did"].as_str().unwrap().to_string(),
            token: v["accessJwt"].as_str().unwrap().to_string(),
            pds,
        }
    }

    async fn upload(&self, bytes: &[u8], content_type: &str) -> (StatusCode, Value) {
        let res = self
            .pds
            .http
            .post(format!("{}/xrpc/com.atproto.repo.uploadBlob", self.pds.url))
            .bearer_auth(&self.token)
            .header("content-type", content_type)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        (res.status(), res.json().await.unwrap_or(Value::Null))
    }

    /// Uploads and returns the `blob` ref.
    async fn upload_ok(&self, bytes: &[u8]) -> Value {
        let (s, v) = self.upload(bytes, "application/octet-stream").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["blob"].clone()
    }

    async fn post(&self, nsid: &str, body: Value) -> (StatusCode, Value) {
        let res = self
            .pds
            .http
            .post(format!("{}/xrpc/{nsid}", self.pds.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (res.status(), res.json().await.unwrap_or(Value::Null))
    }

    async fn create_image_post(&self, blob: &Value) -> (StatusCode, Value) {
        self.post(
            "com.atproto.repo.createRecord",
            json!({"repo": self.did, "collection": "app.bsky.feed.post", "record": image_post(blob)}),
        )
        .await
    }

    async fn delete_record(&self, uri: &str) {
        let rkey = uri.rsplit('/').next().unwrap();
        let (s, v) = self
            .post(
                "com.atproto.repo.deleteRecord",
                json!({"repo": self.did, "collection": "app.bsky.feed.post", "rkey": rkey}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    async fn get_blob(&self, cid: &str) -> reqwest::Response {
        self.pds
            .http
            .get(format!(
                "{}/xrpc/com.atproto.sync.getBlob?did={}&cid={cid}",
                self.pds.url, self.did
            ))
            .send()
            .await
            .unwrap()
    }

    /// GET `/xrpc/{method}?{query}` as JSON.
    async fn get_json(&self, method_and_query: &str) -> Value {
        self.pds
            .http
            .get(format!("{}/xrpc/{method_and_query}", self.pds.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The repo's current commit (`sync.getLatestCommit`, read from the repo itself).
    async fn root(&self) -> String {
        let v = self
            .get_json(&format!(
                "com.atproto.sync.getLatestCommit?did={}",
                self.did
            ))
            .await;
        v["cid"].as_str().unwrap().to_string()
    }

    fn blob_dir(&self) -> PathBuf {
        self.pds.dir.path().join("blocks")
    }

    fn permanent_path(&self, cid: &str) -> PathBuf {
        self.blob_dir().join(&self.did).join(cid)
    }

    fn temp_dir(&self) -> PathBuf {
        self.blob_dir().join("tempt").join(&self.did)
    }

    fn actor_db(&self) -> rusqlite::Connection {
        let path = berth::store::actor::store_path(&self.pds.dir.path().join("actors"), &self.did);
        rusqlite::Connection::open(path).unwrap()
    }
}

/// A small PNG-signed body, distinct per `seed`.
fn png(seed: u32, len: usize) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0".to_vec();
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push(x as u8);
    }
    out
}

fn image_post(blob: &Value) -> Value {
    json!({
        "$type": "app.bsky.feed.post",
        "text": "look",
        "createdAt": "2026-11-23T10:00:00.000Z",
        "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": blob}]},
    })
}

fn cid_of(blob: &Value) -> String {
    blob["ref"]["$link"].as_str().unwrap().to_string()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[tokio::test]
async fn upload_reference_and_get_blob() {
    let c = Client::new(&[]).await;
    let bytes = png(1, 3000);
    let blob = c.upload_ok(&bytes).await;
    assert_eq!(blob["$type"], "blob");
    assert_eq!(
        blob["mimeType"], "image/png",
        "sniffed, not the declared type"
    );
    assert_eq!(blob["size"], 3000);
    let cid = cid_of(&blob);
    assert_eq!(
        cid,
        berth::data::raw_cid(&bytes).to_string(),
        "CIDv1 raw over SHA-256"
    );

    // Temporary uploads are not served.
    let res = c.get_blob(&cid).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "InvalidRequest"
    );

    // The same bytes uploaded again give the same ref.
    assert_eq!(c.upload_ok(&bytes).await, blob);

    let (s, v) = c.create_image_post(&blob).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(c.permanent_path(&cid).is_file());
    assert!(
        files_under(&c.temp_dir()).is_empty(),
        "no temporary object is left behind"
    );

    let res = c.get_blob(&cid).await;
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["content-length"], "3000");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(
        h["content-disposition"],
        format!("attachment; filename=\"{cid}\"").as_str()
    );
    assert_eq!(h["content-security-policy"], "default-src 'none'; sandbox");
    assert_eq!(res.bytes().await.unwrap().as_ref(), bytes.as_slice());

    // Bad parameters and unknown blobs.
    let other = berth::data::raw_cid(b"never uploaded").to_string();
    let res = c.get_blob(&other).await;
    let v = res.json::<Value>().await.unwrap();
    assert_eq!(
        (v["error"].as_str(), v["message"].as_str()),
        (Some("InvalidRequest"), Some("Blob not found"))
    );
    let res = c.get_blob("not-a-cid").await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "InvalidRequest"
    );
    let res = c
        .pds
        .http
        .get(format!(
            "{}/xrpc/com.atproto.sync.getBlob?did=did:plc:aaaaaaaaaaaaaaaaaaaaaaaa&cid={cid}",
            c.pds.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "RepoNotFound");
}

#[tokio::test]
async fn upload_needs_auth_and_declared_type_is_a_fallback() {
    let c = Client::new(&[]).await;
    let res = c
        .pds
        .http
        .post(format!("{}/xrpc/com.atproto.repo.uploadBlob", c.pds.url))
        .body(b"hello".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (s, v) = c
        .upload(b"just some text", "text/plain; charset=utf-8")
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["blob"]["mimeType"], "text/plain");
    assert_eq!(v["blob"]["size"], 14);
}

#[tokio::test]
async fn mismatched_refs_are_refused_and_leave_the_repo() {
    let c = Client::new(&[]).await;
    let blob = c.upload_ok(&png(2, 500)).await;
    let before = c.root().await;
    let mut wrong_mime = blob.clone();
    wrong_mime["mimeType"] = json!("image/jpeg");
    let (s, v) = c.create_image_post(&wrong_mime).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "InvalidMimeType", "{v}");
    let mut wrong_size = blob.clone();
    wrong_size["size"] = json!(499);
    let (s, v) = c.create_image_post(&wrong_size).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "InvalidSize", "{v}");
    assert_eq!(
        c.root().await,
        before,
        "refused writes leave the commit as it was"
    );
    // The blob is still usable by a correct record.
    let (s, v) = c.create_image_post(&blob).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(c.get_blob(&cid_of(&blob)).await.status(), StatusCode::OK);
}

/// Sends a chunked upload (no Content-Length) over a raw connection; returns status and body.
async fn chunked_upload(url: &str, token: &str, chunks: &[Vec<u8>]) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /xrpc/com.atproto.repo.uploadBlob HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in chunks {
        // The server may refuse and close mid-body; later writes can then fail.
        let framed = [
            format!("{:x}\r\n", chunk.len()).into_bytes(),
            chunk.clone(),
            b"\r\n".to_vec(),
        ]
        .concat();
        if stream.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut resp = Vec::new();
    let _ = stream.read_to_end(&mut resp).await;
    let text = String::from_utf8_lossy(&resp).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn oversize_uploads_are_refused_and_leave_nothing() {
    let c = Client::new(&[("PDS_BLOB_UPLOAD_LIMIT", "1000")]).await;
    // Declared length over the limit: refused up front.
    let (s, v) = c.upload(&png(3, 5000), "image/png").await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(v["error"], "PayloadTooLarge");
    // No declared length: cut off while streaming.
    let chunks: Vec<Vec<u8>> = (0..8).map(|i| png(10 + i, 400)).collect();
    let (status, text) = chunked_upload(&c.pds.url, &c.token, &chunks).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("PayloadTooLarge"), "{text}");
    // Exactly at the limit is fine.
    let (s, v) = c.upload(&png(4, 1000), "image/png").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let cid = cid_of(&v["blob"]);
    let files = files_under(&c.blob_dir());
    assert_eq!(
        files.len(),
        1,
        "only the accepted upload is stored: {files:?}"
    );
    // Its row is the only one.
    let rows: i64 = c
        .actor_db()
        .query_row("SELECT count(*) FROM blob", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1);
    let _ = cid;
}

#[tokio::test]
async fn deleting_the_last_reference_deletes_the_bytes() {
    let c = Client::new(&[]).await;
    let blob = c.upload_ok(&png(5, 800)).await;
    let cid = cid_of(&blob);
    let (_, first) = c.create_image_post(&blob).await;
    let (_, second) = c.create_image_post(&blob).await;
    let path = c.permanent_path(&cid);
    assert!(path.is_file(), "{}", path.display());
    c.delete_record(first["uri"].as_str().unwrap()).await;
    assert!(path.is_file(), "still referenced by the second post");
    assert_eq!(c.get_blob(&cid).await.status(), StatusCode::OK);
    c.delete_record(second["uri"].as_str().unwrap()).await;
    // The bytes go right after the commit.
    for _ in 0..50 {
        if !path.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!path.exists(), "unreferenced blob bytes are deleted");
    assert_eq!(c.get_blob(&cid).await.status(), StatusCode::BAD_REQUEST);
    // A new record can't reference it any more without a new upload.
    let (s, v) = c.create_image_post(&blob).await;
    assert_eq!(v["error"], "BlobNotFound", "{s} {v}");
    c.upload_ok(&png(5, 800)).await;
    let (s, v) = c.create_image_post(&blob).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(c.get_blob(&cid).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn list_missing_blobs_shows_links_without_rows() {
    let c = Client::new(&[]).await;
    let (s, v) = c
        .pds
        .http
        .get(format!(
            "{}/xrpc/com.atproto.repo.listMissingBlobs",
            c.pds.url
        ))
        .bearer_auth(&c.token)
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v.json::<Value>().await.unwrap(), json!({"blobs": []}));
    // An import records links without rows; simulate one link.
    let bytes = png(6, 700);
    let cid = berth::data::raw_cid(&bytes).to_string();
    let uri = format!("at://{}/app.bsky.feed.post/3kaaaaaaaaaaa", c.did);
    c.actor_db()
        .execute(
            "INSERT INTO record_blob (blob_cid, record_uri) VALUES (?1, ?2)",
            [&cid, &uri],
        )
        .unwrap();
    let list = |limit: &str| {
        c.pds
            .http
            .get(format!(
                "{}/xrpc/com.atproto.repo.listMissingBlobs?limit={limit}",
                c.pds.url
            ))
            .bearer_auth(&c.token)
            .send()
    };
    let v: Value = list("10").await.unwrap().json().await.unwrap();
    assert_eq!(
        v,
        json!({"blobs": [{"cid": cid, "recordUri": uri}], "cursor": cid})
    );
    assert_eq!(list("0").await.unwrap().status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        list("1001").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    // Uploading it makes it permanent at once (a record already references it).
    let blob = c.upload_ok(&bytes).await;
    assert_eq!(cid_of(&blob), cid);
    assert!(c.permanent_path(&cid).is_file());
    assert_eq!(c.get_blob(&cid).await.status(), StatusCode::OK);
    let v: Value = list("10").await.unwrap().json().await.unwrap();
    assert_eq!(v, json!({"blobs": []}));
}

#[tokio::test]
async fn gc_deletes_old_uploads_and_keeps_young_ones() {
    let c = Client::new(&[]).await;
    let old = c.upload_ok(&png(7, 600)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let young = c.upload_ok(&png(8, 650)).await;
    let age = Duration::from_secs(1);

    // An orphan temporary file (an upload that died before its row) and an unreferenced
    // permanent row with its bytes (a failed write's leftovers).
    let orphan = c.temp_dir().join("orphanorphanorphan");
    std::fs::write(&orphan, b"partial").unwrap();
    let f = std::fs::File::options().write(true).open(&orphan).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(60))
        .unwrap();
    drop(f);
    let stray_bytes = png(9, 300);
    let stray = berth::data::raw_cid(&stray_bytes).to_string();
    std::fs::create_dir_all(c.blob_dir().join(&c.did)).unwrap();
    std::fs::write(c.permanent_path(&stray), &stray_bytes).unwrap();
    c.actor_db()
        .execute(
            "INSERT INTO blob (cid, mime_type, size, created_at) VALUES (?1, 'image/png', 300, '2020-01-01T00:00:00.000Z')",
            [&stray],
        )
        .unwrap();
    let files_before = files_under(&c.blob_dir()).len();
    assert_eq!(files_before, 4);

    let dry = c.pds.pds.collect_blob_garbage(age, true).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.temp_deleted, 1, "{dry:?}");
    assert_eq!(dry.temp_bytes, 600);
    assert_eq!(dry.unreferenced_deleted, 1, "{dry:?}");
    assert_eq!(dry.orphan_files_deleted, 1, "{dry:?}");
    assert_eq!(
        files_under(&c.blob_dir()).len(),
        files_before,
        "dry run deletes nothing"
    );
    assert!(dry.table().contains("would delete"));

    let report = c.pds.pds.collect_blob_garbage(age, false).await.unwrap();
    assert_eq!(
        (
            report.temp_deleted,
            report.unreferenced_deleted,
            report.orphan_files_deleted,
            report.errors
        ),
        (1, 1, 1, 0),
        "{report:?}"
    );
    assert!(!orphan.exists());
    assert!(!c.permanent_path(&stray).exists());
    assert_eq!(
        files_under(&c.blob_dir()).len(),
        1,
        "only the young upload is left"
    );

    let (s, v) = c.create_image_post(&old).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("BlobNotFound"))
    );
    let (s, v) = c.create_image_post(&young).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Referenced blobs are never collected, whatever the age.
    let again = c
        .pds
        .pds
        .collect_blob_garbage(Duration::ZERO, false)
        .await
        .unwrap();
    assert_eq!(
        again.temp_deleted + again.unreferenced_deleted,
        0,
        "{again:?}"
    );
    assert_eq!(c.get_blob(&cid_of(&young)).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_racing_writers_never_loses_a_referenced_blob() {
    let c = std::sync::Arc::new(Client::new(&[]).await);
    let mut blobs = Vec::new();
    let mut bodies = std::collections::HashMap::new();
    for i in 0..6 {
        let bytes = png(100 + i, 400 + i as usize);
        let blob = c.upload_ok(&bytes).await;
        bodies.insert(cid_of(&blob), bytes);
        // One anchor record each, so the race starts with every blob referenced.
        let (s, v) = c.create_image_post(&blob).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        blobs.push(blob);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gc = {
        let (c, stop) = (c.clone(), stop.clone());
        tokio::spawn(async move {
            let mut runs = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = c
                    .pds
                    .pds
                    .collect_blob_garbage(Duration::ZERO, false)
                    .await
                    .unwrap();
                assert_eq!(r.errors, 0, "{r:?}");
                runs += 1;
            }
            runs
        })
    };
    let mut writers = Vec::new();
    for w in 0..3u32 {
        let (c, blobs) = (c.clone(), blobs.clone());
        writers.push(tokio::spawn(async move {
            let mut created = 0;
            let mut x = w + 1;
            for _ in 0..25 {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let blob = &blobs[(x >> 8) as usize % blobs.len()];
                let (s, v) = c.create_image_post(blob).await;
                if s == StatusCode::OK {
                    created += 1;
                } else {
                    assert_eq!(v["error"], "BlobNotFound", "{v}");
                }
                // Delete a random current post (anchors included).
                let list = c
                    .get_json(&format!(
                        "com.atproto.repo.listRecords?repo={}&collection=app.bsky.feed.post&limit=100",
                        c.did
                    ))
                    .await;
                let records = list["records"].as_array().unwrap();
                if records.len() > 3 {
                    let pick = &records[(x >> 4) as usize % records.len()];
                    let rkey = pick["uri"].as_str().unwrap().rsplit('/').next().unwrap();
                    let _ = c
                        .post(
                            "com.atproto.repo.deleteRecord",
                            json!({"repo": c.did, "collection": "app.bsky.feed.post", "rkey": rkey}),
                        )
                        .await;
                }
            }
            created
        }));
    }
    let mut created = 0;
    for w in writers {
        created += w.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let runs = gc.await.unwrap();
    assert!(runs > 0 && created > 0, "runs {runs}, created {created}");

    // Every blob a current record references is still served, byte for byte.
    let list: Value = c
        .pds
        .http
        .get(format!(
            "{}/xrpc/com.atproto.repo.listRecords?repo={}&collection=app.bsky.feed.post&limit=100",
            c.pds.url, c.did
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let records = list["records"].as_array().unwrap();
    assert!(!records.is_empty());
    for r in records {
        let cid = cid_of(&r["value"]["embed"]["images"][0]["image"]);
        let res = c.get_blob(&cid).await;
        assert_eq!(res.status(), StatusCode::OK, "blob {cid} of {}", r["uri"]);
        assert_eq!(res.bytes().await.unwrap().as_ref(), bodies[&cid].as_slice());
    }
}

/// Uploads of the same bytes racing each other: each new upload takes over the temporary row
/// and drops the previous upload's file, and none of them may fail for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_uploads_of_the_same_bytes_all_succeed() {
    let c = std::sync::Arc::new(Client::new(&[]).await);
    let bytes = std::sync::Arc::new(png(7, 192 * 1024));
    let mut uploaders = Vec::new();
    for _ in 0..6 {
        let (c, bytes) = (c.clone(), bytes.clone());
        uploaders.push(tokio::spawn(async move {
            let mut cids = Vec::new();
            for _ in 0..15 {
                let (s, v) = c.upload(&bytes, "image/png").await;
                assert_eq!(s, StatusCode::OK, "{v}");
                cids.push(cid_of(&v["blob"]));
            }
            cids
        }));
    }
    let mut cids = std::collections::HashSet::new();
    for u in uploaders {
        cids.extend(u.await.unwrap());
    }
    assert_eq!(cids.len(), 1, "{cids:?}");
    // The row names a temporary file that is still there: a record can take it.
    let blob = c.upload_ok(&bytes).await;
    let (s, v) = c.create_image_post(&blob).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let res = c.get_blob(&cid_of(&blob)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn s3_backend_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::rclone::RcloneS3::start(dir.path());
    let bucket_dir = dir.path().join("s3data").join(common::rclone::BUCKET);
    let c = Client::new(&[
        ("PDS_BLOBSTORE_DISK_LOCATION", ""),
        ("PDS_BLOBSTORE_S3_BUCKET", common::rclone::BUCKET),
        ("PDS_BLOBSTORE_S3_REGION", "us-east-1"),
        ("PDS_BLOBSTORE_S3_ENDPOINT", &server.endpoint),
        ("PDS_BLOBSTORE_S3_FORCE_PATH_STYLE", "true"),
        ("PDS_BLOBSTORE_S3_ACCESS_KEY_ID", common::rclone::ACCESS_KEY),
        (
            "PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY",
            common::rclone::SECRET_KEY,
        ),
    ])
    .await;
    let bytes = png(11, 4000);
    let blob = c.upload_ok(&bytes).await;
    let cid = cid_of(&blob);
    let (s, v) = c.create_image_post(&blob).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let permanent = bucket_dir.join("blocks").join(&c.did).join(&cid);
    assert!(permanent.is_file(), "{}", permanent.display());
    let res = c.get_blob(&cid).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(res.bytes().await.unwrap().as_ref(), bytes.as_slice());
    c.delete_record(v["uri"].as_str().unwrap()).await;
    for _ in 0..100 {
        if !permanent.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!permanent.exists(), "deleted from the bucket");
    assert_eq!(c.get_blob(&cid).await.status(), StatusCode::BAD_REQUEST);
    drop(server);
}

#[tokio::test]
async fn taken_down_blobs_and_unavailable_repos() {
    let c = Client::new(&[]).await;
    let bytes = png(12, 900);
    let blob = c.upload_ok(&bytes).await;
    let cid = cid_of(&blob);
    let (s, v) = c.create_image_post(&blob).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // A deactivated repo's blobs are refused to others but not to the owner.
    let accounts = rusqlite::Connection::open(c.pds.dir.path().join("account.sqlite")).unwrap();
    accounts
        .execute(
            "UPDATE actor SET deactivated_at = '2026-01-01T00:00:00.000Z' WHERE did = ?1",
            [&c.did],
        )
        .unwrap();
    // An edit from outside the server is seen within the account cache's check interval.
    tokio::time::sleep(berth::pds::ACCOUNT_CACHE_EXTERNAL_CHECK * 2).await;
    let res = c.get_blob(&cid).await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "RepoDeactivated"
    );
    let res = c
        .pds
        .http
        .get(format!(
            "{}/xrpc/com.atproto.sync.getBlob?did={}&cid={cid}",
            c.pds.url, c.did
        ))
        .bearer_auth(&c.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    accounts
        .execute(
            "UPDATE actor SET deactivated_at = NULL WHERE did = ?1",
            [&c.did],
        )
        .unwrap();
    tokio::time::sleep(berth::pds::ACCOUNT_CACHE_EXTERNAL_CHECK * 2).await;

    // A taken-down blob is not served and cannot be uploaded again.
    c.actor_db()
        .execute(
            "UPDATE blob SET takedown_ref = 'mod-1' WHERE cid = ?1",
            [&cid],
        )
        .unwrap();
    let res = c.get_blob(&cid).await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "InvalidRequest"
    );
    let (s, v) = c.upload(&bytes, "image/png").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "InvalidRequest");
    // The refused upload's temporary file is removed after the response, in the background.
    for _ in 0..100 {
        if files_under(&c.temp_dir()).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        files_under(&c.temp_dir()).is_empty(),
        "the refused upload left nothing"
    );
}
