//! Recording security events in the audit trail, with who and where from.

use crate::db::sql::Executor;

use super::Services;
use crate::db::audit::{self, NewEvent};
use crate::http::Error;

/// Where a request came from, as recorded with its events.
#[derive(Clone, Debug, Default)]
pub struct Client {
    /// The TCP peer (`ip:port`), or behind a trusted proxy the address it
    /// forwarded for (an IP; [`crate::http::forwarded`]).
    pub addr: Option<String>,
    /// The `User-Agent` header, at most 256 characters.
    pub user_agent: Option<String>,
}

impl Client {
    /// The operator command line.
    pub fn operator() -> Client {
        Client {
            addr: None,
            user_agent: Some("twofactor-cli".to_owned()),
        }
    }
}

/// Who an event is about.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// Case-folded username.
    pub username: &'a str,
    /// The account, when it exists.
    pub user_id: Option<i64>,
}

impl Services {
    /// Records `event` about `subject` through `ex` (a transaction, so the
    /// event commits with what it describes, or a pool).
    pub async fn audit<'e>(
        &self,
        ex: impl Executor<'e>,
        client: &Client,
        subject: Subject<'_>,
        event: &'static str,
        detail: Option<String>,
    ) -> Result<(), Error> {
        audit::insert(
            ex,
            &NewEvent {
                at: self.clock.now(),
                username: Some(subject.username),
                user_id: subject.user_id,
                event,
                detail,
                client_addr: client.addr.as_deref(),
                user_agent: client.user_agent.as_deref(),
            },
        )
        .await?;
        Ok(())
    }
}
