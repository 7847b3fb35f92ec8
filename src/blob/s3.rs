//! The S3 blob store over `object_store`, with the reference PDS's keys
//! (`tmp/<did>/<key>`, `blocks/<did>/<cid>`, `quarantine/<did>/<cid>`).
//!
//! Keys are built with [`Path::parse`], which keeps each segment exactly as given (a did:web
//! DID's `%3A` stays `%3A`), so keys match the ones the reference writes. S3 has no rename:
//! `make_permanent` and (un)quarantine copy, then delete the source.
//!
//! Uploads of up to [`PART_SIZE`] bytes are one `PutObject`; larger ones become a multipart
//! upload whose parts are sent as the body arrives, so memory stays at a few parts whatever the
//! blob's size. A failed body, or dropping the `put_temp` future, aborts the multipart upload,
//! leaving no object and no stored parts.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};

use super::{
    BlobContent, BlobError, BlobStore, ByteStream, TempBlob, check_component, check_temp_key,
    new_temp_key,
};
use crate::config::S3Config;
use crate::data::Cid;
use crate::syntax::Did;

/// Multipart part size (S3's minimum for all parts but the last).
pub const PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts in flight at once during a multipart upload.
const PART_CONCURRENCY: usize = 2;
/// Default region when `PDS_BLOBSTORE_S3_REGION` is unset (what S3-compatible servers expect).
const DEFAULT_REGION: &str = "us-east-1";

/// Blobs as objects in one S3 bucket.
#[derive(Debug)]
pub struct S3BlobStore {
    store: AmazonS3,
    upload_timeout: Duration,
}

impl S3BlobStore {
    /// Builds the client. Nothing is sent until the first operation.
    pub fn open(config: &S3Config) -> Result<S3BlobStore, BlobError> {
        // Without explicit credentials, take the ambient AWS_* environment (as the reference's
        // AWS SDK does); explicit settings below override it.
        let mut builder = match &config.credentials {
            Some(creds) => AmazonS3Builder::new()
                .with_access_key_id(&creds.access_key_id)
                .with_secret_access_key(creds.secret_access_key.expose()),
            None => AmazonS3Builder::from_env(),
        };
        builder = builder
            .with_bucket_name(&config.bucket)
            .with_region(config.region.as_deref().unwrap_or(DEFAULT_REGION));
        let mut client = ClientOptions::new().with_connect_timeout(Duration::from_secs(10));
        if let Some(timeout) = config.request_timeout {
            client = client.with_timeout(timeout);
        }
        match &config.endpoint {
            Some(endpoint) => {
                let endpoint = if config.force_path_style {
                    endpoint.clone()
                } else {
                    virtual_hosted_endpoint(endpoint, &config.bucket)?
                };
                client = client.with_allow_http(endpoint.starts_with("http://"));
                builder = builder
                    .with_endpoint(endpoint)
                    .with_virtual_hosted_style_request(!config.force_path_style);
            }
            None => {
                builder = builder.with_virtual_hosted_style_request(!config.force_path_style);
            }
        }
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            ..RetryConfig::default()
        };
        let store = builder
            .with_client_options(client)
            .with_retry(retry)
            .build()
            .map_err(|e| BlobError::Config(format!("S3 bucket {:?}: {e}", config.bucket)))?;
        Ok(S3BlobStore {
            store,
            upload_timeout: config.upload_timeout,
        })
    }

    /// Runs one upload step under `PDS_BLOBSTORE_S3_UPLOAD_TIMEOUT_MS`.
    async fn timed<T>(
        &self,
        op: &'static str,
        path: &Path,
        fut: impl Future<Output = object_store::Result<T>>,
    ) -> Result<T, BlobError> {
        match tokio::time::timeout(self.upload_timeout, fut).await {
            Ok(result) => result.map_err(|e| s3_err(op, path, e)),
            Err(_) => Err(BlobError::Timeout {
                op,
                key: path.to_string(),
                millis: self.upload_timeout.as_millis(),
            }),
        }
    }

    /// Sends `body` to `path`: one PUT when it fits in a part, else a multipart upload.
    async fn write_stream(&self, path: &Path, mut body: ByteStream<'_>) -> Result<(), BlobError> {
        let mut buffered: Vec<Bytes> = Vec::new();
        let mut buffered_len = 0usize;
        let mut upload = AbortOnDrop(None);
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    upload.abort().await;
                    return Err(BlobError::Body(e));
                }
            };
            if let Some(writer) = upload.0.as_mut() {
                if let Err(e) = self
                    .timed(
                        "upload part",
                        path,
                        writer.wait_for_capacity(PART_CONCURRENCY),
                    )
                    .await
                {
                    upload.abort().await;
                    return Err(e);
                }
                writer.put(chunk);
                continue;
            }
            buffered_len += chunk.len();
            buffered.push(chunk);
            if buffered_len >= PART_SIZE {
                let started = self
                    .timed(
                        "start multipart upload",
                        path,
                        self.store.put_multipart(path),
                    )
                    .await?;
                let mut writer = WriteMultipart::new_with_chunk_size(started, PART_SIZE);
                for chunk in buffered.drain(..) {
                    writer.put(chunk);
                }
                upload.0 = Some(writer);
            }
        }
        match upload.0.take() {
            Some(writer) => {
                // On failure `finish` has already aborted the upload.
                self.timed("finish multipart upload", path, writer.finish())
                    .await?;
            }
            None => {
                let payload: PutPayload = buffered.into_iter().collect();
                self.timed("put", path, self.store.put(path, payload))
                    .await?;
            }
        }
        Ok(())
    }

    async fn exists(&self, path: &Path) -> Result<bool, BlobError> {
        match self.store.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(s3_err("head", path, e)),
        }
    }

    async fn delete_if_present(&self, path: &Path) -> Result<(), BlobError> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(s3_err("delete", path, e)),
        }
    }

    /// Copy then delete. Idempotent: when only the destination exists the move is done.
    async fn move_object(&self, from: &Path, to: &Path, what: String) -> Result<(), BlobError> {
        match self.store.copy(from, to).await {
            Ok(()) => self.delete_if_present(from).await,
            Err(object_store::Error::NotFound { .. }) => {
                if self.exists(to).await? {
                    Ok(())
                } else {
                    Err(BlobError::NotFound(what))
                }
            }
            Err(e) => Err(s3_err("copy", from, e)),
        }
    }

    async fn list_prefix(&self, prefix: &Path) -> Result<Vec<object_store::ObjectMeta>, BlobError> {
        self.store
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| s3_err("list", prefix, e))
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put_temp(&self, did: &Did, body: ByteStream<'_>) -> Result<String, BlobError> {
        let key = new_temp_key();
        let path = temp_path(did, &key)?;
        self.write_stream(&path, body).await?;
        Ok(key)
    }

    async fn make_permanent(&self, did: &Did, temp_key: &str, cid: &Cid) -> Result<(), BlobError> {
        let temp = temp_path(did, temp_key)?;
        let stored = cid_path("blocks", did, cid)?;
        if self.exists(&stored).await? {
            return self.delete_if_present(&temp).await;
        }
        self.move_object(&temp, &stored, format!("temporary blob {temp_key}"))
            .await
    }

    async fn put_permanent(&self, did: &Did, cid: &Cid, bytes: Bytes) -> Result<(), BlobError> {
        let stored = cid_path("blocks", did, cid)?;
        let body: ByteStream<'_> = Box::pin(futures_util::stream::iter([Ok(bytes)]));
        self.write_stream(&stored, body).await
    }

    async fn get(&self, did: &Did, cid: &Cid) -> Result<Option<BlobContent>, BlobError> {
        let path = cid_path("blocks", did, cid)?;
        match self.store.get(&path).await {
            Ok(result) => {
                let size = result.meta.size;
                let body = result.into_stream().map_err(std::io::Error::other);
                Ok(Some(BlobContent {
                    size,
                    body: Box::pin(body),
                }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(s3_err("get", &path, e)),
        }
    }

    async fn has_stored(&self, did: &Did, cid: &Cid) -> Result<bool, BlobError> {
        self.exists(&cid_path("blocks", did, cid)?).await
    }

    async fn has_temp(&self, did: &Did, key: &str) -> Result<bool, BlobError> {
        self.exists(&temp_path(did, key)?).await
    }

    async fn delete(&self, did: &Did, cid: &Cid) -> Result<(), BlobError> {
        self.delete_if_present(&cid_path("blocks", did, cid)?)
            .await?;
        self.delete_if_present(&cid_path("quarantine", did, cid)?)
            .await
    }

    async fn delete_many(&self, did: &Did, cids: &[Cid]) -> Result<(), BlobError> {
        let mut paths = Vec::with_capacity(cids.len() * 2);
        for cid in cids {
            paths.push(Ok(cid_path("blocks", did, cid)?));
            paths.push(Ok(cid_path("quarantine", did, cid)?));
        }
        let mut results = self
            .store
            .delete_stream(Box::pin(futures_util::stream::iter(paths)));
        while let Some(result) = results.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(s3_err("delete", &Path::from("blocks"), e)),
            }
        }
        Ok(())
    }

    async fn delete_temp(&self, did: &Did, key: &str) -> Result<(), BlobError> {
        self.delete_if_present(&temp_path(did, key)?).await
    }

    async fn quarantine(&self, did: &Did, cid: &Cid) -> Result<(), BlobError> {
        let from = cid_path("blocks", did, cid)?;
        let to = cid_path("quarantine", did, cid)?;
        self.move_object(&from, &to, format!("blob {cid}")).await
    }

    async fn unquarantine(&self, did: &Did, cid: &Cid) -> Result<(), BlobError> {
        let from = cid_path("quarantine", did, cid)?;
        let to = cid_path("blocks", did, cid)?;
        self.move_object(&from, &to, format!("blob {cid}")).await
    }

    async fn list_temp(&self) -> Result<Vec<TempBlob>, BlobError> {
        let objects = self.list_prefix(&Path::from("tmp")).await?;
        Ok(objects
            .into_iter()
            .filter_map(|meta| {
                let parts: Vec<_> = meta.location.parts().collect();
                let [_, did, key] = parts.as_slice() else {
                    return None;
                };
                let did = did.as_ref().parse::<Did>().ok()?;
                let key = key.as_ref().to_owned();
                check_temp_key(&key).ok()?;
                Some(TempBlob {
                    did,
                    key,
                    modified: meta.last_modified.into(),
                })
            })
            .collect())
    }

    async fn list_stored(&self, did: &Did) -> Result<Vec<Cid>, BlobError> {
        let prefix = did_prefix("blocks", did)?;
        let objects = self.list_prefix(&prefix).await?;
        Ok(objects
            .into_iter()
            .filter_map(|meta| {
                let parts: Vec<_> = meta.location.parts().collect();
                match parts.as_slice() {
                    [_, _, name] => Cid::try_from(name.as_ref()).ok(),
                    _ => None,
                }
            })
            .collect())
    }
}

/// `https://bucket.host` from `https://host` for virtual-hosted-style requests to a custom
/// endpoint (object_store expects the bucket already in the endpoint then).
fn virtual_hosted_endpoint(endpoint: &str, bucket: &str) -> Result<String, BlobError> {
    let (scheme, rest) = endpoint
        .split_once("://")
        .ok_or_else(|| BlobError::Config(format!("S3 endpoint {endpoint:?} has no scheme")))?;
    Ok(format!("{scheme}://{bucket}.{rest}"))
}

fn did_prefix(root: &str, did: &Did) -> Result<Path, BlobError> {
    check_component(did.as_str())?;
    parse_path(&format!("{root}/{}", did.as_str()))
}

fn temp_path(did: &Did, key: &str) -> Result<Path, BlobError> {
    check_temp_key(key)?;
    check_component(did.as_str())?;
    parse_path(&format!("tmp/{}/{key}", did.as_str()))
}

fn cid_path(root: &str, did: &Did, cid: &Cid) -> Result<Path, BlobError> {
    let cid = cid.to_string();
    check_component(did.as_str())?;
    check_component(&cid)?;
    parse_path(&format!("{root}/{}/{cid}", did.as_str()))
}

fn parse_path(key: &str) -> Result<Path, BlobError> {
    Path::parse(key).map_err(|_| BlobError::UnsafePath(key.chars().take(64).collect()))
}

/// A multipart upload in progress, aborted if dropped before it is finished or aborted: on a
/// failed body, or when the future writing it is dropped (a client gone mid-upload).
struct AbortOnDrop(Option<WriteMultipart>);

impl AbortOnDrop {
    async fn abort(&mut self) {
        if let Some(writer) = self.0.take() {
            // Best effort: an abort that fails leaves an incomplete multipart upload, which is
            // never visible as an object (and bucket lifecycle rules expire it).
            let _ = writer.abort().await;
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(writer) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = writer.abort().await;
            });
        }
    }
}

fn s3_err(op: &'static str, path: &Path, e: object_store::Error) -> BlobError {
    let key = path.to_string();
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound(key),
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => BlobError::S3Denied {
            op,
            key,
            source: Box::new(e),
        },
        e => BlobError::S3 {
            op,
            key,
            source: Box::new(e),
        },
    }
}
