//! The database connections a statement outside a transaction borrows: on
//! PostgreSQL they are parked between statements instead of going back to
//! sqlx's pool (`src/db/parked.rs`); transactions must still get theirs, and
//! a statement abandoned half-way must not leave a connection that answers
//! the next one wrongly or never comes back.

use std::time::Duration;

use reqwest::StatusCode;
use twofactor::db::sql::query;
use twofactor::db::{Db, PoolSettings};

use super::backend::{self, Backend};
use super::helpers::{PASSWORD, assert_ok_json, spawn_app, spawn_app_with};

async fn small_db(database_url: &str, max_connections: u32) -> Db {
    let settings = PoolSettings {
        max_connections,
        acquire_timeout: Duration::from_secs(5),
    };
    Db::connect(database_url, settings)
        .await
        .expect("database opens")
}

/// A one-statement read through the parked connections.
async fn read_number(db: &Db, n: i64) -> i64 {
    query("SELECT CAST($1 AS BIGINT)")
        .bind(n)
        .fetch_one(db.reader())
        .await
        .expect("the read succeeds")
        .try_get(0)
        .unwrap()
}

#[tokio::test]
async fn a_pool_of_one_connection_serves_reads_and_transactions_alike() {
    let Some(app) = spawn_app_with(&["--db-max-connections", "1"]).await else {
        return;
    };
    let e = app.signup_mfa("alice", PASSWORD).await;
    app.align_to_step_start();
    for _ in 0..3 {
        let bearer = app.full_login("alice", PASSWORD, &e.secret).await;
        assert_ok_json(app.me(&bearer).await).await;
        assert_eq!(app.logout(&bearer).await.status(), StatusCode::NO_CONTENT);
        assert_eq!(app.me(&bearer).await.status(), StatusCode::UNAUTHORIZED);
        app.advance(30);
    }
}

#[tokio::test]
async fn statements_abandoned_half_way_leave_every_connection_usable() {
    let Some(app) = spawn_app().await else { return };
    // Two connections: one may be parked, one is kept for transactions.
    let db = small_db(&app.database_url, 2).await;
    for i in 0..200 {
        // Polled once (the statement is sent), then dropped unanswered.
        let _ = tokio::time::timeout(Duration::ZERO, read_number(&db, i)).await;
        if i % 20 == 0 {
            assert_eq!(read_number(&db, i).await, i, "each answer is its own");
        }
    }
    for i in 0..50 {
        assert_eq!(read_number(&db, 1000 + i).await, 1000 + i);
    }
    // Transactions still get a connection: none was lost.
    for _ in 0..3 {
        let mut tx = db.begin_write().await.expect("a transaction starts");
        query("SELECT 1").execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn a_parked_connection_cut_while_idle_is_replaced_before_the_next_read() {
    if backend::current() != Backend::Postgres {
        return;
    }
    let Some(app) = spawn_app().await else { return };
    let db = small_db(&app.database_url, 4).await;
    // Three reads at once: three connections used, then parked.
    let reads = tokio::join!(
        read_number(&db, 1),
        read_number(&db, 2),
        read_number(&db, 3)
    );
    assert_eq!(reads, (1, 2, 3));
    // Every other connection to the database is cut, as by a restart of
    // PostgreSQL or a firewall dropping idle connections.
    let other = small_db(&app.database_url, 2).await;
    query(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(other.reader())
    .await
    .expect("the other connections are cut");
    // Idle past the staleness threshold (1 s), the parked connections are
    // each checked before use; the dead ones are replaced.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    for i in 0..5 {
        assert_eq!(read_number(&db, 10 + i).await, 10 + i);
    }
}
