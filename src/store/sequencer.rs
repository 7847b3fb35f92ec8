//! `sequencer.sqlite`: the persisted firehose log.
//!
//! Invariants:
//! - Sequence numbers only grow and are never reused: each append takes the last one + 1 (read
//!   under the write lock, so another process appending to the file is seen), and before
//!   events are deleted (account deletion) the last one is kept in `high_water`.
//! - `journal.applied` is the id of the last sequencer journal entry stored, written in the
//!   transaction that stores that entry's events (see `sequencer::journal`).
//! - `sequenced_at` never decreases with `seq` (an append is never stamped earlier than the
//!   one before, even if the clock steps back), so a time is found by binary search over seq.

use super::StoreError;
#[cfg(test)]
use super::sqlite::Durability;
use super::sqlite::{self, SEQUENCER_MIGRATIONS, Tuning};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqRow {
    pub seq: i64,
    pub did: String,
    pub event_type: String,
    /// DAG-CBOR body without `seq` and `time`.
    pub event: Vec<u8>,
    pub sequenced_at: String,
}

/// What [`SequencerStore::append`] stored.
#[derive(Debug)]
pub struct Appended {
    /// The events' sequence numbers, in order.
    pub seqs: Vec<i64>,
    /// The `sequenced_at` they were stored with.
    pub time: String,
}

pub struct SequencerStore {
    conn: Connection,
    /// The last sequence number handed out (0 before the first).
    last_seq: i64,
    /// The time of the last event, the floor for the next one's.
    last_time: String,
}

impl SequencerStore {
    pub fn open(path: &Path, tuning: impl Into<Tuning>) -> Result<Self, StoreError> {
        let tuning = tuning.into();
        let mut conn = sqlite::open(path, SEQUENCER_MIGRATIONS, tuning)?;
        // Every write waits for the sequencer's round, so its checkpoints (a copy of ~16 MiB
        // and an fsync) must not run inside one.
        if tuning.auto_checkpoint {
            sqlite::checkpoint_in_background(&mut conn, path, sqlite::CHECKPOINT_FRAMES)?;
        }
        Self::with_conn(conn)
    }

    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::with_conn(sqlite::open_in_memory(SEQUENCER_MIGRATIONS)?)
    }

    fn with_conn(conn: Connection) -> Result<Self, StoreError> {
        let (last_seq, last_time) = stored_last(&conn)?;
        Ok(SequencerStore {
            conn,
            last_seq,
            last_time,
        })
    }

    /// Appends events in one transaction, stamped `now` (or the last event's time if the clock
    /// went back); returns their sequence numbers in order and the time stamped. `journaled`:
    /// the id of the last journal entry these events come from, recorded in the same
    /// transaction.
    pub fn append(
        &mut self,
        events: &[(&str, &str, &[u8])],
        now: &str,
        journaled: Option<u64>,
    ) -> Result<Appended, StoreError> {
        let time = now.max(self.last_time.as_str()).to_string();
        // Immediate: the write lock is taken before the last number is read, so another
        // process appending to the same file (a CLI command beside the server) is seen here
        // rather than collided with.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (stored_seq, stored_time) = stored_last(&tx)?;
        let last_seq = self.last_seq.max(stored_seq);
        let time = time.max(stored_time);
        let seqs: Vec<i64> = (1..=events.len() as i64).map(|i| last_seq + i).collect();
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO repo_seq (seq, did, event_type, event, sequenced_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for ((did, event_type, body), seq) in events.iter().zip(&seqs) {
                insert.execute(params![seq, did, event_type, body, time])?;
            }
        }
        if let Some(id) = journaled {
            tx.prepare_cached("UPDATE journal SET applied = ?1 WHERE id = 1")?
                .execute([id as i64])?;
        }
        tx.commit()?;
        if let Some(last) = seqs.last() {
            self.last_seq = *last;
            self.last_time.clone_from(&time);
        }
        Ok(Appended { seqs, time })
    }

    /// The id of the last journal entry stored (0 before any).
    pub fn journal_applied(&self) -> Result<u64, StoreError> {
        let id: i64 = self
            .conn
            .query_row("SELECT applied FROM journal WHERE id = 1", [], |r| r.get(0))?;
        Ok(id as u64)
    }

    /// Up to `limit` events with `seq > after`, in order.
    pub fn after(&self, after: i64, limit: usize) -> Result<Vec<SeqRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, did, event_type, event, sequenced_at FROM repo_seq
             WHERE seq > ?1 AND invalidated = 0 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![after, limit as i64], |r| {
                Ok(SeqRow {
                    seq: r.get(0)?,
                    did: r.get(1)?,
                    event_type: r.get(2)?,
                    event: r.get(3)?,
                    sequenced_at: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The highest sequence number handed out (0 before the first event).
    pub fn max_seq(&self) -> Result<i64, StoreError> {
        Ok(self.last_seq)
    }

    /// The first event sequenced at or after `time` (an RFC 3339 string), if any: a binary
    /// search over seq, each probe one rowid seek.
    pub fn first_seq_since(&self, time: &str) -> Result<Option<i64>, StoreError> {
        let mut probe = self.conn.prepare_cached(
            "SELECT seq, sequenced_at FROM repo_seq WHERE seq >= ?1 ORDER BY seq LIMIT 1",
        )?;
        let mut at_or_after = |seq: i64| -> Result<Option<(i64, String)>, StoreError> {
            Ok(probe
                .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?)
        };
        // Invariant: every event below `lo` is earlier than `time`; `found` is the first
        // event at or after `hi` if it is not earlier.
        let (mut lo, mut hi) = (0i64, self.last_seq + 1);
        let mut found = None;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match at_or_after(mid)? {
                Some((seq, at)) if at.as_str() >= time => {
                    found = Some(seq);
                    hi = mid;
                }
                Some((seq, _)) => lo = seq + 1,
                None => hi = mid,
            }
        }
        Ok(found)
    }

    /// Removes every event of `did` except `keep` (account deletion, as the reference).
    pub fn delete_for_did(&mut self, did: &str, keep: i64) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO high_water (id, seq) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET seq = max(seq, excluded.seq)",
            [self.last_seq],
        )?;
        let deleted = tx.execute(
            "DELETE FROM repo_seq WHERE did = ?1 AND seq != ?2",
            params![did, keep],
        )?;
        tx.commit()?;
        Ok(deleted)
    }

    /// Number of stored events.
    pub fn count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM repo_seq", [], |r| r.get::<_, i64>(0))?
            as u64)
    }
}

/// The last sequence number handed out as stored (the newest row or `high_water`, whichever is
/// higher) and the newest event's time.
fn stored_last(conn: &Connection) -> Result<(i64, String), StoreError> {
    // Cached: every append runs it.
    let mut stmt = conn.prepare_cached(
        "SELECT max(coalesce((SELECT max(seq) FROM repo_seq), 0),
                    coalesce((SELECT seq FROM high_water), 0)),
                coalesce((SELECT sequenced_at FROM repo_seq ORDER BY seq DESC LIMIT 1), '')",
    )?;
    Ok(stmt.query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn append_one(store: &mut SequencerStore, did: &str, at: &str) -> i64 {
        store
            .append(&[(did, "append", b"body")], at, None)
            .unwrap()
            .seqs[0]
    }

    #[test]
    fn numbers_are_never_reused_after_the_newest_events_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sequencer.sqlite");
        let mut store = SequencerStore::open(&path, Durability::Off).unwrap();
        assert_eq!(
            append_one(&mut store, "did:a", "2026-01-01T00:00:00.000Z"),
            1
        );
        assert_eq!(
            append_one(&mut store, "did:b", "2026-01-01T00:00:01.000Z"),
            2
        );
        assert_eq!(
            append_one(&mut store, "did:b", "2026-01-01T00:00:02.000Z"),
            3
        );
        // Keeping 2 deletes 3, the newest event.
        assert_eq!(store.delete_for_did("did:b", 2).unwrap(), 1);
        drop(store);

        let mut store = SequencerStore::open(&path, Durability::Off).unwrap();
        assert_eq!(store.max_seq().unwrap(), 3);
        assert_eq!(
            append_one(&mut store, "did:a", "2026-01-01T00:00:03.000Z"),
            4
        );
    }

    #[test]
    fn upgrading_a_version_1_log_keeps_its_events_and_high_water_mark() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sequencer.sqlite");
        {
            let conn = sqlite::open(&path, &SEQUENCER_MIGRATIONS[..1], Durability::Off).unwrap();
            for i in 0..5 {
                conn.execute(
                    "INSERT INTO repo_seq (did, event_type, event, sequenced_at)
                     VALUES ('did:a', 'append', ?1, ?2)",
                    params![vec![i as u8], format!("2026-01-01T00:00:0{i}.000Z")],
                )
                .unwrap();
            }
            // AUTOINCREMENT remembers 5 after the newest row goes.
            conn.execute("DELETE FROM repo_seq WHERE seq = 5", [])
                .unwrap();
        }
        let mut store = SequencerStore::open(&path, Durability::Off).unwrap();
        assert_eq!(store.max_seq().unwrap(), 5);
        let rows = store.after(0, 10).unwrap();
        assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(rows[2].event, vec![2u8]);
        assert_eq!(
            store.first_seq_since("2026-01-01T00:00:02.500Z").unwrap(),
            Some(4)
        );
        assert_eq!(
            append_one(&mut store, "did:a", "2026-01-01T00:00:09.000Z"),
            6
        );
    }

    #[test]
    fn two_stores_on_one_file_never_hand_out_the_same_number() {
        // A CLI command beside the server opens the same file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sequencer.sqlite");
        let mut server = SequencerStore::open(&path, Durability::Off).unwrap();
        let mut cli = SequencerStore::open(&path, Durability::Off).unwrap();
        assert_eq!(
            append_one(&mut server, "did:a", "2026-01-01T00:00:01.000Z"),
            1
        );
        assert_eq!(append_one(&mut cli, "did:b", "2026-01-01T00:00:02.000Z"), 2);
        assert_eq!(
            append_one(&mut server, "did:a", "2026-01-01T00:00:01.500Z"),
            3
        );
        // Stamped no earlier than the other store's event.
        assert_eq!(
            server.after(2, 1).unwrap()[0].sequenced_at,
            "2026-01-01T00:00:02.000Z"
        );
    }

    #[test]
    fn a_clock_that_steps_back_does_not_stamp_an_earlier_time() {
        let mut store = SequencerStore::open_in_memory().unwrap();
        append_one(&mut store, "did:a", "2026-01-01T00:00:05.000Z");
        let appended = store
            .append(
                &[("did:a", "append", b"x")],
                "2026-01-01T00:00:01.000Z",
                None,
            )
            .unwrap();
        assert_eq!(appended.time, "2026-01-01T00:00:05.000Z");
        let rows = store.after(0, 10).unwrap();
        assert_eq!(rows[1].sequenced_at, "2026-01-01T00:00:05.000Z");
    }

    proptest! {
        /// The binary search finds what a scan of every stored event finds, with gaps left
        /// by deleted accounts and runs of equal times.
        #[test]
        fn first_seq_since_matches_a_scan(
            steps in proptest::collection::vec((0u8..3, 0u8..4), 1..60),
            deleted in 0u8..4,
            query in 0u32..200,
        ) {
            let mut store = SequencerStore::open_in_memory().unwrap();
            let mut second = 0u32;
            let mut last_of = std::collections::HashMap::new();
            for (advance, did) in &steps {
                second += u32::from(*advance);
                let did = format!("did:{did}");
                let seq = append_one(&mut store, &did, &format!("2026-01-01T00:{:02}:{:02}.000Z", second / 60, second % 60));
                last_of.insert(did, seq);
            }
            let gone = format!("did:{deleted}");
            if let Some(keep) = last_of.get(&gone) {
                store.delete_for_did(&gone, *keep).unwrap();
            }
            let time = format!("2026-01-01T00:{:02}:{:02}.000Z", query / 60 % 60, query % 60);
            let scan = store
                .after(0, 1000)
                .unwrap()
                .into_iter()
                .find(|r| r.sequenced_at >= time)
                .map(|r| r.seq);
            prop_assert_eq!(store.first_seq_since(&time).unwrap(), scan);
        }
    }
}
