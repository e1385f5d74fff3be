//! Queries of the operator commands (`twofactor user …`, `rotate-key`).

use super::Conn;
use super::sql::{Executor, Row, query};

use crate::auth::crypto::Sealed;

/// One account as an operator sees it.
#[derive(Debug, serde::Serialize)]
pub struct AccountSummary {
    /// As registered.
    pub username: String,
    /// Signup time (Unix seconds).
    pub created_at: i64,
    /// `on` (a confirmed device), `pending` (the default enrollment, no code
    /// accepted yet) or `off`. Pending devices of POST /me/devices don't count.
    pub mfa: &'static str,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
    /// Unexpired sessions.
    pub active_sessions: i64,
}

/// The summary query; a macro so `concat!` can extend it at compile time
/// (sqlx refuses SQL built at run time).
macro_rules! summary_sql {
    () => {
        "SELECT u.username, u.created_at, \
       (SELECT COUNT(*) FROM totp_credentials c WHERE c.user_id = u.id AND c.is_default = 1), \
       (SELECT COUNT(*) FROM totp_credentials c \
        WHERE c.user_id = u.id AND c.confirmed_at IS NOT NULL), \
       (SELECT COUNT(*) FROM recovery_codes r WHERE r.user_id = u.id AND r.used_at IS NULL), \
       (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.expires_at > $1) \
     FROM users u"
    };
}

fn summary(r: &Row) -> Result<AccountSummary, sqlx::Error> {
    let default_device: i64 = r.try_get(2)?;
    let confirmed: i64 = r.try_get(3)?;
    Ok(AccountSummary {
        username: r.try_get(0)?,
        created_at: r.try_get(1)?,
        mfa: match (default_device, confirmed) {
            (_, 1..) => "on",
            (1.., _) => "pending",
            _ => "off",
        },
        recovery_codes_left: r.try_get(4)?,
        active_sessions: r.try_get(5)?,
    })
}

/// Every account, by username.
pub async fn list<'e>(ex: impl Executor<'e>, now: i64) -> Result<Vec<AccountSummary>, sqlx::Error> {
    let rows = query(concat!(summary_sql!(), " ORDER BY u.username_key"))
        .bind(now)
        .fetch_all(ex)
        .await?;
    rows.iter().map(summary).collect()
}

/// One account by case-folded username.
pub async fn show<'e>(
    ex: impl Executor<'e>,
    username_key: &str,
    now: i64,
) -> Result<Option<AccountSummary>, sqlx::Error> {
    let row = query(concat!(summary_sql!(), " WHERE u.username_key = $2"))
        .bind(now)
        .bind(username_key)
        .fetch_optional(ex)
        .await?;
    row.as_ref().map(summary).transpose()
}

/// Deletes an account (its credential, codes, sessions and challenges go
/// with it); false if there was none.
pub async fn delete_user(conn: &mut Conn, username_key: &str) -> Result<bool, sqlx::Error> {
    // Explicit deletes rather than relying on ON DELETE CASCADE alone, so an
    // SQLite connection without foreign keys enabled leaves nothing behind.
    let Some(row) = query("SELECT id FROM users WHERE username_key = $1")
        .bind(username_key)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(false);
    };
    let id: i64 = row.try_get(0)?;
    // Sessions last: on PostgreSQL they have no foreign key (migration
    // 0009). A second-factor login in flight holds its challenge's and
    // device's rows until it commits; the deletes of those rows wait for
    // it, so this statement, which reads afresh, sees its session too. A
    // password login racing the deletion can leave a session that no lookup
    // accepts (they join users) and the purge of expired ones removes.
    for sql in [
        "DELETE FROM mfa_challenges WHERE user_id = $1",
        "DELETE FROM recovery_codes WHERE user_id = $1",
        "DELETE FROM totp_credentials WHERE user_id = $1",
        "DELETE FROM users WHERE id = $1",
        "DELETE FROM sessions WHERE user_id = $1",
    ] {
        query(sql).bind(id).execute(&mut *conn).await?;
    }
    Ok(true)
}

/// Forgets both lockout counters of a username.
pub async fn unlock<'e>(ex: impl Executor<'e>, username_key: &str) -> Result<u64, sqlx::Error> {
    let done = query("DELETE FROM throttles WHERE subject = $1")
        .bind(username_key)
        .execute(ex)
        .await?;
    Ok(done.rows_affected())
}

/// Every sealed secret (of every device) with its owner, for re-sealing under a new key.
pub async fn sealed_secrets(conn: &mut Conn) -> Result<Vec<(i64, i64, Sealed)>, sqlx::Error> {
    let rows = query("SELECT id, user_id, secret_nonce, secret_sealed FROM totp_credentials")
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                Sealed {
                    nonce: r.try_get(2)?,
                    ciphertext: r.try_get(3)?,
                },
            ))
        })
        .collect()
}

/// Replaces one credential's sealed secret.
pub async fn reseal(conn: &mut Conn, id: i64, sealed: &Sealed) -> Result<(), sqlx::Error> {
    query("UPDATE totp_credentials SET secret_nonce = $1, secret_sealed = $2 WHERE id = $3")
        .bind(&sealed.nonce)
        .bind(&sealed.ciphertext)
        .bind(id)
        .execute(conn)
        .await
        .map(|_| ())
}
