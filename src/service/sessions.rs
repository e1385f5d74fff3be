//! Issuing session tokens and MFA challenges.

use crate::db::Conn;

use super::{Client, Services};
use crate::auth::crypto::fill_random;
use crate::auth::tokens;
use crate::db::challenges;
use crate::db::sessions::{self, NewSession};
use crate::http::Error;

/// A token just issued, to send once.
pub struct IssuedToken {
    /// The bearer token or `mfa_token`.
    pub token: String,
    /// Its lifetime in seconds.
    pub expires_in: i64,
}

impl Services {
    /// Stores a new session for `user_id`, opened by `client`, inside
    /// `conn`'s transaction. Its public id is its creation time and 64
    /// random bits, unrelated to the token.
    pub async fn issue_session(
        &self,
        conn: &mut Conn,
        user_id: i64,
        client: &Client,
    ) -> Result<IssuedToken, Error> {
        let now = self.clock.now();
        let issued = tokens::issue();
        // The creation time, then 64 random bits: still unguessable, and
        // the time is shown beside it anyway. Ids in time order make each
        // new one land on the last page of its index instead of a random
        // page, which the commit would write out whole.
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&now.to_be_bytes());
        fill_random(&mut id[8..]);
        let public_id = hex::encode(id);
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

    /// Stores a new MFA challenge for `user_id` (the `mfa_token` of
    /// /login) inside `conn`'s transaction.
    pub async fn issue_challenge(
        &self,
        conn: &mut Conn,
        user_id: i64,
    ) -> Result<IssuedToken, Error> {
        let issued = tokens::issue();
        let expires = self.clock.now() + self.mfa_token_ttl;
        challenges::insert(conn, &issued.key, user_id, expires).await?;
        Ok(IssuedToken {
            token: issued.token,
            expires_in: self.mfa_token_ttl,
        })
    }
}
