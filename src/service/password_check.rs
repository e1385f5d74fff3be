//! Password checks under the password lockout.

use super::Services;
use crate::auth::lockout::{Factor, retry_after};
use crate::db::{throttle, users};
use crate::domain::{Password, Username};
use crate::http::Error;

impl Services {
    /// Refuses with 429 while `subject` is locked out for `factor`. A cheap
    /// read before any expensive work; the binding check happens again when
    /// the attempt is settled.
    pub async fn ensure_not_locked(&self, subject: &str, factor: Factor) -> Result<(), Error> {
        let state = throttle::get(self.db.reader(), subject, factor).await?;
        match retry_after(state.locked_until, self.clock.now()) {
            Some(retry_after) => Err(Error::TooManyAttempts { retry_after }),
            None => Ok(()),
        }
    }

    /// The account named `username` if `password` is its password. Unknown
    /// users cost the same hash and get the same answer as wrong passwords,
    /// and are counted toward the same kind of lockout.
    pub async fn check_password(
        &self,
        username: &Username,
        password: &Password,
    ) -> Result<users::User, Error> {
        let subject = username.key();
        self.ensure_not_locked(subject, Factor::Password).await?;
        let user = users::find_by_key(self.db.reader(), subject).await?;
        let stored = user.as_ref().map(|u| u.password_hash.as_str());
        let ok = self.hasher.verify(password, stored).await?;
        match user {
            Some(user) if ok => {
                // Guesses that were settled while we hashed may have locked
                // the account; a lock holds even against the right password.
                let state = throttle::get(self.db.reader(), subject, Factor::Password).await?;
                if let Some(retry_after) = retry_after(state.locked_until, self.clock.now()) {
                    return Err(Error::TooManyAttempts { retry_after });
                }
                if state.failures > 0 {
                    throttle::reset(self.db.writer(), subject, Factor::Password).await?;
                }
                Ok(user)
            }
            _ => {
                self.count_failure(subject, Factor::Password).await?;
                Err(Error::InvalidCredentials)
            }
        }
    }

    /// Counts a failed attempt in its own transaction, starting a lockout at
    /// the threshold. Answers 429 if a lock began meanwhile (the attempt is
    /// then not counted).
    pub async fn count_failure(&self, subject: &str, factor: Factor) -> Result<(), Error> {
        let now = self.clock.now();
        let mut tx = self.db.writer().begin().await?;
        let state = throttle::count_failure(&mut tx, subject, factor, now).await?;
        if let Some(retry_after) = retry_after(state.locked_until, now) {
            return Err(Error::TooManyAttempts { retry_after });
        }
        let lock = self.lockout.locked_until(state.failures, now);
        if let Some(until) = lock {
            throttle::lock(&mut tx, subject, factor, until).await?;
        }
        tx.commit().await?;
        if lock.is_some() {
            self.metrics.lockout(factor);
        }
        Ok(())
    }
}
