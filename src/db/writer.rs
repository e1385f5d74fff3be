//! Write transactions, and group commit on SQLite.
//!
//! On PostgreSQL a write transaction is a plain pooled transaction: the
//! server already overlaps the commits of concurrent connections.
//!
//! SQLite has one writer, and each commit waits for an fsync (WAL with
//! `synchronous=FULL`), so committing every request on its own caps the
//! service at one fsync per request. Here each logical transaction is a
//! SAVEPOINT inside a physical transaction shared with the transactions
//! queued behind it. Its statements run on the calling task, in
//! microseconds ([`super::lite`]). The physical COMMIT — one fsync for the
//! whole group, on the blocking pool — is issued by whoever releases the
//! connection when nobody else is waiting for it, or when the group is
//! full. [`WriteTx::commit`] returns only after that COMMIT, so nothing is
//! acknowledged before it is on disk. A logical transaction that fails or
//! is dropped is rolled back to its savepoint without touching the others;
//! if the physical transaction itself fails, every transaction of the group
//! gets an error and none is acknowledged.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use super::checkpoint::Checkpointer;
use super::lite::{self, Role};
use super::sql::Ex;

/// Most logical transactions committed by one fsync; bounds the wait of the
/// first of them.
const MAX_GROUP: usize = 128;

/// How often the writer finishes the checkpoint thread's work (see
/// [`commit_group`]).
const WRITER_CHECKPOINT: Duration = Duration::from_millis(500);

/// An open write transaction; pass `&mut *tx` to the `db` functions, then
/// [`commit`](WriteTx::commit). Dropping it rolls it back.
pub struct WriteTx {
    conn: Conn,
}

/// The connection of an open write transaction, as the `db` functions take it.
pub struct Conn {
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
        match self.conn.inner {
            Inner::Pool(tx) => tx.commit().await,
            Inner::Group(held) => held.commit().await,
        }
    }
}

impl Deref for WriteTx {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }
}

impl Conn {
    /// Where the `db` functions run their statements.
    pub(super) fn ex(&mut self) -> Ex<'_> {
        match &mut self.inner {
            Inner::Pool(tx) => Ex::AnyConn(tx),
            Inner::Group(held) => Ex::LiteConn(held.conn()),
        }
    }
}

/// Opens write transactions on PostgreSQL (a pool) or SQLite (group commit).
#[derive(Clone, Debug)]
pub enum Writer {
    /// Pooled transactions.
    Pool(AnyPool),
    /// Group commit over one connection.
    Group(Arc<Group>),
}

impl Writer {
    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<WriteTx, sqlx::Error> {
        let inner = match self {
            Writer::Pool(pool) => Inner::Pool(pool.begin().await?),
            Writer::Group(group) => Inner::Group(Group::begin(group).await?),
        };
        Ok(WriteTx {
            conn: Conn { inner },
        })
    }
}

/// The SQLite writer connection and the group being committed.
#[derive(Debug)]
pub struct Group {
    path: PathBuf,
    checkpointer: Checkpointer,
    state: Arc<Mutex<State>>,
    /// Tasks waiting for `state`: while there are any, a releasing
    /// transaction leaves the COMMIT to them.
    waiting: AtomicUsize,
}

#[derive(Debug, Default)]
struct State {
    /// The connection; `None` only while a COMMIT runs on the blocking
    /// pool, or after it was lost there (it is then reopened).
    conn: Option<Connection>,
    /// A physical transaction is open.
    open: bool,
    /// Logical transactions released into the open one, awaiting its COMMIT.
    pending: Vec<oneshot::Sender<bool>>,
    /// When the writer last checkpointed.
    checkpointed_at: Option<Instant>,
}

impl Group {
    /// Group commit over `conn`, the one writer of the database at `path`,
    /// with its checkpoint thread.
    pub fn new(path: PathBuf, conn: Connection) -> std::io::Result<Group> {
        Ok(Group {
            checkpointer: Checkpointer::start(path.clone())?,
            path,
            state: Arc::new(Mutex::new(State {
                conn: Some(conn),
                ..State::default()
            })),
            waiting: AtomicUsize::new(0),
        })
    }

    async fn lock(group: &Arc<Group>) -> OwnedMutexGuard<State> {
        group.waiting.fetch_add(1, Ordering::SeqCst);
        let queued = Queued(group);
        let state = group.state.clone().lock_owned().await;
        std::mem::forget(queued);
        group.waiting.fetch_sub(1, Ordering::SeqCst);
        state
    }

    async fn begin(group: &Arc<Group>) -> Result<Held, sqlx::Error> {
        let mut state = Group::lock(group).await;
        if state.conn.is_none() {
            state.conn = Some(lite::open(&group.path, Role::Writer).map_err(lite::into_sqlx)?);
        }
        let mut held = Held {
            group: group.clone(),
            state: Some(state),
            savepoint: false,
        };
        if !held.state().open {
            held.begin_immediate().await?;
        }
        held.conn()
            .execute_batch("SAVEPOINT tx")
            .map_err(lite::into_sqlx)?;
        held.savepoint = true;
        Ok(held)
    }

    /// Takes the connection only to settle a group that a waiter, which
    /// gave up, was expected to commit.
    async fn settle(group: Arc<Group>) {
        let state = Group::lock(&group).await;
        release(&group, state);
    }
}

/// Counts a task waiting for the connection; if it gives up (its request
/// was cancelled), the group it was expected to commit is settled by a task
/// of its own.
struct Queued<'a>(&'a Arc<Group>);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(Group::settle(self.0.clone()));
        }
    }
}

/// The connection, held by one logical transaction. Dropped before its
/// commit, it rolls back to its savepoint and hands the connection on.
struct Held {
    group: Arc<Group>,
    // `None` only once handed on.
    state: Option<OwnedMutexGuard<State>>,
    /// The logical transaction's savepoint is open.
    savepoint: bool,
}

fn conn_of(state: &mut State) -> &mut Connection {
    state.conn.as_mut().expect("present while held")
}

impl Held {
    fn state(&mut self) -> &mut State {
        self.state.as_mut().expect("held until commit or drop")
    }

    fn conn(&mut self) -> &mut Connection {
        conn_of(self.state())
    }

    /// Opens the physical transaction, taking the write lock now so that the
    /// statements that follow never wait for it. Another process (an
    /// operator command) may hold it for a moment: the writer connection
    /// has no busy timeout, so rather than sleep on a tokio worker inside
    /// SQLite, this retries on a timer.
    async fn begin_immediate(&mut self) -> Result<(), sqlx::Error> {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match self.conn().execute_batch("BEGIN IMMEDIATE") {
                Ok(()) => {
                    self.state().open = true;
                    return Ok(());
                }
                Err(e) if lite::is_busy(&e) && started.elapsed() < lite::BUSY_TIMEOUT => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(e) => return Err(lite::into_sqlx(e)),
            }
        }
    }

    async fn commit(mut self) -> Result<(), sqlx::Error> {
        let Some(mut state) = self.state.take() else {
            return Err(group_failed());
        };
        if let Err(e) = conn_of(&mut state).execute_batch("RELEASE tx") {
            tracing::error!(error = %e, "releasing a savepoint failed");
            fail(&mut state);
            release(&self.group, state);
            return Err(group_failed());
        }
        let (done, committed) = oneshot::channel();
        state.pending.push(done);
        release(&self.group, state);
        match committed.await {
            Ok(true) => Ok(()),
            _ => Err(group_failed()),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(mut state) = self.state.take() {
            if self.savepoint
                && let Err(e) = conn_of(&mut state).execute_batch("ROLLBACK TO tx; RELEASE tx")
            {
                // SQLite may already have rolled the whole transaction back
                // (e.g. a full disk): the group is lost either way.
                tracing::error!(error = %e, "rolling back to a savepoint failed");
                fail(&mut state);
            }
            release(&self.group, state);
        }
    }
}

/// Hands the connection on: to the next waiting transaction, which joins the
/// open group, or — when nobody waits or the group is full — after
/// committing the group (on a task of its own, so that a cancelled request
/// can't cut a COMMIT short).
fn release(group: &Arc<Group>, state: OwnedMutexGuard<State>) {
    let alone = group.waiting.load(Ordering::SeqCst) == 0;
    if !(state.open && (alone || state.pending.len() >= MAX_GROUP)) {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            // The guard is armed before the task exists: dropped unpolled
            // (the runtime is shutting down), it still rolls the group back.
            runtime.spawn(commit_group(group.clone(), Settling(Some(state))));
        }
        // No runtime: the process is ending; commit here rather than leave
        // the group open.
        Err(_) => {
            let mut state = state;
            let committed = state.conn.as_mut().is_some_and(commit);
            after_commit(group, &mut state, committed);
        }
    }
}

/// COMMITs the open group on the blocking pool (the fsync) and tells its
/// members; then, at most every [`WRITER_CHECKPOINT`], checkpoints before
/// handing the connection on.
async fn commit_group(group: Arc<Group>, mut state: Settling) {
    let Some(mut conn) = state.get().conn.take() else {
        finish(state.get(), false);
        return;
    };
    let pending = std::mem::take(&mut state.get().pending);
    let now = Instant::now();
    let checkpoint = state
        .get()
        .checkpointed_at
        .is_none_or(|at| now.duration_since(at) >= WRITER_CHECKPOINT);
    let joined = tokio::task::spawn_blocking(move || {
        let committed = commit(&mut conn);
        for done in pending {
            let _ = done.send(committed);
        }
        // The checkpoint thread copies the WAL into the database beside the
        // writer, but can't catch up with it; this one, before the writer
        // adds frames again, copies the rest, so that the next transaction
        // starts the WAL over instead of growing it forever. If the thread
        // was checkpointing meanwhile, it is tried again after the next
        // commit.
        let complete = committed && checkpoint && super::checkpoint::passive(&conn);
        (conn, committed, complete)
    })
    .await;
    let state = state.get();
    match joined {
        Ok((conn, committed, complete)) => {
            state.conn = Some(conn);
            if complete {
                state.checkpointed_at = Some(now);
            }
            after_commit(&group, state, committed);
        }
        Err(e) => {
            // The connection went with the task (dropping it rolled the
            // transaction back); the next transaction opens a new one.
            tracing::error!(error = %e, "group commit task failed");
            finish(state, false);
        }
    }
}

/// After the group's COMMIT: a checkpoint is due if it went through; if
/// not, a connection stuck in its transaction is dropped. Then the members
/// still waiting are told.
fn after_commit(group: &Group, state: &mut State, committed: bool) {
    if committed {
        group.checkpointer.nudge();
    } else {
        forget_if_in_transaction(state);
    }
    finish(state, committed);
}

/// The state of a group being committed; settles it as failed if dropped
/// while still open.
struct Settling(Option<OwnedMutexGuard<State>>);

impl Settling {
    fn get(&mut self) -> &mut State {
        self.0.as_mut().expect("until dropped")
    }
}

impl Drop for Settling {
    fn drop(&mut self) {
        if let Some(state) = self.0.as_mut()
            && state.open
        {
            fail(state);
        }
    }
}

/// COMMIT, or on failure ROLLBACK; true if committed.
fn commit(conn: &mut Connection) -> bool {
    match conn.execute_batch("COMMIT") {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "group commit failed");
            let _ = conn.execute_batch("ROLLBACK");
            false
        }
    }
}

/// Ends a physical transaction left in an unknown state by an error: the
/// whole group is rolled back and its members told.
fn fail(state: &mut State) {
    if state.open
        && let Some(conn) = state.conn.as_mut()
    {
        let _ = conn.execute_batch("ROLLBACK");
    }
    forget_if_in_transaction(state);
    finish(state, false);
}

/// A connection still inside a transaction after a ROLLBACK would refuse
/// every later BEGIN: close it (which rolls back) and let the next
/// transaction open a new one.
fn forget_if_in_transaction(state: &mut State) {
    if state.conn.as_ref().is_some_and(|c| !c.is_autocommit()) {
        tracing::error!("the writer connection is stuck in a transaction; reopening it");
        state.conn = None;
    }
}

fn finish(state: &mut State, committed: bool) {
    state.open = false;
    for done in state.pending.drain(..) {
        let _ = done.send(committed);
    }
}

/// What a member of a failed group gets (a 503: the cause is logged once).
fn group_failed() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other("the group commit failed"))
}
