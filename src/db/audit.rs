//! The `audit_events` table.

use super::sql::{Executor, Row, query};

/// One event to record.
pub struct NewEvent<'a> {
    /// Unix seconds.
    pub at: i64,
    /// Case-folded username, if the event concerns one.
    pub username: Option<&'a str>,
    /// The account, if it exists.
    pub user_id: Option<i64>,
    /// Event name, e.g. `password.failure`.
    pub event: &'static str,
    /// Short, secret-free detail, e.g. `remaining=9`.
    pub detail: Option<String>,
    /// The TCP peer.
    pub client_addr: Option<&'a str>,
    /// The `User-Agent` header, truncated.
    pub user_agent: Option<&'a str>,
}

/// A recorded event.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Event {
    /// Unix seconds.
    pub at: i64,
    /// Case-folded username (null for events about no user).
    pub username: Option<String>,
    /// Event name.
    pub event: String,
    /// Short detail.
    pub detail: Option<String>,
    /// Client address.
    pub client_addr: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
}

/// Records an event.
pub async fn insert<'e>(ex: impl Executor<'e>, e: &NewEvent<'_>) -> Result<(), sqlx::Error> {
    query(
        "INSERT INTO audit_events (at, username, user_id, event, detail, client_addr, user_agent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(e.at)
    .bind(e.username)
    .bind(e.user_id)
    .bind(e.event)
    .bind(e.detail.as_deref())
    .bind(e.client_addr)
    .bind(e.user_agent)
    .execute(ex)
    .await
    .map(|_| ())
}

fn event(r: &Row) -> Result<Event, sqlx::Error> {
    Ok(Event {
        at: r.try_get(0)?,
        username: r.try_get(1)?,
        event: r.try_get(2)?,
        detail: r.try_get(3)?,
        client_addr: r.try_get(4)?,
        user_agent: r.try_get(5)?,
    })
}

/// The newest events of one account (`user_id`, whose case-folded name is
/// `username`), newest first. Through the index on (username, at): events
/// of an earlier account of the same name are filtered out by `user_id`.
pub async fn for_user<'e>(
    ex: impl Executor<'e>,
    username: &str,
    user_id: i64,
    limit: i64,
) -> Result<Vec<Event>, sqlx::Error> {
    let rows = query(
        "SELECT at, username, event, detail, client_addr, user_agent FROM audit_events \
         WHERE username = $1 AND user_id = $2 ORDER BY at DESC, id DESC LIMIT $3",
    )
    .bind(username)
    .bind(user_id)
    .bind(limit)
    .fetch_all(ex)
    .await?;
    rows.iter().map(event).collect()
}

/// Events since `since`, optionally for one case-folded username, newest
/// first. For one name, through the index on (username, at). For all, by id
/// from the newest: ids are given in the order events are recorded, so this
/// reads only the events it returns, unless fewer than `limit` are that
/// recent (then it reads them all: an operator's query, not a request's).
/// Events have no index by time, which each login would have to write.
pub async fn search<'e>(
    ex: impl Executor<'e>,
    username: Option<&str>,
    since: i64,
    limit: i64,
) -> Result<Vec<Event>, sqlx::Error> {
    let found = match username {
        Some(username) => query(
            "SELECT at, username, event, detail, client_addr, user_agent FROM audit_events \
             WHERE username = $1 AND at >= $2 ORDER BY at DESC, id DESC LIMIT $3",
        )
        .bind(username),
        None => query(
            "SELECT at, username, event, detail, client_addr, user_agent FROM audit_events \
             WHERE at >= $1 ORDER BY id DESC LIMIT $2",
        ),
    };
    let rows = found.bind(since).bind(limit).fetch_all(ex).await?;
    rows.iter().map(event).collect()
}
