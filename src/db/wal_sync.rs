//! The fsync that makes SQLite group commits durable, after the write lock
//! is released.
//!
//! The writer connection runs with `synchronous=NORMAL`: its COMMIT writes
//! the group's WAL frames and returns without an fsync, and the connection
//! goes straight on to the next group. The group's members are answered
//! only once a thread of this module has fdatasync'd the WAL file after
//! that COMMIT, so every acknowledged write is on disk, as with
//! `synchronous=FULL`; what changes is that the next group's statements
//! run while the disk flushes, instead of waiting behind it. One fsync
//! acknowledges every group committed before it began, and since the WAL
//! is written in order, a write that a crash loses takes every later write
//! with it: none of them had been acknowledged.
//!
//! Reads may see a group before its fsync. Nothing acknowledged depends on
//! that: a write that read it lands later in the WAL, and is answered
//! later too.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

/// How a member of a group learns its fate: true once it is on disk.
pub type Ack = oneshot::Sender<bool>;

/// The syncing thread; dropping this syncs what is queued, then ends it.
#[derive(Debug)]
pub struct WalSync {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct Queue {
    /// Members of committed groups, oldest first.
    acks: Vec<Ack>,
    closed: bool,
}

impl WalSync {
    /// Starts the thread syncing `wal`, the WAL file of the database.
    pub fn start(wal: PathBuf) -> std::io::Result<WalSync> {
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("twofactor-walsync".into())
            .spawn({
                let shared = shared.clone();
                move || run(&shared, &wal)
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

fn run(shared: &Shared, wal: &Path) {
    // After a failed fsync the kernel may have dropped pages of the WAL and
    // still report later fsyncs as fine, while recovery would stop at the
    // hole: nothing is acknowledged any more (a restart recovers from what
    // is on disk).
    let mut failed = false;
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
            std::mem::take(&mut queue.acks)
        };
        let synced = !failed && sync(wal);
        failed |= !synced;
        for ack in acks {
            let _ = ack.send(synced);
        }
    }
}

/// fdatasync of the WAL file, through a descriptor of our own: any
/// descriptor of a file flushes all of its written pages.
fn sync(wal: &Path) -> bool {
    match File::open(wal).and_then(|file| file.sync_data()) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(
                error = %e,
                "syncing the WAL failed: no write is acknowledged until the service restarts"
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acks(n: usize) -> (Vec<Ack>, Vec<oneshot::Receiver<bool>>) {
        (0..n).map(|_| oneshot::channel()).unzip()
    }

    #[test]
    fn every_member_of_a_synced_group_is_told_it_is_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("db-wal");
        std::fs::write(&wal, b"frames").unwrap();
        let sync = WalSync::start(wal).unwrap();
        let (first, first_rx) = acks(3);
        let (second, second_rx) = acks(2);
        sync.acknowledge(first);
        sync.acknowledge(second);
        for rx in first_rx.into_iter().chain(second_rx) {
            assert_eq!(rx.blocking_recv(), Ok(true));
        }
    }

    #[test]
    fn after_a_failed_fsync_nothing_is_acknowledged_any_more() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("db-wal");
        // No such file: the sync fails.
        let sync = WalSync::start(wal.clone()).unwrap();
        let (group, rx) = acks(2);
        sync.acknowledge(group);
        for rx in rx {
            assert_eq!(rx.blocking_recv(), Ok(false));
        }
        // The file exists now, but pages may have been lost before.
        std::fs::write(&wal, b"frames").unwrap();
        let (group, rx) = acks(1);
        sync.acknowledge(group);
        assert_eq!(rx.into_iter().next().unwrap().blocking_recv(), Ok(false));
    }

    #[test]
    fn dropping_it_still_answers_what_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("db-wal");
        std::fs::write(&wal, b"frames").unwrap();
        let sync = WalSync::start(wal).unwrap();
        let (group, rx) = acks(4);
        sync.acknowledge(group);
        drop(sync);
        for mut rx in rx {
            assert_eq!(rx.try_recv(), Ok(true));
        }
    }
}
