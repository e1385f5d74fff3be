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

/// A group over a fresh database with one table, `t (x)`.
fn fresh(dir: &tempfile::TempDir) -> Arc<Group> {
    let path = dir.path().join("db.sqlite");
    let conn = lite::open(&path, Role::Writer).unwrap();
    conn.execute_batch("CREATE TABLE t (x INTEGER NOT NULL)")
        .unwrap();
    Group::with(Checkpointer::idle(), path, conn).unwrap()
}

fn rows(dir: &tempfile::TempDir) -> BTreeSet<i64> {
    let conn = lite::open(&dir.path().join("db.sqlite"), Role::Reader).unwrap();
    let mut stmt = conn.prepare("SELECT x FROM t").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Inserts `x` in a queued transaction, which then fails if `x` is odd.
async fn insert(group: Arc<Group>, x: i64) -> Result<i64, sqlx::Error> {
    Group::transact(
        &group,
        Box::new(move |conn| {
            Box::pin(async move {
                crate::db::sql::query("INSERT INTO t (x) VALUES ($1)")
                    .bind(x)
                    .execute(conn)
                    .await?;
                if x % 2 == 1 {
                    return Err(sqlx::Error::RowNotFound);
                }
                Ok(x)
            })
        }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_transactions_commit_together_and_a_failed_one_rolls_back_alone() {
    let dir = tempfile::tempdir().unwrap();
    let group = fresh(&dir);
    let mut tasks = tokio::task::JoinSet::new();
    for x in 0..400 {
        tasks.spawn(insert(group.clone(), x));
        // Some of them through the other door, holding the connection.
        if x % 50 == 0 {
            let group = group.clone();
            tasks.spawn(async move {
                let mut held = Group::begin(&group).await?;
                held.conn()
                    .execute("INSERT INTO t (x) VALUES (?1)", [1000 + x])
                    .unwrap();
                held.commit().await.map(|()| 1000 + x)
            });
        }
    }
    let mut answered = BTreeSet::new();
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            Ok(x) => assert!(answered.insert(x)),
            Err(e) => assert!(matches!(e, sqlx::Error::RowNotFound), "{e}"),
        }
    }
    let even: BTreeSet<i64> = (0..400)
        .step_by(2)
        .chain((1000..1400).step_by(50))
        .collect();
    assert_eq!(answered, even);
    // Every acknowledged row is there, and no rolled-back one.
    assert_eq!(rows(&dir), even);
}

#[tokio::test]
async fn a_queued_transaction_that_panics_or_waits_is_rolled_back_alone() {
    let dir = tempfile::tempdir().unwrap();
    let group = fresh(&dir);
    let panics = Group::transact::<(), sqlx::Error>(
        &group,
        Box::new(|conn| {
            Box::pin(async move {
                crate::db::sql::query("INSERT INTO t (x) VALUES (1)")
                    .execute(conn)
                    .await?;
                panic!("a bug in a transaction");
            })
        }),
    );
    assert!(panics.await.is_err());
    let waits = Group::transact::<(), sqlx::Error>(
        &group,
        Box::new(|conn| {
            Box::pin(async move {
                crate::db::sql::query("INSERT INTO t (x) VALUES (3)")
                    .execute(conn)
                    .await?;
                // Suspends: the writer would be held across it.
                tokio::task::yield_now().await;
                Ok(())
            })
        }),
    );
    assert!(waits.await.is_err());
    assert_eq!(insert(group.clone(), 2).await.unwrap(), 2);
    assert_eq!(rows(&dir), BTreeSet::from([2]));
}

#[tokio::test]
async fn a_queued_transaction_waits_for_another_process_s_lock_without_holding_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let group = fresh(&dir);
    let other = rusqlite::Connection::open(dir.path().join("db.sqlite")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let write = tokio::spawn(insert(group.clone(), 4));
    // One runtime thread: this sleep could not end if the writer slept
    // inside SQLite for the lock.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!write.is_finished());
    other.execute_batch("COMMIT").unwrap();
    assert_eq!(write.await.unwrap().unwrap(), 4);
    assert_eq!(rows(&dir), BTreeSet::from([4]));
}
