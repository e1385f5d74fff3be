//! Purging expired rows from the two token tables, `sessions` and
//! `mfa_challenges`, without an index on their expiry (migration 0007).
//!
//! Both are keyed by a token's key, which begins with the time the token
//! was issued ([`crate::auth::tokens`]): walking the primary key in order
//! meets tokens oldest first. Every token of a table gets the same
//! lifetime (the configured TTL), so the expired ones are the first keys,
//! up to the first token still alive. Finding that token reads the expired
//! rows in front of it and itself, and deleting everything before it that
//! has expired is one range of the primary key. A longer lifetime
//! configured earlier can leave a live token in front of expired ones; they
//! then wait for it to expire before they go (lookups check the expiry, so
//! they are dead all the same).
//!
//! Tokens of the older layout were stored by their bare SHA-256 (32 bytes,
//! in random places of the key order). A partial index holds only those
//! (`…_legacy_by_expiry`), so they are purged through it, and no new token
//! is ever written to it.

use super::sql::{Executor, query};

/// The statements that purge one token table.
pub struct TokenTable {
    /// The key of the oldest token alive at `$1`.
    pub first_alive: &'static str,
    /// Deletes what expired by `$2` before key `$1`.
    pub expired_before: &'static str,
    /// Deletes what expired by `$1` (when no token is alive).
    pub expired: &'static str,
    /// Deletes legacy tokens that expired by `$1`.
    pub legacy_expired: &'static str,
}

/// The [`TokenTable`] of table `$table` (a string literal).
macro_rules! token_table {
    ($table:literal) => {
        $crate::db::expired::TokenTable {
            first_alive: concat!(
                "SELECT token_hash FROM ",
                $table,
                " WHERE expires_at > $1 ORDER BY token_hash LIMIT 1"
            ),
            expired_before: concat!(
                "DELETE FROM ",
                $table,
                " WHERE token_hash < $1 AND expires_at <= $2"
            ),
            expired: concat!("DELETE FROM ", $table, " WHERE expires_at <= $1"),
            legacy_expired: concat!(
                "DELETE FROM ",
                $table,
                " WHERE length(token_hash) = 32 AND expires_at <= $1"
            ),
        }
    };
}
pub(crate) use token_table;

/// Deletes the tokens of `table` that expired by `now`; how many.
pub async fn purge<'e>(
    ex: impl Executor<'e>,
    table: &TokenTable,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let mut ex = ex.into_ex();
    let first_alive = query(table.first_alive)
        .bind(now)
        .fetch_optional(ex.reborrow())
        .await?
        .map(|row| row.try_get::<Vec<u8>>(0))
        .transpose()?;
    let current = match &first_alive {
        Some(key) => {
            query(table.expired_before)
                .bind(key)
                .bind(now)
                .execute(ex.reborrow())
                .await?
        }
        None => {
            query(table.expired)
                .bind(now)
                .execute(ex.reborrow())
                .await?
        }
    };
    let legacy = query(table.legacy_expired).bind(now).execute(ex).await?;
    Ok(current.rows_affected() + legacy.rows_affected())
}
