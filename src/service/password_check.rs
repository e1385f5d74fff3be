//! Password checks under the password lockout.

use super::{Client, Services, Subject};
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
        client: &Client,
    ) -> Result<users::User, Error> {
        let key = username.key();
        self.ensure_not_locked(key, Factor::Password).await?;
        let user = users::find_by_key(self.db.reader(), key).await?;
        let stored = user.as_ref().map(|u| u.password_hash.as_str());
        let ok = self.hasher.verify(password, stored).await?;
        match user {
            Some(user) if ok => {
                // Guesses that were settled while we hashed may have locked
                // the account; a lock holds even against the right password.
                let state = throttle::get(self.db.reader(), key, Factor::Password).await?;
                if let Some(retry_after) = retry_after(state.locked_until, self.clock.now()) {
                    return Err(Error::TooManyAttempts { retry_after });
                }
                if state.failures > 0 {
                    let mut tx = self.db.begin_write().await?;
                    throttle::reset(&mut *tx, key, Factor::Password).await?;
                    tx.commit().await?;
                }
                Ok(user)
            }
            user => {
                let subject = Subject {
                    username: key,
                    user_id: user.map(|u| u.id),
                };
                self.count_password_failure(subject, client).await?;
                Err(Error::InvalidCredentials)
            }
        }
    }

    /// Counts and records a wrong password in one transaction, starting a
    /// lockout at the threshold. Answers 429 if a lock began meanwhile (the
    /// attempt is then not counted).
    async fn count_password_failure(
        &self,
        subject: Subject<'_>,
        client: &Client,
    ) -> Result<(), Error> {
        let factor = Factor::Password;
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let state = throttle::count_failure(&mut tx, subject.username, factor, now).await?;
        if let Some(retry_after) = retry_after(state.locked_until, now) {
            return Err(Error::TooManyAttempts { retry_after });
        }
        self.audit(&mut *tx, client, subject, "password.failure", None)
            .await?;
        let lock = self.lockout.locked_until(state.failures, now);
        if let Some(until) = lock {
            throttle::lock(&mut tx, subject.username, factor, until).await?;
            self.audit_lockout(&mut *tx, client, subject, factor, until - now)
                .await?;
        }
        tx.commit().await?;
        if lock.is_some() {
            self.metrics.lockout(factor);
        }
        Ok(())
    }

    /// Records the start of a lockout of `seconds`.
    pub(super) async fn audit_lockout<'e>(
        &self,
        ex: impl crate::db::sql::Executor<'e>,
        client: &Client,
        subject: Subject<'_>,
        factor: Factor,
        seconds: i64,
    ) -> Result<(), Error> {
        let detail = format!("factor={} seconds={seconds}", factor.as_str());
        self.audit(ex, client, subject, "lockout.started", Some(detail))
            .await
    }
}
