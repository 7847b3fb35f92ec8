//! The sequencer: gives every repo commit, identity change and account status change a
//! sequence number in `sequencer.sqlite`, and hands each new event, encoded once, to every
//! firehose subscriber.
//!
//! Invariants:
//! - Events are appended and broadcast under one lock, so subscribers see them in `seq` order
//!   and never a `seq` that is not on disk.
//! - A repo write is queued after its commit is stored and while the account's lock is still
//!   held, and the queue is stored in order, so per-account event order equals commit order
//!   and no event exists for a write that rolled back. The write is acknowledged only after
//!   its event is stored ([`Ticket::wait`]).
//! - Concurrent writers share transactions (`group_commit`): a lone writer stores its own
//!   events at once, on its own thread; writers arriving while a round is being stored have
//!   theirs stored together in the next round.
//! - The root mirror listeners ([`Sequencer::on_heads`]) see each repo's heads in commit order,
//!   after their events are stored and before their writers are acknowledged.
//! - Frames are `Arc`-shared: a thousand subscribers cost one encoding per event.

pub mod frames;
mod group_commit;
pub mod stats;

pub use group_commit::Ticket;

use crate::data::cbor;
use crate::store::StoreError;
use crate::store::sequencer::{SeqRow, SequencerStore};
use crate::store::sqlite::Tuning;
use bytes::Bytes;
use frames::EventKind;
use group_commit::{Committer, GroupCommit, TicketWaiter};
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

/// A repo's new head, handed to the [`Sequencer::on_heads`] listeners (the account table's
/// root mirror) after the events queued with it are stored.
#[derive(Debug, Clone)]
pub struct RepoHead {
    pub did: crate::syntax::Did,
    pub cid: cid::Cid,
    pub rev: String,
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
type HeadsListener = Box<dyn Fn(&[RepoHead]) + Send + Sync>;

/// One queued submission: events stored in one go, and the head they lead to.
struct Item {
    events: Vec<Event>,
    head: Option<RepoHead>,
}

/// An item's outcome: its events' sequence numbers, or why they weren't stored.
type Outcome = Result<Vec<i64>, String>;

pub struct Sequencer {
    shared: Arc<Shared>,
    /// Live delivery latency and subscriber count, kept by the subscriber tasks.
    pub stats: stats::DeliveryStats,
}

struct Shared {
    store: Mutex<SequencerStore>,
    live: broadcast::Sender<Arc<Frame>>,
    /// Called after events are sequenced (crawler notification); must not block.
    on_sequenced: Mutex<Vec<Listener>>,
    /// Called with the heads of each stored round, in order.
    on_heads: Mutex<Vec<HeadsListener>>,
    queue: GroupCommit<Item, Outcome>,
    /// Repo writes between [`Sequencer::writing`] and the end of their wait.
    writes: std::sync::atomic::AtomicUsize,
}

/// A repo write in progress, from [`Sequencer::writing`]; see there.
pub struct Writing(Arc<Shared>);

impl Drop for Writing {
    fn drop(&mut self) {
        self.0
            .writes
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Sequencer {
    /// `buffer` is how many frames a live subscriber may fall behind before it is dropped
    /// (`PDS_MAX_SUBSCRIPTION_BUFFER`).
    pub fn open(path: &Path, tuning: impl Into<Tuning>, buffer: usize) -> Result<Self, StoreError> {
        Ok(Self::with_store(
            SequencerStore::open(path, tuning)?,
            buffer,
        ))
    }

    pub fn in_memory(buffer: usize) -> Result<Self, StoreError> {
        Ok(Self::with_store(SequencerStore::open_in_memory()?, buffer))
    }

    fn with_store(store: SequencerStore, buffer: usize) -> Self {
        let (live, _) = broadcast::channel(buffer.max(1));
        Sequencer {
            shared: Arc::new(Shared {
                store: Mutex::new(store),
                live,
                on_sequenced: Mutex::new(Vec::new()),
                on_heads: Mutex::new(Vec::new()),
                queue: GroupCommit::new(),
                writes: std::sync::atomic::AtomicUsize::new(0),
            }),
            stats: stats::DeliveryStats::default(),
        }
    }

    /// Registers a callback run after each batch is sequenced.
    pub fn on_sequenced(&self, f: impl Fn() + Send + Sync + 'static) {
        if let Ok(mut l) = self.shared.on_sequenced.lock() {
            l.push(Box::new(f));
        }
    }

    /// Registers a callback given the repo heads of each stored round, oldest first, before
    /// that round's waiters return. It runs on the committing thread and may block briefly.
    pub fn on_heads(&self, f: impl Fn(&[RepoHead]) + Send + Sync + 'static) {
        if let Ok(mut l) = self.shared.on_heads.lock() {
            l.push(Box::new(f));
        }
    }

    /// Appends `events` atomically and broadcasts them. Blocking (SQLite): call from a blocking
    /// thread. Returns their sequence numbers.
    pub fn sequence(&self, events: &[Event]) -> Result<Vec<i64>, StoreError> {
        let shared = &*self.shared;
        let ticket = shared.queue.submit(
            Item {
                events: events.to_vec(),
                head: None,
            },
            true,
        );
        match shared.queue.wait_blocking(ticket, shared) {
            Some(Ok(seqs)) => Ok(seqs),
            Some(Err(e)) => Err(StoreError::Sequencing(e)),
            None => Err(StoreError::Sequencing("no outcome".into())),
        }
    }

    /// Queues `events` (and the repo `head` they lead to) without waiting: they are stored
    /// in this order relative to every other submission, together with whatever else is
    /// queued when the ticket is waited on. Call it under the account's lock and wait after
    /// releasing it, so the account's next write can start meanwhile. A failure to store is
    /// logged; the change the events describe has happened either way.
    pub fn submit(&self, events: Vec<Event>, head: Option<RepoHead>) -> Ticket {
        let n = self.shared.queue.submit(Item { events, head }, false);
        Ticket {
            waiter: self.shared.clone(),
            n,
            settled: false,
        }
    }

    /// Marks a repo write as started, until the returned value is dropped (after its ticket's
    /// wait). A leader about to store a round while other writes are in progress first lets
    /// them queue their events, so concurrent writers share rounds; a lone writer doesn't wait.
    pub fn writing(&self) -> Writing {
        self.shared
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Writing(self.shared.clone())
    }

    /// A receiver of live frames from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Frame>> {
        self.shared.live.subscribe()
    }

    /// Up to `limit` stored frames after `after`. Blocking.
    pub fn replay(&self, after: i64, limit: usize) -> Result<Vec<Arc<Frame>>, StoreError> {
        let rows = self.shared.lock()?.after(after, limit)?;
        rows.into_iter().map(row_frame).collect()
    }

    /// The last sequence number handed out (0 before any). Blocking.
    pub fn max_seq(&self) -> Result<i64, StoreError> {
        self.shared.lock()?.max_seq()
    }

    /// The first stored event at or after `time` (RFC 3339). Blocking.
    pub fn first_seq_since(&self, time: &str) -> Result<Option<i64>, StoreError> {
        self.shared.lock()?.first_seq_since(time)
    }

    /// Account deletion: sequences `#account{deleted}` and removes the account's other events.
    pub fn delete_account_events(&self, did: &str) -> Result<(), StoreError> {
        let seqs = self.sequence(&[Event {
            did: did.to_string(),
            kind: EventKind::Account,
            body: frames::account_body(did, false, Some("deleted")),
        }])?;
        if let Some(keep) = seqs.first() {
            self.shared.lock()?.delete_for_did(did, *keep)?;
        }
        Ok(())
    }
}

impl Shared {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, SequencerStore>, StoreError> {
        self.store
            .lock()
            .map_err(|_| StoreError::Corrupt("sequencer lock poisoned".into()))
    }

    /// Stores a round's events in one transaction and broadcasts them, under the store's lock
    /// so subscribers see them in `seq` order; then hands the round's heads on.
    fn store_round(&self, items: &[Item]) -> Vec<Outcome> {
        let now = crate::syntax::Datetime::now().to_string();
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(items.len());
        // (owner item, event, encoded body) for every event that encoded.
        let mut rows = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let encoded: Result<Vec<_>, _> = item
                .events
                .iter()
                .map(|e| cbor::encode(&e.body).map(|body| (i, e, body)))
                .collect();
            match encoded {
                Ok(mut encoded) => {
                    rows.append(&mut encoded);
                    outcomes.push(Ok(Vec::new()));
                }
                Err(e) => outcomes.push(Err(format!("event body: {e}"))),
            }
        }
        if !rows.is_empty() {
            let appended = self.lock().and_then(|mut store| {
                let stored: Vec<(&str, &str, &[u8])> = rows
                    .iter()
                    .map(|(_, e, body)| (e.did.as_str(), e.kind.stored_name(), &body[..]))
                    .collect();
                let crate::store::sequencer::Appended { seqs, time } =
                    store.append(&stored, &now)?;
                for ((owner, e, body), seq) in rows.iter().zip(&seqs) {
                    let bytes = frames::message_frame_from_stored(e.kind, body, *seq, &time)
                        .unwrap_or_else(|_| frames::message_frame(e.kind, &e.body, *seq, &time));
                    // No subscribers is not an error.
                    let _ = self.live.send(Arc::new(Frame {
                        seq: *seq,
                        bytes: Bytes::from(bytes),
                        at: std::time::Instant::now(),
                    }));
                    if let Some(Ok(mine)) = outcomes.get_mut(*owner) {
                        mine.push(*seq);
                    }
                }
                Ok(())
            });
            match appended {
                Ok(()) => {
                    if let Ok(listeners) = self.on_sequenced.lock() {
                        for l in listeners.iter() {
                            l();
                        }
                    }
                }
                Err(e) => {
                    tracing::error!("sequencing {} events: {e}", rows.len());
                    for outcome in &mut outcomes {
                        if outcome.is_ok() {
                            *outcome = Err(e.to_string());
                        }
                    }
                }
            }
        }
        let heads: Vec<RepoHead> = items.iter().filter_map(|i| i.head.clone()).collect();
        if !heads.is_empty()
            && let Ok(listeners) = self.on_heads.lock()
        {
            for l in listeners.iter() {
                l(&heads);
            }
        }
        outcomes
    }
}

impl Committer<Item, Outcome> for Shared {
    fn commit(&self, batch: Vec<Item>) -> Vec<Outcome> {
        self.store_round(&batch)
    }
}

impl TicketWaiter for Shared {
    fn wait_blocking(&self, n: u64) {
        self.queue.wait_blocking(n, self);
    }

    fn wait<'a>(
        &'a self,
        n: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        let others = self.writes.load(std::sync::atomic::Ordering::Relaxed) > 1;
        Box::pin(self.queue.wait(n, self, others))
    }
}

fn row_frame(row: SeqRow) -> Result<Arc<Frame>, StoreError> {
    let kind = EventKind::from_stored_name(&row.event_type)
        .ok_or_else(|| StoreError::Corrupt(format!("event type {:?}", row.event_type)))?;
    let bytes = frames::message_frame_from_stored(kind, &row.event, row.seq, &row.sequenced_at)
        .map_err(|e| StoreError::Corrupt(format!("event {}: {e}", row.seq)))?;
    Ok(Arc::new(Frame {
        seq: row.seq,
        bytes: Bytes::from(bytes),
        at: std::time::Instant::now(),
    }))
}
