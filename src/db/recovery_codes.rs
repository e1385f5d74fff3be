//! The `recovery_codes` table: salted hashes, each spent once.

use super::Conn;
use super::sql::{Executor, query};

use crate::auth::recovery::StoredCode;

/// Stores a new set for `user_id`.
pub async fn insert_set(
    conn: &mut Conn,
    user_id: i64,
    codes: &[StoredCode],
) -> Result<(), sqlx::Error> {
    for code in codes {
        query("INSERT INTO recovery_codes (user_id, salt, code_hash) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(&code.salt)
            .bind(&code.hash)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The unused codes of `user_id`, with their ids.
pub async fn unused<'e>(
    ex: impl Executor<'e>,
    user_id: i64,
) -> Result<Vec<(i64, StoredCode)>, sqlx::Error> {
    let rows = query(
        "SELECT id, salt, code_hash FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user_id)
    .fetch_all(ex)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                StoredCode {
                    salt: r.try_get(1)?,
                    hash: r.try_get(2)?,
                },
            ))
        })
        .collect()
}

/// Marks code `id` used; false if another request spent it first.
pub async fn spend(conn: &mut Conn, id: i64, now: i64) -> Result<bool, sqlx::Error> {
    let done = query("UPDATE recovery_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// How many codes `user_id` has left.
pub async fn count_unused<'e>(ex: impl Executor<'e>, user_id: i64) -> Result<i64, sqlx::Error> {
    query("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
        .bind(user_id)
        .fetch_one(ex)
        .await?
        .try_get(0)
}

/// Erases every code of `user_id`.
pub async fn delete_for_user(conn: &mut Conn, user_id: i64) -> Result<(), sqlx::Error> {
    query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await
        .map(|_| ())
}
