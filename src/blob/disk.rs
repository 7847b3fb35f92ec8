//! The disk blob store, in the reference PDS's directory layout (see the module above).
//!
//! Writes go to a file nobody else can name yet (a fresh temporary key, or a dot-file beside
//! the target), are fsynced, then renamed into place, and the directory is fsynced after the
//! rename; so after a crash a permanent blob is either whole or absent.

use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::fs;
use tokio::io::AsyncWriteExt;

use super::{
    BlobContent, BlobError, BlobStore, ByteStream, TempBlob, check_component, check_temp_key,
    new_temp_key,
};
use crate::data::Cid;
use crate::syntax::Did;

/// Bytes gathered before each write of an upload to its temporary file.
const TEMP_WRITE_BUFFER: usize = 256 * 1024;

/// Read buffer for streaming a blob out of its file.
const READ_CHUNK: usize = 64 * 1024;

/// Blobs as files under `location`, temporary uploads under `tmp_location`.
#[derive(Debug, Clone)]
pub struct DiskBlobStore {
    location: PathBuf,
    tmp_location: PathBuf,
    quarantine: PathBuf,
}

impl DiskBlobStore {
    /// Opens (creating if needed) the store's directories, so a wrong or unwritable location
    /// fails at boot rather than at the first upload.
    pub fn open(location: &Path, tmp_location: &Path) -> Result<DiskBlobStore, BlobError> {
        let quarantine = location.join("quarantine");
        for dir in [location, tmp_location, quarantine.as_path()] {
            std::fs::create_dir_all(dir).map_err(|e| io_err("create directory", dir, e))?;
        }
        // Garbage collection deletes what list_temp finds, so the temp directory must not be
        // one that holds permanent blobs.
        let canonical = |dir: &Path| {
            std::fs::canonicalize(dir).map_err(|e| io_err("resolve directory", dir, e))
        };
        let tmp = canonical(tmp_location)?;
        if tmp == canonical(location)? || tmp == canonical(&quarantine)? {
            return Err(BlobError::Config(format!(
                "PDS_BLOBSTORE_DISK_TMP_LOCATION ({}) must differ from the blob location and its \
                 quarantine directory",
                tmp_location.display()
            )));
        }
        Ok(DiskBlobStore {
            location: location.to_path_buf(),
            tmp_location: tmp_location.to_path_buf(),
            quarantine,
        })
    }

    fn did_dir(&self, root: &Path, did: &Did) -> Result<PathBuf, BlobError> {
        check_component(did.as_str())?;
        Ok(root.join(did.as_str()))
    }

    fn temp_path(&self, did: &Did, key: &str) -> Result<PathBuf, BlobError> {
        check_temp_key(key)?;
        Ok(self.did_dir(&self.tmp_location, did)?.join(key))
    }

    fn stored_path(&self, did: &Did, cid: &Cid) -> Result<PathBuf, BlobError> {
        cid_path(&self.did_dir(&self.location, did)?, cid)
    }

    fn quarantine_path(&self, did: &Did, cid: &Cid) -> Result<PathBuf, BlobError> {
        cid_path(&self.did_dir(&self.quarantine, did)?, cid)
    }

    /// Copies `from` to `to` through a dot-file and a rename (for a temp directory on another
    /// filesystem, where a rename cannot cross).
    async fn copy_into_place(&self, from: &Path, to: &Path) -> Result<(), BlobError> {
        let partial = partial_path(to);
        let _guard = RemoveOnDrop::new(&partial);
        fs::copy(from, &partial)
            .await
            .map_err(|e| io_err("copy", from, e))?;
        sync_file(&partial).await?;
        rename_synced(&partial, to).await
    }
}

/// The file back from a batch written by `put_temp`, or the batch's error.
async fn join_write(
    task: tokio::task::JoinHandle<io::Result<std::fs::File>>,
    path: &Path,
) -> Result<std::fs::File, BlobError> {
    task.await
        .map_err(|e| io_err("write", path, io::Error::other(e)))?
        .map_err(|e| io_err("write", path, e))
}

#[async_trait]
impl BlobStore for DiskBlobStore {
    async fn put_temp(&self, did: &Did, mut body: ByteStream<'_>) -> Result<String, BlobError> {
        let key = new_temp_key();
        let path = self.temp_path(did, &key)?;
        // The account's temp directory usually exists: try the file first, so the common case
        // is one trip to a blocking thread rather than two.
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        let file = match options.open(&path).await {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_parent(&path).await?;
                options.open(&path).await
            }
            other => other,
        }
        .map_err(|e| io_err("create", &path, e))?;
        // Removes the file on every way out but success, including this future being dropped
        // (a client that disconnects mid-upload).
        let guard = RemoveOnDrop::new(&path);
        // Body chunks (a few KiB, owned `Bytes` from the socket) are gathered, without
        // copying, into batches of TEMP_WRITE_BUFFER and written on a blocking thread while
        // the next batch arrives and is hashed: one hand-off per batch rather than per chunk,
        // and no copy in user space. No fsync here: a temporary blob is synced when it
        // becomes permanent (`make_permanent`), as only then does a record depend on it.
        let mut file = Some(file.into_std().await);
        let mut writing: Option<tokio::task::JoinHandle<io::Result<std::fs::File>>> = None;
        let mut batch: Vec<Bytes> = Vec::new();
        let mut batched = 0;
        let written: Result<(), BlobError> = async {
            loop {
                let chunk = body.next().await;
                let end = chunk.is_none();
                if let Some(chunk) = chunk {
                    let chunk = chunk.map_err(BlobError::Body)?;
                    batched += chunk.len();
                    batch.push(chunk);
                }
                if batched < TEMP_WRITE_BUFFER && !end {
                    continue;
                }
                // One batch in flight at a time: wait for the previous one to get the file.
                if let Some(previous) = writing.take() {
                    file = Some(join_write(previous, &path).await?);
                }
                let Some(mut f) = file.take() else {
                    return Err(io_err("write", &path, io::Error::other("file lost")));
                };
                let out = std::mem::take(&mut batch);
                batched = 0;
                writing = Some(tokio::task::spawn_blocking(move || {
                    for chunk in &out {
                        io::Write::write_all(&mut f, chunk)?;
                    }
                    Ok(f)
                }));
                if end {
                    if let Some(last) = writing.take() {
                        join_write(last, &path).await?;
                    }
                    return Ok(());
                }
            }
        }
        .await;
        written?;
        guard.keep();
        Ok(key)
    }

    async fn make_permanent(&self, did: &Did, temp_key: &str, cid: &Cid) -> Result<(), BlobError> {
        let temp = self.temp_path(did, temp_key)?;
        let stored = self.stored_path(did, cid)?;
        if exists(&stored).await? {
            return remove_if_present(&temp).await;
        }
        create_parent(&stored).await?;
        // The upload was not synced (`put_temp`); it must be before the rename publishes it.
        match sync_file(&temp).await {
            Err(BlobError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
        match fs::rename(&temp, &stored).await {
            Ok(()) => sync_parent(&stored).await,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A concurrent make_permanent of the same upload may have won the race.
                if exists(&stored).await? {
                    Ok(())
                } else {
                    Err(BlobError::NotFound(format!("temporary blob {temp_key}")))
                }
            }
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                self.copy_into_place(&temp, &stored).await?;
                remove_if_present(&temp).await
            }
            Err(e) => Err(io_err("rename", &temp, e)),
        }
    }

    async fn put_permanent(&self, did: &Did, cid: &Cid, bytes: Bytes) -> Result<(), BlobError> {
        let stored = self.stored_path(did, cid)?;
        if exists(&stored).await? {
            return Ok(());
        }
        create_parent(&stored).await?;
        let partial = partial_path(&stored);
        let _guard = RemoveOnDrop::new(&partial);
        async {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&partial)
                .await
                .map_err(|e| io_err("create", &partial, e))?;
            file.write_all(&bytes)
                .await
                .map_err(|e| io_err("write", &partial, e))?;
            file.flush()
                .await
                .map_err(|e| io_err("write", &partial, e))?;
            file.sync_all()
                .await
                .map_err(|e| io_err("fsync", &partial, e))?;
            drop(file);
            rename_synced(&partial, &stored).await
        }
        .await
    }

    async fn get(&self, did: &Did, cid: &Cid) -> Result<Option<BlobContent>, BlobError> {
        let path = self.stored_path(did, cid)?;
        let file = match fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open", &path, e)),
        };
        let size = file
            .metadata()
            .await
            .map_err(|e| io_err("stat", &path, e))?
            .len();
        let body = tokio_util::io::ReaderStream::with_capacity(file, READ_CHUNK);
        Ok(Some(BlobContent {
            size,
            body: Box::pin(body),
        }))
    }

    async fn has_stored(&self, did: &Did, cid: &Cid) -> Result<bool, BlobError> {
        exists(&self.stored_path(did, cid)?).await
    }

    async fn has_temp(&self, did: &Did, key: &str) -> Result<bool, BlobError> {
        exists(&self.temp_path(did, key)?).await
    }

    async fn delete(&self, did: &Did, cid: &Cid) -> Result<(), BlobError> {
        remove_if_present(&self.stored_path(did, cid)?).await?;
        remove_if_present(&self.quarantine_path(did, cid)?).await
    }

    async fn delete_many(&self, did: &Did, cids: &[Cid]) -> Result<(), BlobError> {
        for cid in cids {
            self.delete(did, cid).await?;
        }
        Ok(())
    }

    async fn delete_temp(&self, did: &Did, key: &str) -> Result<(), BlobError> {
        remove_if_present(&self.temp_path(did, key)?).await
    }

    async fn quarantine(&self, did: &Did, cid: &Cid) -> Result<(), BlobError> {
        let from = self.stored_path(did, cid)?;
        let to = self.quarantine_path(did, cid)?;
        move_between(&from, &to, cid).await
    }

    async fn unquarantine(&self, did: &Did, cid: &Cid) -> Result<(), BlobError> {
        let from = self.quarantine_path(did, cid)?;
        let to = self.stored_path(did, cid)?;
        move_between(&from, &to, cid).await
    }

    async fn list_temp(&self) -> Result<Vec<TempBlob>, BlobError> {
        let mut out = Vec::new();
        for (name, dir_path) in read_dir_names(&self.tmp_location).await? {
            let Ok(did) = name.parse::<Did>() else {
                continue;
            };
            for (key, path) in read_dir_names(&dir_path).await? {
                if check_temp_key(&key).is_err() {
                    continue;
                }
                let meta = match fs::metadata(&path).await {
                    Ok(meta) if meta.is_file() => meta,
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err("stat", &path, e)),
                };
                let modified = meta.modified().map_err(|e| io_err("stat", &path, e))?;
                out.push(TempBlob {
                    did: did.clone(),
                    key,
                    modified,
                });
            }
        }
        Ok(out)
    }

    async fn list_stored(&self, did: &Did) -> Result<Vec<Cid>, BlobError> {
        let dir = self.did_dir(&self.location, did)?;
        Ok(read_dir_names(&dir)
            .await?
            .into_iter()
            .filter_map(|(name, _)| Cid::try_from(name.as_str()).ok())
            .collect())
    }
}

/// Removes a file being written unless [`RemoveOnDrop::keep`] is called. After a successful
/// rename the path no longer exists, so the removal is a harmless no-op there.
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn new(path: &Path) -> RemoveOnDrop {
        RemoveOnDrop(Some(path.to_path_buf()))
    }

    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            // Synchronous: Drop cannot await, and unlinking one file is quick.
            let _ = std::fs::remove_file(path);
        }
    }
}

fn io_err(op: &'static str, path: &Path, source: io::Error) -> BlobError {
    BlobError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

fn cid_path(dir: &Path, cid: &Cid) -> Result<PathBuf, BlobError> {
    let name = cid.to_string();
    check_component(&name)?;
    Ok(dir.join(name))
}

/// A dot-file beside `target` that list_stored ignores (it is not a CID) and no other write
/// can pick (random suffix).
fn partial_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.{}.partial", new_temp_key()))
}

async fn exists(path: &Path) -> Result<bool, BlobError> {
    fs::try_exists(path)
        .await
        .map_err(|e| io_err("stat", path, e))
}

async fn create_parent(path: &Path) -> Result<(), BlobError> {
    match path.parent() {
        Some(dir) => fs::create_dir_all(dir)
            .await
            .map_err(|e| io_err("create directory", dir, e)),
        None => Ok(()),
    }
}

async fn remove_if_present(path: &Path) -> Result<(), BlobError> {
    match fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", path, e)),
    }
}

async fn sync_file(path: &Path) -> Result<(), BlobError> {
    let file = fs::File::open(path)
        .await
        .map_err(|e| io_err("open", path, e))?;
    file.sync_all().await.map_err(|e| io_err("fsync", path, e))
}

/// Fsyncs the directory holding `path`, so a rename into it survives a crash.
async fn sync_parent(path: &Path) -> Result<(), BlobError> {
    match path.parent() {
        Some(dir) => sync_file(dir).await,
        None => Ok(()),
    }
}

async fn rename_synced(from: &Path, to: &Path) -> Result<(), BlobError> {
    fs::rename(from, to)
        .await
        .map_err(|e| io_err("rename", from, e))?;
    sync_parent(to).await
}

/// Moves a blob between its stored and quarantined places. Idempotent: when only the
/// destination exists the move is taken as done.
async fn move_between(from: &Path, to: &Path, cid: &Cid) -> Result<(), BlobError> {
    create_parent(to).await?;
    match fs::rename(from, to).await {
        Ok(()) => sync_parent(to).await,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if exists(to).await? {
                Ok(())
            } else {
                Err(BlobError::NotFound(format!("blob {cid}")))
            }
        }
        Err(e) => Err(io_err("rename", from, e)),
    }
}

/// `(file name, path)` of each entry of `dir`; an absent directory has none. Names that are
/// not UTF-8 are skipped (nothing this store writes has one).
async fn read_dir_names(dir: &Path) -> Result<Vec<(String, PathBuf)>, BlobError> {
    let mut entries = match fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", dir, e)),
    };
    let mut out = Vec::new();
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|e| io_err("list", dir, e))?
    {
        if let Ok(name) = entry.file_name().into_string() {
            out.push((name, entry.path()));
        }
    }
    Ok(out)
}
