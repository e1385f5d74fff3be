//! Second-factor checks: a TOTP code from any of the account's devices that
//! count (above that device's replay floor, in a window widened towards its
//! known clock drift) or an unused recovery code, settled in one transaction
//! that also applies the lockout and records the audit events, so the replay
//! mark, the drift, the lockout count, the events and the caller's own writes
//! (a new session, an erased credential) commit together or not at all.

use zeroize::Zeroizing;

use crate::db::{Conn, WriteTx};

use super::{Client, Services, Subject};
use crate::auth::lockout::{Factor, retry_after};
use crate::auth::recovery;
use crate::auth::totp::{self, TotpParams};
use crate::db::credentials::{self, Counting, Credential};
use crate::db::{recovery_codes, throttle};
use crate::domain::otp::{OtpCode, RecoveryCode};
use crate::http::Error;

/// What a submitted token proved, before it is settled.
#[derive(Debug, Clone, Copy)]
pub enum Verified {
    /// A TOTP code of `step`, above the device's replay floor.
    Totp {
        /// The device it belongs to.
        credential_id: i64,
        /// Its time step.
        step: u64,
        /// The device's drift to remember (the matched offset, bounded).
        drift_steps: i64,
        /// How far the code's step was from now, in seconds (positive: the
        /// phone's clock is fast).
        offset_seconds: i64,
        /// Whether it is the default enrollment's first accepted code.
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
    /// The token was no code of an unconfirmed default device with
    /// non-default parameters, but is its SHA1/6-digit/30 s code: the
    /// authenticator app ignored the parameters.
    pub ignored_parameters: bool,
    /// Unused recovery codes of the account when it was checked.
    pub recovery_unused: i64,
}

/// Which kind of second factor a check accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// A TOTP code or a recovery code.
    AnyFactor,
    /// Only a TOTP code (proof of holding a device).
    TotpOnly,
}

/// A successful attempt, still inside its transaction: the caller adds its
/// own writes and commits.
pub struct Settled {
    /// The open transaction holding the replay mark and the reset counter.
    pub tx: WriteTx,
    /// A recovery code was spent (rather than a TOTP code accepted).
    pub recovery_code_used: bool,
    /// Recovery codes left after this attempt.
    pub recovery_codes_remaining: i64,
    /// Seconds between the accepted code's time step and now, when not 0.
    pub clock_drift_seconds: Option<i64>,
}

/// What settling an attempt wrote into its transaction.
#[derive(Debug)]
pub enum Settlement {
    /// The code was accepted and spent: the caller adds its own writes.
    Accepted(Accepted),
    /// The failure was counted and recorded: commit, then answer
    /// [`Services::refused`].
    Refused(Refused),
}

/// An accepted attempt ([`Settlement::Accepted`]).
#[derive(Debug, Clone, Copy)]
pub struct Accepted {
    /// A recovery code was spent (rather than a TOTP code accepted).
    pub recovery_code_used: bool,
    /// Recovery codes left after this attempt.
    pub recovery_codes_remaining: i64,
    /// Seconds between the accepted code's time step and now, when not 0.
    pub clock_drift_seconds: Option<i64>,
}

/// A refused attempt, counted ([`Settlement::Refused`]).
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    replay: bool,
    ignored_parameters: bool,
    locked: bool,
}

/// Whether `code` is the SHA1/6/30 code of `secret` now, for a device whose
/// own parameters differ (some apps ignore `algorithm`, `digits`, `period`).
pub fn ignores_parameters(
    params: &TotpParams,
    secret: &[u8],
    token: &str,
    now: u64,
    skew: u64,
) -> bool {
    let standard = TotpParams::default();
    *params != standard
        && OtpCode::parse(token, standard.digits)
            .is_some_and(|code| totp::verify(&standard, secret, &code, now, skew, None).is_some())
}

impl Services {
    /// Opens the sealed secret of `device`.
    pub(super) fn open_secret(&self, device: &Credential) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.sealer
            .open(
                device.user_id,
                &device.sealed.nonce,
                &device.sealed.ciphertext,
            )
            .map_err(|e| Error::Internal(anyhow::Error::new(e)))
    }

    /// The current time as TOTP wants it.
    pub(super) fn totp_now(&self) -> u64 {
        u64::try_from(self.clock.now()).unwrap_or(0)
    }

    /// Checks `token` against every device of `user_id` that counts and,
    /// when `accept` allows, its recovery codes; `None` when MFA is not
    /// enabled. The early lockout check of `subject` comes first, read in
    /// the same statement as the devices: a lock wins. The binding lock
    /// check is made again when the attempt is settled. Every device is
    /// checked (no early exit), so the time taken does not tell which one
    /// matched.
    pub async fn check_second_factor(
        &self,
        subject: Subject<'_>,
        user_id: i64,
        token: &str,
        accept: Accept,
    ) -> Result<Option<Checked>, Error> {
        let counting =
            credentials::counting_for_user(self.db.reader(), user_id, subject.username).await?;
        self.check_counted(subject, user_id, counting, token, accept)
            .await
    }

    /// [`check_second_factor`](Services::check_second_factor) over what
    /// was already read of the account ([`Counting`]).
    pub async fn check_counted(
        &self,
        subject: Subject<'_>,
        user_id: i64,
        counting: Counting,
        token: &str,
        accept: Accept,
    ) -> Result<Option<Checked>, Error> {
        if counting.devices.is_empty() {
            // No row to carry the lock: read it on its own (MFA is off, so
            // this only decides between 429 and the caller's answer).
            self.ensure_not_locked(subject.username, Factor::SecondFactor)
                .await?;
            return Ok(None);
        }
        if let Some(retry_after) = counting
            .locked_until
            .and_then(|until| retry_after(until, self.clock.now()))
        {
            return Err(Error::TooManyAttempts { retry_after });
        }
        let Counting {
            devices,
            recovery_unused,
            ..
        } = counting;
        let mut checked = Checked {
            verified: None,
            replay: false,
            ignored_parameters: false,
            recovery_unused,
        };
        if let Some(code) = RecoveryCode::parse(token) {
            if accept == Accept::AnyFactor {
                let unused = recovery_codes::unused(self.db.reader(), user_id).await?;
                checked.verified = unused
                    .iter()
                    .find(|(_, stored)| recovery::matches(&code, stored))
                    .map(|(id, _)| Verified::Recovery { code_id: *id });
            }
            return Ok(Some(checked));
        }
        let now = self.totp_now();
        for device in &devices {
            let secret = self.open_secret(device)?;
            let params = &device.params;
            let Some(code) = OtpCode::parse(token, params.digits) else {
                if device.confirmed_at.is_none() {
                    checked.ignored_parameters |=
                        ignores_parameters(params, &secret, token, now, self.skew);
                }
                continue;
            };
            let drift = device.drift_steps.clamp(-self.max_drift, self.max_drift);
            let floor = device.last_step.and_then(|s| u64::try_from(s).ok());
            let fresh =
                totp::verify_with_drift(params, &secret, &code, now, drift, self.skew, floor);
            let any = totp::verify_with_drift(params, &secret, &code, now, drift, self.skew, None);
            match fresh {
                Some(step) if checked.verified.is_none() => {
                    let current = totp::time_step(params, now) as i64;
                    let offset = step as i64 - current;
                    checked.verified = Some(Verified::Totp {
                        credential_id: device.id,
                        step,
                        drift_steps: offset.clamp(-self.max_drift, self.max_drift),
                        offset_seconds: offset * params.period as i64,
                        confirms: device.confirmed_at.is_none(),
                    });
                }
                Some(_) => {}
                None => checked.replay |= any.is_some(),
            }
            if fresh.is_none() && device.confirmed_at.is_none() {
                checked.ignored_parameters |=
                    ignores_parameters(params, &secret, token, now, self.skew);
            }
        }
        if checked.verified.is_some() {
            checked.replay = false;
            checked.ignored_parameters = false;
        }
        Ok(Some(checked))
    }

    /// Settles one second-factor attempt in its own transaction. On failure
    /// (nothing verified, or the code was used by a concurrent request) the
    /// failure is counted, recorded and committed and `invalid` is returned
    /// (or 422 `authenticator_ignored_parameters` when that is why); while
    /// locked out, 429 and nothing is counted.
    pub async fn settle_second_factor(
        &self,
        subject: Subject<'_>,
        checked: Checked,
        invalid: Error,
        client: &Client,
    ) -> Result<Settled, Error> {
        let mut tx = self.db.begin_write().await?;
        match self.settle_in(&mut tx, subject, checked, client).await? {
            Settlement::Accepted(accepted) => Ok(Settled {
                tx,
                recovery_code_used: accepted.recovery_code_used,
                recovery_codes_remaining: accepted.recovery_codes_remaining,
                clock_drift_seconds: accepted.clock_drift_seconds,
            }),
            Settlement::Refused(refused) => {
                tx.commit().await?;
                Err(self.refused(refused, invalid))
            }
        }
    }

    /// The answer to a refused attempt, once it is committed (counted in the
    /// metrics here, after the commit).
    pub fn refused(&self, refused: Refused, invalid: Error) -> Error {
        self.metrics.second_factor_failure();
        if refused.replay {
            self.metrics.replay_refused();
        }
        if refused.locked {
            self.metrics.lockout(Factor::SecondFactor);
        }
        if refused.ignored_parameters {
            self.metrics.account_action("parameters_ignored");
            return Error::AuthenticatorIgnoredParameters;
        }
        invalid
    }

    /// Settles one second-factor attempt inside `conn`'s transaction: the
    /// code spent and the counter cleared, or the failure counted and
    /// recorded (see [`Settlement`]). An `Err` (429 while locked out, or a
    /// database error) means: roll back.
    pub async fn settle_in(
        &self,
        conn: &mut Conn,
        subject: Subject<'_>,
        checked: Checked,
        client: &Client,
    ) -> Result<Settlement, Error> {
        let now = self.clock.now();
        let key = subject.username;
        // A verified code is consumed first (a compare-and-set, which on
        // PostgreSQL holds the device's row), then the counter is checked
        // for a lock and cleared in one statement; anything else is counted
        // first, which holds the counter's row. Either way concurrent
        // attempts are settled one after another (SQLite has one writer),
        // and the locks are always taken device before counter.
        let consumed = match checked.verified {
            Some(Verified::Totp {
                credential_id,
                step,
                drift_steps,
                ..
            }) => {
                let step = i64::try_from(step).map_err(|e| Error::Internal(e.into()))?;
                credentials::advance_step(conn, credential_id, step, drift_steps, true, now).await?
            }
            Some(Verified::Recovery { code_id }) => {
                recovery_codes::spend(conn, code_id, now).await?
            }
            None => false,
        };
        if consumed {
            let locked_until = throttle::clear(conn, key, Factor::SecondFactor, now).await?;
            if let Some(retry_after) = locked_until.and_then(|until| retry_after(until, now)) {
                // An error rolls the transaction back: the code is given back.
                return Err(Error::TooManyAttempts { retry_after });
            }
        } else {
            let state = throttle::count_failure(conn, key, Factor::SecondFactor, now).await?;
            if let Some(retry_after) = retry_after(state.locked_until, now) {
                return Err(Error::TooManyAttempts { retry_after });
            }
            self.audit(&mut *conn, client, subject, "second_factor.failure", None)
                .await?;
            if checked.replay {
                self.audit(&mut *conn, client, subject, "replay.refused", None)
                    .await?;
            }
            if checked.ignored_parameters {
                self.audit(
                    &mut *conn,
                    client,
                    subject,
                    "device.parameters_ignored",
                    None,
                )
                .await?;
            }
            let lock = self.lockout.locked_until(state.failures, now);
            if let Some(until) = lock {
                throttle::lock(conn, key, Factor::SecondFactor, until).await?;
                self.audit_lockout(
                    &mut *conn,
                    client,
                    subject,
                    Factor::SecondFactor,
                    until - now,
                )
                .await?;
            }
            return Ok(Settlement::Refused(Refused {
                replay: checked.replay,
                ignored_parameters: checked.ignored_parameters,
                locked: lock.is_some(),
            }));
        }
        let (factor, confirms, offset) = match checked.verified {
            Some(Verified::Totp {
                confirms,
                offset_seconds,
                ..
            }) => ("totp", confirms, offset_seconds),
            _ => ("recovery_code", false, 0),
        };
        let detail = Some(format!("factor={factor}"));
        self.audit(&mut *conn, client, subject, "second_factor.success", detail)
            .await?;
        if confirms {
            self.audit(&mut *conn, client, subject, "mfa.confirmed", None)
                .await?;
        }
        let recovery_code_used = matches!(checked.verified, Some(Verified::Recovery { .. }));
        // A TOTP login leaves the count as it was read; after spending a
        // recovery code, count again inside the transaction (exact even
        // beside concurrent spends).
        let recovery_codes_remaining = match (recovery_code_used, subject.user_id) {
            (true, Some(user_id)) => recovery_codes::count_unused(&mut *conn, user_id).await?,
            _ => checked.recovery_unused,
        };
        if recovery_code_used {
            let detail = Some(format!("remaining={recovery_codes_remaining}"));
            self.audit(&mut *conn, client, subject, "recovery_code.used", detail)
                .await?;
        }
        Ok(Settlement::Accepted(Accepted {
            recovery_code_used,
            recovery_codes_remaining,
            clock_drift_seconds: (offset != 0).then_some(offset),
        }))
    }
}
