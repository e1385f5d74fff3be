//! `GET /me`, `POST /logout`, `GET /me/events` and the user's sessions
//! (`GET /me/sessions`, `DELETE /me/sessions/{id}`), authenticated by a
//! bearer session token.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Error;
use super::extract::Bearer;
use super::openapi::ErrorBody;
use crate::db::audit::{self, Event};
use crate::db::sessions::{self, SessionInfo};
use crate::service::{AppState, Client, Subject};

/// `GET /me`, `POST /logout`, `GET /me/events`, `GET /me/sessions`,
/// `DELETE /me/sessions/{id}`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(logout))
        .routes(routes!(events))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
}

/// Body of a 200 from /me.
#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    #[schema(example = "alice")]
    username: String,
    mfa_enabled: bool,
    /// Unused recovery codes; present when MFA is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 10)]
    recovery_codes_remaining: Option<i64>,
}

#[utoipa::path(get, path = "/me", tag = "session", security(("bearer" = [])),
    responses(
        (status = 200, description = "The session's user", body = MeResponse),
        (status = 401, description = "No valid session token (`unauthorized`)", body = ErrorBody, headers(("WWW-Authenticate" = String))),
    ))]
async fn me(State(app): State<AppState>, Bearer(hash): Bearer) -> Result<Json<MeResponse>, Error> {
    let user = sessions::find_live(&app.db, &hash, app.clock.now())
        .await?
        .ok_or(Error::Unauthorized)?;
    Ok(Json(MeResponse {
        username: user.username,
        mfa_enabled: user.mfa_enabled,
        recovery_codes_remaining: user.mfa_enabled.then_some(user.recovery_unused),
    }))
}

#[utoipa::path(post, path = "/logout", tag = "session", security(("bearer" = [])),
    responses(
        (status = 204, description = "The session is ended everywhere"),
        (status = 401, description = "No valid session token (`unauthorized`)", body = ErrorBody, headers(("WWW-Authenticate" = String))),
    ))]
async fn logout(
    State(app): State<AppState>,
    client: Client,
    Bearer(hash): Bearer,
) -> Result<StatusCode, Error> {
    let now = app.clock.now();
    let mut tx = app.db.begin_write().await?;
    let user = sessions::find(&mut *tx, &hash, now)
        .await?
        .ok_or(Error::Unauthorized)?;
    if !sessions::delete(&mut *tx, &hash, now).await? {
        return Err(Error::Unauthorized);
    }
    let key = user.username.to_ascii_lowercase();
    let subject = Subject {
        username: &key,
        user_id: Some(user.user_id),
    };
    app.audit(&mut *tx, &client, subject, "logout", None)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many events /me/events returns.
const OWN_EVENTS: i64 = 50;

/// Body of a 200 from /me/events.
#[derive(Serialize, ToSchema)]
pub struct EventsResponse {
    /// Newest first, at most 50.
    events: Vec<Event>,
}

#[utoipa::path(get, path = "/me/events", tag = "session", security(("bearer" = [])),
    responses(
        (status = 200, description = "The session user's recent security events, newest first", body = EventsResponse),
        (status = 401, description = "No valid session token (`unauthorized`)", body = ErrorBody, headers(("WWW-Authenticate" = String))),
    ))]
async fn events(
    State(app): State<AppState>,
    Bearer(hash): Bearer,
) -> Result<Json<EventsResponse>, Error> {
    let me = app.signed_in(&hash).await?;
    let events = audit::for_user(
        app.db.reader(),
        me.username.key(),
        me.session.user_id,
        OWN_EVENTS,
    )
    .await?;
    Ok(Json(EventsResponse { events }))
}

/// Body of a 200 from /me/sessions.
#[derive(Serialize, ToSchema)]
pub struct SessionsResponse {
    /// The user's unexpired sessions: this one first, then newest first.
    sessions: Vec<SessionInfo>,
}

#[utoipa::path(get, path = "/me/sessions", tag = "session", security(("bearer" = [])),
    responses(
        (status = 200, description = "The session user's live sessions: this one first (`current`), then newest first", body = SessionsResponse),
        (status = 401, description = "No valid session token (`unauthorized`)", body = ErrorBody, headers(("WWW-Authenticate" = String))),
    ))]
async fn list_sessions(
    State(app): State<AppState>,
    Bearer(hash): Bearer,
) -> Result<Json<SessionsResponse>, Error> {
    let me = app.signed_in(&hash).await?;
    let sessions = sessions::list_for_user(
        app.db.reader(),
        me.session.user_id,
        &me.session.session_id,
        app.clock.now(),
    )
    .await?;
    Ok(Json(SessionsResponse { sessions }))
}

/// Longest session id accepted in a path (they are 32 hex characters).
const MAX_SESSION_ID: usize = 64;

#[utoipa::path(delete, path = "/me/sessions/{id}", tag = "session", security(("bearer" = [])),
    params(("id" = String, Path, description = "A session id from GET /me/sessions", max_length = 64)),
    responses(
        (status = 204, description = "The session is ended everywhere (it may be this one)"),
        (status = 401, description = "No valid session token (`unauthorized`)", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 404, description = "No such session of this user (`session_not_found`)", body = ErrorBody),
    ))]
async fn revoke_session(
    State(app): State<AppState>,
    client: Client,
    Bearer(hash): Bearer,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<StatusCode, Error> {
    let me = app.signed_in(&hash).await?;
    let Ok(Path(id)) = id else {
        return Err(Error::SessionNotFound);
    };
    if id.is_empty() || id.len() > MAX_SESSION_ID {
        return Err(Error::SessionNotFound);
    }
    app.revoke_session(&me, &id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
