//! The bounded queue between producers (actors, on their event loops) and the one
//! writer thread.
//!
//! Entry points: [`Queue::push`] (producers), [`Queue::take`] (the writer).
//!
//! Invariants:
//! - The place in the queue is taken when `push` is called, not when the returned
//!   [`Queued`] is polled: the order of calls is the order of writes, whoever polls (or
//!   drops) the future. That is what keeps each account's writes in order even when a
//!   producer does not await one write before making the next.
//! - At most `capacity` rows are queued; a push that does not fit (or arrives while
//!   others wait) waits in line, in order, and its [`Queued`] resolves when the writer
//!   has made room. A producer that awaits its writes is therefore paused while the
//!   queue is full (backpressure); memory is bounded by the queue plus one write per
//!   producer in line.
//! - A single item larger than the capacity is admitted when the queue is empty, so it
//!   never waits forever.
//! - After close, pushes are refused ([`StoreError::Closed`]); what was queued before
//!   the close request is still taken by the writer.

use super::{Durable, ShutdownReport, StoreError, Write};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A write waiting for the writer, with whoever waits for its durability.
pub(crate) struct PendingWrite {
    /// The rows and the events to publish once they are durable.
    pub write: Write,
    /// Told where the rows became durable (`write_durable`).
    pub durable: Option<oneshot::Sender<Result<Durable, StoreError>>>,
}

/// A request to flush and stop.
pub(crate) struct CloseRequest {
    /// After this, what is still queued goes to the spool without trying PostgreSQL.
    pub deadline: Instant,
    /// Gets the report; `None` when the last handle was dropped without `close`.
    pub reply: Option<oneshot::Sender<ShutdownReport>>,
}

/// One thing in the queue.
pub(crate) enum Item {
    /// Rows (and events) to make durable.
    Write(PendingWrite),
    /// Answered once everything before it is committed in PostgreSQL.
    Barrier(oneshot::Sender<Result<(), StoreError>>),
    /// Flush and stop.
    Close(CloseRequest),
}

/// An item waiting for room, with its row count and whoever waits for its admission.
type InLine = (Item, usize, oneshot::Sender<Result<(), StoreError>>);

struct State {
    items: VecDeque<(Item, usize)>,
    rows: usize,
    waiting: VecDeque<InLine>,
    waiting_rows: usize,
    closed: bool,
}

/// The bounded FIFO queue. See the module docs.
pub(crate) struct Queue {
    state: Mutex<State>,
    ready: Condvar,
    capacity: usize,
}

/// Resolves once a write is in the queue (immediately when there was room). See
/// [`Queue::push`].
#[must_use = "the write is queued either way; await this to wait while the queue is full"]
pub struct Queued(Admission);

enum Admission {
    Done(Option<Result<(), StoreError>>),
    Waiting(oneshot::Receiver<Result<(), StoreError>>),
}

impl Queued {
    pub(crate) fn done(result: Result<(), StoreError>) -> Queued {
        Queued(Admission::Done(Some(result)))
    }
}

impl Future for Queued {
    type Output = Result<(), StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Admission::Done(result) => Poll::Ready(result.take().unwrap_or(Ok(()))),
            Admission::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(StoreError::Closed))),
        }
    }
}

impl Queue {
    /// A queue holding at most `capacity` rows.
    pub(crate) fn new(capacity: usize) -> Queue {
        Queue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                rows: 0,
                waiting: VecDeque::new(),
                waiting_rows: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-changed (every
        // change is a push or pop), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item` (counting `rows`) in call order; the returned future resolves once
    /// it is in the queue proper.
    pub(crate) fn push(&self, item: Item, rows: usize) -> Queued {
        let mut s = self.lock();
        if s.closed {
            return Queued::done(Err(StoreError::Closed));
        }
        if s.waiting.is_empty() && (s.rows + rows <= self.capacity || s.items.is_empty()) {
            s.rows += rows;
            s.items.push_back((item, rows));
            drop(s);
            self.ready.notify_one();
            return Queued::done(Ok(()));
        }
        let (tx, rx) = oneshot::channel();
        s.waiting_rows += rows;
        s.waiting.push_back((item, rows, tx));
        Queued(Admission::Waiting(rx))
    }

    /// Queues a close request behind everything already pushed and refuses anything
    /// pushed after it. False when the queue was already closed.
    pub(crate) fn close(&self, request: CloseRequest) -> bool {
        let mut s = self.lock();
        if s.closed {
            return false;
        }
        s.closed = true;
        let item = Item::Close(request);
        if s.waiting.is_empty() {
            s.items.push_back((item, 0));
        } else {
            let (tx, _) = oneshot::channel();
            s.waiting.push_back((item, 0, tx));
        }
        drop(s);
        self.ready.notify_one();
        true
    }

    /// The writer's side: waits up to `wait` for something, then takes items in order
    /// until about `max_rows` rows (at least one item), and lets waiting writes in.
    pub(crate) fn take(&self, max_rows: usize, wait: Duration) -> Vec<Item> {
        let deadline = Instant::now() + wait;
        let mut s = self.lock();
        while s.items.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                return Vec::new();
            }
            s = match self.ready.wait_timeout(s, deadline - now) {
                Ok((guard, _)) => guard,
                Err(e) => e.into_inner().0,
            };
        }
        let mut taken = Vec::new();
        let mut rows = 0;
        while let Some((_, n)) = s.items.front() {
            if !taken.is_empty() && rows + n > max_rows {
                break;
            }
            rows += n;
            if let Some((item, n)) = s.items.pop_front() {
                s.rows -= n;
                taken.push(item);
            }
        }
        // Room was made: admit waiting writes in order while they fit.
        while let Some((_, n, _)) = s.waiting.front() {
            if s.rows + n > self.capacity && !s.items.is_empty() {
                break;
            }
            if let Some((item, n, tx)) = s.waiting.pop_front() {
                s.waiting_rows -= n;
                s.rows += n;
                s.items.push_back((item, n));
                let _ = tx.send(Ok(()));
            }
        }
        taken
    }

    /// Rows and items queued, including those waiting in line.
    pub(crate) fn depth(&self) -> (usize, usize) {
        let s = self.lock();
        (s.rows + s.waiting_rows, s.items.len() + s.waiting.len())
    }

    /// True when nothing is queued or waiting.
    pub(crate) fn is_empty(&self) -> bool {
        let s = self.lock();
        s.items.is_empty() && s.waiting.is_empty()
    }

    /// The configured capacity in rows.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write() -> Item {
        Item::Write(PendingWrite {
            write: Write::default(),
            durable: None,
        })
    }

    fn ready(q: &mut Queued) -> Option<Result<(), StoreError>> {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        match Pin::new(q).poll(&mut cx) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    }

    #[test]
    fn a_full_queue_makes_later_pushes_wait_in_call_order() {
        let q = Queue::new(3);
        let mut first = q.push(write(), 2);
        assert!(ready(&mut first).is_some_and(|r| r.is_ok()));
        let mut second = q.push(write(), 2);
        assert!(ready(&mut second).is_none(), "2 + 2 rows exceed 3: waits");
        // A small one that would fit still waits behind the one in line.
        let mut third = q.push(write(), 1);
        assert!(ready(&mut third).is_none(), "no overtaking");
        assert_eq!(q.depth(), (5, 3));
        let taken = q.take(10, Duration::ZERO);
        assert_eq!(taken.len(), 1);
        assert!(ready(&mut second).is_some(), "room was made");
        assert!(ready(&mut third).is_some());
        assert_eq!(q.take(10, Duration::ZERO).len(), 2);
        assert!(q.is_empty());
    }

    #[test]
    fn a_write_larger_than_the_capacity_enters_an_empty_queue() {
        let q = Queue::new(2);
        let mut big = q.push(write(), 10);
        assert!(ready(&mut big).is_some_and(|r| r.is_ok()));
        assert_eq!(q.take(1, Duration::ZERO).len(), 1);
    }

    #[test]
    fn take_stops_near_max_rows_but_takes_at_least_one() {
        let q = Queue::new(100);
        for _ in 0..5 {
            drop(q.push(write(), 3));
        }
        assert_eq!(q.take(7, Duration::ZERO).len(), 2);
        assert_eq!(q.take(1, Duration::ZERO).len(), 1);
        assert_eq!(q.take(100, Duration::ZERO).len(), 2);
        assert!(q.take(100, Duration::from_millis(1)).is_empty());
    }

    #[test]
    fn after_close_pushes_are_refused_and_the_close_comes_last() {
        let q = Queue::new(10);
        drop(q.push(write(), 1));
        assert!(q.close(CloseRequest {
            deadline: Instant::now(),
            reply: None
        }));
        let mut late = q.push(write(), 1);
        assert!(matches!(ready(&mut late), Some(Err(StoreError::Closed))));
        let taken = q.take(10, Duration::ZERO);
        assert!(matches!(taken.as_slice(), [Item::Write(_), Item::Close(_)]));
    }
}
