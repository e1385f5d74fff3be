//! Write transactions, and group commit on SQLite.
//!
//! On PostgreSQL a write transaction is a plain pooled transaction: the
//! server already overlaps the commits of concurrent connections.
//!
//! SQLite has one writer, and a commit is durable only after an fsync, so
//! committing every request on its own caps the service at one fsync per
//! request. Here each logical transaction is a SAVEPOINT inside a physical
//! transaction shared with the transactions queued behind it. Its
//! statements run on the calling task, in microseconds ([`super::lite`]).
//! The physical COMMIT is issued by whoever releases the connection when
//! nobody else is waiting for it, or when the group is full; it writes the
//! group's pages to the WAL without an fsync (`synchronous=NORMAL`; only
//! when it starts the WAL over, after a complete checkpoint, does SQLite
//! sync the new WAL header, here), and the connection passes at once to
//! the next group. [`WriteTx::commit`] returns
//! only after the WAL has been fsync'd by [`super::wal_sync`], so nothing is
//! acknowledged before it is on disk, while the next group runs beside that
//! fsync instead of behind it. A logical transaction that fails or is
//! dropped is rolled back to its savepoint without touching the others; if
//! the physical transaction itself fails, every transaction of the group
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
use super::wal_sync::{Ack, WalSync};

/// Most logical transactions committed by one COMMIT; bounds the wait of the
/// first of them.
const MAX_GROUP: usize = 128;

/// How often the writer finishes the checkpoint thread's work (see
/// [`checkpoint`]), right after one of the thread's checkpoints...
const WRITER_CHECKPOINT: Duration = Duration::from_millis(500);

/// ...or after this long in any case.
const WRITER_CHECKPOINT_LATEST: Duration = Duration::from_secs(2);

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
    // Fields drop in this order. First the groups still queued are synced,
    // while the WAL is surely there...
    wal_sync: WalSync,
    state: Arc<Mutex<State>>,
    /// Tasks waiting for `state`: while there are any, a releasing
    /// transaction leaves the COMMIT to them.
    waiting: AtomicUsize,
    // ...and the checkpoint thread's connection closes after the writer's:
    // the last to close copies the WAL into the database and deletes it.
    checkpointer: Checkpointer,
}

#[derive(Debug, Default)]
struct State {
    /// The connection; `None` only while a checkpoint runs on the blocking
    /// pool, or after it was lost (it is then reopened).
    conn: Option<Connection>,
    /// A physical transaction is open.
    open: bool,
    /// Logical transactions released into the open one, awaiting its COMMIT.
    pending: Vec<Ack>,
    /// When the writer last checkpointed.
    checkpointed_at: Option<Instant>,
}

impl Group {
    /// Group commit over `conn`, the one writer of the database at `path`,
    /// with its checkpoint and WAL sync threads.
    pub fn new(path: PathBuf, conn: Connection) -> std::io::Result<Group> {
        Group::with(Checkpointer::start(path.clone())?, path, conn)
    }

    fn with(checkpointer: Checkpointer, path: PathBuf, conn: Connection) -> std::io::Result<Group> {
        // SQLite's own name for the file, symbolic links resolved.
        let mut wal = conn
            .path()
            .map_or_else(|| path.clone().into_os_string(), Into::into);
        wal.push("-wal");
        Ok(Group {
            checkpointer,
            wal_sync: WalSync::start(wal.into())?,
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
        run(held.conn(), "SAVEPOINT tx").map_err(lite::into_sqlx)?;
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
            match run(self.conn(), "BEGIN IMMEDIATE") {
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
        if let Err(e) = run(conn_of(&mut state), "RELEASE tx") {
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
/// committing the group. The COMMIT runs here: without its fsync it only
/// writes the group's pages to the WAL, and a cancelled request can't cut
/// it short. Its members are answered after the fsync ([`WalSync`]).
fn release(group: &Arc<Group>, mut state: OwnedMutexGuard<State>) {
    let alone = group.waiting.load(Ordering::SeqCst) == 0;
    if !(state.open && (alone || state.pending.len() >= MAX_GROUP)) {
        return;
    }
    let committed = state.conn.as_mut().is_some_and(commit);
    if !committed {
        forget_if_in_transaction(&mut state);
        finish(&mut state, false);
        return;
    }
    state.open = false;
    group
        .wal_sync
        .acknowledge(std::mem::take(&mut state.pending));
    group.checkpointer.nudge();
    let now = Instant::now();
    let since = state.checkpointed_at.map(|at| now.duration_since(at));
    // Right after the thread's checkpoint only the pages committed while it
    // ran are left: the writer's copy holds up the next group for far less.
    let due = since.is_none_or(|since| {
        since >= WRITER_CHECKPOINT_LATEST
            || (since >= WRITER_CHECKPOINT && group.checkpointer.just_passed())
    });
    if due {
        checkpoint(state, now);
    }
}

/// The checkpoint thread copies the WAL into the database beside the
/// writer, but can't catch up with it; the writer, before it adds frames
/// again, copies the rest (on the blocking pool, holding the connection),
/// so that the next transaction starts the WAL over instead of growing it
/// forever. If the thread was checkpointing meanwhile, it is tried again
/// after the next commit.
fn checkpoint(mut state: OwnedMutexGuard<State>, now: Instant) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // No runtime: the process is ending, and closing the connection
        // checkpoints anyway.
        return;
    };
    let Some(conn) = state.conn.take() else {
        return;
    };
    runtime.spawn(async move {
        let joined = tokio::task::spawn_blocking(move || {
            let complete = super::checkpoint::passive(&conn);
            (conn, complete)
        })
        .await;
        // On a panic the connection is gone; the next transaction opens one.
        if let Ok((conn, complete)) = joined {
            state.conn = Some(conn);
            if complete {
                state.checkpointed_at = Some(now);
            }
        }
    });
}

/// Runs one of the writer's transaction statements, prepared once: they run
/// for every logical transaction, inside the write lock, and parsing them
/// anew each time cost more than running them.
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// COMMIT, or on failure ROLLBACK; true if committed.
fn commit(conn: &mut Connection) -> bool {
    match run(conn, "COMMIT") {
        Ok(()) => true,
        Err(e) => {
            lite::stop_if_fsync_failed(&e);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// SQLite bumps the checkpoint sequence number in the WAL's header
    /// (bytes 12..16) each time it starts the WAL over.
    fn wal_restarts(path: &std::path::Path) -> u32 {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        // The header only: the WAL grows to tens of MB here.
        use std::io::Read;
        let mut header = [0u8; 16];
        std::fs::File::open(wal)
            .and_then(|mut wal| wal.read_exact(&mut header))
            .map_or(0, |()| {
                u32::from_be_bytes(header[12..16].try_into().unwrap())
            })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_the_checkpoint_thread_the_writer_alone_starts_the_wal_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let conn = lite::open(&path, Role::Writer).unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER NOT NULL)")
            .unwrap();
        let group = Arc::new(Group::with(Checkpointer::idle(), path.clone(), conn).unwrap());
        let write = |group: Arc<Group>| async move {
            let mut held = Group::begin(&group).await.unwrap();
            held.conn()
                .execute("INSERT INTO t (x) VALUES (1)", [])
                .unwrap();
            held.commit().await.unwrap();
        };
        // Writes without a pause: the writer checkpoints after its first
        // commit and again within 2 s, and the write after each starts the
        // WAL over. (The deadline is generous for a loaded machine; a
        // working writer is done after about 2 s.)
        let mut seen = BTreeSet::new();
        let mut in_flight = tokio::task::JoinSet::new();
        let started = Instant::now();
        while seen.len() < 3 && started.elapsed() < WRITER_CHECKPOINT_LATEST * 4 {
            while in_flight.len() < 32 {
                in_flight.spawn(write(group.clone()));
            }
            in_flight.join_next().await.unwrap().unwrap();
            seen.insert(wal_restarts(&path));
        }
        in_flight.join_all().await;
        assert!(
            seen.len() >= 3,
            "the WAL started over {} time(s)",
            seen.len().saturating_sub(1)
        );
    }
}
