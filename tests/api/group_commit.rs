//! Write transactions as the `db` layer hands them out (on SQLite, group
//! commit: savepoints sharing one COMMIT), opened directly on a test
//! database beside the running server.

use twofactor::db::{Db, PoolSettings, users};

use super::helpers::spawn_app;

async fn open(database_url: &str) -> Db {
    let settings = PoolSettings {
        max_connections: 8,
        acquire_timeout: std::time::Duration::from_secs(10),
    };
    Db::connect(database_url, settings)
        .await
        .expect("database opens")
}

async fn exists(db: &Db, key: &str) -> bool {
    users::find_by_key(db.reader(), key)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transactions_commit_or_roll_back_each_on_its_own() {
    let Some(app) = spawn_app().await else { return };
    let db = open(&app.database_url).await;
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
    let db = open(&app.database_url).await;
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
