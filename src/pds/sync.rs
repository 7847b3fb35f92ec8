//! Repository sync reads: what `com.atproto.sync.*` (other than `getBlob`, in `blobs`) calls.
//!
//! Invariants:
//! - Every per-repo read first passes [`Pds::available_account`] (the reference's
//!   `assertRepoAvailability`): an unknown DID is `RepoNotFound`; a taken-down or deactivated
//!   repo is refused unless the reader is the account itself or the admin.
//! - Every read of an account's blocks goes through its actor lock ([`super::actors::Actors`]),
//!   so it sees one consistent commit, including MST nodes still pending in memory.
//! - A whole-repo CAR is never held in memory: it is written on the blocking thread into a
//!   bounded channel of [`CAR_CHUNK`]-sized chunks, so memory per export is a few chunks and
//!   a slow client slows the export instead of buffering it. The account lock is held for the
//!   export (writes to that account wait; other accounts do not). A client that goes away
//!   closes the channel, which ends the export and frees the lock; one that takes no chunk for
//!   [`CAR_STALL_LIMIT`] has its export cut off for the same reason.
//! - An error before the first chunk is an XRPC error; after it, the body is cut short (a CAR
//!   that ends early), as HTTP leaves no other way to report it.

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
use std::io::{self, Write};
use tokio::sync::mpsc;

/// Size of the chunks a CAR export is cut into (a block larger than this is one chunk).
pub const CAR_CHUNK: usize = 64 * 1024;
/// Chunks buffered between the exporting thread and the HTTP body.
const CAR_CHANNEL_CHUNKS: usize = 4;
/// How long an export waits for the reader to take a chunk before giving up. The export holds
/// the account lock, so a reader that stalls must not hold the account's writes for longer.
const CAR_STALL_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

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

    /// `getRepo` / `getCheckout`: the repo as a CAR (root: the current commit), streamed in
    /// chunks; with `since`, only blocks first written after that rev.
    pub async fn export_repo(
        &self,
        did: &Did,
        since: Option<Tid>,
        reader: &SyncReader,
    ) -> Result<impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static, XrpcError> {
        self.available_account(did, reader).await?;
        let (tx, mut rx) = mpsc::channel(CAR_CHANNEL_CHUNKS);
        let (actors, did) = (self.actors.clone(), did.clone());
        let out = ChunkWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CAR_CHUNK),
            rt: tokio::runtime::Handle::current(),
        };
        tokio::spawn(async move {
            let since = since.map(|t| t.to_string());
            let exported = actors
                .run(&did, move |st| {
                    st.store
                        .export_car(out, since.as_deref())
                        .map(drop)
                        .map_err(store_error)
                })
                .await;
            if let Err(e) = exported {
                if tx.is_closed() {
                    tracing::debug!(%did, "repo export stopped: the reader went away");
                } else {
                    tracing::warn!(%did, "repo export failed: {e}");
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
        // The first chunk decides between an XRPC error and a streamed body.
        let first = match rx.recv().await {
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => return Err(e),
            None => return Err(XrpcError::internal("repo export ended without output")),
        };
        let rest = futures_util::stream::unfold(rx, |mut rx| async move {
            let item = rx.recv().await?;
            Some((item.map_err(|e| io::Error::other(e.to_string())), rx))
        });
        Ok(futures_util::StreamExt::chain(
            futures_util::stream::iter([Ok(first)]),
            rest,
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

/// A `Write` that cuts its input into chunks of about [`CAR_CHUNK`] bytes and hands them to
/// the HTTP body; blocks when the body is [`CAR_CHANNEL_CHUNKS`] chunks behind, for at most
/// [`CAR_STALL_LIMIT`]. Runs only on blocking threads (it blocks on `rt`).
struct ChunkWriter {
    tx: mpsc::Sender<Result<Bytes, XrpcError>>,
    buf: Vec<u8>,
    rt: tokio::runtime::Handle,
}

impl ChunkWriter {
    fn send(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CAR_CHUNK));
        let sent = self.rt.block_on(
            self.tx
                .send_timeout(Ok(Bytes::from(chunk)), CAR_STALL_LIMIT),
        );
        match sent {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the CAR reader went away",
            )),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the CAR reader stalled",
            )),
        }
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CAR_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}
