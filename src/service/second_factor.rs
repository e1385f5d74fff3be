//! Second-factor checks: a TOTP code (above the replay floor) or an unused
//! recovery code, settled in one transaction that also applies the lockout
//! and records the audit events, so the replay mark, the lockout count, the
//! events and the caller's own writes (a new session, an erased credential)
//! commit together or not at all.

use crate::db::WriteTx;

use super::{Client, Services, Subject};
use crate::auth::lockout::{Factor, retry_after};
use crate::auth::{recovery, totp};
use crate::db::{credentials, recovery_codes, throttle};
use crate::domain::otp::SecondFactor;
use crate::http::Error;

/// What a submitted token proved, before it is settled.
#[derive(Debug, Clone, Copy)]
pub enum Verified {
    /// A TOTP code of `step`, above the credential's replay floor.
    Totp {
        /// The credential it belongs to.
        credential_id: i64,
        /// Its time step.
        step: u64,
        /// Whether it is the enrollment's first accepted code.
        confirms: bool,
    },
    /// An unused recovery code.
    Recovery {
        /// Its row.
        code_id: i64,
    },
}

/// The outcome of checking a token, before it is settled.
#[derive(Debug, Clone, Copy)]
pub struct Checked {
    /// What the token proved, if anything.
    pub verified: Option<Verified>,
    /// The token was an already-used TOTP code.
    pub replay: bool,
}

/// A successful attempt, still inside its transaction: the caller adds its
/// own writes and commits.
pub struct Settled {
    /// The open transaction holding the replay mark and the reset counter.
    pub tx: WriteTx,
    /// Recovery codes left, when one was spent.
    pub recovery_codes_remaining: Option<i64>,
}

impl Services {
    /// Checks `token` against the credential and recovery codes of
    /// `user_id`; `None` when MFA is not enabled.
    pub async fn verify_second_factor(
        &self,
        user_id: i64,
        token: &str,
    ) -> Result<Option<Checked>, Error> {
        let Some(credential) = credentials::find_for_user(self.db.reader(), user_id).await? else {
            return Ok(None);
        };
        let mut replay = false;
        let verified = match SecondFactor::parse(token, credential.params.digits) {
            Some(SecondFactor::Totp(code)) => {
                let secret = self
                    .sealer
                    .open(
                        user_id,
                        &credential.sealed.nonce,
                        &credential.sealed.ciphertext,
                    )
                    .map_err(|e| Error::Internal(anyhow::Error::new(e)))?;
                let now = u64::try_from(self.clock.now()).unwrap_or(0);
                let floor = credential.last_step.and_then(|s| u64::try_from(s).ok());
                let params = &credential.params;
                let step = totp::verify(params, &secret, &code, now, self.skew, floor);
                // Only on failure: was it a used code rather than a wrong one?
                replay = step.is_none()
                    && floor.is_some()
                    && totp::verify(params, &secret, &code, now, self.skew, None).is_some();
                step.map(|step| Verified::Totp {
                    credential_id: credential.id,
                    step,
                    confirms: credential.confirmed_at.is_none(),
                })
            }
            Some(SecondFactor::Recovery(code)) => {
                let unused = recovery_codes::unused(self.db.reader(), user_id).await?;
                unused
                    .iter()
                    .find(|(_, stored)| recovery::matches(&code, stored))
                    .map(|(id, _)| Verified::Recovery { code_id: *id })
            }
            None => None,
        };
        Ok(Some(Checked { verified, replay }))
    }

    /// Settles one second-factor attempt. On failure (nothing verified, or
    /// the code was used by a concurrent request) the failure is counted,
    /// recorded and committed and `invalid` is returned; while locked out,
    /// 429 and nothing is counted.
    pub async fn settle_second_factor(
        &self,
        subject: Subject<'_>,
        checked: Checked,
        invalid: Error,
        client: &Client,
    ) -> Result<Settled, Error> {
        let now = self.clock.now();
        let key = subject.username;
        let mut tx = self.db.begin_write().await?;
        // Counting first takes the row (a lock on PostgreSQL; SQLite has one
        // writer), so concurrent attempts are settled one after another.
        let state = throttle::count_failure(&mut tx, key, Factor::SecondFactor, now).await?;
        if let Some(retry_after) = retry_after(state.locked_until, now) {
            return Err(Error::TooManyAttempts { retry_after });
        }
        let consumed = match checked.verified {
            Some(Verified::Totp {
                credential_id,
                step,
                ..
            }) => {
                let step = i64::try_from(step).map_err(|e| Error::Internal(e.into()))?;
                credentials::advance_step(&mut tx, credential_id, step, true, now).await?
            }
            Some(Verified::Recovery { code_id }) => {
                recovery_codes::spend(&mut tx, code_id, now).await?
            }
            None => false,
        };
        if !consumed {
            self.audit(&mut *tx, client, subject, "second_factor.failure", None)
                .await?;
            if checked.replay {
                self.audit(&mut *tx, client, subject, "replay.refused", None)
                    .await?;
            }
            let lock = self.lockout.locked_until(state.failures, now);
            if let Some(until) = lock {
                throttle::lock(&mut tx, key, Factor::SecondFactor, until).await?;
                self.audit_lockout(&mut *tx, client, subject, Factor::SecondFactor, until - now)
                    .await?;
            }
            tx.commit().await?;
            self.metrics.second_factor_failure();
            if checked.replay {
                self.metrics.replay_refused();
            }
            if lock.is_some() {
                self.metrics.lockout(Factor::SecondFactor);
            }
            return Err(invalid);
        }
        throttle::reset(&mut *tx, key, Factor::SecondFactor).await?;
        let (factor, confirms) = match checked.verified {
            Some(Verified::Totp { confirms, .. }) => ("totp", confirms),
            _ => ("recovery_code", false),
        };
        let detail = Some(format!("factor={factor}"));
        self.audit(&mut *tx, client, subject, "second_factor.success", detail)
            .await?;
        if confirms {
            self.audit(&mut *tx, client, subject, "mfa.confirmed", None)
                .await?;
        }
        let mut recovery_codes_remaining = None;
        if let (Some(Verified::Recovery { .. }), Some(user_id)) =
            (checked.verified, subject.user_id)
        {
            let left = recovery_codes::count_unused(&mut tx, user_id).await?;
            let detail = Some(format!("remaining={left}"));
            self.audit(&mut *tx, client, subject, "recovery_code.used", detail)
                .await?;
            recovery_codes_remaining = Some(left);
        }
        Ok(Settled {
            tx,
            recovery_codes_remaining,
        })
    }
}
