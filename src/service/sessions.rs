//! Issuing session tokens and MFA challenges.

use sqlx::AnyConnection;

use super::Services;
use crate::auth::tokens;
use crate::db::{challenges, sessions};
use crate::http::Error;

/// A token just issued, to send once.
pub struct IssuedToken {
    /// The bearer token or `mfa_token`.
    pub token: String,
    /// Its lifetime in seconds.
    pub expires_in: i64,
}

impl Services {
    /// Stores a new session for `user_id` inside `conn`'s transaction.
    pub async fn issue_session(
        &self,
        conn: &mut AnyConnection,
        user_id: i64,
    ) -> Result<IssuedToken, Error> {
        let now = self.clock.now();
        let issued = tokens::issue();
        sessions::insert(conn, &issued.hash, user_id, now, now + self.session_ttl).await?;
        Ok(IssuedToken {
            token: issued.token,
            expires_in: self.session_ttl,
        })
    }

    /// Stores a new MFA challenge for `user_id` (the `mfa_token` of
    /// /login) inside `conn`'s transaction.
    pub async fn issue_challenge(
        &self,
        conn: &mut AnyConnection,
        user_id: i64,
    ) -> Result<IssuedToken, Error> {
        let issued = tokens::issue();
        let expires = self.clock.now() + self.mfa_token_ttl;
        challenges::insert(conn, &issued.hash, user_id, expires).await?;
        Ok(IssuedToken {
            token: issued.token,
            expires_in: self.mfa_token_ttl,
        })
    }
}
