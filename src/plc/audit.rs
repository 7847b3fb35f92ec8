//! The rules for appending an operation to a DID's log, and replay of a whole audit log.
//!
//! Invariants:
//! - The "active" log is the chain of non-nullified operations, genesis first. A new operation
//!   must name an active, non-tombstone operation as `prev`, and be signed by one of that
//!   operation's rotation keys.
//! - If `prev` is not the newest active op, the new op forks history: every active op after
//!   `prev` becomes nullified. That is allowed only when the new op's signer has strictly
//!   higher authority (lower index in `prev`'s rotation keys) than the signer of the first op
//!   it nullifies, when it comes strictly after the newest active op in time, and when it
//!   comes at most [`RECOVERY_WINDOW_MS`] (inclusive) after the first op it nullifies.
//! - A genesis must be signed by one of its own rotation keys and hash to the DID.
//! - Nothing here reads a clock: the time of the new operation is an argument.

use super::document::DocumentData;
use super::operation::{LogEntry, SignedOp, parse_prev};
use super::{PlcError, RECOVERY_WINDOW_MS};
use crate::data::Cid;
use chrono::{DateTime, Utc};

/// An active (non-nullified) operation with the facts the rules need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedOp {
    pub op: SignedOp,
    pub cid: Cid,
    pub created_at: DateTime<Utc>,
}

/// What accepting an operation does to the active log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextOp {
    /// The op it follows (`None` for a genesis).
    pub prev: Option<Cid>,
    /// Active ops from this index on become nullified (`active.len()` when none do).
    pub nullify_from: usize,
}

/// Decides whether `proposed`, arriving at `at`, may follow the active log `active` of `did`.
pub fn assure_valid_next_op(
    did: &str,
    active: &[IndexedOp],
    proposed: &SignedOp,
    at: DateTime<Utc>,
) -> Result<NextOp, PlcError> {
    let Some(newest) = active.last() else {
        assure_valid_genesis(did, proposed)?;
        return Ok(NextOp {
            prev: None,
            nullify_from: 0,
        });
    };
    let prev_str = proposed.prev().ok_or_else(|| {
        PlcError::Misordered(format!(
            "{did} already has a genesis operation; a new operation needs prev"
        ))
    })?;
    let prev = parse_prev(prev_str)?;
    let index = active.iter().position(|o| o.cid == prev).ok_or_else(|| {
        PlcError::Misordered(format!(
            "prev {prev} is not an operation in the current (non-nullified) log of {did}"
        ))
    })?;
    let fork_point = &active[index];
    let keys = fork_point
        .op
        .state()
        .ok_or_else(|| {
            PlcError::Misordered(format!("prev {prev} is a tombstone; nothing may follow it"))
        })?
        .rotation_keys;

    let Some(first_nullified) = active.get(index + 1) else {
        proposed.verify(&keys)?;
        return Ok(NextOp {
            prev: Some(prev),
            nullify_from: active.len(),
        });
    };

    // A fork: only a key that outranks the signer of the first op being undone may do it.
    let disputed_signer = first_nullified.op.verify(&keys).map_err(|e| {
        PlcError::AuditLog(format!(
            "stored operation {} does not verify against its prev: {e}",
            first_nullified.cid
        ))
    })?;
    let stronger = &keys[..disputed_signer];
    proposed.verify(stronger).map_err(|e| {
        let why = match e {
            PlcError::InvalidSignature(why) => why,
            other => other.to_string(),
        };
        PlcError::InvalidSignature(format!(
            "this operation forks history after {prev}, nullifying {}, so it must be signed by a rotation key ranked above index {disputed_signer} (the key that signed that op): {why}",
            first_nullified.cid
        ))
    })?;
    if at <= newest.created_at {
        return Err(PlcError::Misordered(format!(
            "a recovery operation at {at} is not after the newest operation at {}",
            newest.created_at
        )));
    }
    let lapsed_ms = (at - first_nullified.created_at).num_milliseconds();
    if lapsed_ms > RECOVERY_WINDOW_MS {
        return Err(PlcError::LateRecovery { lapsed_ms });
    }
    Ok(NextOp {
        prev: Some(prev),
        nullify_from: index + 1,
    })
}

/// Checks a genesis op for `did`: no `prev`, not a tombstone, signed by one of its own
/// rotation keys, hashes to `did`.
pub fn assure_valid_genesis(did: &str, op: &SignedOp) -> Result<(), PlcError> {
    if op.prev().is_some() {
        let msg = if op.is_tombstone() {
            format!("{did} is not registered; its first operation can not be a tombstone")
        } else {
            format!("{did} is not registered; its genesis operation must have prev: null")
        };
        return Err(PlcError::Misordered(msg));
    }
    let state = op
        .state()
        .ok_or_else(|| PlcError::Misordered("a genesis can not be a tombstone".into()))?;
    op.verify(&state.rotation_keys)?;
    let expected = op.did()?;
    if expected != did {
        return Err(PlcError::GenesisHash {
            did: did.to_string(),
            expected,
        });
    }
    Ok(())
}

/// The result of replaying an audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditOutcome {
    /// The recomputed `nullified` flag of every entry (equal to the recorded ones).
    pub nullified: Vec<bool>,
    /// The DID's current data; `None` when the newest active op is a tombstone.
    pub data: Option<DocumentData>,
    /// CID of the newest active op (what the next op's `prev` should be).
    pub last_cid: Cid,
}

/// Parses a log entry's `createdAt`.
pub fn parse_created_at(s: &str) -> Result<DateTime<Utc>, PlcError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| PlcError::AuditLog(format!("createdAt {s:?} is not an RFC 3339 time: {e}")))
}

/// Replays an audit log of `did` (entries in the directory's order), checking every
/// operation against the rules above, every recorded CID and DID, and every `nullified` flag.
pub fn validate_audit_log(did: &str, entries: &[LogEntry]) -> Result<AuditOutcome, PlcError> {
    if entries.is_empty() {
        return Err(PlcError::AuditLog(format!("the log of {did} is empty")));
    }
    let mut active: Vec<IndexedOp> = Vec::new();
    // Entry index of each active op, parallel to `active`.
    let mut active_entry: Vec<usize> = Vec::new();
    let mut nullified = vec![false; entries.len()];
    for (i, entry) in entries.iter().enumerate() {
        let at_entry = |e: PlcError| PlcError::AuditLog(format!("entry {i}: {e}"));
        if entry.did != did {
            return Err(at_entry(PlcError::AuditLog(format!(
                "belongs to {}, not {did}",
                entry.did
            ))));
        }
        let cid = entry.operation.cid().map_err(at_entry)?;
        if cid.to_string() != entry.cid {
            return Err(at_entry(PlcError::AuditLog(format!(
                "recorded cid {} but the operation hashes to {cid}",
                entry.cid
            ))));
        }
        let created_at = parse_created_at(&entry.created_at).map_err(at_entry)?;
        let next =
            assure_valid_next_op(did, &active, &entry.operation, created_at).map_err(at_entry)?;
        for undone in active_entry.drain(next.nullify_from..) {
            nullified[undone] = true;
        }
        active.truncate(next.nullify_from);
        active.push(IndexedOp {
            op: entry.operation.clone(),
            cid,
            created_at,
        });
        active_entry.push(i);
    }
    for (i, (entry, computed)) in entries.iter().zip(&nullified).enumerate() {
        if entry.nullified != *computed {
            return Err(PlcError::AuditLog(format!(
                "entry {i} ({}) is recorded as nullified={} but replay gives nullified={computed}",
                entry.cid, entry.nullified
            )));
        }
    }
    // The loop pushed at least once, so `active` has a newest op.
    let newest = active
        .last()
        .ok_or_else(|| PlcError::AuditLog("no active operation after replay".into()))?;
    Ok(AuditOutcome {
        nullified,
        data: newest.op.state().map(|s| s.to_document_data(did)),
        last_cid: newest.cid,
    })
}
