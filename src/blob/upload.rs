//! The upload pipeline (`REFERENCE_PDS.md` §3.5): a request body streams through a SHA-256
//! hasher and a size check into [`BlobStore::put_temp`], while its first bytes are kept for MIME
//! sniffing.
//!
//! Invariants:
//! - The body is never held whole: only [`SNIFF_LEN`] leading bytes are kept beside the stream.
//! - The first chunk that takes the total past `limit` is not written; the store sees an error
//!   instead and removes the partial object, so a refused or failed upload leaves nothing.
//! - The CID is CIDv1 raw (0x55) over SHA-256 of exactly the bytes stored.
//! - The MIME type is sniffed from magic bytes only (no media parsing, per the blob-security
//!   guide), else the declared `Content-Type`, else `application/octet-stream`.

use std::error::Error as StdError;
use std::io;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use super::{BlobError, BlobStore, ByteStream};
use crate::data::{self, Cid};
use crate::syntax::Did;

/// How many leading bytes are kept for MIME sniffing (every signature `infer` checks for the
/// media types a PDS sees lies well within this).
pub const SNIFF_LEN: usize = 8 * 1024;

/// The fallback MIME type.
const OCTET_STREAM: &str = "application/octet-stream";

/// A blob stored under a temporary key, with the metadata for its `blob` ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedBlob {
    pub cid: Cid,
    pub mime_type: String,
    pub size: u64,
    pub temp_key: String,
}

/// Why an upload failed. Whatever the reason, no temporary object was kept.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The body exceeded the upload limit (`PDS_BLOB_UPLOAD_LIMIT`).
    #[error("blob exceeds the upload limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// Reading the request body failed (a client that went away mid-upload).
    #[error("the upload body could not be read: {0}")]
    Body(#[source] Box<dyn StdError + Send + Sync>),
    /// The blob store failed.
    #[error(transparent)]
    Store(#[from] BlobError),
}

impl UploadError {
    /// The HTTP status and XRPC error name this becomes. An oversize blob is 413
    /// `PayloadTooLarge`, as the reference's XRPC server (and berth's `xrpc` module) answers
    /// any oversize body; a blob-store timeout is `UpstreamTimeout` (`REFERENCE_PDS.md` §1.2).
    pub fn xrpc_status_and_name(&self) -> (u16, &'static str) {
        match self {
            UploadError::TooLarge { .. } => (413, "PayloadTooLarge"),
            UploadError::Body(_) => (400, "InvalidRequest"),
            UploadError::Store(BlobError::Timeout { .. }) => (504, "UpstreamTimeout"),
            UploadError::Store(_) => (500, "InternalServerError"),
        }
    }
}

/// What the stream adapter learns while the store reads the body.
#[derive(Default)]
struct Progress {
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
    failure: Option<UploadError>,
}

impl Progress {
    /// Accounts for one chunk of the body; the error is what the store sees instead of it.
    fn take<E>(&mut self, item: Result<Bytes, E>, limit: u64) -> io::Result<Bytes>
    where
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let chunk = match item {
            Ok(chunk) => chunk,
            Err(e) => {
                self.failure = Some(UploadError::Body(e.into()));
                return Err(io::Error::other("upload body failed"));
            }
        };
        let size = self.size.saturating_add(chunk.len() as u64);
        if size > limit {
            self.failure = Some(UploadError::TooLarge { limit });
            return Err(io::Error::other("upload limit exceeded"));
        }
        self.size = size;
        self.hasher.update(&chunk);
        if self.head.len() < SNIFF_LEN {
            let want = (SNIFF_LEN - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..want]);
        }
        Ok(chunk)
    }
}

/// Streams `body` into a new temporary blob of `did`, refusing it as soon as it exceeds `limit`
/// bytes. Returns the blob's CID, MIME type, size and temporary key; on any error nothing is
/// kept.
pub async fn upload<S, E>(
    store: &dyn BlobStore,
    did: &Did,
    body: S,
    limit: u64,
    declared_mime: Option<&str>,
) -> Result<UploadedBlob, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    let mut progress = Progress::default();
    let stored = {
        let progress = &mut progress;
        // After the first failure the stream ends, so a store that ignored the error still
        // cannot take more bytes.
        let adapted: ByteStream<'_> = Box::pin(
            body.map(move |item| {
                if progress.failure.is_some() {
                    return None;
                }
                Some(progress.take(item, limit))
            })
            .take_while(|item| std::future::ready(item.is_some()))
            .filter_map(std::future::ready),
        );
        store.put_temp(did, adapted).await
    };
    if let Some(failure) = progress.failure.take() {
        if let Ok(key) = &stored {
            store.delete_temp(did, key).await?;
        }
        return Err(failure);
    }
    let temp_key = stored?;
    let digest: [u8; 32] = progress.hasher.finalize().into();
    let mime_type = sniff_mime(&progress.head, declared_mime);
    Ok(UploadedBlob {
        cid: raw_cid_from_digest(digest),
        mime_type,
        size: progress.size,
        temp_key,
    })
}

/// The MIME type of a blob starting with `head`: sniffed, else declared, else octet-stream.
/// A declared type is used only if it is printable ASCII of a sane length. Of text formats only
/// an XML declaration counts, as in the reference (which does not take text for HTML or a
/// script, and calls XML `application/xml`).
pub fn sniff_mime(head: &[u8], declared: Option<&str>) -> String {
    match infer::get(head) {
        Some(kind) if kind.matcher_type() != infer::MatcherType::Text => {
            return kind.mime_type().to_owned();
        }
        Some(kind) if kind.extension() == "xml" => return "application/xml".to_owned(),
        _ => {}
    }
    match declared.map(str::trim) {
        Some(d)
            if !d.is_empty() && d.len() <= 256 && d.bytes().all(|b| (0x20..0x7f).contains(&b)) =>
        {
            d.to_owned()
        }
        _ => OCTET_STREAM.to_owned(),
    }
}

/// The blob CID for a SHA-256 digest; equal to [`data::raw_cid`] of the bytes.
fn raw_cid_from_digest(digest: [u8; 32]) -> Cid {
    // `wrap` fails only when the digest exceeds the 64-byte capacity; 32 bytes always fit.
    match multihash::Multihash::<64>::wrap(data::SHA2_256, &digest) {
        Ok(mh) => Cid::new_v1(data::RAW, mh),
        Err(_) => unreachable!("a 32-byte digest fits a 64-byte multihash"),
    }
}
