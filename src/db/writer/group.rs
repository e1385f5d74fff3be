//! The SQLite writer connection, shared by the transactions of a group:
//! holding it ([`Held`]), handing it on, committing a group and
//! checkpointing (see the parent module for the design).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{Mutex, Notify, OwnedMutexGuard};

use super::combine::{self, Queue};
use crate::db::checkpoint::Checkpointer;
use crate::db::lite::{self, Role};
use crate::db::wal_sync::{Ack, WalSync};

/// Most logical transactions committed by one COMMIT; bounds the wait of the
/// first of them.
pub(super) const MAX_GROUP: usize = 128;

/// How often the writer finishes the checkpoint thread's work (see
/// [`checkpoint`]), right after one of the thread's checkpoints...
const WRITER_CHECKPOINT: Duration = Duration::from_millis(500);

/// ...or after this long in any case.
pub(super) const WRITER_CHECKPOINT_LATEST: Duration = Duration::from_secs(2);

/// The SQLite writer connection and the group being committed.
#[derive(Debug)]
pub struct Group {
    pub(super) path: PathBuf,
    // Fields drop in this order. First the groups still queued are synced,
    // while the WAL is surely there...
    wal_sync: WalSync,
    pub(super) state: Arc<Mutex<State>>,
    /// Transactions queued for whoever holds `state` ([`combine`]).
    pub(super) queue: Queue,
    /// Tasks waiting for `state`: while there are any, a releasing
    /// transaction leaves the COMMIT to them.
    waiting: AtomicUsize,
    /// An open group was left to be committed when the running fsync ends.
    deferred: Arc<AtomicBool>,
    /// Whether a task commits deferred groups (none without a runtime).
    can_defer: bool,
    // ...and the checkpoint thread's connection closes after the writer's:
    // the last to close copies the WAL into the database and deletes it.
    checkpointer: Checkpointer,
}

/// The connection and its group, behind `Group::state`.
#[derive(Debug, Default)]
pub(super) struct State {
    /// The connection; `None` only while a checkpoint runs on the blocking
    /// pool, or after it was lost (it is then reopened).
    pub(super) conn: Option<Connection>,
    /// A physical transaction is open.
    pub(super) open: bool,
    /// Logical transactions released into the open one, awaiting its COMMIT.
    pub(super) pending: Vec<Ack>,
    /// When the writer last checkpointed.
    checkpointed_at: Option<Instant>,
}

impl Group {
    /// Group commit over `conn`, the one writer of the database at `path`,
    /// with its checkpoint and WAL sync threads.
    pub fn new(path: PathBuf, conn: Connection) -> std::io::Result<Arc<Group>> {
        Group::with(Checkpointer::start(path.clone())?, path, conn)
    }

    pub(super) fn with(
        checkpointer: Checkpointer,
        path: PathBuf,
        conn: Connection,
    ) -> std::io::Result<Arc<Group>> {
        // SQLite's own name for the file, symbolic links resolved.
        let mut wal = conn
            .path()
            .map_or_else(|| path.clone().into_os_string(), Into::into);
        wal.push("-wal");
        let deferred = Arc::new(AtomicBool::new(false));
        let idle = Arc::new(Notify::new());
        let on_idle = {
            let (deferred, idle) = (deferred.clone(), idle.clone());
            Box::new(move || {
                if deferred.load(Ordering::SeqCst) {
                    idle.notify_one();
                }
            })
        };
        let runtime = tokio::runtime::Handle::try_current().ok();
        let group = Arc::new(Group {
            checkpointer,
            wal_sync: WalSync::start(wal.into(), on_idle)?,
            deferred,
            can_defer: runtime.is_some(),
            path,
            state: Arc::new(Mutex::new(State {
                conn: Some(conn),
                ..State::default()
            })),
            queue: Queue::default(),
            waiting: AtomicUsize::new(0),
        });
        if let Some(runtime) = runtime {
            // Holds the group weakly, so that dropping the last handle still
            // stops the threads and closes the connection.
            let weak = Arc::downgrade(&group);
            runtime.spawn(async move {
                loop {
                    idle.notified().await;
                    let Some(group) = weak.upgrade() else {
                        return;
                    };
                    if group.deferred.swap(false, Ordering::SeqCst) {
                        Group::settle(group).await;
                    }
                }
            });
        }
        Ok(group)
    }

    async fn lock(group: &Arc<Group>) -> OwnedMutexGuard<State> {
        group.waiting.fetch_add(1, Ordering::SeqCst);
        let queued = Queued(group);
        let state = group.state.clone().lock_owned().await;
        std::mem::forget(queued);
        group.waiting.fetch_sub(1, Ordering::SeqCst);
        state
    }

    pub(super) async fn begin(group: &Arc<Group>) -> Result<Held, sqlx::Error> {
        let state = Group::lock(group).await;
        let mut held = Held {
            group: group.clone(),
            state: Some(state),
            savepoint: false,
        };
        if !held.state().open {
            begin_when_free(&group.path, held.state())
                .await
                .map_err(lite::into_sqlx)?;
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
pub(super) struct Held {
    group: Arc<Group>,
    // `None` only once handed on.
    state: Option<OwnedMutexGuard<State>>,
    /// The logical transaction's savepoint is open.
    savepoint: bool,
}

pub(super) fn conn_of(state: &mut State) -> &mut Connection {
    state.conn.as_mut().expect("present while held")
}

impl Held {
    fn state(&mut self) -> &mut State {
        self.state.as_mut().expect("held until commit or drop")
    }

    pub(super) fn conn(&mut self) -> &mut Connection {
        conn_of(self.state())
    }

    pub(super) async fn commit(mut self) -> Result<(), sqlx::Error> {
        let Some(mut state) = self.state.take() else {
            return Err(group_failed());
        };
        if let Err(e) = run(conn_of(&mut state), "RELEASE tx") {
            tracing::error!(error = %e, "releasing a savepoint failed");
            fail(&mut state);
            release(&self.group, state);
            return Err(group_failed());
        }
        let (done, committed) = Ack::channel();
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
                && let Err(e) = rollback_to_savepoint(conn_of(&mut state))
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

/// Lets the connection go, after running what is queued ([`combine`]): to
/// the next waiting transaction, which joins the open group, or — when
/// nobody waits and nothing is queued, or the group is full — after
/// committing the group. The COMMIT runs here: without its fsync it only
/// writes the group's pages to the WAL, and a cancelled request can't cut
/// it short. Its members are answered after the fsync ([`WalSync`]).
pub(super) fn release(group: &Arc<Group>, mut state: OwnedMutexGuard<State>) {
    loop {
        let Some(ran) = combine::run_queued(group, state) else {
            return;
        };
        state = ran;
        let alone = group.waiting.load(Ordering::SeqCst) == 0;
        if state.open {
            let full = state.pending.len() >= MAX_GROUP;
            if !full && !alone {
                return;
            }
            if !full && !group.queue.is_empty() {
                // Queued since: it joins this group.
                continue;
            }
            if !full && group.can_defer && !group.wal_sync.idle() {
                // A COMMIT now would wait for the fsync that runs anyway:
                // the group stays open for what comes meanwhile, and is
                // committed when that fsync ends, if nobody did it before.
                group.deferred.store(true, Ordering::SeqCst);
                drop(state);
                // The fsync may have ended, or a transaction been queued,
                // after they were last looked at.
                if group.queue.is_empty() && !group.wal_sync.idle() {
                    return;
                }
                match group.state.clone().try_lock_owned() {
                    Ok(taken) => state = taken,
                    Err(_) => return,
                }
                continue;
            }
            if let Some(now) = commit_group(group, &mut state) {
                checkpoint(group.clone(), state, now);
                return;
            }
            if !group.queue.is_empty() {
                // More than a group: the rest goes on from a task of its
                // own, so that this worker serves other requests between.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(Group::settle(group.clone()));
                    return;
                }
            }
        }
        if !alone {
            return;
        }
        drop(state);
        // A transaction queued after the queue was last read found the
        // connection taken: whoever can take it now runs it.
        if group.queue.is_empty() {
            return;
        }
        match group.state.clone().try_lock_owned() {
            Ok(taken) => state = taken,
            Err(_) => return,
        }
    }
}

/// Commits the open group and hands its members to the WAL sync; the time
/// now if the writer's checkpoint is due.
fn commit_group(group: &Group, state: &mut State) -> Option<Instant> {
    // Nothing is left for the WAL sync's wake-up to commit.
    group.deferred.store(false, Ordering::SeqCst);
    let committed = state.conn.as_mut().is_some_and(commit);
    if !committed {
        forget_if_in_transaction(state);
        finish(state, false);
        return None;
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
    due.then_some(now)
}

/// The checkpoint thread copies the WAL into the database beside the
/// writer, but can't catch up with it; the writer, before it adds frames
/// again, copies the rest (on the blocking pool, holding the connection),
/// so that the next transaction starts the WAL over instead of growing it
/// forever. If the thread was checkpointing meanwhile, it is tried again
/// after the next commit.
fn checkpoint(group: Arc<Group>, mut state: OwnedMutexGuard<State>, now: Instant) {
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
            let complete = crate::db::checkpoint::passive(&conn);
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
        // What was queued meanwhile runs now.
        release(&group, state);
    });
}

/// Opens the physical transaction, and the connection first if it was
/// lost, taking the write lock now so that the statements that follow
/// never wait for it.
pub(super) fn begin_immediate(path: &Path, state: &mut State) -> rusqlite::Result<()> {
    if state.conn.is_none() {
        state.conn = Some(lite::open(path, Role::Writer)?);
    }
    run(conn_of(state), "BEGIN IMMEDIATE")?;
    state.open = true;
    Ok(())
}

/// [`begin_immediate`], retried on a timer while another process (an
/// operator command) holds SQLite's write lock: the writer connection has
/// no busy timeout, so that nothing sleeps on a tokio worker inside SQLite.
pub(super) async fn begin_when_free(path: &Path, state: &mut State) -> rusqlite::Result<()> {
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match begin_immediate(path, state) {
            Err(e) if lite::is_busy(&e) && started.elapsed() < lite::BUSY_TIMEOUT => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            done => return done,
        }
    }
}

/// Undoes a logical transaction, leaving the rest of its group.
pub(super) fn rollback_to_savepoint(conn: &Connection) -> rusqlite::Result<()> {
    run(conn, "ROLLBACK TO tx")?;
    run(conn, "RELEASE tx")
}

/// Runs one of the writer's transaction statements, prepared once: they run
/// for every logical transaction, inside the write lock, and parsing them
/// anew each time cost more than running them.
pub(super) fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
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
pub(super) fn fail(state: &mut State) {
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
        done.send(committed);
    }
}

/// What a member of a failed group gets (a 503: the cause is logged once).
pub(super) fn group_failed() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other("the group commit failed"))
}
