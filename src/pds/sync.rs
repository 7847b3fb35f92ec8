//! Repository sync reads: what `com.atproto.sync.*` (other than `getBlob`, in `blobs`) calls.
//!
//! Invariants:
//! - Every per-repo read first passes [`Pds::available_account`] (the reference's
//!   `assertRepoAvailability`): an unknown DID is `RepoNotFound`; a taken-down or deactivated
//!   repo is refused unless the reader is the account itself or the admin.
//! - Every read of an account's blocks goes through its actor lock ([`super::actors::Actors`]),
//!   so it sees one consistent commit, including MST nodes still pending in memory.
//! - A whole-repo CAR is never held in memory: under the account lock it is written at disk
//!   speed to an unlinked temporary file (one consistent commit, pending nodes included), and
//!   the lock is released before the file is streamed to the client. A slow or stalled reader
//!   therefore never holds up the account's writes; the file vanishes when the stream ends.

use super::Pds;
use super::actors::store_error;
use crate::car::{self, CarError};
use crate::data::Cid;
use crate::repo::Mst;
use crate::store::account::{Account, AccountStatus};
use crate::store::actor::RepoRoot;
use crate::syntax::{Did, Nsid, RecordKey, Tid};
use crate::xrpc::XrpcError;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::Stream;
use std::io;

/// Read size when streaming an export file to the client.
const CAR_CHUNK: usize = 64 * 1024;

/// Who is reading, which decides whether an unavailable repo may be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncReader {
    Anonymous,
    /// A valid access token for this DID.
    Account(Did),
    /// Admin Basic credentials.
    Admin,
}

impl SyncReader {
    /// Whether this reader sees `did`'s repo even while deactivated or taken down.
    fn is_self_or_admin(&self, did: &Did) -> bool {
        match self {
            SyncReader::Anonymous => false,
            SyncReader::Account(d) => d == did,
            SyncReader::Admin => true,
        }
    }
}

/// `getRepoStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoStatus {
    pub did: Did,
    pub active: bool,
    /// `takendown` / `deactivated` when not active.
    pub status: Option<&'static str>,
    /// The current rev, only for an active repo.
    pub rev: Option<String>,
}

/// One entry of `listRepos`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoListing {
    pub did: Did,
    pub head: Cid,
    pub rev: String,
    pub active: bool,
    pub status: Option<&'static str>,
}

/// A page of `listRepos`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPage {
    pub repos: Vec<RepoListing>,
    /// `"<createdAt millis>::<did>"` of the last entry; `None` for an empty page.
    pub cursor: Option<String>,
}

/// The reference's `status` string for an account that is not active.
pub fn status_name(status: AccountStatus) -> Option<&'static str> {
    match status {
        AccountStatus::Active => None,
        AccountStatus::Deactivated => Some("deactivated"),
        AccountStatus::Takendown => Some("takendown"),
    }
}

fn repo_not_found(did: &Did) -> XrpcError {
    XrpcError::bad_request(
        "RepoNotFound",
        format!("Could not find repo for DID: {did}"),
    )
}

fn car_error(e: CarError) -> XrpcError {
    XrpcError::internal(format!("writing CAR: {e}"))
}

impl Pds {
    /// The reference's `assertRepoAvailability`: the account of `did`, if `reader` may read it.
    pub async fn available_account(
        &self,
        did: &Did,
        reader: &SyncReader,
    ) -> Result<Account, XrpcError> {
        let d = did.clone();
        let account = self
            .accounts(move |s| s.get_account(&d))
            .await?
            .ok_or_else(|| repo_not_found(did))?;
        if reader.is_self_or_admin(did) {
            return Ok(account);
        }
        match account.status() {
            AccountStatus::Active => Ok(account),
            AccountStatus::Takendown => Err(XrpcError::bad_request(
                "RepoTakendown",
                format!("Repo has been takendown: {did}"),
            )),
            AccountStatus::Deactivated => Err(XrpcError::bad_request(
                "RepoDeactivated",
                format!("Repo has been deactivated: {did}"),
            )),
        }
    }

    /// `getRepo` / `getCheckout`: the repo as a CAR (root: the current commit), streamed from
    /// a temporary file; with `since`, only blocks first written after that rev.
    pub async fn export_repo(
        &self,
        did: &Did,
        since: Option<Tid>,
        reader: &SyncReader,
    ) -> Result<impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static, XrpcError> {
        self.available_account(did, reader).await?;
        let spill_dir = self.actors.dir().join(".exports");
        let since = since.map(|t| t.to_string());
        let file = self
            .actors
            .run(did, move |st| {
                let mut file = unlinked_temp_file(&spill_dir)
                    .map_err(|e| XrpcError::internal(format!("export file: {e}")))?;
                let out = std::io::BufWriter::with_capacity(CAR_CHUNK, &mut file);
                let out = st
                    .store
                    .export_car(out, since.as_deref())
                    .map_err(store_error)?;
                out.into_inner()
                    .map_err(|e| XrpcError::internal(format!("export file: {e}")))?;
                std::io::Seek::rewind(&mut file)
                    .map_err(|e| XrpcError::internal(format!("export file: {e}")))?;
                Ok(file)
            })
            .await?;
        Ok(tokio_util::io::ReaderStream::with_capacity(
            tokio::fs::File::from_std(file),
            CAR_CHUNK,
        ))
    }

    /// `getLatestCommit` / `getHead`: the stored root (`None` for a store with no commit).
    pub async fn latest_commit(
        &self,
        did: &Did,
        reader: &SyncReader,
    ) -> Result<Option<RepoRoot>, XrpcError> {
        self.available_account(did, reader).await?;
        self.actors
            .run(did, |st| st.store.root().map_err(store_error))
            .await
    }

    /// `sync.getRecord`: a CAR rooted at the current commit with the commit block, the MST
    /// nodes proving the key present or absent, and the record block when present. The CAR
    /// holds only what is needed to verify that from the account's signing key.
    pub async fn record_proof(
        &self,
        did: &Did,
        collection: &Nsid,
        rkey: &RecordKey,
        reader: &SyncReader,
    ) -> Result<Vec<u8>, XrpcError> {
        self.available_account(did, reader).await?;
        let key = format!("{collection}/{rkey}");
        self.actors
            .run(did, move |st| {
                let (commit_cid, data) = {
                    let repo = st.repo()?;
                    (repo.commit_cid(), repo.commit().data)
                };
                let store = &st.store;
                let commit = store
                    .block(&commit_cid)
                    .map_err(store_error)?
                    .ok_or_else(|| XrpcError::internal(format!("commit {commit_cid} missing")))?;
                let mst = Mst::load(data);
                let tree_error = |e| XrpcError::internal(format!("reading the MST: {e}"));
                let proof = mst
                    .covering_proof(store, [key.as_str()])
                    .map_err(tree_error)?;
                let record = match mst.get(store, &key).map_err(tree_error)? {
                    Some(cid) => {
                        let bytes = store.block(&cid).map_err(store_error)?.ok_or_else(|| {
                            XrpcError::internal(format!("record block {cid} missing"))
                        })?;
                        Some((cid, bytes))
                    }
                    None => None,
                };
                let blocks = [(&commit_cid, commit.as_slice())]
                    .into_iter()
                    .chain(proof.iter().map(|(c, b)| (c, b.as_slice())))
                    .chain(record.iter().map(|(c, b)| (c, b.as_slice())));
                Ok(car::write_to_vec(&[commit_cid], blocks))
            })
            .await
    }

    /// `getBlocks`: a CAR with no roots holding the named blocks (each once, first-asked
    /// order); `InvalidRequest` naming every CID the repo does not hold.
    pub async fn blocks_car(
        &self,
        did: &Did,
        cids: Vec<Cid>,
        reader: &SyncReader,
    ) -> Result<Vec<u8>, XrpcError> {
        self.available_account(did, reader).await?;
        self.actors
            .run(did, move |st| {
                let mut seen = std::collections::HashSet::new();
                let mut out = Vec::new();
                let mut writer = car::CarWriter::new(&mut out, &[]).map_err(car_error)?;
                let mut missing = Vec::new();
                for cid in cids.into_iter().filter(|c| seen.insert(*c)) {
                    match st.store.block(&cid).map_err(store_error)? {
                        Some(bytes) => writer.write_block(&cid, &bytes).map_err(car_error)?,
                        None => missing.push(cid.to_string()),
                    }
                }
                writer.finish().map_err(car_error)?;
                if !missing.is_empty() {
                    return Err(XrpcError::invalid_request(format!(
                        "Could not find cids: {}",
                        missing.join(",")
                    )));
                }
                Ok(out)
            })
            .await
    }

    /// `listBlobs`: CIDs of blobs the current records reference (see
    /// `store::actor_sync`), after `cursor`.
    pub async fn list_blobs(
        &self,
        did: &Did,
        since: Option<Tid>,
        limit: usize,
        cursor: Option<String>,
        reader: &SyncReader,
    ) -> Result<Vec<Cid>, XrpcError> {
        self.available_account(did, reader).await?;
        self.actors
            .run(did, move |st| {
                let since = since.map(|t| t.to_string());
                st.store
                    .list_blobs(since.as_deref(), limit, cursor.as_deref())
                    .map_err(store_error)
            })
            .await
    }

    /// `getRepoStatus`: open to anyone, whatever the account's status.
    pub async fn repo_status(&self, did: &Did) -> Result<RepoStatus, XrpcError> {
        let account = self.available_account(did, &SyncReader::Admin).await?;
        let status = account.status();
        let rev = if status == AccountStatus::Active {
            self.actors
                .run(did, |st| st.store.root().map_err(store_error))
                .await?
                .map(|r| r.rev)
        } else {
            None
        };
        Ok(RepoStatus {
            did: account.did,
            active: status == AccountStatus::Active,
            status: status_name(status),
            rev,
        })
    }

    /// `listRepos`: accounts with a repo in `(createdAt, did)` order, any status, after
    /// `cursor` (`"<createdAt millis>::<did>"`, as the reference's).
    pub async fn list_repos(
        &self,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<RepoPage, XrpcError> {
        let after = cursor.map(parse_repo_cursor).transpose()?;
        // The heads come from the root mirror, written behind acknowledged writes.
        self.sequencer.caught_up().await;
        let rows = self
            .accounts(move |s| s.list_repos(after.as_ref().map(|(t, d)| (*t, d)), limit))
            .await?;
        let cursor = rows.last().map(|r| {
            format!(
                "{}::{}",
                r.account.created_at.timestamp_millis(),
                r.account.did
            )
        });
        let repos = rows
            .into_iter()
            .map(|r| {
                let status = r.account.status();
                RepoListing {
                    did: r.account.did,
                    head: r.root.cid,
                    rev: r.root.rev,
                    active: status == AccountStatus::Active,
                    status: status_name(status),
                }
            })
            .collect();
        Ok(RepoPage { repos, cursor })
    }
}

fn parse_repo_cursor(cursor: &str) -> Result<(DateTime<Utc>, Did), XrpcError> {
    let malformed = || XrpcError::invalid_request("Malformed cursor");
    let (millis, did) = cursor.split_once("::").ok_or_else(malformed)?;
    let time = millis
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(malformed)?;
    let did = did.parse().map_err(|_| malformed())?;
    Ok((time, did))
}

/// A new file in `dir` whose name is removed at once: it lives while open, and nothing is left
/// behind whatever happens to the process.
fn unlinked_temp_file(dir: &std::path::Path) -> io::Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    let name = format!(
        "export-{}",
        data_encoding::HEXLOWER.encode(&rand::random::<[u8; 12]>())
    );
    let path = dir.join(name);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}
