//! The `sessions` table: bearer tokens by hash, with expiry.

use sqlx::{Any, AnyConnection, Executor, Row};

/// Who a live session belongs to.
pub struct SessionUser {
    /// Owner's id.
    pub user_id: i64,
    /// Owner's username as registered.
    pub username: String,
    /// Whether the owner has a TOTP credential.
    pub mfa_enabled: bool,
}

/// Stores a new session.
pub async fn insert(
    conn: &mut AnyConnection,
    token_hash: &[u8],
    user_id: i64,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await
    .map(|_| ())
}

/// The owner of an unexpired session.
pub async fn find<'e>(
    ex: impl Executor<'e, Database = Any>,
    token_hash: &[u8],
    now: i64,
) -> Result<Option<SessionUser>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT u.id, u.username, c.id \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         LEFT JOIN totp_credentials c ON c.user_id = u.id \
         WHERE s.token_hash = $1 AND s.expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(ex)
    .await?;
    row.map(|r| {
        Ok(SessionUser {
            user_id: r.try_get(0)?,
            username: r.try_get(1)?,
            mfa_enabled: r.try_get::<Option<i64>, _>(2)?.is_some(),
        })
    })
    .transpose()
}

/// Ends an unexpired session; false if there was none.
pub async fn delete<'e>(
    ex: impl Executor<'e, Database = Any>,
    token_hash: &[u8],
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1 AND expires_at > $2")
        .bind(token_hash)
        .bind(now)
        .execute(ex)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Removes expired sessions.
pub async fn purge_expired<'e>(
    ex: impl Executor<'e, Database = Any>,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(ex)
        .await?;
    Ok(done.rows_affected())
}
