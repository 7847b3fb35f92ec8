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

use super::StoreError;
use super::sqlite::{self, ACTOR_MIGRATIONS, Durability};
use crate::crypto::{Curve, Keypair};
use crate::data::Cid;
use crate::repo::{BlockSource, CommitData, RecordOp, RepoError};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

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
}

impl ActorStore {
    /// Opens (creating if needed) the store at `path` for `did`.
    pub fn open(path: &Path, did: &str, durability: Durability) -> Result<Self, StoreError> {
        let conn = sqlite::open(path, ACTOR_MIGRATIONS, durability)?;
        Ok(ActorStore {
            conn,
            did: did.to_string(),
        })
    }

    /// An in-memory store (tests, scratch verification).
    pub fn open_in_memory(did: &str) -> Result<Self, StoreError> {
        Ok(ActorStore {
            conn: sqlite::open_in_memory(ACTOR_MIGRATIONS)?,
            did: did.to_string(),
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

    /// Applies a commit in one transaction.
    pub fn apply_commit(&mut self, c: &CommitData) -> Result<(), StoreError> {
        let now = crate::syntax::Datetime::now().to_string();
        let rev = c.rev.to_string();
        let tx = self.conn.transaction()?;
        {
            let mut put_block = tx.prepare_cached(
                "INSERT INTO repo_block (cid, repo_rev, size, content) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
            )?;
            for (cid, bytes) in &c.new_blocks {
                put_block.execute(params![cid.to_bytes(), rev, bytes.len() as i64, bytes])?;
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
                if !c.new_blocks.contains_key(cid) {
                    del_block.execute(params![cid.to_bytes(), cid.to_string()])?;
                }
            }
            tx.execute(
                "INSERT INTO repo_root (did, cid, rev, indexed_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (did) DO UPDATE SET cid = excluded.cid, rev = excluded.rev,
                   indexed_at = excluded.indexed_at",
                params![self.did, c.cid.to_string(), rev, now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A record's CID and block, by path.
    pub fn get_record(
        &self,
        collection: &str,
        rkey: &str,
    ) -> Result<Option<(Cid, Vec<u8>)>, StoreError> {
        let cid: Option<String> = self
            .conn
            .prepare_cached("SELECT cid FROM record WHERE collection = ?1 AND rkey = ?2")?
            .query_row([collection, rkey], |r| r.get(0))
            .optional()?;
        let Some(cid) = cid else { return Ok(None) };
        let cid = parse_cid(&cid)?;
        match self.block(&cid)? {
            Some(bytes) => Ok(Some((cid, bytes))),
            None => Err(StoreError::Corrupt(format!(
                "record {collection}/{rkey} points at block {cid}, which is missing"
            ))),
        }
    }

    /// One block's bytes.
    pub fn block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
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
        let mut stmt = self.conn.prepare_cached(sql)?;
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

    /// Number of records in the repo.
    pub fn record_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM record", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    /// Number of blocks stored.
    pub fn block_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM repo_block", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    /// Streams blocks first written after `since` (all blocks when `None`), newest rev first,
    /// to `f` without holding them all in memory.
    pub fn for_each_block_since(
        &self,
        since: Option<&str>,
        mut f: impl FnMut(Cid, &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT cid, content FROM repo_block WHERE repo_rev > ?1
             ORDER BY repo_rev DESC, cid DESC",
        )?;
        let mut rows = stmt.query([since.unwrap_or("")])?;
        while let Some(row) = rows.next()? {
            let cid_bytes: Vec<u8> = row.get(0)?;
            let cid = Cid::try_from(cid_bytes.as_slice())
                .map_err(|e| StoreError::Corrupt(format!("stored block CID: {e}")))?;
            let content = row.get_ref(1)?.as_blob()?;
            f(cid, content)?;
        }
        Ok(())
    }
}

impl BlockSource for ActorStore {
    fn get_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, RepoError> {
        self.block(cid).map_err(|e| RepoError::Storage(Box::new(e)))
    }
}

/// Splits an MST key into (collection, rkey).
fn split_key(key: &str) -> Result<(&str, &str), StoreError> {
    key.split_once('/')
        .ok_or_else(|| StoreError::Corrupt(format!("repo path {key:?} has no '/'")))
}

fn parse_cid(s: &str) -> Result<Cid, StoreError> {
    Cid::try_from(s).map_err(|e| StoreError::Corrupt(format!("stored CID {s:?}: {e}")))
}
