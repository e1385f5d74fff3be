//! The `totp_credentials` table: one sealed TOTP secret per user, with its
//! replay floor (the last accepted time step) and confirmation time.

use sqlx::{Any, AnyConnection, Executor, Row};

use crate::auth::crypto::Sealed;
use crate::auth::totp::{Algorithm, TotpParams};

/// A stored credential.
pub struct Credential {
    /// Primary key.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// The sealed secret.
    pub sealed: Sealed,
    /// Parameters fixed at enrollment.
    pub params: TotpParams,
    /// Highest time step ever accepted; codes at or below it are replays.
    pub last_step: Option<i64>,
    /// When the first TOTP code was accepted.
    pub confirmed_at: Option<i64>,
}

/// Stores a new credential for `user_id`.
pub async fn insert(
    conn: &mut AnyConnection,
    user_id: i64,
    sealed: &Sealed,
    params: &TotpParams,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO totp_credentials \
         (user_id, secret_nonce, secret_sealed, algorithm, digits, period, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(user_id)
    .bind(&sealed.nonce)
    .bind(&sealed.ciphertext)
    .bind(params.algorithm.as_str())
    .bind(i64::from(params.digits))
    .bind(params.period as i64)
    .bind(now)
    .execute(conn)
    .await
    .map(|_| ())
}

/// The credential of `user_id`, if MFA is enabled.
pub async fn find_for_user<'e>(
    ex: impl Executor<'e, Database = Any>,
    user_id: i64,
) -> Result<Option<Credential>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, user_id, secret_nonce, secret_sealed, algorithm, digits, period, \
                last_step, confirmed_at \
         FROM totp_credentials WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(ex)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let algorithm: String = r.try_get(4)?;
    let digits: i64 = r.try_get(5)?;
    let period: i64 = r.try_get(6)?;
    let params = TotpParams {
        algorithm: Algorithm::parse(&algorithm).ok_or_else(|| corrupt("algorithm"))?,
        digits: u32::try_from(digits).map_err(|_| corrupt("digits"))?,
        period: u64::try_from(period).map_err(|_| corrupt("period"))?,
    };
    Ok(Some(Credential {
        id: r.try_get(0)?,
        user_id: r.try_get(1)?,
        sealed: Sealed {
            nonce: r.try_get(2)?,
            ciphertext: r.try_get(3)?,
        },
        params,
        last_step: r.try_get(7)?,
        confirmed_at: r.try_get(8)?,
    }))
}

fn corrupt(column: &'static str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: "stored TOTP parameter out of range".into(),
    }
}

/// Records `step` as used if it is above the replay floor (compare-and-set)
/// and, if `confirm`, marks the enrollment confirmed. False when another
/// request used this or a later step first.
pub async fn advance_step(
    conn: &mut AnyConnection,
    credential_id: i64,
    step: i64,
    confirm: bool,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE totp_credentials \
         SET last_step = $1, \
             confirmed_at = CASE WHEN $2 = 1 THEN COALESCE(confirmed_at, $3) ELSE confirmed_at END \
         WHERE id = $4 AND (last_step IS NULL OR last_step < $1)",
    )
    .bind(step)
    .bind(i64::from(confirm))
    .bind(now)
    .bind(credential_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Erases the credential of `user_id`; false if there was none.
pub async fn delete_for_user(conn: &mut AnyConnection, user_id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM totp_credentials WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}
