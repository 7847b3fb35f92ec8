//! Open actor stores, one per account, each with its in-memory repo and signing key.
//!
//! Invariants:
//! - At most one [`ActorStore`] per account is open in this process, and every read and write
//!   of that account goes through it (the store keeps MST nodes pending in memory; see
//!   `store::actor`). Its mutex serializes the account's writes; different accounts proceed in
//!   parallel.
//! - The cached [`Repo`] always equals the stored root: a write builds the next `Repo`, stores
//!   the commit, and only then replaces the cached one. A failed write leaves both as they were.
//! - Store locks are waited for only on blocking threads ([`Actors::run`]). An async worker
//!   takes one only when it is free, for a write of a few ops ([`Actors::run_quick`]).
//!   Record reads ([`Actors::read`]) skip the store: they run inline on read-only connections
//!   of their own, which see every committed record (see `store::actor::RecordReader`).
//! - Every closure run under an account's lock, and every close, drops the account's cached
//!   `getRecord` responses ([`RecordCache`]) before the lock is released.

use super::record_cache::RecordCache;
use crate::crypto::Keypair;
use crate::repo::Repo;
use crate::store::StoreError;
use crate::store::actor::{self, ActorStore, RecordReader};
#[cfg(test)]
use crate::store::sqlite::Durability;
use crate::store::sqlite::Tuning;
use crate::syntax::Did;
use crate::xrpc::XrpcError;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// How many idle actor stores stay open; beyond this, unused ones are closed (and flushed).
const MAX_OPEN: usize = 512;

/// Idle read-only connections kept per account.
const READERS_PER_ACTOR: usize = 4;

/// The registry of open actor stores.
pub struct Actors {
    dir: PathBuf,
    tuning: Tuning,
    open: Mutex<HashMap<String, Arc<Mutex<ActorState>>>>,
    /// Idle record readers by account, each with the [`Actors::closes`] count it was opened
    /// under.
    readers: Mutex<HashMap<String, Vec<(u64, RecordReader)>>>,
    /// Bumped by every [`Actors::close`]: a reader opened before a close may hold the files of
    /// a deleted (or since re-created) repo, so it is never reused after one.
    closes: std::sync::atomic::AtomicU64,
    /// `getRecord` responses, invalidated by every [`Actors::run`] and [`Actors::close`].
    pub records: RecordCache,
}

/// One account's open store.
pub struct ActorState {
    pub did: Did,
    pub store: ActorStore,
    repo: Option<Repo>,
    key: Option<Keypair>,
}

impl ActorState {
    /// The repo at the stored root, loaded on first use.
    pub fn repo(&mut self) -> Result<&Repo, XrpcError> {
        if self.repo.is_none() {
            let root = self
                .store
                .root()
                .map_err(store_error)?
                .ok_or_else(|| XrpcError::bad_request("RepoNotFound", "Repo has no commit"))?;
            let repo = Repo::load(&self.store, root.cid)
                .map_err(|e| XrpcError::internal(format!("loading repo: {e}")))?;
            self.repo = Some(repo);
        }
        self.repo
            .as_ref()
            .ok_or_else(|| XrpcError::internal("repo not loaded"))
    }

    /// Replaces the cached repo after its commit was stored.
    pub fn set_repo(&mut self, repo: Repo) {
        self.repo = Some(repo);
    }

    /// Forgets the cached repo (after the store's content was replaced, e.g. by an import).
    pub fn reset_repo(&mut self) {
        self.repo = None;
    }

    /// The account's repo signing key, read from its `key` file on first use.
    pub fn key(&mut self, actors_dir: &std::path::Path) -> Result<&Keypair, XrpcError> {
        if self.key.is_none() {
            let key = actor::read_signing_key(actors_dir, self.did.as_str())
                .map_err(|e| XrpcError::internal(format!("reading the signing key: {e}")))?;
            self.key = Some(key);
        }
        self.key
            .as_ref()
            .ok_or_else(|| XrpcError::internal("signing key not loaded"))
    }
}

impl Actors {
    pub fn new(dir: PathBuf, tuning: impl Into<Tuning>) -> Self {
        Actors {
            dir,
            tuning: tuning.into(),
            open: Mutex::new(HashMap::new()),
            readers: Mutex::new(HashMap::new()),
            closes: std::sync::atomic::AtomicU64::new(0),
            records: RecordCache::default(),
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Whether the account has a store on disk.
    pub fn exists(&self, did: &Did) -> bool {
        actor::store_path(&self.dir, did.as_str()).exists()
    }

    /// The account's open store, opening it if needed. Blocking: call from a blocking thread.
    pub fn get(&self, did: &Did) -> Result<Arc<Mutex<ActorState>>, XrpcError> {
        let mut open = self
            .open
            .lock()
            .map_err(|_| XrpcError::internal("actor registry lock poisoned"))?;
        if let Some(state) = open.get(did.as_str()) {
            return Ok(state.clone());
        }
        if !self.exists(did) {
            return Err(XrpcError::bad_request(
                "RepoNotFound",
                format!("Could not find repo for DID: {did}"),
            ));
        }
        if open.len() >= MAX_OPEN {
            // Close stores nobody holds; each flushes its pending nodes on drop.
            open.retain(|_, s| Arc::strong_count(s) > 1);
        }
        let store = ActorStore::open(
            &actor::store_path(&self.dir, did.as_str()),
            did.as_str(),
            self.tuning,
        )
        .map_err(store_error)?;
        let state = Arc::new(Mutex::new(ActorState {
            did: did.clone(),
            store,
            repo: None,
            key: None,
        }));
        open.insert(did.as_str().to_string(), state.clone());
        Ok(state)
    }

    /// Closes the account's store if open (before deleting or replacing its files).
    pub fn close(&self, did: &Did) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(did.as_str());
        }
        self.records.invalidate(did.as_str());
        if let Ok(mut readers) = self.readers.lock() {
            self.closes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            readers.remove(did.as_str());
        }
    }

    /// Runs `f` with the account's store locked, on a blocking thread.
    pub async fn run<R: Send + 'static>(
        self: &Arc<Self>,
        did: &Did,
        f: impl FnOnce(&mut ActorState) -> Result<R, XrpcError> + Send + 'static,
    ) -> Result<R, XrpcError> {
        let (actors, did) = (self.clone(), did.clone());
        tokio::task::spawn_blocking(move || {
            let state = actors.get(&did)?;
            let mut guard = state
                .lock()
                .map_err(|_| XrpcError::internal("actor store lock poisoned"))?;
            let out = f(&mut guard);
            // Under the lock, so no later write's invalidation can come before this one.
            actors.records.invalidate(did.as_str());
            out
        })
        .await
        .map_err(|e| XrpcError::internal(format!("actor task failed: {e}")))?
    }

    /// As [`Actors::run`], for work of well under a millisecond (a few record writes): when
    /// the account's store is open and its lock free, `f` runs right here on the async worker.
    /// The hand-off to a blocking thread and back costs about as much as such a write (the
    /// threads' wake-ups), and a free lock means no waiting. Otherwise, as `run`.
    ///
    /// `f` may block briefly; anything that must wait on async work uses [`block_on`].
    pub async fn run_quick<R: Send + 'static>(
        self: &Arc<Self>,
        did: &Did,
        f: impl FnOnce(&mut ActorState) -> Result<R, XrpcError> + Send + 'static,
    ) -> Result<R, XrpcError> {
        let on_worker = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let open = match self.open.lock() {
            Ok(open) if on_worker => open.get(did.as_str()).cloned(),
            _ => None,
        };
        if let Some(state) = open
            && let Ok(mut guard) = state.try_lock()
        {
            let out = f(&mut guard);
            self.records.invalidate(did.as_str());
            return out;
        }
        self.run(did, f).await
    }

    /// Runs the record read `f` right here, on one of the account's read-only connections: a
    /// point read costs microseconds, less than the hand-off to a blocking thread, and never
    /// waits for the account's writes.
    pub fn read<R>(
        &self,
        did: &Did,
        f: impl FnOnce(&RecordReader) -> Result<R, StoreError>,
    ) -> Result<R, XrpcError> {
        let epoch = self.closes.load(std::sync::atomic::Ordering::SeqCst);
        let idle = self
            .readers
            .lock()
            .ok()
            .and_then(|mut readers| readers.get_mut(did.as_str()).and_then(Vec::pop))
            .filter(|(opened, _)| *opened == epoch);
        let (opened, reader) = match idle {
            Some(idle) => idle,
            None => {
                if !self.exists(did) {
                    return Err(XrpcError::bad_request(
                        "RepoNotFound",
                        format!("Could not find repo for DID: {did}"),
                    ));
                }
                let path = actor::store_path(&self.dir, did.as_str());
                (epoch, RecordReader::open(&path).map_err(store_error)?)
            }
        };
        let out = f(&reader).map_err(store_error);
        if let Ok(mut readers) = self.readers.lock()
            && opened == self.closes.load(std::sync::atomic::Ordering::SeqCst)
        {
            if readers.len() >= MAX_OPEN && !readers.contains_key(did.as_str()) {
                // Readers are cheap to reopen: start over rather than track use.
                readers.clear();
            }
            let idle = readers.entry(did.as_str().to_string()).or_default();
            if idle.len() < READERS_PER_ACTOR {
                idle.push((opened, reader));
            }
        }
        out
    }

    /// Writes every open store's pending nodes (shutdown, idle).
    pub fn flush_all(&self) {
        let states: Vec<_> = match self.open.lock() {
            Ok(open) => open.values().cloned().collect(),
            Err(_) => return,
        };
        for state in states {
            if let Ok(mut s) = state.lock()
                && let Err(e) = s.store.flush()
            {
                tracing::warn!(did = %s.did, "flushing actor store: {e}");
            }
        }
    }
}

/// Waits for `fut` from synchronous code under an account's lock, on a blocking thread or,
/// inside [`Actors::run_quick`], on an async worker (which first hands its other tasks to
/// another thread, as `tokio::task::block_in_place` does).
pub fn block_on<F: std::future::Future>(rt: &tokio::runtime::Handle, fut: F) -> F::Output {
    tokio::task::block_in_place(|| rt.block_on(fut))
}

pub fn store_error(e: StoreError) -> XrpcError {
    XrpcError::internal(format!("actor store: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Curve, Keypair};
    use crate::repo::RecordWrite;

    /// A repo for `did` under `dir` holding one post with `text`.
    fn repo_with_post(dir: &std::path::Path, did: &Did, text: &str) {
        let path = actor::store_path(dir, did.as_str());
        let mut store = ActorStore::open(&path, did.as_str(), Durability::Off).unwrap();
        let key = Keypair::generate(Curve::K256);
        let (repo, genesis) = Repo::create(did.clone(), &key).unwrap();
        store.apply_commit(&genesis).unwrap();
        let record = crate::data::json::from_json(
            &serde_json::json!({"$type": "app.bsky.feed.post", "text": text}),
        )
        .unwrap();
        let write = RecordWrite::Create {
            collection: "app.bsky.feed.post".try_into().unwrap(),
            rkey: "post".try_into().unwrap(),
            record,
        };
        let (_, data) = repo.format_commit(&store, &[write], &key).unwrap();
        store.apply_commit(&data).unwrap();
        store.flush().unwrap();
    }

    fn read_text(actors: &Actors, did: &Did) -> String {
        let (_, bytes) = actors
            .read(did, |r| r.get_record("app.bsky.feed.post", "post"))
            .unwrap()
            .expect("the post");
        let value = crate::data::json::to_json(&crate::data::cbor::decode(&bytes).unwrap());
        value["text"].as_str().unwrap().to_string()
    }

    #[test]
    fn a_repo_deleted_and_created_again_is_read_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let did: Did = "did:plc:ewvi7nxzyoun6zhxrhs64oiz".parse().unwrap();
        let actors = Actors::new(dir.path().to_path_buf(), Durability::Off);
        repo_with_post(dir.path(), &did, "first life");
        assert_eq!(read_text(&actors, &did), "first life");
        assert_eq!(
            read_text(&actors, &did),
            "first life",
            "from the pooled reader"
        );

        // Account deletion: close, remove the files; then the same DID arrives again.
        actors.close(&did);
        std::fs::remove_dir_all(actor::actor_dir(dir.path(), did.as_str())).unwrap();
        repo_with_post(dir.path(), &did, "second life");
        assert_eq!(read_text(&actors, &did), "second life");
    }
}
