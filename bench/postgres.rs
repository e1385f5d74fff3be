//! The bench's side of PostgreSQL: the settling after the seeding, and the
//! statistics read after the rounds (what PostgreSQL wrote, and how).

use std::path::Path;

use anyhow::Context;

/// After the bulk load, what a database in service has: planner statistics
/// and no checkpoint of the load still pending. Without this, PostgreSQL's
/// /login-2fa figure swung between 0.1k/s (p99 1 s) and 1.6k/s from run to
/// run.
/// Returns the WAL position then, where [`stats`] starts.
pub async fn settle(url: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::Executor::execute(&mut conn, "ANALYZE")
        .await
        .context("ANALYZE")?;
    sqlx::Executor::execute(&mut conn, "CHECKPOINT")
        .await
        .context("CHECKPOINT")?;
    // The statistics [`stats`] reads then count the rounds alone.
    sqlx::Executor::execute(
        &mut conn,
        "SELECT pg_stat_reset(), pg_stat_reset_shared('wal')",
    )
    .await
    .context("resetting the statistics")?;
    let (lsn,): (String,) = sqlx::query_as("SELECT pg_current_wal_lsn()::TEXT")
        .fetch_one(&mut conn)
        .await
        .context("reading the WAL position")?;
    Ok(lsn)
}

/// After the rounds, what PostgreSQL did per table (rows written, updates
/// kept on their page (HOT), index scans) and the WAL written since it
/// started, by kind of record (when `pg_walinspect` is installed): what a
/// change to the login's writes should move.
pub async fn stats(url: &str, wal_start: &str, out: &Path) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    let tables: Vec<(String, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT relname::TEXT, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, \
         COALESCE(idx_scan, 0) FROM pg_stat_user_tables ORDER BY relname",
    )
    .fetch_all(&mut conn)
    .await
    .context("reading pg_stat_user_tables")?;
    let wal: (i64, i64, String) =
        sqlx::query_as("SELECT wal_records, wal_fpi, wal_bytes::TEXT FROM pg_stat_wal")
            .fetch_one(&mut conn)
            .await
            .context("reading pg_stat_wal")?;
    let mut text = String::from("table inserted updated hot_updated deleted index_scans\n");
    for (name, ins, upd, hot, del, scans) in tables {
        text += &format!("{name} {ins} {upd} {hot} {del} {scans}\n");
    }
    text += &format!(
        "wal records {} full-page images {} bytes {}\n",
        wal.0, wal.1, wal.2
    );
    let kinds: Result<Vec<(String, i64, i64, i64)>, _> = async {
        sqlx::Executor::execute(&mut conn, "CREATE EXTENSION IF NOT EXISTS pg_walinspect").await?;
        sqlx::query_as(
            "SELECT \"resource_manager/record_type\", count, fpi_size, \
             combined_size FROM pg_get_wal_stats($1::TEXT::pg_lsn, \
             pg_current_wal_lsn(), true) WHERE count > 0 ORDER BY 4 DESC",
        )
        .bind(wal_start)
        .fetch_all(&mut conn)
        .await
    }
    .await;
    match kinds {
        Ok(kinds) => {
            text += "wal record kind, count, full-page image bytes, bytes\n";
            for (kind, count, fpi, bytes) in kinds {
                text += &format!("{kind} {count} {fpi} {bytes}\n");
            }
        }
        Err(e) => text += &format!("no WAL by kind: {e}\n"),
    }
    std::fs::write(out, text).context("writing the PostgreSQL statistics")
}
