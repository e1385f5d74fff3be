//! `GET /me` and `POST /logout`, authenticated by a bearer session token.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Error;
use super::extract::Bearer;
use super::openapi::ErrorBody;
use crate::db::audit::{self, Event};
use crate::db::sessions;
use crate::service::{AppState, Client, Subject};

/// `GET /me`, `POST /logout`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(logout))
        .routes(routes!(events))
}

/// Body of a 200 from /me.
#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    #[schema(example = "alice")]
    username: String,
    mfa_enabled: bool,
}

#[utoipa::path(get, path = "/me", tag = "session", security(("bearer" = [])),
    responses(
        (status = 200, description = "The session's user", body = MeResponse),
        (status = 401, description = "No valid session token (`unauthorized`)", body = ErrorBody, headers(("WWW-Authenticate" = String))),
    ))]
async fn me(State(app): State<AppState>, Bearer(hash): Bearer) -> Result<Json<MeResponse>, Error> {
    let user = sessions::find(app.db.reader(), &hash, app.clock.now())
        .await?
        .ok_or(Error::Unauthorized)?;
    Ok(Json(MeResponse {
        username: user.username,
        mfa_enabled: user.mfa_enabled,
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
    let user = sessions::find(app.db.reader(), &hash, app.clock.now())
        .await?
        .ok_or(Error::Unauthorized)?;
    let events = audit::for_user(app.db.reader(), user.user_id, OWN_EVENTS).await?;
    Ok(Json(EventsResponse { events }))
}
