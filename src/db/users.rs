//! The `users` table.

use super::Conn;
use super::sql::{Executor, query};

/// An account as the login flows need it.
#[derive(Debug)]
pub struct User {
    /// Primary key.
    pub id: i64,
    /// As registered (original case).
    pub username: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Whether a TOTP device counts for login (a confirmed one, or the
    /// default enrollment before its first code).
    pub mfa_enabled: bool,
}

/// Inserts an account and returns its id.
pub async fn insert(
    conn: &mut Conn,
    username: &str,
    username_key: &str,
    password_hash: &str,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let row = query(
        "INSERT INTO users (username, username_key, password_hash, created_at) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(username)
    .bind(username_key)
    .bind(password_hash)
    .bind(now)
    .fetch_one(conn)
    .await?;
    row.try_get(0)
}

/// Looks an account up by its case-folded username.
pub async fn find_by_key<'e>(
    ex: impl Executor<'e>,
    username_key: &str,
) -> Result<Option<User>, sqlx::Error> {
    let row = query(
        "SELECT u.id, u.username, u.password_hash, \
                (SELECT COUNT(*) FROM totp_credentials c \
                 WHERE c.user_id = u.id AND (c.confirmed_at IS NOT NULL OR c.is_default = 1)) \
         FROM users u WHERE u.username_key = $1",
    )
    .bind(username_key)
    .fetch_optional(ex)
    .await?;
    row.map(|r| {
        Ok(User {
            id: r.try_get(0)?,
            username: r.try_get(1)?,
            password_hash: r.try_get(2)?,
            mfa_enabled: r.try_get::<i64>(3)? > 0,
        })
    })
    .transpose()
}

/// Replaces the password hash of `user_id`.
pub async fn set_password_hash(
    conn: &mut Conn,
    user_id: i64,
    password_hash: &str,
) -> Result<(), sqlx::Error> {
    query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(password_hash)
        .bind(user_id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Takes the row lock of `user_id` for the rest of the transaction (on
/// PostgreSQL; SQLite has one writer anyway), so changes to one account's
/// devices that check a count first are made one after another.
pub async fn lock(conn: &mut Conn, user_id: i64) -> Result<(), sqlx::Error> {
    query("UPDATE users SET id = id WHERE id = $1")
        .bind(user_id)
        .execute(conn)
        .await
        .map(|_| ())
}
