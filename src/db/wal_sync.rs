//! The fsync that makes SQLite group commits durable, after the write lock
//! is released.
//!
//! The writer connection runs with `synchronous=NORMAL`: its COMMIT writes
//! the group's WAL frames and returns without an fsync (except the one
//! SQLite makes of the WAL header when it starts the WAL over), and the
//! connection goes straight on to the next group. The group's members are
//! answered only once a thread of this module has fdatasync'd the WAL file
//! after that COMMIT, so every acknowledged write is on disk; what changes
//! from `synchronous=FULL` is that the next group's statements run while
//! the disk flushes, instead of waiting behind it. One fsync acknowledges
//! every group committed before it began, and since the WAL is written in
//! order, a write that a crash loses takes every later write with it: none
//! of them had been acknowledged.
//!
//! Reads may see a group before its fsync. No acknowledged write depends on
//! that: a write that read it lands later in the WAL and is answered later.
//! A read-only answer may (a rejection, or a list of sessions that already
//! leaves out one being ended); if the machine then crashes within that
//! fsync, the state it showed is lost along with the unacknowledged write.
//!
//! A failed fsync ends the process, as in PostgreSQL: the kernel may have
//! dropped the WAL's pages and report later fsyncs as fine, while recovery
//! would stop at the hole. On restart SQLite recovers from what is on disk.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

/// How a member of a group learns that it is on disk (`true`), or that its
/// group failed (`false`; dropping it unsent tells it so too).
pub struct Ack(Box<dyn FnOnce(bool) + Send>);

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ack")
    }
}

impl Ack {
    /// Calls `tell` with the outcome.
    pub fn new(tell: impl FnOnce(bool) + Send + 'static) -> Ack {
        Ack(Box::new(tell))
    }

    /// An `Ack` whose outcome arrives on the receiver.
    pub fn channel() -> (Ack, oneshot::Receiver<bool>) {
        let (tx, rx) = oneshot::channel();
        (
            Ack::new(move |ok| {
                let _ = tx.send(ok);
            }),
            rx,
        )
    }

    /// Tells the outcome.
    pub fn send(self, ok: bool) {
        (self.0)(ok);
    }
}

/// Makes everything written to the WAL so far durable.
type SyncFn = Box<dyn FnMut() -> std::io::Result<()> + Send>;

/// Called on the syncing thread each time it has answered everything
/// queued and goes idle.
pub type OnIdle = Box<dyn Fn() + Send>;

/// The syncing thread; dropping this syncs what is queued, then ends it.
pub struct WalSync {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for WalSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalSync").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Default)]
struct Queue {
    /// Members of committed groups, oldest first.
    acks: Vec<Ack>,
    /// An fsync is running.
    syncing: bool,
    closed: bool,
}

impl WalSync {
    /// Starts the thread syncing `wal`, the WAL file of the database (as
    /// SQLite names it: symbolic links resolved), which must exist.
    /// `on_idle` is called each time it goes idle.
    pub fn start(wal: PathBuf, on_idle: OnIdle) -> std::io::Result<WalSync> {
        let mut file = WalFile::open(wal)?;
        WalSync::with(Box::new(move || file.sync()), on_idle)
    }

    fn with(sync: SyncFn, on_idle: OnIdle) -> std::io::Result<WalSync> {
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("twofactor-walsync".into())
            .spawn({
                let shared = shared.clone();
                move || run(&shared, sync, &on_idle)
            })?;
        Ok(WalSync {
            shared,
            thread: Some(thread),
        })
    }

    /// Answers `acks`, members of a group whose COMMIT has returned, once
    /// an fsync begun after now has finished. Never blocks.
    pub fn acknowledge(&self, acks: Vec<Ack>) {
        let mut queue = self.shared.lock();
        queue.acks.extend(acks);
        self.shared.wake.notify_one();
    }

    /// No fsync is running or due: a COMMIT now would be synced at once.
    pub fn idle(&self) -> bool {
        let queue = self.shared.lock();
        !queue.syncing && queue.acks.is_empty()
    }
}

impl Drop for WalSync {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Nothing panics while holding it; a poisoned queue is still whole.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn run(shared: &Shared, mut sync: SyncFn, on_idle: &OnIdle) {
    loop {
        let acks = {
            let mut queue = shared.lock();
            while queue.acks.is_empty() && !queue.closed {
                queue = shared
                    .wake
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if queue.acks.is_empty() {
                return;
            }
            queue.syncing = true;
            std::mem::take(&mut queue.acks)
        };
        if let Err(e) = sync() {
            tracing::error!(error = %e, "syncing the WAL failed; stopping so that recovery starts from what is on disk");
            std::process::abort();
        }
        for ack in acks {
            ack.send(true);
        }
        let idle = {
            let mut queue = shared.lock();
            queue.syncing = false;
            queue.acks.is_empty()
        };
        if idle {
            on_idle();
        }
    }
}

/// The WAL, through a descriptor kept open: a write-back error is reported
/// to the descriptors open when it happened, never to one opened later.
/// SQLite deletes the WAL only when its last connection closes, after
/// copying all of it into the database and syncing that; if it was
/// recreated since, the new file is opened.
struct WalFile {
    path: PathBuf,
    file: File,
}

impl WalFile {
    fn open(path: PathBuf) -> std::io::Result<WalFile> {
        let file = File::open(&path)?;
        Ok(WalFile { path, file })
    }

    fn sync(&mut self) -> std::io::Result<()> {
        match std::fs::metadata(&self.path) {
            // Deleted: everything in it is in the database file, synced.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
            Ok(now) if !same_inode(&self.file.metadata()?, &now) => {
                self.file = File::open(&self.path)?;
            }
            Ok(_) => {}
        }
        // fdatasync through any descriptor flushes every written page of
        // the file, SQLite's writes included.
        self.file.sync_data()
    }
}

fn same_inode(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use std::path::Path;

    use super::*;

    fn same_file(file: &File, path: &Path) -> std::io::Result<bool> {
        let held = file.metadata()?;
        Ok(std::fs::metadata(path).is_ok_and(|now| same_inode(&held, &now)))
    }

    fn acks(n: usize) -> (Vec<Ack>, Vec<oneshot::Receiver<bool>>) {
        (0..n).map(|_| Ack::channel()).unzip()
    }

    /// A sync that reports when it starts and finishes when told to.
    fn gated() -> (SyncFn, mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (started_tx, started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let sync: SyncFn = Box::new(move || {
            started_tx.send(()).unwrap();
            released.recv().unwrap();
            Ok(())
        });
        (sync, started, release)
    }

    #[test]
    fn a_group_is_answered_only_after_the_fsync_that_follows_its_commit() {
        let (sync, started, release) = gated();
        let wal = WalSync::with(sync, Box::new(|| {})).unwrap();
        let (first, mut first_rx) = acks(2);
        wal.acknowledge(first);
        started.recv().unwrap();
        // Committed while the first fsync runs: that one may not cover it.
        let (second, mut second_rx) = acks(1);
        wal.acknowledge(second);
        std::thread::sleep(Duration::from_millis(20));
        assert!(first_rx.iter_mut().all(|rx| rx.try_recv().is_err()));
        release.send(()).unwrap();
        for rx in first_rx {
            assert_eq!(rx.blocking_recv(), Ok(true));
        }
        started.recv().unwrap();
        assert!(second_rx[0].try_recv().is_err());
        release.send(()).unwrap();
        assert_eq!(second_rx.remove(0).blocking_recv(), Ok(true));
    }

    #[test]
    fn dropping_it_still_answers_what_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db-wal");
        std::fs::write(&path, b"frames").unwrap();
        let wal = WalSync::start(path, Box::new(|| {})).unwrap();
        let (group, rx) = acks(4);
        wal.acknowledge(group);
        drop(wal);
        for mut rx in rx {
            assert_eq!(rx.try_recv(), Ok(true));
        }
    }

    #[test]
    fn a_recreated_wal_is_reopened_before_it_is_synced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db-wal");
        std::fs::write(&path, b"frames").unwrap();
        let mut wal = WalFile::open(path.clone()).unwrap();
        wal.sync().unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"new frames").unwrap();
        assert!(!same_file(&wal.file, &path).unwrap());
        wal.sync().unwrap();
        assert!(same_file(&wal.file, &path).unwrap());
    }
}
