//! `sequencer.sqlite`: the persisted firehose log.
//!
//! Invariant: sequence numbers come from SQLite's AUTOINCREMENT, so they only grow and are
//! never reused, even after rows are deleted (account deletion).

use super::StoreError;
use super::sqlite::{self, Durability, SEQUENCER_MIGRATIONS};
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

pub struct SequencerStore {
    conn: Connection,
}

impl SequencerStore {
    pub fn open(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        Ok(SequencerStore {
            conn: sqlite::open(path, SEQUENCER_MIGRATIONS, durability)?,
        })
    }

    pub fn open_in_memory() -> Result<Self, StoreError> {
        Ok(SequencerStore {
            conn: sqlite::open_in_memory(SEQUENCER_MIGRATIONS)?,
        })
    }

    /// Appends events in one transaction; returns their sequence numbers in order.
    pub fn append(
        &mut self,
        events: &[(&str, &str, &[u8])],
        sequenced_at: &str,
    ) -> Result<Vec<i64>, StoreError> {
        let tx = self.conn.transaction()?;
        let mut seqs = Vec::with_capacity(events.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO repo_seq (did, event_type, event, sequenced_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (did, event_type, body) in events {
                insert.execute(params![did, event_type, body, sequenced_at])?;
                seqs.push(tx.last_insert_rowid());
            }
        }
        tx.commit()?;
        Ok(seqs)
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
        // sqlite_sequence keeps the AUTOINCREMENT high-water mark even when rows are deleted.
        let seq: Option<i64> = self
            .conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'repo_seq'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(seq.unwrap_or(0))
    }

    /// The first event sequenced at or after `time` (an RFC 3339 string), if any.
    pub fn first_seq_since(&self, time: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT min(seq) FROM repo_seq WHERE sequenced_at >= ?1",
                [time],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// Removes every event of `did` except `keep` (account deletion, as the reference).
    pub fn delete_for_did(&mut self, did: &str, keep: i64) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM repo_seq WHERE did = ?1 AND seq != ?2",
            params![did, keep],
        )?)
    }

    /// Number of stored events.
    pub fn count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM repo_seq", [], |r| r.get::<_, i64>(0))?
            as u64)
    }
}
