//! The `throttles` table: consecutive failures and lock expiry per
//! (case-folded username, factor). Counting happens inside the transaction
//! that settles an attempt, so concurrent guesses cannot slip past the limit.

use super::Conn;
use super::sql::{Executor, query};

use crate::auth::lockout::Factor;

/// A counter's state.
#[derive(Clone, Copy, Debug, Default)]
pub struct State {
    /// Consecutive counted failures.
    pub failures: i64,
    /// Unix time the current lock ends (0 or past: not locked).
    pub locked_until: i64,
}

/// Reads a counter (absent = zero).
pub async fn get<'e>(
    ex: impl Executor<'e>,
    subject: &str,
    factor: Factor,
) -> Result<State, sqlx::Error> {
    let row =
        query("SELECT failures, locked_until FROM throttles WHERE subject = $1 AND factor = $2")
            .bind(subject)
            .bind(factor.as_str())
            .fetch_optional(ex)
            .await?;
    Ok(match row {
        Some(r) => State {
            failures: r.try_get(0)?,
            locked_until: r.try_get(1)?,
        },
        None => State::default(),
    })
}

/// Counts one failure and returns the new state. The row is written (and on
/// PostgreSQL locked) first, so the caller's transaction sees a settled count.
pub async fn count_failure(
    conn: &mut Conn,
    subject: &str,
    factor: Factor,
    now: i64,
) -> Result<State, sqlx::Error> {
    let r = query(
        "INSERT INTO throttles (subject, factor, failures, locked_until, updated_at) \
         VALUES ($1, $2, 1, 0, $3) \
         ON CONFLICT (subject, factor) DO UPDATE \
         SET failures = throttles.failures + 1, updated_at = $3 \
         RETURNING failures, locked_until",
    )
    .bind(subject)
    .bind(factor.as_str())
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(State {
        failures: r.try_get(0)?,
        locked_until: r.try_get(1)?,
    })
}

/// Sets the lock expiry of a counter.
pub async fn lock(
    conn: &mut Conn,
    subject: &str,
    factor: Factor,
    until: i64,
) -> Result<(), sqlx::Error> {
    query("UPDATE throttles SET locked_until = $1 WHERE subject = $2 AND factor = $3")
        .bind(until)
        .bind(subject)
        .bind(factor.as_str())
        .execute(conn)
        .await
        .map(|_| ())
}

/// After a success: zeroes the failures of a counter unless it is locked,
/// and returns its lock expiry (`None`: no counter). One statement, which
/// on PostgreSQL also waits for and then holds the counter's row lock, so a
/// lock set by a concurrent failure is seen.
pub async fn clear(
    conn: &mut Conn,
    subject: &str,
    factor: Factor,
    now: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let row = query(
        "UPDATE throttles \
         SET failures = CASE WHEN locked_until > $3 THEN failures ELSE 0 END, \
             updated_at = CASE WHEN locked_until > $3 THEN updated_at ELSE $3 END \
         WHERE subject = $1 AND factor = $2 \
         RETURNING locked_until",
    )
    .bind(subject)
    .bind(factor.as_str())
    .bind(now)
    .fetch_optional(conn)
    .await?;
    row.map(|r| r.try_get(0)).transpose()
}

/// Forgets a counter (after a success).
pub async fn reset<'e>(
    ex: impl Executor<'e>,
    subject: &str,
    factor: Factor,
) -> Result<(), sqlx::Error> {
    query("DELETE FROM throttles WHERE subject = $1 AND factor = $2")
        .bind(subject)
        .bind(factor.as_str())
        .execute(ex)
        .await
        .map(|_| ())
}

/// Forgets counters untouched since `before` whose lock has ended, so
/// guesses at unknown usernames don't accumulate rows forever.
pub async fn purge_stale<'e>(
    ex: impl Executor<'e>,
    before: i64,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let done = query("DELETE FROM throttles WHERE updated_at < $1 AND locked_until <= $2")
        .bind(before)
        .bind(now)
        .execute(ex)
        .await?;
    Ok(done.rows_affected())
}
