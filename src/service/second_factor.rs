//! Second-factor checks: a TOTP code (above the replay floor) or an unused
//! recovery code, settled in one transaction that also applies the lockout,
//! so the replay mark, the lockout count and the caller's own writes (a new
//! session, an erased credential) commit together or not at all.

use sqlx::{Any, Transaction};

use super::Services;
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
    },
    /// An unused recovery code.
    Recovery {
        /// Its row.
        code_id: i64,
    },
}

/// A successful attempt, still inside its transaction: the caller adds its
/// own writes and commits.
pub struct Settled {
    /// The open transaction holding the replay mark and the reset counter.
    pub tx: Transaction<'static, Any>,
    /// Whether a recovery code was spent.
    pub used_recovery_code: bool,
}

impl Services {
    /// Checks `token` against the credential and recovery codes of
    /// `user_id`. `Ok(None)` when MFA is not enabled; `Ok(Some(None))` when
    /// the token proves nothing.
    pub async fn verify_second_factor(
        &self,
        user_id: i64,
        token: &str,
    ) -> Result<Option<Option<Verified>>, Error> {
        let Some(credential) = credentials::find_for_user(self.db.reader(), user_id).await? else {
            return Ok(None);
        };
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
                let verified =
                    totp::verify(&credential.params, &secret, &code, now, self.skew, floor);
                // Only on failure: was it a used code rather than a wrong one?
                if verified.is_none()
                    && floor.is_some()
                    && totp::verify(&credential.params, &secret, &code, now, self.skew, None)
                        .is_some()
                {
                    self.metrics.replay_refused();
                }
                verified.map(|step| Verified::Totp {
                    credential_id: credential.id,
                    step,
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
        Ok(Some(verified))
    }

    /// Settles one second-factor attempt for `subject` (the case-folded
    /// username). On failure (nothing verified, or the code was used by a
    /// concurrent request) the failure is counted and committed and
    /// `invalid` is returned; while locked out, 429 and nothing is counted.
    pub async fn settle_second_factor(
        &self,
        subject: &str,
        verified: Option<Verified>,
        invalid: Error,
    ) -> Result<Settled, Error> {
        let now = self.clock.now();
        let mut tx = self.db.writer().begin().await?;
        // Counting first takes the row (a lock on PostgreSQL; SQLite has one
        // writer), so concurrent attempts are settled one after another.
        let state = throttle::count_failure(&mut tx, subject, Factor::SecondFactor, now).await?;
        if let Some(retry_after) = retry_after(state.locked_until, now) {
            return Err(Error::TooManyAttempts { retry_after });
        }
        let consumed = match verified {
            Some(Verified::Totp {
                credential_id,
                step,
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
            let lock = self.lockout.locked_until(state.failures, now);
            if let Some(until) = lock {
                throttle::lock(&mut tx, subject, Factor::SecondFactor, until).await?;
            }
            tx.commit().await?;
            self.metrics.second_factor_failure();
            if lock.is_some() {
                self.metrics.lockout(Factor::SecondFactor);
            }
            return Err(invalid);
        }
        throttle::reset(&mut *tx, subject, Factor::SecondFactor).await?;
        Ok(Settled {
            tx,
            used_recovery_code: matches!(verified, Some(Verified::Recovery { .. })),
        })
    }
}
