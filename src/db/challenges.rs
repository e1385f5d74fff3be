//! The `mfa_challenges` table: the `mfa_token`s handed out by /login when a
//! second factor is due, by key ([`crate::auth::tokens`]), bound to their user, spent
//! once.

use super::Conn;
use super::expired::{self, TokenTable};
use super::sql::{Ex, Executor, query};
use crate::auth::tokens::TokenKey;

/// Stores a new challenge under `key` ([`crate::auth::tokens::Issued::key`])
/// for `user_id`, whose case-folded username is `username_key`.
pub async fn insert<'e>(
    ex: impl Executor<'e>,
    key: &[u8],
    user_id: i64,
    username_key: &str,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    query(
        "INSERT INTO mfa_challenges (token_hash, user_id, username_key, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(key)
    .bind(user_id)
    .bind(username_key)
    .bind(expires_at)
    .execute(ex)
    .await
    .map(|_| ())
}

/// The user an unexpired challenge belongs to, if that user is the one
/// named `username_key` (one read for /login-2fa's two checks: the
/// challenge keeps the name it was issued for).
pub async fn find_for<'e>(
    ex: impl Executor<'e>,
    token: &TokenKey,
    username_key: &str,
    now: i64,
) -> Result<Option<i64>, sqlx::Error> {
    // The legacy key only when the current one finds nothing (see tokens).
    let mut ex = ex.into_ex();
    match find_by_key(ex.reborrow(), token.key(), username_key, now).await? {
        None => find_by_key(ex, token.legacy(), username_key, now).await,
        found => Ok(found),
    }
}

async fn find_by_key(
    ex: Ex<'_>,
    key: &[u8],
    username_key: &str,
    now: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let row = query(
        "SELECT user_id FROM mfa_challenges \
         WHERE token_hash = $1 AND expires_at > $2 AND username_key = $3",
    )
    .bind(key)
    .bind(now)
    .bind(username_key)
    .fetch_optional(ex)
    .await?;
    row.map(|r| r.try_get(0)).transpose()
}

/// Spends a challenge; false if it is gone, expired or someone else's.
pub async fn spend(
    conn: &mut Conn,
    token: &TokenKey,
    user_id: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    Ok(spend_by_key(conn, token.key(), user_id, now).await?
        || spend_by_key(conn, token.legacy(), user_id, now).await?)
}

async fn spend_by_key(
    conn: &mut Conn,
    key: &[u8],
    user_id: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = query(
        "DELETE FROM mfa_challenges WHERE token_hash = $1 AND user_id = $2 AND expires_at > $3",
    )
    .bind(key)
    .bind(user_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How [`purge_expired`] finds expired challenges ([`super::expired`]).
const EXPIRED: TokenTable = expired::token_table!("mfa_challenges");

/// Removes expired challenges.
pub async fn purge_expired<'e>(ex: impl Executor<'e>, now: i64) -> Result<u64, sqlx::Error> {
    expired::purge(ex, &EXPIRED, now).await
}
