//! The `sessions` table: bearer tokens by key ([`crate::auth::tokens`]), with expiry, an opaque
//! public id (what `GET /me/sessions` shows and `DELETE /me/sessions/{id}`
//! takes, never the token or its hash) and where they were opened from.

use super::Conn;
use super::expired::{self, TokenTable};
use super::sql::{Ex, Executor, Row, query};
use crate::auth::tokens::TokenKey;

/// Who a live session belongs to.
pub struct SessionUser {
    /// Owner's id.
    pub user_id: i64,
    /// Owner's username as registered.
    pub username: String,
    /// Whether the owner has a TOTP device that counts for login.
    pub mfa_enabled: bool,
    /// This session's public id.
    pub session_id: String,
    /// The owner's unused recovery codes.
    pub recovery_unused: i64,
}

/// A new session.
pub struct NewSession<'a> {
    /// The bearer token's key ([`crate::auth::tokens::Issued::key`]).
    pub key: &'a [u8],
    /// Random, shown to the user.
    pub public_id: &'a str,
    /// Owner.
    pub user_id: i64,
    /// Now.
    pub now: i64,
    /// End of life.
    pub expires_at: i64,
    /// The TCP peer that opened it.
    pub client_addr: Option<&'a str>,
    /// Its `User-Agent`.
    pub user_agent: Option<&'a str>,
}

/// A live session as its owner sees it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    /// Opaque id, for `DELETE /me/sessions/{id}`.
    pub id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// The client address that opened it.
    pub client_addr: Option<String>,
    /// The user agent that opened it.
    pub user_agent: Option<String>,
    /// Whether this is the session making the request.
    pub current: bool,
}

/// Stores a new session.
pub async fn insert(conn: &mut Conn, s: &NewSession<'_>) -> Result<(), sqlx::Error> {
    query(
        "INSERT INTO sessions \
         (token_hash, public_id, user_id, created_at, expires_at, client_addr, user_agent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(s.key)
    .bind(s.public_id)
    .bind(s.user_id)
    .bind(s.now)
    .bind(s.expires_at)
    .bind(s.client_addr)
    .bind(s.user_agent)
    .execute(conn)
    .await
    .map(|_| ())
}

/// The owner of an unexpired session.
pub async fn find<'e>(
    ex: impl Executor<'e>,
    token: &TokenKey,
    now: i64,
) -> Result<Option<SessionUser>, sqlx::Error> {
    // The legacy key only when the current one finds nothing (see tokens).
    let mut ex = ex.into_ex();
    match find_by_key(ex.reborrow(), token.key(), now).await? {
        None => find_by_key(ex, token.legacy(), now).await,
        found => Ok(found),
    }
}

/// The columns of a [`SessionUser`], over `sessions s JOIN users u`
/// ([`session_user`] reads them back); a macro, for `concat!`.
macro_rules! session_user_columns {
    () => {
        "u.id, u.username, \
         (SELECT COUNT(*) FROM totp_credentials c \
          WHERE c.user_id = u.id AND (c.confirmed_at IS NOT NULL OR c.is_default = 1)), \
         s.public_id, \
         (SELECT COUNT(*) FROM recovery_codes r \
          WHERE r.user_id = u.id AND r.used_at IS NULL)"
    };
}

/// [`session_user_columns`] for statements built at run time.
pub(super) const SESSION_USER_COLUMNS: &str = session_user_columns!();

/// The [`SessionUser`] in `row`'s columns from `first` on.
pub(super) fn session_user(row: &Row, first: usize) -> Result<SessionUser, sqlx::Error> {
    Ok(SessionUser {
        user_id: row.try_get(first)?,
        username: row.try_get(first + 1)?,
        mfa_enabled: row.try_get::<i64>(first + 2)? > 0,
        session_id: row.try_get(first + 3)?,
        recovery_unused: row.try_get(first + 4)?,
    })
}

async fn find_by_key(ex: Ex<'_>, key: &[u8], now: i64) -> Result<Option<SessionUser>, sqlx::Error> {
    let row = query(concat!(
        "SELECT ",
        session_user_columns!(),
        " FROM sessions s JOIN users u ON u.id = s.user_id \
          WHERE s.token_hash = $1 AND s.expires_at > $2"
    ))
    .bind(key)
    .bind(now)
    .fetch_optional(ex)
    .await?;
    row.map(|r| session_user(&r, 0)).transpose()
}

/// The live session of `token` at `now`, as [`find`] outside a
/// transaction; on PostgreSQL through the batched lookups
/// ([`super::session_reads`]).
pub async fn find_live(
    db: &super::Db,
    token: &TokenKey,
    now: i64,
) -> Result<Option<SessionUser>, sqlx::Error> {
    let Some(batched) = db.session_reads() else {
        return find(db.reader(), token, now).await;
    };
    // The legacy key only when the current one finds nothing (see tokens).
    match super::session_reads::find(batched, token.key(), now).await? {
        None => find_by_key(db.reader().into_ex(), token.legacy(), now).await,
        found => Ok(found),
    }
}

/// The unexpired sessions of `user_id`: the one with public id
/// `current_id` first (marked `current`), then newest first. Times have
/// one-second resolution, so "newest" alone would not be a stable order.
pub async fn list_for_user<'e>(
    ex: impl Executor<'e>,
    user_id: i64,
    current_id: &str,
    now: i64,
) -> Result<Vec<SessionInfo>, sqlx::Error> {
    let rows = query(
        "SELECT public_id, created_at, expires_at, client_addr, user_agent FROM sessions \
         WHERE user_id = $1 AND expires_at > $2 \
         ORDER BY CASE WHEN public_id = $3 THEN 0 ELSE 1 END, created_at DESC, public_id",
    )
    .bind(user_id)
    .bind(now)
    .bind(current_id)
    .fetch_all(ex)
    .await?;
    rows.iter()
        .map(|r| {
            let id: String = r.try_get(0)?;
            Ok(SessionInfo {
                current: id == current_id,
                id,
                created_at: r.try_get(1)?,
                expires_at: r.try_get(2)?,
                client_addr: r.try_get(3)?,
                user_agent: r.try_get(4)?,
            })
        })
        .collect()
}

/// Ends an unexpired session; false if there was none.
pub async fn delete<'e>(
    ex: impl Executor<'e>,
    token: &TokenKey,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let mut ex = ex.into_ex();
    Ok(delete_by_key(ex.reborrow(), token.key(), now).await?
        || delete_by_key(ex, token.legacy(), now).await?)
}

async fn delete_by_key(ex: Ex<'_>, key: &[u8], now: i64) -> Result<bool, sqlx::Error> {
    let done = query("DELETE FROM sessions WHERE token_hash = $1 AND expires_at > $2")
        .bind(key)
        .bind(now)
        .execute(ex)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Ends the unexpired session `public_id` of `user_id`; false if there is
/// none (or it is someone else's). Found among the user's sessions
/// (`sessions_by_user`): public ids have no index of their own.
pub async fn delete_by_public_id(
    conn: &mut Conn,
    user_id: i64,
    public_id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done =
        query("DELETE FROM sessions WHERE public_id = $1 AND user_id = $2 AND expires_at > $3")
            .bind(public_id)
            .bind(user_id)
            .bind(now)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() > 0)
}

/// Ends every session of `user_id` except the one with `keep_public_id`;
/// returns how many.
pub async fn delete_others(
    conn: &mut Conn,
    user_id: i64,
    keep_public_id: &str,
) -> Result<u64, sqlx::Error> {
    let done = query("DELETE FROM sessions WHERE user_id = $1 AND public_id <> $2")
        .bind(user_id)
        .bind(keep_public_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// How [`purge_expired`] finds expired sessions ([`super::expired`]).
const EXPIRED: TokenTable = expired::token_table!("sessions");

/// Removes expired sessions.
pub async fn purge_expired<'e>(ex: impl Executor<'e>, now: i64) -> Result<u64, sqlx::Error> {
    expired::purge(ex, &EXPIRED, now).await
}
