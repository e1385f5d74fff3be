//! The database connections a statement outside a transaction borrows: on
//! PostgreSQL they are parked between statements instead of going back to
//! sqlx's pool (`src/db/parked.rs`); transactions must still get theirs, and
//! a statement abandoned half-way must not leave a connection that answers
//! the next one wrongly or never comes back.

use std::time::Duration;

use reqwest::StatusCode;
use twofactor::db::batch::Statement;
use twofactor::db::challenge_reads::ReadChallenges;
use twofactor::db::login_write::WriteLogins;
use twofactor::db::session_reads::FindLive;
use twofactor::db::sql::query;
use twofactor::db::{Db, PoolSettings};

use super::backend::{self, Backend};
use super::helpers::{PASSWORD, TestApp, assert_ok_json, spawn_app, spawn_app_on, spawn_app_with};
use super::pg;

async fn small_db(database_url: &str, max_connections: u32) -> Db {
    let settings = PoolSettings {
        max_connections,
        acquire_timeout: Duration::from_secs(5),
    };
    Db::connect(database_url, settings)
        .await
        .expect("database opens")
}

/// On PostgreSQL only: a server on a fresh database, and the service's own
/// `db` layer opened beside it with `max_connections`.
async fn postgres_app_and_db(max_connections: u32) -> Option<(TestApp, Db)> {
    if backend::current() != Backend::Postgres {
        return None;
    }
    let app = spawn_app().await?;
    let db = small_db(&app.database_url, max_connections).await;
    Some((app, db))
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

/// The number a one-row, one-column count returns.
async fn read_count(db: &Db, sql: &'static str) -> i64 {
    query(sql)
        .fetch_one(db.reader())
        .await
        .expect("the count succeeds")
        .try_get(0)
        .unwrap()
}

/// Cuts every connection to the database (as a restart of PostgreSQL or a
/// firewall dropping idle connections would), then waits past the
/// staleness threshold (1 s) after which a parked connection is checked
/// before use.
async fn cut_connections_and_wait_until_stale(database_url: &str) {
    let other = small_db(database_url, 2).await;
    query(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(other.reader())
    .await
    .expect("the other connections are cut");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
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
    let Some((app, db)) = postgres_app_and_db(4).await else {
        return;
    };
    // Three reads at once: three connections used, then parked.
    let reads = tokio::join!(
        read_number(&db, 1),
        read_number(&db, 2),
        read_number(&db, 3)
    );
    assert_eq!(reads, (1, 2, 3));
    cut_connections_and_wait_until_stale(&app.database_url).await;
    // The parked connections are each checked before use; the dead ones are
    // replaced.
    for i in 0..5 {
        assert_eq!(read_number(&db, 10 + i).await, 10 + i);
    }
}

/// Asserts that the connection the next read gets has run every batched
/// statement (`src/db/batch.rs`), as the service warms it, and returns its
/// backend's process id.
async fn assert_warmed(db: &Db) -> i64 {
    // That session's own prepared statements, each with how often it was
    // planned: running it, not only parsing it, is what warms the backend.
    let rows = query(
        "SELECT statement, CAST(generic_plans + custom_plans AS BIGINT), \
         CAST(pg_backend_pid() AS BIGINT) FROM pg_prepared_statements",
    )
    .fetch_all(db.reader())
    .await
    .expect("the prepared statements are listed");
    let planned: std::collections::HashMap<String, i64> = rows
        .iter()
        .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
        .collect();
    let kinds = [
        <FindLive as Statement>::statements(),
        <ReadChallenges as Statement>::statements(),
        <WriteLogins as Statement>::statements(),
    ];
    for statements in kinds {
        assert_eq!(statements.len(), 7, "batches of 1, 2, 4 … 64");
        for sql in statements {
            assert!(
                planned.get(sql).is_some_and(|&n| n >= 1),
                "not run on the connection before it was lent: {}…",
                &sql[..60]
            );
        }
    }
    rows[0].try_get(2).unwrap()
}

#[tokio::test]
async fn a_postgres_instance_starts_with_connections_that_have_run_each_batched_statement() {
    // Two connections: one for statements, warmed before `connect` returns.
    let Some((_app, db)) = postgres_app_and_db(2).await else {
        return;
    };
    assert_warmed(&db).await;
    // Padding only: the write statement wrote nothing.
    for count in [
        "SELECT COUNT(*) FROM sessions",
        "SELECT COUNT(*) FROM audit_events",
    ] {
        let n: i64 = query(count)
            .fetch_one(db.reader())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(n, 0, "{count}");
    }
}

#[tokio::test]
async fn a_postgres_connection_opened_later_runs_each_batched_statement_before_it_is_parked() {
    let Some((app, db)) = postgres_app_and_db(2).await else {
        return;
    };
    let first = assert_warmed(&db).await;
    // The next read finds the warmed connection dead and takes a new one
    // from sqlx's pool.
    cut_connections_and_wait_until_stale(&app.database_url).await;
    assert_eq!(read_number(&db, 7).await, 7);
    // The new connection was warmed after that read and before it was
    // parked; with one connection for statements, this read waits for it.
    let second = assert_warmed(&db).await;
    assert_ne!(first, second, "a new connection");
}

/// On PostgreSQL only: the shared cluster and the name of a new empty
/// database in it.
async fn new_postgres_database() -> Option<(&'static pg::PgCluster, String)> {
    if backend::current() != Backend::Postgres {
        return None;
    }
    let cluster = pg::shared()?;
    let name = cluster.new_database().await;
    Some((cluster, name))
}

/// A server on `database_url`, through which `username` signs up with MFA,
/// logs in with a code and reads /me.
async fn app_with_a_login(database_url: String, username: &str) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = spawn_app_on(dir, database_url, &[]).await;
    let enrollment = app.signup_mfa(username, PASSWORD).await;
    let token = app.full_login(username, PASSWORD, &enrollment.secret).await;
    assert_ok_json(app.me(&token).await).await;
    app
}

#[tokio::test]
async fn a_postgres_database_named_by_its_unix_socket_serves_a_login_with_a_code() {
    let Some((cluster, name)) = new_postgres_database().await else {
        return;
    };
    let _app = app_with_a_login(cluster.socket_url(&name), "socket_user").await;
    // The server's connections came through the socket: PostgreSQL shows
    // no client address for them.
    let db = small_db(&cluster.url(&name), 1).await;
    let local = read_count(
        &db,
        "SELECT COUNT(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND client_addr IS NULL",
    )
    .await;
    assert!(local >= 1, "{local} connections through the socket");
}

#[tokio::test]
async fn a_graceful_stop_says_goodbye_on_every_postgres_connection_of_the_instance() {
    let Some((cluster, name)) = new_postgres_database().await else {
        return;
    };
    // This database's sessions log a client gone without its goodbye (the
    // protocol's Terminate) at DEBUG1, a level no other test's logs at.
    cluster
        .admin(format!(
            "ALTER DATABASE {name} SET log_min_messages = 'debug1'"
        ))
        .await;
    const GONE: &str = "DEBUG:  unexpected EOF on client connection";
    let mut app = app_with_a_login(cluster.url(&name), "stopping_user").await;
    let db = small_db(&cluster.url(&name), 1).await;
    let others = "SELECT COUNT(*) FROM pg_stat_activity \
                  WHERE datname = current_database() AND pid <> pg_backend_pid()";
    assert!(
        read_count(&db, others).await >= 1,
        "the instance has connections"
    );
    app.stop().await;
    // Once every backend of the instance has ended...
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let open = read_count(&db, others).await;
        if open == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{open} connections left open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ... none of them saw its client vanish.
    let gone = cluster.log().matches(GONE).count();
    assert_eq!(gone, 0, "connections closed without a goodbye");
}
