//! Firehose event bodies and frames (`com.atproto.sync.subscribeRepos`), pure functions.
//!
//! A frame is two concatenated DAG-CBOR objects: a header (`{op: 1, t: "#commit"}`, or
//! `{op: -1}` for errors) and the body. Bodies are stored without `seq` and `time`, which are
//! added when the frame is built, as the reference does.

use crate::car;
use crate::data::{Cid, Ipld, cbor};
use crate::repo::{CommitData, RecordOp};
use std::collections::BTreeMap;

/// The kinds of persisted events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Commit,
    Sync,
    Identity,
    Account,
}

impl EventKind {
    /// The `event_type` column, as the reference names it.
    pub fn stored_name(self) -> &'static str {
        match self {
            EventKind::Commit => "append",
            EventKind::Sync => "sync",
            EventKind::Identity => "identity",
            EventKind::Account => "account",
        }
    }

    pub fn from_stored_name(s: &str) -> Option<EventKind> {
        Some(match s {
            "append" => EventKind::Commit,
            "sync" => EventKind::Sync,
            "identity" => EventKind::Identity,
            "account" => EventKind::Account,
            _ => return None,
        })
    }

    /// The header's `t`.
    pub fn frame_type(self) -> &'static str {
        match self {
            EventKind::Commit => "#commit",
            EventKind::Sync => "#sync",
            EventKind::Identity => "#identity",
            EventKind::Account => "#account",
        }
    }
}

fn map(entries: impl IntoIterator<Item = (&'static str, Ipld)>) -> Ipld {
    Ipld::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn str(s: impl Into<String>) -> Ipld {
    Ipld::String(s.into())
}

/// A CAR with `root` and `blocks`.
fn car_bytes<'a>(root: &Cid, blocks: impl Iterator<Item = (&'a Cid, &'a Vec<u8>)>) -> Vec<u8> {
    let mut out = car::encode_header(std::slice::from_ref(root));
    for (cid, bytes) in blocks {
        car::encode_block(cid, bytes, &mut out);
    }
    out
}

/// `#commit` (sync 1.1): the new blocks plus the proof blocks a relay needs to invert the ops
/// against `prevData`.
pub fn commit_body(did: &str, c: &CommitData) -> Ipld {
    let ops = c
        .ops
        .iter()
        .map(|op| match op {
            RecordOp::Create { key, cid } => map([
                ("action", str("create")),
                ("path", str(key.as_str())),
                ("cid", Ipld::Link(*cid)),
            ]),
            RecordOp::Update { key, prev, cid } => map([
                ("action", str("update")),
                ("path", str(key.as_str())),
                ("cid", Ipld::Link(*cid)),
                ("prev", Ipld::Link(*prev)),
            ]),
            RecordOp::Delete { key, prev } => map([
                ("action", str("delete")),
                ("path", str(key.as_str())),
                ("cid", Ipld::Null),
                ("prev", Ipld::Link(*prev)),
            ]),
        })
        .collect();
    let mut entries = vec![
        ("repo", str(did)),
        ("commit", Ipld::Link(c.cid)),
        ("rev", str(c.rev.to_string())),
        ("since", c.since.map_or(Ipld::Null, |s| str(s.to_string()))),
        ("blocks", Ipld::Bytes(car_bytes(&c.cid, c.event_blocks()))),
        ("ops", Ipld::List(ops)),
        ("blobs", Ipld::List(Vec::new())),
        ("rebase", Ipld::Bool(false)),
        ("tooBig", Ipld::Bool(false)),
    ];
    if let Some(prev) = c.prev_data {
        entries.push(("prevData", Ipld::Link(prev)));
    }
    map(entries)
}

/// `#sync`: the current commit only, telling relays to re-sync this repo from here.
pub fn sync_body(did: &str, rev: &str, commit_cid: &Cid, commit_block: &[u8]) -> Ipld {
    let block = commit_block.to_vec();
    map([
        ("did", str(did)),
        ("rev", str(rev)),
        (
            "blocks",
            Ipld::Bytes(car_bytes(commit_cid, std::iter::once((commit_cid, &block)))),
        ),
    ])
}

/// `#identity`: the DID's handle (or DID document) may have changed.
pub fn identity_body(did: &str, handle: Option<&str>) -> Ipld {
    let mut entries = vec![("did", str(did))];
    if let Some(h) = handle {
        entries.push(("handle", str(h)));
    }
    map(entries)
}

/// `#account`: hosting status; `status` only when inactive
/// (`takendown`, `suspended`, `deleted`, `deactivated`).
pub fn account_body(did: &str, active: bool, status: Option<&str>) -> Ipld {
    let mut entries = vec![("did", str(did)), ("active", Ipld::Bool(active))];
    if let (false, Some(s)) = (active, status) {
        entries.push(("status", str(s)));
    }
    map(entries)
}

/// A message frame: header `{op: 1, t}` and the body with `seq` and `time` added.
pub fn message_frame(kind: EventKind, body: &Ipld, seq: i64, time: &str) -> Vec<u8> {
    let mut body = body.clone();
    if let Ipld::Map(m) = &mut body {
        m.insert("seq".into(), Ipld::Integer(seq.into()));
        m.insert("time".into(), str(time));
    }
    frame(
        &map([("op", Ipld::Integer(1)), ("t", str(kind.frame_type()))]),
        &body,
    )
}

/// `#info` (not persisted, no `seq`).
pub fn info_frame(name: &str, message: &str) -> Vec<u8> {
    frame(
        &map([("op", Ipld::Integer(1)), ("t", str("#info"))]),
        &map([("name", str(name)), ("message", str(message))]),
    )
}

/// An error frame; the stream closes after it.
pub fn error_frame(error: &str, message: &str) -> Vec<u8> {
    frame(
        &map([("op", Ipld::Integer(-1))]),
        &map([("error", str(error)), ("message", str(message))]),
    )
}

fn frame(header: &Ipld, body: &Ipld) -> Vec<u8> {
    // Our own values (strings, ints, bytes, links): encoding cannot fail.
    let mut out = cbor::encode(header).unwrap_or_default();
    out.extend(cbor::encode(body).unwrap_or_default());
    out
}
