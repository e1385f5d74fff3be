//! Unit tests of the SQLite writer: group commit, combining, checkpoints.

use std::collections::BTreeSet;

use std::sync::Arc;
use std::time::Instant;

use super::group::{Group, WRITER_CHECKPOINT_LATEST};
use crate::db::checkpoint::Checkpointer;
use crate::db::lite::{self, Role};

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
    let group = Group::with(Checkpointer::idle(), path.clone(), conn).unwrap();
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
