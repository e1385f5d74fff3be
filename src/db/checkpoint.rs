//! WAL checkpoints for SQLite, off the commit path.
//!
//! By default SQLite checkpoints inside the COMMIT that takes the WAL past
//! 1,000 pages: that COMMIT then copies the pages into the database file
//! and fsyncs it, and every transaction of the next group waits for it.
//! Here the writer never checkpoints inside a COMMIT
//! (`wal_autocheckpoint = 0`). A thread of its own, with a connection of its
//! own, runs a PASSIVE checkpoint (one that never blocks the writer or the
//! readers) after commits, at most every [`PAUSE`]. Under a steady stream of
//! commits it never quite catches up, and SQLite starts the WAL over only
//! once it has all been copied; so every half second the writer, right
//! after one of the thread's checkpoints (or after 2 s in any case) and
//! before it writes again, copies the little that is left
//! ([`super::writer`]).

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::lite::{self, Role};

/// Least time between two checkpoints (each one fsyncs the database file).
const PAUSE: Duration = Duration::from_millis(100);

/// How long after one of the thread's checkpoints the writer may finish it.
const FRESH: Duration = Duration::from_millis(5);

/// Tells the checkpoint thread that commits happened; dropping this ends the
/// thread after a last checkpoint, and waits for it to close its connection.
#[derive(Debug)]
pub struct Checkpointer {
    /// `None` once dropped, which ends the thread's loop.
    nudge: Option<SyncSender<()>>,
    /// When the thread last finished a checkpoint.
    passed: Arc<Mutex<Option<Instant>>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread for the database at `path`.
    pub fn start(path: PathBuf) -> std::io::Result<Checkpointer> {
        let (nudge, nudged) = sync_channel(1);
        let passed = Arc::new(Mutex::new(None));
        let thread = std::thread::Builder::new()
            .name("twofactor-checkpoint".into())
            .spawn({
                let passed = passed.clone();
                move || run(&path, &nudged, &passed)
            })?;
        Ok(Checkpointer {
            nudge: Some(nudge),
            passed,
            thread: Some(thread),
        })
    }

    /// No thread: the writer's own checkpoints are the only ones (tests).
    #[cfg(test)]
    pub fn idle() -> Checkpointer {
        Checkpointer {
            nudge: None,
            passed: Arc::default(),
            thread: None,
        }
    }

    /// Whether the thread finished a checkpoint less than [`FRESH`] ago:
    /// little is then left for the writer to copy.
    pub fn just_passed(&self) -> bool {
        let passed = *self.passed.lock().unwrap_or_else(PoisonError::into_inner);
        passed.is_some_and(|at| at.elapsed() < FRESH)
    }

    /// After a commit: a checkpoint is due. Never blocks.
    pub fn nudge(&self) {
        if let Some(nudge) = &self.nudge {
            match nudge.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.nudge = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(path: &std::path::Path, nudged: &Receiver<()>, passed: &Mutex<Option<Instant>>) {
    let conn = match lite::open(path, Role::Checkpointer) {
        Ok(conn) => conn,
        Err(e) => {
            // Without it the WAL grows until restart; say so loudly.
            tracing::error!(error = %e, "opening the checkpoint connection failed");
            return;
        }
    };
    while nudged.recv().is_ok() {
        passive(&conn);
        *passed.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        std::thread::sleep(PAUSE);
    }
    passive(&conn);
}

/// Copies what it can of the WAL into the database file, without waiting
/// for or blocking anyone; true if it copied all of it (false too when
/// another connection was checkpointing: only one at a time can).
pub fn passive(conn: &rusqlite::Connection) -> bool {
    let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
        ))
    });
    match result {
        Ok((busy, wal, done)) => {
            tracing::trace!(busy, wal, done, "checkpoint");
            busy == 0 && wal == done
        }
        Err(e) => {
            lite::stop_if_fsync_failed(&e);
            tracing::warn!(error = %e, "WAL checkpoint failed");
            false
        }
    }
}
