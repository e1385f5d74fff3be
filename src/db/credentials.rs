//! The `totp_credentials` table: a user's TOTP devices, each a sealed
//! secret with its label, replay floor (the last accepted time step), clock
//! drift and confirmation state.
//!
//! A device *counts* (for login, for "MFA is on") once confirmed, and so does
//! the account's default device (the seed's enrollment from /signup and
//! /enable-mfa) before its first code, which that first code confirms. A
//! device added by POST /me/devices is *pending* until confirmed and ignored
//! once its `pending_expires_at` has passed.

use super::Conn;
use super::batch::Expected;
use super::sql::{Executor, Row, query};

use crate::auth::crypto::Sealed;
use crate::auth::lockout::Factor;
use crate::auth::totp::{Algorithm, TotpParams};

/// Label of the default device.
pub const DEFAULT_LABEL: &str = "default";

/// The columns [`credential`] reads, in order.
macro_rules! column_list {
    () => {
        "SELECT id, user_id, secret_nonce, secret_sealed, algorithm, digits, period, \
                last_step, confirmed_at, label, is_default, created_at, pending_expires_at, \
                last_used_at, drift_steps"
    };
}

macro_rules! columns {
    () => {
        concat!(column_list!(), " FROM totp_credentials ")
    };
}

/// The condition for a device that counts for login.
macro_rules! counts {
    () => {
        "(confirmed_at IS NOT NULL OR is_default = 1)"
    };
}

/// A stored device.
pub struct Credential {
    /// Primary key; the device's id in the API.
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
    /// Name given by the user (`default` for the seed's enrollment).
    pub label: String,
    /// The enrollment of /signup or /enable-mfa.
    pub is_default: bool,
    /// When it was added.
    pub created_at: i64,
    /// A pending device is ignored from this time on.
    pub pending_expires_at: Option<i64>,
    /// Last accepted code.
    pub last_used_at: Option<i64>,
    /// The phone's clock offset in time steps, as last observed.
    pub drift_steps: i64,
}

impl Credential {
    /// Whether codes from this device are accepted for login.
    pub fn counts(&self) -> bool {
        self.confirmed_at.is_some() || self.is_default
    }
}

fn credential(r: &Row) -> Result<Credential, sqlx::Error> {
    let algorithm: String = r.try_get(4)?;
    let digits: i64 = r.try_get(5)?;
    let period: i64 = r.try_get(6)?;
    let params = TotpParams {
        algorithm: Algorithm::parse(&algorithm).ok_or_else(|| corrupt("algorithm"))?,
        digits: u32::try_from(digits).map_err(|_| corrupt("digits"))?,
        period: u64::try_from(period).map_err(|_| corrupt("period"))?,
    };
    Ok(Credential {
        id: r.try_get(0)?,
        user_id: r.try_get(1)?,
        sealed: Sealed {
            nonce: r.try_get(2)?,
            ciphertext: r.try_get(3)?,
        },
        params,
        last_step: r.try_get(7)?,
        confirmed_at: r.try_get(8)?,
        label: r.try_get(9)?,
        is_default: r.try_get::<i64>(10)? == 1,
        created_at: r.try_get(11)?,
        pending_expires_at: r.try_get(12)?,
        last_used_at: r.try_get(13)?,
        drift_steps: r.try_get(14)?,
    })
}

fn corrupt(column: &'static str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: "stored TOTP parameter out of range".into(),
    }
}

/// Stores the default device of `user_id` (unconfirmed; its first accepted
/// code on /login-2fa confirms it). A unique violation means it has one.
pub async fn insert(
    conn: &mut Conn,
    user_id: i64,
    sealed: &Sealed,
    params: &TotpParams,
    now: i64,
) -> Result<(), sqlx::Error> {
    query(
        "INSERT INTO totp_credentials \
         (user_id, label, is_default, secret_nonce, secret_sealed, algorithm, digits, period, \
          created_at) \
         VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8)",
    )
    .bind(user_id)
    .bind(DEFAULT_LABEL)
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

/// What a new pending device is made of.
pub struct NewDevice<'a> {
    /// Owner.
    pub user_id: i64,
    /// Its name, unique per user.
    pub label: &'a str,
    /// The sealed secret.
    pub sealed: &'a Sealed,
    /// Its parameters.
    pub params: &'a TotpParams,
    /// Now.
    pub now: i64,
    /// When it stops being confirmable.
    pub expires_at: i64,
}

/// Stores a pending device and returns its id. A unique violation means the
/// label is taken.
pub async fn insert_pending(conn: &mut Conn, d: &NewDevice<'_>) -> Result<i64, sqlx::Error> {
    let row = query(
        "INSERT INTO totp_credentials \
         (user_id, label, is_default, secret_nonce, secret_sealed, algorithm, digits, period, \
          created_at, pending_expires_at) \
         VALUES ($1, $2, 0, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(d.user_id)
    .bind(d.label)
    .bind(&d.sealed.nonce)
    .bind(&d.sealed.ciphertext)
    .bind(d.params.algorithm.as_str())
    .bind(i64::from(d.params.digits))
    .bind(d.params.period as i64)
    .bind(d.now)
    .bind(d.expires_at)
    .fetch_one(conn)
    .await?;
    row.try_get(0)
}

/// What the second-factor check reads, in one statement.
pub struct Counting {
    /// The devices that count for login, oldest first.
    pub devices: Vec<Credential>,
    /// The account's unused recovery codes.
    pub recovery_unused: i64,
    /// Until when `subject` is locked out of the second factor, if a
    /// throttle row exists (read only when there are devices).
    pub locked_until: Option<i64>,
}

/// The devices of `user_id` that count for login, how many unused recovery
/// codes the account has, and the second-factor lockout of `subject` (its
/// case-folded username), in one statement: all that a TOTP check reads.
pub async fn counting_for_user<'e>(
    ex: impl Executor<'e>,
    user_id: i64,
    subject: &str,
) -> Result<Counting, sqlx::Error> {
    let rows = query(concat!(
        column_list!(),
        ", (SELECT COUNT(*) FROM recovery_codes r \
            WHERE r.user_id = totp_credentials.user_id AND r.used_at IS NULL), \
           (SELECT t.locked_until FROM throttles t \
            WHERE t.subject = $2 AND t.factor = $3) \
         FROM totp_credentials WHERE user_id = $1 AND ",
        counts!(),
        " ORDER BY id"
    ))
    .bind(user_id)
    .bind(subject)
    .bind(Factor::SecondFactor.as_str())
    .fetch_all(ex)
    .await?;
    let (recovery_unused, locked_until) = match rows.first() {
        Some(r) => (r.try_get(15)?, r.try_get(16)?),
        None => (0, None),
    };
    let devices = rows.iter().map(credential).collect::<Result<_, _>>()?;
    Ok(Counting {
        devices,
        recovery_unused,
        locked_until,
    })
}

/// /login-2fa's whole read, with the challenge's key, the username it was
/// issued for, now and the lockout's factor given as the four SQL
/// expressions: the account's devices that count, with its unused recovery
/// codes and its lock in columns 15 and 16.
macro_rules! for_challenge {
    ($key:literal, $username:literal, $now:literal, $factor:literal) => {
        concat!(
            column_list!(),
            ", (SELECT COUNT(*) FROM recovery_codes r \
                WHERE r.user_id = totp_credentials.user_id AND r.used_at IS NULL), \
               (SELECT t.locked_until FROM throttles t \
                WHERE t.subject = ",
            $username,
            " AND t.factor = ",
            $factor,
            ") \
             FROM totp_credentials WHERE user_id = \
               (SELECT ch.user_id FROM mfa_challenges ch \
                WHERE ch.token_hash = ",
            $key,
            " AND ch.expires_at > ",
            $now,
            " AND ch.username_key = ",
            $username,
            ") \
             AND ",
            counts!(),
            " ORDER BY id"
        )
    };
}

/// [`for_challenge`] for many challenges in one statement: the text before
/// and after rows of `VALUES (index, key, username, now, factor)`, each
/// joined to its read, with the index in the last column (column 17; see
/// [`super::challenge_reads`]).
pub const FOR_CHALLENGES: [&str; 2] = [
    "SELECT c.*, k.i FROM (VALUES ",
    concat!(
        ") AS k(i, h, u, now, f) CROSS JOIN LATERAL (",
        for_challenge!("k.h", "k.u", "k.now", "k.f"),
        ") AS c ORDER BY k.i, c.id"
    ),
];

/// [`counting_for_user`] for the user of an unexpired MFA challenge stored
/// under `challenge_key` and issued for `username_key` (which is also the
/// lockout's subject), in one statement: /login-2fa's whole read. Returns
/// the user and what was counted; `None` when no row came back, which is
/// either no such challenge or no device that counts (MFA switched off
/// since /login): the caller then reads the two apart. On PostgreSQL see
/// [`find_counting_for_challenge`], which batches it.
pub async fn counting_for_challenge<'e>(
    ex: impl Executor<'e>,
    challenge_key: &[u8],
    username_key: &str,
    now: i64,
) -> Result<Option<(i64, Counting)>, sqlx::Error> {
    let rows = query(for_challenge!("$1", "$2", "$3", "$4"))
        .bind(challenge_key)
        .bind(username_key)
        .bind(now)
        .bind(Factor::SecondFactor.as_str())
        .fetch_all(ex)
        .await?;
    counted(&rows)
}

/// [`counting_for_challenge`] outside a transaction; on PostgreSQL through
/// the batched reads ([`super::challenge_reads`]), which also give the
/// login's place among those announced to the batched write (`None` on
/// SQLite).
pub async fn find_counting_for_challenge(
    db: &super::Db,
    challenge_key: &[u8],
    username_key: &str,
    now: i64,
) -> Result<Option<(i64, Counting, Option<Expected>)>, sqlx::Error> {
    match db.challenge_reads() {
        Some(batched) => {
            super::challenge_reads::find(batched, challenge_key, username_key, now).await
        }
        None => Ok(
            counting_for_challenge(db.reader(), challenge_key, username_key, now)
                .await?
                .map(|(user_id, counting)| (user_id, counting, None)),
        ),
    }
}

/// The user and what was counted, from [`for_challenge`]'s rows (one per
/// device); `None` for no rows.
pub fn counted(rows: &[Row]) -> Result<Option<(i64, Counting)>, sqlx::Error> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let user_id = first.try_get(1)?;
    let counting = Counting {
        recovery_unused: first.try_get(15)?,
        locked_until: first.try_get(16)?,
        devices: rows.iter().map(credential).collect::<Result<_, _>>()?,
    };
    Ok(Some((user_id, counting)))
}

/// Every device of `user_id` except expired pending ones, oldest first.
pub async fn list_for_user<'e>(
    ex: impl Executor<'e>,
    user_id: i64,
    now: i64,
) -> Result<Vec<Credential>, sqlx::Error> {
    let rows = query(concat!(
        columns!(),
        "WHERE user_id = $1 AND (pending_expires_at IS NULL OR pending_expires_at > $2) \
         ORDER BY id"
    ))
    .bind(user_id)
    .bind(now)
    .fetch_all(ex)
    .await?;
    rows.iter().map(credential).collect()
}

/// The default device of `user_id`, if it has one.
pub async fn find_default<'e>(
    ex: impl Executor<'e>,
    user_id: i64,
) -> Result<Option<Credential>, sqlx::Error> {
    let row = query(concat!(columns!(), "WHERE user_id = $1 AND is_default = 1"))
        .bind(user_id)
        .fetch_optional(ex)
        .await?;
    row.as_ref().map(credential).transpose()
}

/// Device `id` of `user_id` (not another user's), unless it is an expired
/// pending one.
pub async fn find<'e>(
    ex: impl Executor<'e>,
    user_id: i64,
    id: i64,
    now: i64,
) -> Result<Option<Credential>, sqlx::Error> {
    let row = query(concat!(
        columns!(),
        "WHERE id = $1 AND user_id = $2 \
         AND (pending_expires_at IS NULL OR pending_expires_at > $3)"
    ))
    .bind(id)
    .bind(user_id)
    .bind(now)
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(credential).transpose()
}

/// How many devices of `user_id` count for login.
pub async fn count_counting<'e>(ex: impl Executor<'e>, user_id: i64) -> Result<i64, sqlx::Error> {
    query(concat!(
        "SELECT COUNT(*) FROM totp_credentials WHERE user_id = $1 AND ",
        counts!()
    ))
    .bind(user_id)
    .fetch_one(ex)
    .await?
    .try_get(0)
}

/// How many devices `user_id` has, pending ones included.
pub async fn count_all<'e>(ex: impl Executor<'e>, user_id: i64) -> Result<i64, sqlx::Error> {
    query("SELECT COUNT(*) FROM totp_credentials WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(ex)
        .await?
        .try_get(0)
}

/// Records `step` as used if it is above the device's replay floor
/// (compare-and-set), with the drift it showed and the time of use, and, if
/// `confirm`, marks the device confirmed. False when another request used
/// this or a later step first.
pub async fn advance_step(
    conn: &mut Conn,
    credential_id: i64,
    step: i64,
    drift_steps: i64,
    confirm: bool,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = query(
        "UPDATE totp_credentials \
         SET last_step = $1, drift_steps = $2, last_used_at = $3, \
             confirmed_at = CASE WHEN $4 = 1 THEN COALESCE(confirmed_at, $3) ELSE confirmed_at END \
         WHERE id = $5 AND (last_step IS NULL OR last_step < $1)",
    )
    .bind(step)
    .bind(drift_steps)
    .bind(now)
    .bind(i64::from(confirm))
    .bind(credential_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Confirms device `id` of `user_id` (a pending one, or the unconfirmed
/// default) with its first code at `step`; false if it is gone, expired or
/// already confirmed.
pub async fn confirm_pending(
    conn: &mut Conn,
    user_id: i64,
    id: i64,
    step: i64,
    drift_steps: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = query(
        "UPDATE totp_credentials \
         SET confirmed_at = $1, pending_expires_at = NULL, last_step = $2, drift_steps = $3 \
         WHERE id = $4 AND user_id = $5 AND confirmed_at IS NULL \
           AND (pending_expires_at IS NULL OR pending_expires_at > $1)",
    )
    .bind(now)
    .bind(step)
    .bind(drift_steps)
    .bind(id)
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes device `id` of `user_id`; false if there was none.
pub async fn delete(conn: &mut Conn, user_id: i64, id: i64) -> Result<bool, sqlx::Error> {
    let done = query("DELETE FROM totp_credentials WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Erases every device of `user_id`, pending ones included; false if there
/// was none.
pub async fn delete_for_user(conn: &mut Conn, user_id: i64) -> Result<bool, sqlx::Error> {
    let done = query("DELETE FROM totp_credentials WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Removes pending devices that expired before `now` (of every user).
pub async fn purge_expired<'e>(ex: impl Executor<'e>, now: i64) -> Result<u64, sqlx::Error> {
    let done = query(
        "DELETE FROM totp_credentials \
         WHERE confirmed_at IS NULL AND pending_expires_at IS NOT NULL AND pending_expires_at <= $1",
    )
    .bind(now)
    .execute(ex)
    .await?;
    Ok(done.rows_affected())
}
