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

/// [`message_frame`] from a body as stored (DAG-CBOR, without `seq` and `time`): the two
/// entries are spliced into the encoded map at their canonical places instead of decoding and
/// re-encoding the whole body, which for a `#commit` is mostly its CAR bytes. Falls back to
/// the decode if the bytes are not a map this splice understands.
pub fn message_frame_from_stored(
    kind: EventKind,
    stored: &[u8],
    seq: i64,
    time: &str,
) -> Result<Vec<u8>, crate::data::DataError> {
    let header = map([("op", Ipld::Integer(1)), ("t", str(kind.frame_type()))]);
    match splice::with_seq_and_time(stored, seq, time) {
        Some(body) => {
            let mut out = cbor::encode(&header)?;
            out.extend(body);
            Ok(out)
        }
        None => Ok(message_frame(kind, &cbor::decode(stored)?, seq, time)),
    }
}

/// Byte-level insertion of `seq` and `time` into an encoded DAG-CBOR map.
mod splice {
    /// Deeper nesting than any event body has: refuse rather than recurse without end.
    const MAX_DEPTH: usize = 64;

    /// A data item's head at `i`: (major type, argument, where its content starts).
    fn head(b: &[u8], i: usize) -> Option<(u8, u64, usize)> {
        let first = *b.get(i)?;
        let (major, info) = (first >> 5, first & 0x1f);
        let (arg, next) = match info {
            0..=23 => (u64::from(info), i + 1),
            24 => (u64::from(*b.get(i + 1)?), i + 2),
            25 => (
                u64::from(u16::from_be_bytes(b.get(i + 1..i + 3)?.try_into().ok()?)),
                i + 3,
            ),
            26 => (
                u64::from(u32::from_be_bytes(b.get(i + 1..i + 5)?.try_into().ok()?)),
                i + 5,
            ),
            27 => (
                u64::from_be_bytes(b.get(i + 1..i + 9)?.try_into().ok()?),
                i + 9,
            ),
            // Indefinite lengths and reserved values are not DAG-CBOR.
            _ => return None,
        };
        Some((major, arg, next))
    }

    /// Where the data item starting at `i` ends.
    fn skip(b: &[u8], i: usize, depth: usize) -> Option<usize> {
        if depth > MAX_DEPTH {
            return None;
        }
        let (major, arg, next) = head(b, i)?;
        let end = match major {
            0 | 1 | 7 => next,
            2 | 3 => next.checked_add(usize::try_from(arg).ok()?)?,
            4 | 5 => {
                let items = arg.checked_mul(if major == 5 { 2 } else { 1 })?;
                let mut at = next;
                for _ in 0..items {
                    at = skip(b, at, depth + 1)?;
                }
                at
            }
            6 => skip(b, next, depth + 1)?,
            _ => return None,
        };
        (end <= b.len()).then_some(end)
    }

    fn put_head(out: &mut Vec<u8>, major: u8, arg: u64) {
        let m = major << 5;
        match arg {
            0..=23 => out.push(m | arg as u8),
            24..=0xff => out.extend([m | 24, arg as u8]),
            0x100..=0xffff => {
                out.push(m | 25);
                out.extend((arg as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(m | 26);
                out.extend((arg as u32).to_be_bytes());
            }
            _ => {
                out.push(m | 27);
                out.extend(arg.to_be_bytes());
            }
        }
    }

    fn put_text(out: &mut Vec<u8>, s: &str) {
        put_head(out, 3, s.len() as u64);
        out.extend(s.as_bytes());
    }

    /// DAG-CBOR map key order: shorter first, then bytewise.
    fn key_before(a: &[u8], b: &[u8]) -> bool {
        (a.len(), a) < (b.len(), b)
    }

    /// `stored` (a map without `seq` and `time`) with both added; `None` if `stored` is not
    /// such a map.
    pub(super) fn with_seq_and_time(stored: &[u8], seq: i64, time: &str) -> Option<Vec<u8>> {
        let (major, entries, mut at) = head(stored, 0)?;
        if major != 5 {
            return None;
        }
        let mut seq_entry = Vec::with_capacity(12);
        put_text(&mut seq_entry, "seq");
        match u64::try_from(seq) {
            Ok(n) => put_head(&mut seq_entry, 0, n),
            Err(_) => put_head(&mut seq_entry, 1, seq.unsigned_abs() - 1),
        }
        let mut time_entry = Vec::with_capacity(time.len() + 8);
        put_text(&mut time_entry, "time");
        put_text(&mut time_entry, time);
        let mut pending: [(&[u8], Option<Vec<u8>>); 2] =
            [(b"seq", Some(seq_entry)), (b"time", Some(time_entry))];

        let mut out = Vec::with_capacity(stored.len() + time.len() + 24);
        put_head(&mut out, 5, entries.checked_add(2)?);
        for _ in 0..entries {
            let (key_major, key_len, key_at) = head(stored, at)?;
            if key_major != 3 {
                return None;
            }
            let key_end = key_at.checked_add(usize::try_from(key_len).ok()?)?;
            let key = stored.get(key_at..key_end)?;
            if key == b"seq" || key == b"time" {
                return None;
            }
            let value_end = skip(stored, key_end, 1)?;
            for (name, entry) in pending.iter_mut() {
                if key_before(name, key)
                    && let Some(entry) = entry.take()
                {
                    out.extend(entry);
                }
            }
            out.extend(stored.get(at..value_end)?);
            at = value_end;
        }
        if at != stored.len() {
            return None;
        }
        for (_, entry) in pending.iter_mut() {
            if let Some(entry) = entry.take() {
                out.extend(entry);
            }
        }
        Some(out)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spliced_equals_reencoded(kind: EventKind, body: &Ipld, seq: i64, time: &str) {
        let stored = cbor::encode(body).unwrap();
        let fast = message_frame_from_stored(kind, &stored, seq, time).unwrap();
        assert_eq!(fast, message_frame(kind, body, seq, time), "body {body:?}");
        assert!(splice::with_seq_and_time(&stored, seq, time).is_some());
    }

    #[test]
    fn stored_bodies_of_every_kind_splice_to_the_reencoded_frame() {
        let cid = crate::data::cbor_cid(b"x");
        let time = "2026-11-23T10:00:00.000Z";
        for seq in [0, 1, 23, 24, 255, 256, 65_535, 65_536, 1 << 40] {
            spliced_equals_reencoded(
                EventKind::Sync,
                &sync_body("did:plc:abc", "3l3qo2vutsw2b", &cid, &[1u8; 300]),
                seq,
                time,
            );
            spliced_equals_reencoded(
                EventKind::Identity,
                &identity_body("did:plc:abc", Some("alice.test")),
                seq,
                time,
            );
            spliced_equals_reencoded(
                EventKind::Account,
                &account_body("did:plc:abc", false, Some("deleted")),
                seq,
                time,
            );
        }
    }

    #[test]
    fn what_the_splice_does_not_understand_falls_back_or_fails() {
        let time = "2026-11-23T10:00:00.000Z";
        // Already has `seq`: the splice refuses, the fallback keeps one `seq`, the new one.
        let body = map([("seq", Ipld::Integer(5)), ("repo", str("did:plc:x"))]);
        let stored = cbor::encode(&body).unwrap();
        assert!(splice::with_seq_and_time(&stored, 9, time).is_none());
        assert_eq!(
            message_frame_from_stored(EventKind::Commit, &stored, 9, time).unwrap(),
            message_frame(EventKind::Commit, &body, 9, time)
        );
        // Not a map, truncated, trailing bytes: refused by the splice.
        assert!(splice::with_seq_and_time(&cbor::encode(&str("x")).unwrap(), 1, time).is_none());
        let mut truncated = cbor::encode(&map([("repo", str("did:plc:x"))])).unwrap();
        truncated.pop();
        assert!(splice::with_seq_and_time(&truncated, 1, time).is_none());
        assert!(message_frame_from_stored(EventKind::Commit, &truncated, 1, time).is_err());
        let mut trailing = cbor::encode(&map([("repo", str("did:plc:x"))])).unwrap();
        trailing.push(0);
        assert!(splice::with_seq_and_time(&trailing, 1, time).is_none());
    }

    fn value() -> impl Strategy<Value = Ipld> {
        let leaf = prop_oneof![
            Just(Ipld::Null),
            any::<bool>().prop_map(Ipld::Bool),
            any::<i64>().prop_map(|i| Ipld::Integer(i.into())),
            "[a-z]{0,30}".prop_map(Ipld::String),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(Ipld::Bytes),
            proptest::collection::vec(any::<u8>(), 0..40)
                .prop_map(|b| Ipld::Link(crate::data::cbor_cid(&b))),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Ipld::List),
                proptest::collection::btree_map("[a-z]{1,8}", inner, 0..6).prop_map(Ipld::Map),
            ]
        })
    }

    proptest! {
        // Keys of every length around `seq` (3) and `time` (4), so both land before, between
        // and after existing keys.
        #[test]
        fn any_map_splices_to_the_reencoded_frame(
            entries in proptest::collection::btree_map("[a-z]{1,6}", value(), 0..12),
            seq in 0i64..(1 << 50),
            time in "[0-9:TZ.-]{0,40}",
        ) {
            let entries: BTreeMap<String, Ipld> = entries
                .into_iter()
                .filter(|(k, _)| k != "seq" && k != "time")
                .collect();
            spliced_equals_reencoded(EventKind::Commit, &Ipld::Map(entries), seq, &time);
        }
    }
}
