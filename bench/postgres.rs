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
    // Loaded only on a cluster started with it (`pg.rs`); absent, [`stats`]
    // says so.
    let _ = sqlx::Executor::execute(
        &mut conn,
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()",
    )
    .await;
    let (lsn,): (String,) = sqlx::query_as("SELECT pg_current_wal_lsn()::TEXT")
        .fetch_one(&mut conn)
        .await
        .context("reading the WAL position")?;
    Ok(lsn)
}

/// After the rounds, what PostgreSQL did per table (rows written, updates
/// kept on their page (HOT), index scans), the WAL written since it
/// started (its syncs and their time, and by kind of record when
/// `pg_walinspect` is installed) and the costliest statements (when
/// `pg_stat_statements` is loaded): what a change to the login's writes
/// should move.
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
    let wal: (i64, i64, String, i64, i64, f64) = sqlx::query_as(
        "SELECT wal_records, wal_fpi, wal_bytes::TEXT, wal_write, wal_sync, wal_sync_time \
         FROM pg_stat_wal",
    )
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
    // The sync time is counted on a cluster started with
    // `track_wal_io_timing` (bench/run's is).
    text += &format!(
        "wal writes {} syncs {} sync ms {:.0}\n",
        wal.3, wal.4, wal.5
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
    text += &statements(&mut conn).await;
    std::fs::write(out, text).context("writing the PostgreSQL statistics")
}

/// The statements that took PostgreSQL the most time (`pg_stat_statements`):
/// calls, plans made, rows, mean planning and execution time, the
/// statement's start.
async fn statements(conn: &mut sqlx::PgConnection) -> String {
    /// calls, plans, rows, mean plan ms, mean exec ms, text.
    type Timed = (i64, i64, i64, f64, f64, String);
    let rows: Result<Vec<Timed>, _> = sqlx::query_as(
        "SELECT calls, plans, rows, mean_plan_time, mean_exec_time, \
         left(regexp_replace(query, '\\s+', ' ', 'g'), 90) FROM pg_stat_statements \
         ORDER BY total_plan_time + total_exec_time DESC LIMIT 12",
    )
    .fetch_all(conn)
    .await;
    match rows {
        Ok(rows) => {
            let mut text =
                String::from("statement calls, plans, rows, mean plan µs, mean exec µs, start\n");
            for (calls, plans, n, plan, exec, query) in rows {
                text += &format!(
                    "{calls} {plans} {n} {:.0} {:.0} {query}\n",
                    plan * 1000.0,
                    exec * 1000.0
                );
            }
            text
        }
        Err(e) => format!("no statement times: {e}\n"),
    }
}
