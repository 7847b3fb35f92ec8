//! Whole-repo CAR transfer for an [`ActorStore`]: verified import and streaming export.
//!
//! Import stages every CAR block in a SQLite temp table (spilled to disk by SQLite, not held
//! in RAM), checks the commit (DID, signature when a key is given), walks the MST from the
//! commit's `data` (every node validated and canonical, every record present and valid
//! data), then copies exactly the reachable blocks into the store. It all happens in one
//! transaction that replaces the previous contents: on any error the store is untouched.
//! Blocks in the CAR that the tree does not reach are not kept.

use super::StoreError;
use super::actor::ActorStore;
use super::actor_index::{BlobCheck, index_record};
use crate::car::{CarError, CarReader, CarWriter};
use crate::crypto::PublicKey;
use crate::data::{Cid, cbor};
use crate::repo::{BlockSource, Commit, CommitError, Mst, RepoError, WalkItem};
use rusqlite::{Connection, OptionalExtension, params};
use std::io::{Read, Write};

/// Why an import was refused. The store is unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Car(#[from] CarError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("CAR root {0} (the commit) is not in the file")]
    MissingCommit(Box<Cid>),
    #[error("invalid commit: {0}")]
    Commit(#[from] CommitError),
    #[error("repo belongs to {found}, expected {expected}")]
    WrongDid { expected: String, found: String },
    #[error("invalid repository tree: {0}")]
    Tree(RepoError),
    #[error("record {key} (block {cid}) is missing from the CAR")]
    MissingRecord { key: String, cid: Box<Cid> },
    #[error("record {key} is not valid atproto data: {reason}")]
    InvalidRecord { key: String, reason: String },
    #[error("repo path {0:?} is not <collection>/<rkey>")]
    BadPath(String),
}

/// What an import stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub commit: Cid,
    pub rev: String,
    pub records: u64,
    pub blocks: u64,
}

/// Blocks staged in the import transaction's temp table.
struct Staged<'a>(&'a Connection);

impl BlockSource for Staged<'_> {
    fn get_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, RepoError> {
        let load = || -> Result<Option<Vec<u8>>, rusqlite::Error> {
            self.0
                .prepare_cached("SELECT content FROM temp.import_block WHERE cid = ?1")?
                .query_row([cid.to_bytes()], |r| r.get(0))
                .optional()
        };
        load().map_err(|e| RepoError::Storage(Box::new(e)))
    }
}

impl ActorStore {
    /// Replaces this store's repo with the one in `car`, verified as the module docs say.
    /// With `key`, the commit signature must verify against it.
    pub fn import_car<R: Read>(
        &mut self,
        car: CarReader<R>,
        key: Option<&PublicKey>,
    ) -> Result<ImportSummary, ImportError> {
        let root = *car
            .roots()
            .first()
            .ok_or_else(|| CarError::Header("no roots".into()))?;
        // Staging and copying are random B-tree inserts; a larger page cache for the import
        // (bounded, so memory stays bounded whatever the repo size) avoids re-reading pages.
        self.conn
            .execute_batch("PRAGMA cache_size = -40960; PRAGMA temp.cache_size = -40960;")
            .map_err(StoreError::from)?;
        let result = self.import_car_inner(car, root, key);
        let restore = self
            .conn
            .execute_batch("PRAGMA cache_size = -8192; PRAGMA temp.cache_size = -2048;");
        let summary = result?;
        restore.map_err(StoreError::from)?;
        Ok(summary)
    }

    fn import_car_inner<R: Read>(
        &mut self,
        car: CarReader<R>,
        root: Cid,
        key: Option<&PublicKey>,
    ) -> Result<ImportSummary, ImportError> {
        let tx = self.conn.transaction().map_err(StoreError::from)?;
        tx.execute_batch(
            "DROP TABLE IF EXISTS temp.import_block;
             CREATE TEMP TABLE import_block (cid BLOB NOT NULL, content BLOB NOT NULL);",
        )
        .map_err(StoreError::from)?;
        {
            let mut stage = tx
                .prepare("INSERT INTO temp.import_block (cid, content) VALUES (?1, ?2)")
                .map_err(StoreError::from)?;
            for block in car {
                let (cid, bytes) = block?;
                stage
                    .execute(params![cid.to_bytes(), bytes])
                    .map_err(StoreError::from)?;
            }
        }

        // Indexing once after the bulk insert (a sort) beats a random B-tree insert per block.
        tx.execute_batch("CREATE INDEX temp.import_block_cid ON import_block (cid);")
            .map_err(StoreError::from)?;
        let staged = Staged(&tx);
        let commit_bytes = staged
            .get_block(&root)
            .map_err(ImportError::Tree)?
            .ok_or_else(|| ImportError::MissingCommit(Box::new(root)))?;
        let commit = Commit::from_cbor(&commit_bytes)?;
        if commit.did.as_str() != self.did {
            return Err(ImportError::WrongDid {
                expected: self.did.clone(),
                found: commit.did.to_string(),
            });
        }
        if let Some(key) = key {
            commit.verify(key)?;
        }
        let rev = commit.rev.to_string();
        let now = crate::syntax::Datetime::now().to_string();

        tx.execute_batch(
            "DELETE FROM repo_block; DELETE FROM record; DELETE FROM repo_root;
             DELETE FROM backlink; DELETE FROM record_blob;",
        )
        .map_err(StoreError::from)?;
        let (mut records, mut blocks) = (0u64, 0u64);
        {
            let mut put_block = tx
                .prepare(
                    "INSERT OR IGNORE INTO repo_block (cid, repo_rev, size, content)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(StoreError::from)?;
            let mut put_record = tx
                .prepare(
                    "INSERT INTO record (collection, rkey, cid, repo_rev, indexed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(StoreError::from)?;
            // The walk's callback can only return RepoError; the precise reason is kept here.
            let mut failure: Option<ImportError> = None;
            let mut stop = |e: ImportError| {
                failure = Some(e);
                RepoError::Storage("import stopped".into())
            };
            let walked = Mst::load(commit.data).walk_transient(&staged, &mut |item| {
                match item {
                    WalkItem::Node { cid, bytes } => {
                        put_block
                            .execute(params![cid.to_bytes(), rev, bytes.len() as i64, bytes])
                            .map_err(|e| stop(StoreError::from(e).into()))?;
                        blocks += 1;
                    }
                    WalkItem::Leaf { key, value } => {
                        let Some((collection, rkey)) = key.split_once('/') else {
                            return Err(stop(ImportError::BadPath(key.to_string())));
                        };
                        let bytes = staged.get_block(&value)?.ok_or_else(|| {
                            stop(ImportError::MissingRecord {
                                key: key.to_string(),
                                cid: Box::new(value),
                            })
                        })?;
                        let record = match cbor::decode(&bytes) {
                            Ok(record) => record,
                            Err(e) => {
                                return Err(stop(ImportError::InvalidRecord {
                                    key: key.to_string(),
                                    reason: e.to_string(),
                                }));
                            }
                        };
                        let uri = format!("at://{}/{key}", self.did);
                        index_record(&tx, &uri, collection, &record, BlobCheck::LinkOnly)
                            .map_err(|e| stop(e.into()))?;
                        put_block
                            .execute(params![value.to_bytes(), rev, bytes.len() as i64, bytes])
                            .and_then(|_| {
                                put_record.execute(params![
                                    collection,
                                    rkey,
                                    value.to_string(),
                                    rev,
                                    now
                                ])
                            })
                            .map_err(|e| stop(StoreError::from(e).into()))?;
                        records += 1;
                        blocks += 1;
                    }
                }
                Ok(())
            });
            if let Err(e) = walked {
                return Err(failure.take().unwrap_or(ImportError::Tree(e)));
            }
            put_block
                .execute(params![
                    root.to_bytes(),
                    rev,
                    commit_bytes.len() as i64,
                    commit_bytes
                ])
                .map_err(StoreError::from)?;
            blocks += 1;
        }
        tx.execute(
            "INSERT INTO repo_root (did, cid, rev, indexed_at) VALUES (?1, ?2, ?3, ?4)",
            params![self.did, root.to_string(), rev, now],
        )
        .map_err(StoreError::from)?;
        tx.execute_batch("DROP TABLE temp.import_block;")
            .map_err(StoreError::from)?;
        tx.commit().map_err(StoreError::from)?;
        self.discard_pending();
        Ok(ImportSummary {
            commit: root,
            rev,
            records,
            blocks,
        })
    }

    /// Writes the repo as a CAR: the commit first, then every other block (or, with `since`,
    /// only blocks first written after that rev). Memory use is one block at a time.
    pub fn export_car<W: Write>(&self, out: W, since: Option<&str>) -> Result<W, StoreError> {
        let root = self
            .root()?
            .ok_or_else(|| StoreError::Corrupt(format!("{} has no repo", self.did)))?;
        let commit = self
            .block(&root.cid)?
            .ok_or_else(|| StoreError::Corrupt(format!("head commit {} is missing", root.cid)))?;
        let mut car = CarWriter::new(out, &[root.cid])?;
        car.write_block(&root.cid, &commit)?;
        self.for_each_block_since(since, |cid, bytes| {
            if cid != root.cid {
                car.write_block(&cid, bytes)?;
            }
            Ok(())
        })?;
        Ok(car.finish()?)
    }
}
