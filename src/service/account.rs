//! What a signed-in user does to their own account: find their session,
//! replace their recovery codes, change their password (which ends their
//! other sessions), and end one of their sessions.

use subtle::ConstantTimeEq;

use super::{Accept, Client, Services, Subject};
use crate::auth::tokens::TokenKey;
use crate::auth::{recovery, strength};
use crate::db::sessions::{self, SessionUser};
use crate::db::{recovery_codes, users};
use crate::domain::{Password, Username};
use crate::http::Error;

/// A signed-in user, with the forms of their name the flows need.
pub struct SignedIn {
    /// The session and its owner.
    pub session: SessionUser,
    /// The owner's name, validated.
    pub username: Username,
}

impl SignedIn {
    /// The audit subject.
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            username: self.username.key(),
            user_id: Some(self.session.user_id),
        }
    }
}

impl Services {
    /// The live session of `token`, or 401.
    pub async fn signed_in(&self, token: &TokenKey) -> Result<SignedIn, Error> {
        let session = sessions::find_live(&self.db, token, self.clock.now())
            .await?
            .ok_or(Error::Unauthorized)?;
        let username = Username::parse(&session.username).ok_or_else(|| {
            Error::Internal(anyhow::anyhow!("a stored username breaks the rules"))
        })?;
        Ok(SignedIn { session, username })
    }

    /// Replaces the recovery codes of the signed-in user, given the password
    /// and a current TOTP code; the old codes stop working.
    pub async fn regenerate_recovery_codes(
        &self,
        me: &SignedIn,
        password: &Password,
        token: &str,
        client: &Client,
    ) -> Result<Vec<String>, Error> {
        let user = self.check_password(&me.username, password, client).await?;
        if !user.mfa_enabled {
            return Err(Error::MfaNotEnabled);
        }
        let checked = self
            .check_second_factor(me.subject(), user.id, token, Accept::TotpOnly)
            .await?
            .ok_or(Error::MfaNotEnabled)?;
        let mut settled = self
            .settle_second_factor(me.subject(), checked, Error::InvalidOtp, client)
            .await?;
        let (codes, stored) = recovery::generate_set();
        recovery_codes::delete_for_user(&mut settled.tx, user.id).await?;
        recovery_codes::insert_set(&mut settled.tx, user.id, &stored).await?;
        let detail = Some(format!("count={}", codes.len()));
        self.audit(
            &mut *settled.tx,
            client,
            me.subject(),
            "recovery_codes.regenerated",
            detail,
        )
        .await?;
        settled.tx.commit().await?;
        self.metrics.account_action("recovery_codes_regenerated");
        Ok(codes.iter().map(|c| c.display()).collect())
    }

    /// Changes the signed-in user's password (with a second factor when MFA
    /// is on) and ends their other sessions; returns how many were ended.
    /// A weak new password is refused once the current one is proven.
    pub async fn change_password(
        &self,
        me: &SignedIn,
        current: &Password,
        new: &Password,
        token: Option<&str>,
        client: &Client,
    ) -> Result<u64, Error> {
        // The current password first: whoever lacks it learns nothing more.
        let user = self.check_password(&me.username, current, client).await?;
        if bool::from(new.expose().as_bytes().ct_eq(current.expose().as_bytes())) {
            return Err(Error::invalid(
                "new_password",
                "must differ from the current password",
            ));
        }
        let known = [me.username.as_str(), current.expose()];
        if let Some(weakness) = strength::weakness(new.expose(), &known) {
            self.metrics.account_action("weak_password_refused");
            return Err(Error::WeakPassword(weakness));
        }
        let checked = match (user.mfa_enabled, token) {
            (false, _) => None,
            (true, None) => {
                return Err(Error::invalid("token", "is required when MFA is on"));
            }
            (true, Some(token)) => {
                self.check_second_factor(me.subject(), user.id, token, Accept::AnyFactor)
                    .await?
            }
        };
        if let Some(wrong) = checked.filter(|c| c.verified.is_none()) {
            // Counted and recorded like any wrong code, with no hash spent.
            self.settle_second_factor(me.subject(), wrong, Error::InvalidOtp, client)
                .await?;
            return Err(Error::InvalidOtp);
        }
        // Hashed before the transaction opens: it must not wait on argon2.
        let hash = self.hasher.hash(new).await?;
        let (mut tx, recovery_code_used) = match checked {
            Some(checked) => {
                let settled = self
                    .settle_second_factor(me.subject(), checked, Error::InvalidOtp, client)
                    .await?;
                (settled.tx, settled.recovery_code_used)
            }
            None => (self.db.begin_write().await?, false),
        };
        users::set_password_hash(&mut tx, user.id, &hash).await?;
        let ended = sessions::delete_others(&mut tx, user.id, &me.session.session_id).await?;
        let detail = Some(format!("sessions_ended={ended}"));
        self.audit(&mut *tx, client, me.subject(), "password.changed", detail)
            .await?;
        tx.commit().await?;
        self.metrics.account_action("password_changed");
        if recovery_code_used {
            self.metrics.recovery_code_used();
        }
        Ok(ended)
    }

    /// Ends session `public_id` of the signed-in user (404 when it is not
    /// one of theirs).
    pub async fn revoke_session(
        &self,
        me: &SignedIn,
        public_id: &str,
        client: &Client,
    ) -> Result<(), Error> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        if !sessions::delete_by_public_id(&mut tx, me.session.user_id, public_id, now).await? {
            return Err(Error::SessionNotFound);
        }
        let current = public_id == me.session.session_id;
        let detail = Some(format!("current={current}"));
        self.audit(&mut *tx, client, me.subject(), "session.revoked", detail)
            .await?;
        tx.commit().await?;
        self.metrics.account_action("session_revoked");
        Ok(())
    }
}
