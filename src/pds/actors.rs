//! Open actor stores, one per account, each with its in-memory repo and signing key.
//!
//! Invariants:
//! - At most one [`ActorStore`] per account is open in this process, and every read and write
//!   of that account goes through it (the store keeps MST nodes pending in memory; see
//!   `store::actor`). Its mutex serializes the account's writes; different accounts proceed in
//!   parallel.
//! - The cached [`Repo`] always equals the stored root: a write builds the next `Repo`, stores
//!   the commit, and only then replaces the cached one. A failed write leaves both as they were.
//! - Store locks are only taken on blocking threads ([`Actors::run`]), never on async workers.
//!   Record reads ([`Actors::read`]) skip the store: they run inline on read-only connections
//!   of their own, which see every committed record (see `store::actor::RecordReader`).

use crate::crypto::Keypair;
use crate::repo::Repo;
use crate::store::StoreError;
use crate::store::actor::{self, ActorStore, RecordReader};
use crate::store::sqlite::Durability;
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
    durability: Durability,
    open: Mutex<HashMap<String, Arc<Mutex<ActorState>>>>,
    /// Idle record readers by account.
    readers: Mutex<HashMap<String, Vec<RecordReader>>>,
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
    pub fn new(dir: PathBuf, durability: Durability) -> Self {
        Actors {
            dir,
            durability,
            open: Mutex::new(HashMap::new()),
            readers: Mutex::new(HashMap::new()),
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
            self.durability,
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
        if let Ok(mut readers) = self.readers.lock() {
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
            f(&mut guard)
        })
        .await
        .map_err(|e| XrpcError::internal(format!("actor task failed: {e}")))?
    }

    /// Runs the record read `f` right here, on one of the account's read-only connections: a
    /// point read costs microseconds, less than the hand-off to a blocking thread, and never
    /// waits for the account's writes.
    pub fn read<R>(
        &self,
        did: &Did,
        f: impl FnOnce(&RecordReader) -> Result<R, StoreError>,
    ) -> Result<R, XrpcError> {
        let idle = self
            .readers
            .lock()
            .ok()
            .and_then(|mut readers| readers.get_mut(did.as_str()).and_then(Vec::pop));
        let reader = match idle {
            Some(reader) => reader,
            None => {
                if !self.exists(did) {
                    return Err(XrpcError::bad_request(
                        "RepoNotFound",
                        format!("Could not find repo for DID: {did}"),
                    ));
                }
                RecordReader::open(&actor::store_path(&self.dir, did.as_str()))
                    .map_err(store_error)?
            }
        };
        let out = f(&reader).map_err(store_error);
        if let Ok(mut readers) = self.readers.lock() {
            if readers.len() >= MAX_OPEN && !readers.contains_key(did.as_str()) {
                // Readers are cheap to reopen: start over rather than track use.
                readers.clear();
            }
            let idle = readers.entry(did.as_str().to_string()).or_default();
            if idle.len() < READERS_PER_ACTOR {
                idle.push(reader);
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

pub fn store_error(e: StoreError) -> XrpcError {
    XrpcError::internal(format!("actor store: {e}"))
}
