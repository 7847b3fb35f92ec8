//! Group commit for the sequencer: writers queue their events and wait; whoever finds no one
//! committing becomes the leader and commits everything queued, its own events and the others',
//! in one transaction.
//!
//! Why: a transaction's fixed cost (locks, WAL frames, the index pages every event touches) is
//! most of an event's cost, so concurrent writers share it. A lone writer finds the queue empty
//! and no leader, and commits its own events right away on its own thread: no hand-off. An
//! async writer that would lead while other writes are in progress first yields once, so the
//! writes already running on its worker can join the round.
//!
//! Invariants:
//! - Items are committed in the order they were queued (tickets are handed out under the same
//!   lock that pushes the item), so a writer that queues under its account's lock keeps the
//!   account's events in commit order.
//! - `done` only grows, and a ticket `n` is finished once `done >= n`.
//! - There is at most one leader; leadership is given up (and waiters woken) even if the leader
//!   panics, so a waiter always either finishes or leads.
//! - A [`Ticket`] dropped unfinished waits for its item before the drop returns, so a queued
//!   item is never left behind by a cancelled request.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// How many queued items one transaction takes at most; the rest go in the next round.
const MAX_BATCH: usize = 256;

/// What the leader does with a batch: commit it, returning one outcome per item, in order.
pub(super) trait Committer<T, R>: Send + Sync {
    fn commit(&self, batch: Vec<T>) -> Vec<R>;

    /// Called under the queue's lock when a round leaves the queue empty: everything
    /// submitted so far is committed, and nothing can be submitted until this returns.
    fn drained(&self) {}
}

pub(super) struct GroupCommit<T, R> {
    state: Mutex<State<T, R>>,
    /// Woken when a round finishes or the leader steps down: blocking waiters.
    finished: Condvar,
    /// The same, for async waiters.
    finished_async: tokio::sync::Notify,
}

struct State<T, R> {
    queue: Vec<(u64, T, bool)>,
    issued: u64,
    done: u64,
    leading: bool,
    /// A flusher ([`GroupCommit::flush`]) is scheduled or running: it commits until the queue
    /// is empty, so items no one waits for are not left behind.
    flushing: bool,
    /// Threads blocked in [`GroupCommit::wait_blocking`]: the condvar is signalled only if
    /// there are any (each signal is a system call).
    sleepers: usize,
    /// Outcomes kept for the waiters that asked for them.
    results: HashMap<u64, R>,
}

impl<T, R> GroupCommit<T, R> {
    #[cfg(test)]
    pub(super) fn new() -> Self {
        Self::starting_after(0)
    }

    /// The first ticket handed out is `last + 1` (tickets continue across restarts when they
    /// name journal entries).
    pub(super) fn starting_after(last: u64) -> Self {
        GroupCommit {
            state: Mutex::new(State {
                queue: Vec::new(),
                issued: last,
                done: last,
                leading: false,
                flushing: false,
                sleepers: 0,
                results: HashMap::new(),
            }),
            finished: Condvar::new(),
            finished_async: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T, R>> {
        // A panic elsewhere can't leave the queue half-changed: every change is one push,
        // drain or assignment.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item`; returns its ticket. `keep_result`: the outcome is kept for
    /// [`GroupCommit::wait_blocking`] to return (otherwise it is dropped).
    pub(super) fn submit(&self, item: T, keep_result: bool) -> u64 {
        self.submit_with(item, keep_result, |_, _, _| false).0
    }

    /// As [`GroupCommit::submit`], running `queued` with the ticket and the item under the
    /// queue's lock before the item is queued: whatever it does happens in ticket order.
    /// `queued` is also given how many earlier items are uncommitted, and returns whether no
    /// one will wait for the ticket; then the second value says
    /// whether the caller must start a flusher ([`GroupCommit::flush`]): no leader or flusher
    /// is there to commit the item.
    pub(super) fn submit_with(
        &self,
        mut item: T,
        keep_result: bool,
        queued: impl FnOnce(u64, u64, &mut T) -> bool,
    ) -> (u64, bool) {
        let mut state = self.lock();
        state.issued += 1;
        let ticket = state.issued;
        let backlog = ticket - 1 - state.done;
        let unwaited = queued(ticket, backlog, &mut item);
        state.queue.push((ticket, item, keep_result));
        // A leader or flusher takes the queue's emptiness and steps down in one critical
        // section, so one present now will commit this item.
        let start_flusher = unwaited && !state.leading && !state.flushing;
        if start_flusher {
            state.flushing = true;
        }
        (ticket, start_flusher)
    }

    /// Commits until the queue is empty, leading whenever no one else is: the flusher the
    /// caller of [`GroupCommit::submit_with`] was told to start. Stops, clearing `flushing`,
    /// only when it finds the queue empty.
    pub(super) async fn flush(&self, committer: &dyn Committer<T, R>) {
        loop {
            let lead = self
                .decide_or_wait(|state| {
                    if state.queue.is_empty() {
                        state.flushing = false;
                        Some(false)
                    } else if state.leading {
                        None
                    } else {
                        state.leading = true;
                        Some(true)
                    }
                })
                .await;
            match lead {
                Some(true) => self.lead(committer),
                Some(false) => return,
                None => {}
            }
        }
    }

    /// Runs `decide` under the lock; if it returns `None`, waits until the next round ends
    /// or its leader steps down. The wake-up is registered before `decide` runs, so a round
    /// that ends right after it still wakes us; and unregistered (dropped) on return, before
    /// the caller leads, or our own round's wake-up would reschedule the task for nothing,
    /// waking another worker to run it.
    async fn decide_or_wait<N>(
        &self,
        decide: impl FnOnce(&mut State<T, R>) -> Option<N>,
    ) -> Option<N> {
        let notified = self.finished_async.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        let next = decide(&mut self.lock());
        if next.is_none() {
            notified.await;
        }
        next
    }

    /// The last ticket handed out, and how many tickets are not yet committed.
    pub(super) fn progress(&self) -> (u64, u64) {
        let state = self.lock();
        (state.issued, state.issued - state.done)
    }

    /// Waits on this thread until `ticket` is committed, leading if no one is. Returns the
    /// item's outcome if it was submitted with `keep_result`.
    pub(super) fn wait_blocking(&self, ticket: u64, committer: &dyn Committer<T, R>) -> Option<R> {
        let mut state = self.lock();
        loop {
            if state.done >= ticket {
                return state.results.remove(&ticket);
            }
            if !state.leading {
                state.leading = true;
                drop(state);
                self.lead(committer);
                state = self.lock();
                continue;
            }
            state.sleepers += 1;
            state = self.finished.wait(state).unwrap_or_else(|e| e.into_inner());
            state.sleepers -= 1;
        }
    }

    /// As [`GroupCommit::wait_blocking`] without keeping the thread while someone else leads.
    /// Leading commits inline: it is the same short SQLite work a lone writer would do.
    /// `gather`: yield once before leading, so that other writes already running on this
    /// worker can queue theirs and share the round (worth it only when there are any).
    pub(super) async fn wait(&self, ticket: u64, committer: &dyn Committer<T, R>, gather: bool) {
        enum Next {
            Done,
            Yield,
            Lead,
        }
        let mut yielded = !gather;
        loop {
            let next = self
                .decide_or_wait(|state| {
                    if state.done >= ticket {
                        state.results.remove(&ticket);
                        Some(Next::Done)
                    } else if state.leading {
                        None
                    } else if !yielded {
                        Some(Next::Yield)
                    } else {
                        state.leading = true;
                        Some(Next::Lead)
                    }
                })
                .await;
            match next {
                Some(Next::Done) => return,
                // Before leading, let this worker run what else is ready (other writes about
                // to queue theirs) so they join this round.
                Some(Next::Yield) => {
                    yielded = true;
                    tokio::task::yield_now().await;
                }
                Some(Next::Lead) => self.lead(committer),
                None => {}
            }
        }
    }

    /// Commits rounds until the queue is empty. The caller has set `leading`, which is
    /// cleared in the critical section that finds the queue empty (see `submit_with`).
    fn lead(&self, committer: &dyn Committer<T, R>) {
        // Steps down if a panic ends the lead (waking the waiters: one of them leads next if
        // items are left); a normal end has stepped down already.
        struct StepDown<'a, T, R> {
            gc: &'a GroupCommit<T, R>,
            leading: bool,
        }
        impl<T, R> Drop for StepDown<'_, T, R> {
            fn drop(&mut self) {
                let sleepers = {
                    let mut state = self.gc.lock();
                    if self.leading {
                        state.leading = false;
                    }
                    state.sleepers
                };
                self.gc.wake(sleepers);
            }
        }
        let mut step_down = StepDown {
            gc: self,
            leading: true,
        };
        loop {
            let round: Vec<(u64, T, bool)> = {
                let mut state = self.lock();
                if state.queue.is_empty() {
                    state.leading = false;
                    step_down.leading = false;
                    return;
                }
                let n = state.queue.len().min(MAX_BATCH);
                state.queue.drain(..n).collect()
            };
            let last = round.last().map_or(0, |(ticket, _, _)| *ticket);
            let mut kept = Vec::new();
            let mut items = Vec::with_capacity(round.len());
            for (ticket, item, keep) in round {
                kept.push(keep.then_some(ticket));
                items.push(item);
            }
            let outcomes = committer.commit(items);
            let sleepers = {
                let mut state = self.lock();
                for (ticket, outcome) in kept.into_iter().zip(outcomes) {
                    if let Some(ticket) = ticket {
                        state.results.insert(ticket, outcome);
                    }
                }
                state.done = last;
                if state.queue.is_empty() {
                    committer.drained();
                }
                state.sleepers
            };
            self.wake(sleepers);
        }
    }

    /// Wakes the waiters after a change they may be waiting for; `sleepers` was read under
    /// the lock, after the change.
    fn wake(&self, sleepers: usize) {
        if sleepers > 0 {
            self.finished.notify_all();
        }
        self.finished_async.notify_waiters();
    }
}

/// A queued item's claim: wait on it with [`Ticket::wait`]. Dropping it unfinished waits on the
/// dropping thread instead, so the item is committed either way.
#[must_use = "a ticket's item is committed only when someone waits"]
pub struct Ticket {
    pub(super) waiter: Arc<dyn TicketWaiter>,
    pub(super) n: u64,
    pub(super) settled: bool,
    /// The item is journaled and a leader or flusher will commit it: it may be acknowledged
    /// before it is committed (see [`Ticket::acknowledge`]).
    pub(super) durable: bool,
}

/// The sequencer side of a [`Ticket`] (kept abstract so the ticket doesn't carry types).
pub(super) trait TicketWaiter: Send + Sync {
    fn wait_blocking(&self, n: u64);
    fn wait<'a>(
        &'a self,
        n: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;
}

impl Ticket {
    /// Waits until the item is committed (and its events sent to subscribers).
    pub async fn wait(mut self) {
        self.waiter.wait(self.n).await;
        self.settled = true;
    }

    /// Returns once the item may be acknowledged: at once if it is durable in the journal
    /// (a leader or flusher commits it behind the acknowledgement), else once it is committed.
    pub async fn acknowledge(mut self) {
        if self.durable {
            self.settled = true;
        } else {
            self.wait().await;
        }
    }

    /// The ticket's number: tickets are handed out in submission order.
    #[cfg(test)]
    pub(super) fn number(&self) -> u64 {
        self.n
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.settled {
            self.waiter.wait_blocking(self.n);
        }
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket").field("n", &self.n).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Records every round it is given.
    #[derive(Default)]
    struct Log {
        rounds: Mutex<Vec<Vec<u32>>>,
        calls: AtomicUsize,
    }

    impl Committer<u32, u32> for Log {
        fn commit(&self, batch: Vec<u32>) -> Vec<u32> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            // Slow enough that concurrent writers pile up behind the leader.
            std::thread::sleep(std::time::Duration::from_millis(2));
            let out = batch.iter().map(|x| x * 10).collect();
            self.rounds.lock().unwrap().push(batch);
            out
        }
    }

    #[test]
    fn a_lone_writer_commits_its_own_item_and_gets_its_result() {
        let gc = GroupCommit::new();
        let log = Log::default();
        let t = gc.submit(7, true);
        assert_eq!(gc.wait_blocking(t, &log), Some(70));
        assert_eq!(*log.rounds.lock().unwrap(), vec![vec![7]]);
        // Not kept when not asked for.
        let t = gc.submit(8, false);
        assert_eq!(gc.wait_blocking(t, &log), None);
        assert!(gc.lock().results.is_empty());
    }

    #[test]
    fn concurrent_writers_share_rounds_and_keep_each_writers_order() {
        let gc = Arc::new(GroupCommit::new());
        let log = Arc::new(Log::default());
        let threads: Vec<_> = (0..8u32)
            .map(|w| {
                let (gc, log) = (gc.clone(), log.clone());
                std::thread::spawn(move || {
                    for i in 0..25u32 {
                        let item = w * 1000 + i;
                        let t = gc.submit(item, true);
                        assert_eq!(gc.wait_blocking(t, &*log), Some(item * 10));
                    }
                })
            })
            .collect();
        // A lost wake-up would hang the writers: fail instead.
        let (finished, all_done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for t in threads {
                t.join().unwrap();
            }
            let _ = finished.send(());
        });
        all_done
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("writers finished (a waiter was never woken)");
        let rounds = log.rounds.lock().unwrap();
        let all: Vec<u32> = rounds.iter().flatten().copied().collect();
        assert_eq!(all.len(), 200, "every item committed exactly once");
        for w in 0..8u32 {
            let mine: Vec<u32> = all.iter().copied().filter(|x| x / 1000 == w).collect();
            assert_eq!(mine, (0..25).map(|i| w * 1000 + i).collect::<Vec<_>>());
        }
        assert!(
            rounds.len() < 200,
            "8 writers behind a 2 ms commit never shared a round ({} rounds)",
            rounds.len()
        );
        assert!(gc.lock().results.is_empty());
        assert!(!gc.lock().leading);
    }

    /// A queue and its committer, shared by tasks.
    struct Shared(GroupCommit<u32, u32>, Log);

    /// `writers` tasks each submitting `items` items that no one waits for, starting a
    /// flusher when told to; counts the flushers started.
    async fn unwaited_writers(
        q: &Arc<Shared>,
        writers: u32,
        items: u32,
        flushers: &Arc<AtomicUsize>,
    ) {
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let (q, flushers) = (q.clone(), flushers.clone());
                tokio::spawn(async move {
                    for i in 0..items {
                        let (_, start) = q.0.submit_with(w * 1000 + i, false, |_, _, _| true);
                        if start {
                            flushers.fetch_add(1, Ordering::SeqCst);
                            let q = q.clone();
                            tokio::spawn(async move { q.0.flush(&q.1).await });
                        }
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }

    /// Waits until everything submitted is committed and no flusher runs (a minute at most:
    /// an item left behind fails the test); returns every committed item in commit order.
    async fn committed_once_flushed(q: &Shared) -> Vec<u32> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while q.0.progress().1 > 0 || q.0.lock().flushing {
            assert!(std::time::Instant::now() < deadline, "items left behind");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(!q.0.lock().leading);
        assert!(q.0.lock().results.is_empty());
        q.1.rounds
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .copied()
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn items_no_one_waits_for_are_committed_by_one_flusher_at_a_time() {
        let q = Arc::new(Shared(GroupCommit::new(), Log::default()));
        let flushers = Arc::new(AtomicUsize::new(0));
        unwaited_writers(&q, 8, 40, &flushers).await;
        // No one waits: the flushers must get everything committed by themselves.
        let all = committed_once_flushed(&q).await;
        assert_eq!(all.len(), 320, "every item committed exactly once");
        for w in 0..8u32 {
            let mine: Vec<u32> = all.iter().copied().filter(|x| x / 1000 == w).collect();
            assert_eq!(mine, (0..40).map(|i| w * 1000 + i).collect::<Vec<_>>());
        }
        // Items queued while a flusher runs don't start another: no more flushers than rounds.
        let started = flushers.load(Ordering::SeqCst);
        assert!(started >= 1);
        assert!(started <= q.1.calls.load(Ordering::SeqCst));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flushers_and_blocking_waiters_share_the_queue_without_losing_an_item() {
        let q = Arc::new(Shared(GroupCommit::new(), Log::default()));
        // Threads that wait for each item, as `Sequencer::sequence` does.
        let threads: Vec<_> = (0..2u32)
            .map(|t| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..30u32 {
                        let item = 100_000 + t * 1000 + i;
                        let n = q.0.submit(item, true);
                        assert_eq!(q.0.wait_blocking(n, &q.1), Some(item * 10));
                    }
                })
            })
            .collect();
        // Tasks whose items no one waits for, as acknowledged writes.
        unwaited_writers(&q, 4, 40, &Arc::default()).await;
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                t.join().unwrap();
            }
        });
        tokio::time::timeout(std::time::Duration::from_secs(60), joined)
            .await
            .expect("blocking waiters finished (one was never woken)")
            .unwrap();
        let mut all = committed_once_flushed(&q).await;
        assert_eq!(all.len(), 2 * 30 + 4 * 40);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 2 * 30 + 4 * 40, "no item committed twice");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_waiters_finish_and_a_dropped_ticket_is_still_committed() {
        struct Waiter(GroupCommit<u32, u32>, Log);
        impl TicketWaiter for Waiter {
            fn wait_blocking(&self, n: u64) {
                self.0.wait_blocking(n, &self.1);
            }
            fn wait<'a>(
                &'a self,
                n: u64,
            ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
                Box::pin(self.0.wait(n, &self.1, n.is_multiple_of(2)))
            }
        }
        let w = Arc::new(Waiter(GroupCommit::new(), Log::default()));
        let tasks: Vec<_> = (0..16u32)
            .map(|i| {
                let w = w.clone();
                tokio::spawn(async move {
                    let n = w.0.submit(i, false);
                    Ticket {
                        waiter: w.clone(),
                        n,
                        settled: false,
                        durable: false,
                    }
                    .wait()
                    .await;
                    assert!(w.0.lock().done >= n);
                })
            })
            .collect();
        let joined = async {
            for t in tasks {
                t.await.unwrap();
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), joined)
            .await
            .expect("async waiters finished (one was never woken)");
        // Queued, then dropped without waiting: the drop commits it.
        let n = w.0.submit(99, false);
        drop(Ticket {
            waiter: w.clone(),
            n,
            settled: false,
            durable: false,
        });
        assert!(w.0.lock().done >= n);
        let all: Vec<u32> =
            w.1.rounds
                .lock()
                .unwrap()
                .iter()
                .flatten()
                .copied()
                .collect();
        assert_eq!(all.len(), 17);
        assert_eq!(all.last(), Some(&99));
    }
}
