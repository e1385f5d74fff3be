//! /login-2fa's write for an accepted TOTP code on PostgreSQL, in one
//! statement: a call of `login_2fa_totp` (migration 0008), which runs the
//! statements of the general path in their order, in the call's own
//! transaction. Each statement is a round trip on PostgreSQL, and this saves
//! six of them per login (BENCHMARKS.md, session 14).

use super::sessions::NewSession;
use super::sql::{Ex, query};
use crate::auth::tokens::TokenKey;

/// What the write stores (see [`write`]).
pub struct TotpLogin<'a> {
    /// The device whose code was accepted.
    pub credential_id: i64,
    /// The code's time step: the device's new replay floor.
    pub step: i64,
    /// The device's drift to remember.
    pub drift_steps: i64,
    /// Whether the code confirms the device's enrollment.
    pub confirm: bool,
    /// The time of the attempt.
    pub now: i64,
    /// The lockout's subject and the audit's username (case-folded).
    pub subject: &'a str,
    /// The challenge to spend.
    pub challenge: &'a TokenKey,
    /// The session to store (its `user_id` is the account's).
    pub session: &'a NewSession<'a>,
}

/// The SQLSTATE `login_2fa_totp` raises where the general path would roll
/// back or count a failure.
const NOT_HERE: &str = "TF001";

/// Stores the login through `ex` (PostgreSQL's pool): `Ok(true)` once it is
/// committed; `Ok(false)` when nothing was written, because the code was
/// used meanwhile, a lock started or the challenge is gone: the caller
/// then runs the general path, which gives the answer.
pub async fn write(ex: Ex<'_>, l: &TotpLogin<'_>) -> Result<bool, sqlx::Error> {
    let s = l.session;
    let done = query(
        "SELECT login_2fa_totp($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(l.credential_id)
    .bind(l.step)
    .bind(l.drift_steps)
    .bind(i64::from(l.confirm))
    .bind(l.now)
    .bind(l.subject)
    .bind(s.user_id)
    .bind(l.challenge.key())
    .bind(l.challenge.legacy())
    .bind(s.key)
    .bind(s.public_id)
    .bind(s.now)
    .bind(s.expires_at)
    .bind(s.client_addr)
    .bind(s.user_agent)
    .execute(ex)
    .await;
    match done {
        Ok(_) => Ok(true),
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some(NOT_HERE) => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}
