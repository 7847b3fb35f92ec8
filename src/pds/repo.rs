//! Record writes and reads: what `com.atproto.repo.*` calls.
//!
//! A write is prepared on the async side (parse, `$type`, lexicon validation, which needs no
//! repo state), then applied on the account's blocking thread under its actor lock: swaps are
//! checked against the current commit, puts and deletes resolved against the current records,
//! follow/like/repost/block duplicates found, referenced blobs made permanent, and the commit
//! built, signed and stored in one transaction. Only then is the cached repo replaced.
//!
//! Invariant: a write that fails at any step leaves the repo exactly as it was (the commit is
//! built purely and stored atomically); blob bytes made permanent for a failed write are
//! unreferenced and left to garbage collection, never deleted while a record uses them.

use super::Pds;
use super::actors::{ActorState, store_error};
use crate::data::{Cid, Ipld, json};
use crate::lexicon::{self, Catalog, ValidationMode, ValidationStatus};
use crate::repo::{CommitData, RecordWrite, WriteError};
use crate::store::StoreError;
use crate::store::account::Account;
use crate::store::actor_index::{BlobRefError, backlink_target};
use crate::syntax::{AtIdentifier, Did, Nsid, RecordKey};
use crate::xrpc::XrpcError;
use serde_json::{Value, json};

/// The reference's cap on operations per commit.
pub const MAX_WRITES: usize = 200;

/// Writes of at most this many ops run inline when the account is free
/// ([`super::actors::Actors::run_quick`]).
const QUICK_WRITE_OPS: usize = 10;

/// One requested write, as the XRPC methods describe it.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// `createRecord` / `applyWrites#create`: fails if the record exists.
    Create {
        collection: String,
        rkey: Option<String>,
        value: Value,
    },
    /// `applyWrites#update`: the record must exist.
    Update {
        collection: String,
        rkey: String,
        value: Value,
    },
    /// `putRecord`: create or update; a no-op when the content is unchanged.
    Put {
        collection: String,
        rkey: String,
        value: Value,
        /// `Some(None)`: the record must not exist; `Some(Some(cid))`: it must be at `cid`.
        swap_record: Option<Option<Cid>>,
    },
    /// `deleteRecord` (a no-op when absent) / `applyWrites#delete`.
    Delete {
        collection: String,
        rkey: String,
        swap_record: Option<Option<Cid>>,
    },
}

/// Options shared by the write methods.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub validate: Option<bool>,
    pub swap_commit: Option<Cid>,
    /// `createRecord`'s backlink de-duplication (also needs `validate` not false).
    pub dedupe_backlinks: bool,
    /// `applyWrites` refuses a delete of a missing record; `deleteRecord` makes it a no-op.
    pub missing_delete_is_noop: bool,
    /// The caller sent the rate-limit bypass key or comes from a bypass IP: the account's
    /// write points are not charged.
    pub rate_limit_bypass: bool,
}

/// The result of one op, in request order.
#[derive(Debug, Clone)]
pub enum OpResult {
    Create {
        uri: String,
        cid: Cid,
        validation: Option<ValidationStatus>,
    },
    Update {
        uri: String,
        cid: Cid,
        validation: Option<ValidationStatus>,
    },
    Delete,
    /// A put whose content was unchanged, or a delete of a missing record.
    NoOp {
        uri: String,
        cid: Option<Cid>,
        validation: Option<ValidationStatus>,
    },
}

impl OpResult {
    /// The `applyWrites` result object.
    pub fn to_json(&self) -> Value {
        match self {
            OpResult::Create {
                uri,
                cid,
                validation,
            } => with_status(
                json!({"$type": "com.atproto.repo.applyWrites#createResult", "uri": uri, "cid": cid.to_string()}),
                *validation,
            ),
            OpResult::Update {
                uri,
                cid,
                validation,
            } => with_status(
                json!({"$type": "com.atproto.repo.applyWrites#updateResult", "uri": uri, "cid": cid.to_string()}),
                *validation,
            ),
            OpResult::Delete | OpResult::NoOp { .. } => {
                json!({"$type": "com.atproto.repo.applyWrites#deleteResult"})
            }
        }
    }
}

fn with_status(mut v: Value, status: Option<ValidationStatus>) -> Value {
    if let (Some(s), Some(map)) = (status, v.as_object_mut()) {
        map.insert("validationStatus".into(), json!(s.as_str()));
    }
    v
}

/// What a write did.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// `None` when nothing changed (no-op put or delete): no commit was made.
    pub commit: Option<CommitData>,
    pub results: Vec<OpResult>,
}

impl WriteOutcome {
    /// The `commit` output object, when a commit was made.
    pub fn commit_json(&self) -> Option<Value> {
        self.commit
            .as_ref()
            .map(|c| json!({"cid": c.cid.to_string(), "rev": c.rev.to_string()}))
    }
}

/// A write after the async preparation.
struct Prepared {
    kind: PreparedKind,
    collection: Nsid,
    rkey: RecordKey,
    record: Option<Ipld>,
    validation: Option<ValidationStatus>,
    swap_record: Option<Option<Cid>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PreparedKind {
    Create,
    Update,
    Put,
    Delete,
}

impl Pds {
    /// Applies `ops` to the repo `repo` (handle or DID) of the authenticated account `auth_did`
    /// as one commit.
    pub async fn write_records(
        &self,
        auth_did: &Did,
        repo: &str,
        ops: Vec<WriteOp>,
        opts: WriteOptions,
    ) -> Result<WriteOutcome, XrpcError> {
        if ops.len() > MAX_WRITES {
            return Err(XrpcError::invalid_request(format!(
                "Too many writes. Max: {MAX_WRITES}"
            )));
        }
        let account = self.writable_account(auth_did, repo).await?;
        if !opts.rate_limit_bypass {
            self.rate_limits.check_writes(&account.did, &ops)?;
        }
        let mode = ValidationMode::from_param(opts.validate);
        let prepared = ops
            .into_iter()
            .map(|op| self.prepare(op, mode))
            .collect::<Result<Vec<_>, _>>()?;
        let did = account.did.clone();
        let _writing = self.sequencer.writing();
        let quick = prepared.len() <= QUICK_WRITE_OPS;
        let actors = self.actors.clone();
        let blobs = self.blobs.clone();
        let sequencer = self.sequencer.clone();
        let rt = tokio::runtime::Handle::current();
        let dedupe = opts.dedupe_backlinks && opts.validate != Some(false);
        let write = move |st: &mut ActorState| {
            let ctx = WriteContext {
                actors_dir: actors.dir(),
                rt: &rt,
                blobs: &*blobs,
                sequencer: &sequencer,
            };
            apply(st, &ctx, prepared, &opts, dedupe)
        };
        // A few ops take a fraction of a millisecond: not worth a trip to a blocking thread.
        let (outcome, sequenced) = if quick {
            self.actors.run_quick(&did, write).await?
        } else {
            self.actors.run(&did, write).await?
        };
        // Acknowledged once its event is durable (journaled, or stored).
        if let Some(sequenced) = sequenced {
            sequenced.acknowledge().await;
        }
        Ok(outcome)
    }

    /// The account `repo` names, if the authenticated account may write to it.
    async fn writable_account(&self, auth_did: &Did, repo: &str) -> Result<Account, XrpcError> {
        // As the reference: a repo not hosted here is 403 AccountNotFound.
        let account = self.find_account(repo).await?.ok_or_else(|| {
            XrpcError::new(
                axum::http::StatusCode::FORBIDDEN,
                "AccountNotFound",
                "Account not found",
            )
        })?;
        if &account.did != auth_did {
            return Err(XrpcError::authentication_required(
                "Input/repo must be the authenticated account",
            ));
        }
        if account.takedown_ref.is_some() {
            return Err(super::account_taken_down());
        }
        if account.deactivated_at.is_some() {
            return Err(super::account_deactivated());
        }
        Ok(account)
    }

    /// An account by handle or DID (any status).
    pub async fn find_account(&self, repo: &str) -> Result<Option<Account>, XrpcError> {
        let ident = AtIdentifier::try_from(repo)
            .map_err(|e| XrpcError::invalid_request(format!("Invalid repo {repo:?}: {e}")))?;
        self.lookup_account(&ident)
    }

    /// The active account `repo` names, for reads (`RepoNotFound` style errors otherwise).
    pub async fn readable_account(&self, repo: &str) -> Result<Account, XrpcError> {
        let account = self
            .find_account(repo)
            .await?
            .filter(Account::is_active)
            .ok_or_else(|| XrpcError::invalid_request(format!("Could not find repo: {repo}")))?;
        Ok(account)
    }

    fn prepare(&self, op: WriteOp, mode: ValidationMode) -> Result<Prepared, XrpcError> {
        let (kind, collection, rkey, value, swap_record) = match op {
            WriteOp::Create {
                collection,
                rkey,
                value,
            } => (PreparedKind::Create, collection, rkey, Some(value), None),
            WriteOp::Update {
                collection,
                rkey,
                value,
            } => (
                PreparedKind::Update,
                collection,
                Some(rkey),
                Some(value),
                None,
            ),
            WriteOp::Put {
                collection,
                rkey,
                value,
                swap_record,
            } => (
                PreparedKind::Put,
                collection,
                Some(rkey),
                Some(value),
                swap_record,
            ),
            WriteOp::Delete {
                collection,
                rkey,
                swap_record,
            } => (
                PreparedKind::Delete,
                collection,
                Some(rkey),
                None,
                swap_record,
            ),
        };
        let collection = Nsid::try_from(collection.as_str())
            .map_err(|e| XrpcError::invalid_request(format!("Invalid collection: {e}")))?;
        let rkey = match rkey {
            Some(r) => RecordKey::try_from(r.as_str())
                .map_err(|e| XrpcError::invalid_request(format!("Invalid record key: {e}")))?,
            None => RecordKey::from(self.tids.next()),
        };
        let (record, validation) = match value {
            None => (None, None),
            Some(value) => {
                let (record, status) = prepare_record(&collection, &rkey, value, mode)?;
                (Some(record), status)
            }
        };
        Ok(Prepared {
            kind,
            collection,
            rkey,
            record,
            validation,
            swap_record,
        })
    }

    /// `getRecord`: the JSON response body (`{uri, cid, value}`) for a record of an active
    /// local repo. Popular records come from [`super::record_cache`].
    pub async fn get_record(
        &self,
        repo: &str,
        collection: &str,
        rkey: &str,
        cid: Option<&str>,
    ) -> Result<bytes::Bytes, XrpcError> {
        // The parameters' formats first, as the reference's lexicon check does.
        Nsid::try_from(collection)
            .map_err(|e| XrpcError::invalid_request(format!("Invalid collection: {e}")))?;
        RecordKey::try_from(rkey)
            .map_err(|e| XrpcError::invalid_request(format!("Invalid rkey: {e}")))?;
        if let Some(c) = cid {
            Cid::try_from(c)
                .map_err(|e| XrpcError::invalid_request(format!("Invalid cid: {e}")))?;
        }
        let not_found = |uri: &str| {
            XrpcError::bad_request("RecordNotFound", format!("Could not locate record: {uri}"))
        };
        // A repo not hosted here, or not active: the reference would ask its AppView, and
        // without one answers this.
        let account = self
            .find_account(repo)
            .await?
            .filter(Account::is_active)
            .ok_or_else(|| XrpcError::invalid_request("Could not locate record"))?;
        let did = account.did.as_str();
        let uri = || format!("at://{did}/{collection}/{rkey}");
        let cache = &self.actors.records;
        let record = match cache.get(did, collection, rkey) {
            Some(hit) => hit,
            None => {
                let ticket = cache.ticket();
                let found = self
                    .actors
                    .read(&account.did, |reader| reader.get_record(collection, rkey))?;
                let Some((record_cid, bytes)) = found else {
                    return Err(not_found(&uri()));
                };
                let value = crate::data::cbor::decode(&bytes)
                    .map_err(|e| XrpcError::internal(format!("stored record {}: {e}", uri())))?;
                let body = serde_json::to_vec(&json!({
                    "uri": uri(),
                    "cid": record_cid.to_string(),
                    "value": json::to_json(&value),
                }))
                .map_err(|e| XrpcError::internal(format!("encoding record {}: {e}", uri())))?;
                let record = super::record_cache::CachedRecord {
                    cid: record_cid,
                    body: body.into(),
                };
                cache.insert(ticket, did, collection, rkey, record.clone());
                record
            }
        };
        if let Some(want) = cid
            && want != record.cid.to_string()
        {
            return Err(not_found(&uri()));
        }
        Ok(record.body)
    }

    /// `listRecords`: newest rkey first unless `reverse`.
    pub async fn list_records(
        &self,
        repo: &str,
        collection: &str,
        limit: usize,
        cursor: Option<String>,
        reverse: bool,
    ) -> Result<Value, XrpcError> {
        Nsid::try_from(collection)
            .map_err(|e| XrpcError::invalid_request(format!("Invalid collection: {e}")))?;
        let account = self.readable_account(repo).await?;
        let did = account.did.clone();
        let rows = self.actors.read(&did, |reader| {
            reader.list_records_with_blocks(collection, limit, cursor.as_deref(), !reverse)
        })?;
        let cursor = rows.last().map(|(r, _)| r.rkey.clone());
        let records: Vec<Value> = rows
            .into_iter()
            .map(|(row, bytes)| {
                let value = crate::data::cbor::decode(&bytes)
                    .map(|v| json::to_json(&v))
                    .map_err(|e| XrpcError::internal(format!("stored record: {e}")))?;
                Ok(json!({
                    "uri": format!("at://{}/{}/{}", did, row.collection, row.rkey),
                    "cid": row.cid.to_string(),
                    "value": value,
                }))
            })
            .collect::<Result<_, XrpcError>>()?;
        let mut out = json!({ "records": records });
        if let Some(c) = cursor {
            out["cursor"] = json!(c);
        }
        Ok(out)
    }

    /// `describeRepo`.
    pub async fn describe_repo(&self, repo: &str) -> Result<Value, XrpcError> {
        let account = self.find_account(repo).await?.ok_or_else(|| {
            XrpcError::bad_request("RepoNotFound", format!("Could not find user: {repo}"))
        })?;
        if account.takedown_ref.is_some() {
            return Err(XrpcError::bad_request(
                "RepoTakendown",
                format!("Repo has been takendown: {repo}"),
            ));
        }
        if account.deactivated_at.is_some() {
            return Err(XrpcError::bad_request(
                "RepoDeactivated",
                format!("Repo has been deactivated: {repo}"),
            ));
        }
        let did = account.did.clone();
        let collections = self
            .actors
            .run(&did, |st| st.store.collections().map_err(store_error))
            .await?;
        let doc = self.dids.resolve_fresh(&did).await.ok();
        let handle = account
            .handle
            .as_ref()
            .map_or("handle.invalid".to_string(), ToString::to_string);
        let handle_is_correct = doc.as_ref().is_some_and(|d| {
            d.also_known_as
                .iter()
                .any(|a| a == &format!("at://{handle}"))
        });
        Ok(json!({
            "handle": handle,
            "did": did,
            "didDoc": doc.map(|d| serde_json::to_value(d).unwrap_or(Value::Null)).unwrap_or(Value::Null),
            "collections": collections,
            "handleIsCorrect": handle_is_correct,
        }))
    }
}

impl Pds {
    /// `importRepo`: replaces the account's repo with the CAR's, fully verified (every block's
    /// hash, the commit's DID, every node and record; the signature against the DID document's
    /// key when it can be resolved). Records' blob links are indexed, so the blobs show up in
    /// `listMissingBlobs`. Nothing is sequenced, as in the reference.
    pub async fn import_repo(&self, did: &Did, car: bytes::Bytes) -> Result<(), XrpcError> {
        if !self.config.service.accepting_repo_imports {
            return Err(XrpcError::invalid_request(
                "Service is not accepting repo imports",
            ));
        }
        let account = self.account(did).await?;
        if account.takedown_ref.is_some() {
            return Err(super::account_taken_down());
        }
        // The key the DID document names now (at migration time: the old host's key).
        let key = match self.dids.resolve_atproto_key(did, true).await {
            Ok(key) => key,
            Err(e) => {
                tracing::warn!(%did, "importRepo without a signature check: {e}");
                None
            }
        };
        let summary = self
            .actors
            .run(did, move |st| {
                let reader = crate::car::CarReader::new(std::io::Cursor::new(car))
                    .map_err(|e| XrpcError::invalid_request(format!("Invalid CAR: {e}")))?;
                let summary = st
                    .store
                    .import_car(reader, key.as_ref())
                    .map_err(|e| match e {
                        crate::store::repo_car::ImportError::Store(e) => store_error(e),
                        other => XrpcError::invalid_request(format!("Invalid repo: {other}")),
                    })?;
                st.reset_repo();
                Ok(summary)
            })
            .await?;
        // Through the sequencer's queue, so the mirror can't be overtaken by an older head.
        self.sequencer
            .submit(
                Vec::new(),
                Some(crate::sequencer::RepoHead {
                    did: did.clone(),
                    cid: summary.commit,
                    rev: summary.rev.clone(),
                }),
            )
            .wait()
            .await;
        Ok(())
    }
}

/// JSON → record: data model, `$type` (defaulted to the collection), no legacy blobs, lexicon.
fn prepare_record(
    collection: &Nsid,
    rkey: &RecordKey,
    value: Value,
    mode: ValidationMode,
) -> Result<(Ipld, Option<ValidationStatus>), XrpcError> {
    let Value::Object(mut map) = value else {
        return Err(XrpcError::invalid_request("Record must be an object"));
    };
    match map.get("$type") {
        None => {
            map.insert("$type".into(), json!(collection.as_str()));
        }
        Some(Value::String(t)) if t == collection.as_str() => {}
        Some(other) => {
            return Err(XrpcError::invalid_request(format!(
                "Invalid $type: expected {collection}, got {other}"
            )));
        }
    }
    let record = json::from_json(&Value::Object(map))
        .map_err(|e| XrpcError::invalid_request(format!("Invalid record: {e}")))?;
    if let Some(reason) = refused_value(&record) {
        return Err(XrpcError::invalid_request(reason));
    }
    let status = lexicon::check_write(
        Catalog::builtin(),
        mode,
        collection.as_str(),
        rkey.as_str(),
        &record,
    )
    .map_err(|e| XrpcError::invalid_request(format!("Invalid {collection} record: {e}")))?;
    Ok((record, status))
}

/// Largest integer a new record may hold: JavaScript's safe range, as the data model advises.
/// The reference PDS fails to store a larger one, so a repo holding it could not move there.
const MAX_SAFE_INTEGER: u128 = (1 << 53) - 1;

/// Why a new record's value is refused although the data model allows it, if it is: a legacy
/// blob reference (the pre-2023 `{cid, mimeType}` form) anywhere in the record, or an integer
/// beyond [`MAX_SAFE_INTEGER`].
fn refused_value(v: &Ipld) -> Option<&'static str> {
    match v {
        Ipld::Map(m) => {
            if m.len() == 2
                && matches!(m.get("cid"), Some(Ipld::String(_)))
                && matches!(m.get("mimeType"), Some(Ipld::String(_)))
            {
                return Some("Legacy blobs are not allowed");
            }
            m.values().find_map(refused_value)
        }
        Ipld::List(items) => items.iter().find_map(refused_value),
        Ipld::Integer(n) if n.unsigned_abs() > MAX_SAFE_INTEGER => Some(
            "Invalid record: integers beyond 2^53 - 1 are not accepted (other implementations cannot store them)",
        ),
        _ => None,
    }
}

/// What the synchronous part of a write works with besides the account's store.
struct WriteContext<'a> {
    actors_dir: &'a std::path::Path,
    rt: &'a tokio::runtime::Handle,
    blobs: &'a dyn crate::blob::BlobStore,
    sequencer: &'a crate::sequencer::Sequencer,
}

/// The synchronous part of a write, under the account's lock (on a blocking thread, or inline; see
/// `Actors::run_quick`).
fn apply(
    st: &mut ActorState,
    ctx: &WriteContext<'_>,
    prepared: Vec<Prepared>,
    opts: &WriteOptions,
    dedupe: bool,
) -> Result<(WriteOutcome, Option<crate::sequencer::Ticket>), XrpcError> {
    let (rt, blobs) = (ctx.rt, ctx.blobs);
    let did = st.did.clone();
    let repo = st.repo()?.clone();
    if let Some(swap) = opts.swap_commit
        && swap != repo.commit_cid()
    {
        return Err(XrpcError::bad_request(
            "InvalidSwap",
            format!("Commit was at {}", repo.commit_cid()),
        ));
    }
    let mut writes = Vec::with_capacity(prepared.len());
    let mut results = Vec::with_capacity(prepared.len());
    for p in prepared {
        let uri = format!("at://{did}/{}/{}", p.collection, p.rkey);
        let current = repo
            .record_cid(&st.store, p.collection.as_str(), p.rkey.as_str())
            .map_err(|e| XrpcError::internal(format!("reading the repo: {e}")))?;
        if let Some(swap) = p.swap_record
            && swap != current
        {
            return Err(XrpcError::bad_request(
                "InvalidSwap",
                format!(
                    "Record was at {}",
                    current.map_or("null".to_string(), |c| c.to_string())
                ),
            ));
        }
        let (collection, rkey, validation) = (p.collection, p.rkey, p.validation);
        match (p.kind, p.record) {
            (PreparedKind::Delete, _) => {
                if current.is_none() && opts.missing_delete_is_noop {
                    results.push(OpResult::NoOp {
                        uri,
                        cid: None,
                        validation: None,
                    });
                    continue;
                }
                writes.push(RecordWrite::Delete { collection, rkey });
                results.push(OpResult::Delete);
            }
            (kind, Some(record)) => {
                let cid = crate::data::cbor_cid(
                    &crate::data::cbor::encode(&record)
                        .map_err(|e| XrpcError::invalid_request(format!("Invalid record: {e}")))?,
                );
                if kind == PreparedKind::Put && current == Some(cid) {
                    results.push(OpResult::NoOp {
                        uri,
                        cid: Some(cid),
                        validation,
                    });
                    continue;
                }
                let update = match kind {
                    PreparedKind::Update => true,
                    PreparedKind::Put => current.is_some(),
                    _ => false,
                };
                if kind == PreparedKind::Create && dedupe {
                    // The reference deletes earlier records of the same kind and subject in
                    // the same commit (one follow, like, repost or block per subject).
                    if let Some((_, target)) = backlink_target(collection.as_str(), &record) {
                        let dups = st
                            .store
                            .backlinks(collection.as_str(), &target)
                            .map_err(store_error)?;
                        for dup in dups {
                            let dup_rkey = dup.rsplit('/').next().unwrap_or_default();
                            if dup_rkey == rkey.as_str() {
                                continue;
                            }
                            if let Ok(r) = RecordKey::try_from(dup_rkey) {
                                writes.push(RecordWrite::Delete {
                                    collection: collection.clone(),
                                    rkey: r,
                                });
                            }
                        }
                    }
                }
                if update {
                    writes.push(RecordWrite::Update {
                        collection,
                        rkey,
                        record,
                    });
                    results.push(OpResult::Update {
                        uri,
                        cid,
                        validation,
                    });
                } else {
                    writes.push(RecordWrite::Create {
                        collection,
                        rkey,
                        record,
                    });
                    results.push(OpResult::Create {
                        uri,
                        cid,
                        validation,
                    });
                }
            }
            (_, None) => return Err(XrpcError::internal("record write without a record")),
        }
    }
    if writes.is_empty() {
        return Ok((
            WriteOutcome {
                commit: None,
                results,
            },
            None,
        ));
    }
    make_blobs_permanent(st, rt, blobs, &writes)?;
    let key = st.key(ctx.actors_dir)?.clone();
    let (next, data) = repo
        .format_commit(&st.store, &writes, &key)
        .map_err(write_error)?;
    let unreferenced = st.store.apply_commit(&data).map_err(commit_store_error)?;
    st.set_repo(next);
    // Queued under the lock, so the account's events follow its commit order; stored (with
    // the root mirror) after the lock is released, before the write is acknowledged.
    let sequenced = ctx.sequencer.submit(
        vec![crate::sequencer::Event {
            did: did.to_string(),
            kind: crate::sequencer::frames::EventKind::Commit,
            body: crate::sequencer::frames::commit_body(did.as_str(), &data),
        }],
        Some(crate::sequencer::RepoHead {
            did: did.clone(),
            cid: data.cid,
            rev: data.rev.to_string(),
        }),
    );
    // Still under the account's lock, so a re-upload of the same blob (which takes the lock to
    // record its row) can't land between the row's deletion and this delete of its bytes.
    if !unreferenced.is_empty()
        && let Err(e) = super::actors::block_on(rt, blobs.delete_many(&did, &unreferenced))
    {
        // The commit stands; leftover bytes without a row are garbage collected.
        tracing::warn!(%did, "deleting unreferenced blobs: {e}");
    }
    Ok((
        WriteOutcome {
            commit: Some(data),
            results,
        },
        Some(sequenced),
    ))
}

/// Moves the bytes of uploaded (temporary) blobs the writes reference to permanent storage,
/// before the commit that references them is stored. A missing blob is reported by the commit.
fn make_blobs_permanent(
    st: &ActorState,
    rt: &tokio::runtime::Handle,
    blobs: &dyn crate::blob::BlobStore,
    writes: &[RecordWrite],
) -> Result<(), XrpcError> {
    for w in writes {
        let (RecordWrite::Create { record, .. } | RecordWrite::Update { record, .. }) = w else {
            continue;
        };
        for blob in crate::data::blob_refs(record) {
            let Some(row) = st.store.blob(&blob.cid).map_err(store_error)? else {
                continue;
            };
            if let Some(temp_key) = row.temp_key {
                super::actors::block_on(rt, blobs.make_permanent(&st.did, &temp_key, &blob.cid))
                    .map_err(|e| XrpcError::internal(format!("making blob permanent: {e}")))?;
            }
        }
    }
    Ok(())
}

fn write_error(e: WriteError) -> XrpcError {
    match e {
        WriteError::RecordExists(key) => {
            XrpcError::invalid_request(format!("Record already exists: {key}"))
        }
        WriteError::RecordNotFound(key) => {
            XrpcError::invalid_request(format!("Could not find record: {key}"))
        }
        WriteError::InvalidRecord { key, reason } => {
            XrpcError::invalid_request(format!("Invalid record {key}: {reason}"))
        }
        WriteError::TooLarge(_) => {
            XrpcError::invalid_request("Too many writes. Max event size: 2MB")
        }
        other => XrpcError::internal(format!("building the commit: {other}")),
    }
}

fn commit_store_error(e: StoreError) -> XrpcError {
    match e {
        StoreError::BlobRef(b) => {
            let name = match b.as_ref() {
                BlobRefError::NotFound(_) => "BlobNotFound",
                BlobRefError::MimeType { .. } => "InvalidMimeType",
                BlobRefError::Size { .. } => "InvalidSize",
            };
            XrpcError::bad_request(name, b.to_string())
        }
        other => store_error(other),
    }
}
