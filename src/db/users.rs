//! The `users` table.

use sqlx::{Any, AnyConnection, Executor, Row};

/// An account as the login flows need it.
#[derive(Debug)]
pub struct User {
    /// Primary key.
    pub id: i64,
    /// As registered (original case).
    pub username: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Whether a TOTP credential exists (confirmed or not).
    pub mfa_enabled: bool,
}

/// Inserts an account and returns its id.
pub async fn insert(
    conn: &mut AnyConnection,
    username: &str,
    username_key: &str,
    password_hash: &str,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
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
    ex: impl Executor<'e, Database = Any>,
    username_key: &str,
) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT u.id, u.username, u.password_hash, \
c.id \
         FROM users u LEFT JOIN totp_credentials c ON c.user_id = u.id \
         WHERE u.username_key = $1",
    )
    .bind(username_key)
    .fetch_optional(ex)
    .await?;
    row.map(|r| {
        Ok(User {
            id: r.try_get(0)?,
            username: r.try_get(1)?,
            password_hash: r.try_get(2)?,
            mfa_enabled: r.try_get::<Option<i64>, _>(3)?.is_some(),
        })
    })
    .transpose()
}
