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
//!   its event is durable: appended to the journal (`journal`), from which a restart stores
//!   whatever the crash left unstored, or else stored ([`Ticket::acknowledge`]).
//! - At most [`MAX_BACKLOG`] journaled items wait to be stored, and the journal is rewound
//!   whenever the queue empties; past either bound writers wait for their rounds again.
//! - Concurrent writers share transactions (`group_commit`): a lone writer stores its own
//!   events at once, on its own thread; writers arriving while a round is being stored have
//!   theirs stored together in the next round.
//! - The root mirror listeners ([`Sequencer::on_heads`]) see each repo's heads in commit order,
//!   after their events are stored and before their writers are acknowledged.
//! - Frames are `Arc`-shared: a thousand subscribers cost one encoding per event.

pub mod frames;
mod group_commit;
mod journal;
pub mod stats;

pub use group_commit::Ticket;

use crate::data::cbor;
use crate::store::StoreError;
use crate::store::sequencer::{SeqRow, SequencerStore};
use crate::store::sqlite::Tuning;
use bytes::Bytes;
use frames::EventKind;
use group_commit::{Committer, GroupCommit, TicketWaiter};
use journal::{Journal, StoredEvent};
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
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Journaled items not yet stored beyond which writers wait for their rounds.
pub const MAX_BACKLOG: u64 = 1024;

/// How many times a flusher yields to writes in progress before storing a round (measured:
/// 4 stored 8 concurrent writers' events with ~3% less CPU per write than 1, and 8 no better).
const GATHER_YIELDS: usize = 4;

/// Journal size beyond which writers wait for their rounds (and so for it to be rewound).
const MAX_JOURNAL_BYTES: u64 = 64 * 1024 * 1024;

/// One queued submission: events stored in one go (or why they can't be), and the head they
/// lead to.
struct Item {
    events: Result<Vec<StoredEvent>, String>,
    head: Option<RepoHead>,
    /// Its journal entry's id, if it was journaled.
    journaled: Option<u64>,
}

impl Item {
    fn new(events: &[Event], head: Option<RepoHead>) -> Item {
        let events = events
            .iter()
            .map(|e| {
                Ok(StoredEvent {
                    did: e.did.clone(),
                    kind: e.kind,
                    body: cbor::encode(&e.body).map_err(|e| format!("event body: {e}"))?,
                })
            })
            .collect();
        Item {
            events,
            head,
            journaled: None,
        }
    }
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
    /// `None` in memory, or when another process holds the journal.
    journal: Option<Mutex<Journal>>,
    /// Heads of the events recovery stored, for the first [`Sequencer::on_heads`] listener.
    recovered_heads: Mutex<Vec<RepoHead>>,
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
    ///
    /// The journal is `sequencer.journal` beside `path`; entries a crash left unstored are
    /// stored now (their heads go to the first [`Sequencer::on_heads`] listener).
    pub fn open(path: &Path, tuning: impl Into<Tuning>, buffer: usize) -> Result<Self, StoreError> {
        let tuning = tuning.into();
        let mut store = SequencerStore::open(path, tuning)?;
        let sync = tuning.durability == crate::store::sqlite::Durability::Full;
        let Some((mut journal, entries)) = Journal::open(&path.with_extension("journal"), sync)?
        else {
            tracing::warn!(
                "{}: another process holds the sequencer journal; each write waits for its event to be stored",
                path.display()
            );
            return Ok(Self::with_store(store, None, 0, Vec::new(), buffer));
        };
        let applied = store.journal_applied()?;
        let last = entries.last().map_or(applied, |e| e.id.max(applied));
        let mut heads = Vec::new();
        let mut events = Vec::new();
        for entry in entries.into_iter().filter(|e| e.id > applied) {
            heads.extend(entry.head);
            events.extend(entry.events);
        }
        if !heads.is_empty() || !events.is_empty() {
            let rows: Vec<(&str, &str, &[u8])> = events
                .iter()
                .map(|e| (e.did.as_str(), e.kind.stored_name(), &e.body[..]))
                .collect();
            let now = crate::syntax::Datetime::now().to_string();
            store.append(&rows, &now, Some(last))?;
            tracing::info!(
                events = rows.len(),
                "stored the events the sequencer journal held"
            );
        }
        journal.clear()?;
        Ok(Self::with_store(store, Some(journal), last, heads, buffer))
    }

    pub fn in_memory(buffer: usize) -> Result<Self, StoreError> {
        Ok(Self::with_store(
            SequencerStore::open_in_memory()?,
            None,
            0,
            Vec::new(),
            buffer,
        ))
    }

    fn with_store(
        store: SequencerStore,
        journal: Option<Journal>,
        last_ticket: u64,
        recovered_heads: Vec<RepoHead>,
        buffer: usize,
    ) -> Self {
        let (live, _) = broadcast::channel(buffer.max(1));
        Sequencer {
            shared: Arc::new(Shared {
                store: Mutex::new(store),
                live,
                on_sequenced: Mutex::new(Vec::new()),
                on_heads: Mutex::new(Vec::new()),
                queue: GroupCommit::starting_after(last_ticket),
                journal: journal.map(Mutex::new),
                recovered_heads: Mutex::new(recovered_heads),
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
        if let Ok(mut recovered) = self.shared.recovered_heads.lock()
            && !recovered.is_empty()
        {
            f(&std::mem::take(&mut *recovered));
        }
        if let Ok(mut l) = self.shared.on_heads.lock() {
            l.push(Box::new(f));
        }
    }

    /// Appends `events` atomically and broadcasts them. Blocking (SQLite): call from a blocking
    /// thread. Returns their sequence numbers.
    pub fn sequence(&self, events: &[Event]) -> Result<Vec<i64>, StoreError> {
        let shared = &*self.shared;
        let ticket = shared.queue.submit(Item::new(events, None), true);
        match shared.queue.wait_blocking(ticket, shared) {
            Some(Ok(seqs)) => Ok(seqs),
            Some(Err(e)) => Err(StoreError::Sequencing(e)),
            None => Err(StoreError::Sequencing("no outcome".into())),
        }
    }

    /// Queues `events` (and the repo `head` they lead to) without waiting, and journals
    /// them: they are stored in this order relative to every other submission, together with
    /// whatever else is queued when the ticket is waited on. Call it under the account's lock
    /// and wait (or [`Ticket::acknowledge`]) after releasing it, so the account's next write
    /// can start meanwhile. A failure to store is logged; the change the events describe has
    /// happened either way.
    pub fn submit(&self, events: Vec<Event>, head: Option<RepoHead>) -> Ticket {
        let shared = &*self.shared;
        // Committing behind the acknowledgement takes a task to run the flusher on.
        let runtime = tokio::runtime::Handle::try_current().ok();
        let mut durable = false;
        let (n, start_flusher) =
            shared
                .queue
                .submit_with(Item::new(&events, head), false, |ticket, backlog, item| {
                    let (Some(journal), Ok(events), Some(_)) =
                        (&shared.journal, &item.events, &runtime)
                    else {
                        return false;
                    };
                    let Ok(mut journal) = journal.lock() else {
                        return false;
                    };
                    match journal.append(ticket, events, item.head.as_ref()) {
                        Ok(()) => {
                            item.journaled = Some(ticket);
                            durable = journal.len() <= MAX_JOURNAL_BYTES && backlog < MAX_BACKLOG;
                        }
                        // The writer waits for its round instead.
                        Err(e) => tracing::warn!("appending to the sequencer journal: {e}"),
                    }
                    durable
                });
        if let (true, Some(runtime)) = (start_flusher, runtime) {
            // Weak: a pending flusher doesn't keep the journal open after the sequencer is
            // dropped (the drop commits what is queued).
            let shared = Arc::downgrade(&self.shared);
            runtime.spawn(async move {
                if let Some(shared) = shared.upgrade() {
                    // While other writes are in progress, let them queue theirs first, so
                    // they share the round: nobody waits for it, and a round's cost is mostly
                    // fixed. A few yields only: delivery to subscribers waits for the round.
                    for _ in 0..GATHER_YIELDS {
                        if shared.writes.load(std::sync::atomic::Ordering::Relaxed) == 0 {
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                    shared.queue.flush(&*shared).await;
                }
            });
        }
        Ticket {
            waiter: self.shared.clone(),
            n,
            settled: false,
            durable,
        }
    }

    /// Returns once every submission made before the call is stored and broadcast (and its
    /// head mirrored): for reads of what the rounds write, such as the root mirror.
    pub async fn caught_up(&self) {
        let (last, backlog) = self.shared.queue.progress();
        if backlog > 0 {
            self.shared.queue.wait(last, &*self.shared, false).await;
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

impl Drop for Sequencer {
    /// Commits what acknowledged writes left queued (the journal holds it either way).
    fn drop(&mut self) {
        let (last, backlog) = self.shared.queue.progress();
        if backlog > 0 {
            self.shared.queue.wait_blocking(last, &*self.shared);
        }
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
            match &item.events {
                Ok(events) => {
                    rows.extend(events.iter().map(|e| (i, e)));
                    outcomes.push(Ok(Vec::new()));
                }
                Err(e) => outcomes.push(Err(e.clone())),
            }
        }
        // The last journal entry of the round: recorded with its events, or on its own.
        let journaled = items.iter().rev().find_map(|i| i.journaled);
        if !rows.is_empty() || journaled.is_some() {
            let appended = self.lock().and_then(|mut store| {
                let stored: Vec<(&str, &str, &[u8])> = rows
                    .iter()
                    .map(|(_, e)| (e.did.as_str(), e.kind.stored_name(), &e.body[..]))
                    .collect();
                let crate::store::sequencer::Appended { seqs, time } =
                    store.append(&stored, &now, journaled)?;
                for ((owner, e), seq) in rows.iter().zip(&seqs) {
                    let bytes =
                        match frames::message_frame_from_stored(e.kind, &e.body, *seq, &time) {
                            Ok(bytes) => bytes,
                            Err(err) => {
                                // Our own encoding: stored, but not a frame a subscriber
                                // could read. Replay reports it the same way.
                                tracing::error!("event {seq}: {err}");
                                continue;
                            }
                        };
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

    /// Every journal entry is stored (or its round failed and was logged): start over.
    fn drained(&self) {
        if let Some(Ok(mut journal)) = self.journal.as_ref().map(|j| j.lock()) {
            journal.rewind();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    const DID: &str = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";

    fn event(active: bool) -> Event {
        Event {
            did: DID.into(),
            kind: EventKind::Account,
            body: frames::account_body(DID, active, None),
        }
    }

    fn head(rev: &str) -> RepoHead {
        RepoHead {
            did: DID.parse().unwrap(),
            cid: crate::data::cbor_cid(rev.as_bytes()),
            rev: rev.into(),
        }
    }

    fn open(path: &Path) -> Sequencer {
        Sequencer::open(path, crate::store::sqlite::Durability::Normal, 16).unwrap()
    }

    /// (seq, body) of every stored event.
    fn stored(s: &Sequencer) -> Vec<(i64, Vec<u8>)> {
        let store = s.shared.lock().unwrap();
        store
            .after(0, 100)
            .unwrap()
            .into_iter()
            .map(|r| (r.seq, r.event))
            .collect()
    }

    #[tokio::test]
    async fn what_a_crash_left_in_the_journal_is_stored_on_open_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sequencer.sqlite");
        let first = open(&path);
        let ticket = first.submit(vec![event(true)], Some(head("1")));
        assert_eq!(ticket.number(), 1);
        ticket.wait().await;
        drop(first);

        // A crash after journaling ticket 2 and before storing it.
        let body = cbor::encode(&frames::account_body(DID, false, None)).unwrap();
        {
            let (mut journal, _) = Journal::open(&dir.path().join("sequencer.journal"), false)
                .unwrap()
                .unwrap();
            let events = [StoredEvent {
                did: DID.into(),
                kind: EventKind::Account,
                body: body.clone(),
            }];
            journal.append(2, &events, Some(&head("2"))).unwrap();
        }

        let second = open(&path);
        let events = stored(&second);
        assert_eq!(events.len(), 2, "ticket 1 stored once, ticket 2 recovered");
        assert_eq!(events[1], (2, body));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        second.on_heads(move |h| seen.lock().unwrap().extend(h.iter().cloned()));
        assert_eq!(*heads.lock().unwrap(), vec![head("2")]);
        // Tickets go on after the recovered ones, so the next recovery can tell them apart.
        let ticket = second.submit(vec![event(true)], Some(head("3")));
        assert_eq!(ticket.number(), 3);
        ticket.wait().await;
        assert_eq!(*heads.lock().unwrap(), vec![head("2"), head("3")]);
        drop(second);

        let third = open(&path);
        assert_eq!(
            stored(&third).iter().map(|e| e.0).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_acknowledged_write_is_journaled_and_stored_behind_the_ack() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sequencer.sqlite");
        let s = open(&path);
        let mut live = s.subscribe();
        let ticket = s.submit(vec![event(true)], Some(head("1")));
        assert!(ticket.durable, "journaled with an empty queue");
        ticket.acknowledge().await;
        // The round is stored by a task: its frame arrives, and caught_up waits for it.
        s.caught_up().await;
        assert_eq!(stored(&s).len(), 1);
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), live.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(frame.seq, 1);
        // The queue emptied, so the journal starts over.
        assert_eq!(s.shared.journal.as_ref().unwrap().lock().unwrap().len(), 0);
    }

    #[tokio::test]
    async fn a_second_sequencer_on_the_file_stores_before_it_acknowledges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sequencer.sqlite");
        let server = open(&path);
        let cli = open(&path);
        assert!(server.shared.journal.is_some());
        assert!(cli.shared.journal.is_none());
        let ticket = cli.submit(vec![event(true)], None);
        assert!(!ticket.durable);
        ticket.acknowledge().await;
        assert_eq!(stored(&cli).len(), 1, "stored before the acknowledgement");
    }
}
