//! blob: where uploaded blobs live, per account, on disk or in an S3 bucket, and the upload
//! pipeline that turns a request body into a stored temporary blob with its CID and MIME type.
//!
//! The layouts are the reference PDS's (`REFERENCE_PDS.md` §3.1), so an existing blob directory
//! or bucket works unchanged:
//!
//! | | disk | S3 key |
//! |---|---|---|
//! | temporary upload | `<tmp_location>/<did>/<key>` | `tmp/<did>/<key>` |
//! | permanent blob | `<location>/<did>/<cid>` | `blocks/<did>/<cid>` |
//! | quarantined blob | `<location>/quarantine/<did>/<cid>` | `quarantine/<did>/<cid>` |
//!
//! Invariants:
//! - A blob is visible through [`BlobStore::get`] only after [`BlobStore::make_permanent`] (or
//!   [`BlobStore::put_permanent`]) and while it is not quarantined. Temporary uploads are never
//!   served; they are reachable only by the key [`BlobStore::put_temp`] returned.
//! - Temporary keys are 160 random bits in lowercase base32 ([`new_temp_key`]), so two uploads
//!   never collide; the disk store also opens them with `create_new`, so a write never replaces
//!   another file.
//! - [`BlobStore::put_temp`] either stores the whole stream and returns its key, or fails and
//!   leaves no object behind: a body stream that yields an error (a truncated request, the upload
//!   pipeline's size limit) aborts the write and removes the partial object, and so does dropping
//!   the `put_temp` future (a client gone mid-upload). A process crash mid upload may leave a
//!   partial temporary file, which [`BlobStore::list_temp`] reports for garbage collection like
//!   any abandoned upload.
//! - [`BlobStore::make_permanent`] is idempotent: when the permanent object already exists
//!   (blobs are content-addressed, so it holds the same bytes) the temporary one is just dropped.
//! - Deletes are idempotent: deleting what is not there succeeds.
//! - No DID, key or CID can name a path outside the store: DIDs are [`Did`]s (no `/`), CIDs are
//!   [`Cid`]s (base32 text), keys are checked by [`check_temp_key`], and every path component is
//!   checked again before use.
//! - The disk store never reads a whole blob into memory: [`BlobStore::get`] streams the file,
//!   and writes go chunk by chunk. Disk writes are fsynced before the file is renamed into place.

mod disk;
mod s3;
mod upload;

pub use disk::DiskBlobStore;
pub use s3::S3BlobStore;
pub use upload::{SNIFF_LEN, UploadError, UploadedBlob, sniff_mime, upload};

use std::io;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::config::BlobstoreConfig;
use crate::data::Cid;
use crate::syntax::Did;

/// A stream of blob chunks, read or written. I/O errors end it.
pub type ByteStream<'a> = BoxStream<'a, io::Result<Bytes>>;

/// A stored blob being read: its size in bytes and its contents as a stream.
pub struct BlobContent {
    pub size: u64,
    pub body: ByteStream<'static>,
}

impl std::fmt::Debug for BlobContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobContent")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// A temporary upload found by [`BlobStore::list_temp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempBlob {
    pub did: Did,
    pub key: String,
    /// When it was last written: garbage collection deletes keys older than its grace period.
    pub modified: SystemTime,
}

/// Why a blob-store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The object the operation needs does not exist (a temp key, or a blob to quarantine).
    #[error("blob object not found: {0}")]
    NotFound(String),
    /// A temporary key that [`new_temp_key`] could not have made.
    #[error("invalid temporary blob key {0:?}: expected 1 to 128 ASCII letters or digits")]
    InvalidKey(String),
    /// A DID or CID that would not be one safe path component (defence in depth).
    #[error("refused blob path component {0:?}")]
    UnsafePath(String),
    /// The body stream given to `put_temp` failed; nothing was kept.
    #[error("blob body stream failed: {0}")]
    Body(#[source] io::Error),
    /// A filesystem operation of the disk store failed.
    #[error("blob store: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    /// The S3 service refused our credentials or signature.
    #[error(
        "S3 denied {op} {key}; check PDS_BLOBSTORE_S3_ACCESS_KEY_ID and \
         PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY: {source}"
    )]
    S3Denied {
        op: &'static str,
        key: String,
        #[source]
        source: Box<object_store::Error>,
    },
    /// Any other S3 failure.
    #[error("S3 {op} {key}: {source}")]
    S3 {
        op: &'static str,
        key: String,
        #[source]
        source: Box<object_store::Error>,
    },
    /// An S3 write took longer than `PDS_BLOBSTORE_S3_UPLOAD_TIMEOUT_MS`.
    #[error("S3 {op} {key} timed out after {millis} ms")]
    Timeout {
        op: &'static str,
        key: String,
        millis: u128,
    },
    /// The blob-store configuration cannot be used.
    #[error("blob store configuration: {0}")]
    Config(String),
}

/// Blob storage for every account on this PDS. Object-safe; shared as `Arc<dyn BlobStore>`.
#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Stores `body` as a new temporary upload and returns its key. If the stream yields an
    /// error the write is abandoned, nothing is kept, and the error is [`BlobError::Body`].
    async fn put_temp(&self, did: &Did, body: ByteStream<'_>) -> Result<String, BlobError>;

    /// Moves a temporary upload to its permanent place. Succeeds without change when the
    /// permanent blob exists already (dropping the temporary one); [`BlobError::NotFound`] when
    /// neither exists.
    async fn make_permanent(&self, did: &Did, temp_key: &str, cid: &Cid) -> Result<(), BlobError>;

    /// Stores bytes straight as a permanent blob (repo import, migration). The caller vouches
    /// that `cid` is the hash of `bytes`.
    async fn put_permanent(&self, did: &Did, cid: &Cid, bytes: Bytes) -> Result<(), BlobError>;

    /// A permanent, unquarantined blob's size and contents; `None` when there is none.
    async fn get(&self, did: &Did, cid: &Cid) -> Result<Option<BlobContent>, BlobError>;

    /// Whether a permanent, unquarantined blob exists.
    async fn has_stored(&self, did: &Did, cid: &Cid) -> Result<bool, BlobError>;

    /// Whether a temporary upload exists.
    async fn has_temp(&self, did: &Did, key: &str) -> Result<bool, BlobError>;

    /// Deletes a permanent blob (also its quarantined copy, if any).
    async fn delete(&self, did: &Did, cid: &Cid) -> Result<(), BlobError>;

    /// Deletes several permanent blobs.
    async fn delete_many(&self, did: &Did, cids: &[Cid]) -> Result<(), BlobError>;

    /// Deletes a temporary upload.
    async fn delete_temp(&self, did: &Did, key: &str) -> Result<(), BlobError>;

    /// Moves a permanent blob aside (a takedown), so `get` no longer finds it.
    async fn quarantine(&self, did: &Did, cid: &Cid) -> Result<(), BlobError>;

    /// Brings a quarantined blob back.
    async fn unquarantine(&self, did: &Did, cid: &Cid) -> Result<(), BlobError>;

    /// Every temporary upload of every account, for garbage collection.
    async fn list_temp(&self) -> Result<Vec<TempBlob>, BlobError>;

    /// The CIDs of an account's permanent, unquarantined blobs, in no particular order.
    async fn list_stored(&self, did: &Did) -> Result<Vec<Cid>, BlobError>;
}

/// Opens the configured blob store.
pub fn open_blob_store(config: &BlobstoreConfig) -> Result<Arc<dyn BlobStore>, BlobError> {
    match config {
        BlobstoreConfig::Disk {
            location,
            tmp_location,
        } => Ok(Arc::new(DiskBlobStore::open(location, tmp_location)?)),
        BlobstoreConfig::S3(s3) => Ok(Arc::new(S3BlobStore::open(s3)?)),
    }
}

/// A fresh temporary key: 160 random bits as 32 lowercase base32 characters.
pub fn new_temp_key() -> String {
    data_encoding::BASE32_NOPAD
        .encode(&rand::random::<[u8; 20]>())
        .to_ascii_lowercase()
}

/// Checks that a temporary key is 1 to 128 ASCII letters or digits, so it is one safe path
/// component and one S3 key segment. Accepts the reference's keys as well as ours.
pub fn check_temp_key(key: &str) -> Result<(), BlobError> {
    if !key.is_empty() && key.len() <= 128 && key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(BlobError::InvalidKey(key.chars().take(64).collect()))
    }
}

/// Checks that a DID or CID string is usable as exactly one path component or key segment.
/// A parsed [`Did`] or [`Cid`] always passes; this guards against a future change of either.
fn check_component(s: &str) -> Result<(), BlobError> {
    let bad = s.is_empty()
        || s == "."
        || s == ".."
        || s.len() > 2048
        || s.chars().any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        Err(BlobError::UnsafePath(s.chars().take(64).collect()))
    } else {
        Ok(())
    }
}
