//! The sequencer's journal: queued events on disk before they are in `sequencer.sqlite`.
//!
//! Why: storing a round in SQLite (a transaction, its WAL frames and locks, and the root
//! mirror after it) is a quarter of a lone repo write's time. With the journal, a write's
//! event is durable once it is appended here (one `write`), so the write is acknowledged at
//! once and the round is stored behind it.
//!
//! Invariants:
//! - Entries are appended in ticket order with strictly increasing ids (the ticket numbers,
//!   which continue across restarts from the highest id stored or journaled), so the valid
//!   entries are a prefix of the file: reading stops at the first entry that is torn (bad
//!   checksum or length) or whose id does not increase.
//! - The file is rewritten from its start ([`Journal::rewind`]) only when every entry in it is
//!   stored, so what lies past the newest entries is stale: older ids, or a torn entry.
//! - `sequencer.sqlite` keeps the id of the last entry it stored in the transaction that
//!   stores it, so recovery replays exactly the entries after it.
//! - One process journals at a time: the file is locked (`flock`) while open. A second process
//!   (a CLI command beside the server) gets no journal and stores its events before returning.
//!
//! The durability matches the databases': each append is fsynced only when
//! `PDS_SQLITE_SYNCHRONOUS=full`; otherwise an append survives a crash of the process but not
//! necessarily of the machine, as a `synchronous=NORMAL` commit.
//!
//! Format of an entry: `len: u32 LE` (of the payload), the first 8 bytes of the payload's
//! SHA-256, then the payload: `id: u64 LE`, the event count (`u32`), each event as its DID,
//! its stored kind name and its DAG-CBOR body, then a flag byte and, if set, the head (DID,
//! CID bytes, rev). Strings and byte strings are length-prefixed (`u32 LE`).

use super::RepoHead;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Larger entries are refused on read (a length this big is a torn header, not an event).
const MAX_ENTRY: usize = 256 * 1024 * 1024;

/// An event as journaled and stored: its account, kind and DAG-CBOR body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub did: String,
    pub kind: super::frames::EventKind,
    pub body: Vec<u8>,
}

/// One journaled submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: u64,
    pub events: Vec<StoredEvent>,
    pub head: Option<RepoHead>,
}

pub struct Journal {
    file: File,
    /// Where the next entry goes.
    offset: u64,
    /// fsync each append (`PDS_SQLITE_SYNCHRONOUS=full`).
    sync: bool,
    /// Reused across appends.
    buf: Vec<u8>,
}

impl Journal {
    /// Opens and locks the journal at `path`, returning it with the valid entries it holds,
    /// oldest first; `None` if another process holds it.
    pub fn open(path: &Path, sync: bool) -> io::Result<Option<(Journal, Vec<Entry>)>> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (entries, end) = parse(&bytes);
        let journal = Journal {
            file,
            offset: end as u64,
            sync,
            buf: Vec::new(),
        };
        Ok(Some((journal, entries)))
    }

    /// Appends an entry. On error nothing is promised about the entry: the caller stores its
    /// events before acknowledging them.
    pub fn append(
        &mut self,
        id: u64,
        events: &[StoredEvent],
        head: Option<&RepoHead>,
    ) -> io::Result<()> {
        self.buf.clear();
        encode(&mut self.buf, id, events, head);
        self.file.write_all_at(&self.buf, self.offset)?;
        if self.sync {
            self.file.sync_data()?;
        }
        self.offset += self.buf.len() as u64;
        Ok(())
    }

    /// Every entry is stored: the next one is written at the start of the file.
    pub fn rewind(&mut self) {
        self.offset = 0;
    }

    /// Bytes from the start to the end of the newest entry.
    pub fn len(&self) -> u64 {
        self.offset
    }

    /// Empties the file (after recovery stored its entries).
    pub fn clear(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.offset = 0;
        Ok(())
    }
}

fn encode(out: &mut Vec<u8>, id: u64, events: &[StoredEvent], head: Option<&RepoHead>) {
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(&id.to_le_bytes());
    put_len(out, events.len());
    for e in events {
        put_bytes(out, e.did.as_bytes());
        put_bytes(out, e.kind.stored_name().as_bytes());
        put_bytes(out, &e.body);
    }
    match head {
        None => out.push(0),
        Some(h) => {
            out.push(1);
            put_bytes(out, h.did.as_str().as_bytes());
            put_bytes(out, &h.cid.to_bytes());
            put_bytes(out, h.rev.as_bytes());
        }
    }
    let payload_len = (out.len() - 12) as u32;
    let digest = Sha256::digest(&out[12..]);
    out[0..4].copy_from_slice(&payload_len.to_le_bytes());
    out[4..12].copy_from_slice(&digest[..8]);
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

/// The valid prefix of a journal: its entries and where it ends.
fn parse(bytes: &[u8]) -> (Vec<Entry>, usize) {
    let mut entries: Vec<Entry> = Vec::new();
    let mut at = 0;
    while let Some((entry, next)) = entry_at(bytes, at) {
        if entries.last().is_some_and(|last| entry.id <= last.id) {
            break;
        }
        entries.push(entry);
        at = next;
    }
    (entries, at)
}

/// The entry starting at `at` and where the next one starts, if it is whole and intact.
fn entry_at(bytes: &[u8], at: usize) -> Option<(Entry, usize)> {
    let header = bytes.get(at..at.checked_add(12)?)?;
    let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    if len > MAX_ENTRY {
        return None;
    }
    let end = at + 12 + len;
    let payload = bytes.get(at + 12..end)?;
    if Sha256::digest(payload)[..8] != header[4..12] {
        return None;
    }
    let mut r = Reader(payload);
    let id = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
    let count = r.len()?;
    let mut events = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let did = String::from_utf8(r.bytes()?.to_vec()).ok()?;
        let kind =
            super::frames::EventKind::from_stored_name(std::str::from_utf8(r.bytes()?).ok()?)?;
        let body = r.bytes()?.to_vec();
        events.push(StoredEvent { did, kind, body });
    }
    let head = match r.take(1)? {
        [0] => None,
        [1] => {
            let did = std::str::from_utf8(r.bytes()?)
                .ok()?
                .parse::<crate::syntax::Did>()
                .ok()?;
            let cid = cid::Cid::try_from(r.bytes()?).ok()?;
            let rev = String::from_utf8(r.bytes()?.to_vec()).ok()?;
            Some(RepoHead { did, cid, rev })
        }
        _ => return None,
    };
    if !r.0.is_empty() {
        return None;
    }
    Some((Entry { id, events, head }, end))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn len(&mut self) -> Option<usize> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::frames::EventKind;
    use super::*;

    fn event(did: &str, body: &[u8]) -> StoredEvent {
        StoredEvent {
            did: did.into(),
            kind: EventKind::Commit,
            body: body.to_vec(),
        }
    }

    fn head(rev: &str) -> RepoHead {
        RepoHead {
            did: "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa".parse().unwrap(),
            cid: crate::data::cbor_cid(b"\xa0"),
            rev: rev.into(),
        }
    }

    #[test]
    fn entries_survive_a_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        // fsynced appends (PDS_SQLITE_SYNCHRONOUS=full) read back the same.
        let (mut j, found) = Journal::open(&path, true).unwrap().unwrap();
        assert!(found.is_empty());
        j.append(5, &[event("did:a", b"one"), event("did:b", b"")], None)
            .unwrap();
        j.append(6, &[], Some(&head("3kaaa"))).unwrap();
        drop(j);
        let (_, found) = Journal::open(&path, false).unwrap().unwrap();
        assert_eq!(
            found,
            vec![
                Entry {
                    id: 5,
                    events: vec![event("did:a", b"one"), event("did:b", b"")],
                    head: None,
                },
                Entry {
                    id: 6,
                    events: vec![],
                    head: Some(head("3kaaa")),
                },
            ]
        );
    }

    #[test]
    fn a_torn_tail_ends_the_journal_and_the_next_append_overwrites_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, _) = Journal::open(&path, false).unwrap().unwrap();
        j.append(1, &[event("did:a", b"first")], None).unwrap();
        let whole = j.len();
        j.append(2, &[event("did:a", b"second")], None).unwrap();
        drop(j);
        // Every cut inside the second entry, and a flipped byte in it, loses only it.
        let bytes = std::fs::read(&path).unwrap();
        for cut in whole as usize..bytes.len() {
            assert_eq!(parse(&bytes[..cut]).1, whole as usize, "cut at {cut}");
        }
        for flip in whole as usize..bytes.len() {
            let mut bad = bytes.clone();
            bad[flip] ^= 0x40;
            let (entries, end) = parse(&bad);
            assert_eq!((entries.len(), end), (1, whole as usize), "flip at {flip}");
        }
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let (mut j, found) = Journal::open(&path, false).unwrap().unwrap();
        assert_eq!(found.len(), 1);
        j.append(3, &[event("did:a", b"third")], None).unwrap();
        drop(j);
        let (_, found) = Journal::open(&path, false).unwrap().unwrap();
        assert_eq!(found.iter().map(|e| e.id).collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn after_a_rewind_older_entries_past_the_new_ones_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, _) = Journal::open(&path, false).unwrap().unwrap();
        // Same-sized entries, so the new one ends exactly where an old one starts.
        for id in 1..=3 {
            j.append(id, &[event("did:a", b"xx")], None).unwrap();
        }
        j.rewind();
        j.append(4, &[event("did:a", b"yy")], None).unwrap();
        drop(j);
        let (_, found) = Journal::open(&path, false).unwrap().unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, 4);
        assert_eq!(found[0].events[0].body, b"yy");
    }

    #[test]
    fn a_second_opener_gets_no_journal_until_the_first_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, _) = Journal::open(&path, false).unwrap().unwrap();
        assert!(Journal::open(&path, false).unwrap().is_none());
        j.append(1, &[], None).unwrap();
        j.clear().unwrap();
        drop(j);
        let (_, found) = Journal::open(&path, false).unwrap().unwrap();
        assert!(found.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }
}
