//! The actor store: one SQLite file per account holding its repository.
//!
//! Layout as the reference PDS: `<actors dir>/<first 2 hex of sha256(did)>/<did>/store.sqlite`.
//!
//! Invariants:
//! - A commit is applied in one transaction ([`ActorStore::apply_commit`]): its blocks, record
//!   rows and the new root land together or not at all, so the stored root always points at a
//!   complete, verifiable tree whatever kills the process.
//! - A block is deleted only when no remaining record row points at it (two paths may hold
//!   identical record content, hence the same CID).
//! - MST nodes are written back lazily. Commits, record blocks and record rows land with every
//!   commit, but new and removed nodes wait in memory ([`PendingNodes`]) and are written with
//!   every [`FLUSH_EVERY`]th commit, by [`ActorStore::flush`], or on drop. Most nodes a commit
//!   writes are replaced a few commits later, so most never touch the disk. This is safe
//!   because nodes are a function of the records: after a crash, [`ActorStore::open`] finds the
//!   stored root's tree missing, rebuilds it from the record rows, checks it against the
//!   commit's `data`, and drops the stale nodes. Readers of this `ActorStore` see pending nodes;
//!   hence one `ActorStore` per account per process is the writer, and all reads go through it.

use super::StoreError;
use super::actor_index::{BlobCheck, index_commit};
use super::sqlite::{self, ACTOR_MIGRATIONS, Tuning};
use crate::crypto::{Curve, Keypair};
use crate::data::Cid;
use crate::repo::{BlockSource, CommitData, RecordOp, RepoError};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Pending MST nodes are written with every this many commits (and on flush or drop).
pub const FLUSH_EVERY: usize = 64;

/// An account's directory under the actors directory: `<2 hex of sha256(did)>/<did>`.
pub fn actor_dir(actors_dir: &Path, did: &str) -> PathBuf {
    let hash = Sha256::digest(did.as_bytes());
    let prefix = data_encoding::HEXLOWER.encode(&hash[..1]);
    actors_dir.join(prefix).join(did)
}

/// Where an account's store lives under the actors directory.
pub fn store_path(actors_dir: &Path, did: &str) -> PathBuf {
    actor_dir(actors_dir, did).join("store.sqlite")
}

/// Saves the account's repo signing key as the reference does: 32 raw secp256k1 bytes in
/// `<actor dir>/key`, readable by the owner only. Refuses to overwrite an existing key.
pub fn write_signing_key(actors_dir: &Path, did: &str, key: &Keypair) -> Result<(), StoreError> {
    let dir = actor_dir(actors_dir, did);
    std::fs::create_dir_all(&dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(dir.join("key"))?;
    std::io::Write::write_all(&mut file, &key.private_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Loads the account's repo signing key saved by [`write_signing_key`].
pub fn read_signing_key(actors_dir: &Path, did: &str) -> Result<Keypair, StoreError> {
    let path = actor_dir(actors_dir, did).join("key");
    let bytes = std::fs::read(&path)?;
    Keypair::from_private_bytes(Curve::K256, &bytes)
        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))
}

/// The repo's current commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRoot {
    pub cid: Cid,
    pub rev: String,
}

/// A record row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub collection: String,
    pub rkey: String,
    pub cid: Cid,
}

pub struct ActorStore {
    pub(super) conn: Connection,
    pub(super) did: String,
    pub(super) pending: PendingNodes,
}

/// MST node changes not yet written: `added` nodes are not on disk; `removed` nodes are on disk
/// but no longer in the tree. So the current tree's nodes = disk ∪ added − removed.
#[derive(Debug, Default, Clone)]
pub(super) struct PendingNodes {
    added: HashMap<Cid, (String, Vec<u8>)>,
    removed: HashSet<Cid>,
    commits: usize,
}

/// One node change of a commit, applied to [`PendingNodes`] only once its transaction commits.
enum NodeChange {
    Add(Cid, String, Vec<u8>),
    Remove(Cid),
}

impl PendingNodes {
    fn apply(&mut self, changes: Vec<NodeChange>, commits: usize) {
        for change in changes {
            match change {
                NodeChange::Add(cid, rev, bytes) => {
                    // A node removed earlier and now back is still on disk.
                    if !self.removed.remove(&cid) {
                        self.added.entry(cid).or_insert((rev, bytes));
                    }
                }
                NodeChange::Remove(cid) => {
                    if self.added.remove(&cid).is_none() {
                        self.removed.insert(cid);
                    }
                }
            }
        }
        self.commits += commits;
    }

    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    /// Writes the pending nodes in `tx`.
    fn write(&self, tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
        let mut put = tx.prepare_cached(
            "INSERT INTO repo_block (cid, repo_rev, size, content) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
        )?;
        for (cid, (rev, bytes)) in &self.added {
            put.execute(params![cid.to_bytes(), rev, bytes.len() as i64, bytes])?;
        }
        let mut del = tx.prepare_cached("DELETE FROM repo_block WHERE cid = ?1")?;
        for cid in &self.removed {
            del.execute([cid.to_bytes()])?;
        }
        Ok(())
    }
}

impl ActorStore {
    /// Opens (creating if needed) the store at `path` for `did`.
    pub fn open(path: &Path, did: &str, tuning: impl Into<Tuning>) -> Result<Self, StoreError> {
        let tuning = tuning.into();
        let mut conn = sqlite::open(path, ACTOR_MIGRATIONS, tuning)?;
        // A write holds its account's lock; a checkpoint (the repo's pages copied and fsynced)
        // would hold up every write queued behind it.
        if tuning.auto_checkpoint {
            sqlite::checkpoint_on_shared_thread(&mut conn, path, sqlite::CHECKPOINT_FRAMES)?;
        }
        let mut store = ActorStore {
            conn,
            did: did.to_string(),
            pending: PendingNodes::default(),
        };
        store.recover_nodes()?;
        Ok(store)
    }

    /// An in-memory store (tests, scratch verification).
    pub fn open_in_memory(did: &str) -> Result<Self, StoreError> {
        Ok(ActorStore {
            conn: sqlite::open_in_memory(ACTOR_MIGRATIONS)?,
            did: did.to_string(),
            pending: PendingNodes::default(),
        })
    }

    pub fn did(&self) -> &str {
        &self.did
    }

    /// The current commit, or `None` for a store with no repo yet.
    pub fn root(&self) -> Result<Option<RepoRoot>, StoreError> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT cid, rev FROM repo_root WHERE did = ?1",
                [&self.did],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(cid, rev)| {
            Ok(RepoRoot {
                cid: parse_cid(&cid)?,
                rev,
            })
        })
        .transpose()
    }

    /// Applies a commit in one transaction. Every blob its records reference must have a
    /// matching `blob` row. Returns the blobs no record references any more (their rows are
    /// gone; deleting their bytes is the caller's job, after this returns).
    pub fn apply_commit(&mut self, c: &CommitData) -> Result<Vec<Cid>, StoreError> {
        self.apply_commits(std::slice::from_ref(c), BlobCheck::Require)
    }

    /// Applies consecutive commits (each built on the one before) in one transaction: all of
    /// them land or none does. A writer with several commits queued stores them together, so
    /// the per-transaction cost (WAL frames for shared pages, locking) is paid once.
    pub fn apply_commits(
        &mut self,
        commits: &[CommitData],
        check: BlobCheck,
    ) -> Result<Vec<Cid>, StoreError> {
        let Some(last) = commits.last() else {
            return Ok(Vec::new());
        };
        let now = crate::syntax::Datetime::now().to_string();
        let tx = self.conn.transaction()?;
        let mut changes = Vec::new();
        let mut unreferenced_blobs = Vec::new();
        for c in commits {
            write_commit(&tx, c, &now)?;
            unreferenced_blobs.extend(index_commit(&tx, &self.did, c, check)?);
            let rev = c.rev.to_string();
            for cid in &c.removed_nodes {
                changes.push(NodeChange::Remove(*cid));
            }
            for cid in &c.new_nodes {
                if let Some(bytes) = c.new_blocks.get(cid) {
                    changes.push(NodeChange::Add(*cid, rev.clone(), bytes.clone()));
                }
            }
        }
        let flush = self.pending.commits + commits.len() >= FLUSH_EVERY;
        let flushed = if flush {
            let mut all = self.pending.clone();
            all.apply(std::mem::take(&mut changes), commits.len());
            all.write(&tx)?;
            true
        } else {
            false
        };
        tx.prepare_cached(
            "INSERT INTO repo_root (did, cid, rev, indexed_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (did) DO UPDATE SET cid = excluded.cid, rev = excluded.rev,
               indexed_at = excluded.indexed_at",
        )?
        .execute(params![
            self.did,
            last.cid.to_string(),
            last.rev.to_string(),
            now
        ])?;
        tx.commit()?;
        if flushed {
            self.pending = PendingNodes::default();
        } else {
            self.pending.apply(changes, commits.len());
        }
        Ok(unreferenced_blobs)
    }

    /// Writes pending MST nodes now (before handing the file to another process, or when idle).
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            self.pending.commits = 0;
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        self.pending.write(&tx)?;
        tx.commit()?;
        self.pending = PendingNodes::default();
        Ok(())
    }

    /// Forgets pending nodes: the caller replaced the whole repo (import).
    pub(super) fn discard_pending(&mut self) {
        self.pending = PendingNodes::default();
    }

    /// After a crash with nodes pending, the stored commit's tree is missing on disk: rebuild it
    /// from the record rows (nodes are a function of the records), check it against the commit,
    /// and drop stale nodes. One write transaction, so a concurrent writer is not interleaved.
    fn recover_nodes(&mut self) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let root: Option<String> = tx
            .query_row(
                "SELECT cid FROM repo_root WHERE did = ?1",
                [&self.did],
                |r| r.get(0),
            )
            .optional()?;
        let Some(root) = root else { return Ok(()) };
        let root = parse_cid(&root)?;
        let block = |cid: &Cid| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(tx
                .prepare_cached("SELECT content FROM repo_block WHERE cid = ?1")?
                .query_row([cid.to_bytes()], |r| r.get(0))
                .optional()?)
        };
        let commit_bytes = block(&root)?
            .ok_or_else(|| StoreError::Corrupt(format!("commit block {root} is missing")))?;
        let commit = crate::repo::Commit::from_cbor(&commit_bytes)
            .map_err(|e| StoreError::Corrupt(format!("commit {root}: {e}")))?;
        if block(&commit.data)?.is_some() {
            return Ok(());
        }
        tracing::warn!(did = %self.did, "MST nodes missing after an unclean stop; rebuilding from records");
        let mut entries: Vec<(String, Cid)> = Vec::new();
        {
            let mut stmt = tx.prepare("SELECT collection, rkey, cid FROM record")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let (c, k, cid): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
                entries.push((format!("{c}/{k}"), parse_cid(&cid)?));
            }
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let keep_records: Vec<Cid> = entries.iter().map(|e| e.1).collect();
        let mst = crate::repo::Mst::from_sorted(entries)
            .map_err(|e| StoreError::Corrupt(format!("rebuilding the MST: {e}")))?;
        if mst.root() != commit.data {
            return Err(StoreError::Corrupt(format!(
                "records rebuild MST root {}, but commit {root} has data {}",
                mst.root(),
                commit.data
            )));
        }
        let nodes = mst
            .node_blocks(&crate::repo::NoBlocks)
            .map_err(|e| StoreError::Corrupt(format!("rebuilding the MST: {e}")))?;
        tx.execute_batch(
            "DROP TABLE IF EXISTS temp.keep_block;
             CREATE TEMP TABLE keep_block (cid BLOB PRIMARY KEY) WITHOUT ROWID;",
        )?;
        {
            let mut keep = tx.prepare("INSERT OR IGNORE INTO temp.keep_block (cid) VALUES (?1)")?;
            let mut put = tx.prepare(
                "INSERT INTO repo_block (cid, repo_rev, size, content) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
            )?;
            for (cid, bytes) in &nodes {
                put.execute(params![
                    cid.to_bytes(),
                    commit.rev.to_string(),
                    bytes.len() as i64,
                    bytes
                ])?;
                keep.execute([cid.to_bytes()])?;
            }
            for cid in keep_records.iter().chain([&root]) {
                keep.execute([cid.to_bytes()])?;
            }
        }
        tx.execute_batch(
            "DELETE FROM repo_block WHERE cid NOT IN (SELECT cid FROM temp.keep_block);
             DROP TABLE temp.keep_block;",
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A record's CID and block, by path.
    pub fn get_record(
        &self,
        collection: &str,
        rkey: &str,
    ) -> Result<Option<(Cid, Vec<u8>)>, StoreError> {
        get_record_on(&self.conn, collection, rkey)
    }

    /// One block's bytes.
    pub fn block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some((_, bytes)) = self.pending.added.get(cid) {
            return Ok(Some(bytes.clone()));
        }
        // Replaced nodes wait on disk for the next write-back; they are not the repo's.
        if self.pending.removed.contains(cid) {
            return Ok(None);
        }
        Ok(self
            .conn
            .prepare_cached("SELECT content FROM repo_block WHERE cid = ?1")?
            .query_row([cid.to_bytes()], |r| r.get(0))
            .optional()?)
    }

    /// Records of a collection in rkey order (descending when `reverse`), after `cursor`.
    pub fn list_records(
        &self,
        collection: &str,
        limit: usize,
        cursor: Option<&str>,
        reverse: bool,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        list_records_on(&self.conn, collection, limit, cursor, reverse)
    }

    /// Number of records in the repo.
    pub fn record_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM record", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    /// Number of blocks in the repo (stored and pending).
    pub fn block_count(&self) -> Result<u64, StoreError> {
        let on_disk = self
            .conn
            .query_row("SELECT count(*) FROM repo_block", [], |r| {
                r.get::<_, i64>(0)
            })? as u64;
        Ok(on_disk + self.pending.added.len() as u64 - self.pending.removed.len() as u64)
    }

    /// Streams blocks first written after `since` (all blocks when `None`), newest rev first,
    /// to `f` without holding them all in memory.
    pub fn for_each_block_since(
        &self,
        since: Option<&str>,
        mut f: impl FnMut(Cid, &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let since = since.unwrap_or("");
        // Pending nodes are the newest; same order as the rows: rev, then CID bytes, descending.
        let mut pending: Vec<(&String, Vec<u8>, &Cid, &Vec<u8>)> = self
            .pending
            .added
            .iter()
            .filter(|(_, (rev, _))| rev.as_str() > since)
            .map(|(cid, (rev, bytes))| (rev, cid.to_bytes(), cid, bytes))
            .collect();
        pending.sort_unstable_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
        for (_, _, cid, bytes) in pending {
            f(*cid, bytes)?;
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT cid, content FROM repo_block WHERE repo_rev > ?1
             ORDER BY repo_rev DESC, cid DESC",
        )?;
        let mut rows = stmt.query([since])?;
        while let Some(row) = rows.next()? {
            let cid_bytes: Vec<u8> = row.get(0)?;
            let cid = Cid::try_from(cid_bytes.as_slice())
                .map_err(|e| StoreError::Corrupt(format!("stored block CID: {e}")))?;
            if self.pending.removed.contains(&cid) {
                continue;
            }
            let content = row.get_ref(1)?.as_blob()?;
            f(cid, content)?;
        }
        Ok(())
    }
}

impl Drop for ActorStore {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            // Not lost: the next open rebuilds the nodes from the records.
            tracing::warn!(did = %self.did, "flushing MST nodes on close: {e}");
        }
    }
}

impl BlockSource for ActorStore {
    fn get_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, RepoError> {
        self.block(cid).map_err(|e| RepoError::Storage(Box::new(e)))
    }
}

/// A read-only view of an actor store's records on a connection of its own.
///
/// Record rows and record blocks are written in every commit's transaction (only MST nodes
/// wait in memory), so a reader sees exactly the committed records, without the store's lock
/// and while the account writes.
pub struct RecordReader {
    conn: Connection,
}

impl RecordReader {
    /// Opens a reader on a store that [`ActorStore::open`] has created.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(RecordReader {
            conn: sqlite::open_reader(path)?,
        })
    }

    /// The record's CID and bytes, as [`ActorStore::get_record`]. One read transaction, so a
    /// concurrent delete can't remove the block between the row and its bytes.
    pub fn get_record(
        &self,
        collection: &str,
        rkey: &str,
    ) -> Result<Option<(Cid, Vec<u8>)>, StoreError> {
        let snapshot = self.conn.unchecked_transaction()?;
        get_record_on(&snapshot, collection, rkey)
    }

    /// A page of a collection with each record's bytes, from one read transaction.
    pub fn list_records_with_blocks(
        &self,
        collection: &str,
        limit: usize,
        cursor: Option<&str>,
        reverse: bool,
    ) -> Result<Vec<(StoredRecord, Vec<u8>)>, StoreError> {
        let snapshot = self.conn.unchecked_transaction()?;
        let rows = list_records_on(&snapshot, collection, limit, cursor, reverse)?;
        rows.into_iter()
            .map(|row| {
                let bytes = record_block_on(&snapshot, &row.collection, &row.rkey, &row.cid)?;
                Ok((row, bytes))
            })
            .collect()
    }
}

fn get_record_on(
    conn: &Connection,
    collection: &str,
    rkey: &str,
) -> Result<Option<(Cid, Vec<u8>)>, StoreError> {
    let cid: Option<String> = conn
        .prepare_cached("SELECT cid FROM record WHERE collection = ?1 AND rkey = ?2")?
        .query_row([collection, rkey], |r| r.get(0))
        .optional()?;
    let Some(cid) = cid else { return Ok(None) };
    let cid = parse_cid(&cid)?;
    let bytes = record_block_on(conn, collection, rkey, &cid)?;
    Ok(Some((cid, bytes)))
}

/// The block of the record at `collection/rkey`; a record row always has one.
fn record_block_on(
    conn: &Connection,
    collection: &str,
    rkey: &str,
    cid: &Cid,
) -> Result<Vec<u8>, StoreError> {
    conn.prepare_cached("SELECT content FROM repo_block WHERE cid = ?1")?
        .query_row([cid.to_bytes()], |r| r.get(0))
        .optional()?
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "record {collection}/{rkey} points at block {cid}, which is missing"
            ))
        })
}

fn list_records_on(
    conn: &Connection,
    collection: &str,
    limit: usize,
    cursor: Option<&str>,
    reverse: bool,
) -> Result<Vec<StoredRecord>, StoreError> {
    let sql = match (reverse, cursor.is_some()) {
        (false, false) => {
            "SELECT rkey, cid FROM record WHERE collection = ?1 ORDER BY rkey ASC LIMIT ?2"
        }
        (false, true) => {
            "SELECT rkey, cid FROM record WHERE collection = ?1 AND rkey > ?3 ORDER BY rkey ASC LIMIT ?2"
        }
        (true, false) => {
            "SELECT rkey, cid FROM record WHERE collection = ?1 ORDER BY rkey DESC LIMIT ?2"
        }
        (true, true) => {
            "SELECT rkey, cid FROM record WHERE collection = ?1 AND rkey < ?3 ORDER BY rkey DESC LIMIT ?2"
        }
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let limit = limit as i64;
    let map = |r: &rusqlite::Row<'_>| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?));
    let rows: Vec<(String, String)> = match cursor {
        Some(c) => stmt
            .query_map(params![collection, limit, c], map)?
            .collect::<Result<_, _>>()?,
        None => stmt
            .query_map(params![collection, limit], map)?
            .collect::<Result<_, _>>()?,
    };
    rows.into_iter()
        .map(|(rkey, cid)| {
            Ok(StoredRecord {
                collection: collection.to_string(),
                rkey,
                cid: parse_cid(&cid)?,
            })
        })
        .collect()
}

/// Writes one commit's blocks and record rows (not the root) inside `tx`.
fn write_commit(
    tx: &rusqlite::Transaction<'_>,
    c: &CommitData,
    now: &str,
) -> Result<(), StoreError> {
    let rev = c.rev.to_string();
    let mut put_block = tx.prepare_cached(
        "INSERT INTO repo_block (cid, repo_rev, size, content) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
    )?;
    // MST nodes go to the pending set instead (see the module doc).
    for (cid, bytes) in &c.new_blocks {
        if !c.new_nodes.contains(cid) {
            put_block.execute(params![cid.to_bytes(), rev, bytes.len() as i64, bytes])?;
        }
    }
    let mut put_record = tx.prepare_cached(
        "INSERT INTO record (collection, rkey, cid, repo_rev, indexed_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (collection, rkey) DO UPDATE SET cid = excluded.cid,
               repo_rev = excluded.repo_rev, indexed_at = excluded.indexed_at",
    )?;
    let mut del_record =
        tx.prepare_cached("DELETE FROM record WHERE collection = ?1 AND rkey = ?2")?;
    for op in &c.ops {
        let (collection, rkey) = split_key(op.key())?;
        match op {
            RecordOp::Create { cid, .. } | RecordOp::Update { cid, .. } => {
                put_record.execute(params![collection, rkey, cid.to_string(), rev, now])?;
            }
            RecordOp::Delete { .. } => {
                del_record.execute([collection, rkey])?;
            }
        }
    }
    // After the record rows are final, so a CID still used by another path survives.
    let mut del_block = tx.prepare_cached(
        "DELETE FROM repo_block WHERE cid = ?1
             AND NOT EXISTS (SELECT 1 FROM record WHERE cid = ?2)",
    )?;
    for cid in &c.removed_cids {
        if !c.new_blocks.contains_key(cid) && !c.removed_nodes.contains(cid) {
            del_block.execute(params![cid.to_bytes(), cid.to_string()])?;
        }
    }
    Ok(())
}

/// Splits an MST key into (collection, rkey).
fn split_key(key: &str) -> Result<(&str, &str), StoreError> {
    key.split_once('/')
        .ok_or_else(|| StoreError::Corrupt(format!("repo path {key:?} has no '/'")))
}

fn parse_cid(s: &str) -> Result<Cid, StoreError> {
    Cid::try_from(s).map_err(|e| StoreError::Corrupt(format!("stored CID {s:?}: {e}")))
}
