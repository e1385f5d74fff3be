//! Issuing session tokens and MFA challenges.

use crate::db::Conn;

use super::second_factor::{Accepted, Checked, Verified};
use super::{Client, Services, Subject};
use crate::auth::crypto::fill_random;
use crate::auth::tokens::{self, TokenKey};
use crate::db::batch::Expected;
use crate::db::challenges;
use crate::db::login_write::{self, TotpLogin};
use crate::db::sessions::{self, NewSession};
use crate::http::Error;

/// A token just issued, to send once.
pub struct IssuedToken {
    /// The bearer token or `mfa_token`.
    pub token: String,
    /// Its lifetime in seconds.
    pub expires_in: i64,
}

/// The challenge a /login-2fa spends ([`Services::login_at_once`]).
pub struct Spend<'a> {
    /// Its key.
    pub challenge: &'a TokenKey,
    /// The login's place among those announced to the batched write by
    /// the batched read that found the challenge (PostgreSQL).
    pub expected: Option<Expected>,
}

/// A session token drawn before its transaction: drawing it (the OS CSPRNG,
/// twice, and a hash) happens outside SQLite's write lock, which every
/// write of the service waits for in turn.
pub struct PreparedSession {
    issued: tokens::Issued,
    public_id: String,
    now: i64,
}

/// An `mfa_token` drawn before its transaction (see [`PreparedSession`]).
pub struct PreparedChallenge {
    issued: tokens::Issued,
    expires_at: i64,
}

impl Services {
    /// Draws a session token and its public id. The id is the creation
    /// time, then 64 random bits, unrelated to the token: still
    /// unguessable, and the time is shown beside it anyway. (It has no
    /// index: a session is ended by id only together with its user.)
    pub fn prepare_session(&self) -> PreparedSession {
        let now = self.clock.now();
        let issued = tokens::issue();
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&now.to_be_bytes());
        fill_random(&mut id[8..]);
        PreparedSession {
            issued,
            public_id: hex::encode(id),
            now,
        }
    }

    /// Stores `prepared` as a session of `user_id`, opened by `client`,
    /// inside `conn`'s transaction.
    pub async fn store_session(
        &self,
        conn: &mut Conn,
        prepared: PreparedSession,
        user_id: i64,
        client: &Client,
    ) -> Result<IssuedToken, Error> {
        let PreparedSession {
            issued,
            public_id,
            now,
        } = prepared;
        let session = NewSession {
            key: &issued.key,
            public_id: &public_id,
            user_id,
            now,
            expires_at: now + self.session_ttl,
            client_addr: client.addr.as_deref(),
            user_agent: client.user_agent.as_deref(),
        };
        sessions::insert(conn, &session).await?;
        Ok(IssuedToken {
            token: issued.token,
            expires_in: self.session_ttl,
        })
    }

    /// Draws an `mfa_token`.
    pub fn prepare_challenge(&self) -> PreparedChallenge {
        PreparedChallenge {
            issued: tokens::issue(),
            expires_at: self.clock.now() + self.mfa_token_ttl,
        }
    }

    /// Stores `prepared` as an MFA challenge of `user_id`, whose
    /// case-folded username is `username_key` (the `mfa_token` of /login),
    /// inside `conn`'s transaction.
    pub async fn store_challenge(
        &self,
        conn: &mut Conn,
        prepared: PreparedChallenge,
        user_id: i64,
        username_key: &str,
    ) -> Result<IssuedToken, Error> {
        let PreparedChallenge { issued, expires_at } = prepared;
        challenges::insert(conn, &issued.key, user_id, username_key, expires_at).await?;
        Ok(IssuedToken {
            token: issued.token,
            expires_in: self.mfa_token_ttl,
        })
    }

    /// /login-2fa's whole write for an accepted TOTP code as one row of a
    /// batched statement, where that saves round trips and commits
    /// ([`login_write`], PostgreSQL):
    /// `Ok(Ok(..))` once committed. `Ok(Err(prepared))` gives the session
    /// back, nothing written, when the general path must run instead: on
    /// SQLite, for anything but a fresh TOTP code, or after a race (the
    /// code used meanwhile, a lock started, the challenge gone).
    pub async fn login_at_once(
        &self,
        subject: Subject<'_>,
        user_id: i64,
        checked: &Checked,
        spend: Spend<'_>,
        prepared: PreparedSession,
        client: &Client,
    ) -> Result<Result<(Accepted, IssuedToken), PreparedSession>, Error> {
        let Spend {
            challenge,
            expected,
        } = spend;
        let (
            Some(writes),
            Some(Verified::Totp {
                credential_id,
                step,
                drift_steps,
                offset_seconds,
                confirms,
            }),
        ) = (self.db.login_writes(), checked.verified)
        else {
            return Ok(Err(prepared));
        };
        let step = i64::try_from(step).map_err(|e| Error::Internal(e.into()))?;
        let session = NewSession {
            key: &prepared.issued.key,
            public_id: &prepared.public_id,
            user_id,
            now: prepared.now,
            expires_at: prepared.now + self.session_ttl,
            client_addr: client.addr.as_deref(),
            user_agent: client.user_agent.as_deref(),
        };
        let login = TotpLogin {
            credential_id,
            step,
            drift_steps,
            confirm: confirms,
            now: self.clock.now(),
            subject: subject.username,
            challenge,
            session: &session,
        };
        if !login_write::write(writes, &login, expected).await? {
            return Ok(Err(prepared));
        }
        let accepted = Accepted {
            recovery_code_used: false,
            recovery_codes_remaining: checked.recovery_unused,
            clock_drift_seconds: (offset_seconds != 0).then_some(offset_seconds),
        };
        let issued = IssuedToken {
            token: prepared.issued.token,
            expires_in: self.session_ttl,
        };
        Ok(Ok((accepted, issued)))
    }
}
