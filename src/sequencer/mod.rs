//! The sequencer: gives every repo commit, identity change and account status change a
//! sequence number in `sequencer.sqlite`, and hands each new event, encoded once, to every
//! firehose subscriber.
//!
//! Invariants:
//! - Events are appended and broadcast under one lock, so subscribers see them in `seq` order
//!   and never a `seq` that is not on disk.
//! - A repo write is sequenced after its commit is stored and while the account's lock is
//!   still held, so per-account event order equals commit order and no event exists for a
//!   write that rolled back.
//! - Frames are `Arc`-shared: a thousand subscribers cost one encoding per event.

pub mod frames;
pub mod stats;

use crate::data::cbor;
use crate::store::StoreError;
use crate::store::sequencer::{SeqRow, SequencerStore};
use crate::store::sqlite::Durability;
use bytes::Bytes;
use frames::EventKind;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// An event to sequence: its account, kind and body (without `seq`/`time`).
#[derive(Debug, Clone)]
pub struct Event {
    pub did: String,
    pub kind: EventKind,
    pub body: crate::data::Ipld,
}

/// A sequenced event, ready to send.
#[derive(Debug)]
pub struct Frame {
    pub seq: i64,
    pub bytes: Bytes,
    /// When it was sequenced (live frames) or read back (replayed ones): delivery latency
    /// is measured from here.
    pub at: std::time::Instant,
}

type Listener = Box<dyn Fn() + Send + Sync>;

pub struct Sequencer {
    store: Mutex<SequencerStore>,
    live: broadcast::Sender<Arc<Frame>>,
    /// Called after events are sequenced (crawler notification); must not block.
    on_sequenced: Mutex<Vec<Listener>>,
    /// Live delivery latency and subscriber count, kept by the subscriber tasks.
    pub stats: stats::DeliveryStats,
}

impl Sequencer {
    /// `buffer` is how many frames a live subscriber may fall behind before it is dropped
    /// (`PDS_MAX_SUBSCRIPTION_BUFFER`).
    pub fn open(path: &Path, durability: Durability, buffer: usize) -> Result<Self, StoreError> {
        Ok(Self::with_store(
            SequencerStore::open(path, durability)?,
            buffer,
        ))
    }

    pub fn in_memory(buffer: usize) -> Result<Self, StoreError> {
        Ok(Self::with_store(SequencerStore::open_in_memory()?, buffer))
    }

    fn with_store(store: SequencerStore, buffer: usize) -> Self {
        let (live, _) = broadcast::channel(buffer.max(1));
        Sequencer {
            store: Mutex::new(store),
            live,
            on_sequenced: Mutex::new(Vec::new()),
            stats: stats::DeliveryStats::default(),
        }
    }

    /// Registers a callback run after each batch is sequenced.
    pub fn on_sequenced(&self, f: impl Fn() + Send + Sync + 'static) {
        if let Ok(mut l) = self.on_sequenced.lock() {
            l.push(Box::new(f));
        }
    }

    /// Appends `events` atomically and broadcasts them. Blocking (SQLite): call from a blocking
    /// thread. Returns their sequence numbers.
    pub fn sequence(&self, events: &[Event]) -> Result<Vec<i64>, StoreError> {
        let time = crate::syntax::Datetime::now().to_string();
        let mut encoded = Vec::with_capacity(events.len());
        for e in events {
            let body = cbor::encode(&e.body)
                .map_err(|err| StoreError::Corrupt(format!("event body: {err}")))?;
            encoded.push((e.did.as_str(), e.kind.stored_name(), body));
        }
        let seqs = {
            let mut store = self
                .store
                .lock()
                .map_err(|_| StoreError::Corrupt("sequencer lock poisoned".into()))?;
            let seqs = store.append(&encoded, &time)?;
            for (e, seq) in events.iter().zip(&seqs) {
                let bytes = frames::message_frame(e.kind, &e.body, *seq, &time);
                // No subscribers is not an error.
                let _ = self.live.send(Arc::new(Frame {
                    seq: *seq,
                    bytes: Bytes::from(bytes),
                    at: std::time::Instant::now(),
                }));
            }
            seqs
        };
        if let Ok(listeners) = self.on_sequenced.lock() {
            for l in listeners.iter() {
                l();
            }
        }
        Ok(seqs)
    }

    /// A receiver of live frames from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Frame>> {
        self.live.subscribe()
    }

    /// Up to `limit` stored frames after `after`. Blocking.
    pub fn replay(&self, after: i64, limit: usize) -> Result<Vec<Arc<Frame>>, StoreError> {
        let rows = self.lock()?.after(after, limit)?;
        rows.into_iter().map(row_frame).collect()
    }

    /// The last sequence number handed out (0 before any). Blocking.
    pub fn max_seq(&self) -> Result<i64, StoreError> {
        self.lock()?.max_seq()
    }

    /// The first stored event at or after `time` (RFC 3339). Blocking.
    pub fn first_seq_since(&self, time: &str) -> Result<Option<i64>, StoreError> {
        self.lock()?.first_seq_since(time)
    }

    /// Account deletion: sequences `#account{deleted}` and removes the account's other events.
    pub fn delete_account_events(&self, did: &str) -> Result<(), StoreError> {
        let seqs = self.sequence(&[Event {
            did: did.to_string(),
            kind: EventKind::Account,
            body: frames::account_body(did, false, Some("deleted")),
        }])?;
        if let Some(keep) = seqs.first() {
            self.lock()?.delete_for_did(did, *keep)?;
        }
        Ok(())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, SequencerStore>, StoreError> {
        self.store
            .lock()
            .map_err(|_| StoreError::Corrupt("sequencer lock poisoned".into()))
    }
}

fn row_frame(row: SeqRow) -> Result<Arc<Frame>, StoreError> {
    let kind = EventKind::from_stored_name(&row.event_type)
        .ok_or_else(|| StoreError::Corrupt(format!("event type {:?}", row.event_type)))?;
    let body = cbor::decode(&row.event)
        .map_err(|e| StoreError::Corrupt(format!("event {}: {e}", row.seq)))?;
    Ok(Arc::new(Frame {
        seq: row.seq,
        bytes: Bytes::from(frames::message_frame(
            kind,
            &body,
            row.seq,
            &row.sequenced_at,
        )),
        at: std::time::Instant::now(),
    }))
}
