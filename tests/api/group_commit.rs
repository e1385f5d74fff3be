//! Write transactions as the `db` layer hands them out (on SQLite, group
//! commit: savepoints sharing one COMMIT), opened directly on a test
//! database beside the running server.

use twofactor::db::{Db, users};

use super::helpers::{open_db, spawn_app};

async fn exists(db: &Db, key: &str) -> bool {
    users::find_by_key(db.reader(), key)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transactions_commit_or_roll_back_each_on_its_own() {
    let Some(app) = spawn_app().await else { return };
    let db = open_db(&app.database_url).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..90 {
        let db = db.clone();
        tasks.spawn(async move {
            let key = format!("group_{i}");
            let mut tx = db.begin_write().await.unwrap();
            users::insert(&mut tx, &key, &key, "x", 0).await.unwrap();
            match i % 3 {
                // Committed: must be there afterwards.
                0 => tx.commit().await.unwrap(),
                // Dropped: rolled back to its savepoint.
                1 => drop(tx),
                // Failed on a unique constraint, then dropped.
                _ => {
                    let again = users::insert(&mut tx, &key, &key, "x", 0).await;
                    assert!(again.is_err(), "the duplicate is refused");
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    for i in 0..90 {
        let key = format!("group_{i}");
        assert_eq!(exists(&db, &key).await, i % 3 == 0, "{key}");
    }
}

#[tokio::test]
async fn a_transaction_cancelled_while_waiting_does_not_leave_a_commit_hanging() {
    let Some(app) = spawn_app().await else { return };
    let db = open_db(&app.database_url).await;
    // The runtime has one thread, so how many times this task yields decides
    // where the waiter is when it is cancelled: still queued after the first
    // left the COMMIT to it, or already holding the connection.
    for yields in 0..8 {
        let key = format!("first_{yields}");
        let mut first = db.begin_write().await.unwrap();
        users::insert(&mut first, &key, &key, "x", 0).await.unwrap();
        let waiter = {
            let db = db.clone();
            tokio::spawn(async move { db.begin_write().await.map(drop) })
        };
        tokio::task::yield_now().await;
        let commit = tokio::spawn(first.commit());
        for _ in 0..yields {
            tokio::task::yield_now().await;
        }
        waiter.abort();
        let committed = tokio::time::timeout(std::time::Duration::from_secs(10), commit).await;
        committed
            .unwrap_or_else(|_| panic!("the commit returns ({yields} yields)"))
            .unwrap()
            .expect("and succeeds");
        assert!(exists(&db, &key).await);
    }
    // The writer is free again.
    let mut next = db.begin_write().await.unwrap();
    users::insert(&mut next, "next", "next", "x", 0)
        .await
        .unwrap();
    next.commit().await.unwrap();
    assert!(exists(&db, "next").await);
}

/// The SQLite file behind `app`, or `None` on PostgreSQL.
fn sqlite_path(app: &super::helpers::TestApp) -> Option<std::path::PathBuf> {
    match twofactor::db::Target::parse(&app.database_url).unwrap() {
        twofactor::db::Target::Sqlite(path) => Some(path),
        twofactor::db::Target::Postgres(_) => None,
    }
}

#[tokio::test]
async fn a_write_waiting_for_another_process_s_lock_leaves_the_runtime_free() {
    let Some(app) = spawn_app().await else { return };
    let Some(path) = sqlite_path(&app) else {
        return;
    };
    let db = open_db(&app.database_url).await;
    // Another process (an operator command, a sqlite3 shell) holds the lock.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let write = {
        let db = db.clone();
        tokio::spawn(async move {
            let mut tx = db.begin_write().await?;
            users::insert(&mut tx, "late", "late", "x", 0).await?;
            tx.commit().await
        })
    };
    // This runtime has one thread: were the writer sleeping inside SQLite
    // for the lock, these reads could not run.
    for _ in 0..5 {
        assert!(!exists(&db, "late").await);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    if write.is_finished() {
        panic!("the write should wait for the lock: {:?}", write.await);
    }
    other.execute_batch("COMMIT").unwrap();
    write
        .await
        .unwrap()
        .expect("the write goes through once the lock is free");
    assert!(exists(&db, "late").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_steady_writes_the_wal_starts_over_instead_of_growing() {
    let Some(app) = spawn_app().await else { return };
    let Some(path) = sqlite_path(&app) else {
        return;
    };
    let db = open_db(&app.database_url).await;
    let write = |key: String| {
        let db = db.clone();
        async move {
            let mut tx = db.begin_write().await.unwrap();
            users::insert(&mut tx, &key, &key, "x", 0).await.unwrap();
            tx.commit().await.unwrap();
        }
    };
    // Commits without a pause, through the service's own Db (checkpoint
    // thread and writer both at work; the writer's part alone is tested in
    // db::writer). SQLite bumps the checkpoint sequence number in the WAL's
    // header (bytes 12..16) each time it starts the WAL over, so counting
    // its values counts the restarts. (The file's size says less: it never
    // shrinks, and how many frames fill half a second varies with the
    // machine's speed, which made an earlier size-based check flaky.)
    let wal_restarts = || -> u32 {
        use std::io::Read;
        let mut header = [0u8; 16];
        std::fs::File::open(format!("{}-wal", path.display()))
            .and_then(|mut wal| wal.read_exact(&mut header))
            .map_or(0, |()| {
                u32::from_be_bytes(header[12..16].try_into().unwrap())
            })
    };
    let mut n = 0;
    let mut seen = std::collections::BTreeSet::new();
    let mut in_flight = tokio::task::JoinSet::new();
    let started = std::time::Instant::now();
    // Until the WAL has started over twice, or a deadline generous for a
    // loaded machine (a working writer takes about 2 s at most).
    while seen.len() < 3 && started.elapsed() < std::time::Duration::from_secs(8) {
        // 32 writes in flight at all times.
        while in_flight.len() < 32 {
            n += 1;
            in_flight.spawn(write(format!("steady_{n}")));
        }
        in_flight.join_next().await.unwrap().unwrap();
        seen.insert(wal_restarts());
    }
    in_flight.join_all().await;
    assert!(exists(&db, &format!("steady_{n}")).await);
    // The writer finishes the copy at least every 2 s (every 0.5 s when it
    // can do so cheaply), and the next write starts the WAL over.
    assert!(
        seen.len() >= 3,
        "over 8 s of steady writes ({n} transactions) the WAL started over only {} time(s)",
        seen.len().saturating_sub(1)
    );
    // Let the writer's interval pass, then a few single commits: after one
    // of them the writer finishes the copy (retrying if the thread was
    // checkpointing), and the next one starts the WAL over.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    for i in 0..5 {
        write(format!("after_{i}")).await;
    }
    // Frames now in the WAL, read once no other checkpoint is running (a
    // busy answer carries no count): had the WAL never started over, every
    // frame of the n transactions above would still be there.
    let probe = rusqlite::Connection::open(&path).unwrap();
    let log = loop {
        let (busy, log): (i64, i64) = probe
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        if busy == 0 {
            break log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert!(
        (0..100).contains(&log),
        "{log} frames in the WAL after {n} transactions and 5 more: it never started over"
    );
}

#[tokio::test]
async fn postgres_connections_never_jit_compile_the_short_statements() {
    let Some(app) = spawn_app().await else { return };
    if sqlite_path(&app).is_some() {
        return;
    }
    let db = open_db(&app.database_url).await;
    // A pooled connection, whichever the pool hands out.
    for _ in 0..3 {
        let row = twofactor::db::sql::query("SHOW jit")
            .fetch_one(db.reader())
            .await
            .unwrap();
        assert_eq!(row.try_get::<String>(0).unwrap(), "off");
    }
}
