//! Write transactions, and group commit on SQLite.
//!
//! On PostgreSQL a write transaction is a plain pooled transaction: the
//! server already overlaps the commits of concurrent connections.
//!
//! SQLite has one writer, and each commit waits for an fsync (WAL with
//! `synchronous=FULL`), so committing every request on its own caps the
//! service at one fsync per request. Here each logical transaction runs as a
//! SAVEPOINT inside a physical transaction shared with the transactions
//! queued behind it (each nested in the one before, so that committing one
//! costs no statement). The physical COMMIT — one fsync for the whole group —
//! is issued by whoever releases the connection when nobody else is waiting
//! for it, or when the group is full. [`WriteTx::commit`] returns only after
//! that COMMIT, so nothing is acknowledged before it is on disk. A logical
//! transaction that fails or is dropped is rolled back to its savepoint
//! without touching the others; if the physical transaction itself fails,
//! every transaction of the group gets an error and none is acknowledged.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

/// Most logical transactions committed by one fsync; bounds the wait of the
/// first of them.
const MAX_GROUP: usize = 128;

/// An open write transaction; pass `&mut *tx` to the `db` functions, then
/// [`commit`](WriteTx::commit). Dropping it rolls it back.
pub struct WriteTx {
    inner: Inner,
}

enum Inner {
    Pool(Transaction<'static, Any>),
    Group(Held),
}

impl WriteTx {
    /// Makes the transaction durable; on SQLite, returns once the group
    /// it joined has been committed to disk.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self.inner {
            Inner::Pool(tx) => tx.commit().await,
            Inner::Group(held) => held.commit().await,
        }
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match &self.inner {
            Inner::Pool(tx) => tx,
            Inner::Group(held) => &held.parts().conn,
        }
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.inner {
            Inner::Pool(tx) => tx,
            Inner::Group(held) => &mut held.parts_mut().conn,
        }
    }
}

/// Opens write transactions on PostgreSQL (a pool) or SQLite (group commit).
#[derive(Clone, Debug)]
pub enum Writer {
    /// Pooled transactions.
    Pool(AnyPool),
    /// Group commit over the pool's single connection.
    Group(Arc<Group>),
}

impl Writer {
    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<WriteTx, sqlx::Error> {
        let inner = match self {
            Writer::Pool(pool) => Inner::Pool(pool.begin().await?),
            Writer::Group(group) => Inner::Group(Group::begin(group).await?),
        };
        Ok(WriteTx { inner })
    }
}

/// The SQLite writer connection and the group being committed.
#[derive(Debug)]
pub struct Group {
    pool: AnyPool,
    state: Arc<Mutex<State>>,
    /// Tasks waiting for `state`: while there are any, a releasing
    /// transaction leaves the COMMIT to them.
    waiting: AtomicUsize,
}

#[derive(Debug, Default)]
struct State {
    /// The connection, between holders.
    conn: Option<PoolConnection<Any>>,
    /// A physical transaction is open.
    open: bool,
    /// Logical transactions released into the open one, awaiting its COMMIT.
    pending: Vec<oneshot::Sender<bool>>,
}

impl Group {
    /// Group commit over `pool`, which must hold exactly one connection.
    pub fn new(pool: AnyPool) -> Group {
        Group {
            pool,
            state: Arc::default(),
            waiting: AtomicUsize::new(0),
        }
    }

    async fn lock(group: &Arc<Group>) -> OwnedMutexGuard<State> {
        group.waiting.fetch_add(1, Ordering::SeqCst);
        let queued = Queued(group.clone());
        let state = group.state.clone().lock_owned().await;
        std::mem::forget(queued);
        group.waiting.fetch_sub(1, Ordering::SeqCst);
        state
    }

    async fn begin(group: &Arc<Group>) -> Result<Held, sqlx::Error> {
        let mut state = Group::lock(group).await;
        let conn = match state.conn.take() {
            Some(conn) => conn,
            None => group.pool.acquire().await?,
        };
        let begin = if state.open {
            "SAVEPOINT tx"
        } else {
            "BEGIN IMMEDIATE; SAVEPOINT tx"
        };
        // Marked before the statement runs: if this request is cancelled
        // meanwhile, dropping `held` undoes whatever of it took effect.
        state.open = true;
        let mut held = Held {
            group: group.clone(),
            parts: Some(Parts { state, conn }),
            savepoint: true,
        };
        held.parts_mut().conn.execute(begin).await?;
        Ok(held)
    }

    /// Takes the connection only to settle a group that a waiter, which
    /// gave up, was expected to commit.
    async fn settle(group: Arc<Group>) {
        let mut state = Group::lock(&group).await;
        if let Some(conn) = state.conn.take() {
            Parts { state, conn }.release(&group).await;
        }
    }
}

/// Counts a task waiting for the connection; if it gives up (its request
/// was cancelled), the group it was expected to commit is settled by a task
/// of its own.
struct Queued(Arc<Group>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
        spawn(Group::settle(self.0.clone()));
    }
}

/// The connection, held by one logical transaction. Dropped before its
/// commit, it rolls back to its savepoint (on a task of its own, since
/// that needs the connection) and hands the connection on.
struct Held {
    group: Arc<Group>,
    // `None` only once handed on.
    parts: Option<Parts>,
    /// The logical transaction's savepoint may be open.
    savepoint: bool,
}

struct Parts {
    state: OwnedMutexGuard<State>,
    conn: PoolConnection<Any>,
}

impl Held {
    fn parts(&self) -> &Parts {
        self.parts.as_ref().expect("held until commit or drop")
    }

    fn parts_mut(&mut self) -> &mut Parts {
        self.parts.as_mut().expect("held until commit or drop")
    }

    async fn commit(mut self) -> Result<(), sqlx::Error> {
        let Some(mut parts) = self.parts.take() else {
            return Err(group_failed());
        };
        let group = self.group.clone();
        // The savepoint stays open: the next transaction's nests inside it,
        // and the group's COMMIT releases them all. Releasing it here would
        // cost a round trip to the connection's thread per transaction.
        let (done, committed) = oneshot::channel();
        parts.state.pending.push(done);
        // On a task of its own, so a cancelled request can't cut a COMMIT short.
        spawn(async move { parts.release(&group).await });
        match committed.await {
            Ok(true) => Ok(()),
            _ => Err(group_failed()),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(mut parts) = self.parts.take() {
            let (group, savepoint) = (self.group.clone(), self.savepoint);
            spawn(async move {
                if savepoint && let Err(e) = parts.conn.execute("ROLLBACK TO tx; RELEASE tx").await
                {
                    tracing::error!(error = %e, "rolling back to a savepoint failed");
                    parts.fail().await;
                }
                parts.release(&group).await;
            });
        }
    }
}

impl Parts {
    /// Hands the connection on: to the next waiting transaction, which joins
    /// the open group, or — when nobody waits or the group is full — after
    /// committing the group.
    async fn release(mut self, group: &Group) {
        let alone = group.waiting.load(Ordering::SeqCst) == 0;
        if self.state.open && (alone || self.state.pending.len() >= MAX_GROUP) {
            let committed = match self.conn.execute("COMMIT").await {
                Ok(_) => true,
                Err(e) => {
                    tracing::error!(error = %e, "group commit failed");
                    let _ = self.conn.execute("ROLLBACK").await;
                    false
                }
            };
            self.finish(committed);
        }
        self.state.conn = Some(self.conn);
    }

    /// Ends a physical transaction left in an unknown state by an error:
    /// the whole group is rolled back and its members told.
    async fn fail(&mut self) {
        if self.state.open {
            let _ = self.conn.execute("ROLLBACK").await;
        }
        self.finish(false);
    }

    fn finish(&mut self, committed: bool) {
        self.state.open = false;
        for done in self.state.pending.drain(..) {
            let _ = done.send(committed);
        }
    }
}

/// Runs `task` on the current runtime; without one (the process is ending)
/// there is nothing left to settle.
fn spawn(task: impl Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(task);
    }
}

/// What a member of a failed group gets (a 503: the cause is logged once).
fn group_failed() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other("the group commit failed"))
}
