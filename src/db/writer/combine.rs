//! Queued transactions, run by whoever holds the SQLite writer connection.
//!
//! When each transaction takes the connection in turn, every hand-off waits
//! for the next task to be woken and scheduled, and under load that left
//! the connection idle about half the time while a dozen transactions
//! waited for it. A transaction started with [`Group::transact`] is a
//! closure put in a queue instead: the task that holds the connection, or
//! failing that the one that queued it, runs every queued closure in its
//! own savepoint, back to back, before it lets the connection go. Its
//! caller is woken once, when the group's fsync is done (or at once, when
//! it is rolled back).

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use tokio::sync::{OwnedMutexGuard, oneshot};

use super::group::{
    Group, MAX_GROUP, State, begin_immediate, begin_when_free, conn_of, fail, group_failed,
    release, rollback_to_savepoint, run,
};
use super::{Conn, Inner, Work, work_failed};
use crate::db::lite;
use crate::db::wal_sync::Ack;

/// A queued transaction: runs on the lent connection and returns how to
/// tell its caller once the group is on disk, or `None` to be rolled back
/// (its caller has then been told).
type Job = Box<dyn FnOnce(&mut Conn) -> Option<Ack> + Send>;

/// Transactions waiting for whoever holds the connection, oldest first.
#[derive(Default)]
pub(super) struct Queue(Mutex<VecDeque<Job>>);

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Job>> {
        // Nothing panics while holding it; a poisoned queue is still whole.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Drops every queued transaction: their callers get an error.
    fn clear(&self) {
        let jobs = std::mem::take(&mut *self.lock());
        drop(jobs);
    }
}

impl Group {
    /// Queues `work` and, if nobody holds the connection, runs the queue.
    pub(super) async fn transact<T, E>(group: &Arc<Group>, work: Work<T, E>) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<sqlx::Error> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |conn| match poll_once(work(conn)) {
            Some(Ok(value)) => Some(Ack::new(move |durable| {
                let _ = answer.send(if durable {
                    Ok(value)
                } else {
                    Err(group_failed().into())
                });
            })),
            Some(Err(e)) => {
                let _ = answer.send(Err(e));
                None
            }
            None => {
                tracing::error!("a queued write transaction waited for something; rolled back");
                let _ = answer.send(Err(work_failed().into()));
                None
            }
        });
        group.queue.lock().push_back(job);
        // Whoever holds the connection runs it before letting go (and looks
        // at the queue again after letting go, see `release`).
        if let Ok(state) = group.state.clone().try_lock_owned() {
            release(group, state);
        }
        answered
            .await
            .unwrap_or_else(|_| Err(group_failed().into()))
    }
}

/// Polls `future` once: the `db` functions finish without suspending, and
/// a transaction must not wait for anything else while it holds the writer.
fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// Runs queued transactions into the open group (opening one if needed)
/// until the queue is empty or the group is full. `None` when the write
/// lock is held by another process: a task of its own then waits for it,
/// holding the connection, and releases it after.
pub(super) fn run_queued(
    group: &Arc<Group>,
    mut state: OwnedMutexGuard<State>,
) -> Option<OwnedMutexGuard<State>> {
    while state.pending.len() < MAX_GROUP {
        let Some(job) = group.queue.lock().pop_front() else {
            break;
        };
        if !state.open {
            match begin_immediate(&group.path, &mut state) {
                Ok(()) => {}
                Err(e) if lite::is_busy(&e) => {
                    group.queue.lock().push_front(job);
                    wait_for_lock(group.clone(), state);
                    return None;
                }
                Err(e) => {
                    // Dropping the job answers it with an error.
                    tracing::error!(error = %e, "starting a write transaction failed");
                    continue;
                }
            }
        }
        run_job(&mut state, job);
    }
    Some(state)
}

/// Runs `job` in a savepoint of the open group, on the lent connection.
fn run_job(state: &mut State, job: Job) {
    if let Err(e) = run(conn_of(state), "SAVEPOINT tx") {
        tracing::error!(error = %e, "opening a savepoint failed");
        fail(state);
        return;
    }
    let conn = state.conn.take().expect("present while open");
    let mut lent = Conn {
        inner: Inner::Lent(conn),
    };
    // A panic (reported by the hook) rolls back this transaction only; its
    // caller's answer is dropped with the job, so it gets an error.
    let ack = catch_unwind(AssertUnwindSafe(|| job(&mut lent)));
    let Inner::Lent(conn) = lent.inner else {
        unreachable!("lent stays lent")
    };
    state.conn = Some(conn);
    let conn = conn_of(state);
    let ended = match ack {
        Ok(Some(ack)) => match run(conn, "RELEASE tx") {
            Ok(()) => {
                state.pending.push(ack);
                Ok(())
            }
            Err(e) => {
                ack.send(false);
                Err(e)
            }
        },
        _ => rollback_to_savepoint(conn),
    };
    if let Err(e) = ended {
        // SQLite may already have rolled the whole transaction back (e.g.
        // a full disk): the group is lost either way.
        tracing::error!(error = %e, "ending a savepoint failed");
        fail(state);
    }
}

/// Another process (an operator command) holds SQLite's write lock: a task
/// waits for it ([`begin_when_free`]), holding the connection, then runs
/// the queue. If the lock stays taken, what is queued fails.
fn wait_for_lock(group: Arc<Group>, mut state: OwnedMutexGuard<State>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        group.queue.clear();
        return;
    };
    runtime.spawn(async move {
        if let Err(e) = begin_when_free(&group.path, &mut state).await {
            tracing::error!(error = %e, "starting a write transaction failed");
            group.queue.clear();
        }
        release(&group, state);
    });
}
